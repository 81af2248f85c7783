/*
 * libdcp_mpi: the collectives of libdcp over an MPI communicator.
 *
 * One process per rank: each process makes a comm from its application's
 * communicator and passes it to dcp_save and dcp_load, which it calls from the
 * thread that calls MPI for it (MPI_THREAD_FUNNELED is enough when that is the
 * main thread; MPI_THREAD_SERIALIZED otherwise).
 *
 *     MPI_Init(&argc, &argv);
 *     dcp_comm *comm = dcp_comm_mpi_new(MPI_COMM_WORLD, NULL);
 *     ... dcp_save(state, url, comm, NULL, &err) ...
 *     dcp_comm_free(comm);
 *     MPI_Finalize();
 *
 * Link with libdcp_mpi and libdcp (CMake: dcp::dcp_mpi; pkg-config: dcp_mpi).
 * libdcp itself has no MPI dependency.
 *
 * Timeout. A collective that waits longer than the timeout for a peer returns
 * DCP_ETIMEOUT, so that a lost or hung rank turns into an error on the
 * surviving ranks (dcp_save then fails; the checkpoint is not committed and
 * the previous one stays loadable) instead of a hang. The timeout counts time
 * without any progress: a peer that sends or receives anything resets it. It
 * must be longer than the longest skew between ranks arriving at one
 * collective, i.e. longer than the slowest rank takes to write or read its
 * share of a checkpoint. After a DCP_ETIMEOUT the job cannot continue
 * reliably (MPI has no way to exclude the lost rank): report the error and end
 * the job, e.g. with MPI_Abort, or with exit(1) without MPI_Finalize, which
 * would wait for the lost rank. A rank that waits for a root (the receiving
 * side of a scatter or broadcast) allows a tenth of the timeout more (at least
 * 1 s), so that the root's own timeout, and what it saw, reaches it first.
 *
 * Under mpirun, a process that dies (a crash, SIGKILL) normally makes mpirun
 * end the whole job at once; the timeout matters when the launcher keeps the
 * job running (Open MPI: --enable-recovery), and when a peer is alive but
 * never arrives (stuck in I/O, deadlocked, cut off by the network).
 *
 * Differences from the thread group (dcp/sys/comm.h allows both): a rank that
 * only sends in a collective (a gather's non-roots) does not learn of a
 * failure on the receiving side; after a lost peer, ranks may report
 * different codes (DCP_ETIMEOUT where they waited, DCP_ECOMM where a peer told
 * them). Invalid arguments give DCP_EINVAL on that rank and DCP_ECOMM on the
 * ranks that receive from it, and leave the comm usable. Memory: a rank keeps
 * a copy of what it sends until MPI has sent it (so that giving up on a lost
 * peer never leaves MPI reading the caller's freed buffer).
 */
#ifndef DCP_DCP_MPI_H
#define DCP_DCP_MPI_H

#include <stddef.h>

#include <mpi.h>

#include "dcp/dcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds; used when neither the option nor $DCP_MPI_TIMEOUT sets one. */
#define DCP_MPI_DEFAULT_TIMEOUT 600.0
/* Largest single MPI message: longer payloads travel in pieces of this size. */
#define DCP_MPI_DEFAULT_PIECE_BYTES ((size_t)1 << 30)

typedef struct dcp_mpi_options {
	unsigned version; /* DCP_MPI_OPTIONS_VERSION */
	/*
	 * Seconds a collective may wait without progress; 0 waits forever. A
	 * negative value (the default) takes $DCP_MPI_TIMEOUT (seconds, a
	 * decimal number, 0 for none), or DCP_MPI_DEFAULT_TIMEOUT if unset.
	 */
	double timeout_s;
	/* Largest message handed to MPI, in bytes (1..2^30); 0 for the default
	 * DCP_MPI_DEFAULT_PIECE_BYTES. Smaller values are for tests. */
	size_t piece_bytes;
} dcp_mpi_options;
#define DCP_MPI_OPTIONS_VERSION 1
#define DCP_MPI_OPTIONS_INIT                     \
	{                                        \
		DCP_MPI_OPTIONS_VERSION, -1.0, 0 \
	}

/*
 * A comm over the ranks of `comm` (any intracommunicator), which is
 * duplicated: libdcp's messages never mix with the application's, and the
 * application may free its communicator at any time. Collective over `comm`
 * (MPI_Comm_dup). opts may be NULL (defaults). Free the result with
 * dcp_comm_free before MPI_Finalize.
 *
 * Returns NULL if MPI is not initialised (or already finalised), comm is not
 * a valid intracommunicator, the options or $DCP_MPI_TIMEOUT are invalid, or
 * memory ran out; dcp_comm_mpi_create says which.
 */
DCP_EXTERN dcp_comm *dcp_comm_mpi_new(MPI_Comm comm, const dcp_mpi_options *opts);

/*
 * As dcp_comm_mpi_new, with a status: DCP_OK and *out set, or DCP_EINVAL
 * (bad options, bad $DCP_MPI_TIMEOUT, MPI not initialised, bad comm),
 * DCP_ECOMM (MPI_Comm_dup failed) or DCP_ENOMEM, with *out = NULL and what
 * was wrong written to msg (msglen bytes, NUL-terminated; msg may be NULL).
 * Every rank gets the same status except for DCP_ENOMEM.
 */
DCP_EXTERN int dcp_comm_mpi_create(MPI_Comm comm, const dcp_mpi_options *opts, dcp_comm **out, char *msg,
                                   size_t msglen);

/* The timeout in force, in seconds (0: none); -1 if comm is not an MPI comm. */
DCP_EXTERN double dcp_comm_mpi_timeout(const dcp_comm *comm);

/*
 * What went wrong in the last collective of comm that failed on this rank,
 * e.g. "gather #7: no progress for 5 s waiting for rank(s) 3 (the timeout,
 * 5 s, from DCP_MPI_TIMEOUT; ...)"; "" if none failed. Owned by comm, valid
 * until its next collective. For diagnostics: libdcp's error objects only say
 * that a collective failed on a rank.
 */
DCP_EXTERN const char *dcp_comm_mpi_last_error(const dcp_comm *comm);

/* The duplicated communicator that comm uses (MPI_COMM_NULL if comm is not
 * an MPI comm). Owned by comm; for diagnostics and tests. */
DCP_EXTERN MPI_Comm dcp_comm_mpi_handle(const dcp_comm *comm);

#ifdef __cplusplus
}
#endif
#endif /* DCP_DCP_MPI_H */
