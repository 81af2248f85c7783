/*
 * The S3 plugin against a server that checks who is asking (issue 4):
 * credentials refused by the server, HTTPS with a private CA, and
 * virtual-hosted addressing.
 *
 *   - A wrong secret, an unknown access key id and an anonymous request each
 *     fail fast (403 is not retried), with a message that names the likely
 *     cause, and never shows the secret. s3rver checks only the access key
 *     id: against it a wrong secret and an anonymous request succeed, and
 *     the tests check that they do (DCP_S3_TEST_SERVER=s3rver), so that the
 *     day it starts checking, these tests say so.
 *   - HTTPS (DCP_S3_TEST_HTTPS_ENDPOINT, with the CA of
 *     DCP_S3_TEST_CA_BUNDLE): a save and a load through AWS_CA_BUNDLE, and
 *     a failure that names the certificate without it.
 *   - Virtual-hosted addressing (DCP_S3_TEST_VHOST_ENDPOINT, whose host
 *     DCP_S3_TEST_VHOST_DOMAIN is the server's DNS name, so that
 *     BUCKET.DOMAIN names the bucket): path_style=0 saves and loads, and the
 *     requests carry the bucket in the Host header, not in the path.
 * tests/s3/with-radosgw.sh exports all of these; with-s3rver.sh none of the
 * HTTPS and virtual-host ones, and those tests skip. Every test is skipped
 * without a server (AWS_ENDPOINT_URL_S3). The helpers are in s3/s3test.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcptest.h"

/* tests/s3/CMakeLists.txt defines DCP_TEST_HAVE_S3 when the S3 backend is
 * built and links it, with the proxy and s3/s3test.c, into this test; without
 * it test_s3.c holds the placeholder and this file compiles no test. */
#ifdef DCP_TEST_HAVE_S3
#include "s3/proxy.h"
#include "s3/s3test.h"

/* The environment variable name, or skips the test when it is not set. */
static const char *need_env(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL || v[0] == '\0')
		cr_skip_test("%s is not set: the server (%s) has no such endpoint; tests/s3/with-radosgw.sh "
		             "sets it",
		             name, server_name());
	return v;
}

/* No credentials from anywhere but the environment the test sets. */
static void only_env_credentials(void)
{
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_SESSION_TOKEN");
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent-dcp-test/credentials", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent-dcp-test/config", 1);
}

/* Every rank's error of o, none of which may show secret. */
static void assert_no_secret(const dt_outcome *o, const char *secret, const char *what)
{
	for (int r = 0; r < o->n; r++)
		cr_assert(!dt_error_mentions(o->err[r], secret), "%s: rank %d's error shows the secret: %s",
		          what, r, dt_error_text(o->err[r]));
}

/*
 * Saves a small state to a fresh prefix with the current environment's
 * credentials, then loads it. Against a server that refuses them, both fail
 * with every mention in e (and never show secret, if not NULL) within 5 s;
 * when accepted (s3rver), both succeed.
 */
static void save_and_load_expecting(const char *name, int refused, const dt_expect *e, const char *secret)
{
	char pre[256], url[DT_URL_MAX], what[512];
	dt_layout *l = mixed_layout(2);
	dt_outcome o;
	double t0 = now_s();

	dt_fmt(url, sizeof(url), "s3://%s/%s", bucket(), prefix_for(pre, sizeof(pre), name));
	dt_save(l, 2, url, NULL, SEED_A, &o);
	if (refused) {
		dt_assert_failed(&o, e,
		                 dt_fmt(what, sizeof(what), "save with %s to %s", name, server_name()));
		if (secret != NULL)
			assert_no_secret(&o, secret, what);
	} else {
		dt_assert_ok(&o, dt_fmt(what, sizeof(what), "save with %s to s3rver (which does not check)",
		                        name));
	}
	dt_outcome_clear(&o);
	dt_load(l, 2, url, NULL, SEED_A, &o);
	if (refused) {
		dt_assert_failed(&o, e,
		                 dt_fmt(what, sizeof(what), "load with %s from %s", name, server_name()));
		if (secret != NULL)
			assert_no_secret(&o, secret, what);
	} else {
		dt_assert_ok(&o, dt_fmt(what, sizeof(what), "load with %s from s3rver", name));
	}
	dt_outcome_clear(&o);
	cr_assert_lt(now_s() - t0, 5.0, "%s took %.1f s to report: a 403 must not be retried", name,
	             now_s() - t0);
	dt_layout_free(l);
}

