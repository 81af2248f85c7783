/*
 * libdcp_mpi internals: the collectives of dcp/sys/comm.h over an MPI
 * communicator. Shared by comm_mpi.c (the dcp_comm object: creation, the
 * rank/size/destroy slots, accessors), mpi_transport.c (framed non-blocking
 * transfers in pieces, polled with a timeout; orphans) and mpi_collectives.c
 * (gather, scatter, broadcast, allgather, barrier). Not installed.
 *
 *
 * Every collective is built from non-blocking point-to-point messages on a
 * duplicate of the application's communicator, polled with MPI_Test, so that
 * a wait can end: after `timeout` seconds without any message completing, the
 * collective gives up and returns DCP_ETIMEOUT instead of hanging on a lost
 * peer. (Non-blocking MPI collectives could not be abandoned: MPI forbids
 * cancelling or freeing their requests.)
 *
 * Messages. One transfer from a rank to a peer is a header (mc_hdr: what
 * collective, which root, its sequence number, the payload length and the
 * sender's status) followed by the payload in pieces of at most piece_bytes
 * (1 GiB by default), so that MPI's int counts never overflow and lengths
 * past 2^31 bytes are split, never truncated. All messages use one tag: MPI
 * keeps messages between two ranks with one tag in order, so the pieces
 * follow their header, and a rank that skipped or reordered a collective is
 * caught by the header check (DCP_ECOMM) rather than left waiting.
 *
 * Algorithms: gather and scatter go straight between the root and each rank;
 * broadcast follows a binomial tree (each rank relays to its subtree);
 * allgather is a gather to rank 0 and a broadcast of all parts; barrier is an
 * empty gather and broadcast. A rank whose own step failed (invalid
 * arguments, a timeout while gathering) still sends headers carrying its
 * status, so that the ranks depending on it learn of the failure at once
 * instead of at their own timeout.
 *
 * Outcomes per rank: DCP_OK; DCP_EINVAL on a rank that passed invalid
 * arguments, DCP_ECOMM on the ranks that received from it; DCP_ETIMEOUT on a
 * rank that waited too long, and on the ranks it relays to; DCP_ECOMM for MPI
 * errors and mismatched collectives; DCP_ENOMEM. Outputs are {NULL, 0} after
 * any failure. After DCP_ETIMEOUT or DCP_ECOMM the comm is not reliably
 * usable (messages of the failed collective may still arrive).
 *
 * Memory safety after a timeout: MPI may still read a send buffer after the
 * collective gave up on it (the lost peer might match the send later). So
 * every payload is sent from a buffer this comm owns (a copy of the caller's
 * data, or the received buffer that a relay forwards), and the transfers of a
 * step with unfinished requests (sends, or receives that MPI could not cancel
 * because a message was already arriving) are kept on the comm's orphan list
 * until MPI reports them done. Orphans still unfinished when the comm is freed
 * are leaked on purpose: freeing them could let MPI touch freed memory.
 *
 * A comm is used by one thread at a time (the rank's thread), like every comm.
 */
#ifndef DCP_MPI_INTERNAL_H
#define DCP_MPI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dcp/dcp_mpi.h"
#include "dcp/sys/comm.h"

#define MC_MAGIC 0x4d504344u /* "DCPM" */
#define MC_TAG   17          /* every message of the duplicated communicator */

enum mc_op {
	MC_GATHER = 1,
	MC_SCATTER,
	MC_BROADCAST,
	MC_ALLGATHER_UP,   /* allgather, step 1: gather to rank 0 */
	MC_ALLGATHER_DOWN, /* allgather, step 2: broadcast of all parts */
	MC_BARRIER_UP,
	MC_BARRIER_DOWN,
};

/* The header of one transfer. Ranks of one job share the byte order. */
typedef struct mc_hdr {
	uint32_t magic;
	uint32_t op; /* enum mc_op */
	int32_t root;
	int32_t status; /* DCP_OK, or the sender's failure (then len is 0) */
	uint64_t seq;   /* the comm's collective number */
	uint64_t len;   /* payload bytes */
} mc_hdr;

