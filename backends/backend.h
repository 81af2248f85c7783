/*
 * The byte-store interface that storage plugins are built on.
 *
 * A backend moves bytes to and from named objects under one root (a
 * directory, an S3 bucket+prefix, a mem:// namespace). It knows nothing about
 * checkpoints: the shared layout code (plugins/layout) decides which objects a
 * checkpoint has and in which order they are committed.
 *
 * Paths are relative to the root, '/'-separated, already checked with
 * dcp_storage_path_is_safe. Every slot returns DCP_OK or a negative DCP_E*
 * code and fills msg with what failed, on which object (the full location,
 * e.g. "/ckpt/run1/__0_0.distcp" or "s3://b/k/__0_0.distcp"), and why.
 *
 * Threads: all slots may be called concurrently from several threads, on
 * different paths; a write handle is used by one thread at a time.
 */
#ifndef DCP_BACKEND_H
#define DCP_BACKEND_H

#include <stdatomic.h>

#include "dcp/sys/storage.h"

typedef struct dcp_backend dcp_backend;
typedef struct dcp_backend_writer dcp_backend_writer;

/* 1: the slots up to read_iov; 2: put_if_absent; 3: list_stat,
 * list_uploads, abort_upload, remove_many. A caller uses a slot only when the table's
 * version has it and the slot is not NULL. */
#define DCP_BACKEND_VERSION 3

/* One buffer of an object written with write_iov. */
typedef struct dcp_backend_iov {
	const void *data;
	uint64_t len;
} dcp_backend_iov;

/* One destination of read_iov: len bytes go to data; NULL data: the bytes
 * are read and dropped (a small gap between two wanted ranges). */
typedef struct dcp_backend_dst {
	void *data;
	uint64_t len;
} dcp_backend_dst;

