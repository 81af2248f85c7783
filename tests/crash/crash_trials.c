/*
 * dcp-crash-trials: kills saves at random moments and checks what survives.
 *
 * For a base URL (file:// or s3://), each trial uses a location of its own,
 * BASE/s<seed>-t<trial>, and
 *   1. saves state A (the dcp tool's synthetic state, seed A) there, to its
 *      end, in a child process (skipped in a "first save" trial);
 *   2. starts a save of state B (seed B) over it in another child, and kills
 *      that child with SIGKILL: after a delay drawn uniformly from
 *      [0, 1.2 x the measured duration of a save] ("timed"), or at once when
 *      the storage shows a chosen step of the save ("hooked": the k-th data
 *      object created or closed, the metadata's temporary file, the commit,
 *      the first old object removed; seen through inotify on the folder that
 *      holds the objects, see crash_watch.c);
 *   3. in fresh processes, reads the metadata and loads the checkpoint with
 *      `dcp load`, which checks every element and byte against the seed the
 *      checkpoint records: it must load bit-exact as A or as B, and in a
 *      "first save" trial it may also be absent, which must be DCP_ENOTFOUND
 *      (no checkpoint), never a checkpoint that fails to load;
 *   4. saves state C over whatever is there and loads it back as C: a killed
 *      save must not leave anything that blocks the next one.
 * Where the storage is watched, the phase of the save at the kill is read
 * from the events the save caused before it died (before any data, during
 * data, between data and commit, after commit) and checked against the
 * outcome: B loads exactly when the commit was seen.
 *
 * Every draw comes from a PRNG seeded with (seed, trial), so `--seed S
 * --trial N` repeats trial N of a run (with --duration-us, its kill delay to
 * the microsecond). See tests/crash/README.md.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "crash.h"
#include "dcp/dcp.h"

static const char USAGE[] =
        "usage: dcp-crash-trials [options] URL\n"
        "\n"
        "Saves state A at URL/s<seed>-t<trial>, kills an overwriting save of state B at a random\n"
        "moment (SIGKILL), then checks in fresh processes that the checkpoint loads bit-exact as A\n"
        "or as B (or, when the killed save was the first one, that there is no checkpoint:\n"
        "DCP_ENOTFOUND), and that a new save over it succeeds. URL: file:///dir, a path, or\n"
        "s3://bucket/prefix (credentials and endpoint from the environment, as for dcp).\n"
        "\n"
        "  --trials N        trials to run (default: $DCP_CRASH_TRIALS, else 50)\n"
        "  --seed S          seed of the run (default: $DCP_CRASH_SEED, else from the clock)\n"
        "  --trial N         run only trial N of the run with --seed S\n"
        "  --duration-us D   take D microseconds as the duration of a save instead of measuring\n"
        "                    it (printed by every run; with --trial, repeats a kill delay exactly)\n"
        "  --observe DIR     the folder where the objects under URL appear as files (for s3rver:\n"
        "                    $S3RVER_DATA_DIR/BUCKET/PREFIX); default: URL's folder for file://,\n"
        "                    none for s3:// (then no hooked kills and no phases)\n"
        "  --dcp PATH        the dcp tool (default: dcp next to this program)\n"
        "  --ranks N         ranks that save (default 2)\n"
        "  --load-ranks N    ranks that load (default 3)\n"
        "  --size SIZE       bytes of the synthetic state, dcp save --size (default 256K)\n"
        "  --tensors K       tensors of the synthetic state (default 8)\n"
        "  --clean           remove what a trial's folder holds from an earlier run (file:// only)\n"
        "  --keep            keep every trial's checkpoint (default: only failed ones)\n"
        "  --resave-every N  step 4 (the save of C after the kill) in every N-th trial (default 1)\n"
        "  --no-resave       never step 4 (--resave-every 0)\n"
        "  --quiet           print only failures and the summary\n"
        "\n"
        "Exit status: 0 every trial passed; 1 a trial failed (its seed, trial and a command to\n"
        "repeat it are printed); 2 usage error or the trials could not run.\n";

enum { PH_BEFORE_DATA, PH_DURING_DATA, PH_BEFORE_COMMIT, PH_AFTER_COMMIT, PH_UNKNOWN, PH_COUNT };
static const char *const PHASE_NAMES[PH_COUNT] = {"before-data", "during-data", "before-commit",
                                                  "after-commit", "unknown"};
/* OUT_TORN: s3rver only. s3rver writes an object's file as the request body
 * arrives, so a client killed during the PUT of .metadata leaves it empty
 * (S3 and radosgw never store an object whose request did not complete):
 * counted and reported, not a failure of libdcp. */
enum { OUT_A, OUT_B, OUT_NONE, OUT_TORN, OUT_COUNT };
static const char *const OUTCOME_NAMES[OUT_COUNT] = {"A", "B", "none"};

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

/* ---- PRNG: splitmix64, one stream per (seed, trial) ---- */

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
	return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static int rng_below(uint64_t *s, int n) /* [0, n) */
{
	return (int)(rng_unit(s) * n);
}

