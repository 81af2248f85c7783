/*
 * libdcp_mpi transport: one transfer from a rank to a peer is a header and
 * the payload in pieces, all posted non-blocking and polled with MPI_Test
 * until done, failed or timed out; the runs of a step that still have
 * unfinished requests after a failure are kept as orphans. See
 * mpi_internal.h for the design.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpi_internal.h"

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

/* Records what went wrong in the current collective ("OP #SEQ: ..."). */
void dcp_mc_err(mc_comm *c, const char *fmt, ...)
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
	dcp_mc_err(c, "%s (peer rank %d) failed: %s", what, peer, s);
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

mc_run *dcp_mc_run_new(size_t n)
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

mc_xfer *dcp_mc_run_add(mc_run *r, int peer, int send)
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
int dcp_mc_post_send(mc_comm *c, mc_xfer *x, uint32_t op, int root, int status, unsigned char *data,
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
		dcp_mc_err(c, "out of memory for %zu message pieces to rank %d", x->npieces, x->peer);
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

int dcp_mc_post_recv(mc_comm *c, mc_xfer *x)
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
		dcp_mc_err(c, "rank %d sent a malformed header (%d bytes): the ranks are out of step",
		           x->peer, count);
		return DCP_ECOMM;
	}
	if (x->hdr.op != op || x->hdr.root != root || x->hdr.seq != c->seq) {
		dcp_mc_err(c,
		           "rank %d is in %s #%llu (root %d) while this rank is in %s #%llu (root %d): the "
		           "ranks called different collectives",
		           x->peer, op_name(x->hdr.op), (unsigned long long)x->hdr.seq, (int)x->hdr.root,
		           op_name(op), (unsigned long long)c->seq, root);
		return DCP_ECOMM;
	}
	if (x->hdr.status != DCP_OK && x->hdr.len != 0) {
		dcp_mc_err(c, "rank %d sent a malformed header (a failure with a payload)", x->peer);
		return DCP_ECOMM;
	}
	x->len = x->hdr.len;
	if (x->len > (uint64_t)SIZE_MAX) {
		dcp_mc_err(c, "rank %d sends %llu bytes, more than this process can address", x->peer,
		           (unsigned long long)x->len);
		return DCP_ENOMEM;
	}
	x->npieces = pieces_of(c, x->len);
	if (x->len > 0) {
		x->data = malloc((size_t)x->len);
		if (x->data == NULL || alloc_pieces(x) != DCP_OK) {
			dcp_mc_err(c, "out of memory for a message of %llu bytes from rank %d",
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
int dcp_mc_run_wait(mc_comm *c, mc_run *r, uint32_t op, int root, int downstream)
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
			dcp_mc_err(
			        c,
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
void dcp_mc_orphans_reap(mc_comm *c)
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
 * is left pending, and dcp_mc_run_end keeps its buffer (an orphan) instead of
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
void dcp_mc_run_end(mc_comm *c, mc_run *r)
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
