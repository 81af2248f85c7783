/* dcp-crash-trials: usage, options, and what is printed about the trials. */
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

const char *const PHASE_NAMES[PH_COUNT] = {"before-data", "during-data", "before-commit", "after-commit",
                                           "unknown"};
const char *const OUTCOME_NAMES[OUT_COUNT] = {"A", "B", "none", "torn"};

const char USAGE[] =
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

void describe_kill(const trial *t, const calib *cal, char *buf, size_t len)
{
	if (t->hook >= 0)
		snprintf(buf, len, "hooked at %s #%d", crash_step_name((crash_step)t->hook), t->hook_count);
	else
		snprintf(buf, len, "timed at %.3f ms (%.2f of %.3f ms)", t->delay_us / 1e3, t->frac,
		         cal->duration_us / 1e3);
}

void print_repro(const options *o, const calib *cal, const trial *t, const char *argv0)
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

int parse_options(int argc, char **argv, options *o)
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

void print_summary(const options *o, const totals *s, double secs)
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
