/*
 * dcp-crash-trials (crash_trials.c), its pieces: options and the summary
 * (crash_cli.c), the PRNG and folder helpers (crash_util.c), running the dcp
 * tool (crash_tool.c). Private to the program.
 */
#ifndef DCP_CRASH_TRIALS_H
#define DCP_CRASH_TRIALS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "crash.h"
#include "dcp/dcp.h"

extern const char USAGE[];
enum { PH_BEFORE_DATA, PH_DURING_DATA, PH_BEFORE_COMMIT, PH_AFTER_COMMIT, PH_UNKNOWN, PH_COUNT };
extern const char *const PHASE_NAMES[PH_COUNT];
/* OUT_TORN: s3rver only. s3rver writes an object's file as the request body
 * arrives, so a client killed during the PUT of .metadata leaves it empty
 * (S3 and radosgw never store an object whose request did not complete):
 * counted and reported, not a failure of libdcp. */
enum { OUT_A, OUT_B, OUT_NONE, OUT_TORN, OUT_COUNT };
extern const char *const OUTCOME_NAMES[OUT_COUNT];

#define URL_MAX   1024 /* a trial's URL or folder */
#define MSG_MAX   4096 /* an error message */
#define FRAC_BINS 6    /* timed kills by delay / duration, in steps of 0.2 up to 1.2 */

typedef struct options {
	const char *url;
	char *url_path;    /* URL up to its query (owned) */
	const char *query; /* "?..." or "" */
	int s3;
	const char *observe;
	char observe_buf[PATH_MAX];
	char dcp[PATH_MAX + 8];
	long long trials, seed, only_trial;
	int ranks, load_ranks, tensors;
	const char *size;
	int64_t duration_us;
	int clean, keep, resave_every, quiet;
	int seed_given;
} options;

typedef struct totals {
	long long trials, failures, outcome[OUT_COUNT], phase[PH_COUNT];
	long long timed, hooked, first, exited_before_kill;
	long long frac[FRAC_BINS], frac_phase[FRAC_BINS][PH_COUNT];
	long long hook_step[CRASH_STEP_COUNT];
} totals;

typedef struct calib {
	int64_t duration_us;
	int ndata; /* data objects of one save */
} calib;

typedef struct trial {
	long long n;
	uint64_t rng;
	int first;      /* the killed save is the first one at the location */
	int hook;       /* crash_step, or -1: timed */
	int hook_count; /* kill at this many events of the hook step */
	double frac;    /* timed: delay / duration */
	int64_t delay_us;
	uint64_t seed_a, seed_b, seed_c;
	char name[64], url[URL_MAX], dir[URL_MAX];
	int phase, outcome;
	int exited;             /* the save ended before the kill */
	char what[2 * MSG_MAX]; /* the failure */
} trial;

typedef struct tool_args {
	char *argv[16];
	char bufs[8][32];
	int argc, nbuf;
} tool_args;

uint64_t mix64(uint64_t z);
uint64_t rng_next(uint64_t *s);
double rng_unit(uint64_t *s);      /* [0, 1) */
int rng_below(uint64_t *s, int n); /* [0, n) */
int parse_ll(const char *opt, const char *s, long long lo, long long hi, long long *out);
int remove_tree(const char *dir);
int mkdir_p(const char *dir);
int dir_entries(const char *dir);
int only_save_id(const char *dir, int s3rver, char *id, size_t idlen, char *err, size_t errlen);
void print_output(const char *what, const crash_child *c);
void save_args(const options *o, tool_args *a, const char *url, uint64_t seed);
int run_save(const options *o, const char *url, uint64_t seed, crash_watch *w, crash_child *c, char *err,
             size_t errlen);
int run_load(const options *o, const char *url, const uint64_t *check_seed, uint64_t *seed_out,
             crash_child *c, char *err, size_t errlen);
void trial_url(const options *o, const char *name, char *out, size_t len);
void trial_dir(const options *o, const char *name, char *out, size_t len);
int fresh_dir(const options *o, const char *dir, char *err, size_t errlen);
void describe_kill(const trial *t, const calib *cal, char *buf, size_t len);
void print_repro(const options *o, const calib *cal, const trial *t, const char *argv0);
int parse_options(int argc, char **argv, options *o);
void print_summary(const options *o, const totals *s, double secs);

#endif /* DCP_CRASH_TRIALS_H */
