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

#include "crash_trials.h"

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

/* 1 if s3rver holds the trial's .metadata as an empty file (see OUT_TORN):
 * what the store has, not what libdcp said of it. */
static int s3rver_metadata_is_empty(const trial *t)
{
	char path[URL_MAX + 64];
	struct stat st;
	if (t->dir[0] == '\0')
		return 0;
	snprintf(path, sizeof(path), "%s/.metadata._S3rver_object", t->dir);
	return stat(path, &st) == 0 && st.st_size == 0;
}

/* Runs trial t; 0 if it passed, 1 if it failed (t->what says why), -1 if it could not run. */
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
	} else if (rc == DCP_EMETADATA && o->s3 && !t->exited && s3rver_metadata_is_empty(t)) {
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
