/*
 * dcp-bench-checksum: how fast are the two checksums that issue 3 lets
 * libdcp choose from, on this machine?
 *
 *   XXH3-64   XXH3_64bits() from libxxhash, seed 0 (what core/src/checksum.c
 *             computes for every stored block)
 *   CRC32C    crc32_iscsi() from ISA-L (the Castagnoli CRC of iSCSI, ext4,
 *             and S3's x-amz-checksum-crc32c), initial value 0
 *
 * and, on x86-64 CPUs with AVX2, a third contender:
 *   XXH3-AVX2 XXH3_64bits() inlined into this program and compiled with
 *             -mavx2 (what libdcp would get by carrying xxhash.h with its own
 *             CPU dispatch instead of the distribution's SSE2 build)
 *
 * For each buffer size (4 KiB, 1 MiB, 64 MiB by default) the functions are
 * timed in alternation, `reps` times each (XXH3, CRC32C, XXH3-AVX2, XXH3,
 * ...), so that frequency changes and noisy neighbours hit all alike. One
 * measurement hashes the buffer as many times as fit in `min_ms`
 * milliseconds. The table reports the median and the best of the
 * measurements in GB/s (10^9 bytes per second) and the ratios of the medians.
 *
 * ISA-L's AVX-512 code returns with the upper halves of the vector registers
 * dirty; legacy-SSE code that runs next (libxxhash's SSE2 build) then runs
 * several times slower. Every measurement therefore ends with VZEROUPPER,
 * as compiled AVX code would; the last line of the output shows the penalty
 * that XXH3 pays when it runs right after crc32_iscsi without it.
 *
 * The buffer holds pseudo-random bytes; it is hashed in place, so 4 KiB and
 * 1 MiB run from the CPU caches and 64 MiB from memory, as a checkpoint's
 * blocks would right after a write or a read.
 *
 * Usage: dcp-bench-checksum [--reps N] [--min-ms M] [--size BYTES]...
 * Exit status: 0, or 2 on a usage error, 1 if a buffer cannot be allocated.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <isa-l/crc.h>
#include <xxhash.h>

#if defined(DCP_BENCH_XXH3_AVX2)
#include "xxh3_avx2.h"
#endif

#define MAX_SIZES 16
#define MAX_REPS  1000

typedef uint64_t (*hash_fn)(const unsigned char *buf, size_t len);

static uint64_t run_xxh3(const unsigned char *buf, size_t len)
{
	return (uint64_t)XXH3_64bits(buf, len);
}

/* crc32_iscsi takes an int length: the sizes here are far below 2 GiB. */
static uint64_t run_crc32c(const unsigned char *buf, size_t len)
{
	return (uint64_t)crc32_iscsi((unsigned char *)buf, (int)len, 0);
}

#if defined(DCP_BENCH_XXH3_AVX2)
static uint64_t run_xxh3_avx2(const unsigned char *buf, size_t len)
{
	return bench_xxh3_avx2(buf, len);
}
#endif

/* Clears the upper halves of the vector registers, where the CPU has AVX. */
static void clean_upper_state(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (__builtin_cpu_supports("avx"))
		__asm__ volatile("vzeroupper" ::: "memory");
#endif
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the results alive so that no call is optimised away. */
static volatile uint64_t sink;

/* One measurement: hashes buf until min_s has passed (at least once);
 * returns GB/s. clean: start with clean upper vector state. */
static double measure(hash_fn fn, const unsigned char *buf, size_t len, double min_s, int clean)
{
	uint64_t acc = 0, iters = 0, batch = 1;
	double t0, t;

	if (clean)
		clean_upper_state();
	t0 = now_s();
	for (;;) {
		for (uint64_t i = 0; i < batch; i++)
			acc ^= fn(buf, len);
		iters += batch;
		t = now_s() - t0;
		if (t >= min_s)
			break;
		if (batch < (UINT64_C(1) << 20))
			batch *= 2;
	}
	sink ^= acc;
	return (double)len * (double)iters / t / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void fill_random(unsigned char *buf, size_t len)
{
	uint64_t x = UINT64_C(0x9e3779b97f4a7c15);

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)(x >> 24);
	}
}

static void size_text(size_t n, char *buf, size_t len)
{
	if (n % (1u << 20) == 0)
		snprintf(buf, len, "%zu MiB", n >> 20);
	else if (n % (1u << 10) == 0)
		snprintf(buf, len, "%zu KiB", n >> 10);
	else
		snprintf(buf, len, "%zu B", n);
}

static int parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int usage(const char *why, const char *arg)
{
	if (why != NULL)
		fprintf(stderr, "dcp-bench-checksum: %s%s%s\n", why, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr,
	        "usage: dcp-bench-checksum [--reps N (1..%d, default 9)] [--min-ms M (default 100)] "
	        "[--size BYTES]...\n"
	        "Times XXH3-64 (libxxhash) and CRC32C (ISA-L crc32_iscsi) alternately over each "
	        "buffer size (default 4096, 1048576 and 67108864 bytes).\n",
	        MAX_REPS);
	return 2;
}