/* ------------------------------------------------------------------------ */
/* Credentials the server refuses                                           */
/* ------------------------------------------------------------------------ */
Test(s3_auth, wrong_secret_names_the_secret_key, .timeout = DT_TIMEOUT)
{
	need_server();
	only_env_credentials();
	cr_assert_not_null(getenv("AWS_ACCESS_KEY_ID"), "no access key id in the environment");
	/* The right access key id, a wrong secret. */
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	dt_expect e = {.status = 0,
	               .any_ranks = 1,
	               .mention = "SignatureDoesNotMatch",
	               .mention2 = "secret access key is most likely wrong",
	               .mention3 = "AWS_SECRET_ACCESS_KEY"};
	save_and_load_expecting("wrong-secret", !server_is_s3rver(), &e, SECRET);
}

Test(s3_auth, unknown_access_key_names_the_key_id, .timeout = DT_TIMEOUT)
{
	need_server();
	only_env_credentials();
	/* s3rver knows one key id too, so it refuses this one as well. */
	setenv("AWS_ACCESS_KEY_ID", "DCPNOSUCHKEY0000TEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	dt_expect e = {.status = 0,
	               .any_ranks = 1,
	               .mention = "InvalidAccessKeyId",
	               .mention2 = "does not know this access key id",
	               .mention3 = "AWS_ACCESS_KEY_ID"};
	save_and_load_expecting("unknown-key", 1, &e, SECRET);
}

Test(s3_auth, anonymous_request_names_the_missing_credentials, .timeout = DT_TIMEOUT)
{
	const char *real_secret;

	need_server();
	only_env_credentials();
	real_secret = getenv("AWS_SECRET_ACCESS_KEY");
	char keep[256];
	dt_fmt(keep, sizeof(keep), "%s", real_secret != NULL ? real_secret : SECRET);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	setenv("HOME", "/nonexistent-dcp-test", 1);
	dt_expect e = {.status = 0,
	               .any_ranks = 1,
	               .mention = "AccessDenied",
	               .mention2 = "no credentials were found, so the request was sent unsigned",
	               .mention3 = "refuses anonymous requests"};
	save_and_load_expecting("anonymous", !server_is_s3rver(), &e, keep);
}

/* ------------------------------------------------------------------------ */
/* HTTPS with a private CA                                                  */
/* ------------------------------------------------------------------------ */
Test(s3_auth, https_with_the_private_ca_saves_and_loads, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX], what[1024];
	dt_layout *l4 = mixed_layout(4), *l3 = mixed_layout(3);
	uint64_t big[] = {(uint64_t)6 << 20};
	dt_outcome o;
	const char *https, *ca;

	need_server();
	https = need_env("DCP_S3_TEST_HTTPS_ENDPOINT");
	ca = need_env("DCP_S3_TEST_CA_BUNDLE");
	setenv("AWS_ENDPOINT_URL_S3", https, 1);
	setenv("AWS_CA_BUNDLE", ca, 1);
	/* A multipart upload too: parts in parallel over TLS connections. */
	dt_add_replicated(l4, "big", DCP_U8, 1, big, DT_RANK(2));
	dt_add_replicated(l3, "big", DCP_U8, 1, big, DT_RANKS(3));
	dt_fmt(url, sizeof(url), "s3://%s/%s?part_size=5M&multipart_threshold=5M", bucket(),
	       prefix_for(pre, sizeof(pre), "https"));
	dt_save(l4, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, dt_fmt(what, sizeof(what), "save over HTTPS to %s (CA %s)", https, ca));
	dt_outcome_clear(&o);
	dt_load(l3, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load over HTTPS");
	dt_outcome_clear(&o);
	dt_layout_free(l4);
	dt_layout_free(l3);
}

