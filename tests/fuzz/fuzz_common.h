/*
 * Helpers shared by the libFuzzer targets of tests/fuzz (header only, every
 * function static). Single-threaded: libFuzzer calls LLVMFuzzerTestOneInput
 * from one thread, so the scratch directory below is per process.
 *
 * Multi-part inputs: a target that needs several texts (a URL and a file,
 * say) splits its input at NUL bytes; part i is the text between the i-th
 * and (i+1)-th NUL. Parts are NUL-terminated copies, so that C-string
 * parsers never read past them.
 */
#ifndef DCP_FUZZ_COMMON_H
#define DCP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed property: print what and where, then abort so that libFuzzer
 * records the input as a crash. */
#define FUZZ_CHECK(cond)                                                                                 \
	do {                                                                                             \
		if (!(cond)) {                                                                           \
			fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                         \
		}                                                                                        \
	} while (0)

/* An allocation the harness itself needs; out of memory ends the run. */
static inline void *fuzz_xmalloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "fuzz harness: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

/* data[0..size) as a malloc'd NUL-terminated string (stops at a NUL). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t n = nul != NULL ? (size_t)(nul - data) : size;
	char *s = fuzz_xmalloc(n + 1);

	memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

#define FUZZ_MAX_PARTS 8

/* The input cut at NUL bytes into at most FUZZ_MAX_PARTS parts (the last
 * part takes the rest, NULs included). */
typedef struct fuzz_parts {
	size_t n;                   /* parts present (>= 1) */
	char *text[FUZZ_MAX_PARTS]; /* NUL-terminated copies */
	size_t len[FUZZ_MAX_PARTS]; /* bytes of each part, without the added NUL */
} fuzz_parts;

static inline void fuzz_split(const uint8_t *data, size_t size, size_t max_parts, fuzz_parts *p)
{
	size_t start = 0;

	if (max_parts > FUZZ_MAX_PARTS)
		max_parts = FUZZ_MAX_PARTS;
	memset(p, 0, sizeof(*p));
	for (;;) {
		const uint8_t *nul = p->n + 1 < max_parts ? memchr(data + start, 0, size - start) : NULL;
		size_t end = nul != NULL ? (size_t)(nul - data) : size;
		p->text[p->n] = fuzz_xmalloc(end - start + 1);
		memcpy(p->text[p->n], data + start, end - start);
		p->text[p->n][end - start] = '\0';
		p->len[p->n] = end - start;
		p->n++;
		if (nul == NULL)
			return;
		start = end + 1;
	}
}

static inline void fuzz_parts_free(fuzz_parts *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->text[i]);
	memset(p, 0, sizeof(*p));
}

/* The scratch directory of this process (created on first use, removed at
 * exit with the files written by fuzz_write_file). */
static char fuzz_dir_path[256];
static char fuzz_files[FUZZ_MAX_PARTS][300];
static size_t fuzz_nfiles;

static inline void fuzz_dir_cleanup(void)
{
	for (size_t i = 0; i < fuzz_nfiles; i++)
		unlink(fuzz_files[i]);
	if (fuzz_dir_path[0] != '\0')
		rmdir(fuzz_dir_path);
}

static inline const char *fuzz_dir(void)
{
	if (fuzz_dir_path[0] == '\0') {
		const char *tmp = getenv("TMPDIR");
		snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s/dcp-fuzz-XXXXXX",
		         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
		if (mkdtemp(fuzz_dir_path) == NULL) {
			perror("fuzz harness: mkdtemp");
			abort();
		}
		atexit(fuzz_dir_cleanup);
	}
	return fuzz_dir_path;
}

/* The path of `name` in the scratch directory (a static buffer per name,
 * at most FUZZ_MAX_PARTS distinct names per process). */
static inline const char *fuzz_path(const char *name)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/%s", fuzz_dir(), name);
	for (size_t i = 0; i < fuzz_nfiles; i++)
		if (strcmp(fuzz_files[i], path) == 0)
			return fuzz_files[i];
	if (fuzz_nfiles == FUZZ_MAX_PARTS) {
		fprintf(stderr, "fuzz harness: too many scratch files\n");
		abort();
	}
	memcpy(fuzz_files[fuzz_nfiles], path, sizeof(path));
	return fuzz_files[fuzz_nfiles++];
}

/* Writes len bytes into the scratch file `name`; returns its path. */
static inline const char *fuzz_write_file(const char *name, const char *text, size_t len)
{
	const char *path = fuzz_path(name);
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror("fuzz harness: writing a scratch file");
		abort();
	}
	return path;
}

/* Removes the scratch file `name` if it exists. */
static inline void fuzz_remove_file(const char *name)
{
	unlink(fuzz_path(name));
}

/* Number of occurrences of needle (non-empty) in data[0..size). */
static inline size_t fuzz_count(const uint8_t *data, size_t size, const char *needle)
{
	size_t n = strlen(needle), count = 0;

	if (n == 0 || n > size)
		return 0;
	for (size_t i = 0; i + n <= size; i++)
		if (memcmp(data + i, needle, n) == 0)
			count++;
	return count;
}

#endif /* DCP_FUZZ_COMMON_H */
