/*
 * Test support for libdcp's Criterion suites, written against the public API
 * only (dcp/dcp.h, and dcp/sys/ for the compiled-in test plugins).
 *
 * Pieces:
 * - Layouts: a description of a whole checkpointed state across N ranks
 *   (sharded tensors with an explicit chunking, replicated tensors, bytes
 *   items), from which the state of any one rank is built.
 * - Values: every element is a deterministic function of (seed, key, global
 *   element index), so that a state saved with one chunking can be checked
 *   after a load with any other chunking, bit-exact.
 * - Runners: run N thread-ranks (or one rank on the calling thread, the
 *   "no-dist" case) with a per-rank closure, and collect every rank's status,
 *   error object and check result, so that assertions run on the test's main
 *   thread afterwards (Criterion assertions must not run on other threads).
 * - Assertions on outcomes: all ranks succeeded and match; or all ranks failed
 *   with the same error object naming exactly the expected ranks, step, stage.
 * - A no-op storage plugin compiled into the test program (noop_plugin.c).
 *
 * Threads: layout builders and dt_assert_* run on the test's main thread.
 * dt_rank_state_* and value functions may run on any thread.
 * Memory: helpers that cannot allocate abort the test process with a message
 * (an out-of-memory test run is not worth recovering from).
 */
#ifndef DCP_TESTS_SUPPORT_DCPTEST_H
#define DCP_TESTS_SUPPORT_DCPTEST_H

#include <stddef.h>
#include <stdint.h>

#include "dcp/dcp.h"

#define DT_MAX_RANKS  16
#define DT_MAX_ITEMS  48
#define DT_MAX_CHUNKS 64
#define DT_KEY_MAX    160
#define DT_WHY_MAX    768
#define DT_URL_MAX    1024
/* Per-test Criterion timeout, in seconds: a hang in the core fails one test
 * instead of stalling the whole run. */
#define DT_TIMEOUT 120.0

/* Rank masks: DT_RANKS(n) is ranks 0..n-1; DT_RANK(r) is rank r alone. */
#define DT_RANK(r)  (UINT64_C(1) << (r))
#define DT_RANKS(n) ((n) >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << (n)) - 1)

/* ------------------------------------------------------------------------ */
/* Layouts                                                                  */
/* ------------------------------------------------------------------------ */
typedef enum dt_kind {
	DT_SHARDED = 1,    /* dcp_state_add_shard, one call per chunk */
	DT_REPLICATED = 2, /* dcp_state_add_tensor on every holder rank */
	DT_BYTES = 3       /* dcp_state_add_bytes on every holder rank */
} dt_kind;

typedef struct dt_chunk {
	int rank;
	uint64_t off[DCP_MAX_DIMS];
	uint64_t size[DCP_MAX_DIMS];
} dt_chunk;

typedef struct dt_item {
	char key[DT_KEY_MAX];
	dt_kind kind;
	dcp_dtype dtype; /* tensors */
	int ndim;        /* tensors; 0 = scalar */
	uint64_t shape[DCP_MAX_DIMS];
	size_t nchunks; /* DT_SHARDED */
	dt_chunk chunks[DT_MAX_CHUNKS];
	uint64_t holders; /* DT_REPLICATED and DT_BYTES: mask of ranks that add it */
	/* DT_BYTES: the stored length (save), the expected loaded length (load). */
	size_t len;
	/* DT_BYTES, load: buffer capacity given to dcp_state_add_bytes (0: len). */
	size_t capacity;
	/* DT_BYTES, load: pass data == NULL so that the state allocates. */
	int lib_alloc;
	/* Save: ranks in this mask hold values of their own (a divergent
	 * replicated copy); others hold the seed's values. */
	uint64_t diverge;
	/* Load: the key is expected to be skipped (partial load): its buffers
	 * stay untouched and dcp_state_was_loaded says 0. */
	int expect_missing;
} dt_item;

typedef struct dt_layout {
	size_t nitems;
	dt_item items[DT_MAX_ITEMS];
} dt_layout;

/* A new empty layout (heap; it is large). Free with dt_layout_free. */
dt_layout *dt_layout_new(void);
void dt_layout_free(dt_layout *l);
/* Deep copy (layouts hold no pointers). */
dt_layout *dt_layout_dup(const dt_layout *l);
/* The item with key, or NULL. */
dt_item *dt_layout_find(dt_layout *l, const char *key);

/* Adds a sharded tensor with no chunks yet; add them with dt_chunk_add or
 * dt_split. shape has ndim entries (may be NULL when ndim == 0). */
dt_item *dt_add_sharded(dt_layout *l, const char *key, dcp_dtype dtype, int ndim, const uint64_t *shape);
/* Adds a whole tensor held (replicated) by the ranks in `holders`. */
dt_item *dt_add_replicated(dt_layout *l, const char *key, dcp_dtype dtype, int ndim, const uint64_t *shape,
                           uint64_t holders);
/* Adds a bytes item of len bytes held by the ranks in `holders`. */
dt_item *dt_add_bytes(dt_layout *l, const char *key, size_t len, uint64_t holders);

