/*
 * The retry loop around s3_perform_once, and the messages of failed requests.
 *
 * Retried (up to cfg.max_attempts tries in all): connection failures, resets
 * and timeouts; 5xx answers other than 501 NotImplemented (500 InternalError,
 * 503 SlowDown, ...); 429; S3's 400 RequestTimeout. Not retried: every other
 * 4xx (credentials, missing bucket, bad request), and cancelled transfers.
 * Between tries, full jitter: retry n sleeps a random time in
 * [0, min(cap, base * 2^n)) (the AWS architecture blog's "full jitter").
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "s3_internal.h"

static int curl_retryable(int cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static int status_retryable(const s3_resp *r)
{
	char code[64], message[8];

	if (r->status == 429 || (r->status >= 500 && r->status != 501))
		return 1;
	if (r->status == 400 &&
	    s3_xml_error(r->body, r->body_len, code, sizeof(code), message, sizeof(message)))
		return strcmp(code, "RequestTimeout") == 0;
	return 0;
}

static int is_ok(long status, const long *ok_status)
{
	if (status >= 200 && status < 300)
		return 1;
	for (; ok_status != NULL && *ok_status != 0; ok_status++)
		if (*ok_status == status)
			return 1;
	return 0;
}

/* A per-call pseudo-random generator (xorshift64*), seeded from the clock
 * and the stack address: no shared state between threads. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Sleeps up to ms milliseconds, in slices, returning early if cancelled. */
