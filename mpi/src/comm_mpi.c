/*
 * The collectives of dcp/sys/comm.h over an MPI communicator.
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
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static const char *op_name(uint32_t op)
{
	switch (op) {
	case MC_GATHER:
		return "gather";
	case MC_SCATTER:
		return "scatter";
	case MC_BROADCAST:
		return "broadcast";
	case MC_ALLGATHER_UP:
	case MC_ALLGATHER_DOWN:
		return "allgather";
	case MC_BARRIER_UP:
	case MC_BARRIER_DOWN:
		return "barrier";
	default:
		return "unknown collective";
	}
}

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

static void mc_err(mc_comm *c, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;

/* Records what went wrong in the current collective ("OP #SEQ: ..."). */
static void mc_err(mc_comm *c, const char *fmt, ...)
{
	int n = snprintf(c->last_error, sizeof(c->last_error), "%s #%llu: ", op_name(c->cur_op),
	                 (unsigned long long)c->seq);
	if (n < 0 || (size_t)n >= sizeof(c->last_error))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->last_error + n, sizeof(c->last_error) - (size_t)n, fmt, ap);
	va_end(ap);
}

static void mc_mpi_err(mc_comm *c, int mrc, const char *what, int peer)
{
	char s[MPI_MAX_ERROR_STRING];
	int len = 0;
	if (MPI_Error_string(mrc, s, &len) != MPI_SUCCESS)
		snprintf(s, sizeof(s), "MPI error %d", mrc);
	mc_err(c, "%s (peer rank %d) failed: %s", what, peer, s);
}

static double mc_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Runs: posting, polling, abandoning                                       */
/* ------------------------------------------------------------------------ */

