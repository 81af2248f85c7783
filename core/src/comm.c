/*
 * Generic comm calls and the comm of one rank.
 *
 * The single comm follows the contract of dcp/sys/comm.h for a group of one:
 * root must be 0, and every collective hands back malloc'd copies of its own
 * input (a 0-length message gives {NULL, 0}). Invalid arguments give
 * DCP_EINVAL, and outputs are left as {NULL, 0} after any failure so that the
 * caller can always release them.
 */
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"

int dcp_comm_rank(const dcp_comm *comm)
{
	if (comm == NULL || comm->rank == NULL)
		return -1;
	return comm->rank(comm);
}

int dcp_comm_size(const dcp_comm *comm)
{
	if (comm == NULL || comm->size == NULL)
		return 0;
	return comm->size(comm);
}

void dcp_comm_free(dcp_comm *comm)
{
	if (comm != NULL && comm->destroy != NULL)
		comm->destroy(comm);
}

void dcp_bufs_release(dcp_buf *bufs, size_t n)
{
	size_t i;

	if (bufs == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(bufs[i].data);
		bufs[i].data = NULL;
		bufs[i].len = 0;
	}
}

/* dst = a malloc'd copy of len bytes at src ({NULL, 0} when len is 0). */
int dcp_buf_copy(dcp_buf *dst, const void *src, size_t len)
{
	dst->data = NULL;
	dst->len = 0;
	if (len == 0)
		return DCP_OK;
	dst->data = malloc(len);
	if (dst->data == NULL)
		return DCP_ENOMEM;
	memcpy(dst->data, src, len);
	dst->len = len;
	return DCP_OK;
}

static int single_rank(const dcp_comm *self)
{
	(void)self;
	return 0;
}

static int single_size(const dcp_comm *self)
{
	(void)self;
	return 1;
}

static int single_gather(dcp_comm *self, int root, const void *data, size_t len, dcp_buf *out)
{
	(void)self;
	if (out == NULL)
		return DCP_EINVAL;
	out[0].data = NULL;
	out[0].len = 0;
	if (root != 0 || (data == NULL && len > 0))
		return DCP_EINVAL;
	return dcp_buf_copy(&out[0], data, len);
}

static int single_scatter(dcp_comm *self, int root, const dcp_buf *in, dcp_buf *out)
{
	(void)self;
	if (out == NULL)
		return DCP_EINVAL;
	out->data = NULL;
	out->len = 0;
	if (root != 0 || in == NULL || (in[0].data == NULL && in[0].len > 0))
		return DCP_EINVAL;
	return dcp_buf_copy(out, in[0].data, in[0].len);
}

static int single_broadcast(dcp_comm *self, int root, dcp_buf *buf)
{
	(void)self;
	/* The root keeps its buffer: nothing moves in a group of one. */
	if (root != 0 || buf == NULL || (buf->data == NULL && buf->len > 0))
		return DCP_EINVAL;
	return DCP_OK;
}

static int single_allgather(dcp_comm *self, const void *data, size_t len, dcp_buf *out)
{
	return single_gather(self, 0, data, len, out);
}

static int single_barrier(dcp_comm *self)
{
	(void)self;
	return DCP_OK;
}

static void single_destroy(dcp_comm *self)
{
	free(self);
}

dcp_comm *dcp_comm_single_new(void)
{
	dcp_comm *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->version = DCP_COMM_VERSION;
	c->rank = single_rank;
	c->size = single_size;
	c->gather = single_gather;
	c->scatter = single_scatter;
	c->broadcast = single_broadcast;
	c->allgather = single_allgather;
	c->barrier = single_barrier;
	c->destroy = single_destroy;
	return c;
}
