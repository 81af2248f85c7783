/*
 * How the ranks of `dcp save` and `dcp load` run: as threads of this process
 * (--ranks N, the default), or as the processes of an MPI job, one rank per
 * process (`mpirun -np N dcp save --comm mpi URL`). Built with MPI support
 * only when CMake found MPI (DCP_HAVE_MPI); otherwise --comm mpi is refused.
 *
 * Every function takes a tool_comm that the command owns; NULL means "threads,
 * no MPI" wherever a tool_comm is taken, for callers that never use MPI (dcp
 * demo). Used from the tool's main thread only.
 */
#ifndef DCP_TOOL_COMM_SELECT_H
#define DCP_TOOL_COMM_SELECT_H

#include <stdint.h>

#include "dcp/dcp.h"

typedef struct tool_comm {
	int mpi;         /* 1: this process is rank `rank` of the `size` processes of an MPI job */
	int rank, size;  /* mpi: from MPI_COMM_WORLD; threads: 0 and the thread count */
	dcp_comm *comm;  /* mpi: libdcp_mpi's comm over MPI_COMM_WORLD, owned */
	int we_init;     /* mpi: this tool called MPI_Init, so it calls MPI_Finalize */
	int comm_failed; /* mpi: a collective failed (e.g. a lost peer): no more MPI calls */
} tool_comm;

/*
 * Chooses how to run, from the --comm value (NULL or "auto": MPI if the
 * process was started by an MPI launcher, i.e. OMPI_COMM_WORLD_SIZE or
 * PMI_SIZE is set, else threads; "threads"; "mpi") and the --ranks value
 * (ranks_opt, NULL if absent). With MPI, --ranks must be absent or 1 and
 * *nranks becomes the number of processes; MPI is initialised here.
 * Returns -1 to go on (then call tool_comm_close), or an exit status after
 * saying on stderr what was wrong.
 */
int tool_comm_open(const char *cmd, const char *comm_opt, const char *ranks_opt, long long *nranks,
                   tool_comm *out);

/*
 * Runs fn on every rank this process holds: nranks threads (dcp_run_ranks),
 * or with MPI fn(comm, rank, arg) once, on this thread. Returns DCP_OK or why
 * the ranks could not start.
 */
int tool_comm_run(tool_comm *tc, int nranks, dcp_rank_fn fn, void *arg);

/* The first rank this process holds (its MPI rank; 0 for threads). */
int tool_comm_first_rank(const tool_comm *tc);

/* 1 if this process prints the job's results: always for threads, rank 0
 * with MPI. Failures are printed by every process. */
int tool_comm_is_leader(const tool_comm *tc);

/*
 * With MPI: the highest exit status of all processes, so that every process
 * of a failed job exits non-zero (a data mismatch found on one rank fails
 * all). After a failed collective, ex unchanged. Threads: ex.
 */
int tool_comm_agree_exit(tool_comm *tc, int ex);

/* With MPI: the sum of v over all processes (v itself after a failed
 * collective). Threads: v. */
uint64_t tool_comm_sum(tool_comm *tc, uint64_t v);

/*
 * Frees the comm and finalises MPI if this tool initialised it. After a
 * failed collective MPI_Finalize would wait for the lost peer, so it is
 * skipped (the launcher then ends the job). Safe on a zeroed tool_comm.
 */
void tool_comm_close(tool_comm *tc);

#endif /* DCP_TOOL_COMM_SELECT_H */
