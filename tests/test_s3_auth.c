/*
 * The S3 plugin against a server that checks who is asking (issue 4): a
 * wrong secret, an unknown access key id and an anonymous request each fail
 * fast (a 403 is not retried), on save and on load, with a message that
 * names the likely cause and what to set, and that never shows the secret.
 *
 * s3rver checks only the access key id: against it (DCP_S3_TEST_SERVER=
 * s3rver) the unknown key fails the same way, while the wrong secret and the
 * anonymous request succeed, and the tests check that they do, so that the
 * day it starts checking, these tests say so. Run them with
 * tests/s3/with-radosgw.sh (ctest's rgw_server_auth) or with-s3rver.sh
 * (s3_server_auth); without a server (AWS_ENDPOINT_URL_S3) they are
 * skipped. HTTPS and virtual-hosted addressing are in test_s3_endpoints.c;
 * the helpers in s3/s3test.c.
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
#include "s3/s3test.h"

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

#endif /* DCP_TEST_HAVE_S3 */
