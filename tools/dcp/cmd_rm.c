/*
 * dcp rm: removes a checkpoint (its metadata first, so it is never half
 * there).
 */
#include "dcp_tool.h"

static const char USAGE[] = "usage: dcp rm URL\n"
                            "\n"
                            "Removes the checkpoint at URL: its metadata first (after which it is no\n"
                            "longer a checkpoint), then its data files.\n"
                            "\n"
                            "Exit status: 0 removed; 1 the removal failed, there is no checkpoint, or the\n"
                            "storage cannot remove; 2 usage error or invalid URL.\n";

int cmd_rm(int argc, char **argv)
{
	const arg_spec specs[] = {{NULL, NULL, NULL}};
	const char *pos[1];
	int npos = 0;
	int rc = args_parse("rm", USAGE, argc, argv, specs, pos, 1, 1, &npos);
	if (rc >= 0)
		return rc;
	dcp_error *err = NULL;
	rc = dcp_remove(pos[0], NULL, &err);
	if (rc != DCP_OK) {
		int ex = tool_report_error("dcp rm", rc, err);
		dcp_error_free(err);
		return ex;
	}
	printf("removed %s\n", pos[0]);
	return TOOL_EXIT_OK;
}
