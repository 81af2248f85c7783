/*
 * dcp gc: removes what killed saves left at a checkpoint's URL (dcp_gc).
 */
#include <stdlib.h>
#include <string.h>

#include "dcp_tool.h"

static const char USAGE[] = "usage: dcp gc [--older-than AGE] [--dry-run] [--json] URL\n"
                            "\n"
                            "Removes what saves that were killed left at URL: data objects that the\n"
                            "committed checkpoint does not use, temporary files, and unfinished multipart\n"
                            "uploads (S3). The committed checkpoint is never touched. A save still in\n"
                            "flight is spared by age: only what is at least AGE old is removed.\n"
                            "\n"
                            "  --older-than AGE  seconds, or with a suffix s, m, h, d (default 1h); 0\n"
                            "                    removes every orphan, also one of a save in flight\n"
                            "  --dry-run         count what would be removed, remove nothing\n"
                            "  --json            print the counts as one JSON object\n"
                            "\n"
                            "Exit status: 0 done; 1 a removal failed or the metadata cannot be read;\n"
                            "2 usage error, invalid URL, or storage that cannot collect.\n";

/* "90", "90s", "15m", "2h", "1d" into seconds. */
static int parse_age(const char *s, double *out)
{
	char *end = NULL;
	double v = strtod(s, &end), mul = 1;

	if (end == s || !(v >= 0))
		return -1;
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mul = 60, end++;
	else if (*end == 'h')
		mul = 3600, end++;
	else if (*end == 'd')
		mul = 86400, end++;
	if (*end != '\0')
		return -1;
	*out = v * mul;
	return 0;
}

int cmd_gc(int argc, char **argv)
{
	const char *age = NULL;
	int dry = 0, json = 0;
	const arg_spec specs[] = {{"older-than", &age, NULL},
	                          {"dry-run", NULL, &dry},
	                          {"json", NULL, &json},
	                          {NULL, NULL, NULL}};
	const char *pos[1];
	int npos = 0;
	int rc = args_parse("gc", USAGE, argc, argv, specs, pos, 1, 1, &npos);
	dcp_gc_options opts = DCP_GC_OPTIONS_INIT;
	dcp_gc_report r;
	dcp_error *err = NULL;

	if (rc >= 0)
		return rc;
	if (age != NULL && parse_age(age, &opts.min_age_s) != 0) {
		fprintf(stderr, "dcp gc: --older-than '%s' is not an age (e.g. 3600, 90s, 15m, 2h, 1d)\n",
		        age);
		return TOOL_EXIT_USAGE;
	}
	opts.dry_run = dry;
	rc = dcp_gc(pos[0], &opts, NULL, &r, &err);
	if (json) {
		printf("{\"url\":\"");
		for (const char *c = pos[0]; *c; c++)
			printf(*c == '"' || *c == '\\' ? "\\%c" : (unsigned char)*c < 0x20 ? "?" : "%c", *c);
		printf("\",\"status\":\"%s\",\"dry_run\":%s,\"min_age_s\":%.0f,\"objects_removed\":%llu,"
		       "\"bytes_removed\":%llu,\"uploads_aborted\":%llu,\"objects_too_young\":%llu,"
		       "\"uploads_too_young\":%llu,\"uploads_listed\":%s}\n",
		       rc == DCP_OK ? "ok" : dcp_strerror(rc), dry ? "true" : "false", opts.min_age_s,
		       (unsigned long long)r.objects_removed, (unsigned long long)r.bytes_removed,
		       (unsigned long long)r.uploads_aborted, (unsigned long long)r.objects_too_young,
		       (unsigned long long)r.uploads_too_young, r.uploads_unlisted ? "false" : "true");
	}
	if (rc != DCP_OK) {
		int ex = tool_report_error("dcp gc", rc, err);
		dcp_error_free(err);
		return ex == TOOL_EXIT_FAIL && rc == DCP_EUNSUPPORTED ? TOOL_EXIT_USAGE : ex;
	}
	if (!json) {
		printf("%s %llu orphan object(s) (%llu bytes) and %s %llu unfinished upload(s) at %s\n",
		       dry ? "would remove" : "removed", (unsigned long long)r.objects_removed,
		       (unsigned long long)r.bytes_removed, dry ? "abort" : "aborted",
		       (unsigned long long)r.uploads_aborted, pos[0]);
		if (r.objects_too_young + r.uploads_too_young > 0)
			printf("kept %llu object(s) and %llu upload(s) younger than %.0f s (a save may still "
			       "be "
			       "writing them)\n",
			       (unsigned long long)r.objects_too_young,
			       (unsigned long long)r.uploads_too_young, opts.min_age_s);
		if (r.uploads_unlisted)
			printf("note: this store cannot list unfinished uploads; a lifecycle rule "
			       "(AbortIncompleteMultipartUpload) must remove them\n");
	}
	return TOOL_EXIT_OK;
}