/* ---- small helpers ---- */

static int parse_ll(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "dcp-crash-trials: %s: expected a whole number from %lld to %lld, got '%s'\n",
		        opt, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

static int remove_tree(const char *dir)
{
	struct stat st;
	if (lstat(dir, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* Number of entries in dir other than . and ..; 0 if it does not exist; -1 on error. */
static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	int n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/*
 * The save id of the one save whose data objects dir holds, into id.
 * 0, or -1 with err (no data object, or objects of several saves).
 */
static int only_save_id(const char *dir, int s3rver, char *id, size_t idlen, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		snprintf(err, errlen, "cannot list %s: %s", dir, strerror(errno));
		return -1;
	}
	int n = 0, rc = 0;
	char one[256];
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (!crash_data_object_id(e->d_name, s3rver, one, sizeof(one)))
			continue;
		if (n++ == 0) {
			snprintf(id, idlen, "%s", one);
		} else if (strcmp(one, id) != 0 && rc == 0) {
			snprintf(err, errlen,
			         "%s holds data objects of two saves (ids %s and %s) after one completed "
			         "save: the save left objects of another behind",
			         dir, id, one);
			rc = -1;
		}
	}
	closedir(d);
	if (n == 0 && rc == 0) {
		snprintf(err, errlen,
		         "%s holds no data object after a completed save: is --observe the folder where "
		         "the objects of the URL appear?",
		         dir);
		rc = -1;
	}
	return rc;
}

static void print_output(const char *what, const crash_child *c)
{
	if (c->out.len > 0)
		fprintf(stderr, "  %s stdout:\n%s%s", what, c->out.data,
		        c->out.data[c->out.len - 1] == '\n' ? "" : "\n");
	if (c->err.len > 0)
		fprintf(stderr, "  %s stderr:\n%s%s", what, c->err.data,
		        c->err.data[c->err.len - 1] == '\n' ? "" : "\n");
}

/* ---- the dcp tool ---- */

typedef struct tool_args {
	char *argv[16];
	char bufs[8][32];
	int argc, nbuf;
} tool_args;

static void ta_add(tool_args *a, const char *s)
{
	a->argv[a->argc++] = (char *)s;
	a->argv[a->argc] = NULL;
}

static void ta_addf_ll(tool_args *a, const char *opt, long long v)
{
	ta_add(a, opt);
	snprintf(a->bufs[a->nbuf], sizeof(a->bufs[0]), "%lld", v);
	ta_add(a, a->bufs[a->nbuf++]);
}

static void save_args(const options *o, tool_args *a, const char *url, uint64_t seed)
{
	memset(a, 0, sizeof(*a));
	ta_add(a, o->dcp);
	ta_add(a, "save");
	ta_addf_ll(a, "--ranks", o->ranks);
	ta_add(a, "--size");
	ta_add(a, o->size);
	ta_addf_ll(a, "--tensors", o->tensors);
	ta_addf_ll(a, "--seed", (long long)seed);
	ta_add(a, url);
}

static void load_args(const options *o, tool_args *a, const char *url, const uint64_t *seed)
{
	memset(a, 0, sizeof(*a));
	ta_add(a, o->dcp);
	ta_add(a, "load");
	ta_add(a, "--json");
	ta_addf_ll(a, "--ranks", o->load_ranks);
	if (seed != NULL)
		ta_addf_ll(a, "--seed", (long long)*seed);
	ta_add(a, url);
}

/* Runs `dcp save` to its end; 0 if it exited 0, else -1 with err. */
static int run_save(const options *o, const char *url, uint64_t seed, crash_watch *w, crash_child *c,
                    char *err, size_t errlen)
{
	tool_args a;
	char st[64];
	save_args(o, &a, url, seed);
	if (crash_run(a.argv, NULL, w, c, err, errlen) != 0)
		return -1;
	if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
		snprintf(err, errlen, "dcp save --seed %llu %s failed (%s)", (unsigned long long)seed, url,
		         crash_describe_status(c->status, st, sizeof(st)));
		print_output("dcp save", c);
		return -1;
	}
	return 0;
}

/*
 * Loads url with `dcp load --json` (every element checked against the
 * recorded seed, or *check_seed): 0 with the seed of the checkpoint in
 * *seed_out if it loaded and matched; 1 if the tool exited 1 (failed or
 * mismatched); -1 with err if it could not be run or said something else.
 */
static int run_load(const options *o, const char *url, const uint64_t *check_seed, uint64_t *seed_out,
                    crash_child *c, char *err, size_t errlen)
{
	tool_args a;
	char st[64];
	load_args(o, &a, url, check_seed);
	if (crash_run(a.argv, NULL, NULL, c, err, errlen) != 0)
		return -1;
	if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == 1)
		return 1;
	if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
		snprintf(err, errlen, "dcp load %s ended with %s", url,
		         crash_describe_status(c->status, st, sizeof(st)));
		return -1;
	}
	cJSON *j = c->out.data != NULL ? cJSON_ParseWithLength(c->out.data, c->out.len) : NULL;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "seed");
	const cJSON *mm = cJSON_GetObjectItemCaseSensitive(j, "mismatches");
	int ok = cJSON_IsString(s) && cJSON_IsNumber(mm) && mm->valuedouble == 0;
	if (ok) {
		char *end = NULL;
		*seed_out = strtoull(s->valuestring, &end, 10);
		ok = end != s->valuestring && *end == '\0';
	}
	cJSON_Delete(j);
	if (!ok) {
		snprintf(err, errlen,
		         "dcp load --json %s exited 0 but its output has no \"seed\" string and zero "
		         "\"mismatches\": is --dcp the dcp tool of this tree?",
		         url);
		return -1;
	}
	return 0;
}

