/*
 * Building error objects (dcp_error, declared in dcp/dcp.h). Internal to the
 * core: the public header only reads them.
 *
 * An error object holds a step ("plan", "write", "read" or "local") and a list
 * of entries, one per failing rank, kept sorted by rank. Every string is
 * copied in. None of these functions crash when memory runs out: they return
 * NULL or DCP_ENOMEM and leave the object as it was.
 */
#ifndef DCP_ERROR_INTERNAL_H
#define DCP_ERROR_INTERNAL_H

#include "dcp/dcp.h"

/* A new error object with no entries; step NULL means "local". The caller
 * frees it with dcp_error_free. NULL if out of memory. */
dcp_error *dcp_error_new(const char *step);

/*
 * Adds the entry of `rank` (-1: no rank), keeping entries sorted by rank. A
 * rank appears at most once: adding it again replaces its entry. stage and
 * message are copied; NULL means "". Returns DCP_OK, DCP_EINVAL if err is
 * NULL, or DCP_ENOMEM (err unchanged).
 */
int dcp_error_add(dcp_error *err, int rank, const char *stage, int code, const char *message);

/* An error object of step "local" with one entry: rank -1, stage, code, and
 * the printf-style message. NULL if out of memory. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
dcp_error *
dcp_error_local(int code, const char *stage, const char *fmt, ...);

/* Hands err to the caller: stored in *out if out is non-NULL (whatever *out
 * held is overwritten, not freed), else freed. err may be NULL. */
void dcp_error_set(dcp_error **out, dcp_error *err);

#endif /* DCP_ERROR_INTERNAL_H */