/* Adds one chunk: the box at off with size (ndim entries each) on rank. */
void dt_chunk_add(dt_item *it, int rank, const uint64_t *off, const uint64_t *size);
/*
 * Splits the tensor along `dim` like a chunk sharding spec: nparts parts of
 * ceil(shape[dim] / nparts) (the last ones shorter, empty parts dropped),
 * part i placed on placement[i] (NULL: rank i). The other dims are whole.
 */
void dt_split(dt_item *it, int dim, size_t nparts, const int *placement);
/* Splits along dim at explicit bounds: part i is [bounds[i], bounds[i+1]),
 * placed on placement[i] (NULL: rank i). */
void dt_split_at(dt_item *it, int dim, size_t nparts, const uint64_t *bounds, const int *placement);
/* Splits along two dims into a grid of parts0 x parts1 blocks (each like
 * dt_split); block (i, j) goes to rank placement[i * parts1 + j] (NULL:
 * (i * parts1 + j) % nranks). */
void dt_split_grid(dt_item *it, int dim0, size_t parts0, int dim1, size_t parts1, const int *placement,
                   int nranks);

/* Number of elements of a tensor shape (1 for a scalar). */
uint64_t dt_numel(int ndim, const uint64_t *shape);

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */
/*
 * Writes the dcp_dtype_size(dtype) bytes of element `gidx` (row-major index
 * in the global tensor) of key under seed. Bools are 0 or 1; other dtypes
 * take arbitrary bit patterns (the library copies bytes; it never does
 * arithmetic on them).
 */
void dt_value(uint64_t seed, const char *key, dcp_dtype dtype, uint64_t gidx, unsigned char *out);
/* The seed that rank uses for item under `seed` (differs on divergent ranks). */
uint64_t dt_item_seed(const dt_item *it, int rank, uint64_t seed);
/* Fills n bytes with the values of a bytes item (byte i = U8 element i). */
void dt_fill_bytes(uint64_t seed, const char *key, unsigned char *buf, size_t n);

/* ------------------------------------------------------------------------ */
/* Per-rank states built from a layout                                      */
/* ------------------------------------------------------------------------ */
typedef enum dt_fill {
	DT_FILL_VALUES = 1, /* the seed's values: a state to save */
	DT_FILL_INVERSE = 2 /* every byte differs from the seed's value: a state to load into */
} dt_fill;

typedef struct dt_rank_state {
	const dt_layout *layout; /* borrowed */
	int rank;
	uint64_t seed;
	dt_fill fill;
	dcp_state *state;
	void *buf[DT_MAX_ITEMS][DT_MAX_CHUNKS]; /* owned; NULL where not held */
	size_t bufsize[DT_MAX_ITEMS][DT_MAX_CHUNKS];
	int add_failed; /* a dcp_state_add_* call failed: why says which */
	char why[DT_WHY_MAX];
} dt_rank_state;

/* Builds rank's state from l: one dcp_state_add_* per chunk the rank holds,
 * buffers filled as `fill` says. Never NULL (aborts when out of memory). */
dt_rank_state *dt_rank_state_new(const dt_layout *l, int rank, dt_fill fill, uint64_t seed);
void dt_rank_state_free(dt_rank_state *rs);
/*
 * After a successful load: every buffer of the rank holds the values of seed
 * (items with expect_missing: untouched and not loaded; bytes items: the
 * loaded length and bytes, via dcp_state_get_bytes). Returns 0 if all match,
 * else 1 with the first difference described in why.
 */
int dt_rank_state_check(const dt_rank_state *rs, char *why, size_t whylen);

/* ------------------------------------------------------------------------ */
/* Running ranks                                                            */
/* ------------------------------------------------------------------------ */
typedef struct dt_outcome {
	int n; /* ranks that ran */
	int status[DT_MAX_RANKS];
	dcp_error *err[DT_MAX_RANKS]; /* owned; NULL on success */
	int bad[DT_MAX_RANKS];        /* the rank's own check failed: see why */
	char why[DT_MAX_RANKS][DT_WHY_MAX];
	dt_rank_state *rs[DT_MAX_RANKS]; /* owned, kept for inspection; may be NULL */
} dt_outcome;

void dt_outcome_init(dt_outcome *o);
/* Frees errors and states and re-initialises. */
void dt_outcome_clear(dt_outcome *o);

/* A per-rank closure. It runs on the rank's thread, must take part in every
 * collective of the test, and records into out->status[rank], out->err[rank],
 * out->bad[rank], out->why[rank] and out->rs[rank] (only its own slots). */
typedef int (*dt_rank_fn)(dcp_comm *comm, int rank, void *arg, dt_outcome *out);
typedef struct dt_closure {
	dt_rank_fn fn;
	void *arg;
} dt_closure;

/*
 * Runs closures[r] on rank r of a fresh group of n thread-ranks (1 <= n <=
 * DT_MAX_RANKS) and waits for all. With n == 0, runs closures[0] on the
 * calling thread over a single-rank comm (no-dist) and sets out->n = 1.
 * out is initialised here. Returns DCP_OK, or the failure to start threads.
 */
