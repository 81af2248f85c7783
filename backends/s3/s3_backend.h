/*
 * S3 and S3-compatible stores (AWS S3, MinIO, s3rver) as a dcp_backend, over
 * libcurl. Only the s3 plugin and the tests include this; libdcp never links
 * libcurl.
 *
 * A backend's root is a bucket and a key prefix: object "p" of the root is
 * the key "<prefix>/p" (or "p" when the prefix is empty). write_iov (the
 * object's size known, its bytes in the caller's buffers: what the layout
 * uses) sends objects up to multipart_threshold with one PUT and larger ones
 * as a multipart upload of part_size slices, up to `concurrency` in flight,
 * all straight from the caller's buffers. A writer (size unknown, bytes
 * copied into part buffers) uses one PUT for objects up to the part size and
 * a multipart upload beyond. Any failure aborts the upload. put_atomic is one
 * PUT (S3 replaces an object atomically).
 * Reads are ranged GETs; a large read is split into ranges fetched in
 * parallel. Requests are signed with AWS Signature V4 (s3_sigv4.c) and retried
 * with exponential backoff and full jitter on 5xx answers, SlowDown,
 * connection resets and timeouts; 4xx answers fail at once with S3's error
 * code and message.
 *
 * Secrets (the secret access key and the session token) are never written
 * into any message; the backend wipes its copies when it is destroyed.
 */
#ifndef DCP_S3_BACKEND_H
#define DCP_S3_BACKEND_H

#include "backend.h"
#include "url.h"

#define DCP_S3_MIN_PART_SIZE       ((uint64_t)5 << 20)
#define DCP_S3_MAX_PART_SIZE       ((uint64_t)5 << 30)
#define DCP_S3_DEFAULT_PART_SIZE   ((uint64_t)8 << 20)
#define DCP_S3_DEFAULT_THRESHOLD   ((uint64_t)64 << 20) /* multipart_threshold */
#define DCP_S3_MAX_PARTS           10000
#define DCP_S3_MAX_CONCURRENCY     64
#define DCP_S3_DEFAULT_CONCURRENCY 4
#define DCP_S3_DEFAULT_ATTEMPTS    5 /* the first try and 4 retries */
#define DCP_S3_MAX_ATTEMPTS        21
#define DCP_S3_DEFAULT_REGION      "us-east-1"
#define DCP_S3_MAX_KEY             1024

/*
 * Everything a backend needs to talk to a store. Strings are malloc'd and
 * owned by the struct (NULL where unset); dcp_s3_config_clear frees them and
 * wipes the secrets.
 */
typedef struct dcp_s3_config {
	char *endpoint;               /* "http[s]://host[:port][/path]" without a trailing '/';
	                                 NULL: https://s3.<region>.amazonaws.com */
	char *region;                 /* never NULL after dcp_s3_config_load */
	char *access_key_id;          /* NULL: unsigned (anonymous) requests */
	char *secret_access_key;      /* secret */
	char *session_token;          /* secret; NULL if none */
	char *credentials_from;       /* where the credentials came from, for messages
	                                 ("the environment", "profile 'x' in FILE"); no secret */
	int path_style;               /* 1: https://host/bucket/key; 0: https://bucket.host/key;
	                                 -1: path style for a custom endpoint or a bucket with dots */
	uint64_t part_size;           /* DCP_S3_MIN_PART_SIZE..DCP_S3_MAX_PART_SIZE */
	uint64_t multipart_threshold; /* write_iov (object size known up front): up to this size one
	                                 PUT, larger objects multipart; 5M..5G */
	int concurrency;              /* parts (and read ranges) in flight per object, 1..64 */
	int max_attempts;             /* 1..DCP_S3_MAX_ATTEMPTS tries per request */
	int verify_tls;               /* 0 only when asked for explicitly */
	int upload_md5;           /* 1 (default): Content-MD5 on every PUT and part (upload_checksum=md5) */
	int verify_etag;          /* 1 (default): an MD5-style ETag must match the bytes sent, and a
	                             multipart ETag "<hex>-N" the parts' MD5s */
	char *ca_bundle;          /* CA file (AWS_CA_BUNDLE, ca_bundle); NULL: system default */
	long connect_timeout_s;   /* connect timeout */
	long low_speed_time_s;    /* a transfer below 1 byte/s for this long fails (and is retried) */
	unsigned backoff_base_ms; /* retry n waits a random time in [0, min(cap, base * 2^n)) */
	unsigned backoff_cap_ms;
} dcp_s3_config;