Test(s3_auth, https_without_the_ca_names_the_certificate, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *l = mixed_layout(2);
	dt_outcome o;
	const char *https;
	double t0;

	need_server();
	https = need_env("DCP_S3_TEST_HTTPS_ENDPOINT");
	need_env("DCP_S3_TEST_CA_BUNDLE");
	setenv("AWS_ENDPOINT_URL_S3", https, 1);
	/* The system's CAs, which do not include the test's private CA. */
	unsetenv("AWS_CA_BUNDLE");
	dt_fmt(url, sizeof(url), "s3://%s/%s", bucket(), prefix_for(pre, sizeof(pre), "https-noca"));
	t0 = now_s();
	dt_save(l, 2, url, NULL, SEED_A, &o);
	dt_expect e = {.status = 0, .any_ranks = 1, .mention = "certificate", .mention2 = https};
	dt_assert_failed(&o, &e, "save over HTTPS to a server whose CA is not trusted");
	dt_outcome_clear(&o);
	cr_assert_lt(now_s() - t0, 5.0, "an untrusted certificate took %.1f s to report (not retryable)",
	             now_s() - t0);
	dt_layout_free(l);
}

/* ------------------------------------------------------------------------ */
/* Virtual-hosted addressing                                                */
/* ------------------------------------------------------------------------ */
Test(s3_auth, virtual_hosted_addressing_saves_and_loads, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX], host[300], want[300], upstream[300], what[600];
	dt_layout *l4 = mixed_layout(4), *l3 = mixed_layout(3);
	dt_outcome o;
	const char *vhost, *domain, *port;
	tp_proxy *px;
	size_t n, vhosted = 0;

	need_server();
	vhost = need_env("DCP_S3_TEST_VHOST_ENDPOINT");
	domain = need_env("DCP_S3_TEST_VHOST_DOMAIN");
	/* The proxy forwards to the server and keeps each request's Host
	 * header, which the server resolves to the bucket. */
	px = tp_start(endpoint());
	cr_assert_not_null(px);
	tp_capture(px, 1);
	port = strrchr(tp_endpoint(px), ':');
	cr_assert_not_null(port, "no port in the proxy's endpoint %s", tp_endpoint(px));
	dt_fmt(upstream, sizeof(upstream), "http://%s%s", domain, port);
	dt_fmt(want, sizeof(want), "%s.%s%s", bucket(), domain, port);
	dt_fmt(url, sizeof(url), "s3://%s/%s?path_style=0&endpoint=%s", bucket(),
	       prefix_for(pre, sizeof(pre), "vhost"), upstream);
	dt_save(l4, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, dt_fmt(what, sizeof(what),
	                        "save with virtual-hosted addressing (server endpoint %s)", vhost));
	dt_outcome_clear(&o);
	dt_load(l3, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load with virtual-hosted addressing");
	dt_outcome_clear(&o);

	n = tp_log_count(px);
	cr_assert_gt(n, 0, "no request went through the proxy");
	for (size_t i = 0; i < n; i++) {
		char *head, *body, bad[300];
		size_t blen;
		const char *h, *target;
		cr_assert_eq(tp_log_request(px, i, &head, &body, &blen), 0, "request %zu was not captured",
		             i);
		h = strstr(head, "\r\nHost: ");
		cr_assert_not_null(h, "request %zu has no Host header:\n%s", i, head);
		h += 8;
		dt_fmt(host, sizeof(host), "%.*s", (int)strcspn(h, "\r"), h);
		cr_assert_str_eq(host, want, "request %zu is not virtual-hosted:\n%s", i, head);
		target = strchr(head, ' ');
		cr_assert_not_null(target);
		dt_fmt(bad, sizeof(bad), " /%s/", bucket());
		cr_assert(strncmp(target, bad, strlen(bad)) != 0,
		          "request %zu names the bucket in its path:\n%s", i, head);
		vhosted++;
		free(head);
		free(body);
	}
	cr_assert_eq(vhosted, n);
	tp_stop(px);
	dt_layout_free(l4);
	dt_layout_free(l3);
}

#endif /* DCP_TEST_HAVE_S3 */
