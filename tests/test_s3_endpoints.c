/*
 * Endpoints: HTTPS with certificate verification, and virtual-hosted
 * addressing.
 *
 * Against radosgw (tests/s3/with-radosgw.sh, which serves HTTPS with a
 * certificate of a private CA made at start, and virtual-hosted buckets
 * under "localhost"): a save and a resharded load over HTTPS with the CA
 * given by AWS_CA_BUNDLE; without it, a clear error that names the
 * certificate and what to do; a save and load with path_style=0.
 * Against any server: HTTPS to a plain-HTTP port fails clearly, and with
 * path_style=0 the bucket goes into the Host header, not the path (checked
 * on the bytes the test proxy receives).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcptest.h"

#ifdef DCP_TEST_HAVE_S3
#include "s3/proxy.h"
#include "s3/s3test.h"

static const char *env_or_null(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

static int on_radosgw(void)
{
	const char *s = env_or_null("DCP_S3_TEST_SERVER");
	return s != NULL && strcmp(s, "radosgw") == 0;
}

Test(s3_endpoints, https_is_verified_against_the_ca_bundle, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *l = mixed_layout(2), *l3 = mixed_layout(3);
	const char *https = env_or_null("DCP_S3_TEST_HTTPS_ENDPOINT"),
	           *ca = env_or_null("DCP_S3_TEST_CA_BUNDLE");
	dt_outcome o;

	need_server();
	if (!on_radosgw()) {
		/* HTTPS to the server's plain-HTTP port: a TLS failure, said so. */
		char ep[300];
		const char *e = endpoint();
		dt_fmt(ep, sizeof(ep), "https://%s", strstr(e, "://") + 3);
		dt_fmt(url, sizeof(url), "s3://%s/%s?endpoint=%s&retries=0", bucket(),
		       prefix_for(pre, sizeof(pre), "tls-plain"), ep);
		dt_save(l, 2, url, NULL, SEED_A, &o);
		dt_expect x = {.status = 0, .any_ranks = 1, .mention = ep};
		dt_assert_failed(&o, &x, "save over HTTPS to a plain-HTTP port");
		dt_outcome_clear(&o);
		dt_layout_free(l);
		dt_layout_free(l3);
		return;
	}
	cr_assert(https != NULL && ca != NULL, "with-radosgw.sh exported no HTTPS endpoint or CA bundle");
	prefix_for(pre, sizeof(pre), "tls");

	/* Without the private CA, the system's CAs do not vouch for it. */
	unsetenv("AWS_CA_BUNDLE");
	dt_fmt(url, sizeof(url), "s3://%s/%s?endpoint=%s&retries=0", bucket(), pre, https);
	dt_save(l, 2, url, NULL, SEED_A, &o);
	dt_expect x = {
	        .status = 0, .any_ranks = 1, .mention = "TLS certificate", .mention2 = "AWS_CA_BUNDLE"};
	dt_assert_failed(&o, &x, "save over HTTPS without the CA");
	dt_outcome_clear(&o);

	setenv("AWS_CA_BUNDLE", ca, 1);
	dt_save(l, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save over HTTPS with the CA bundle");
	dt_outcome_clear(&o);
	dt_load(l3, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "resharded load over HTTPS");
	dt_outcome_clear(&o);
	dt_layout_free(l);
	dt_layout_free(l3);
}

Test(s3_endpoints, virtual_hosted_puts_the_bucket_in_the_host, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX], ep[128], want_host[300];
	dt_layout *l = mixed_layout(2);
	dcp_error *err = NULL;
	tp_proxy *px;
	size_t i, n, checked = 0;
	dt_outcome o;

	need_server();
	px = tp_start(endpoint());
	cr_assert_not_null(px);
	tp_capture(px, 1);
	/* "localhost" and its subdomains are the loopback for libcurl. */
	dt_fmt(ep, sizeof(ep), "http://localhost:%s", strrchr(tp_endpoint(px), ':') + 1);
	dt_fmt(want_host, sizeof(want_host), "%s.localhost:%s", bucket(), strrchr(tp_endpoint(px), ':') + 1);
	dt_fmt(url, sizeof(url), "s3://%s/%s?endpoint=%s&path_style=0&retries=0", bucket(),
	       prefix_for(pre, sizeof(pre), "vhost"), ep);
	{
		dcp_metadata *md = NULL;
		/* One request at least; no checkpoint is there, so it fails. */
		(void)dcp_read_metadata(url, NULL, &md, &err);
		if (md != NULL)
			dcp_metadata_free(md);
		dcp_error_free(err);
	}
	for (i = 0, n = tp_log_count(px); i < n; i++) {
		char *head, *body, method[16], target[2048], host[300] = "";
		const char *h;
		size_t blen;
		cr_assert_eq(tp_log_request(px, i, &head, &body, &blen), 0);
		cr_assert_eq(sscanf(head, "%15s %2047s", method, target), 2);
		h = strcasestr(head, "\r\nHost:");
		cr_assert_not_null(h, "request %zu has no Host header", i);
		sscanf(h + 7, " %299[^\r]", host);
		cr_assert_str_eq(host, want_host, "virtual-hosted request sent with Host %s", host);
		cr_assert(strncmp(target + 1, bucket(), strlen(bucket())) != 0 ||
		                  target[1 + strlen(bucket())] != '/',
		          "the bucket is also in the path: %s", target);
		checked++;
		free(head);
		free(body);
	}
	cr_assert_gt(checked, 0, "no request reached the proxy");
	tp_stop(px);

	if (on_radosgw()) {
		const char *vhost = env_or_null("DCP_S3_TEST_VHOST_ENDPOINT");
		cr_assert_not_null(vhost, "with-radosgw.sh exported no virtual-host endpoint");
		dt_fmt(url, sizeof(url), "s3://%s/%s?endpoint=%s&path_style=0", bucket(), pre, vhost);
		dt_save(l, 2, url, NULL, SEED_B, &o);
		dt_assert_ok(&o, "save with virtual-hosted addressing");
		dt_outcome_clear(&o);
		dt_load(l, 2, url, NULL, SEED_B, &o);
		dt_assert_ok(&o, "load with virtual-hosted addressing");
		dt_outcome_clear(&o);
		/* The same bucket, seen path style. */
		dt_fmt(url, sizeof(url), "s3://%s/%s", bucket(), pre);
		dt_load(l, 2, url, NULL, SEED_B, &o);
		dt_assert_ok(&o, "path-style load of the virtual-hosted save");
		dt_outcome_clear(&o);
	}
	dt_layout_free(l);
}

#endif /* DCP_TEST_HAVE_S3 (else: no test; test_s3.c says why) */
