/*
 * Allocation failures on demand, for out-of-memory tests.
 *
 * Defines malloc, calloc, realloc and free for the whole test executable:
 * include it from exactly one .c file of a test (never from a tests/support source file,
 * which every test links). Only in builds without ASan, TSan or MSan, whose
 * allocators own malloc: there DCP_ALLOC_FAILURES is 0 and nothing is defined.
 *
 * fail_after(n): the calling thread's allocation after n more successes fails,
 * once (other threads are unaffected); fail_done() disarms and returns 1 if an
 * allocation was failed since fail_after.
 */
#ifndef DCP_TEST_FAILMALLOC_H
#define DCP_TEST_FAILMALLOC_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DCP_ALLOC_FAILURES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define DCP_ALLOC_FAILURES 0
#endif
#endif
#ifndef DCP_ALLOC_FAILURES
#define DCP_ALLOC_FAILURES 1
#endif

#if DCP_ALLOC_FAILURES
static _Thread_local long fail_countdown = -1;
static _Thread_local int fail_hit;

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static int should_fail(void)
{
	if (fail_countdown < 0)
		return 0;
	if (fail_countdown-- == 0) {
		fail_hit = 1;
		return 1;
	}
	return 0;
}

void *malloc(size_t n)
{
	return should_fail() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	return should_fail() ? NULL : __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	return should_fail() ? NULL : __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}

static inline void fail_after(long n)
{
	fail_hit = 0;
	fail_countdown = n;
}

static inline int fail_done(void)
{
	fail_countdown = -1;
	return fail_hit;
}
#endif

#endif /* DCP_TEST_FAILMALLOC_H */