int dt_run_closures(int n, const dt_closure *closures, dt_outcome *out);
/* The same closure on every rank. */
int dt_run(int n, dt_rank_fn fn, void *arg, dt_outcome *out);

/* Every rank of n (0: no-dist) builds its state from l with seed's values
 * and calls dcp_save(url, opts). States are kept in out->rs. */
void dt_save(const dt_layout *l, int n, const char *url, const dcp_save_options *opts, uint64_t seed,
             dt_outcome *out);
/* Every rank builds an inverse-filled state and calls dcp_load; on success
 * each rank checks its buffers against seed (out->bad, out->why). */
void dt_load(const dt_layout *l, int n, const char *url, const dcp_load_options *opts, uint64_t seed,
             dt_outcome *out);

/* ------------------------------------------------------------------------ */
/* Assertions (main thread only)                                            */
/* ------------------------------------------------------------------------ */
/* Every rank returned DCP_OK with no error object, and passed its check. */
void dt_assert_ok(const dt_outcome *o, const char *what);

typedef struct dt_expect {
	int status;          /* expected status on every rank; 0: any nonzero (but equal) */
	int any_ranks;       /* 1: do not check which ranks failed */
	uint64_t ranks;      /* else: exactly these ranks are the error's entries */
	const char *step;    /* "plan", "write", "read"; NULL: not checked */
	const char *stage;   /* substring of every entry's stage; NULL: not checked */
	int entry_code;      /* every entry's code; 0: not checked */
	const char *mention; /* substring of the formatted error; NULL: not checked */
	const char *mention2;
	const char *mention3;
} dt_expect;

/*
 * Every rank returned the same nonzero status, equal to its error object's
 * dcp_error_code; every rank's error object formats to the same text; and
 * the error matches e.
 */
void dt_assert_failed(const dt_outcome *o, const dt_expect *e, const char *what);

/* The formatted error (dcp_error_format), or a placeholder; caller frees. */
char *dt_error_text(const dcp_error *err);
/* 1 if the formatted error contains needle. */
int dt_error_mentions(const dcp_error *err, const char *needle);

/* ------------------------------------------------------------------------ */
/* Misc                                                                     */
/* ------------------------------------------------------------------------ */
/* snprintf into buf, aborting the test if it does not fit. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
char *
dt_fmt(char *buf, size_t size, const char *fmt, ...);

/* The writing rank encoded in a storage path named "__<rank>_..." (in its
 * last component), or -1. */
int dt_path_rank(const char *path);

/* A fresh directory under $TMPDIR or /tmp (mkdtemp); writes its path into
 * buf. Aborts the test on failure. */
char *dt_mkdtemp(char *buf, size_t size, const char *prefix);
/* Removes a directory tree (best effort; for cleanup). */
void dt_rmtree(const char *path);

/* Makes permission bits apply to this process when it runs as root: drops
 * the capabilities that let root ignore them (dcptest_privs.c); nothing to do
 * for any other user. For good: call it only in a test of its own (Criterion
 * runs each test in a process of its own). Fails the test if the kernel
 * refuses. */
void dt_drop_file_privileges(void);

/* The directory of the running executable (for finding build-tree files). */
char *dt_exe_dir(char *buf, size_t size);

/* Aborting allocators for test code. */
void *dt_xmalloc(size_t n);
void *dt_xcalloc(size_t n, size_t size);

/* ------------------------------------------------------------------------ */
/* The compiled-in no-op plugin (noop_plugin.c)                             */
/* ------------------------------------------------------------------------ */
/*
 * A storage plugin that stores no data: writers accept every item and report
 * it written (paths "noop/__<rank>_0", contiguous offsets); finish keeps a
 * copy of the committed metadata; readers return that metadata and their
 * read_data completes at once without touching any buffer. Used through
 * dcp_registry_add on a private registry: scheme "noop" (dt_noop_plugin_entry)
 * or scheme "file" (dt_fakefile_plugin_entry, to test the bare-path rule
 * without the fs plugin).
 */
int dt_noop_plugin_entry(const dcp_host *host, dcp_plugin **out, dcp_msg *msg);
int dt_fakefile_plugin_entry(const dcp_host *host, dcp_plugin **out, dcp_msg *msg);

/* How often each slot of a noop plugin was called. */
typedef struct dt_noop_counts {
	unsigned validate, writer_open, reader_open;
	unsigned set_up_storage_writer, writer_prepare_local_plan, writer_prepare_global_plan;
	unsigned write_data, finish, writer_close, writer_abort;
	unsigned read_metadata, set_up_storage_reader, reader_prepare_local_plan, reader_prepare_global_plan;
	unsigned read_data, reader_close;
	uint64_t items_written, bytes_written;
} dt_noop_counts;

/* Fills *out; p must be a plugin made by a dt_*_plugin_entry. */
void dt_noop_get_counts(dcp_plugin *p, dt_noop_counts *out);
/* 1 if p was made by a dt_*_plugin_entry. */
int dt_is_noop_plugin(const dcp_plugin *p);

#endif /* DCP_TESTS_SUPPORT_DCPTEST_H */
