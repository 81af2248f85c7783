/*
 * The collectives interface, for authors of comm adapters (e.g. libdcp_mpi).
 *
 * A comm is a struct of function pointers whose first field is the version.
 * An adapter embeds `struct dcp_comm` as the first member of its own struct
 * and casts back in its slots. Slots are only ever appended.
 *
 * Every collective is called by every rank of the comm, in the same order, from
 * the one thread that owns that rank's comm. Messages are byte buffers of any
 * length (0 allowed). Received buffers are allocated with malloc and owned by
 * the caller, who frees each .data with free(). A collective returns DCP_OK on
 * every rank, or an error (DCP_ECOMM, DCP_ETIMEOUT, DCP_ENOMEM) on the ranks
 * that saw the failure; after a failure the comm may no longer be usable.
 */
#ifndef DCP_SYS_COMM_H
#define DCP_SYS_COMM_H

#include "dcp/dcp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcp_buf {
	void *data; /* malloc'd when received; NULL when len == 0 is allowed */
	size_t len;
} dcp_buf;

#define DCP_COMM_VERSION 1

struct dcp_comm {
	unsigned version; /* DCP_COMM_VERSION */
	int (*rank)(const dcp_comm *self);
	int (*size)(const dcp_comm *self);
	/* root receives out[0..size-1] (out[root] is a copy of its own data);
	 * on other ranks out is ignored and may be NULL. */
	int (*gather)(dcp_comm *self, int root, const void *data, size_t len, dcp_buf *out);
	/* root passes in[0..size-1]; every rank (root included) receives its own
	 * part in *out. in is ignored on other ranks. */
	int (*scatter)(dcp_comm *self, int root, const dcp_buf *in, dcp_buf *out);
	/* root sends *buf; the others receive it into *buf (malloc'd). On the
	 * root, buf is unchanged. */
	int (*broadcast)(dcp_comm *self, int root, dcp_buf *buf);
	/* every rank receives out[0..size-1] */
	int (*allgather)(dcp_comm *self, const void *data, size_t len, dcp_buf *out);
	int (*barrier)(dcp_comm *self);
	/* frees the comm; called by dcp_comm_free. May be NULL for comms that
	 * are owned by something else (e.g. a thread group). */
	void (*destroy)(dcp_comm *self);
};

/* Frees out[0..n-1].data (not out itself). */
DCP_EXTERN void dcp_bufs_release(dcp_buf *bufs, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* DCP_SYS_COMM_H */
