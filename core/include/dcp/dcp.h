/*
 * libdcp: distributed checkpoints for C and C++ jobs.
 *
 * This is the consumer header: everything an application needs to describe its
 * state, save it to a checkpoint URL from every rank, and load it back on any
 * number of ranks. Plugin and planner authors also include the headers under
 * dcp/sys/.
 *
 * Conventions used throughout:
 * - Functions that can fail return an int status: DCP_OK (0) or a negative
 *   DCP_E* code. dcp_strerror() names any code and never returns NULL.
 * - Collective calls (dcp_save, dcp_load) are made by every rank of a comm with
 *   the same URL and options. They either succeed on every rank or fail on every
 *   rank with the same error object.
 * - Memory: an object returned by a *_new function is freed by the matching
 *   *_free function. Buffers given to a state are borrowed, never copied or
 *   freed by the library.
 */
#ifndef DCP_DCP_H
#define DCP_DCP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DCP_EXTERN __attribute__((visibility("default")))
#else
#define DCP_EXTERN
#endif

#define DCP_VERSION_MAJOR  0
#define DCP_VERSION_MINOR  1
#define DCP_VERSION_PATCH  0
#define DCP_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------ */
/* Status codes. Only ever appended to; values never change.                */
/* ------------------------------------------------------------------------ */
enum {
	DCP_OK = 0,
	DCP_ENOMEM = -1,        /* an allocation failed */
	DCP_EINVAL = -2,        /* invalid argument from the caller */
	DCP_EID = -3,           /* invalid or unsupported checkpoint id (URL) */
	DCP_ENOPLUGIN = -4,     /* no plugin for the URL's scheme */
	DCP_EPLUGIN = -5,       /* a plugin could not be loaded or is malformed */
	DCP_EIO = -6,           /* storage I/O failed */
	DCP_EPLAN = -7,         /* the save or load plan is invalid */
	DCP_EMETADATA = -8,     /* checkpoint metadata is malformed */
	DCP_ECORRUPT = -9,      /* stored data does not match its checksum or size */
	DCP_ENOTFOUND = -10,    /* no checkpoint, or a key that is not in it */
	DCP_EEXISTS = -11,      /* a checkpoint exists and overwrite is off */
	DCP_EMISMATCH = -12,    /* dtype, shape or size differs from the stored one */
	DCP_ECOMM = -13,        /* a collective operation failed */
	DCP_EVERSION = -14,     /* unsupported format or ABI version */
	DCP_EINJECTED = -15,    /* failure injected on purpose (faulty plugin) */
	DCP_EUNSUPPORTED = -16, /* the plugin does not support the operation */
	DCP_EDIVERGED = -17,    /* replicated copies of one key differ between ranks */
	DCP_ETIMEOUT = -18,     /* a peer or the storage did not answer in time */
	DCP_EPEER = -19         /* nothing failed here; another rank failed */
};

/* Never returns NULL; unknown codes give "unknown error". */
DCP_EXTERN const char *dcp_strerror(int code);

/* ------------------------------------------------------------------------ */
/* Data types                                                               */
/* ------------------------------------------------------------------------ */
typedef enum dcp_dtype {
	DCP_F64 = 0,
	DCP_F32 = 1,
	DCP_F16 = 2,
	DCP_BF16 = 3,
	DCP_I64 = 4,
	DCP_I32 = 5,
	DCP_I16 = 6,
	DCP_I8 = 7,
	DCP_U8 = 8,
	DCP_BOOL = 9,
	DCP_DTYPE_COUNT_ = 10 /* not a dtype; may grow */
} dcp_dtype;

#define DCP_MAX_DIMS 8

/* Element size in bytes; 0 for an unknown dtype. */
DCP_EXTERN size_t dcp_dtype_size(dcp_dtype dtype);
/* "f32", "bf16", ...; "unknown" for an unknown dtype. Never NULL. */
DCP_EXTERN const char *dcp_dtype_name(dcp_dtype dtype);
/* Parses a name given by dcp_dtype_name; returns DCP_EINVAL if unknown. */
DCP_EXTERN int dcp_dtype_from_name(const char *name, dcp_dtype *out);