enum xf_state { XF_HEADER, XF_BODY, XF_DONE };

/* One transfer between this rank and a peer. */
typedef struct mc_xfer {
	int peer;
	int send; /* 1: this rank sends; 0: it receives */
	int state;
	mc_hdr hdr;          /* send: what is sent; recv: what arrived */
	MPI_Request hreq;    /* header */
	unsigned char *data; /* send: borrowed from the run's keep; recv: malloc'd */
	uint64_t len;
	size_t npieces, ndone;
	MPI_Request *preq; /* npieces requests */
} mc_xfer;

/*
 * The transfers of one step of a collective, and the send buffers they read
 * (owned: freed with the run). Heap-allocated so that a run with unfinished
 * sends can outlive its collective on the orphan list.
 */
typedef struct mc_run {
	mc_xfer *x;
	size_t n;
	void *keep;
	struct mc_run *next; /* orphan list */
} mc_run;

typedef struct mc_comm {
	dcp_comm base; /* first: cast back from dcp_comm */
	MPI_Comm comm; /* the duplicate, owned */
	int rank, size;
	double timeout;           /* seconds without progress; 0: none */
	const char *timeout_from; /* where the timeout came from, for messages */
	int from_option;          /* 1: dcp_mpi_options.timeout_s set it */
	size_t piece;
	uint64_t seq; /* collectives begun */
	uint32_t cur_op;
	mc_run *orphans;
	char last_error[512];
} mc_comm;

/* ------------------------------------------------------------------------ */
/* Transport (mpi_transport.c)                                              */
/* ------------------------------------------------------------------------ */

/* Records what went wrong in the current collective ("OP #SEQ: ...") in
 * c->last_error. */
void dcp_mc_err(mc_comm *c, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;

/* A new run with room for n transfers (at least 1), or NULL if out of
 * memory. End it with dcp_mc_run_end. */
mc_run *dcp_mc_run_new(size_t n);
/* Adds a transfer with peer (send: 1 if this rank sends) to r, which must
 * have room for it. */
mc_xfer *dcp_mc_run_add(mc_run *r, int peer, int send);
/* Posts a send: the header (op, root, status; the comm's sequence number),
 * then, if status is DCP_OK, every piece of len bytes of data, which the run
 * must own (or keep alive) until the run ends. */
int dcp_mc_post_send(mc_comm *c, mc_xfer *x, uint32_t op, int root, int status, unsigned char *data,
                     uint64_t len);
/* Posts the receive of a header; the pieces are received when it arrives. */
int dcp_mc_post_recv(mc_comm *c, mc_xfer *x);
/*
 * Polls every transfer of r until all are done, one fails, or no progress
 * was made for c->timeout seconds (DCP_ETIMEOUT). downstream: r only
 * receives from a root or relay, and allows it a grace (see mpi_transport.c).
 */
int dcp_mc_run_wait(mc_comm *c, mc_run *r, uint32_t op, int root, int downstream);
/*
 * Ends a run (r may be NULL). After a failure its receives are cancelled. If
 * any request is still unfinished, the run becomes an orphan of c, else it is
 * freed. Received buffers still in the run are freed with it (a caller that
 * keeps one sets its x->data to NULL first).
 */
void dcp_mc_run_end(mc_comm *c, mc_run *r);
/* Frees the orphans of c whose requests have all finished. */
void dcp_mc_orphans_reap(mc_comm *c);

/* ------------------------------------------------------------------------ */
/* Collectives (mpi_collectives.c): the dcp_comm slots of dcp/sys/comm.h    */
/* ------------------------------------------------------------------------ */
int dcp_mc_gather(dcp_comm *self, int root, const void *data, size_t len, dcp_buf *out);
int dcp_mc_scatter(dcp_comm *self, int root, const dcp_buf *in, dcp_buf *out);
int dcp_mc_broadcast(dcp_comm *self, int root, dcp_buf *buf);
int dcp_mc_allgather(dcp_comm *self, const void *data, size_t len, dcp_buf *out);
int dcp_mc_barrier(dcp_comm *self);

#endif /* DCP_MPI_INTERNAL_H */
