/*
 * The storage ABI: what a storage plugin implements.
 *
 * A plugin is a shared object (loaded with dlopen) or code compiled into the
 * program. It exports one symbol, `dcp_plugin_entry` (see DCP_PLUGIN_ENTRY),
 * of type dcp_plugin_entry_fn. The core calls it once per registry with the
 * host services; the plugin allocates and returns its dcp_plugin, which the
 * registry owns and frees through plugin->destroy. A plugin never links
 * libdcp: everything it needs from the core is in the dcp_host table. State
 * shared by all ranks of a process (e.g. the mem:// store) hangs off the
 * plugin object, never off a global variable.
 *
 * Versioning (as in SQLite's VFS and libgit2's backends): every table has
 * `version` first; slots are only ever appended; the core checks the version
 * before calling a newer slot and refuses a table with a version it does not
 * know or with a required slot left NULL.
 *
 * Errors: every slot returns DCP_OK or a negative DCP_E* code and, on failure,
 * fills its dcp_msg with what was wrong, with which input, and what to do.
 * Plugins never print.
 *
 * Threads: writer and reader objects belong to one rank and are called from
 * that rank's thread. A plugin may run I/O on threads of its own and complete a
 * future from any thread. The plugin object's slots (validate_checkpoint_id,
 * writer_open, reader_open) may be called from several ranks' threads at once.
 */
#ifndef DCP_SYS_STORAGE_H
#define DCP_SYS_STORAGE_H

#include "dcp/sys/planner.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1: the slots up to remove; 2: gc. The registry accepts every version up
 * to this one and calls a slot only when the plugin's version has it. */
#define DCP_PLUGIN_ABI_VERSION  2
#define DCP_PLUGIN_ENTRY        dcp_plugin_entry
#define DCP_PLUGIN_ENTRY_SYMBOL "dcp_plugin_entry"

/* Capability flags: what the storage guarantees, so callers need not guess. */
#define DCP_CAP_ATOMIC_COMMIT (1ull << 0) /* metadata commit is atomic */
#define DCP_CAP_DURABLE       (1ull << 1) /* committed data survives a crash */
#define DCP_CAP_RANGED_READ   (1ull << 2) /* reads only the requested ranges */
#define DCP_CAP_ASYNC_IO      (1ull << 3) /* futures complete from I/O threads */
#define DCP_CAP_WRAPPER       (1ull << 4) /* wraps another plugin (faulty) */
#define DCP_CAP_PROCESS_LOCAL (1ull << 5) /* visible only inside this process */

typedef struct dcp_storage_writer dcp_storage_writer;
typedef struct dcp_storage_reader dcp_storage_reader;
typedef struct dcp_writer_ops dcp_writer_ops;
typedef struct dcp_reader_ops dcp_reader_ops;

/* A future owned by the core; the plugin completes it exactly once. */
typedef struct dcp_future dcp_future;

/* One item to write: its data is borrowed until the future completes. */
typedef struct dcp_write_req {
	uint32_t index; /* of the item in the rank's final plan */
	const dcp_write_item *item;
	const void *data;
	uint64_t len;
} dcp_write_req;

/* Where one item was written. Strings are copied by the core. */
typedef struct dcp_write_result {
	uint32_t index; /* dcp_write_req.index */
	const char *path;
	uint64_t offset;
	uint64_t length;
} dcp_write_result;

/* One byte range to read: bytes [offset, offset + length) of the stored
 * chunk described by `storage`, i.e. the object storage->path at
 * storage->offset + offset. dst has room for length bytes. A short object is
 * DCP_ECORRUPT naming the path and offset. */
typedef struct dcp_read_req {
	const dcp_storage_info *storage;
	uint64_t offset;
	uint64_t length;
	void *dst;
} dcp_read_req;

/* Options the core passes to writer_open / reader_open. */
typedef struct dcp_open_options {
	unsigned version; /* DCP_OPEN_OPTIONS_VERSION */
	int rank;
	int world_size;
	int overwrite; /* writers: 0 refuses an existing checkpoint (DCP_EEXISTS) */
} dcp_open_options;
#define DCP_OPEN_OPTIONS_VERSION 1

/* ------------------------------------------------------------------------ */
/* Host services: the core's functions, passed to the plugin's entry point. */
/* ------------------------------------------------------------------------ */
/* 1: the slots up to checksum. 2: future_new, future_wait, future_free.
 * 3: read_request_done. A plugin checks host->version (and that the slot is
 * not NULL) before it calls a slot of a later version. */
