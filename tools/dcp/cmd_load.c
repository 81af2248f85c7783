/*
 * dcp load: N thread-ranks load a checkpoint written by `dcp save` into their
 * own sharding and check every element.
 */
#include <stdlib.h>
#include <string.h>

#include "dcp_tool.h"

static const char USAGE[] =
        "usage: dcp load [--ranks N] [--seed S] [--threads T] [--json] [--comm threads|mpi|auto] URL\n"
        "\n"
        "N thread-ranks load the checkpoint written by 'dcp save' at URL into their own\n"
        "sharding (N may differ from the number of ranks that saved it: the load reshards)\n"
        "and check every element and byte. Exits 0 only if all match; otherwise names the\n"
        "key, the rank and the first differing element.\n"
        "\n"
        "  --ranks N    thread-ranks that load (default 3)\n"
        "  --seed S     check against seed S (default: the seed recorded by the save)\n"
        "  --threads T  add threads=T to the URL's query for the storage plugin\n"
        "  --json       print one JSON object with bytes, seconds, bytes_per_second\n"
        "  --comm C     threads: --ranks N thread-ranks in this process; mpi: this process is\n"
        "               one rank of an MPI job (mpirun -np N dcp load --comm mpi URL);\n"
        "               auto (default): mpi when started by mpirun, else threads\n"
        "\n"
        "Checksums are verified while loading. For checkpoints not written by 'dcp save',\n"
        "use 'dcp verify'.\n"
        "Exit status: 0 all elements match; 1 the load failed or data differs;\n"
        "2 usage error or invalid URL.\n";

int cmd_load(int argc, char **argv)
{
	const char *ranks_s = NULL, *seed_s = NULL, *threads_s = NULL, *comm_s = NULL;
	int json = 0;
	const arg_spec specs[] = {{"ranks", &ranks_s, NULL},     {"seed", &seed_s, NULL},
	                          {"threads", &threads_s, NULL}, {"json", NULL, &json},
	                          {"comm", &comm_s, NULL},       {NULL, NULL, NULL}};
	const char *pos[1];
	int npos = 0;
	int rc = args_parse("load", USAGE, argc, argv, specs, pos, 1, 1, &npos);
	if (rc >= 0)
		return rc;

	long long ranks = 3, seed = 0, threads = 0;
	if (arg_int("load", "ranks", ranks_s, 1, TOOL_MAX_RANKS, &ranks) ||
	    arg_int("load", "seed", seed_s, 0, 9223372036854775807LL, &seed) ||
	    arg_int("load", "threads", threads_s, 1, 1024, &threads))
		return TOOL_EXIT_USAGE;
	uint64_t useed = (uint64_t)seed;

	tool_comm tc;
	rc = tool_comm_open("load", comm_s, ranks_s, &ranks, &tc);
	if (rc >= 0)
		return rc;
	char *url = tool_url_with_threads(pos[0], (int)threads);
	if (url == NULL) {
		fprintf(stderr, "dcp load: out of memory\n");
		tool_comm_close(&tc);
		return TOOL_EXIT_FAIL;
	}
	job_result res;
	job_load_on(&tc, url, (int)ranks, seed_s != NULL ? &useed : NULL, "dcp load", &res);
	int ex = job_report("dcp load", &res);

	/* Every element this job holds matched; also make sure the checkpoint
	 * holds nothing more than the synthetic state. */
	if (ex == TOOL_EXIT_OK) {
		dcp_metadata *md = NULL;
		dcp_error *err = NULL;
		rc = dcp_read_metadata(url, NULL, &md, &err);
		if (rc != DCP_OK) {
			ex = tool_report_error("dcp load", rc, err);
		} else {
			char msg[512];
			if (synth_spec_check_metadata(&res.spec, md, msg, sizeof(msg)) != DCP_OK) {
				fprintf(stderr, "dcp load: %s: %s\n", url, msg);
				ex = TOOL_EXIT_FAIL;
			}
		}
		dcp_error_free(err);
		dcp_metadata_free(md);
	}
	/* With MPI: every process exits with the worst status; rank 0 prints
	 * the totals of all. */
	ex = tool_comm_agree_exit(&tc, ex);
	res.bytes = tool_comm_sum(&tc, res.bytes);
	res.elements = tool_comm_sum(&tc, res.elements);
	if (ex == TOOL_EXIT_OK) {
		if (!tool_comm_is_leader(&tc)) {
			/* rank 0 prints the job's results */
		} else if (json) {
			ex = job_print_json("load", url, (int)ranks, &res);
		} else {
			char b[32], r[32];
			double bps = res.seconds > 0 ? (double)res.bytes / res.seconds : 0.0;
			printf("loaded %s into %lld ranks from %s in %.3f s (%s/s); all %llu elements and "
			       "the "
			       "bytes items match\n",
			       tool_fmt_bytes(res.bytes, b, sizeof(b)), ranks, url, res.seconds,
			       tool_fmt_bytes((uint64_t)bps, r, sizeof(r)), (unsigned long long)res.elements);
		}
	} else if (res.status == 1) {
		fprintf(stderr, "dcp load: %llu elements differ from the values of seed %llu\n",
		        (unsigned long long)res.mismatches, (unsigned long long)res.spec.seed);
	}
	job_result_clear(&res);
	free(url);
	tool_comm_close(&tc);
	return ex;
}