static mc_run *run_new(size_t n)
{
	mc_run *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->x = calloc(n > 0 ? n : 1, sizeof(*r->x));
	if (r->x == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

static void run_free(mc_run *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		if (!r->x[i].send)
			free(r->x[i].data);
		free(r->x[i].preq);
	}
	free(r->x);
	free(r->keep);
	free(r);
}

static mc_xfer *run_add(mc_run *r, int peer, int send)
{
	mc_xfer *x = &r->x[r->n++];
	x->peer = peer;
	x->send = send;
	x->state = XF_HEADER;
	x->hreq = MPI_REQUEST_NULL;
	return x;
}

static size_t pieces_of(const mc_comm *c, uint64_t len)
{
	return len == 0 ? 0 : (size_t)((len + c->piece - 1) / c->piece);
}

static int piece_count(const mc_comm *c, uint64_t len, size_t i)
{
	uint64_t left = len - (uint64_t)i * c->piece;
	return (int)(left < c->piece ? left : c->piece);
}

/* Allocates and nulls x->preq for x->npieces requests. */
static int alloc_pieces(mc_xfer *x)
{
	if (x->npieces == 0)
		return DCP_OK;
	x->preq = malloc(x->npieces * sizeof(*x->preq));
	if (x->preq == NULL)
		return DCP_ENOMEM;
	for (size_t i = 0; i < x->npieces; i++)
		x->preq[i] = MPI_REQUEST_NULL;
	return DCP_OK;
}

/* Posts a send: the header, then every piece of data (owned by the run). */
static int post_send(mc_comm *c, mc_xfer *x, uint32_t op, int root, int status, unsigned char *data,
                     uint64_t len)
{
	x->hdr.magic = MC_MAGIC;
	x->hdr.op = op;
	x->hdr.root = root;
	x->hdr.status = status;
	x->hdr.seq = c->seq;
	x->hdr.len = status == DCP_OK ? len : 0;
	x->data = data;
	x->len = x->hdr.len;
	x->npieces = pieces_of(c, x->len);
	if (alloc_pieces(x) != DCP_OK) {
		mc_err(c, "out of memory for %zu message pieces to rank %d", x->npieces, x->peer);
		return DCP_ENOMEM;
	}
	int mrc = MPI_Isend(&x->hdr, (int)sizeof(x->hdr), MPI_BYTE, x->peer, MC_TAG, c->comm, &x->hreq);
	if (mrc != MPI_SUCCESS) {
		mc_mpi_err(c, mrc, "MPI_Isend of a header", x->peer);
		return DCP_ECOMM;
	}
	for (size_t i = 0; i < x->npieces; i++) {
		mrc = MPI_Isend(x->data + i * c->piece, piece_count(c, x->len, i), MPI_BYTE, x->peer, MC_TAG,
		                c->comm, &x->preq[i]);
		if (mrc != MPI_SUCCESS) {
			mc_mpi_err(c, mrc, "MPI_Isend of a message piece", x->peer);
			return DCP_ECOMM;
		}
	}
	x->state = XF_BODY;
	return DCP_OK;
}

static int post_recv(mc_comm *c, mc_xfer *x)
{
	int mrc = MPI_Irecv(&x->hdr, (int)sizeof(x->hdr), MPI_BYTE, x->peer, MC_TAG, c->comm, &x->hreq);
	if (mrc != MPI_SUCCESS) {
		mc_mpi_err(c, mrc, "MPI_Irecv of a header", x->peer);
		return DCP_ECOMM;
	}
	return DCP_OK;
}

/* A header arrived: checks it against the collective this rank is in, then
 * posts the receives of the pieces. */
static int on_header(mc_comm *c, mc_xfer *x, uint32_t op, int root, const MPI_Status *st)
{
	int count = 0;
	MPI_Get_count(st, MPI_BYTE, &count);
	if (count != (int)sizeof(x->hdr) || x->hdr.magic != MC_MAGIC) {
		mc_err(c, "rank %d sent a malformed header (%d bytes): the ranks are out of step", x->peer,
		       count);
		return DCP_ECOMM;
	}
	if (x->hdr.op != op || x->hdr.root != root || x->hdr.seq != c->seq) {
		mc_err(c,
		       "rank %d is in %s #%llu (root %d) while this rank is in %s #%llu (root %d): the ranks "
		       "called different collectives",
		       x->peer, op_name(x->hdr.op), (unsigned long long)x->hdr.seq, (int)x->hdr.root,
		       op_name(op), (unsigned long long)c->seq, root);
		return DCP_ECOMM;
	}
	if (x->hdr.status != DCP_OK && x->hdr.len != 0) {
		mc_err(c, "rank %d sent a malformed header (a failure with a payload)", x->peer);
		return DCP_ECOMM;
	}
	x->len = x->hdr.len;
	if (x->len > (uint64_t)SIZE_MAX) {
		mc_err(c, "rank %d sends %llu bytes, more than this process can address", x->peer,
		       (unsigned long long)x->len);
		return DCP_ENOMEM;
	}
	x->npieces = pieces_of(c, x->len);
	if (x->len > 0) {
		x->data = malloc((size_t)x->len);
		if (x->data == NULL || alloc_pieces(x) != DCP_OK) {
			mc_err(c, "out of memory for a message of %llu bytes from rank %d",
			       (unsigned long long)x->len, x->peer);
			return DCP_ENOMEM;
		}
	}
	for (size_t i = 0; i < x->npieces; i++) {
		int mrc = MPI_Irecv(x->data + i * c->piece, piece_count(c, x->len, i), MPI_BYTE, x->peer,
		                    MC_TAG, c->comm, &x->preq[i]);
		if (mrc != MPI_SUCCESS) {
			mc_mpi_err(c, mrc, "MPI_Irecv of a message piece", x->peer);
			return DCP_ECOMM;
		}
	}
	x->state = XF_BODY;
	return DCP_OK;
}

/*
 * Tests x's outstanding requests once. *progress is set when one completed.
 * Returns DCP_OK (x->state says whether x is done) or an error.
 */
static int xfer_test(mc_comm *c, mc_xfer *x, uint32_t op, int root, int *progress)
{
	MPI_Status st;
	int flag = 0, mrc;

	if (x->state == XF_DONE)
		return DCP_OK;
	if (x->hreq != MPI_REQUEST_NULL) {
		mrc = MPI_Test(&x->hreq, &flag, &st);
		if (mrc != MPI_SUCCESS) {
			mc_mpi_err(c, mrc, x->send ? "sending a header" : "receiving a header", x->peer);
			return DCP_ECOMM;
		}
		if (!flag)
			return DCP_OK; /* pieces were posted after the header (recv) or are tested below */
		*progress = 1;
		if (!x->send) {
			int rc = on_header(c, x, op, root, &st);
			if (rc != DCP_OK)
				return rc;
		}
	}
	while (x->ndone < x->npieces) {
		mrc = MPI_Test(&x->preq[x->ndone], &flag, MPI_STATUS_IGNORE);
		if (mrc != MPI_SUCCESS) {
			mc_mpi_err(c, mrc, x->send ? "sending a message piece" : "receiving a message piece",
			           x->peer);
			return DCP_ECOMM;
		}
		if (!flag)
			return DCP_OK;
		*progress = 1;
		x->ndone++;
	}
	x->state = XF_DONE;
	return DCP_OK;
}

/* Appends "3, 5, 9" (the peers of unfinished transfers) to buf. */
static void waiting_for(const mc_run *r, char *buf, size_t len)
{
	size_t used = 0, shown = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < r->n && used + 16 < len; i++) {
		if (r->x[i].state == XF_DONE)
			continue;
		if (shown == 16) {
			snprintf(buf + used, len - used, ", ...");
			return;
		}
		int k = snprintf(buf + used, len - used, "%s%d", shown > 0 ? ", " : "", r->x[i].peer);
		if (k < 0)
			return;
		used += (size_t)k;
		shown++;
	}
}

