/*
 * AWS Signature V4 of the S3 backend's requests, checked two ways that do
 * not trust the server:
 *   - the signer against the worked examples of AWS's documentation
 *     ("Signature Calculations for the Authorization Header", S3 API
 *     reference: GET with a Range, PUT of an object named with '$', GET of a
 *     bucket's lifecycle, a listing with a query);
 *   - the requests that libdcp actually sends during a save, a load and a
 *     removal (single PUT, multipart upload, ranged GETs, listings,
 *     deletes), captured by the test proxy in front of the server and
 *     verified by a second signer written here from the raw bytes of each
 *     request: every header named in SignedHeaders is in the request, the
 *     signature matches, the payload hash and Content-MD5 match the body.
 * A signing fault therefore fails here even against a server that checks no
 * signature (s3rver). The first group needs no server.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dcp/dcp.h"
#include "dcptest.h"

#ifdef DCP_TEST_HAVE_S3
#include "s3/proxy.h"
#include "s3/s3_sigv4.h"
#include "s3/s3test.h"

#define EX_KEY    "AKIAIOSFODNN7EXAMPLE"
#define EX_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EX_DATE   "20130524T000000Z"
#define EX_HOST   "examplebucket.s3.amazonaws.com"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void expect_signature(const char *method, const char *uri, const char *query, const s3_header *h,
                             size_t nh, const char *payload, const char *want_signed, const char *want_sig)
{
	s3_sigv4_request r = {0};
	s3_sigv4_result out;
	char want[400];

	r.method = method;
	r.canonical_uri = uri;
	r.canonical_uri_len = strlen(uri);
	r.canonical_query = query;
	r.headers = h;
	r.nheaders = nh;
	r.payload_hash = payload;
	r.amz_date = EX_DATE;
	r.region = "us-east-1";
	r.service = "s3";
	r.access_key_id = EX_KEY;
	r.secret = EX_SECRET;
	cr_assert_eq(s3_sigv4_sign(&r, &out), 0, "signing %s %s failed", method, uri);
	dt_fmt(want, sizeof(want),
	       "Authorization: AWS4-HMAC-SHA256 Credential=" EX_KEY "/20130524/us-east-1/s3/aws4_request, "
	       "SignedHeaders=%s, Signature=%s",
	       want_signed, want_sig);
	cr_expect_str_eq(out.authorization, want, "%s %s: canonical request was:\n%s", method, uri,
	                 out.canonical_request);
	cr_expect(strstr(out.authorization, EX_SECRET) == NULL &&
	                  strstr(out.canonical_request, EX_SECRET) == NULL,
	          "the secret appears in the signing output");
	s3_sigv4_result_free(&out);
}

Test(sigv4, aws_example_get_object_with_range)
{
	s3_header h[] = {{"host", EX_HOST},
	                 {"range", "bytes=0-9"},
	                 {"x-amz-content-sha256", EMPTY_SHA},
	                 {"x-amz-date", EX_DATE}};
	expect_signature("GET", "/test.txt", "", h, 4, EMPTY_SHA,
	                 "host;range;x-amz-content-sha256;x-amz-date",
	                 "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

Test(sigv4, aws_example_put_object_headers_in_any_order)
{
	const char *sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
	char body_sha[65];
	/* Out of order and with blanks around a value: the signer sorts and trims. */
	s3_header h[] = {{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
	                 {"x-amz-date", EX_DATE},
	                 {"date", "  Fri, 24 May 2013 00:00:00 GMT "},
	                 {"host", EX_HOST},
	                 {"x-amz-content-sha256", sha}};

	cr_assert_eq(s3_sha256_hex("Welcome to Amazon S3.", 21, body_sha), 0);
	cr_assert_str_eq(body_sha, sha, "SHA-256 of the example body");
	expect_signature("PUT", "/test%24file.text", NULL, h, 5, sha,
	                 "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
	                 "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

Test(sigv4, aws_example_get_bucket_lifecycle)
{
	s3_header h[] = {{"host", EX_HOST}, {"x-amz-content-sha256", EMPTY_SHA}, {"x-amz-date", EX_DATE}};
	expect_signature("GET", "/", "lifecycle=", h, 3, EMPTY_SHA, "host;x-amz-content-sha256;x-amz-date",
	                 "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

Test(sigv4, aws_example_list_objects)
{
	s3_header h[] = {{"host", EX_HOST}, {"x-amz-content-sha256", EMPTY_SHA}, {"x-amz-date", EX_DATE}};
	expect_signature("GET", "/", "max-keys=2&prefix=J", h, 3, EMPTY_SHA,
	                 "host;x-amz-content-sha256;x-amz-date",
	                 "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

Test(sigv4, a_changed_secret_or_header_changes_the_signature)
{
	s3_header h[] = {{"host", EX_HOST}, {"x-amz-content-sha256", EMPTY_SHA}, {"x-amz-date", EX_DATE}};
	s3_sigv4_request r = {.method = "GET",
	                      .canonical_uri = "/",
	                      .canonical_uri_len = 1,
	                      .canonical_query = "lifecycle=",
	                      .headers = h,
	                      .nheaders = 3,
	                      .payload_hash = EMPTY_SHA,
	                      .amz_date = EX_DATE,
	                      .region = "us-east-1",
	                      .service = "s3",
	                      .access_key_id = EX_KEY,
	                      .secret = EX_SECRET};
	s3_sigv4_result a, b, c;

	cr_assert_eq(s3_sigv4_sign(&r, &a), 0);
	r.secret = EX_SECRET "x";
	cr_assert_eq(s3_sigv4_sign(&r, &b), 0);
	r.secret = EX_SECRET;
	h[0].value = "other.s3.amazonaws.com";
	cr_assert_eq(s3_sigv4_sign(&r, &c), 0);
	cr_expect_str_neq(a.authorization, b.authorization);
	cr_expect_str_neq(a.authorization, c.authorization);
	cr_expect_str_eq(a.string_to_sign, b.string_to_sign, "the string to sign holds no secret");
	s3_sigv4_result_free(&a);
	s3_sigv4_result_free(&b);
	s3_sigv4_result_free(&c);
}

/* ------------------------------------------------------------------------ */
/* A second signer, from the raw bytes of captured requests                 */
/* ------------------------------------------------------------------------ */
/* The value of header `name` (case-insensitive) in head, trimmed, into out;
 * NULL if absent. */
static const char *head_value(const char *head, const char *name, char *out, size_t len)
{
	const char *line = strstr(head, "\r\n");
	size_t n = strlen(name);

	while (line != NULL && line[2] != '\r' && line[2] != '\0') {
		const char *l = line + 2, *eol = strstr(l, "\r\n");
		if (eol == NULL)
			break;
		if ((size_t)(eol - l) > n && strncasecmp(l, name, n) == 0 && l[n] == ':') {
			const char *v = l + n + 1;
			const char *e = eol;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			dt_fmt(out, len, "%.*s", (int)(e - v), v);
			return out;
		}
		line = eol;
	}
	return NULL;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	cr_assert_eq(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	hex(md, 32, out);
}

static void hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
	unsigned int len = 0;
	cr_assert_not_null(
	        HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len));
}

/* Checks one captured request; returns 1 if it was signed. */
static int verify_request(const char *head, const char *body, size_t blen, const char *secret)
{
	char method[16], target[4096], authz[1024], cred[256], signed_list[512], sig[65];
	char date[32], sha[80], value[1024], mine_sig[65], creq_hash[65], day[9];
	char *creq = dt_xmalloc(16384), *sts = dt_xmalloc(1024);
	const char *q;
	size_t off = 0;
	unsigned char k[32], k2[32];
	char ksecret[256];

	cr_assert_eq(sscanf(head, "%15s %4095s", method, target), 2, "bad request line: %.100s", head);
	if (head_value(head, "Authorization", authz, sizeof(authz)) == NULL) {
		free(creq);
		free(sts);
		return 0;
	}
	cr_assert_eq(sscanf(authz,
	                    "AWS4-HMAC-SHA256 Credential=%255[^,], SignedHeaders=%511[^,], Signature=%64s",
	                    cred, signed_list, sig),
	             3, "%s %s: Authorization is not SigV4: %s", method, target, authz);
	cr_assert(strncmp(cred, getenv("AWS_ACCESS_KEY_ID"), strlen(getenv("AWS_ACCESS_KEY_ID"))) == 0 &&
	                  cred[strlen(getenv("AWS_ACCESS_KEY_ID"))] == '/',
	          "credential %s is not of the access key in use", cred);
	cr_assert_not_null(head_value(head, "x-amz-date", date, sizeof(date)), "%s %s: no x-amz-date", method,
	                   target);
	cr_assert_not_null(head_value(head, "x-amz-content-sha256", sha, sizeof(sha)),
	                   "%s %s: no x-amz-content-sha256", method, target);

	/* The payload hash and Content-MD5 describe the body that arrived. */
	if (strcmp(sha, "UNSIGNED-PAYLOAD") != 0) {
		char got[65];
		sha256_hex(body, blen, got);
		cr_assert_str_eq(sha, got, "%s %s: x-amz-content-sha256 is not the body's hash", method,
		                 target);
	} else {
		cr_assert_gt(blen, 0, "%s %s: an empty body sent as UNSIGNED-PAYLOAD", method, target);
	}
	if (blen > 0) {
		unsigned char md[16];
		unsigned int len = 0;
		char b64[32];
		cr_assert_not_null(head_value(head, "Content-MD5", value, sizeof(value)),
		                   "%s %s: a %zu-byte body without Content-MD5", method, target, blen);
		cr_assert_eq(EVP_Digest(body, blen, md, &len, EVP_md5(), NULL), 1);
		EVP_EncodeBlock((unsigned char *)b64, md, 16);
		cr_assert_str_eq(value, b64, "%s %s: Content-MD5 is not the body's MD5", method, target);
	}
	cr_assert_null(head_value(head, "Expect", value, sizeof(value)), "%s %s: Expect sent", method,
	               target);

	/* The canonical request, from the bytes as received. */
	q = strchr(target, '?');
	off += (size_t)snprintf(creq + off, 16384 - off, "%s\n%.*s\n%s\n", method,
	                        (int)(q != NULL ? (size_t)(q - target) : strlen(target)), target,
	                        q != NULL ? q + 1 : "");
	if (q != NULL) {
		/* The query as sent must already be canonical: sorted "k=v" pairs. */
		char prev[512] = "";
		const char *p = q + 1;
		while (*p) {
			size_t n = strcspn(p, "&");
			char pair[512];
			dt_fmt(pair, sizeof(pair), "%.*s", (int)n, p);
			cr_assert_not_null(strchr(pair, '='), "%s %s: query pair '%s' has no '='", method,
			                   target, pair);
			cr_assert(strcmp(prev, pair) < 0, "%s %s: query is not sorted", method, target);
			dt_fmt(prev, sizeof(prev), "%s", pair);
			p += n + (p[n] == '&');
		}
	}
	{
		char list[512], *save = NULL, *name;
		int has_host = 0, has_date = 0, has_sha = 0;
		dt_fmt(list, sizeof(list), "%s", signed_list);
		for (name = strtok_r(list, ";", &save); name != NULL; name = strtok_r(NULL, ";", &save)) {
			cr_assert_not_null(
			        head_value(head, name, value, sizeof(value)),
			        "%s %s: SignedHeaders names '%s', which the request does not carry", method,
			        target, name);
			off += (size_t)snprintf(creq + off, 16384 - off, "%s:%s\n", name, value);
			has_host |= strcmp(name, "host") == 0;
			has_date |= strcmp(name, "x-amz-date") == 0;
			has_sha |= strcmp(name, "x-amz-content-sha256") == 0;
		}
		cr_assert(has_host && has_date && has_sha, "%s %s: SignedHeaders %s lacks a required header",
		          method, target, signed_list);
	}
	snprintf(creq + off, 16384 - off, "\n%s\n%s", signed_list, sha);
	sha256_hex(creq, strlen(creq), creq_hash);
	dt_fmt(day, sizeof(day), "%.8s", date);
	{
		const char *scope = strchr(cred, '/') + 1;
		snprintf(sts, 1024, "AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope, creq_hash);
		cr_assert(strncmp(scope, day, 8) == 0, "credential scope %s is not of the day %s", scope,
		          day);
	}
	dt_fmt(ksecret, sizeof(ksecret), "AWS4%s", secret);
	hmac256(ksecret, strlen(ksecret), day, k);
	hmac256(k, 32, "us-east-1", k2);
	hmac256(k2, 32, "s3", k);
	hmac256(k, 32, "aws4_request", k2);
	hmac256(k2, 32, sts, k);
	hex(k, 32, mine_sig);
	cr_assert_str_eq(sig, mine_sig, "%s %s: the signature does not verify; canonical request:\n%s",
	                 method, target, creq);
	free(creq);
	free(sts);
	return 1;
}

Test(sigv4, every_request_of_a_save_load_and_remove_verifies, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *l = mixed_layout(2), *l3 = mixed_layout(3);
	uint64_t big[] = {(uint64_t)11 << 20};
	dt_outcome o;
	dcp_error *err = NULL;
	tp_proxy *px;
	size_t i, n, nsigned = 0, nput = 0, nparts = 0, nranged = 0;
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");

	need_server();
	/* s3rver checks the access key id but no signature: sign with a secret
	 * of the test's own, so that only the second signer here can tell a
	 * right signature from a wrong one. A server that checks signatures
	 * keeps its keys. */
	if (getenv("DCP_S3_TEST_SERVER") == NULL || strcmp(getenv("DCP_S3_TEST_SERVER"), "s3rver") == 0) {
		setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
		secret = SECRET;
		/* Temporary credentials carry a session token, which is signed. */
		setenv("AWS_SESSION_TOKEN", "test-session-token/of+some=length", 1);
	}
	cr_assert(secret != NULL && getenv("AWS_ACCESS_KEY_ID") != NULL, "no credentials in the environment");
	px = tp_start(endpoint());
	cr_assert_not_null(px);
	tp_capture(px, 1);
	dt_add_replicated(l, "big", DCP_U8, 1, big, DT_RANK(1));
	dt_add_replicated(l3, "big", DCP_U8, 1, big, DT_RANKS(3));
	dt_fmt(url, sizeof(url), "s3://%s/%s?part_size=5M&multipart_threshold=5M&endpoint=%s", bucket(),
	       prefix_for(pre, sizeof(pre), "sigv4"), tp_endpoint(px));
	dt_save(l, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save through the capturing proxy");
	dt_outcome_clear(&o);
	dt_load(l3, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "resharded load through the capturing proxy");
	dt_outcome_clear(&o);
	cr_assert_eq(dcp_remove(url, NULL, &err), DCP_OK, "remove: %s", err ? dt_error_text(err) : "");

	for (i = 0, n = tp_log_count(px); i < n; i++) {
		char *head, *body;
		size_t blen;
		char v[128];
		cr_assert_eq(tp_log_request(px, i, &head, &body, &blen), 0, "request %zu was not captured",
		             i);
		nsigned += (size_t)verify_request(head, body, blen, secret);
		if (strncmp(head, "PUT ", 4) == 0) {
			nput++;
			nparts += strstr(head, "partNumber=") != NULL;
		}
		nranged += head_value(head, "Range", v, sizeof(v)) != NULL;
		free(head);
		free(body);
	}
	cr_assert_eq(nsigned, n, "%zu of %zu requests were signed", nsigned, n);
	cr_assert_geq(nparts, 3, "the 11 MiB item was not sent as a multipart upload (%zu parts)", nparts);
	cr_assert_gt(nput, nparts, "no single PUT was checked");
	cr_assert_gt(nranged, 0, "no ranged GET was checked");
	tp_stop(px);
	dt_layout_free(l);
	dt_layout_free(l3);
}

#endif /* DCP_TEST_HAVE_S3 (else: no test; test_s3.c says why) */
