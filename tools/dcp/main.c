/*
 * dcp: the command-line tool of libdcp. Dispatches to one command per
 * subcommand (cmd_*.c); see dcp_tool.h for the exit statuses.
 */
#include <stdlib.h>
#include <string.h>

#include "dcp_tool.h"

typedef struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} command;

static const command COMMANDS[] = {
        {"demo", cmd_demo, "save and load a synthetic model state, resharded, and show the figures"},
        {"save", cmd_save, "N ranks save a synthetic model state to a URL"},
        {"load", cmd_load, "N ranks load a 'dcp save' checkpoint and check every element"},
        {"inspect", cmd_inspect, "show a checkpoint's keys, chunks, files and checksums"},
        {"verify", cmd_verify, "read everything and check every checksum"},
        {"cp", cmd_cp, "copy a checkpoint between two URLs"},
        {"rm", cmd_rm, "remove a checkpoint"},
        {"gc", cmd_gc, "remove what killed saves left at a URL"},
        {"plugins", cmd_plugins, "list the storage plugins found"},
};
#define NCOMMANDS (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: dcp COMMAND [OPTIONS] [ARGS]\n\n"
	           "Distributed checkpoints from the command line (libdcp " DCP_VERSION_STRING ").\n\n"
	           "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
	fprintf(f, "\n'dcp COMMAND --help' describes a command. URLs: file:///dir or a path, mem://name,\n"
	           "faulty+URL?fail.STAGE=RANKS, and the schemes of other plugins ('dcp plugins').\n"
	           "Exit status: 0 success; 1 checkpoint failure; 2 usage error or invalid checkpoint id.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return TOOL_EXIT_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
		if (argc > 2 && strcmp(name, "help") == 0) {
			for (size_t i = 0; i < NCOMMANDS; i++) {
				if (strcmp(argv[2], COMMANDS[i].name) == 0) {
					char *args[] = {argv[2], "--help", NULL};
					return COMMANDS[i].fn(2, args);
				}
			}
			fprintf(stderr, "dcp: unknown command '%s'\n", argv[2]);
			return TOOL_EXIT_USAGE;
		}
		usage(stdout);
		return TOOL_EXIT_OK;
	}
	if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
		printf("dcp %s\n", DCP_VERSION_STRING);
		return TOOL_EXIT_OK;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(name, COMMANDS[i].name) == 0)
			return COMMANDS[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "dcp: unknown command '%s'\n\n", name);
	usage(stderr);
	return TOOL_EXIT_USAGE;
}