/*
 * Polls every transfer of r until all are done, one fails, or no progress
 * was made for c->timeout seconds. Sleeps (1 us doubling to at most 1 ms)
 * only while nothing moves.
 *
 * downstream: r only receives from a root or relay (scatter, broadcast),
 * which times out on the same lost peer as this rank but starts waiting a
 * little earlier (gather then scatter). Such a wait allows a grace of a
 * tenth of the timeout (at least 1 s) more, so that the root's failure
 * notice, which names what it saw, arrives before this rank's own timeout.
 */
static int run_wait(mc_comm *c, mc_run *r, uint32_t op, int root, int downstream)
{
	double limit = c->timeout;
	if (downstream && limit > 0)
		limit += limit / 10 > 1.0 ? limit / 10 : 1.0;
	double last = mc_now();
	long pause_ns = 0;
	unsigned idle = 0;

	for (;;) {
		int progress = 0, pending = 0;
		for (size_t i = 0; i < r->n; i++) {
			int rc = xfer_test(c, &r->x[i], op, root, &progress);
			if (rc != DCP_OK)
				return rc;
			pending += r->x[i].state != XF_DONE;
		}
		if (pending == 0)
			return DCP_OK;
		if (progress) {
			last = mc_now();
			pause_ns = 0;
			idle = 0;
			continue;
		}
		if (limit > 0 && mc_now() - last >= limit) {
			char peers[200];
			waiting_for(r, peers, sizeof(peers));
			mc_err(c,
			       "no progress for %g s waiting for rank(s) %s (the timeout, %g s, from %s%s)",
			       limit, peers, c->timeout, c->timeout_from,
			       c->from_option ? "" : "; set DCP_MPI_TIMEOUT=SECONDS to change it");
			return DCP_ETIMEOUT;
		}
		/* A few quick passes first: a peer that is about to answer
		 * costs no sleep. */
		if (++idle < 64)
			continue;
		pause_ns = pause_ns == 0 ? 1000 : (pause_ns * 2 > 1000000 ? 1000000 : pause_ns * 2);
		struct timespec ts = {0, pause_ns};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

static int req_pending(MPI_Request *req)
{
	int flag = 1;
	if (*req == MPI_REQUEST_NULL)
		return 0;
	if (MPI_Test(req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS)
		return 1; /* unknown: keep it */
	return !flag;
}

/* 1 if some request of r has not finished: MPI may still read a send buffer,
 * or write a receive buffer, of the run. */
static int run_pending(mc_run *r)
{
	int pending = 0;
	for (size_t i = 0; i < r->n; i++) {
		mc_xfer *x = &r->x[i];
		pending |= req_pending(&x->hreq);
		for (size_t k = 0; k < x->npieces && x->preq != NULL; k++)
			pending |= req_pending(&x->preq[k]);
	}
	return pending;
}

/* Frees the orphans whose requests have all finished. */
static void orphans_reap(mc_comm *c)
{
	mc_run **p = &c->orphans;
	while (*p != NULL) {
		mc_run *r = *p;
		if (run_pending(r)) {
			p = &r->next;
		} else {
			*p = r->next;
			run_free(r);
		}
	}
}

/*
 * Asks MPI to cancel a receive and polls it for a moment. A receive that MPI
 * had not matched yet is cancelled at once; one already matched to a message
 * still arriving (e.g. from a peer that died half-way) may never finish: it
 * is left pending, and run_end keeps its buffer (an orphan) instead of
 * waiting for it.
 */
static void cancel_recv(MPI_Request *req)
{
	if (*req == MPI_REQUEST_NULL)
		return;
	MPI_Cancel(req);
	double until = mc_now() + 0.1;
	int flag = 0;
	while (MPI_Test(req, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && !flag && mc_now() < until)
		;
}

/*
 * Ends a run. After a failure its receives are cancelled. If any request is
 * still unfinished, the run becomes an orphan (its buffers stay valid for
 * MPI), else it is freed. Received buffers still in the run are freed with it
 * (a caller that keeps one sets its x->data to NULL first).
 */
static void run_end(mc_comm *c, mc_run *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		mc_xfer *x = &r->x[i];
		if (x->send || x->state == XF_DONE)
			continue;
		cancel_recv(&x->hreq);
		for (size_t k = 0; k < x->npieces && x->preq != NULL; k++)
			cancel_recv(&x->preq[k]);
	}
	if (run_pending(r)) {
		r->next = c->orphans;
		c->orphans = r;
	} else {
		run_free(r);
	}
}

/* ------------------------------------------------------------------------ */
/* Building blocks                                                          */
/* ------------------------------------------------------------------------ */

/* A malloc'd copy (NULL for len 0); *ok = 0 if out of memory. */
static unsigned char *dup_bytes(const void *src, size_t len, int *ok)
{
	*ok = 1;
	if (len == 0)
		return NULL;
	unsigned char *p = malloc(len);
	if (p == NULL) {
		*ok = 0;
		return NULL;
	}
	memcpy(p, src, len);
	return p;
}

static void clear_bufs(dcp_buf *b, int n)
{
	for (int i = 0; i < n; i++) {
		b[i].data = NULL;
		b[i].len = 0;
	}
}

/* The status a receiver reports for a peer's failure status. */
static int peer_status(int status)
{
	return status == DCP_ETIMEOUT ? DCP_ETIMEOUT : DCP_ECOMM;
}

/*
 * Gathers to root. Every non-root sends `status` and, if DCP_OK, len bytes of
 * data (copied first); root receives into got[0..size-1] (got[root] is left
 * alone) and returns DCP_OK only if every transfer succeeded with status
 * DCP_OK; the first failing peer is named in last_error.
 */
static int step_gather(mc_comm *c, uint32_t op, int root, int status, const void *data, size_t len,
                       dcp_buf *got)
{
	int rc = DCP_OK;
	mc_run *r = run_new(c->rank == root ? (size_t)c->size : 1);
	if (r == NULL) {
		mc_err(c, "out of memory");
		return DCP_ENOMEM;
	}
	if (c->rank != root) {
		int ok = 1;
		if (status == DCP_OK) {
			r->keep = dup_bytes(data, len, &ok);
			if (!ok) {
				status = DCP_ENOMEM;
				mc_err(c, "out of memory copying %zu bytes to send", len);
			}
		}
		rc = post_send(c, run_add(r, root, 1), op, root, status, r->keep, len);
		if (rc == DCP_OK)
			rc = run_wait(c, r, op, root, 0);
		if (rc == DCP_OK)
			rc = status;
		run_end(c, r);
		return rc;
	}
	for (int p = 0; p < c->size && rc == DCP_OK; p++)
		if (p != root)
			rc = post_recv(c, run_add(r, p, 0));
	if (rc == DCP_OK)
		rc = run_wait(c, r, op, root, 0);
	for (size_t i = 0; i < r->n && rc == DCP_OK; i++) {
		if (r->x[i].hdr.status != DCP_OK) {
			mc_err(c, "rank %d reported a failure in this collective (%s)", r->x[i].peer,
			       dcp_strerror(r->x[i].hdr.status));
			rc = peer_status(r->x[i].hdr.status);
		}
	}
	if (rc == DCP_OK) {
		for (size_t i = 0; i < r->n; i++) {
			got[r->x[i].peer].data = r->x[i].data;
			got[r->x[i].peer].len = (size_t)r->x[i].len;
			r->x[i].data = NULL; /* taken */
		}
	}
	run_end(c, r);
	return rc;
}

/*
 * Broadcasts from root along a binomial tree. Root sends `status` and, if
 * DCP_OK, *buf (copied first; the root's *buf is left alone); the other ranks receive into *buf (malloc'd,
 * {NULL, 0} on failure) and relay it to their subtree. A failure is relayed too: every rank returns the first
 * failure on its path from the root, or its own.
 */
static int step_bcast(mc_comm *c, uint32_t op, int root, int status, dcp_buf *buf)
{
	int n = c->size, vr = (c->rank - root + n) % n, mask = 1;
	unsigned char *payload = NULL;
	uint64_t len = 0;

	if (vr != 0) {
		/* The parent differs from vr in vr's lowest set bit. */
		while (!(vr & mask))
			mask <<= 1;
		int parent = (vr - mask + root) % n;
		buf->data = NULL;
		buf->len = 0;
		mc_run *r = run_new(1);
		if (r == NULL) {
			mc_err(c, "out of memory");
			status = DCP_ENOMEM;
		} else {
			status = post_recv(c, run_add(r, parent, 0));
			if (status == DCP_OK)
				status = run_wait(c, r, op, root, 1);
			if (status == DCP_OK && r->x[0].hdr.status != DCP_OK) {
				mc_err(c, "rank %d (the root or a relay) reported a failure (%s)", parent,
				       dcp_strerror(r->x[0].hdr.status));
				status = peer_status(r->x[0].hdr.status);
			}
			if (status == DCP_OK) {
				payload = r->x[0].data;
				len = r->x[0].len;
				r->x[0].data = NULL; /* taken */
			}
			run_end(c, r);
		}
	} else {
		while (mask < n)
			mask <<= 1;
		if (status == DCP_OK) {
			int ok = 1;
			len = buf->len;
			payload = dup_bytes(buf->data, buf->len, &ok);
			if (!ok) {
				mc_err(c, "out of memory copying %zu bytes to send", buf->len);
				status = DCP_ENOMEM;
			}
		}
	}

	/* The children are vr + m for every m below vr's lowest set bit. While
	 * sending, the run owns the payload. */
	int nchild = 0;
	for (int m = mask >> 1; m > 0; m >>= 1)
		nchild += vr + m < n;
	int src = DCP_OK;
	if (nchild > 0) {
		mc_run *r = run_new((size_t)nchild);
		if (r == NULL) {
			mc_err(c, "out of memory");
			free(payload);
			payload = NULL;
			src = DCP_ENOMEM;
		} else {
			r->keep = payload;
			int sst = status == DCP_OK ? DCP_OK : peer_status(status);
			for (int m = mask >> 1; m > 0 && src == DCP_OK; m >>= 1)
				if (vr + m < n)
					src = post_send(c, run_add(r, (vr + m + root) % n, 1), op, root, sst,
					                payload, len);
			if (src == DCP_OK)
				src = run_wait(c, r, op, root, 0);
			if (src == DCP_OK && vr != 0)
				r->keep = NULL; /* the sends are done: the payload goes to the caller */
			else
				payload = NULL; /* freed with the run, or kept by it as an orphan */
			run_end(c, r);
		}
	}
	if (status == DCP_OK)
		status = src;
	if (vr == 0 || status != DCP_OK) {
		free(payload); /* root: a copy; others: not delivered */
		return status;
	}
	buf->data = payload;
	buf->len = (size_t)len;
	return DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* The comm slots                                                           */
/* ------------------------------------------------------------------------ */

/* Begins a collective: a new sequence number, and a chance to free orphans. */
static void begin(mc_comm *c, uint32_t op)
{
	c->seq++;
	c->cur_op = op;
	if (c->orphans != NULL)
		orphans_reap(c);
}

static int root_ok(mc_comm *c, int root)
{
	if (root >= 0 && root < c->size)
		return 1;
	mc_err(c, "root %d is not a rank of this comm (0..%d)", root, c->size - 1);
	return 0;
}

static int mc_rank(const dcp_comm *self)
{
	return ((const mc_comm *)self)->rank;
}

static int mc_size(const dcp_comm *self)
{
	return ((const mc_comm *)self)->size;
}

static int mc_gather(dcp_comm *self, int root, const void *data, size_t len, dcp_buf *out)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_GATHER);
	if (!root_ok(c, root))
		return DCP_EINVAL;
	int is_root = c->rank == root;
	int bad = (data == NULL && len > 0) || (is_root && out == NULL);
	if (bad)
		mc_err(c, "invalid arguments (data NULL with len %zu, or no output on the root)", len);
	if (!is_root)
		return step_gather(c, MC_GATHER, root, bad ? DCP_EINVAL : DCP_OK, data, len, NULL);

	dcp_buf *got = out;
	if (bad) {
		/* Still receive every message, so that no rank waits; discard. */
		got = calloc((size_t)c->size, sizeof(*got));
		if (got == NULL)
			return DCP_EINVAL;
	}
	clear_bufs(got, c->size);
	int rc = step_gather(c, MC_GATHER, root, DCP_OK, NULL, 0, got);
	if (rc == DCP_OK && !bad) {
		int ok = 1;
		got[root].data = dup_bytes(data, len, &ok);
		got[root].len = ok ? len : 0;
		if (!ok) {
			mc_err(c, "out of memory copying the root's own %zu bytes", len);
			rc = DCP_ENOMEM;
		}
	}
	if (rc != DCP_OK || bad)
		dcp_bufs_release(got, (size_t)c->size);
	if (bad) {
		free(got);
		return DCP_EINVAL;
	}
	return rc;
}

static int mc_scatter(dcp_comm *self, int root, const dcp_buf *in, dcp_buf *out)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_SCATTER);
	if (!root_ok(c, root))
		return DCP_EINVAL;
	int is_root = c->rank == root;
	int bad = out == NULL || (is_root && in == NULL);
	if (is_root && in != NULL)
		for (int r = 0; r < c->size; r++)
			bad |= in[r].data == NULL && in[r].len > 0;
	if (bad)
		mc_err(c, "invalid arguments (no output, or no or invalid inputs on the root)");
	if (out != NULL)
		clear_bufs(out, 1);

	if (!is_root) {
		mc_run *r = run_new(1);
		if (r == NULL) {
			mc_err(c, "out of memory");
			return DCP_ENOMEM;
		}
		int rc = post_recv(c, run_add(r, root, 0));
		if (rc == DCP_OK)
			rc = run_wait(c, r, MC_SCATTER, root, 1);
		if (rc == DCP_OK && r->x[0].hdr.status != DCP_OK) {
			mc_err(c, "the root, rank %d, reported a failure (%s)", root,
			       dcp_strerror(r->x[0].hdr.status));
			rc = peer_status(r->x[0].hdr.status);
		}
		if (rc == DCP_OK && !bad) {
			out->data = r->x[0].data;
			out->len = (size_t)r->x[0].len;
			r->x[0].data = NULL;
		}
		run_end(c, r);
		return bad ? DCP_EINVAL : rc;
	}

	/* Root: one copy of all parts, sent from there. */
	mc_run *r = run_new((size_t)c->size);
	if (r == NULL) {
		mc_err(c, "out of memory");
		return DCP_ENOMEM;
	}
	int status = bad ? DCP_EINVAL : DCP_OK, rc = DCP_OK;
	size_t total = 0;
	if (!bad) {
		for (int p = 0; p < c->size; p++)
			if (p != root)
				total += in[p].len;
		r->keep = total > 0 ? malloc(total) : NULL;
		if (total > 0 && r->keep == NULL) {
			mc_err(c, "out of memory copying %zu bytes to send", total);
			status = DCP_ENOMEM;
		}
	}
	size_t off = 0;
	for (int p = 0; p < c->size && rc == DCP_OK; p++) {
		if (p == root)
			continue;
		unsigned char *part = NULL;
		size_t plen = 0;
		if (status == DCP_OK && in[p].len > 0) {
			part = (unsigned char *)r->keep + off;
			memcpy(part, in[p].data, in[p].len);
			plen = in[p].len;
			off += plen;
		}
		rc = post_send(c, run_add(r, p, 1), MC_SCATTER, root, status, part, plen);
	}
	if (rc == DCP_OK)
		rc = run_wait(c, r, MC_SCATTER, root, 0);
	run_end(c, r);
	if (rc == DCP_OK)
		rc = status;
	if (rc == DCP_OK) {
		int ok = 1;
		out->data = dup_bytes(in[root].data, in[root].len, &ok);
		out->len = ok ? in[root].len : 0;
		if (!ok) {
			mc_err(c, "out of memory copying the root's own %zu bytes", in[root].len);
			rc = DCP_ENOMEM;
		}
	}
	return rc;
}

