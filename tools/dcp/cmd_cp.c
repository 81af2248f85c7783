/*
 * dcp cp: copies a checkpoint from one URL to another, through the public
 * API: a one-rank load of every stored chunk from SRC, then a save to DST
 * (whose commit comes last, so DST is never half there).
 */
#include <stdlib.h>
#include <string.h>

#include "dcp_tool.h"

static const char USAGE[] =
        "usage: dcp cp [--force] SRC DST\n"
        "\n"
        "Copies the checkpoint at SRC to DST (any two URLs, e.g. file to s3), keeping its\n"
        "keys, dtypes, shapes and chunking. Every checksum of SRC is verified on the way;\n"
        "DST gets its own files and checksums and is committed last, so a failed copy\n"
        "leaves no checkpoint (or the previous one) at DST.\n"
        "\n"
        "Memory: this version holds the whole checkpoint in memory at once (one rank\n"
        "loads every chunk, then saves). Copy checkpoints larger than the free memory\n"
        "with the storage's own tools.\n"
        "\n"
        "  --force  replace a checkpoint that already exists at DST\n"
        "\n"
        "Exit status: 0 copied; 1 the read or the write failed (or DST exists without\n"
        "--force); 2 usage error or invalid URL.\n";

int cmd_cp(int argc, char **argv)
{
	int force = 0;
	const arg_spec specs[] = {{"force", NULL, &force}, {NULL, NULL, NULL}};
	const char *pos[2];
	int npos = 0;
	int rc = args_parse("cp", USAGE, argc, argv, specs, pos, 2, 2, &npos);
	if (rc >= 0)
		return rc;
	const char *src = pos[0], *dst = pos[1];

	/* Check DST before reading anything from SRC. */
	dcp_error *err = NULL;
	rc = dcp_validate_checkpoint_id(NULL, dst, 1, &err);
	if (rc != DCP_OK) {
		int ex = tool_report_error("dcp cp", rc, err);
		dcp_error_free(err);
		return ex;
	}

	double t0 = tool_now();
	dcp_metadata *md = NULL;
	rc = dcp_read_metadata(src, NULL, &md, &err);
	if (rc != DCP_OK) {
		int ex = tool_report_error("dcp cp", rc, err);
		dcp_error_free(err);
		return ex;
	}
	dcp_comm *comm = dcp_comm_single_new();
	dcp_state *out = dcp_state_new();
	md_state in;
	char msg[512];
	memset(&in, 0, sizeof(in));
	int ex = TOOL_EXIT_OK;
	if (comm == NULL || out == NULL) {
		fprintf(stderr, "dcp cp: out of memory\n");
		ex = TOOL_EXIT_FAIL;
		goto done;
	}
	rc = md_state_build(md, 0, md->nitems, 1, &in, msg, sizeof(msg));
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp cp: %s: %s\n", src, msg);
		ex = TOOL_EXIT_FAIL;
		goto done;
	}
	rc = dcp_load(in.state, src, comm, NULL, &err);
	if (rc != DCP_OK) {
		ex = tool_report_error("dcp cp", rc, err);
		goto done;
	}
	double t1 = tool_now();

	/* The state to save: the same tensor buffers, and the loaded bytes. */
	size_t b = 0;
	for (size_t i = 0; i < md->nitems && rc == DCP_OK; i++) {
		const dcp_md_item *it = &md->items[i];
		if (it->type == DCP_ITEM_BYTES) {
			const void *data = NULL;
			size_t len = 0;
			rc = dcp_state_get_bytes(in.state, it->key, &data, &len);
			if (rc == DCP_OK)
				rc = dcp_state_add_bytes(out, it->key, (void *)data, len);
			continue;
		}
		for (size_t c = 0; c < it->nchunks && rc == DCP_OK; c++) {
			const dcp_md_chunk *ch = &it->chunks[c];
			rc = dcp_state_add_shard(out, it->key, it->dtype, it->ndim, it->shape, ch->offsets,
			                         ch->sizes, in.bufs[b++]);
		}
		if (rc != DCP_OK)
			fprintf(stderr, "dcp cp: key %s: %s (%s)\n", it->key, dcp_strerror(rc),
			        dcp_state_last_error(out));
	}
	if (rc != DCP_OK) {
		ex = TOOL_EXIT_FAIL;
		goto done;
	}
	dcp_save_options opts = DCP_SAVE_OPTIONS_INIT;
	opts.overwrite = force;
	rc = dcp_save(out, dst, comm, &opts, &err);
	if (rc != DCP_OK) {
		ex = tool_report_error("dcp cp", rc, err);
		if (rc == DCP_EEXISTS && !force)
			fprintf(stderr, "dcp cp: use --force to replace the checkpoint at %s\n", dst);
		goto done;
	}
	char sz[32];
	double t2 = tool_now();
	printf("copied %zu items (%s) from %s to %s: read %.2f s, write %.2f s\n", md->nitems,
	       tool_fmt_bytes(in.bytes, sz, sizeof(sz)), src, dst, t1 - t0, t2 - t1);
done:
	dcp_error_free(err);
	dcp_state_free(out);
	md_state_clear(&in);
	dcp_comm_free(comm);
	dcp_metadata_free(md);
	return ex;
}
