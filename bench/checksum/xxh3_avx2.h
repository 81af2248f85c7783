/* XXH3-64 built with -mavx2 (xxh3_avx2.c); call only if the CPU has AVX2. */
#ifndef DCP_BENCH_XXH3_AVX2_H
#define DCP_BENCH_XXH3_AVX2_H

#include <stddef.h>
#include <stdint.h>

uint64_t bench_xxh3_avx2(const unsigned char *buf, size_t len);

#endif