static int mc_broadcast(dcp_comm *self, int root, dcp_buf *buf)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_BROADCAST);
	if (!root_ok(c, root))
		return DCP_EINVAL;
	int is_root = c->rank == root;
	int bad = buf == NULL || (is_root && buf->data == NULL && buf->len > 0);
	if (bad)
		mc_err(c, "invalid arguments (no buffer, or NULL data with a length on the root)");
	if (is_root) {
		dcp_buf tmp = {NULL, 0};
		int rc = step_bcast(c, MC_BROADCAST, root, bad ? DCP_EINVAL : DCP_OK, bad ? &tmp : buf);
		return bad ? DCP_EINVAL : rc;
	}
	dcp_buf got = {NULL, 0};
	int rc = step_bcast(c, MC_BROADCAST, root, DCP_OK, &got);
	if (bad) {
		free(got.data);
		return DCP_EINVAL;
	}
	*buf = got;
	return rc;
}

/* allgather: a gather of every part to rank 0, then a broadcast of
 * [size x uint64 lengths][parts...]. */
static int mc_allgather(dcp_comm *self, const void *data, size_t len, dcp_buf *out)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_ALLGATHER_UP);
	int n = c->size;
	int bad = out == NULL || (data == NULL && len > 0);
	if (bad)
		mc_err(c, "invalid arguments (no output, or data NULL with len %zu)", len);
	if (out != NULL)
		clear_bufs(out, n);

	int status = bad ? DCP_EINVAL : DCP_OK;
	dcp_buf packed = {NULL, 0};
	if (c->rank == 0) {
		dcp_buf *got = calloc((size_t)n, sizeof(*got));
		int rc = got == NULL ? DCP_ENOMEM : step_gather(c, MC_ALLGATHER_UP, 0, DCP_OK, NULL, 0, got);
		if (got == NULL)
			mc_err(c, "out of memory");
		if (rc == DCP_OK && !bad) {
			got[0].data = (void *)data; /* borrowed for packing only */
			got[0].len = len;
			size_t total = (size_t)n * sizeof(uint64_t);
			for (int r = 0; r < n; r++)
				total += got[r].len;
			packed.data = malloc(total);
			if (packed.data == NULL) {
				mc_err(c, "out of memory packing %zu bytes", total);
				rc = DCP_ENOMEM;
			} else {
				unsigned char *p = packed.data;
				for (int r = 0; r < n; r++) {
					uint64_t l = got[r].len;
					memcpy(p + (size_t)r * sizeof(l), &l, sizeof(l));
				}
				p += (size_t)n * sizeof(uint64_t);
				for (int r = 0; r < n; r++) {
					if (got[r].len > 0)
						memcpy(p, got[r].data, got[r].len);
					p += got[r].len;
				}
				packed.len = total;
			}
			got[0].data = NULL;
			got[0].len = 0;
		}
		if (got != NULL)
			dcp_bufs_release(got, (size_t)n);
		free(got);
		if (status == DCP_OK)
			status = rc;
	} else {
		int rc = step_gather(c, MC_ALLGATHER_UP, 0, status, data, len, NULL);
		if (status == DCP_OK)
			status = rc;
	}

	/* Step 2: rank 0 sends its status (a failure of step 1 reaches every
	 * rank now, not at its timeout) and the packed parts. */
	c->cur_op = MC_ALLGATHER_DOWN;
	int down;
	if (c->rank == 0)
		down = step_bcast(c, MC_ALLGATHER_DOWN, 0, status == DCP_EINVAL ? DCP_ECOMM : status,
		                  &packed);
	else
		down = step_bcast(c, MC_ALLGATHER_DOWN, 0, DCP_OK, &packed);
	if (bad) {
		free(packed.data);
		return DCP_EINVAL;
	}
	if (status == DCP_OK)
		status = down;
	if (status != DCP_OK) {
		free(packed.data);
		return status;
	}

	/* Unpack into one malloc'd buffer per rank. */
	const unsigned char *p = packed.data;
	size_t head = (size_t)n * sizeof(uint64_t), off = head;
	int rc = DCP_OK;
	if (packed.len < head) {
		mc_err(c, "rank 0 sent %zu bytes, too short for %d lengths", packed.len, n);
		rc = DCP_ECOMM;
	}
	for (int r = 0; r < n && rc == DCP_OK; r++) {
		uint64_t l;
		memcpy(&l, p + (size_t)r * sizeof(l), sizeof(l));
		if (l > packed.len - off) {
			mc_err(c, "rank 0 sent a malformed allgather message (part %d overruns it)", r);
			rc = DCP_ECOMM;
			break;
		}
		int ok = 1;
		out[r].data = dup_bytes(p + off, (size_t)l, &ok);
		out[r].len = ok ? (size_t)l : 0;
		if (!ok) {
			mc_err(c, "out of memory for the %llu bytes of rank %d", (unsigned long long)l, r);
			rc = DCP_ENOMEM;
		}
		off += (size_t)l;
	}
	if (rc != DCP_OK)
		dcp_bufs_release(out, (size_t)n);
	free(packed.data);
	return rc;
}