static void backoff_sleep(unsigned ms, const atomic_int *cancel)
{
	while (ms > 0 && (cancel == NULL || !atomic_load(cancel))) {
		unsigned slice = ms < 50 ? ms : 50;
		struct timespec ts = {0, (long)slice * 1000000L};
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/* The ETag of a PUT (PutObject, UploadPart) that carried Content-MD5: when
 * it has the form of an MD5 ("<32 hex>", quotes allowed), it must be the MD5
 * of what was sent. Other forms (SSE-KMS or SSE-C stores, "<hex>-N") are not
 * digests of the body and are not compared. 0 when it matches or cannot be
 * compared, else -1 with msg filled. */
static int check_etag(s3_backend *b, const s3_req *q, const s3_resp *resp, dcp_msg *msg)
{
	const char *e = resp->etag;
	char hex[33], where[DCP_S3_MAX_KEY + 80];
	size_t n, i;

	if (!q->has_md5 || !b->cfg.verify_etag || strcmp(q->method, "PUT") != 0)
		return 0;
	if (*e == '"')
		e++;
	n = strlen(e);
	if (n > 0 && e[n - 1] == '"')
		n--;
	if (n != 32)
		return 0;
	for (i = 0; i < 32; i++)
		if (!((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'f') ||
		      (e[i] >= 'A' && e[i] <= 'F')))
			return 0;
	s3_hex(q->md5, 16, hex);
	if (strncasecmp(e, hex, 32) == 0)
		return 0;
	dcp_msgf(msg,
	         "%s %s: the store answered ETag %s, but the MD5 of the %llu bytes sent is %s: the object "
	         "stored is not what was sent (HTTP %ld from %s); if the bucket encrypts with SSE-KMS or "
	         "SSE-C its ETags are not MD5 digests: set verify_etag=0",
	         q->op, s3_describe_key(b, q->key, where, sizeof(where)), resp->etag,
	         (unsigned long long)q->body_len, hex, resp->status, b->endpoint_shown);
	return -1;
}

int s3_execute(s3_backend *b, const s3_req *req, const long *ok_status, s3_resp *resp, dcp_msg *msg)
{
	struct timespec now;
	uint64_t seed;
	int attempt, rc;
	s3_req q = *req;

	clock_gettime(CLOCK_MONOTONIC, &now);
	seed = ((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^ (uint64_t)(uintptr_t)&now ^
	       0x9E3779B97F4A7C15ULL;
	if (seed == 0)
		seed = 1;
	/* Content-MD5, once for all the tries: data bodies unless
	 * upload_checksum=none, and always the small bodies of requests that S3
	 * requires it for (DeleteObjects) or that cost nothing to protect. */
	q.has_md5 = 0;
	if (q.has_body && (b->cfg.upload_md5 || (q.segs == NULL && q.body_len <= ((uint64_t)1 << 20)))) {
		if (s3_body_md5(&q, q.md5) != 0) {
			dcp_msgf(msg, "libcrypto could not compute the MD5 of the body of %s for %s", q.op,
			         q.key != NULL ? q.key : b->bucket);
			return DCP_ENOMEM;
		}
		q.has_md5 = 1;
	}
	for (attempt = 1;; attempt++) {
		int retry;
		rc = s3_perform_once(b, &q, resp);
		if (rc != DCP_OK) {
			dcp_msgf(msg, "out of memory sending %s for %s", q.op,
			         q.key != NULL ? q.key : b->bucket);
			return rc;
		}
		if (resp->range_mismatch) {
			char where[DCP_S3_MAX_KEY + 80];
			dcp_msgf(
			        msg,
			        "%s %s: asked for bytes %llu-%llu, the store answered HTTP 206 with "
			        "%s%llu-%llu "
			        "(from %s): refusing bytes of another range; the store or a proxy on the way "
			        "does not honour Range requests",
			        q.op, s3_describe_key(b, q.key, where, sizeof(where)),
			        (unsigned long long)q.range_off,
			        (unsigned long long)(q.range_off + q.range_len - 1),
			        resp->has_range_bounds ? "bytes " : "no usable Content-Range, ",
			        (unsigned long long)resp->range_first, (unsigned long long)resp->range_last,
			        b->endpoint_shown);
			return DCP_EIO;
		}
		if (resp->curl_code == CURLE_OK && is_ok(resp->status, ok_status)) {
			if (resp->status >= 200 && resp->status < 300 && check_etag(b, &q, resp, msg) != 0)
				return DCP_EIO;
			return DCP_OK;
		}
		if (resp->cancelled || (q.cancel != NULL && atomic_load(q.cancel)))
			return s3_fail(b, &q, resp, attempt, msg);
		retry = resp->curl_code != CURLE_OK ? curl_retryable(resp->curl_code)
		                                    : status_retryable(resp);
		if (!retry || attempt >= b->cfg.max_attempts)
			return s3_fail(b, &q, resp, attempt, msg);
		{
			uint64_t ceiling = (uint64_t)b->cfg.backoff_base_ms
			                   << (attempt - 1 < 20 ? attempt - 1 : 20);
			if (ceiling > b->cfg.backoff_cap_ms)
				ceiling = b->cfg.backoff_cap_ms;
			atomic_fetch_add(&b->n_retries, 1);
			backoff_sleep(ceiling > 0 ? (unsigned)(next_rand(&seed) % ceiling) : 0, q.cancel);
		}
	}
}

/* What to do about an S3 error code, or NULL. On SignatureDoesNotMatch the
 * store may send the string it signed itself: the same as ours means the
 * secret differs; a different one means the request was changed on its way
 * (or signed over something else), which no credential change would fix. */
static const char *hint_for(const s3_backend *b, const s3_resp *resp, const char *code, long status)
{
	if (strcmp(code, "NoSuchBucket") == 0)
		return "check the bucket name in the checkpoint id, or create the bucket";
	if (strcmp(code, "SignatureDoesNotMatch") == 0) {
		char theirs[256];
		if (s3_xml_text(resp->body, resp->body_len, "Error", "StringToSign", theirs,
		                sizeof(theirs)) &&
		    resp->string_to_sign[0] != '\0' && strcmp(theirs, resp->string_to_sign) != 0)
			return "the store signed a different request than the one libdcp signed (its "
			       "StringToSign differs): a proxy between rewrote the request, or the endpoint "
			       "or region is not the store's; the credentials are not the cause";
		return "the access key id is known to the store but the signature does not match: the "
		       "secret access key is most likely wrong (AWS_SECRET_ACCESS_KEY or the profile's "
		       "aws_secret_access_key), or a proxy between rewrites requests";
	}
	if (strcmp(code, "InvalidAccessKeyId") == 0)
		return "the store does not know this access key id: check AWS_ACCESS_KEY_ID or the "
		       "profile's aws_access_key_id, and that the endpoint is the store the key belongs to";
	if (strcmp(code, "InvalidToken") == 0 || strcmp(code, "ExpiredToken") == 0 ||
	    strcmp(code, "TokenRefreshRequired") == 0)
		return "the session token is invalid or expired: refresh AWS_SESSION_TOKEN (or the "
		       "profile's aws_session_token) with the access key it belongs to";
	if (strcmp(code, "AccessDenied") == 0 || status == 403) {
		if (b->cfg.access_key_id == NULL)
			return "the store refuses anonymous requests: set AWS_ACCESS_KEY_ID and "
			       "AWS_SECRET_ACCESS_KEY, or name a profile with ?profile=";
		return "check that the credentials may use this bucket and prefix";
	}
	if (strcmp(code, "AuthorizationHeaderMalformed") == 0 || strcmp(code, "PermanentRedirect") == 0 ||
	    status == 301)
		return "check the region (AWS_REGION or ?region=) and the endpoint";
	if (strcmp(code, "BadDigest") == 0 || strcmp(code, "InvalidDigest") == 0)
		return "the bytes that reached the store differ from the bytes sent (their Content-MD5 "
		       "does not match): the network or a proxy corrupted them; retry, and check the path "
		       "to the store";
	if (strcmp(code, "PreconditionFailed") == 0 || status == 412)
		return "another save created the object first (If-None-Match)";
	if (strcmp(code, "SlowDown") == 0 || status == 503)
		return "the store is throttling; retry later or lower ?concurrency=";
	if (status >= 500)
		return "the store failed; retry later (?retries= sets the number of retries)";
	return NULL;
}

int s3_fail(s3_backend *b, const s3_req *req, const s3_resp *resp, int attempts, dcp_msg *msg)
{
	char where[DCP_S3_MAX_KEY + 80], tries[48] = "", rid[128] = "", creds[200] = "";
	char code[96], message[400];
	const char *hint;

	s3_describe_key(b, req->key, where, sizeof(where));
	if (attempts > 1)
		snprintf(tries, sizeof(tries), " after %d attempts", attempts);
	if (resp->cancelled) {
		dcp_msgf(msg, "%s %s was cancelled because another request of the same operation failed",
		         req->op, where);
		return DCP_EIO;
	}
	if (resp->curl_code == CURLE_PEER_FAILED_VERIFICATION ||
	    resp->curl_code == CURLE_SSL_CACERT_BADFILE || resp->curl_code == CURLE_SSL_CERTPROBLEM ||
	    resp->curl_code == CURLE_SSL_ISSUER_ERROR) {
		dcp_msgf(msg,
		         "%s %s failed%s: %s: the TLS certificate of %s was not accepted%s%s: give the CA "
		         "that "
		         "signed it with AWS_CA_BUNDLE or ca_bundle in the JSON profile (verify_tls=false "
		         "turns the check off, for tests only)",
		         req->op, where, tries, resp->curl_err, b->endpoint_shown,
		         b->cfg.ca_bundle != NULL ? " by the CA bundle " : "",
		         b->cfg.ca_bundle != NULL ? b->cfg.ca_bundle : "");
		return DCP_EIO;
	}
	if (resp->curl_code != CURLE_OK) {
		int timeout = resp->curl_code == CURLE_OPERATION_TIMEDOUT;
		dcp_msgf(msg, "%s %s failed%s: %s (no answer from the endpoint %s): %s", req->op, where,
		         tries, resp->curl_err, b->endpoint_shown,
		         timeout ? "the store is too slow or unreachable; check the endpoint and the network"
		         : resp->curl_code == CURLE_COULDNT_CONNECT ||
		                         resp->curl_code == CURLE_COULDNT_RESOLVE_HOST
		                 ? "check that the endpoint is right and the store is running"
		                 : "check the endpoint, the network and the store");
		return timeout ? DCP_ETIMEOUT : DCP_EIO;
	}
	if (resp->request_id[0] != '\0')
		snprintf(rid, sizeof(rid), ", request id %s", resp->request_id);
	if (!s3_xml_error(resp->body, resp->body_len, code, sizeof(code), message, sizeof(message))) {
		/* HEAD answers carry no body: name the usual cause. */
		snprintf(code, sizeof(code), "%s",
		         resp->status == 404   ? (req->key != NULL ? "NoSuchKey" : "NoSuchBucket")
		         : resp->status == 403 ? "Forbidden"
		         : resp->status == 400 ? "BadRequest"
		                               : "HTTPError");
		snprintf(message, sizeof(message), "%s", "the answer has no S3 error body");
	}
	if (b->cfg.access_key_id == NULL && (resp->status == 403 || resp->status == 401))
		snprintf(creds, sizeof(creds),
		         "; no credentials were found, so the request was sent unsigned");
	else if (b->cfg.credentials_from != NULL && (resp->status == 403 || resp->status == 401))
		snprintf(creds, sizeof(creds), "; credentials from %s", b->cfg.credentials_from);
	hint = hint_for(b, resp, code, resp->status);
	/* Some stores (radosgw) send an empty Message: no ": " before nothing. */
	dcp_msgf(msg, "%s %s failed%s: %s%s%s (HTTP %ld from %s%s%s)%s%s", req->op, where, tries, code,
	         message[0] != '\0' ? ": " : "", message, resp->status, b->endpoint_shown, rid, creds,
	         hint != NULL ? ": " : "", hint != NULL ? hint : "");
	if (resp->status == 404 && strcmp(code, "NoSuchKey") == 0)
		return DCP_ENOTFOUND;
	if (resp->status == 404 && strcmp(code, "NoSuchUpload") == 0)
		return DCP_ENOTFOUND;
	return DCP_EIO;
}
