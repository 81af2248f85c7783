/*
 * Faults between the S3 plugin and the server (issue 4): the fault-injecting
 * proxy (tests/s3/proxy.c) answers 500/503, resets connections, refuses a
 * part while others are in flight, and plays a server that goes away; it
 * records the requests, AbortMultipartUpload included, for the assertions.
 *
 * Every test needs an S3-compatible server and is skipped without one: run
 * them with tests/s3/with-s3rver.sh or tests/s3/with-radosgw.sh (ctest's
 * s3_server_faults and rgw_server_faults tests do). What the server answers
 * to AbortMultipartUpload depends on which it is (DCP_S3_TEST_SERVER).
 * The helpers are in s3/s3test.c.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcptest.h"

/* tests/s3/CMakeLists.txt defines DCP_TEST_HAVE_S3 when the S3 backend is
 * built and links it, with the proxy and s3/s3test.c, into this test; without
 * it test_s3.c holds the placeholder and this file compiles no test. */
#ifdef DCP_TEST_HAVE_S3
#include "s3/proxy.h"
#include "s3/s3test.h"

/* A list_uploads callback that appends the upload's path to a name_list. */
static int collect_upload(const char *path, const char *upload_id, int64_t initiated, void *arg)
{
	(void)upload_id;
	(void)initiated;
	return collect(path, 0, arg);
}

