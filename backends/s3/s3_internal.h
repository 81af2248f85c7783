/*
 * Shared between the S3 backend's source files; not for plugins.
 *
 *   s3_names.c      bucket names, key prefixes, key and query encoding
 *   s3_config.c     configuration from the environment, AWS files, JSON, URL
 *   s3_request.c    one HTTP request on a pooled libcurl easy handle
 *   s3_sigv4.c      AWS Signature V4, Content-MD5 and payload digests
 *   s3_retry.c      the retry loop, and S3 errors turned into messages
 *   s3_xml.c        S3's XML answers (libxml2)
 *   s3_multipart.c  object writes: one PUT, or a parallel multipart upload (from
 *                   a writer's buffers, or straight from write_iov's)
 *   s3_backend.c    the dcp_backend slots
 */
#ifndef DCP_S3_INTERNAL_H
#define DCP_S3_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "s3/s3_backend.h"
#include "s3/s3_sigv4.h"

typedef void CURL_handle; /* a CURL *, kept opaque outside s3_request.c */

typedef struct s3_backend {
	dcp_backend base;  /* first */
	dcp_s3_config cfg; /* owned copy; secrets wiped at destroy */
	char *bucket;
	char *prefix;     /* "" or "a/b" (no trailing '/') */
	char *base_url;   /* everything before the encoded key: "http://h:p/bucket/" or "https://bucket.h/" */
	char *bucket_url; /* the bucket itself: base_url without the trailing '/' (path style) or with it */
	char *endpoint_shown; /* the endpoint, for messages */

	pthread_mutex_t pool_lock; /* guards pool */
	CURL_handle **pool;        /* idle easy handles: their connections stay open */
	size_t npool, cappool;

	atomic_int bucket_state; /* 0 unknown, 1 exists (a HEAD of it answered 200) */

	/* dcp_s3_stats, updated atomically */
	atomic_uint_fast64_t n_requests, n_retries, n_single_puts, n_multipart, n_parts, n_max_inflight,
	        n_aborts, n_aborts_unsupported, n_ranged_gets, n_bytes_sent, n_bytes_received;
} s3_backend;

/* ------------------------------------------------------------------------ */
/* s3_names.c                                                               */
/* ------------------------------------------------------------------------ */
/* The full key of root-relative path (malloc'd), NULL if out of memory. */
char *s3_full_key(const s3_backend *b, const char *path);
/* Appends s percent-encoded as S3 wants it in a URL path ('/' kept when
 * keep_slash) or a query value, to the malloc'd string *dst (which may be
 * NULL). Returns 0, or -1 if out of memory (*dst is freed and NULLed). */