/* Defaults, no strings. */
void dcp_s3_config_init(dcp_s3_config *cfg);
/* Frees the strings (wiping the secrets) and re-initialises. */
void dcp_s3_config_clear(dcp_s3_config *cfg);
/* Deep copy into dst (initialised here). DCP_ENOMEM with msg. */
int dcp_s3_config_copy(dcp_s3_config *dst, const dcp_s3_config *src, dcp_msg *msg);

/*
 * Fills cfg (initialised here; clear it also after a failure) the way AWS
 * tools do, each source overriding the ones before it:
 *   1. defaults;
 *   2. the profile's section of the config file ($AWS_CONFIG_FILE, else
 *      ~/.aws/config): region, endpoint_url, max_attempts, ca_bundle, and in an
 *      "s3 =" block addressing_style, endpoint_url, multipart_chunksize,
 *      multipart_threshold, max_concurrent_requests;
 *   3. the environment: AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 /
 *      AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, AWS_CA_BUNDLE;
 *   4. a JSON profile: the file named by the URL's config= or $DCP_S3_CONFIG
 *      (keys endpoint, region, path_style, part_size, multipart_threshold,
 *      concurrency, retries, profile, verify_tls, ca_bundle, connect_timeout,
 *      low_speed_time;
 *      conf/s3-minio.json is an example); it holds no secrets;
 *   5. the URL's query: endpoint, region, path_style, part_size,
 *      multipart_threshold, concurrency, retries, profile, config (see
 *      dcp_s3_url_keys).
 * The profile is the URL's profile=, else the JSON's "profile", else
 * $AWS_PROFILE, else $AWS_DEFAULT_PROFILE, else "default". Credentials: when
 * a profile was named in the URL or the JSON, that profile's (credentials
 * file, $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, then the config
 * file); else AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
 * from the environment when both are set; else the profile's. No credentials
 * at all means unsigned requests. url may be NULL (no query). shown is the id
 * for messages.
 * Errors: DCP_EID for a bad query value (naming key, value and id);
 * DCP_EINVAL for a bad file or a named profile that does not exist; DCP_EIO
 * if a named file cannot be read; DCP_ENOMEM.
 */
int dcp_s3_config_load(dcp_s3_config *cfg, const dcp_url *url, const char *shown, dcp_msg *msg);

/* The URL query keys that dcp_s3_config_load reads (NULL-terminated). */
extern const char *const dcp_s3_url_keys[];

/*
 * Checks a bucket name against S3's rules: 3 to 63 characters; lowercase
 * letters, digits, '.' and '-'; starts and ends with a letter or digit; no
 * "..", ".-" or "-."; not an IPv4 address. DCP_EID with a message saying
 * what is wrong (shown: the id, for the message; may be NULL).
 */
int dcp_s3_bucket_check(const char *bucket, const char *shown, dcp_msg *msg);

/*
 * Splits "bucket/prefix/..." (the part of s3://... between "://" and the
 * query) into a checked bucket and key prefix (malloc'd; prefix "" when
 * absent; a trailing '/' is dropped). The prefix must be '/'-separated
 * components of letters, digits and !-_.*'()=~ with no empty, "." or ".."
 * component, at most 900 bytes. DCP_EID with a reason.
 */
int dcp_s3_split_id(const char *rest, const char *shown, char **bucket, char **prefix, dcp_msg *msg);

/*
 * A backend over bucket/prefix with a copy of cfg. No request is sent here.
 * The first open in the process initialises libcurl and libxml2 (once,
 * under pthread_once; never undone by a destroy).
 */
int dcp_s3_backend_open(const dcp_s3_config *cfg, const char *bucket, const char *prefix, dcp_backend **out,
                        dcp_msg *msg);

/* Counters of one backend, for tests and benchmarks. */
typedef struct dcp_s3_stats {
	uint64_t requests;            /* HTTP requests sent, retries included */
	uint64_t retries;             /* of which retries */
	uint64_t single_puts;         /* objects written with one PUT */
	uint64_t multipart_uploads;   /* CreateMultipartUpload that succeeded */
	uint64_t parts;               /* parts uploaded */
	uint64_t max_parts_in_flight; /* most parts of one upload in flight at once */
	uint64_t aborts;              /* AbortMultipartUpload sent */
	uint64_t aborts_unsupported;  /* of which answered 405 or 501 */
	uint64_t ranged_gets;         /* GETs with a Range header */
	uint64_t bytes_sent;          /* request bodies (of the last attempt) */
	uint64_t bytes_received;      /* object bytes read */
} dcp_s3_stats;

/* b must come from dcp_s3_backend_open. */
void dcp_s3_backend_stats(dcp_backend *b, dcp_s3_stats *out);

#endif /* DCP_S3_BACKEND_H */
