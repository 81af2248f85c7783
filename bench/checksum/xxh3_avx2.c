/*
 * XXH3-64 compiled into the benchmark with AVX2 (this file is built with
 * -mavx2; see CMakeLists.txt), to show what libdcp would get by inlining
 * xxhash with its own CPU dispatch instead of calling the distribution's
 * libxxhash, which is built for baseline x86-64 (SSE2). Called only when
 * the CPU has AVX2.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "xxh3_avx2.h"

uint64_t bench_xxh3_avx2(const unsigned char *buf, size_t len)
{
	return (uint64_t)XXH3_64bits(buf, len);
}
