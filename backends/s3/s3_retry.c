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

int s3_execute(s3_backend *b, const s3_req *req, const long *ok_status, s3_resp *resp, dcp_msg *msg)
{
	struct timespec now;
	uint64_t seed;
	int attempt, rc;

	clock_gettime(CLOCK_MONOTONIC, &now);
	seed = ((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^ (uint64_t)(uintptr_t)&now ^
	       0x9E3779B97F4A7C15ULL;
	if (seed == 0)
		seed = 1;
	for (attempt = 1;; attempt++) {
		int retry;
		rc = s3_perform_once(b, req, resp);
		if (rc != DCP_OK) {
			dcp_msgf(msg, "out of memory sending %s for %s", req->op,
			         req->key != NULL ? req->key : b->bucket);
			return rc;
		}
		if (resp->curl_code == CURLE_OK && is_ok(resp->status, ok_status))
			return DCP_OK;
		if (resp->cancelled || (req->cancel != NULL && atomic_load(req->cancel)))
			return s3_fail(b, req, resp, attempt, msg);
		retry = resp->curl_code != CURLE_OK ? curl_retryable(resp->curl_code)
		                                    : status_retryable(resp);
		if (!retry || attempt >= b->cfg.max_attempts)
			return s3_fail(b, req, resp, attempt, msg);
		{
			uint64_t ceiling = (uint64_t)b->cfg.backoff_base_ms
			                   << (attempt - 1 < 20 ? attempt - 1 : 20);
			if (ceiling > b->cfg.backoff_cap_ms)
				ceiling = b->cfg.backoff_cap_ms;
			atomic_fetch_add(&b->n_retries, 1);
			backoff_sleep(ceiling > 0 ? (unsigned)(next_rand(&seed) % ceiling) : 0, req->cancel);
		}
	}
}

/* What to do about an S3 error code, or NULL. */
static const char *hint_for(const char *code, long status)
{
	if (strcmp(code, "NoSuchBucket") == 0)
		return "check the bucket name in the checkpoint id, or create the bucket";
	if (strcmp(code, "InvalidAccessKeyId") == 0 || strcmp(code, "SignatureDoesNotMatch") == 0 ||
	    strcmp(code, "InvalidToken") == 0 || strcmp(code, "ExpiredToken") == 0 ||
	    strcmp(code, "TokenRefreshRequired") == 0)
		return "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN "
		       "or the AWS "
		       "profile)";
	if (strcmp(code, "AccessDenied") == 0 || status == 403)
		return "check that the credentials may use this bucket and prefix";
	if (strcmp(code, "AuthorizationHeaderMalformed") == 0 || strcmp(code, "PermanentRedirect") == 0 ||
	    status == 301)
		return "check the region (AWS_REGION or ?region=) and the endpoint";
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
	hint = hint_for(code, resp->status);
	dcp_msgf(msg, "%s %s failed%s: %s: %s (HTTP %ld from %s%s%s)%s%s", req->op, where, tries, code,
	         message, resp->status, b->endpoint_shown, rid, creds, hint != NULL ? ": " : "",
	         hint != NULL ? hint : "");
	if (resp->status == 404 && strcmp(code, "NoSuchKey") == 0)
		return DCP_ENOTFOUND;
	if (resp->status == 404 && strcmp(code, "NoSuchUpload") == 0)
		return DCP_ENOTFOUND;
	return DCP_EIO;
}
