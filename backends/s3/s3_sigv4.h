/*
 * AWS Signature Version 4 and the digests the S3 backend sends (s3_sigv4.c).
 * Apart from s3_internal.h so that the tests can check the signer against
 * AWS's published examples. Not for plugins.
 */
#ifndef DCP_S3_SIGV4_H
#define DCP_S3_SIGV4_H

#include <stddef.h>

#define S3_MAX_SIGNED_HEADERS 12

typedef struct s3_header {
	const char *name;  /* lowercase */
	const char *value; /* as sent */
} s3_header;

/* One request to sign. Every string is borrowed. */
typedef struct s3_sigv4_request {
	const char *method;
	const char *canonical_uri; /* the path as sent (already URI-encoded), "/..." */
	size_t canonical_uri_len;
	const char *canonical_query; /* sorted, encoded, "k=v&..."; NULL or "" for none */
	const s3_header *headers;    /* the headers to sign (host, x-amz-date and
	                                x-amz-content-sha256 among them), any order */
	size_t nheaders;             /* at most S3_MAX_SIGNED_HEADERS */
	const char *payload_hash;    /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
	const char *amz_date;        /* "YYYYMMDDTHHMMSSZ", the x-amz-date value */
	const char *region;
	const char *service; /* "s3" */
	const char *access_key_id;
	const char *secret; /* secret: never copied anywhere but the signing key (wiped) */
} s3_sigv4_request;

typedef struct s3_sigv4_result {
	char *authorization;      /* malloc'd "Authorization: AWS4-HMAC-SHA256 Credential=..." line */
	char *canonical_request;  /* malloc'd, for tests and diagnostics (holds no secret) */
	char string_to_sign[256]; /* holds no secret */
} s3_sigv4_result;

/* Signs r. 0, or -1 (out of memory, too many headers, a malformed date). */
int s3_sigv4_sign(const s3_sigv4_request *r, s3_sigv4_result *out);
void s3_sigv4_result_free(s3_sigv4_result *r);
/* Hex SHA-256 of data. 0, or -1 if libcrypto failed. */
int s3_sha256_hex(const void *data, size_t len, char out[65]);
/* MD5 of the concatenated binary MD5s of n parts: the hex part of a
 * multipart upload's ETag ("<hex>-n"). 0 or -1. */
int s3_md5_of_md5s(const unsigned char (*parts)[16], size_t n, unsigned char out[16]);
/* Base64 of n bytes into out (4 * ceil(n / 3) + 1 bytes). */
void s3_base64(const unsigned char *in, size_t n, char *out);
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void s3_hex(const unsigned char *in, size_t n, char *out);

#endif /* DCP_S3_SIGV4_H */
