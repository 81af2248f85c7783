/*
 * The checkpoint layout shared by the mem, fs and s3 plugins: which objects a
 * checkpoint has, how a rank's items are spread over them, in which order a
 * save is committed, and what is cleaned up. Written once over any
 * dcp_backend, so that a plugin differs from another only in the backend it
 * drives and in how it parses its ids.
 *
 * A checkpoint at a location is:
 *   .metadata                         the JSON metadata (host->metadata_encode)
 *   __<rank>_<n>.<save_id>.distcp     data objects, named per rank and unique
 *                                     to the save that wrote them
 * Tensor bytes are stored raw and contiguous, with no framing, at the offsets
 * the metadata gives.
 *
 * Commit order (writer finish, coordinator only): read the old .metadata (to
 * know its objects), check that every object the new metadata names exists,
 * replace .metadata atomically, then remove the old save's objects that the
 * new metadata does not name. A failed save never touches the committed
 * checkpoint: its objects have names of their own, and abort removes them.
 *
 * Options, from the URL query:
 *   threads=T        I/O threads per rank for writes and reads (1..64)
 *   layout=bucket    a rank's items go into min(T, items) objects balanced by
 *                    bytes, each written sequentially by one thread (default)
 *   layout=item      one object per item
 *   overwrite=BOOL   overrides dcp_open_options.overwrite when given
 *
 * Nothing here is exported from a plugin: the library is linked into each
 * plugin with hidden visibility.
 */
#ifndef DCP_LAYOUT_H
#define DCP_LAYOUT_H

#include "backend.h"
#include "dcp/sys/storage.h"
#include "url.h"

#define DCP_LAYOUT_METADATA    ".metadata"
#define DCP_LAYOUT_DATA_SUFFIX ".distcp"
#define DCP_LAYOUT_MAX_THREADS 64

typedef enum dcp_layout_kind { DCP_LAYOUT_BUCKET = 0, DCP_LAYOUT_ITEM = 1 } dcp_layout_kind;

typedef struct dcp_layout_options {
	int threads; /* 1..DCP_LAYOUT_MAX_THREADS */
	dcp_layout_kind kind;
	int overwrite; /* from the URL: 0 or 1; -1 when the URL has none */
} dcp_layout_options;

/*
 * Parses the layout's options from url's query. default_threads (clamped to
 * 1..DCP_LAYOUT_MAX_THREADS) applies when the URL has no threads=. Keys
 * listed in plugin_keys (NULL-terminated, may be NULL) belong to the plugin
 * and are skipped; any other key is DCP_EID naming it, the URL and the known
 * keys. `shown` is the id as messages show it (NULL: url->rest).
 */
int dcp_layout_options_parse(const dcp_url *url, int default_threads, const char *const *plugin_keys,
                             const char *shown, dcp_layout_options *out, dcp_msg *msg);

/* What a writer or reader is opened with. */
typedef struct dcp_layout_params {
	dcp_backend *backend; /* the checkpoint's root; owned by the layout from
	                         the call on, in every case (also on failure) */
	const dcp_host *host; /* borrowed; outlives the writer / reader */
	const char *location; /* canonical location for messages, e.g.
	                         "/ckpt/run1" or "mem://run1"; copied */
	dcp_layout_options options;
} dcp_layout_params;

/*
 * A writer / reader implementing the full storage ABI tables over
 * params->backend. opts may be NULL (rank 0 of 1, overwrite on). The object
 * is freed by its ops->close, which joins its I/O threads and destroys the
 * backend.
 */
int dcp_layout_writer_open(const dcp_layout_params *params, const dcp_open_options *opts,
                           dcp_storage_writer **out, dcp_msg *msg);
int dcp_layout_reader_open(const dcp_layout_params *params, const dcp_open_options *opts,
                           dcp_storage_reader **out, dcp_msg *msg);

/* 1 if a checkpoint (its .metadata) is at the backend's root, 0 if not, or a
 * negative error with msg. The backend stays the caller's. */
int dcp_layout_exists(dcp_backend *backend, dcp_msg *msg);

/*
 * Removes the checkpoint at the backend's root: .metadata first (from then on
 * it is no checkpoint), then the data objects it named. A .metadata that does
 * not decode is removed too, with every object named like a data object
 * (__*.distcp). No checkpoint: DCP_ENOTFOUND "no checkpoint at <location>".
 * The backend stays the caller's.
 */
int dcp_layout_remove(dcp_backend *backend, const dcp_host *host, const char *location, dcp_msg *msg);

/*
 * Garbage collection at the backend's root (dcp_gc's contract): data
 * objects that the committed metadata does not name, temporary files and
 * unfinished uploads, each only when at least opts->min_age_s old. report is
 * the caller's, zeroed. The backend stays the caller's.
 */
int dcp_layout_gc(dcp_backend *backend, const dcp_host *host, const char *location,
                  const dcp_gc_options *opts, dcp_gc_report *report, dcp_msg *msg);

/* True if path is a relative object path the layout accepts: '/'-separated,
 * no leading '/', no empty, "." or ".." component, no NUL, no '\\'. */
int dcp_layout_path_is_safe(const char *path);

#endif /* DCP_LAYOUT_H */