#define DCP_HOST_VERSION 3

struct dcp_host {
	unsigned version; /* DCP_HOST_VERSION */
	int (*metadata_encode)(const dcp_metadata *md, char **json, size_t *len, dcp_msg *msg);
	int (*metadata_decode)(const char *json, size_t len, dcp_metadata **out, dcp_msg *msg);
	void (*metadata_free)(dcp_metadata *md);
	/* Completes a write future with the results of every request (status
	 * DCP_OK) or a failure (results ignored). Any thread; exactly once. */
	void (*write_future_complete)(dcp_future *fut, int status, const dcp_write_result *results, size_t n,
	                              const char *message);
	/* Completes a read future. Any thread; exactly once. */
	void (*read_future_complete)(dcp_future *fut, int status, const char *message);
	/* The plugin registered for url's scheme in the same registry (for
	 * wrappers). The registry keeps ownership. */
	int (*plugin_for_url)(const dcp_host *host, const char *url, dcp_plugin **out, dcp_msg *msg);
	uint64_t (*checksum)(const void *data, uint64_t len);
	/* Version 2. Futures a plugin makes for its own calls into another
	 * plugin (a wrapper calling the inner writer's write_data or reader's
	 * read_data, to see the outcome before completing its own future).
	 * future_new: an uncompleted future, or NULL if out of memory; the
	 * caller owns it. future_wait: blocks until the future is completed
	 * (by write_future_complete or read_future_complete, from any thread)
	 * and returns its status; msg (may be NULL) receives its message. The
	 * results of a completed write stay inside the future. future_free
	 * (NULL is a no-op): frees a future that was completed, or one that was
	 * never handed to a plugin slot (or whose slot returned an error); never
	 * one that a plugin may still complete. */
	dcp_future *(*future_new)(void);
	int (*future_wait)(dcp_future *fut, dcp_msg *msg);
	void (*future_free)(dcp_future *fut);
	/* Version 3. Optional for a plugin to call: request `index` of the
	 * read_data call that received `fut` has all its bytes in its dst. The
	 * core then checks them on the calling thread (so verification runs in
	 * parallel on the plugin's I/O threads, while other reads go on). Call
	 * it at most once per request, from any thread, before completing fut;
	 * never for a request whose read failed. A plugin that never calls it
	 * is verified after the future completes, as before. */
	void (*read_request_done)(dcp_future *fut, size_t index);
};

/* ------------------------------------------------------------------------ */
/* The plugin object                                                        */
/* ------------------------------------------------------------------------ */
struct dcp_plugin {
	unsigned version;           /* DCP_PLUGIN_ABI_VERSION */
	const char *name;           /* short name, e.g. "fs" */
	const char *const *schemes; /* NULL-terminated, e.g. {"file", NULL} */
	uint64_t capabilities;      /* DCP_CAP_* */
	/* Required. Frees the plugin (the registry calls it once, last). */
	void (*destroy)(dcp_plugin *self);
	/* Required. Accepts url (its scheme is one of `schemes`) or rejects it
	 * with DCP_EID and a reason. for_write: 1 for a save, 0 for a load
	 * (a reader may say "no checkpoint at ..." with DCP_ENOTFOUND). */
	int (*validate_checkpoint_id)(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg);
	/* Required. A writer / reader for one rank of one save / load. */
	int (*writer_open)(dcp_plugin *self, const char *url, const dcp_open_options *opts,
	                   dcp_storage_writer **out, dcp_msg *msg);
	int (*reader_open)(dcp_plugin *self, const char *url, const dcp_open_options *opts,
	                   dcp_storage_reader **out, dcp_msg *msg);
	/* Optional. Removes the checkpoint at url (metadata first). */
	int (*remove)(dcp_plugin *self, const char *url, dcp_msg *msg);
	/* Version 2, optional. Garbage collection at url, as dcp_gc describes;
	 * opts is never NULL; report is zeroed by the caller and filled here. */
	int (*gc)(dcp_plugin *self, const char *url, const dcp_gc_options *opts, dcp_gc_report *report,
	          dcp_msg *msg);
};

/* Writer and reader objects: a plugin embeds this base as its first member. */
struct dcp_storage_writer {
	const dcp_writer_ops *ops;
};
struct dcp_storage_reader {
	const dcp_reader_ops *ops;
};