/* ------------------------------------------------------------------------ */
/* Error object of a collective operation                                   */
/* ------------------------------------------------------------------------ */
/*
 * A failed save or load gives every rank an equal error object: the step that
 * failed ("plan", "write" or "read") and, for each failing rank, the stage
 * (the function that failed, e.g. "write_data"), its status code and message.
 * Non-collective calls that fail (e.g. registry calls) produce an error object
 * with step "local" and a single entry for the calling rank (-1 if no rank).
 */
typedef struct dcp_error dcp_error;

DCP_EXTERN void dcp_error_free(dcp_error *err);
/* "plan", "write", "read" or "local". Never NULL. */
DCP_EXTERN const char *dcp_error_step(const dcp_error *err);
/* The status code of the first failing rank (the one with the lowest rank). */
DCP_EXTERN int dcp_error_code(const dcp_error *err);
/* Number of failing ranks (entries). */
DCP_EXTERN size_t dcp_error_count(const dcp_error *err);
/* Entry i (0 <= i < count), ordered by rank. Strings are owned by err. */
DCP_EXTERN int dcp_error_rank(const dcp_error *err, size_t i);
DCP_EXTERN const char *dcp_error_stage(const dcp_error *err, size_t i);
DCP_EXTERN int dcp_error_entry_code(const dcp_error *err, size_t i);
DCP_EXTERN const char *dcp_error_message(const dcp_error *err, size_t i);
/* 1 if rank failed, else 0. */
DCP_EXTERN int dcp_error_has_rank(const dcp_error *err, int rank);
/*
 * The whole error as text, one line per failing rank:
 * "rank R: STAGE: message\n". Returns a malloc'd string the caller frees, or
 * NULL if out of memory.
 */
DCP_EXTERN char *dcp_error_format(const dcp_error *err);

/* ------------------------------------------------------------------------ */
/* State: what one rank saves, or where one rank wants its data loaded      */
/* ------------------------------------------------------------------------ */
/*
 * Keys are flattened dotted names ("model.layers.0.weight"): non-empty,
 * printable ASCII, at most 1024 bytes. Each key is either a tensor or a bytes
 * item, on every rank that holds it.
 *
 * All data pointers are borrowed: the caller keeps them valid, and does not
 * change them during a dcp_save or dcp_load that uses the state. A load writes
 * into them in place. A state is used by one thread at a time.
 */
typedef struct dcp_state dcp_state;

DCP_EXTERN dcp_state *dcp_state_new(void);
DCP_EXTERN void dcp_state_free(dcp_state *state);

/*
 * Adds one chunk of a sharded tensor: `ndim` (1..DCP_MAX_DIMS, or 0 for a
 * scalar) dims of global `shape`; this rank holds the box starting at
 * `offsets` with `sizes`, stored row-major and contiguous in `data`
 * (product(sizes) * dcp_dtype_size(dtype) bytes). Call again with the same key
 * for more chunks; a rank that holds no chunk of a tensor does not add it.
 * Across ranks the chunks of a key must tile the tensor without overlap; a
 * save checks it. data may be NULL only if the chunk has no elements.
 */
DCP_EXTERN int dcp_state_add_shard(dcp_state *state, const char *key, dcp_dtype dtype, int ndim,
                                   const uint64_t *shape, const uint64_t *offsets, const uint64_t *sizes,
                                   void *data);

/*
 * Adds a whole tensor that is replicated: every rank that adds it holds the
 * same bytes. A save stores it once and fails with DCP_EDIVERGED (naming the
 * key and ranks) if the copies differ. A load fills it whole.
 */
DCP_EXTERN int dcp_state_add_tensor(dcp_state *state, const char *key, dcp_dtype dtype, int ndim,
                                    const uint64_t *shape, void *data);