int s3_append_encoded(char **dst, const char *s, int keep_slash);
/* "s3://bucket/key" into buf. */
const char *s3_describe_key(const s3_backend *b, const char *key, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* s3_request.c                                                             */
/* ------------------------------------------------------------------------ */
typedef struct s3_req {
	const char *method; /* "GET", "PUT", "POST", "DELETE", "HEAD" */
	const char *op;     /* S3's name of the operation, for messages ("PutObject") */
	const char *key;    /* full key, unencoded; NULL for the bucket itself */
	const char *query;  /* canonical query (sorted keys, "k=v" even when v is
	                       empty, values encoded), or NULL */
	int has_body;       /* send body (PUT, POST) */
	const void *body;   /* body_len bytes; ignored when segs is set */
	uint64_t body_len;
	const dcp_backend_iov *segs; /* or: the body is body_len bytes from offset segs_off of
	                                the concatenation of segs[0..nsegs-1] (borrowed) */
	size_t nsegs;
	uint64_t segs_off;
	const char *content_type; /* NULL: none sent */
	int has_range;            /* "Range: bytes=range_off-(range_off+range_len-1)" */
	uint64_t range_off, range_len;
	void *dst;                   /* 2xx answers: object bytes go here (range_len of them) */
	const dcp_backend_dst *dsts; /* or: into the concatenation of dsts[0..ndsts-1] from its
	                                offset dsts_off (NULL data: dropped); borrowed */
	size_t ndsts;
	uint64_t dsts_off;
	int want_body;             /* 2xx answers: keep the body in resp->body */
	const atomic_int *cancel;  /* nonzero: abort the transfer (and do not retry); may be NULL */
	const char *if_none_match; /* "If-None-Match" value ("*": create only), or NULL */
	/* Filled by s3_execute, not by callers: the body's MD5, sent as
	 * Content-MD5 (the store refuses a body that does not match it). */
	int has_md5;
	unsigned char md5[16];
} s3_req;

typedef struct s3_resp {
	long status;        /* 0 if no HTTP answer */
	int curl_code;      /* CURLcode of the transfer */
	char curl_err[256]; /* libcurl's error text, "" if none */
	char *body;         /* 2xx with want_body: the body; else an error body (capped) */
	size_t body_len, body_cap;
	uint64_t dst_got; /* bytes stored into req->dst */
	int dst_overflow; /* the answer had more bytes than asked for */
	uint64_t skip;    /* 200 to a ranged GET: bytes still to skip */
	int has_content_range;
	uint64_t range_total; /* from Content-Range ".../total", if any */
	int has_content_length;
	uint64_t content_length;
	int has_range_bounds; /* Content-Range "bytes FIRST-LAST/..." was parsed */
	uint64_t range_first, range_last;
	int range_mismatch; /* a 206 answer whose Content-Range is not the range asked for */
	char etag[128];
	char request_id[96];
	int cancelled;            /* the transfer was aborted through req->cancel */
	char string_to_sign[256]; /* what the request was signed with ("" if unsigned): compared
	                             with the store's own on SignatureDoesNotMatch */
} s3_resp;

void s3_resp_reset(s3_resp *r); /* keeps the body buffer, empties it */
void s3_resp_free(s3_resp *r);

/* One attempt: fills resp (reset first). Returns 0, or DCP_ENOMEM when the
 * request could not even be built. */
int s3_perform_once(s3_backend *b, const s3_req *req, s3_resp *resp);
/* Frees every pooled handle (destroy). */
void s3_pool_clear(s3_backend *b);

/* ------------------------------------------------------------------------ */
/* s3_sigv4.c (the signer itself: s3_sigv4.h)                                */
/* ------------------------------------------------------------------------ */
/* MD5 of q's body (body, or body_len bytes of segs from segs_off). 0 or -1. */
int s3_body_md5(const s3_req *q, unsigned char out[16]);

/* ------------------------------------------------------------------------ */
/* s3_retry.c                                                               */
/* ------------------------------------------------------------------------ */
/*
 * Performs req with retries (see s3_backend.h). Returns DCP_OK when the final
 * answer is 2xx (or one of `ok_status`, a 0-terminated list, may be NULL),
 * with resp filled. Else fills msg with what failed on which object (S3's
 * Code and Message, the HTTP status, the endpoint, the request id, the
 * number of attempts, and what to do) and returns DCP_ENOTFOUND for
 * NoSuchKey (404 on an object), DCP_EIO otherwise (DCP_ENOMEM,
 * DCP_ETIMEOUT for timeouts). resp is the caller's and must be freed.
 */
int s3_execute(s3_backend *b, const s3_req *req, const long *ok_status, s3_resp *resp, dcp_msg *msg);
/* Fills msg for a final answer that is not a success (no retry). Returns the
 * code as s3_execute does. attempts: how many were made. */
int s3_fail(s3_backend *b, const s3_req *req, const s3_resp *resp, int attempts, dcp_msg *msg);

/* ------------------------------------------------------------------------ */
/* s3_xml.c                                                                 */
/* ------------------------------------------------------------------------ */
/* Parses an <Error> body: Code and Message into the buffers ("" when not
 * there). Returns 1 if body is an <Error> document, else 0. */
int s3_xml_error(const char *body, size_t len, char *code, size_t codelen, char *message, size_t msglen);
/* The text of element `name` under the root element root_name, into out
 * (truncated to outlen - 1). Returns 1 if found, else 0 (out ""). */
int s3_xml_text(const char *body, size_t len, const char *root_name, const char *name, char *out,
                size_t outlen);
/* InitiateMultipartUploadResult: *upload_id malloc'd. DCP_EIO if absent or
 * not XML, DCP_ENOMEM. */
int s3_xml_upload_id(const char *body, size_t len, char **upload_id);
/* ListBucketResult (V2): calls fn for each Contents (Key, Size,
 * LastModified as seconds since the epoch, -1 if absent or unreadable);
 * *truncated and *next_token (malloc'd, NULL if none). fn's nonzero return
 * stops and is returned. DCP_EIO if the body is no ListBucketResult. */
int s3_xml_list(const char *body, size_t len,
                int (*fn)(const char *key, uint64_t size, int64_t mtime, void *arg), void *arg,
                int *truncated, char **next_token);
/* ListMultipartUploadsResult: fn for each Upload (Key, UploadId, Initiated
 * as seconds since the epoch or -1); *truncated, and the markers of the
 * next page (malloc'd, NULL if absent). Same contract as s3_xml_list. */
int s3_xml_uploads(const char *body, size_t len,
                   int (*fn)(const char *key, const char *upload_id, int64_t initiated, void *arg), void *arg,
                   int *truncated, char **next_key, char **next_upload);
/* An S3 timestamp ("2026-12-07T13:20:00.000Z") as seconds since the epoch,
 * or -1. */
int64_t s3_xml_time(const char *t);
/* Appends s to *dst with &, <, > and quotes escaped (for request bodies).
 * 0, or -1 if out of memory (*dst freed and NULLed). */
int s3_xml_append_escaped(char **dst, size_t *len, const char *s);
/* Appends a literal. Same contract. */
int s3_append(char **dst, size_t *len, const char *s);

/* ------------------------------------------------------------------------ */
/* s3_multipart.c                                                           */
/* ------------------------------------------------------------------------ */
int s3_writer_open(dcp_backend *b, const char *path, dcp_backend_writer **out, dcp_msg *msg);
/* The write_iov slot: one PUT up to cfg.multipart_threshold bytes, else a
 * multipart upload whose parts are slices of iov, cfg.concurrency at a time. */
int s3_write_iov(dcp_backend *b, const char *path, const dcp_backend_iov *iov, size_t n,
                 const atomic_int *stop, dcp_msg *msg);
int s3_writer_append(dcp_backend_writer *w, const void *data, uint64_t len, dcp_msg *msg);
int s3_writer_close(dcp_backend_writer *w, dcp_msg *msg);
void s3_writer_abort(dcp_backend_writer *w);
/* The abort_upload slot: AbortMultipartUpload of upload_id of path. */
int s3_abort_upload(dcp_backend *b, const char *path, const char *upload_id, dcp_msg *msg);

/* ------------------------------------------------------------------------ */
/* s3_backend.c                                                             */
/* ------------------------------------------------------------------------ */
/* Stores max(*slot, v). */
void s3_stat_max(atomic_uint_fast64_t *slot, uint64_t v);

#endif /* DCP_S3_INTERNAL_H */