int main(int argc, char **argv)
{
	size_t sizes[MAX_SIZES];
	int nsizes = 0, reps = 9;
	double min_s = 0.1;
	size_t maxsize = 0;
	unsigned char *buf;

	for (int i = 1; i < argc; i++) {
		unsigned long long v;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(NULL, NULL);
			return 0;
		}
		if (i + 1 >= argc)
			return usage("missing value after", argv[i]);
		if (strcmp(argv[i], "--reps") == 0) {
			if (parse_count(argv[++i], MAX_REPS, &v) != 0)
				return usage("bad --reps value", argv[i]);
			reps = (int)v;
		} else if (strcmp(argv[i], "--min-ms") == 0) {
			if (parse_count(argv[++i], 60000, &v) != 0)
				return usage("bad --min-ms value", argv[i]);
			min_s = (double)v / 1000.0;
		} else if (strcmp(argv[i], "--size") == 0) {
			if (nsizes == MAX_SIZES)
				return usage("too many --size options", NULL);
			if (parse_count(argv[++i], (1ull << 31) - 1, &v) != 0)
				return usage("bad --size value (1 byte to 2 GiB - 1)", argv[i]);
			sizes[nsizes++] = (size_t)v;
		} else {
			return usage("unknown option", argv[i]);
		}
	}
	if (nsizes == 0) {
		sizes[nsizes++] = (size_t)4 << 10;
		sizes[nsizes++] = (size_t)1 << 20;
		sizes[nsizes++] = (size_t)64 << 20;
	}
	for (int s = 0; s < nsizes; s++)
		if (sizes[s] > maxsize)
			maxsize = sizes[s];
	buf = malloc(maxsize);
	if (buf == NULL) {
		fprintf(stderr, "dcp-bench-checksum: cannot allocate a buffer of %zu bytes\n", maxsize);
		return 1;
	}
	fill_random(buf, maxsize);

	{
		struct {
			const char *name;
			hash_fn fn;
		} v[3] = {{"xxh3", run_xxh3}, {"crc32c", run_crc32c}, {NULL, NULL}};
		int nv = 2;
		double res[3][MAX_REPS], med[3], best[3];

#if defined(DCP_BENCH_XXH3_AVX2)
		if (__builtin_cpu_supports("avx2")) {
			v[nv].name = "xxh3-avx2";
			v[nv++].fn = run_xxh3_avx2;
		}
#endif
		printf("XXH3-64 (libxxhash %u.%u.%u, shared library) vs CRC32C (ISA-L crc32_iscsi)%s; %d "
		       "alternating measurements of >= %.0f ms each per size; GB/s = 10^9 bytes/s, median "
		       "(best)\n",
		       XXH_VERSION_MAJOR, XXH_VERSION_MINOR, XXH_VERSION_RELEASE,
		       nv > 2 ? " vs XXH3-64 inlined with -mavx2" : "", reps, min_s * 1000.0);
		printf("%-8s", "size");
		for (int k = 0; k < nv; k++)
			printf("  %20s", v[k].name);
		printf("  %12s%s\n", "xxh3/crc32c", nv > 2 ? "  xxh3-avx2/crc32c" : "");
		for (int s = 0; s < nsizes; s++) {
			char label[32];

			for (int k = 0; k < nv; k++) {
				/* One untimed pass: page faults and CPU dispatch. */
				sink ^= v[k].fn(buf, sizes[s]);
				best[k] = 0;
			}
			for (int r = 0; r < reps; r++)
				for (int k = 0; k < nv; k++) {
					res[k][r] = measure(v[k].fn, buf, sizes[s], min_s, 1);
					best[k] = res[k][r] > best[k] ? res[k][r] : best[k];
				}
			size_text(sizes[s], label, sizeof(label));
			printf("%-8s", label);
			for (int k = 0; k < nv; k++) {
				char cell[48];
				med[k] = median(res[k], reps);
				snprintf(cell, sizeof(cell), "%.2f (%.2f)", med[k], best[k]);
				printf("  %20s", cell);
			}
			printf("  %12.2f", med[0] / med[1]);
			if (nv > 2)
				printf("  %17.2f", med[2] / med[1]);
			printf("\n");
			fflush(stdout);
		}
	}
	{
		/* The penalty of dirty upper vector state: XXH3 (SSE2) right after
		 * crc32_iscsi, without and with VZEROUPPER, on the first size. */
		double dirty[MAX_REPS], clean[MAX_REPS];
		char label[32];

		for (int r = 0; r < reps; r++) {
			sink ^= run_crc32c(buf, sizes[0]);
			dirty[r] = measure(run_xxh3, buf, sizes[0], min_s, 0);
			sink ^= run_crc32c(buf, sizes[0]);
			clean[r] = measure(run_xxh3, buf, sizes[0], min_s, 1);
		}
		size_text(sizes[0], label, sizeof(label));
		printf("xxh3 (libxxhash) over %s right after crc32_iscsi: %.2f GB/s without VZEROUPPER, %.2f "
		       "GB/s with it (medians)\n",
		       label, median(dirty, reps), median(clean, reps));
	}
	free(buf);
	return 0;
}