/*
 * Adds an opaque bytes item. Save: `len` bytes at `data`. Load: `data` is a
 * buffer of capacity `len` (the stored item must fit: else DCP_EMISMATCH), or
 * data == NULL with len == 0 to let the state allocate it. After a load,
 * dcp_state_get_bytes gives the loaded length and buffer. A bytes item held by
 * several ranks is replicated like a tensor: the copies must be equal.
 */
DCP_EXTERN int dcp_state_add_bytes(dcp_state *state, const char *key, void *data, size_t len);

/* After a load: the bytes of `key` (owned by the state or by the caller,
 * whichever gave the buffer) and their length. DCP_ENOTFOUND if no such key. */
DCP_EXTERN int dcp_state_get_bytes(const dcp_state *state, const char *key, const void **data, size_t *len);

/* 1 if the last load filled `key` (partial loads may skip keys), else 0. */
DCP_EXTERN int dcp_state_was_loaded(const dcp_state *state, const char *key);

/* The message of the last failed dcp_state_* call on this state; "" if none. */
DCP_EXTERN const char *dcp_state_last_error(const dcp_state *state);

/* ------------------------------------------------------------------------ */
/* Collectives                                                              */
/* ------------------------------------------------------------------------ */
/* The interface is in dcp/sys/comm.h; applications only pass it around. */
typedef struct dcp_comm dcp_comm;

DCP_EXTERN int dcp_comm_rank(const dcp_comm *comm);
DCP_EXTERN int dcp_comm_size(const dcp_comm *comm);
/* Frees a comm made by this library or an adapter (calls its destroy slot). */
DCP_EXTERN void dcp_comm_free(dcp_comm *comm);

/* A comm of one rank (rank 0 of 1). NULL if out of memory. */
DCP_EXTERN dcp_comm *dcp_comm_single_new(void);

/*
 * An in-process group of `size` ranks, one thread each. The group owns one
 * comm per rank; dcp_thread_group_comm(g, r) is to be used by exactly one
 * thread (rank r) at a time. Free the group after every thread is done.
 */
typedef struct dcp_thread_group dcp_thread_group;
DCP_EXTERN dcp_thread_group *dcp_thread_group_new(int size);
DCP_EXTERN dcp_comm *dcp_thread_group_comm(dcp_thread_group *group, int rank);
DCP_EXTERN void dcp_thread_group_free(dcp_thread_group *group);

/*
 * Runs fn(comm, rank, arg) on `size` new threads, one per rank of a fresh
 * thread group, and waits for all. results (may be NULL) receives each rank's
 * return value. Returns DCP_OK, or an error if the threads could not start.
 */
typedef int (*dcp_rank_fn)(dcp_comm *comm, int rank, void *arg);
DCP_EXTERN int dcp_run_ranks(int size, dcp_rank_fn fn, void *arg, int *results);

/* ------------------------------------------------------------------------ */
/* Plugin registry                                                          */
/* ------------------------------------------------------------------------ */
/*
 * A registry maps URL schemes to storage plugins. Plugins are found on the
 * search path: $DCP_PLUGIN_PATH (':'-separated), then "plugin_path" from the
 * conf file ($DCP_CONF, else <sysconfdir>/dcp/dcp.json), then the build tree's
 * plugin folder (for programs run from the build tree), then the install
 * directory <libdir>/dcp/plugins. Files named dcp-<name>.so are loaded with
 * dlopen on first use.
 *
 * A registry is thread-safe. NULL wherever a registry is asked for means the
 * process-wide default registry, created on first use.
 */
typedef struct dcp_registry dcp_registry;
typedef struct dcp_plugin dcp_plugin; /* defined in dcp/sys/storage.h */

DCP_EXTERN int dcp_registry_new(dcp_registry **out, dcp_error **err);
DCP_EXTERN void dcp_registry_free(dcp_registry *reg);
/* Loads a plugin from an explicit .so path and registers its schemes. */
DCP_EXTERN int dcp_registry_load(dcp_registry *reg, const char *so_path, dcp_error **err);
/* Registers a plugin compiled into the program (no dlopen): `entry` is its
 * dcp_plugin_entry function (see dcp/sys/storage.h). */
