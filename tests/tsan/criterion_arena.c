/* Linked into the Criterion test executables of a -DDCP_SANITIZE=thread build
 * only (tests/CMakeLists.txt), never into libdcp or a normal build.
 *
 * Criterion (through BoxFort) places its shared arenas at random addresses
 * between 0x200000000000 and 0x600000000000, computed from rand_r(), and
 * gives up after a few tries. ThreadSanitizer lets a program map memory at a
 * fixed address only inside its application ranges; in that window that is
 * only where PIE binaries go (0x550000000000 to 0x568000000000 in the layout
 * of GCC 12's and LLVM 14's x86-64 runtimes). Most tries fail, and the
 * runner aborts with "Could not initialize inheritable arena: Resource
 * temporarily unavailable" (Criterion issue #274) before any test has run.
 *
 * This rand_r() replaces the C library's in these executables (no code of
 * libdcp or of the tests calls rand_r): a linear congruential generator on
 * *seed whose values, taken as BoxFort does (the low 22 bits, times 16 MiB,
 * from 0x200000000000), always fall in that range, so that each try lands
 * where ThreadSanitizer allows it; BoxFort still probes every page and
 * tries another address if one is taken. */
#include <stdlib.h>

#if !defined(__x86_64__)
#error "the Criterion arena workaround knows only the x86-64 ThreadSanitizer layout"
#endif

/* 0x550000000000 = 0x200000000000 + 0x350000 * 16 MiB; 0x568000000000 =
 * 0x200000000000 + 0x368000 * 16 MiB. */
#define ARENA_SLOT_FIRST 0x350000u
#define ARENA_SLOTS      0x18000u

int rand_r(unsigned int *seed)
{
	/* Numerical Recipes' constants; the high bits vary most. */
	*seed = *seed * 1664525u + 1013904223u;
	return (int)(ARENA_SLOT_FIRST + (*seed >> 8) % ARENA_SLOTS);
}