static int mc_barrier(dcp_comm *self)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_BARRIER_UP);
	int status;
	if (c->rank == 0) {
		dcp_buf *got = calloc((size_t)c->size, sizeof(*got));
		if (got == NULL) {
			mc_err(c, "out of memory");
			status = DCP_ENOMEM;
		} else {
			status = step_gather(c, MC_BARRIER_UP, 0, DCP_OK, NULL, 0, got);
			dcp_bufs_release(got, (size_t)c->size);
			free(got);
		}
	} else {
		status = step_gather(c, MC_BARRIER_UP, 0, DCP_OK, NULL, 0, NULL);
	}
	c->cur_op = MC_BARRIER_DOWN;
	dcp_buf none = {NULL, 0};
	int down = step_bcast(c, MC_BARRIER_DOWN, 0, c->rank == 0 ? status : DCP_OK, &none);
	free(none.data);
	return status != DCP_OK ? status : down;
}

static void mc_destroy(dcp_comm *self)
{
	mc_comm *c = (mc_comm *)self;
	int finalized = 0;
	MPI_Finalized(&finalized);
	if (!finalized) {
		orphans_reap(c);
		MPI_Comm_free(&c->comm);
	}
	/* Orphans left now have sends that a lost peer never took: their
	 * buffers are leaked on purpose (see the top of this file). */
	free(c);
}