typedef struct dcp_host dcp_host;
typedef struct dcp_msg dcp_msg; /* dcp/sys/common.h */
typedef int (*dcp_plugin_entry_fn)(const dcp_host *host, dcp_plugin **out, dcp_msg *msg);
DCP_EXTERN int dcp_registry_add(dcp_registry *reg, dcp_plugin_entry_fn entry, dcp_error **err);
/* Loads every plugin on the search path (e.g. to list them). Plugins that fail
 * to load are reported in err but do not stop the others; returns the first
 * failure's code, or DCP_OK. */
DCP_EXTERN int dcp_registry_load_all(dcp_registry *reg, dcp_error **err);

/* Information about a registered plugin, for listings. */
typedef struct dcp_plugin_info {
	const char *name;           /* "fs" */
	const char *const *schemes; /* NULL-terminated */
	unsigned abi_version;
	const char *path;      /* the .so file, or "(built in)" */
	uint64_t capabilities; /* DCP_CAP_* from dcp/sys/storage.h */
} dcp_plugin_info;
DCP_EXTERN size_t dcp_registry_count(dcp_registry *reg);
/* Entry i; pointers stay valid while the registry lives. */
DCP_EXTERN int dcp_registry_info(dcp_registry *reg, size_t i, dcp_plugin_info *out);

/*
 * The plugin that handles url (after the URL pipeline: a bare path means
 * file://, "faulty+x://" goes to the faulty plugin). The registry keeps
 * ownership. For tools that drive the storage ABI directly.
 */
DCP_EXTERN int dcp_registry_find(dcp_registry *reg, const char *url, dcp_plugin **out, dcp_error **err);

/* Removes the checkpoint at url (metadata first, so it is never half there). */
DCP_EXTERN int dcp_remove(const char *url, dcp_registry *reg, dcp_error **err);

/*
 * Garbage collection at a checkpoint's URL: what saves that were killed (or
 * whose clean-up failed) left there: data objects that the committed
 * metadata does not name, temporary files, and unfinished multipart uploads.
 * The committed checkpoint is never touched; a save still in flight is
 * spared by age: only what is at least min_age_s seconds old (by the store's
 * clock) is removed, so set it above the longest a save may take (default
 * DCP_GC_DEFAULT_MIN_AGE_S). Objects whose age the store cannot tell (mem://)
 * are removed only with min_age_s = 0. Refuses (DCP_EMETADATA) when the
 * metadata at url does not decode: which objects it uses cannot be known.
 */
#define DCP_GC_DEFAULT_MIN_AGE_S 3600.0
typedef struct dcp_gc_options {
	unsigned version; /* DCP_GC_OPTIONS_VERSION */
	double min_age_s; /* see above; >= 0 */
	int dry_run;      /* 1: count what would be removed, remove nothing */
} dcp_gc_options;
#define DCP_GC_OPTIONS_VERSION 1
#define DCP_GC_OPTIONS_INIT                                         \
	{                                                           \
		DCP_GC_OPTIONS_VERSION, DCP_GC_DEFAULT_MIN_AGE_S, 0 \
	}

typedef struct dcp_gc_report {
	uint64_t objects_removed; /* or, with dry_run, that would be */
	uint64_t bytes_removed;
	uint64_t uploads_aborted;   /* unfinished multipart uploads */
	uint64_t objects_too_young; /* orphans kept: younger than min_age_s, or of unknown age */
	uint64_t uploads_too_young;
	int uploads_unlisted; /* 1: the store cannot list unfinished uploads (s3rver) */
} dcp_gc_report;

/* opts may be NULL (DCP_GC_OPTIONS_INIT); report (may be NULL) is filled
 * also on failure, with what was done before it. */