/* ------------------------------------------------------------------------ */
/* Faults through the proxy                                                 */
/* ------------------------------------------------------------------------ */
Test(s3, injected_500_and_503_are_retried, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *l = mixed_layout(4), *l3 = mixed_layout(3);
	uint64_t big[] = {(uint64_t)12 << 20};
	dt_outcome o;
	tp_proxy *px;

	need_server();
	px = tp_start(endpoint());
	cr_assert_not_null(px);
	dt_add_replicated(l, "big", DCP_U8, 1, big, DT_RANK(1));
	dt_add_replicated(l3, "big", DCP_U8, 1, big, DT_RANKS(3));
	/* Every kind of request fails a first time or two. */
	tp_rule r503 = {.method = "PUT",
	                .needle = "partNumber=2",
	                .skip = 0,
	                .times = 2,
	                .action = TP_STATUS,
	                .status = 503,
	                .code = "SlowDown"};
	tp_rule r500 = {.method = "PUT",
	                .needle = ".metadata",
	                .skip = 0,
	                .times = 1,
	                .action = TP_STATUS,
	                .status = 500,
	                .code = "InternalError"};
	tp_rule rdrop = {.method = "POST", .needle = "uploads=", .skip = 0, .times = 1, .action = TP_DROP};
	tp_rule rget = {.method = "GET",
	                .needle = "__",
	                .skip = 1,
	                .times = 2,
	                .action = TP_STATUS,
	                .status = 503,
	                .code = "SlowDown"};
	tp_add_rule(px, &r503);
	tp_add_rule(px, &r500);
	tp_add_rule(px, &rdrop);
	tp_add_rule(px, &rget);
	dt_fmt(url, sizeof(url), "s3://%s/%s?part_size=5M&multipart_threshold=5M&endpoint=%s", bucket(),
	       prefix_for(pre, sizeof(pre), "retry"), tp_endpoint(px));
	dt_save(l, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save with injected 500 and 503 answers");
	dt_outcome_clear(&o);
	cr_assert_eq(tp_log_match(px, "PUT", "partNumber=2", 503), 2, "the 503s were not injected");
	cr_assert_eq(tp_log_match(px, "PUT", ".metadata", 500), 1, "the 500 was not injected");
	cr_assert_eq(tp_log_match(px, "POST", "uploads=", -1), 1, "the reset was not injected");
	dt_load(l3, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load with injected 503 answers");
	dt_outcome_clear(&o);
	cr_assert_eq(tp_log_match(px, "GET", "__", 503), 2, "the GET 503s were not injected");
	tp_stop(px);
	dt_layout_free(l);
	dt_layout_free(l3);
}

Test(s3, failure_with_parts_in_flight_aborts_every_upload, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX], good[DT_URL_MAX];
	dt_layout *first = mixed_layout(2), *l = dt_layout_new();
	uint64_t shape[] = {4, (uint64_t)16 << 20};
	dt_outcome o;
	tp_proxy *px;
	dcp_error *err = NULL;

	need_server();
	px = tp_start(endpoint());
	cr_assert_not_null(px);
	prefix_for(pre, sizeof(pre), "abort");
	dt_fmt(good, sizeof(good), "s3://%s/%s?endpoint=%s", bucket(), pre, tp_endpoint(px));
	dt_save(first, 2, good, NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);

	/* 4 ranks x 16 MiB in 5 MiB parts; part 3 of every upload is refused
	 * (403, not retried) while the other parts are in flight. */
	dt_split(dt_add_sharded(l, "big", DCP_U8, 2, shape), 0, 4, NULL);
	tp_rule deny = {.method = "PUT",
	                .needle = "partNumber=3&",
	                .skip = 0,
	                .times = -1,
	                .action = TP_STATUS,
	                .status = 403,
	                .code = "AccessDenied"};
	tp_add_rule(px, &deny);
	tp_log_clear(px);
	dt_fmt(url, sizeof(url), "%s&part_size=5M&multipart_threshold=5M&concurrency=4&threads=1", good);
	dt_save(l, 4, url, NULL, SEED_B, &o);
	/* s3rver answers AbortMultipartUpload with 405, which the error must
	 * report (the parts stay); a server that implements it (radosgw, S3)
	 * answers 204 and the error has nothing to add about the abort. */
	const int s3rver = server_is_s3rver();
	const int abort_status = s3rver ? 405 : 204;
	dt_expect e = {.status = 0,
	               .any_ranks = 1,
	               .mention = "AccessDenied",
	               .mention2 = s3rver ? "does not support AbortMultipartUpload" : NULL};
	dt_assert_failed(&o, &e, "save with a part refused");
	for (int r = 0; !s3rver && r < o.n; r++)
		cr_assert(!dt_error_mentions(o.err[r], "AbortMultipartUpload"),
		          "%s aborted every upload (204), yet rank %d's error mentions the abort: %s",
		          server_name(), r, dt_error_text(o.err[r]));
	dt_outcome_clear(&o);

	size_t started = tp_log_match(px, "POST", "uploads=", 200);
	cr_assert_geq(started, 1, "no multipart upload was started");
	/* Every upload that started got an AbortMultipartUpload. */
	for (size_t i = 0, n = tp_log_count(px); i < n; i++) {
		char entry[4200], id[512];
		const char *u;
		tp_log_entry(px, i, entry, sizeof(entry));
		if (strncmp(entry, "PUT ", 4) != 0 || (u = strstr(entry, "uploadId=")) == NULL)
			continue;
		size_t k = strcspn(u, "& ");
		dt_fmt(id, sizeof(id), "%.*s", (int)k, u);
		cr_assert_geq(tp_log_match(px, "DELETE", id, 0), 1, "upload %s was not aborted", id);
	}
	cr_assert_eq(tp_log_match(px, "DELETE", "uploadId=", abort_status), started,
	             "%zu uploads started, %zu AbortMultipartUpload sent, %zu answered %d as %s does",
	             started, tp_log_match(px, "DELETE", "uploadId=", 0),
	             tp_log_match(px, "DELETE", "uploadId=", abort_status), abort_status, server_name());
	/* What the server still holds: s3rver cannot list uploads (501); any
	 * other server must list none left under the prefix. */
	{
		dcp_backend *be = open_backend(pre, "");
		name_list *left = dt_xcalloc(1, sizeof(*left));
		dcp_msg m = {{0}};
		cr_assert_not_null(be->ops->list_uploads);
		int rc = be->ops->list_uploads(be, "", collect_upload, left, &m);
		if (s3rver) {
			cr_assert_eq(rc, DCP_EUNSUPPORTED, "s3rver listed multipart uploads (rc %d): %s", rc,
			             m.text);
		} else {
			cr_assert_eq(rc, DCP_OK, "ListMultipartUploads on %s: %s", server_name(), m.text);
			cr_assert_eq(left->n, 0, "%zu uploads were left behind on %s, the first: %s", left->n,
			             server_name(), left->n ? left->names[0] : "");
		}
		be->ops->destroy(be);
		free(left);
	}
	cr_assert_eq(tp_log_match(px, "PUT", ".metadata", 0), 0, "metadata was written by a failed save");

	/* The first checkpoint is intact. */
	tp_clear_rules(px);
	dt_load(first, 2, good, NULL, SEED_A, &o);
	dt_assert_ok(&o, "the previous checkpoint still loads");
	dt_outcome_clear(&o);
	(void)err;
	tp_stop(px);
	dt_layout_free(first);
	dt_layout_free(l);
}

Test(s3, server_gone_mid_save_keeps_the_previous_checkpoint, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *a = mixed_layout(3), *b = mixed_layout(3);
	dt_outcome o;
	tp_proxy *px;
	double t0;

	need_server();
	px = tp_start(endpoint());
	cr_assert_not_null(px);
	dt_fmt(url, sizeof(url), "s3://%s/%s?retries=2&endpoint=%s", bucket(),
	       prefix_for(pre, sizeof(pre), "gone"), tp_endpoint(px));
	dt_save(a, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);

	/* After 2 more requests, every connection is dropped: the server is gone. */
	tp_rule down = {.method = NULL, .needle = NULL, .skip = 2, .times = -1, .action = TP_DROP};
	tp_add_rule(px, &down);
	t0 = now_s();
	dt_save(b, 3, url, NULL, SEED_B, &o);
	dt_expect e = {.status = 0, .any_ranks = 1, .mention = "after 3 attempts"};
	dt_assert_failed(&o, &e, "save while the server is gone");
	dt_outcome_clear(&o);
	cr_assert_lt(now_s() - t0, 30.0);
	cr_assert_eq(tp_log_match(px, "PUT", ".metadata", 200), 1, "only the first save may commit metadata");

	tp_clear_rules(px);
	dt_load(a, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "the previous checkpoint still loads");
	dt_outcome_clear(&o);
	tp_stop(px);
	dt_layout_free(a);
	dt_layout_free(b);
}

#endif /* DCP_TEST_HAVE_S3 */
