/*
 * dcp verify: reads every stored byte of a checkpoint and checks every
 * checksum, through ordinary one-rank loads of whole keys.
 */
#include <stdlib.h>
#include <string.h>

#include "dcp_tool.h"

static const char USAGE[] =
        "usage: dcp verify [--batch SIZE] URL\n"
        "\n"
        "Reads every stored chunk of the checkpoint at URL and checks every block checksum,\n"
        "by loading every key whole on one rank into buffers the tool allocates. Keys are\n"
        "loaded in batches of about SIZE bytes (a larger key alone), so memory stays bounded.\n"
        "Works on any checkpoint, not only those written by 'dcp save'.\n"
        "\n"
        "  --batch SIZE  bytes of keys per load; K, M, G suffixes (default 256M)\n"
        "\n"
        "Exit status: 0 every checksum matches; 1 a read failed or data is corrupt (the\n"
        "message names the key, the file and the offset); 2 usage error or invalid URL.\n";

int cmd_verify(int argc, char **argv)
{
	const char *batch_s = NULL;
	const arg_spec specs[] = {{"batch", &batch_s, NULL}, {NULL, NULL, NULL}};
	const char *pos[1];
	int npos = 0;
	int rc = args_parse("verify", USAGE, argc, argv, specs, pos, 1, 1, &npos);
	if (rc >= 0)
		return rc;
	uint64_t batch = 256ull << 20;
	if (arg_size("verify", "batch", batch_s, &batch))
		return TOOL_EXIT_USAGE;
	const char *url = pos[0];

	double t0 = tool_now();
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	rc = dcp_read_metadata(url, NULL, &md, &err);
	if (rc != DCP_OK) {
		int ex = tool_report_error("dcp verify", rc, err);
		dcp_error_free(err);
		return ex;
	}
	dcp_comm *comm = dcp_comm_single_new();
	if (comm == NULL) {
		fprintf(stderr, "dcp verify: out of memory\n");
		dcp_metadata_free(md);
		return TOOL_EXIT_FAIL;
	}

	int ex = TOOL_EXIT_OK;
	uint64_t done = 0;
	for (size_t first = 0; first < md->nitems && ex == TOOL_EXIT_OK;) {
		size_t last = first;
		uint64_t bytes = 0;
		while (last < md->nitems &&
		       (last == first || bytes + md_item_bytes(&md->items[last]) <= batch))
			bytes += md_item_bytes(&md->items[last++]);

		md_state st;
		char msg[512];
		rc = md_state_build(md, first, last, 0, &st, msg, sizeof(msg));
		if (rc != DCP_OK) {
			fprintf(stderr, "dcp verify: %s: %s\n", url, msg);
			ex = TOOL_EXIT_FAIL;
			break;
		}
		dcp_load_options opts = DCP_LOAD_OPTIONS_INIT;
		opts.verify = 1;
		rc = dcp_load(st.state, url, comm, &opts, &err);
		if (rc != DCP_OK) {
			ex = tool_report_error("dcp verify", rc, err);
			dcp_error_free(err);
			err = NULL;
		} else {
			done += st.bytes;
		}
		md_state_clear(&st);
		first = last;
	}

	if (ex == TOOL_EXIT_OK) {
		md_totals t;
		char b[32];
		md_count(md, &t);
		printf("verified %s: %zu tensors, %zu bytes items, %zu chunks, %s in %zu files; every "
		       "checksum "
		       "matches (%.2f s)\n",
		       url, t.tensors, t.bytes_items, t.chunks, tool_fmt_bytes(t.stored_bytes, b, sizeof(b)),
		       t.files, tool_now() - t0);
	}
	(void)done;
	dcp_comm_free(comm);
	dcp_metadata_free(md);
	return ex;
}
