/*
 * dcp save: N thread-ranks build the synthetic model state and save it.
 */
#include <stdlib.h>
#include <string.h>

#include "dcp_tool.h"

static const char USAGE[] =
        "usage: dcp save [--ranks N] [--size SIZE] [--tensors K] [--seed S] [--threads T]\n"
        "                [--no-overwrite] [--json] [--comm threads|mpi|auto] URL\n"
        "\n"
        "N thread-ranks build a synthetic model state of about SIZE bytes and save it to URL.\n"
        "The state mixes f32, bf16, f16, f64 and integer tensors (row-, column-, grid- and\n"
        "multi-chunk-sharded with uneven chunks), replicated tensors, a 0-D step counter and\n"
        "two bytes items. Every element is a function of (seed, key, index), so 'dcp load'\n"
        "checks it with any number of ranks.\n"
        "\n"
        "  --ranks N       thread-ranks that save (default 4)\n"
        "  --size SIZE     about this many bytes in all; K, M, G suffixes (default 64M)\n"
        "  --tensors K     number of tensors (default 24)\n"
        "  --seed S        seed of the element values (default 1)\n"
        "  --threads T     add threads=T to the URL's query for the storage plugin\n"
        "  --no-overwrite  fail if a checkpoint already exists at URL\n"
        "  --json          print one JSON object with bytes, seconds, bytes_per_second\n"
        "  --comm C        threads: --ranks N thread-ranks in this process; mpi: this process\n"
        "                  is one rank of an MPI job (mpirun -np N dcp save --comm mpi URL);\n"
        "                  auto (default): mpi when started by mpirun, else threads\n"
        "\n"
        "URL examples: file:///tmp/ckpt, ./ckpt, mem://name (this process only),\n"
        "faulty+file:///tmp/ckpt?fail.write_data=1 (inject a failure on rank 1).\n"
        "Exit status: 0 saved; 1 the save failed; 2 usage error or invalid URL.\n";

int cmd_save(int argc, char **argv)
{
	const char *ranks_s = NULL, *size_s = NULL, *tensors_s = NULL, *seed_s = NULL, *threads_s = NULL;
	const char *comm_s = NULL;
	int json = 0, no_overwrite = 0;
	const arg_spec specs[] = {{"ranks", &ranks_s, NULL},
	                          {"size", &size_s, NULL},
	                          {"tensors", &tensors_s, NULL},
	                          {"seed", &seed_s, NULL},
	                          {"threads", &threads_s, NULL},
	                          {"json", NULL, &json},
	                          {"no-overwrite", NULL, &no_overwrite},
	                          {"comm", &comm_s, NULL},
	                          {NULL, NULL, NULL}};
	const char *pos[1];
	int npos = 0;
	int rc = args_parse("save", USAGE, argc, argv, specs, pos, 1, 1, &npos);
	if (rc >= 0)
		return rc;

	long long ranks = 4, tensors = 24, seed = 1, threads = 0;
	uint64_t size = 64ull << 20;
	if (arg_int("save", "ranks", ranks_s, 1, TOOL_MAX_RANKS, &ranks) ||
	    arg_int("save", "tensors", tensors_s, 1, TOOL_MAX_TENSORS, &tensors) ||
	    arg_int("save", "seed", seed_s, 0, 9223372036854775807LL, &seed) ||
	    arg_int("save", "threads", threads_s, 1, 1024, &threads) ||
	    arg_size("save", "size", size_s, &size))
		return TOOL_EXIT_USAGE;

	tool_comm tc;
	rc = tool_comm_open("save", comm_s, ranks_s, &ranks, &tc);
	if (rc >= 0)
		return rc;
	char *url = tool_url_with_threads(pos[0], (int)threads);
	if (url == NULL) {
		fprintf(stderr, "dcp save: out of memory\n");
		tool_comm_close(&tc);
		return TOOL_EXIT_FAIL;
	}
	synth_spec spec;
	char err[512];
	rc = synth_spec_build(size, (size_t)tensors, (uint64_t)seed, &spec, err, sizeof(err));
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp save: %s\n", err);
		free(url);
		tool_comm_close(&tc);
		return rc == DCP_EINVAL ? TOOL_EXIT_USAGE : TOOL_EXIT_FAIL;
	}

	job_result res;
	job_save_on(&tc, &spec, url, (int)ranks, !no_overwrite, "dcp save", &res);
	res.spec = spec; /* res owns it now */
	int ex = tool_comm_agree_exit(&tc, job_report("dcp save", &res));
	res.bytes = tool_comm_sum(&tc, res.bytes);
	if (ex == TOOL_EXIT_OK && tool_comm_is_leader(&tc)) {
		if (json) {
			ex = job_print_json("save", url, (int)ranks, &res);
		} else {
			char b[32], r[32];
			double bps = res.seconds > 0 ? (double)res.bytes / res.seconds : 0.0;
			printf("saved %zu tensors and 2 bytes items (%s) from %lld ranks to %s in %.3f s "
			       "(%s/s)\n",
			       spec.ntensors, tool_fmt_bytes(res.bytes, b, sizeof(b)), ranks, url,
			       res.seconds, tool_fmt_bytes((uint64_t)bps, r, sizeof(r)));
		}
	}
	job_result_clear(&res);
	free(url);
	tool_comm_close(&tc);
	return ex;
}
