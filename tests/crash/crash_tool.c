/* dcp-crash-trials: running the dcp tool for a save or a load, and the trials' locations. */
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

void print_output(const char *what, const crash_child *c)
{
	if (c->out.len > 0)
		fprintf(stderr, "  %s stdout:\n%s%s", what, c->out.data,
		        c->out.data[c->out.len - 1] == '\n' ? "" : "\n");
	if (c->err.len > 0)
		fprintf(stderr, "  %s stderr:\n%s%s", what, c->err.data,
		        c->err.data[c->err.len - 1] == '\n' ? "" : "\n");
}

/* ---- the dcp tool ---- */

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

void save_args(const options *o, tool_args *a, const char *url, uint64_t seed)
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
int run_save(const options *o, const char *url, uint64_t seed, crash_watch *w, crash_child *c, char *err,
             size_t errlen)
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
int run_load(const options *o, const char *url, const uint64_t *check_seed, uint64_t *seed_out,
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

void trial_url(const options *o, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s%s", o->url_path, name, o->query);
}

void trial_dir(const options *o, const char *name, char *out, size_t len)
{
	if (o->observe != NULL)
		snprintf(out, len, "%s/%s", o->observe, name);
	else
		out[0] = '\0';
}

/* Makes dir an empty folder for a trial: 0, or -1 with err. */
int fresh_dir(const options *o, const char *dir, char *err, size_t errlen)
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