typedef struct dcp_backend_ops {
	unsigned version; /* DCP_BACKEND_VERSION */
	/* Starts a new object at path, written sequentially with append. The
	 * object is not visible under path (or is incomplete) until
	 * writer_close succeeds; a failed or aborted writer leaves no object. */
	int (*writer_open)(dcp_backend *b, const char *path, dcp_backend_writer **out, dcp_msg *msg);
	int (*writer_append)(dcp_backend_writer *w, const void *data, uint64_t len, dcp_msg *msg);
	/* Completes the object: durable (fsync'd / uploaded) when this returns
	 * DCP_OK. Frees w in every case. */
	int (*writer_close)(dcp_backend_writer *w, dcp_msg *msg);
	/* Discards the object being written. Frees w. */
	void (*writer_abort)(dcp_backend_writer *w);
	/* Reads bytes [offset, offset+len) of path into dst. An object shorter
	 * than offset+len is DCP_ECORRUPT ("... is N bytes, expected at least M");
	 * a missing object is DCP_ENOTFOUND. */
	int (*read)(dcp_backend *b, const char *path, uint64_t offset, uint64_t len, void *dst, dcp_msg *msg);
	/* Reads a whole (small) object: *data is malloc'd, caller frees.
	 * Missing: DCP_ENOTFOUND. */
	int (*get)(dcp_backend *b, const char *path, void **data, uint64_t *len, dcp_msg *msg);
	/* Replaces path with data atomically and durably: readers see either the
	 * old object or the new one, never neither, never a partial one (file:
	 * temp file, fsync, rename, fsync of the directory). */
	int (*put_atomic)(dcp_backend *b, const char *path, const void *data, uint64_t len, dcp_msg *msg);
	/* Removes path; a missing object is not an error. */
	int (*remove)(dcp_backend *b, const char *path, dcp_msg *msg);
	/* Calls fn for every object under the root whose path starts with
	 * prefix ("" for all), in no particular order. fn returning nonzero stops
	 * the listing and is returned. */
	int (*list)(dcp_backend *b, const char *prefix, int (*fn)(const char *path, uint64_t size, void *arg),
	            void *arg, dcp_msg *msg);
	/* 1 if path exists, 0 if not, or a negative error. */
	int (*exists)(dcp_backend *b, const char *path, dcp_msg *msg);
	/* A printable location of path for messages (e.g. "/ckpt/run1/x");
	 * writes into buf (always NUL-terminated) and returns buf. */
	const char *(*describe)(dcp_backend *b, const char *path, char *buf, size_t buflen);
	/* Frees the backend. */
	void (*destroy)(dcp_backend *b);
	/* Optional (NULL: callers use the writer slots). Writes the object at
	 * path from the concatenation of iov[0..n-1], whose total size the
	 * backend knows from the start and whose buffers it may read in any
	 * order, from any thread, until this returns (no copy needed); they stay
	 * the caller's and must not change meanwhile. Same visibility as a
	 * writer: the object appears only if this succeeds, and a failure leaves
	 * no new object. stop (may be NULL): once nonzero, the backend may give
	 * up early with DCP_EPEER (another object of the same save failed). */
	int (*write_iov)(dcp_backend *b, const char *path, const dcp_backend_iov *iov, size_t n,
	                 const atomic_int *stop, dcp_msg *msg);
	/* Optional (NULL: callers use read). Reads bytes [offset, offset + total)
	 * of path, total being the sum of dst[].len, into dst[0], dst[1], ... in
	 * order, as one request (or a few in parallel) where read would need one
	 * per destination. Errors as read's. */
	int (*read_iov)(dcp_backend *b, const char *path, uint64_t offset, const dcp_backend_dst *dst,
	                size_t n, dcp_msg *msg);
	/* Version 2, optional. As put_atomic, but creates path only if no
	 * object is there, as one atomic step of the store (file: link(2) of
	 * the temporary file; S3: PUT with If-None-Match: *): DCP_EEXISTS, with
	 * msg naming the object, when one is, so that of two writers racing to
	 * create the same object exactly one succeeds. A store that ignores the
	 * condition (s3rver) behaves as put_atomic. */
	int (*put_if_absent)(dcp_backend *b, const char *path, const void *data, uint64_t len, dcp_msg *msg);
	/* Version 3, optional. As list, with each object's last modification
	 * time in seconds since the epoch by the store's clock (-1: unknown). */
	int (*list_stat)(dcp_backend *b, const char *prefix,
	                 int (*fn)(const char *path, uint64_t size, int64_t mtime, void *arg), void *arg,
	                 dcp_msg *msg);
	/* Version 3, optional (NULL: the store has no unfinished uploads). Calls
	 * fn for every upload under the root that was started and neither
	 * completed nor aborted, whose path starts with prefix: its path, its id
	 * and when it started (seconds since the epoch, -1: unknown).
	 * DCP_EUNSUPPORTED, with msg, when the store cannot list them. */
	int (*list_uploads)(dcp_backend *b, const char *prefix,
	                    int (*fn)(const char *path, const char *upload_id, int64_t initiated, void *arg),
	                    void *arg, dcp_msg *msg);
	/* Version 3, optional. Discards the unfinished upload upload_id of path
	 * and its parts; one already gone is not an error. */
	int (*abort_upload)(dcp_backend *b, const char *path, const char *upload_id, dcp_msg *msg);
	/* Version 3, optional (NULL: callers remove one at a time). Removes the
	 * n objects of paths in as few requests as the store allows (S3:
	 * DeleteObjects, 1,000 keys a request); missing ones are not errors. On
	 * a failure some may be removed; msg names one that was not. */
	int (*remove_many)(dcp_backend *b, const char *const *paths, size_t n, dcp_msg *msg);
} dcp_backend_ops;

/* Backends embed this as their first member. */
struct dcp_backend {
	const dcp_backend_ops *ops;
	uint64_t capabilities; /* DCP_CAP_* that this backend gives a plugin */
};
struct dcp_backend_writer {
	dcp_backend *backend;
};

#endif /* DCP_BACKEND_H */
