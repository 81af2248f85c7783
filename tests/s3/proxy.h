/*
 * A small fault-injecting HTTP/1.1 forwarder for the S3 tests, run on threads
 * of the test process. Clients (the S3 backend) use http://127.0.0.1:PORT as
 * their endpoint; every request is recorded, matched against the rules, and
 * either answered with an injected fault or forwarded to the upstream server
 * (s3rver) on a new connection. Every answer closes the client connection
 * ("Connection: close"), so each request is one connection: simple, and
 * still exercises the backend's reconnects.
 *
 * Request bodies must have a Content-Length (the backend always sends one);
 * "Expect: 100-continue" is answered by the proxy itself.
 *
 * Threads: tp_* functions may be called from any thread while the proxy runs;
 * tp_stop joins every thread of the proxy.
 */
#ifndef DCP_TESTS_S3_PROXY_H
#define DCP_TESTS_S3_PROXY_H

#include <stddef.h>

typedef struct tp_proxy tp_proxy;

typedef enum tp_action {
	TP_STATUS = 1, /* answer `status` with an S3 <Error> body (code: `code`) */
	TP_DROP = 2    /* close the connection without an answer (a reset) */
} tp_action;

typedef struct tp_rule {
	const char *method; /* "PUT", ...; NULL: any */
	const char *needle; /* substring of the request target; NULL: any */
	int skip;           /* let this many matching requests through first */
	int times;          /* then fault this many (-1: all later ones) */
	tp_action action;
	int status;       /* TP_STATUS */
	const char *code; /* TP_STATUS: S3 error code, e.g. "SlowDown" */
} tp_rule;

/* Starts a proxy to upstream "http://host:port" on a free port of
 * 127.0.0.1. NULL on failure (with a line on stderr). */
tp_proxy *tp_start(const char *upstream);
/* Stops accepting, waits for every connection thread, frees. */
void tp_stop(tp_proxy *p);
/* "http://127.0.0.1:PORT" (owned by p). */
const char *tp_endpoint(const tp_proxy *p);
/* Adds a rule (copied); rules are matched in order, the first match wins. */
void tp_add_rule(tp_proxy *p, const tp_rule *r);
void tp_clear_rules(tp_proxy *p);

/* The log: one entry per request, in order of arrival, "METHOD TARGET
 * STATUS". STATUS is the status sent back, 0 for a dropped connection, -2
 * while the request is in progress; it is set before the client can see the
 * answer, so a request whose answer the client has is never pending. */
size_t tp_log_count(tp_proxy *p);
/* Copy of entry i into buf; returns buf, or NULL if i is out of range. */
char *tp_log_entry(tp_proxy *p, size_t i, char *buf, size_t len);
/* Number of entries with this method (NULL: any) whose target contains
 * needle (NULL: any) and whose status is `status` (0: any status, pending
 * included; -1: dropped). */
size_t tp_log_match(tp_proxy *p, const char *method, const char *needle, int status);
/* Most requests in progress at the same time since the last reset. */
int tp_max_concurrent(tp_proxy *p);
void tp_log_clear(tp_proxy *p);

/* From now on (on != 0), every request's head and body are kept in the log
 * (the bodies in memory: for tests that move little data). */
void tp_capture(tp_proxy *p, int on);
/* Entry i's head (NUL-terminated, "\r\n" line ends) and body, malloc'd
 * copies the caller frees. 0, or -1 if i is out of range, was logged
 * without capture, or memory ran out. */
int tp_log_request(tp_proxy *p, size_t i, char **head, char **body, size_t *body_len);

#endif /* DCP_TESTS_S3_PROXY_H */
