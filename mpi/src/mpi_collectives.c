/*
 * libdcp_mpi collectives: gather and scatter straight between the root and
 * each rank, broadcast along a binomial tree, allgather as a gather to rank 0
 * and a broadcast of all parts, barrier as an empty gather and broadcast,
 * all built on the transfers of mpi_transport.c. See mpi_internal.h for the
 * design and the outcomes per rank.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_internal.h"

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
	mc_run *r = dcp_mc_run_new(c->rank == root ? (size_t)c->size : 1);
	if (r == NULL) {
		dcp_mc_err(c, "out of memory");
		return DCP_ENOMEM;
	}
	if (c->rank != root) {
		int ok = 1;
		if (status == DCP_OK) {
			r->keep = dup_bytes(data, len, &ok);
			if (!ok) {
				status = DCP_ENOMEM;
				dcp_mc_err(c, "out of memory copying %zu bytes to send", len);
			}
		}
		rc = dcp_mc_post_send(c, dcp_mc_run_add(r, root, 1), op, root, status, r->keep, len);
		if (rc == DCP_OK)
			rc = dcp_mc_run_wait(c, r, op, root, 0);
		if (rc == DCP_OK)
			rc = status;
		dcp_mc_run_end(c, r);
		return rc;
	}
	for (int p = 0; p < c->size && rc == DCP_OK; p++)
		if (p != root)
			rc = dcp_mc_post_recv(c, dcp_mc_run_add(r, p, 0));
	if (rc == DCP_OK)
		rc = dcp_mc_run_wait(c, r, op, root, 0);
	for (size_t i = 0; i < r->n && rc == DCP_OK; i++) {
		if (r->x[i].hdr.status != DCP_OK) {
			dcp_mc_err(c, "rank %d reported a failure in this collective (%s)", r->x[i].peer,
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
	dcp_mc_run_end(c, r);
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
		mc_run *r = dcp_mc_run_new(1);
		if (r == NULL) {
			dcp_mc_err(c, "out of memory");
			status = DCP_ENOMEM;
		} else {
			status = dcp_mc_post_recv(c, dcp_mc_run_add(r, parent, 0));
			if (status == DCP_OK)
				status = dcp_mc_run_wait(c, r, op, root, 1);
			if (status == DCP_OK && r->x[0].hdr.status != DCP_OK) {
				dcp_mc_err(c, "rank %d (the root or a relay) reported a failure (%s)", parent,
				           dcp_strerror(r->x[0].hdr.status));
				status = peer_status(r->x[0].hdr.status);
			}
			if (status == DCP_OK) {
				payload = r->x[0].data;
				len = r->x[0].len;
				r->x[0].data = NULL; /* taken */
			}
			dcp_mc_run_end(c, r);
		}
	} else {
		while (mask < n)
			mask <<= 1;
		if (status == DCP_OK) {
			int ok = 1;
			len = buf->len;
			payload = dup_bytes(buf->data, buf->len, &ok);
			if (!ok) {
				dcp_mc_err(c, "out of memory copying %zu bytes to send", buf->len);
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
		mc_run *r = dcp_mc_run_new((size_t)nchild);
		if (r == NULL) {
			dcp_mc_err(c, "out of memory");
			free(payload);
			payload = NULL;
			src = DCP_ENOMEM;
		} else {
			r->keep = payload;
			int sst = status == DCP_OK ? DCP_OK : peer_status(status);
			for (int m = mask >> 1; m > 0 && src == DCP_OK; m >>= 1)
				if (vr + m < n)
					src = dcp_mc_post_send(c, dcp_mc_run_add(r, (vr + m + root) % n, 1),
					                       op, root, sst, payload, len);
			if (src == DCP_OK)
				src = dcp_mc_run_wait(c, r, op, root, 0);
			if (src == DCP_OK && vr != 0)
				r->keep = NULL; /* the sends are done: the payload goes to the caller */
			else
				payload = NULL; /* freed with the run, or kept by it as an orphan */
			dcp_mc_run_end(c, r);
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
		dcp_mc_orphans_reap(c);
}

static int root_ok(mc_comm *c, int root)
{
	if (root >= 0 && root < c->size)
		return 1;
	dcp_mc_err(c, "root %d is not a rank of this comm (0..%d)", root, c->size - 1);
	return 0;
}

int dcp_mc_gather(dcp_comm *self, int root, const void *data, size_t len, dcp_buf *out)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_GATHER);
	if (!root_ok(c, root))
		return DCP_EINVAL;
	int is_root = c->rank == root;
	int bad = (data == NULL && len > 0) || (is_root && out == NULL);
	if (bad)
		dcp_mc_err(c, "invalid arguments (data NULL with len %zu, or no output on the root)", len);
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
			dcp_mc_err(c, "out of memory copying the root's own %zu bytes", len);
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

int dcp_mc_scatter(dcp_comm *self, int root, const dcp_buf *in, dcp_buf *out)
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
		dcp_mc_err(c, "invalid arguments (no output, or no or invalid inputs on the root)");
	if (out != NULL)
		clear_bufs(out, 1);

	if (!is_root) {
		mc_run *r = dcp_mc_run_new(1);
		if (r == NULL) {
			dcp_mc_err(c, "out of memory");
			return DCP_ENOMEM;
		}
		int rc = dcp_mc_post_recv(c, dcp_mc_run_add(r, root, 0));
		if (rc == DCP_OK)
			rc = dcp_mc_run_wait(c, r, MC_SCATTER, root, 1);
		if (rc == DCP_OK && r->x[0].hdr.status != DCP_OK) {
			dcp_mc_err(c, "the root, rank %d, reported a failure (%s)", root,
			           dcp_strerror(r->x[0].hdr.status));
			rc = peer_status(r->x[0].hdr.status);
		}
		if (rc == DCP_OK && !bad) {
			out->data = r->x[0].data;
			out->len = (size_t)r->x[0].len;
			r->x[0].data = NULL;
		}
		dcp_mc_run_end(c, r);
		return bad ? DCP_EINVAL : rc;
	}

	/* Root: one copy of all parts, sent from there. */
	mc_run *r = dcp_mc_run_new((size_t)c->size);
	if (r == NULL) {
		dcp_mc_err(c, "out of memory");
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
			dcp_mc_err(c, "out of memory copying %zu bytes to send", total);
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
		rc = dcp_mc_post_send(c, dcp_mc_run_add(r, p, 1), MC_SCATTER, root, status, part, plen);
	}
	if (rc == DCP_OK)
		rc = dcp_mc_run_wait(c, r, MC_SCATTER, root, 0);
	dcp_mc_run_end(c, r);
	if (rc == DCP_OK)
		rc = status;
	if (rc == DCP_OK) {
		int ok = 1;
		out->data = dup_bytes(in[root].data, in[root].len, &ok);
		out->len = ok ? in[root].len : 0;
		if (!ok) {
			dcp_mc_err(c, "out of memory copying the root's own %zu bytes", in[root].len);
			rc = DCP_ENOMEM;
		}
	}
	return rc;
}

int dcp_mc_broadcast(dcp_comm *self, int root, dcp_buf *buf)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_BROADCAST);
	if (!root_ok(c, root))
		return DCP_EINVAL;
	int is_root = c->rank == root;
	int bad = buf == NULL || (is_root && buf->data == NULL && buf->len > 0);
	if (bad)
		dcp_mc_err(c, "invalid arguments (no buffer, or NULL data with a length on the root)");
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
int dcp_mc_allgather(dcp_comm *self, const void *data, size_t len, dcp_buf *out)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_ALLGATHER_UP);
	int n = c->size;
	int bad = out == NULL || (data == NULL && len > 0);
	if (bad)
		dcp_mc_err(c, "invalid arguments (no output, or data NULL with len %zu)", len);
	if (out != NULL)
		clear_bufs(out, n);

	int status = bad ? DCP_EINVAL : DCP_OK;
	dcp_buf packed = {NULL, 0};
	if (c->rank == 0) {
		dcp_buf *got = calloc((size_t)n, sizeof(*got));
		int rc = got == NULL ? DCP_ENOMEM : step_gather(c, MC_ALLGATHER_UP, 0, DCP_OK, NULL, 0, got);
		if (got == NULL)
			dcp_mc_err(c, "out of memory");
		if (rc == DCP_OK && !bad) {
			got[0].data = (void *)data; /* borrowed for packing only */
			got[0].len = len;
			size_t total = (size_t)n * sizeof(uint64_t);
			for (int r = 0; r < n; r++)
				total += got[r].len;
			packed.data = malloc(total);
			if (packed.data == NULL) {
				dcp_mc_err(c, "out of memory packing %zu bytes", total);
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
		dcp_mc_err(c, "rank 0 sent %zu bytes, too short for %d lengths", packed.len, n);
		rc = DCP_ECOMM;
	}
	for (int r = 0; r < n && rc == DCP_OK; r++) {
		uint64_t l;
		memcpy(&l, p + (size_t)r * sizeof(l), sizeof(l));
		if (l > packed.len - off) {
			dcp_mc_err(c, "rank 0 sent a malformed allgather message (part %d overruns it)", r);
			rc = DCP_ECOMM;
			break;
		}
		int ok = 1;
		out[r].data = dup_bytes(p + off, (size_t)l, &ok);
		out[r].len = ok ? (size_t)l : 0;
		if (!ok) {
			dcp_mc_err(c, "out of memory for the %llu bytes of rank %d", (unsigned long long)l,
			           r);
			rc = DCP_ENOMEM;
		}
		off += (size_t)l;
	}
	if (rc != DCP_OK)
		dcp_bufs_release(out, (size_t)n);
	free(packed.data);
	return rc;
}

int dcp_mc_barrier(dcp_comm *self)
{
	mc_comm *c = (mc_comm *)self;
	begin(c, MC_BARRIER_UP);
	int status;
	if (c->rank == 0) {
		dcp_buf *got = calloc((size_t)c->size, sizeof(*got));
		if (got == NULL) {
			dcp_mc_err(c, "out of memory");
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
