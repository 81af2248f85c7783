/*
 * Internal interfaces of the `dcp` command-line tool (tools/dcp). Nothing here
 * is part of libdcp's API.
 *
 * Every command is `int cmd_NAME(int argc, char **argv)` where argv[0] is the
 * command's name; it returns the process exit status:
 *   0 success,
 *   1 checkpoint failure (I/O, plan, verification, data mismatch),
 *   2 usage error, or an invalid or unsupported checkpoint id.
 * Commands print results on stdout and diagnostics on stderr.
 */
#ifndef DCP_TOOL_H
#define DCP_TOOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"

#include "comm_select.h"

#define TOOL_EXIT_OK    0
#define TOOL_EXIT_FAIL  1
#define TOOL_EXIT_USAGE 2

/* Limits on the synthetic model and on thread-ranks. */
#define TOOL_MAX_RANKS   1024
#define TOOL_MAX_TENSORS 100000

int cmd_save(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_plugins(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* args.c: option parsing and small shared helpers                          */
/* ------------------------------------------------------------------------ */

/*
 * One option of a command. `name` is the long name without dashes. An option
 * with a value sets *value (borrowed from argv) from "--name VALUE" or
 * "--name=VALUE"; a flag (value == NULL) sets *flag to 1.
 */
typedef struct arg_spec {
	const char *name;
	const char **value;
	int *flag;
} arg_spec;

/*
 * Parses argv[1..argc-1] of command `cmd` against specs (terminated by an
 * entry with name == NULL). Positional arguments go to pos[0..max_pos-1] and
 * their count to *npos. "-h" or "--help" anywhere prints `usage` on stdout.
 * Returns -1 to go on, TOOL_EXIT_OK after printing help, or TOOL_EXIT_USAGE
 * after printing what was wrong on stderr.
 */
int args_parse(const char *cmd, const char *usage, int argc, char **argv, const arg_spec *specs,
               const char **pos, int min_pos, int max_pos, int *npos);

/* Value parsers for option `opt` of `cmd`: DCP_OK, or TOOL_EXIT_USAGE after
 * saying on stderr what was expected. A NULL s leaves *out unchanged. */
int arg_int(const char *cmd, const char *opt, const char *s, long long min, long long max, long long *out);
int arg_size(const char *cmd, const char *opt, const char *s, uint64_t *out);

/* The exit status for a libdcp status code: 2 for an invalid or unsupported
 * checkpoint id (DCP_EID, DCP_ENOPLUGIN, DCP_EINVAL), 1 for anything else,
 * 0 for DCP_OK. */
int tool_exit_code(int code);

/* Prints err's "rank R: STAGE: message" lines on stderr; if err is NULL,
 * prints "<what>: <dcp_strerror(code)>" instead. Returns tool_exit_code. */
int tool_report_error(const char *what, int code, const dcp_error *err);

/*
 * The URL with "threads=T" added to its query, unless T <= 0 or the URL
 * already has a threads parameter (then an unchanged copy). With T > 0 a bare
 * path becomes an absolute file:// URL first, so that a query can follow.
 * malloc'd; NULL if out of memory.
 */
char *tool_url_with_threads(const char *url, int threads);

/* Seconds on a monotonic clock. */
double tool_now(void);

/* "1.5 KiB", "256.0 MiB": writes into buf (at least 32 bytes), returns buf. */
const char *tool_fmt_bytes(uint64_t n, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* progress.c: a progress line on stderr, only when stderr is a terminal     */
/* ------------------------------------------------------------------------ */
#define PROGRESS_MAX_PHASES 4

/*
 * Counts completed (rank, phase) steps and redraws one line on stderr. Shared
 * by the rank threads: progress_step may be called from any thread. When
 * stderr is not a terminal every call does nothing.
 */
typedef struct progress {
	pthread_mutex_t lock;
	int enabled;
	int drawn;
	const char *title; /* borrowed */
	int nranks;
	int nphases;
	const char *phases[PROGRESS_MAX_PHASES]; /* borrowed */
	int done[PROGRESS_MAX_PHASES];
	double t0;
} progress;

void progress_init(progress *p, const char *title, int nranks, const char *const *phases, int nphases);
void progress_step(progress *p, int phase);
/* Ends the line (if one was drawn) and frees the lock. */
void progress_finish(progress *p);

/* ------------------------------------------------------------------------ */
/* synth.c: the synthetic model state                                       */
/* ------------------------------------------------------------------------ */
/*
 * The tensor list depends only on (size, tensors); element values only on
 * (seed, key, global element index). The sharding of each tensor over N ranks
 * depends on N, never the values: a checkpoint saved by N ranks is checked
 * element by element by any M ranks.
 */
typedef enum synth_kind {
	SYNTH_ROW = 0, /* 2-D, rows split unevenly over the ranks */
	SYNTH_COL,     /* 2-D, columns split unevenly */
	SYNTH_MULTI,   /* 1-D, 2N uneven parts: rank r holds parts r and 2N-1-r */
	SYNTH_GRID,    /* 3-D, dims 1 and 2 split over a px x py grid of ranks */
	SYNTH_REPL,    /* whole tensor on every rank (replicated) */
	SYNTH_SCALAR   /* 0-D replicated */
} synth_kind;

typedef struct synth_tensor {
	char key[96];
	synth_kind kind;
	dcp_dtype dtype;
	int ndim;
	uint64_t shape[DCP_MAX_DIMS];
	uint64_t salt; /* varies the uneven split between tensors */
} synth_tensor;

#define SYNTH_CONFIG_KEY "dcp.synth.config"
#define SYNTH_RNG_KEY    "rng.state"
#define SYNTH_CONFIG_MAX (64u * 1024u)

typedef struct synth_spec {
	uint64_t size;
	uint64_t seed;
	size_t ntensors;
	synth_tensor *tensors;
	char *config; /* JSON of the config bytes item, NUL-terminated */
	size_t config_len;
	size_t rng_len;       /* bytes of the rng.state item (held by rank 0) */
	uint64_t total_bytes; /* every tensor and bytes item counted once */
	uint64_t elements;    /* tensor elements, counted once */
} synth_spec;

/* Builds the spec; DCP_EINVAL or DCP_ENOMEM with a message in err. */
int synth_spec_build(uint64_t size, size_t ntensors, uint64_t seed, synth_spec *out, char *err,
                     size_t errlen);
/* Builds the spec described by a config bytes item (written by a save). */
int synth_spec_from_config(const void *json, size_t len, synth_spec *out, char *err, size_t errlen);
void synth_spec_clear(synth_spec *spec);
/* Checks that md holds exactly the spec's keys with its dtypes and shapes.
 * DCP_OK, or DCP_EMISMATCH with what differs in err. */
int synth_spec_check_metadata(const synth_spec *spec, const dcp_metadata *md, char *err, size_t errlen);

typedef struct synth_chunk {
	size_t tensor; /* index into spec->tensors */
	uint64_t offsets[DCP_MAX_DIMS];
	uint64_t sizes[DCP_MAX_DIMS];
	void *data; /* owned by the synth_rank */
	uint64_t nbytes;
} synth_chunk;

/* One rank's share of the synthetic state and the dcp_state describing it. */
typedef struct synth_rank {
	dcp_state *state;
	size_t nchunks;
	synth_chunk *chunks;
	void *rng;      /* rng.state buffer (save: rank 0 only; load: every rank) */
	uint64_t bytes; /* bytes this rank holds (chunks, replicas, bytes items) */
	uint64_t elements;
} synth_rank;

/*
 * Builds rank `rank` of `nranks`: for a save, buffers hold the values of
 * spec->seed; for a load (for_load = 1), buffers are poisoned and every rank
 * holds rng.state. DCP_OK, or an error with a message in err.
 */
int synth_rank_build(const synth_spec *spec, int rank, int nranks, int for_load, synth_rank *out, char *err,
                     size_t errlen);
void synth_rank_clear(synth_rank *r);

/*
 * Compares every element this rank holds with the values of spec->seed.
 * Returns the number of differing elements (0: all match) and describes the
 * first one (key, global index, coordinates, found and expected bytes) in msg.
 */
uint64_t synth_rank_check(const synth_spec *spec, const synth_rank *r, char *msg, size_t msglen);

/* ------------------------------------------------------------------------ */
/* jobs.c: save and load of the synthetic state on N thread-ranks           */
/* ------------------------------------------------------------------------ */
typedef struct job_result {
	int status;         /* DCP_OK, a DCP_E* code, or 1 for a data mismatch */
	dcp_error *err;     /* of the failed collective (rank 0's copy), or NULL */
	char message[1024]; /* a failure outside libdcp (state building, mismatch) */
	double seconds;     /* from all ranks ready to the last rank done */
	uint64_t bytes;     /* bytes held by all ranks together */
	uint64_t elements;  /* elements checked (load) */
	uint64_t mismatches;
	synth_spec spec; /* load: the spec read from the checkpoint */
} job_result;

/* Saves the synthetic state of spec on nranks thread-ranks to url. */
int job_save(const synth_spec *spec, const char *url, int nranks, int overwrite, const char *title,
             job_result *out);
/*
 * Loads url on nranks thread-ranks into their own sharding and checks every
 * element. seed: the seed to check against, or NULL for the one recorded in
 * the checkpoint. Returns DCP_OK, a libdcp code, or 1 for a mismatch
 * (described in out->message, one line per rank).
 */
int job_load(const char *url, int nranks, const uint64_t *seed, const char *title, job_result *out);
/*
 * The same on the ranks that tc chooses (comm_select.h): with MPI, this
 * process runs only its own rank of nranks (tc->size) and out describes that
 * rank; the error object of a failed collective is the same on every process.
 * tc NULL: threads, as job_save and job_load.
 */
int job_save_on(tool_comm *tc, const synth_spec *spec, const char *url, int nranks, int overwrite,
                const char *title, job_result *out);
int job_load_on(tool_comm *tc, const char *url, int nranks, const uint64_t *seed, const char *title,
                job_result *out);
/* Prints the failure of a job on stderr; returns the exit status. */
int job_report(const char *what, const job_result *res);
void job_result_clear(job_result *res);
/* Prints one JSON object (url, ranks, bytes, seconds, bytes_per_second, ...)
 * on stdout. res->spec must describe the state. Returns the exit status. */
int job_print_json(const char *command, const char *url, int nranks, const job_result *res);

/* ------------------------------------------------------------------------ */
/* cmd_inspect.c, shared with demo                                          */
/* ------------------------------------------------------------------------ */
typedef struct md_totals {
	size_t tensors, bytes_items, chunks, files;
	uint64_t stored_bytes;
} md_totals;
/* Counts items, chunks, distinct files and stored bytes. DCP_ENOMEM possible. */
int md_count(const dcp_metadata *md, md_totals *out);
/* The summary block of `dcp inspect` (format, save id, counts). */
void inspect_print_summary(FILE *f, const char *url, const dcp_metadata *md);

/* ------------------------------------------------------------------------ */
/* whole_state.c: a one-rank state built from a checkpoint's metadata        */
/* ------------------------------------------------------------------------ */
typedef struct md_state {
	dcp_state *state;
	size_t nbufs;
	void **bufs;    /* tensor buffers, owned; bytes items are owned by state */
	uint64_t bytes; /* bytes the state will hold once loaded */
} md_state;

/*
 * Describes items [first, last) of md in a new state: each tensor whole
 * (per_chunk = 0) or as one chunk per stored chunk (per_chunk = 1), and each
 * bytes item with a state-allocated buffer of its stored length.
 */
int md_state_build(const dcp_metadata *md, size_t first, size_t last, int per_chunk, md_state *out, char *err,
                   size_t errlen);
void md_state_clear(md_state *s);
/* Bytes of an item once loaded (a tensor whole, or a bytes item). */
uint64_t md_item_bytes(const dcp_md_item *it);

#endif /* DCP_TOOL_H */