/* ---- locations ---- */

static void trial_url(const options *o, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s%s", o->url_path, name, o->query);
}

static void trial_dir(const options *o, const char *name, char *out, size_t len)
{
	if (o->observe != NULL)
		snprintf(out, len, "%s/%s", o->observe, name);
	else
		out[0] = '\0';
}

/* Makes dir an empty folder for a trial: 0, or -1 with err. */
static int fresh_dir(const options *o, const char *dir, char *err, size_t errlen)
{
	int n = dir_entries(dir);
	if (n < 0) {
		snprintf(err, errlen, "cannot list %s: %s", dir, strerror(errno));
		return -1;
	}
	if (n > 0) {
		if (!o->clean || o->s3) {
			snprintf(err, errlen, "%s already holds %d entries from an earlier run: %s", dir, n,
			         o->s3 ? "use a fresh prefix (or a fresh s3rver)"
			               : "pass --clean to remove them, or use a fresh URL");
			return -1;
		}
		if (remove_tree(dir) != 0) {
			snprintf(err, errlen, "--clean: cannot remove %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	if (mkdir_p(dir) != 0) {
		snprintf(err, errlen, "cannot create folder %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- calibration: how long a save takes, how many data objects it writes ---- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int calibrate(const options *o, calib *cal)
{
	char url[URL_MAX], dir[URL_MAX], name[64], err[MSG_MAX], id[256];
	enum { RUNS = 3 };
	int64_t dur[RUNS];
	crash_watch w;
	crash_child c;
	const uint64_t seeds[RUNS + 1] = {101, 102, 103, 104};
	int ndata = -1, rc = -1;

	snprintf(name, sizeof(name), "s%lld-calibrate", o->seed);
	trial_url(o, name, url, sizeof(url));
	trial_dir(o, name, dir, sizeof(dir));
	if (dir[0] != '\0' && fresh_dir(o, dir, err, sizeof(err)) != 0)
		goto fail;
	if (run_save(o, url, seeds[0], NULL, &c, err, sizeof(err)) != 0) {
		crash_child_clear(&c);
		goto fail;
	}
	crash_child_clear(&c);
	for (int i = 0; i < RUNS; i++) {
		crash_watch *wp = NULL;
		if (dir[0] != '\0') {
			if (only_save_id(dir, o->s3, id, sizeof(id), err, sizeof(err)) != 0 ||
			    crash_watch_open(&w, dir, o->s3, id, err, sizeof(err)) != 0)
				goto fail;
			wp = &w;
		}
		int r = run_save(o, url, seeds[i + 1], wp, &c, err, sizeof(err));
		dur[i] = c.end_us - c.start_us;
		if (r == 0 && wp != NULL) {
			if (ndata >= 0 && ndata != w.count[CRASH_DATA_CLOSED])
				fprintf(stderr,
				        "dcp-crash-trials: note: saves of the same state wrote %d and %d "
				        "data "
				        "objects; the phases use the larger\n",
				        ndata, w.count[CRASH_DATA_CLOSED]);
			if (w.count[CRASH_DATA_CLOSED] > ndata)
				ndata = w.count[CRASH_DATA_CLOSED];
			if (w.count[CRASH_COMMIT] != 1) {
				snprintf(err, sizeof(err),
				         "a completed save at %s showed %d commits of .metadata in %s, not "
				         "1: is "
				         "--observe the folder of the URL's objects?",
				         url, w.count[CRASH_COMMIT], dir);
				r = -1;
			}
			if (!o->quiet && r == 0)
				printf("calibration save %d: %.1f ms; first data object at %.1f ms, last "
				       "closed at %.1f ms, commit at %.1f ms, old objects removed by %.1f ms "
				       "(%d data objects)\n",
				       i + 1, dur[i] / 1e3, w.first_us[CRASH_DATA_CREATED] / 1e3,
				       w.last_us[CRASH_DATA_CLOSED] / 1e3, w.first_us[CRASH_COMMIT] / 1e3,
				       w.last_us[CRASH_OLD_REMOVED] / 1e3, w.count[CRASH_DATA_CLOSED]);
		} else if (r == 0 && !o->quiet) {
			printf("calibration save %d: %.1f ms\n", i + 1, dur[i] / 1e3);
		}
		if (wp != NULL)
			crash_watch_close(wp);
		crash_child_clear(&c);
		if (r != 0)
			goto fail;
	}
	/* The check tells A from B: the last save (seed 104) loads as itself and
	 * fails against the seed before it. */
	uint64_t got = 0, other = seeds[RUNS - 1];
	int r = run_load(o, url, NULL, &got, &c, err, sizeof(err));
	if (r != 0 || got != seeds[RUNS]) {
		if (r >= 0)
			snprintf(err, sizeof(err), "dcp load %s after a completed save of seed %llu: %s", url,
			         (unsigned long long)seeds[RUNS], r == 1 ? "failed" : "loaded another seed");
		print_output("dcp load", &c);
		crash_child_clear(&c);
		goto fail;
	}
	crash_child_clear(&c);
	r = run_load(o, url, &other, &got, &c, err, sizeof(err));
	crash_child_clear(&c);
	if (r != 1) {
		if (r == 0)
			snprintf(err, sizeof(err),
			         "dcp load --seed %llu %s passed on a checkpoint of seed %llu: the check "
			         "cannot tell state A from state B",
			         (unsigned long long)other, url, (unsigned long long)seeds[RUNS]);
		goto fail;
	}
	/* The fastest of the runs: on a busy machine the others mostly measure
	 * the wait for a core (the first one also a cold cache). */
	qsort(dur, RUNS, sizeof(dur[0]), cmp_i64);
	cal->duration_us = o->duration_us > 0 ? o->duration_us : dur[0];
	cal->ndata = ndata;
	if (!o->quiet)
		printf("a save takes %lld us (%s); kill delays are drawn from [0, %lld] us; loads tell "
		       "seed %llu from seed %llu\n",
		       (long long)cal->duration_us, o->duration_us > 0 ? "--duration-us" : "the fastest of 3",
		       (long long)(cal->duration_us * 6 / 5), (unsigned long long)seeds[RUNS],
		       (unsigned long long)other);
	rc = 0;
	if (!o->keep && !o->s3 && dir[0] != '\0')
		(void)remove_tree(dir);
	return rc;
fail:
	fprintf(stderr, "dcp-crash-trials: calibration at %s failed: %s\n", url, err);
	return -1;
}

/* ---- one trial ---- */

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

static void draw(const options *o, const calib *cal, trial *t)
{
	t->rng = mix64((uint64_t)o->seed) ^ mix64(mix64((uint64_t)t->n) + 0x5851f42d4c957f2dull);
	t->first = rng_unit(&t->rng) < 0.2;
	int hooked = rng_unit(&t->rng) < 0.3;
	t->seed_a = 1000 + (rng_next(&t->rng) >> 4) * 4;
	t->seed_b = t->seed_a + 1;
	t->seed_c = t->seed_a + 2;
	t->frac = rng_unit(&t->rng) * 1.2;
	t->delay_us = (int64_t)(t->frac * (double)cal->duration_us);
	/* The hook: one of the steps this save can show, then which event. */
	int steps[CRASH_STEP_COUNT], n = 0;
	steps[n++] = CRASH_DATA_CREATED;
	steps[n++] = CRASH_DATA_CLOSED;
	if (!o->s3)
		steps[n++] = CRASH_META_TEMP;
	steps[n++] = CRASH_COMMIT;
	if (!t->first)
		steps[n++] = CRASH_OLD_REMOVED;
	int step = steps[rng_below(&t->rng, n)];
	int k = 1 + (step == CRASH_DATA_CREATED || step == CRASH_DATA_CLOSED
	                     ? rng_below(&t->rng, cal->ndata > 0 ? cal->ndata : 1)
	                     : 0);
	t->hook = hooked && o->observe != NULL && cal->ndata > 0 ? step : -1;
	t->hook_count = k;
	snprintf(t->name, sizeof(t->name), "s%lld-t%lld", o->seed, t->n);
}

static int phase_of(const crash_watch *w, const calib *cal)
{
	if (w == NULL || w->fd < 0)
		return PH_UNKNOWN;
	if (w->count[CRASH_COMMIT] > 0)
		return PH_AFTER_COMMIT;
	if (w->count[CRASH_DATA_CREATED] == 0 && w->count[CRASH_DATA_CLOSED] == 0 &&
	    w->count[CRASH_META_TEMP] == 0)
		return PH_BEFORE_DATA;
	if (w->count[CRASH_DATA_CLOSED] < cal->ndata && w->count[CRASH_META_TEMP] == 0)
		return PH_DURING_DATA;
	return PH_BEFORE_COMMIT;
}

#define FAIL(...)                                                \
	do {                                                     \
		snprintf(t->what, sizeof(t->what), __VA_ARGS__); \
		goto done;                                       \
	} while (0)

/* Runs trial t; 0 if it passed, 1 if it failed (t->what says why), -1 if it could not run. */
/* 1 if the error is the metadata decoder's "the document is empty". */
static int error_is_empty_metadata(const dcp_error *err)
{
	char *text = dcp_error_format(err);
	int yes = text != NULL && strstr(text, "the document is empty") != NULL;
	free(text);
	return yes;
}

static int run_trial(const options *o, const calib *cal, trial *t)
{
	char err[MSG_MAX], id[256], st[64];
	crash_watch w;
	crash_child c;
	int watching = 0, failed = 1;
	const char *dirp = NULL;

	memset(&w, 0, sizeof(w));
	w.fd = -1;
	memset(&c, 0, sizeof(c));
	t->phase = PH_UNKNOWN;
	t->outcome = -1;
	t->what[0] = '\0';
	trial_url(o, t->name, t->url, sizeof(t->url));
	trial_dir(o, t->name, t->dir, sizeof(t->dir));
	if (t->dir[0] != '\0') {
		if (fresh_dir(o, t->dir, err, sizeof(err)) != 0) {
			fprintf(stderr, "dcp-crash-trials: trial %lld: %s\n", t->n, err);
			return -1;
		}
		dirp = t->dir;
	}

	/* 1. State A, saved to its end. */
	if (!t->first) {
		if (run_save(o, t->url, t->seed_a, NULL, &c, err, sizeof(err)) != 0)
			FAIL("saving state A: %s", err);
		crash_child_clear(&c);
	}

	/* 2. State B over it, killed. */
	if (dirp != NULL) {
		const char *old = NULL;
		if (!t->first) {
			if (only_save_id(dirp, o->s3, id, sizeof(id), err, sizeof(err)) != 0)
				FAIL("after saving state A: %s", err);
			old = id;
		}
		if (crash_watch_open(&w, dirp, o->s3, old, err, sizeof(err)) != 0) {
			fprintf(stderr, "dcp-crash-trials: trial %lld: %s\n", t->n, err);
			return -1;
		}
		watching = 1;
	}
	tool_args a;
	save_args(o, &a, t->url, t->seed_b);
	crash_kill_plan plan = {-1, t->hook, t->hook_count};
	if (t->hook < 0)
		plan.deadline_us = crash_now_us() + t->delay_us;
	if (crash_run(a.argv, &plan, watching ? &w : NULL, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "dcp-crash-trials: trial %lld: %s\n", t->n, err);
		crash_child_clear(&c);
		crash_watch_close(&w);
		return -1;
	}
	t->phase = phase_of(watching ? &w : NULL, cal);
	t->exited = !(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL && c.killed);
	if (t->exited && !(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0)) {
		print_output("dcp save (B)", &c);
		FAIL("the save of state B ended with %s before it was killed",
		     crash_describe_status(c.status, st, sizeof(st)));
	}
	if (t->exited)
		t->phase = watching ? t->phase : PH_AFTER_COMMIT;
	crash_child_clear(&c);

	/* 3. What is there now, seen by fresh processes. */
	dcp_metadata *md = NULL;
	dcp_error *derr = NULL;
	int rc = dcp_read_metadata(t->url, NULL, &md, &derr);
	if (rc == DCP_ENOTFOUND) {
		dcp_error_free(derr);
		if (!t->first)
			FAIL("after the kill, there is no checkpoint at %s (DCP_ENOTFOUND), but state A had "
			     "been saved there",
			     t->url);
		if (t->exited)
			FAIL("the save of state B exited 0, yet there is no checkpoint at %s", t->url);
		t->outcome = OUT_NONE;
	} else if (rc == DCP_EMETADATA && o->s3 && !t->exited && derr != NULL &&
	           error_is_empty_metadata(derr)) {
		dcp_error_free(derr);
		t->outcome = OUT_TORN;
	} else if (rc != DCP_OK) {
		char *text = derr != NULL ? dcp_error_format(derr) : NULL;
		snprintf(t->what, sizeof(t->what),
		         "after the kill, reading the metadata of %s failed with %s (not DCP_ENOTFOUND):\n%s",
		         t->url, dcp_strerror(rc), text != NULL ? text : "(no message)");
		free(text);
		dcp_error_free(derr);
		goto done;
	} else {
		dcp_metadata_free(md);
		dcp_error_free(derr);
		uint64_t got = 0;
		int r = run_load(o, t->url, NULL, &got, &c, err, sizeof(err));
		if (r != 0) {
			print_output("dcp load", &c);
			if (r < 0)
				FAIL("after the kill: %s", err);
			FAIL("after the kill, the checkpoint at %s does not load as state A or B (dcp load "
			     "failed or found elements that differ from the seed it records)",
			     t->url);
		}
		if (got == t->seed_b)
			t->outcome = OUT_B;
		else if (got == t->seed_a && !t->first)
			t->outcome = OUT_A;
		else
			FAIL("after the kill, the checkpoint at %s loads as seed %llu, which is neither "
			     "state A (seed %llu%s) nor state B (seed %llu)",
			     t->url, (unsigned long long)got, (unsigned long long)t->seed_a,
			     t->first ? ", never saved in this trial" : "", (unsigned long long)t->seed_b);
		crash_child_clear(&c);
	}
	if (t->exited && t->outcome != OUT_B)
		FAIL("the save of state B exited 0 before the kill, yet the checkpoint loads as %s",
		     OUTCOME_NAMES[t->outcome]);

	/* The outcome agrees with what the storage showed: B exactly when its
	 * commit was seen (on s3rver, events of a request that the server
	 * finishes after the client died may come later, so only: B => seen). */
	if (watching) {
		if (crash_watch_drain(&w, err, sizeof(err)) != 0) {
			fprintf(stderr, "dcp-crash-trials: trial %lld: %s\n", t->n, err);
			crash_watch_close(&w);
			return -1;
		}
		int committed = w.count[CRASH_COMMIT] > 0;
		if (!w.overflow && t->outcome == OUT_B && !committed)
			FAIL("the checkpoint loads as state B, but no commit of %s/.metadata was seen",
			     t->dir);
		if (!w.overflow && !o->s3 && t->outcome != OUT_B && committed)
			FAIL("a commit of %s/.metadata by the save of state B was seen, but the checkpoint "
			     "loads as %s",
			     t->dir, OUTCOME_NAMES[t->outcome]);
		crash_watch_close(&w);
		watching = 0;
	}

	/* 4. A save after the crash works and loads back. */
	if (o->resave_every > 0 && t->n % o->resave_every == 0) {
		if (run_save(o, t->url, t->seed_c, NULL, &c, err, sizeof(err)) != 0)
			FAIL("saving state C after the kill: %s", err);
		crash_child_clear(&c);
		uint64_t got = 0;
		int r = run_load(o, t->url, NULL, &got, &c, err, sizeof(err));
		if (r != 0 || got != t->seed_c) {
			print_output("dcp load", &c);
			if (r < 0)
				FAIL("after saving state C: %s", err);
			FAIL("the save of state C after the kill succeeded, but %s then %s", t->url,
			     r == 1 ? "does not load as C" : "loads as another seed");
		}
		crash_child_clear(&c);
	}
	failed = 0;
done:
	crash_child_clear(&c);
	if (watching)
		crash_watch_close(&w);
	if (!failed && !o->keep && !o->s3 && dirp != NULL)
		(void)remove_tree(dirp);
	return failed;
}

/* ---- the run ---- */

static void describe_kill(const trial *t, const calib *cal, char *buf, size_t len)
{
	if (t->hook >= 0)
		snprintf(buf, len, "hooked at %s #%d", crash_step_name((crash_step)t->hook), t->hook_count);
	else
		snprintf(buf, len, "timed at %.3f ms (%.2f of %.3f ms)", t->delay_us / 1e3, t->frac,
		         cal->duration_us / 1e3);
}

static void print_repro(const options *o, const calib *cal, const trial *t, const char *argv0)
{
	char common[512];
	snprintf(common, sizeof(common),
	         "--seed %lld --trial %lld --duration-us %lld --ranks %d --load-ranks %d --size %s "
	         "--tensors %d --resave-every %d",
	         o->seed, t->n, (long long)cal->duration_us, o->ranks, o->load_ranks, o->size, o->tensors,
	         o->resave_every);
	if (o->s3)
		fprintf(stderr, "  reproduce (on a fresh s3rver): tests/crash/crash-s3.sh %s %s\n", argv0,
		        common);
	else
		fprintf(stderr, "  reproduce: %s %s --clean %s\n", argv0, common, o->url);
}

static int parse_options(int argc, char **argv, options *o)
{
	memset(o, 0, sizeof(*o));
	o->trials = -1;
	o->only_trial = -1;
	o->ranks = 2;
	o->load_ranks = 3;
	o->tensors = 8;
	o->size = "256K";
	o->duration_us = -1;
	o->resave_every = 1;
	const char *dcp = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		long long v;
		int has = i + 1 < argc;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(USAGE, stdout);
			exit(0);
		} else if (strcmp(a, "--clean") == 0) {
			o->clean = 1;
		} else if (strcmp(a, "--keep") == 0) {
			o->keep = 1;
		} else if (strcmp(a, "--no-resave") == 0) {
			o->resave_every = 0;
		} else if (strcmp(a, "--quiet") == 0) {
			o->quiet = 1;
		} else if (a[0] == '-' && a[1] == '-' && !has) {
			fprintf(stderr, "dcp-crash-trials: %s: missing its value (or unknown option)\n%s", a,
			        USAGE);
			return -1;
		} else if (strcmp(a, "--trials") == 0) {
			if (parse_ll(a, argv[++i], 1, 100000000, &o->trials))
				return -1;
		} else if (strcmp(a, "--seed") == 0) {
			if (parse_ll(a, argv[++i], 0, 1LL << 53, &o->seed))
				return -1;
			o->seed_given = 1;
		} else if (strcmp(a, "--trial") == 0) {
			if (parse_ll(a, argv[++i], 0, 100000000, &o->only_trial))
				return -1;
		} else if (strcmp(a, "--duration-us") == 0) {
			if (parse_ll(a, argv[++i], 1, 3600LL * 1000000, &v))
				return -1;
			o->duration_us = v;
		} else if (strcmp(a, "--ranks") == 0 || strcmp(a, "--load-ranks") == 0 ||
		           strcmp(a, "--tensors") == 0) {
			if (parse_ll(a, argv[++i], 1, 1024, &v))
				return -1;
			*(a[2] == 'r' ? &o->ranks : a[2] == 'l' ? &o->load_ranks : &o->tensors) = (int)v;
		} else if (strcmp(a, "--resave-every") == 0) {
			if (parse_ll(a, argv[++i], 0, 1000000, &v))
				return -1;
			o->resave_every = (int)v;
		} else if (strcmp(a, "--size") == 0) {
			o->size = argv[++i];
		} else if (strcmp(a, "--observe") == 0) {
			o->observe = argv[++i];
		} else if (strcmp(a, "--dcp") == 0) {
			dcp = argv[++i];
		} else if (a[0] == '-') {
			fprintf(stderr, "dcp-crash-trials: unknown option '%s'\n%s", a, USAGE);
			return -1;
		} else if (o->url != NULL) {
			fprintf(stderr, "dcp-crash-trials: one URL expected, got '%s' and '%s'\n", o->url, a);
			return -1;
		} else {
			o->url = a;
		}
	}
	if (o->url == NULL) {
		fprintf(stderr, "dcp-crash-trials: no URL given\n%s", USAGE);
		return -1;
	}
	if (o->trials < 0) {
		const char *e = getenv("DCP_CRASH_TRIALS");
		o->trials = 50;
		if (e != NULL && *e != '\0' && parse_ll("DCP_CRASH_TRIALS", e, 1, 100000000, &o->trials))
			return -1;
	}
	if (!o->seed_given) {
		const char *e = getenv("DCP_CRASH_SEED");
		if (e != NULL && *e != '\0') {
			if (parse_ll("DCP_CRASH_SEED", e, 0, 1LL << 53, &o->seed))
				return -1;
		} else {
			o->seed =
			        (long long)((mix64((uint64_t)time(NULL)) ^ mix64((uint64_t)getpid())) >> 20);
		}
	}
	if (o->only_trial >= 0 && !o->seed_given && getenv("DCP_CRASH_SEED") == NULL) {
		fprintf(stderr, "dcp-crash-trials: --trial %lld needs the --seed of the run it repeats\n",
		        o->only_trial);
		return -1;
	}

	/* The URL: split off the query; where its objects appear. */
	const char *q = strchr(o->url, '?');
	size_t plen = q != NULL ? (size_t)(q - o->url) : strlen(o->url);
	while (plen > 1 && o->url[plen - 1] == '/')
		plen--;
	o->url_path = strndup(o->url, plen);
	if (o->url_path == NULL) {
		fprintf(stderr, "dcp-crash-trials: out of memory\n");
		return -1;
	}
	o->query = q != NULL ? q : "";
	if (strlen(o->url) > URL_MAX - 80 || (o->observe != NULL && strlen(o->observe) > URL_MAX - 80)) {
		fprintf(stderr,
		        "dcp-crash-trials: the URL and the --observe folder must be shorter than %d "
		        "characters: use a shorter path\n",
		        URL_MAX - 80);
		return -1;
	}
	o->s3 = strncmp(o->url, "s3://", 5) == 0;
	int file = strncmp(o->url, "file://", 7) == 0;
	if (!o->s3 && !file && strstr(o->url_path, "://") != NULL) {
		fprintf(stderr,
		        "dcp-crash-trials: %s: only file://, a path and s3:// are supported (the trials "
		        "need a store that outlives the killed process)\n",
		        o->url);
		return -1;
	}
	if (file && strncmp(o->url, "file:///", 8) != 0) {
		fprintf(stderr, "dcp-crash-trials: %s: expected file:///absolute/path\n", o->url);
		return -1;
	}
	if (o->observe == NULL && !o->s3) {
		snprintf(o->observe_buf, sizeof(o->observe_buf), "%s", file ? o->url_path + 7 : o->url_path);
		o->observe = o->observe_buf;
	}
	if (o->clean && o->s3) {
		fprintf(stderr, "dcp-crash-trials: --clean works on file:// only; for s3:// use a fresh "
		                "prefix\n");
		return -1;
	}

	if (dcp != NULL) {
		snprintf(o->dcp, sizeof(o->dcp), "%s", dcp);
	} else {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0) {
			fprintf(stderr, "dcp-crash-trials: cannot find my own path (%s): pass --dcp PATH\n",
			        strerror(errno));
			return -1;
		}
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL)
			*slash = '\0';
		snprintf(o->dcp, sizeof(o->dcp), "%s/dcp", self);
	}
	if (access(o->dcp, X_OK) != 0) {
		fprintf(stderr, "dcp-crash-trials: the dcp tool %s cannot be run (%s): pass --dcp PATH\n",
		        o->dcp, strerror(errno));
		return -1;
	}
	return 0;
}

static void print_summary(const options *o, const totals *s, double secs)
{
	printf("crash trials: %lld trials (seed %lld) on %s in %.1f s: outcome A %lld, B %lld, none "
	       "%lld; failures %lld\n",
	       s->trials, o->seed, o->url, secs, s->outcome[OUT_A], s->outcome[OUT_B], s->outcome[OUT_NONE],
	       s->failures);
	if (s->outcome[OUT_TORN] > 0)
		printf("  .metadata left empty by s3rver after a PUT cut by the kill (s3rver stores bodies "
		       "as "
		       "they arrive; S3 does not): %lld\n",
		       s->outcome[OUT_TORN]);
	printf("  kills: timed %lld, hooked %lld (", s->timed, s->hooked);
	for (int k = 0; k < CRASH_STEP_COUNT; k++)
		printf("%s%s %lld", k ? ", " : "", crash_step_name((crash_step)k), s->hook_step[k]);
	printf("); of the first save %lld; save ended before the kill %lld\n", s->first,
	       s->exited_before_kill);
	printf("  phase at the kill:");
	for (int p = 0; p < PH_COUNT; p++)
		if (p != PH_UNKNOWN || s->phase[p] > 0)
			printf(" %s %lld", PHASE_NAMES[p], s->phase[p]);
	printf("\n  timed kills by delay / save duration:\n");
	for (int b = 0; b < FRAC_BINS; b++) {
		printf("    [%.1f, %.1f): %4lld  ", b * 0.2, (b + 1) * 0.2, s->frac[b]);
		for (int p = 0; p < PH_COUNT; p++)
			if (s->frac_phase[b][p] > 0)
				printf(" %s %lld", PHASE_NAMES[p], s->frac_phase[b][p]);
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	options o;
	calib cal;
	totals s;
	if (parse_options(argc, argv, &o) != 0)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&s, 0, sizeof(s));
	int64_t t0 = crash_now_us();
	if (!o.quiet)
		printf("dcp-crash-trials: seed %lld, %lld trials on %s (objects seen in %s), dcp %s\n",
		       o.seed, o.only_trial >= 0 ? 1 : o.trials, o.url,
		       o.observe != NULL ? o.observe : "(not watched)", o.dcp);
	if (calibrate(&o, &cal) != 0) {
		free(o.url_path);
		return 2;
	}
	long long from = o.only_trial >= 0 ? o.only_trial : 0;
	long long to = o.only_trial >= 0 ? o.only_trial + 1 : o.trials;
	int broken = 0;
	for (long long n = from; n < to && !broken; n++) {
		trial t;
		memset(&t, 0, sizeof(t));
		t.n = n;
		draw(&o, &cal, &t);
		int r = run_trial(&o, &cal, &t);
		if (r < 0) {
			broken = 1;
			break;
		}
		char kill[128];
		describe_kill(&t, &cal, kill, sizeof(kill));
		s.trials++;
		s.first += t.first;
		if (t.hook >= 0) {
			s.hooked++;
			s.hook_step[t.hook]++;
		} else {
			s.timed++;
			int b = (int)(t.frac / 0.2);
			b = b < 0 ? 0 : b >= FRAC_BINS ? FRAC_BINS - 1 : b;
			s.frac[b]++;
			s.frac_phase[b][t.phase]++;
		}
		s.exited_before_kill += t.exited;
		s.phase[t.phase]++;
		if (t.outcome >= 0)
			s.outcome[t.outcome]++;
		if (r == 0 && !o.quiet)
			printf("trial %lld: seeds A %llu B %llu%s, kill %s%s, phase %s, outcome %s: ok\n", n,
			       (unsigned long long)t.seed_a, (unsigned long long)t.seed_b,
			       t.first ? " (first save killed)" : "", kill,
			       t.exited ? " (the save had ended)" : "", PHASE_NAMES[t.phase],
			       OUTCOME_NAMES[t.outcome]);
		if (r == 1) {
			s.failures++;
			fprintf(stderr,
			        "FAIL trial %lld (run seed %lld): seeds A %llu B %llu%s, kill %s, phase %s: "
			        "%s\n",
			        n, o.seed, (unsigned long long)t.seed_a, (unsigned long long)t.seed_b,
			        t.first ? " (first save killed)" : "", kill, PHASE_NAMES[t.phase], t.what);
			fprintf(stderr, "  the checkpoint is kept at %s\n", t.url);
			print_repro(&o, &cal, &t, argv[0]);
		}
	}
	print_summary(&o, &s, (double)(crash_now_us() - t0) / 1e6);
	free(o.url_path);
	if (broken) {
		fprintf(stderr, "dcp-crash-trials: stopped: a trial could not be run (see above)\n");
		return 2;
	}
	return s.failures > 0 ? 1 : 0;
}
