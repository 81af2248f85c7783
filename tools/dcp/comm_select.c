/*
 * Threads or MPI processes for the ranks of `dcp save` and `dcp load`; see
 * comm_select.h. Everything MPI is under DCP_HAVE_MPI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_select.h"
#include "dcp/sys/comm.h"
#include "dcp_tool.h"

#ifdef DCP_HAVE_MPI
#include <mpi.h>

#include "dcp/dcp_mpi.h"
#endif

/* The environment variable that shows an MPI launch, or NULL. */
static const char *mpi_launch_var(void)
{
	static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);
		if (v != NULL && v[0] != '\0')
			return vars[i];
	}
	return NULL;
}

#ifdef DCP_HAVE_MPI
static int open_mpi(const char *cmd, const char *ranks_opt, long long *nranks, tool_comm *out)
{
	if (ranks_opt != NULL && strcmp(ranks_opt, "1") != 0) {
		fprintf(stderr,
		        "dcp %s: --ranks %s with --comm mpi: each MPI process is one rank (start N processes "
		        "with mpirun -np N); drop --ranks, or use --comm threads for thread-ranks in one "
		        "process\n",
		        cmd, ranks_opt);
		return TOOL_EXIT_USAGE;
	}
	int inited = 0, provided = 0;
	MPI_Initialized(&inited);
	if (!inited) {
		if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
			fprintf(stderr,
			        "dcp %s: MPI_Init_thread failed: start dcp with mpirun, or use --comm "
			        "threads\n",
			        cmd);
			return TOOL_EXIT_FAIL;
		}
		out->we_init = 1;
	}
	char msg[512];
	int rc = dcp_comm_mpi_create(MPI_COMM_WORLD, NULL, &out->comm, msg, sizeof(msg));
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp %s: cannot use MPI: %s\n", cmd, msg);
		tool_comm_close(out);
		return rc == DCP_EINVAL ? TOOL_EXIT_USAGE : TOOL_EXIT_FAIL;
	}
	out->mpi = 1;
	out->rank = dcp_comm_rank(out->comm);
	out->size = dcp_comm_size(out->comm);
	*nranks = out->size;
	return -1;
}
#endif

int tool_comm_open(const char *cmd, const char *comm_opt, const char *ranks_opt, long long *nranks,
                   tool_comm *out)
{
	memset(out, 0, sizeof(*out));
	int want_mpi;
	if (comm_opt == NULL || strcmp(comm_opt, "auto") == 0) {
		want_mpi = mpi_launch_var() != NULL;
#ifndef DCP_HAVE_MPI
		if (want_mpi)
			fprintf(stderr,
			        "dcp %s: warning: started by an MPI launcher (%s is set), but this dcp "
			        "was built without MPI: this process runs its own %lld thread-ranks\n",
			        cmd, mpi_launch_var(), *nranks);
		want_mpi = 0;
#endif
	} else if (strcmp(comm_opt, "threads") == 0) {
		want_mpi = 0;
	} else if (strcmp(comm_opt, "mpi") == 0) {
		want_mpi = 1;
	} else {
		fprintf(stderr, "dcp %s: --comm takes threads, mpi or auto, not '%s'\n", cmd, comm_opt);
		return TOOL_EXIT_USAGE;
	}
	if (!want_mpi) {
		out->size = (int)*nranks;
		return -1;
	}
#ifdef DCP_HAVE_MPI
	return open_mpi(cmd, ranks_opt, nranks, out);
#else
	(void)ranks_opt;
	fprintf(stderr,
	        "dcp %s: --comm mpi: this dcp was built without MPI (install libopenmpi-dev and rebuild); "
	        "use --comm threads\n",
	        cmd);
	return TOOL_EXIT_USAGE;
#endif
}

int tool_comm_run(tool_comm *tc, int nranks, dcp_rank_fn fn, void *arg)
{
	if (tc == NULL || !tc->mpi)
		return dcp_run_ranks(nranks, fn, arg, NULL);
#ifdef DCP_HAVE_MPI
	if (nranks != tc->size)
		return DCP_EINVAL;
	fn(tc->comm, tc->rank, arg);
	/* A collective failed here if the comm has something to say. */
	const char *why = dcp_comm_mpi_last_error(tc->comm);
	if (why[0] != '\0') {
		tc->comm_failed = 1;
		fprintf(stderr, "dcp: process %d of %d: MPI: %s\n", tc->rank, tc->size, why);
	}
	return DCP_OK;
#else
	return DCP_EINVAL;
#endif
}

int tool_comm_first_rank(const tool_comm *tc)
{
	return tc != NULL && tc->mpi ? tc->rank : 0;
}

int tool_comm_is_leader(const tool_comm *tc)
{
	return tc == NULL || !tc->mpi || tc->rank == 0;
}

/* With MPI: every process's value v (8 bytes) into all[0..size-1]. */
static int exchange(tool_comm *tc, uint64_t v, uint64_t *all)
{
	int n = tc->size;
	dcp_buf *bufs = calloc((size_t)n, sizeof(*bufs));
	if (bufs == NULL)
		return DCP_ENOMEM;
	int rc = tc->comm->allgather(tc->comm, &v, sizeof(v), bufs);
	for (int r = 0; r < n && rc == DCP_OK; r++) {
		if (bufs[r].len != sizeof(v))
			rc = DCP_ECOMM;
		else
			memcpy(&all[r], bufs[r].data, sizeof(v));
	}
	dcp_bufs_release(bufs, (size_t)n);
	free(bufs);
	if (rc == DCP_ECOMM || rc == DCP_ETIMEOUT)
		tc->comm_failed = 1;
	return rc;
}

int tool_comm_agree_exit(tool_comm *tc, int ex)
{
	if (tc == NULL || !tc->mpi || tc->comm_failed)
		return ex;
	uint64_t *all = calloc((size_t)tc->size, sizeof(*all));
	if (all == NULL || exchange(tc, (uint64_t)ex, all) != DCP_OK) {
		free(all);
		return ex != TOOL_EXIT_OK ? ex : TOOL_EXIT_FAIL;
	}
	int worst = ex;
	for (int r = 0; r < tc->size; r++)
		if ((int)all[r] > worst)
			worst = (int)all[r];
	if (worst != ex && ex == TOOL_EXIT_OK)
		fprintf(stderr, "dcp: process %d of %d: another process failed (exit %d): see its messages\n",
		        tc->rank, tc->size, worst);
	free(all);
	return worst;
}

uint64_t tool_comm_sum(tool_comm *tc, uint64_t v)
{
	if (tc == NULL || !tc->mpi || tc->comm_failed)
		return v;
	uint64_t *all = calloc((size_t)tc->size, sizeof(*all));
	uint64_t sum = v;
	if (all != NULL && exchange(tc, v, all) == DCP_OK) {
		sum = 0;
		for (int r = 0; r < tc->size; r++)
			sum += all[r];
	}
	free(all);
	return sum;
}

void tool_comm_close(tool_comm *tc)
{
	if (tc == NULL)
		return;
#ifdef DCP_HAVE_MPI
	if (tc->comm != NULL)
		dcp_comm_free(tc->comm);
	tc->comm = NULL;
	if (tc->we_init) {
		if (tc->comm_failed) {
			fprintf(stderr,
			        "dcp: process %d of %d: not finalising MPI after a failed collective "
			        "(it would wait for the lost process); the launcher ends the job\n",
			        tc->rank, tc->size);
		} else {
			MPI_Finalize();
		}
	}
#endif
	tc->we_init = 0;
	tc->mpi = 0;
}
