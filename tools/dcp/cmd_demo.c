/*
 * dcp demo: the first thing a new user runs. 4 ranks save a synthetic model
 * state, 3 ranks load it back resharded and check every element, then a short
 * table and the inspect summary.
 */
#include <stdlib.h>
#include <string.h>

#include "dcp_tool.h"

static const char USAGE[] =
        "usage: dcp demo [--size SIZE] [URL]\n"
        "\n"
        "4 thread-ranks save about SIZE bytes of a synthetic model state (mixed dtypes,\n"
        "row-, column- and grid-sharded tensors with uneven chunks, replicated tensors, bytes\n"
        "items) to URL; then 3 ranks load it back into a different sharding and check every\n"
        "element. Prints tensors, bytes, files, save and load throughput, and a summary of\n"
        "the checkpoint. The checkpoint stays at URL: look at it with 'dcp inspect URL',\n"
        "remove it with 'dcp rm URL'.\n"
        "\n"
        "  --size SIZE  about this many bytes; K, M, G suffixes (default 256M)\n"
        "  URL          where to save (default ./dcp-demo, a folder in the current directory;\n"
        "               mem://demo keeps it in this process's memory only)\n"
        "\n"
        "Exit status: 0 saved, loaded and every element matches; 1 a step failed;\n"
        "2 usage error or invalid URL.\n";

#define DEMO_SAVE_RANKS 4
#define DEMO_LOAD_RANKS 3

static void rate(uint64_t bytes, double s, char *buf, size_t len)
{
	char b[32];
	tool_fmt_bytes(s > 0 ? (uint64_t)((double)bytes / s) : 0, b, sizeof(b));
	snprintf(buf, len, "%s/s", b);
}

int cmd_demo(int argc, char **argv)
{
	const char *size_s = NULL;
	const arg_spec specs[] = {{"size", &size_s, NULL}, {NULL, NULL, NULL}};
	const char *pos[1] = {"./dcp-demo"};
	int npos = 0;
	int rc = args_parse("demo", USAGE, argc, argv, specs, pos, 0, 1, &npos);
	if (rc >= 0)
		return rc;
	uint64_t size = 256ull << 20;
	if (arg_size("demo", "size", size_s, &size))
		return TOOL_EXIT_USAGE;
	const char *url = pos[0];

	synth_spec spec;
	char err[512];
	rc = synth_spec_build(size, 24, 1, &spec, err, sizeof(err));
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp demo: %s\n", err);
		return rc == DCP_EINVAL ? TOOL_EXIT_USAGE : TOOL_EXIT_FAIL;
	}
	char b[32];
	printf("dcp demo: %d ranks save %s of synthetic model state to %s,\n"
	       "          %d ranks load it back resharded and check every element.\n\n",
	       DEMO_SAVE_RANKS, tool_fmt_bytes(spec.total_bytes, b, sizeof(b)), url, DEMO_LOAD_RANKS);
	fflush(stdout);

	job_result sres, lres;
	memset(&lres, 0, sizeof(lres));
	job_save(&spec, url, DEMO_SAVE_RANKS, 1, "save", &sres);
	int ex = job_report("dcp demo: save", &sres);
	if (ex == TOOL_EXIT_OK) {
		job_load(url, DEMO_LOAD_RANKS, NULL, "load", &lres);
		ex = job_report("dcp demo: load", &lres);
		if (lres.status == 1)
			fprintf(stderr, "dcp demo: %llu elements differ after the round trip\n",
			        (unsigned long long)lres.mismatches);
	}
	dcp_metadata *md = NULL;
	if (ex == TOOL_EXIT_OK) {
		dcp_error *e = NULL;
		rc = dcp_read_metadata(url, NULL, &md, &e);
		if (rc != DCP_OK)
			ex = tool_report_error("dcp demo: inspect", rc, e);
		dcp_error_free(e);
	}
	if (ex == TOOL_EXIT_OK && synth_spec_check_metadata(&spec, md, err, sizeof(err)) != DCP_OK) {
		fprintf(stderr, "dcp demo: %s: %s\n", url, err);
		ex = TOOL_EXIT_FAIL;
	}
	if (ex == TOOL_EXIT_OK) {
		md_totals t;
		char r1[48], r2[48], lb[32];
		md_count(md, &t);
		rate(sres.bytes, sres.seconds, r1, sizeof(r1));
		rate(lres.bytes, lres.seconds, r2, sizeof(r2));
		char dtypes[160];
		size_t n = 0;
		dtypes[0] = '\0';
		for (int d = 0; d < DCP_DTYPE_COUNT_; d++) {
			int seen = 0;
			for (size_t i = 0; i < md->nitems && !seen; i++)
				seen = md->items[i].type == DCP_ITEM_TENSOR &&
				       md->items[i].dtype == (dcp_dtype)d;
			if (seen && n < sizeof(dtypes))
				n += (size_t)snprintf(dtypes + n, sizeof(dtypes) - n, "%s%s", n ? ", " : "",
				                      dcp_dtype_name((dcp_dtype)d));
		}
		printf("  tensors   %zu (%s) + %zu bytes items\n", t.tensors, dtypes, t.bytes_items);
		printf("  bytes     %s in %zu stored chunks\n", tool_fmt_bytes(t.stored_bytes, b, sizeof(b)),
		       t.chunks);
		printf("  files     %zu\n", t.files);
		printf("  save      %d ranks  %8.3f s  %12s\n", DEMO_SAVE_RANKS, sres.seconds, r1);
		printf("  load      %d ranks  %8.3f s  %12s  (%s read; all %llu elements match)\n",
		       DEMO_LOAD_RANKS, lres.seconds, r2, tool_fmt_bytes(lres.bytes, lb, sizeof(lb)),
		       (unsigned long long)lres.elements);
		printf("\n");
		inspect_print_summary(stdout, url, md);
		printf("\nnext: dcp inspect %s | dcp verify %s | dcp rm %s\n", url, url, url);
	}
	dcp_metadata_free(md);
	sres.spec = spec; /* sres owns it now */
	job_result_clear(&sres);
	job_result_clear(&lres);
	return ex;
}