DCP_EXTERN int dcp_gc(const char *url, const dcp_gc_options *opts, dcp_registry *reg, dcp_gc_report *report,
                      dcp_error **err);

/*
 * Checks a checkpoint id the way a save (for_write = 1) or load would,
 * without touching any data: URL syntax, scheme, then the plugin's own
 * validate_checkpoint_id.
 */
DCP_EXTERN int dcp_validate_checkpoint_id(dcp_registry *reg, const char *url, int for_write, dcp_error **err);

/* ------------------------------------------------------------------------ */
/* Save and load                                                            */
/* ------------------------------------------------------------------------ */
typedef struct dcp_save_planner dcp_save_planner; /* dcp/sys/planner.h */
typedef struct dcp_load_planner dcp_load_planner; /* dcp/sys/planner.h */

typedef struct dcp_save_options {
	unsigned version;                /* DCP_SAVE_OPTIONS_VERSION */
	int coordinator;                 /* rank that plans globally and commits */
	int dedup_keep_lowest_rank;      /* 1: replicated items saved by the lowest rank
	                                    holding them; 0: balanced across ranks */
	int overwrite;                   /* 0: fail with DCP_EEXISTS if a checkpoint exists */
	const dcp_save_planner *planner; /* NULL: the default planner */
	dcp_registry *registry;          /* NULL: the default registry */
} dcp_save_options;
#define DCP_SAVE_OPTIONS_VERSION 1
#define DCP_SAVE_OPTIONS_INIT                                 \
	{                                                     \
		DCP_SAVE_OPTIONS_VERSION, 0, 0, 1, NULL, NULL \
	}

typedef struct dcp_load_options {
	unsigned version; /* DCP_LOAD_OPTIONS_VERSION */
	int coordinator;
	int partial; /* 1: keys missing from the checkpoint are skipped
	                (see dcp_state_was_loaded) instead of failing */
	int verify;  /* 1 (default): check every checksum */
	const dcp_load_planner *planner;
	dcp_registry *registry;
	/* Since version 2. Bytes of staging memory the reads of one rank may
	 * hold at once (about: a piece is widened to whole checksum blocks);
	 * 0: 256 MiB. A stored chunk whose wanted part spans more (a column of
	 * a large row-major chunk) is read in pieces of at most this span, so a
	 * resharded load never stages whole chunks. Reads straight into the
	 * destination (an identical chunk) use none. */
	uint64_t staging_limit;
} dcp_load_options;
#define DCP_LOAD_OPTIONS_VERSION 2
#define DCP_LOAD_OPTIONS_INIT                                    \
	{                                                        \
		DCP_LOAD_OPTIONS_VERSION, 0, 0, 1, NULL, NULL, 0 \
	}

/*
 * Collective: every rank of `comm` calls it with its own state and the same
 * url and options. options may be NULL (defaults). On failure, if err is not
 * NULL, *err receives an error object the caller frees; every rank gets an
 * equal one. The previous checkpoint at url stays loadable if the save fails.
 */
DCP_EXTERN int dcp_save(const dcp_state *state, const char *url, dcp_comm *comm,
                        const dcp_save_options *options, dcp_error **err);

/* Collective: fills the buffers of `state` from the checkpoint at url,
 * resharding from whatever chunking it was saved with. */
DCP_EXTERN int dcp_load(dcp_state *state, const char *url, dcp_comm *comm, const dcp_load_options *options,
                        dcp_error **err);

/*
 * Reads only the metadata of a checkpoint (for tools): on success *out is a
 * metadata object (dcp/sys/metadata.h) the caller frees with
 * dcp_metadata_free.
 */
typedef struct dcp_metadata dcp_metadata;
DCP_EXTERN int dcp_read_metadata(const char *url, dcp_registry *reg, dcp_metadata **out, dcp_error **err);
DCP_EXTERN void dcp_metadata_free(dcp_metadata *md);

#ifdef __cplusplus
}
#endif
#endif /* DCP_DCP_H */
