/*
 * Test support: allocation, formatting, paths and temporary directories.
 * The other pieces are dcptest_layout.c (layouts), dcptest_values.c (values
 * and per-rank states), dcptest_run.c (running ranks) and dcptest_assert.c
 * (assertions). See dcptest.h for the contracts.
 */
#include "dcptest.h"

#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcptest_priv.h"

/* ------------------------------------------------------------------------ */
/* Allocation and formatting                                                */
/* ------------------------------------------------------------------------ */
void *dt_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL) {
		fprintf(stderr, "dcptest: out of memory allocating %zu bytes\n", n);
		abort();
	}
	return p;
}

void *dt_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL) {
		fprintf(stderr, "dcptest: out of memory allocating %zu x %zu bytes\n", n, size);
		abort();
	}
	return p;
}

char *dt_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "dcptest: formatted text does not fit in %zu bytes (format \"%s\")\n", size,
		        fmt);
		abort();
	}
	return buf;
}

void dt_why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Misc                                                                     */
/* ------------------------------------------------------------------------ */
int dt_path_rank(const char *path)
{
	const char *b = strrchr(path, '/');
	long r = 0;
	const char *p;
	b = b ? b + 1 : path;
	if (b[0] != '_' || b[1] != '_' || b[2] < '0' || b[2] > '9')
		return -1;
	for (p = b + 2; *p >= '0' && *p <= '9'; p++) {
		r = r * 10 + (*p - '0');
		if (r > 1000000)
			return -1;
	}
	return *p == '_' ? (int)r : -1;
}

char *dt_mkdtemp(char *buf, size_t size, const char *prefix)
{
	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	dt_fmt(buf, size, "%s/%s-XXXXXX", tmp, prefix);
	if (mkdtemp(buf) == NULL) {
		perror("dcptest: mkdtemp");
		abort();
	}
	return buf;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void dt_rmtree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *dt_exe_dir(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	char *slash;
	if (n <= 0 || (size_t)n >= size - 1) {
		fprintf(stderr, "dcptest: cannot read /proc/self/exe\n");
		abort();
	}
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	return buf;
}
