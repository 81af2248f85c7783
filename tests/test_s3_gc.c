/*
 * dcp_gc on s3://: orphan data objects (young ones kept, by the store's
 * LastModified), and unfinished multipart uploads of a save whose
 * CompleteMultipartUpload and AbortMultipartUpload were both refused (the
 * test proxy refuses them), found with ListMultipartUploads and aborted.
 * s3rver cannot list uploads (501): there the report says so and the
 * objects are still collected. The committed checkpoint still loads.
 *
 * Needs a server (tests/s3/with-s3rver.sh or with-radosgw.sh).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcptest.h"

#ifdef DCP_TEST_HAVE_S3
#include "s3/proxy.h"
#include "s3/s3test.h"

static int count_upload(const char *path, const char *upload_id, int64_t initiated, void *arg)
{
	(void)path;
	(void)upload_id;
	(void)initiated;
	(*(int *)arg)++;
	return 0;
}

static int is_s3rver(void)
{
	const char *s = getenv("DCP_S3_TEST_SERVER");
	return s == NULL || strcmp(s, "s3rver") == 0;
}

Test(s3_gc, orphan_objects_and_unfinished_uploads, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX], bad[DT_URL_MAX];
	dt_layout *first = mixed_layout(2), *l = dt_layout_new();
	uint64_t shape[] = {2, (uint64_t)6 << 20};
	dcp_gc_options opts = DCP_GC_OPTIONS_INIT;
	dcp_gc_report r;
	dcp_error *err = NULL;
	dcp_msg msg = {{0}};
	dt_outcome o;
	tp_proxy *px;
	dcp_backend *b;
	int n = 0, rc;

	need_server();
	px = tp_start(endpoint());
	cr_assert_not_null(px);
	prefix_for(pre, sizeof(pre), "gc");
	dt_fmt(url, sizeof(url), "s3://%s/%s?endpoint=%s", bucket(), pre, tp_endpoint(px));
	dt_save(first, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);

	/* A save whose uploads can neither complete nor be aborted. */
	dt_split(dt_add_sharded(l, "big", DCP_U8, 2, shape), 0, 2, NULL);
	tp_rule no_complete = {.method = "POST",
	                       .needle = "uploadId=",
	                       .times = -1,
	                       .action = TP_STATUS,
	                       .status = 403,
	                       .code = "AccessDenied"};
	tp_rule no_abort = {.method = "DELETE",
	                    .needle = "uploadId=",
	                    .times = -1,
	                    .action = TP_STATUS,
	                    .status = 403,
	                    .code = "AccessDenied"};
	tp_add_rule(px, &no_complete);
	tp_add_rule(px, &no_abort);
	dt_fmt(bad, sizeof(bad), "%s&part_size=5M&multipart_threshold=5M", url);
	dt_save(l, 2, bad, NULL, SEED_B, &o);
	cr_assert_neq(o.status[0], DCP_OK, "the save with refused completions succeeded");
	dt_outcome_clear(&o);
	tp_clear_rules(px);

	/* An orphan data object, as a killed save leaves it. */
	b = open_backend(pre, "");
	cr_assert_eq(
	        b->ops->put_atomic(b, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp", "orphan", 6, &msg),
	        DCP_OK, "%s", msg.text);

	/* Young: kept. */
	rc = dcp_gc(url, &opts, NULL, &r, &err);
	cr_assert_eq(rc, DCP_OK, "gc: %s", err ? dt_error_text(err) : "");
	cr_assert_eq(r.objects_removed, 0, "a young orphan was removed");
	cr_assert_geq(r.objects_too_young, 1);

	opts.min_age_s = 0;
	rc = dcp_gc(url, &opts, NULL, &r, &err);
	cr_assert_eq(rc, DCP_OK, "gc: %s", err ? dt_error_text(err) : "");
	cr_assert_eq(r.objects_removed, 1, "%llu objects removed", (unsigned long long)r.objects_removed);
	cr_assert_eq(b->ops->exists(b, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp", &msg), 0);
	if (is_s3rver()) {
		/* s3rver answers ListMultipartUploads with 501. */
		cr_assert_eq(r.uploads_unlisted, 1, "s3rver listed uploads");
		cr_assert_eq(r.uploads_aborted, 0);
	} else {
		cr_assert_eq(r.uploads_unlisted, 0);
		cr_assert_geq(r.uploads_aborted, 1, "no unfinished upload was aborted");
		rc = b->ops->list_uploads(b, "", count_upload, &n, &msg);
		cr_assert_eq(rc, DCP_OK, "%s", msg.text);
		cr_assert_eq(n, 0, "%d unfinished uploads remain after gc", n);
	}
	b->ops->destroy(b);

	dt_load(first, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "the committed checkpoint after gc");
	dt_outcome_clear(&o);
	tp_stop(px);
	dt_layout_free(first);
	dt_layout_free(l);
}

#endif /* DCP_TEST_HAVE_S3 (else: no test; test_s3.c says why) */
