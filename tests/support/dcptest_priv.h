/*
 * Helpers shared by the pieces of the dcptest support (dcptest*.c) and not
 * meant for tests: tests include dcptest.h only.
 */
#ifndef DCP_TESTS_SUPPORT_DCPTEST_PRIV_H
#define DCP_TESTS_SUPPORT_DCPTEST_PRIV_H

#include <stddef.h>

/* Writes a message into a bounded buffer (why, whylen), truncating silently;
 * does nothing if why is NULL or whylen is 0. Any thread. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void
dt_why_set(char *why, size_t whylen, const char *fmt, ...);

#endif /* DCP_TESTS_SUPPORT_DCPTEST_PRIV_H */