#define DCP_WRITER_OPS_VERSION 1

struct dcp_writer_ops {
	unsigned version; /* DCP_WRITER_OPS_VERSION */
	/* Optional: make the writer ready for another save to url. */
	int (*reset)(dcp_storage_writer *w, const char *url, dcp_msg *msg);
	/* Required. First call of a save on every rank. */
	int (*set_up_storage_writer)(dcp_storage_writer *w, int is_coordinator, int rank, int world_size,
	                             dcp_msg *msg);
	/* Optional. May set plan->storage_data. */
	int (*prepare_local_plan)(dcp_storage_writer *w, dcp_save_plan *plan, dcp_msg *msg);
	/* Optional, coordinator only. May set each plan's storage_data. */
	int (*prepare_global_plan)(dcp_storage_writer *w, dcp_save_plan *plans, int nranks, dcp_msg *msg);
	/* Required. Writes reqs[0..n-1] (the items of `plan`, n may be 0).
	 * Returns DCP_OK and completes fut exactly once (before or after
	 * returning, from any thread) with one result per request; or returns an
	 * error and never completes fut. Data objects must have names unique to
	 * plan->save_id so that no committed object is overwritten. */
	int (*write_data)(dcp_storage_writer *w, const dcp_save_plan *plan, const dcp_write_req *reqs,
	                  size_t n, dcp_future *fut, dcp_msg *msg);
	/* Required, coordinator only: commits md (whose storage fields the core
	 * filled from every rank's results). The checkpoint becomes visible
	 * atomically here, and the previous one's objects may be removed only
	 * after it. */
	int (*finish)(dcp_storage_writer *w, const dcp_metadata *md, dcp_msg *msg);
	/* Optional: the writer's own JSON, stored as md->storage_meta.
	 * *json is malloc'd; the core frees it. */
	int (*storage_meta)(dcp_storage_writer *w, char **json, dcp_msg *msg);
	/* Optional: the save failed (on any rank). Remove the objects this rank
	 * wrote for it. Never touches a committed checkpoint. */
	void (*abort)(dcp_storage_writer *w);
	/* Required. Frees the writer; waits for its own threads. */
	void (*close)(dcp_storage_writer *w);
};

#define DCP_READER_OPS_VERSION 1

struct dcp_reader_ops {
	unsigned version;                                                   /* DCP_READER_OPS_VERSION */
	int (*reset)(dcp_storage_reader *r, const char *url, dcp_msg *msg); /* optional */
	/* Required. *out is decoded with host->metadata_decode; the core frees
	 * it with host->metadata_free. No checkpoint: DCP_ENOTFOUND. In a load,
	 * only the coordinator's reader is asked; the core sends the metadata
	 * (JSON-encoded, so everything in it must survive metadata_encode) to
	 * the other ranks, whose readers see it first in set_up_storage_reader.
	 * A reader must not rely on read_metadata having run on its rank. */
	int (*read_metadata)(dcp_storage_reader *r, dcp_metadata **out, dcp_msg *msg);
	/* Required. md stays valid until close. */
	int (*set_up_storage_reader)(dcp_storage_reader *r, const dcp_metadata *md, int is_coordinator,
	                             int rank, int world_size, dcp_msg *msg);
	int (*prepare_local_plan)(dcp_storage_reader *r, dcp_load_plan *plan, dcp_msg *msg); /* optional */
	int (*prepare_global_plan)(dcp_storage_reader *r, dcp_load_plan *plans, int nranks,
	                           dcp_msg *msg); /* optional */
	/* Required. Same future contract as write_data. */
	int (*read_data)(dcp_storage_reader *r, const dcp_load_plan *plan, const dcp_read_req *reqs, size_t n,
	                 dcp_future *fut, dcp_msg *msg);
	void (*close)(dcp_storage_reader *r); /* required */
};

/* The entry point every plugin .so exports (see dcp_plugin_entry_fn in
 * dcp/dcp.h). Returns DCP_OK and *out, or an error with msg. */
#define DCP_DECLARE_PLUGIN_ENTRY \
	DCP_EXTERN int dcp_plugin_entry(const dcp_host *host, dcp_plugin **out, dcp_msg *msg)

#ifdef __cplusplus
}
#endif
#endif /* DCP_SYS_STORAGE_H */
