/* dcp-crash-trials: the PRNG (one stream per seed and trial), number parsing, folders. */
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

/* ---- PRNG: splitmix64, one stream per (seed, trial) ---- */

uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

double rng_unit(uint64_t *s) /* [0, 1) */
{
	return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

int rng_below(uint64_t *s, int n) /* [0, n) */
{
	return (int)(rng_unit(s) * n);
}

/* ---- small helpers ---- */

int parse_ll(const char *opt, const char *s, long long lo, long long hi, long long *out)
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

int remove_tree(const char *dir)
{
	struct stat st;
	if (lstat(dir, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int mkdir_p(const char *dir)
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
int dir_entries(const char *dir)
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
int only_save_id(const char *dir, int s3rver, char *id, size_t idlen, char *err, size_t errlen)
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