/* ------------------------------------------------------------------------ */
/* Construction                                                             */
/* ------------------------------------------------------------------------ */

static int msg_set(char *msg, size_t msglen, int code, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 4, 5)))
#endif
        ;

static int msg_set(char *msg, size_t msglen, int code, const char *fmt, ...)
{
	if (msg != NULL && msglen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Reads $DCP_MPI_TIMEOUT: 1 and *out if set and valid, 0 if unset, -1 if
 * invalid. */
static int timeout_from_env(double *out)
{
	const char *s = getenv("DCP_MPI_TIMEOUT");
	if (s == NULL || *s == '\0')
		return 0;
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	while (end != NULL && (*end == ' ' || *end == '\t'))
		end++;
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0)
		return -1;
	*out = v;
	return 1;
}

int dcp_comm_mpi_create(MPI_Comm comm, const dcp_mpi_options *opts, dcp_comm **out, char *msg, size_t msglen)
{
	dcp_mpi_options defaults = DCP_MPI_OPTIONS_INIT;
	int inited = 0, finalized = 0, inter = 0;

	if (msg != NULL && msglen > 0)
		msg[0] = '\0';
	if (out == NULL)
		return msg_set(msg, msglen, DCP_EINVAL, "dcp_comm_mpi_create: out is NULL");
	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (opts->version != DCP_MPI_OPTIONS_VERSION)
		return msg_set(
		        msg, msglen, DCP_EINVAL,
		        "dcp_mpi_options.version is %u, this libdcp_mpi knows %u: initialise the options "
		        "with DCP_MPI_OPTIONS_INIT",
		        opts->version, DCP_MPI_OPTIONS_VERSION);
	if (opts->piece_bytes > DCP_MPI_DEFAULT_PIECE_BYTES)
		return msg_set(msg, msglen, DCP_EINVAL,
		               "dcp_mpi_options.piece_bytes is %zu, more than 2^30: MPI counts are ints",
		               opts->piece_bytes);
	if (isnan(opts->timeout_s) || isinf(opts->timeout_s))
		return msg_set(msg, msglen, DCP_EINVAL,
		               "dcp_mpi_options.timeout_s is not a number of seconds (0 for no timeout, "
		               "negative for $DCP_MPI_TIMEOUT)");
	if (MPI_Initialized(&inited) != MPI_SUCCESS || !inited || MPI_Finalized(&finalized) != MPI_SUCCESS ||
	    finalized)
		return msg_set(msg, msglen, DCP_EINVAL,
		               "MPI is not initialised (or already finalised): call MPI_Init before "
		               "dcp_comm_mpi_new");
	if (comm == MPI_COMM_NULL)
		return msg_set(msg, msglen, DCP_EINVAL, "the communicator is MPI_COMM_NULL");
	if (MPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS || inter)
		return msg_set(msg, msglen, DCP_EINVAL,
		               "the communicator is an intercommunicator; libdcp needs an intracommunicator");

	double timeout = opts->timeout_s;
	const char *from = "the option dcp_mpi_options.timeout_s";
	if (timeout < 0) {
		int e = timeout_from_env(&timeout);
		if (e < 0)
			return msg_set(msg, msglen, DCP_EINVAL,
			               "DCP_MPI_TIMEOUT='%s' is not a number of seconds >= 0 (0: no timeout)",
			               getenv("DCP_MPI_TIMEOUT"));
		from = e > 0 ? "DCP_MPI_TIMEOUT" : "the default";
		if (e == 0)
			timeout = DCP_MPI_DEFAULT_TIMEOUT;
	}

	mc_comm *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return msg_set(msg, msglen, DCP_ENOMEM, "out of memory");
	int mrc = MPI_Comm_dup(comm, &c->comm);
	if (mrc != MPI_SUCCESS) {
		free(c);
		char s[MPI_MAX_ERROR_STRING];
		int len = 0;
		if (MPI_Error_string(mrc, s, &len) != MPI_SUCCESS)
			snprintf(s, sizeof(s), "MPI error %d", mrc);
		return msg_set(msg, msglen, DCP_ECOMM, "MPI_Comm_dup failed: %s", s);
	}
	/* Failures of libdcp's messages come back as statuses, not aborts. */
	MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
	MPI_Comm_rank(c->comm, &c->rank);
	MPI_Comm_size(c->comm, &c->size);
	c->timeout = timeout;
	c->timeout_from = from;
	c->from_option = opts->timeout_s >= 0;
	c->piece = opts->piece_bytes > 0 ? opts->piece_bytes : DCP_MPI_DEFAULT_PIECE_BYTES;
	c->base.version = DCP_COMM_VERSION;
	c->base.rank = mc_rank;
	c->base.size = mc_size;
	c->base.gather = mc_gather;
	c->base.scatter = mc_scatter;
	c->base.broadcast = mc_broadcast;
	c->base.allgather = mc_allgather;
	c->base.barrier = mc_barrier;
	c->base.destroy = mc_destroy;
	*out = &c->base;
	return DCP_OK;
}

dcp_comm *dcp_comm_mpi_new(MPI_Comm comm, const dcp_mpi_options *opts)
{
	dcp_comm *out = NULL;
	dcp_comm_mpi_create(comm, opts, &out, NULL, 0);
	return out;
}

static const mc_comm *as_mpi(const dcp_comm *comm)
{
	if (comm == NULL || comm->destroy != mc_destroy)
		return NULL;
	return (const mc_comm *)comm;
}

double dcp_comm_mpi_timeout(const dcp_comm *comm)
{
	const mc_comm *c = as_mpi(comm);
	return c != NULL ? c->timeout : -1.0;
}

const char *dcp_comm_mpi_last_error(const dcp_comm *comm)
{
	const mc_comm *c = as_mpi(comm);
	return c != NULL ? c->last_error : "";
}

MPI_Comm dcp_comm_mpi_handle(const dcp_comm *comm)
{
	const mc_comm *c = as_mpi(comm);
	return c != NULL ? c->comm : MPI_COMM_NULL;
}
