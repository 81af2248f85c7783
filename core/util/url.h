/*
 * URL and option-string helpers shared by the core and the plugins (compiled
 * into each, never exported from libdcp).
 *
 * A checkpoint URL is "scheme://rest?key=value&key=value". The scheme is
 * letters, digits, '+', '-', '.', starting with a letter, compared without
 * case. Query values are percent-decoded. A bare path (no "://") is not a URL
 * here: the core's pipeline turns it into file:// first.
 */
#ifndef DCP_UTIL_URL_H
#define DCP_UTIL_URL_H

#include <stddef.h>
#include <stdint.h>

#include "dcp/sys/common.h"

typedef struct dcp_url_param {
	char *key;
	char *value; /* "" for "?flag" without '=' */
} dcp_url_param;

typedef struct dcp_url {
	char *scheme; /* lowercase, without "://" */
	char *rest;   /* between "://" and '?' (or the end), undecoded */
	size_t nparams;
	dcp_url_param *params; /* in order of appearance */
} dcp_url;

/*
 * Parses url into out (which the caller clears with dcp_url_clear, also after
 * a failure). Fails with DCP_EID and a message for: empty url, no "://", a bad
 * scheme, a NUL-free but malformed query (bad percent escape, empty key).
 * DCP_ENOMEM if out of memory.
 */
int dcp_url_parse(const char *url, dcp_url *out, dcp_msg *msg);
void dcp_url_clear(dcp_url *url);

/* The value of the last param named key, or NULL. */
const char *dcp_url_param_get(const dcp_url *url, const char *key);

/*
 * Rebuilds a URL string: scheme "://" rest, then the params for which keep()
 * returns nonzero (all if keep is NULL), re-encoded. Returns a malloc'd string
 * or NULL if out of memory. scheme may differ from url->scheme.
 */
char *dcp_url_format(const dcp_url *url, const char *scheme, int (*keep)(const char *key, void *arg),
                     void *arg);

/* Parses "123", "4K", "8M", "2G", "1T" (powers of 1024; optional trailing
 * 'B' or 'iB'). DCP_EINVAL on anything else or on overflow. */
int dcp_parse_size(const char *s, uint64_t *out);

/* Parses a non-negative decimal int. DCP_EINVAL on anything else. */
int dcp_parse_int(const char *s, long long min, long long max, long long *out);

/* Parses a boolean: 1/0, true/false, yes/no, on/off. DCP_EINVAL otherwise. */
int dcp_parse_bool(const char *s, int *out);

/*
 * Parses a comma-separated rank list ("1,3", "0-2,5", "*" for all, "" for
 * none) into a bitmap test: dcp_rank_set_has. DCP_EINVAL with a message on a
 * bad list. Ranks are limited to 0..65535.
 */
typedef struct dcp_rank_set {
	int all;
	size_t n;
	int *ranks;
} dcp_rank_set;
int dcp_rank_set_parse(const char *s, dcp_rank_set *out, dcp_msg *msg);
int dcp_rank_set_has(const dcp_rank_set *set, int rank);
void dcp_rank_set_clear(dcp_rank_set *set);

/* malloc'd copy of s (NULL-safe: NULL gives NULL). */
char *dcp_strdup(const char *s);
/* malloc'd printf. NULL if out of memory. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
char *
dcp_asprintf(const char *fmt, ...);

#endif /* DCP_UTIL_URL_H */
