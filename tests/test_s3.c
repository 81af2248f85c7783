/*
 * The S3 plugin and backend (issue 4): names, configuration and the public
 * API. The backend driven directly, libs3 and the dcp tool as other clients
 * are in test_s3_backend.c; faults injected through the proxy in
 * test_s3_faults.c. The helpers they share are in s3/s3test.c.
 *
 * Tests in suite s3_offline need no server: bucket and prefix rules, the
 * configuration sources, and that no secret reaches a message. The others
 * need an S3-compatible server and are skipped without one: run them with
 * tests/s3/with-s3rver.sh (ctest's s3_server test does), which exports
 * AWS_ENDPOINT_URL_S3, the S3RVER credentials and DCP_S3_TEST_BUCKET. They
 * save and load through the public API (dcp_save / dcp_load on thread ranks),
 * with the fault-injecting proxy (tests/s3/proxy.c) only to count requests.
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
 * it (no libcurl, or tests/s3 not added) only a placeholder test is compiled. */
#ifndef DCP_TEST_HAVE_S3
Test(s3_offline, not_built)
{
	cr_skip_test("the S3 backend is not built (libcurl4-openssl-dev and libxml2-dev are needed), or "
	             "tests/s3 is "
	             "not added to the build");
}
#else
#include "s3/proxy.h"
#include "s3/s3_backend.h"
#include "s3/s3test.h"

/* ------------------------------------------------------------------------ */
/* Offline: names                                                           */
/* ------------------------------------------------------------------------ */
Test(s3_offline, bucket_names_rejected_with_reason, .timeout = DT_TIMEOUT)
{
	static const struct {
		const char *bucket, *why;
	} bad[] = {
	        {"ab", "3 to 63"},
	        {"a234567890123456789012345678901234567890123456789012345678901234", "3 to 63"},
	        {"My-bucket", "uppercase"},
	        {"my_bucket", "'_'"},
	        {"-bucket", "starts"},
	        {"bucket-", "ends"},
	        {".bucket", "starts"},
	        {"bucket.", "ends"},
	        {"my..bucket", "adjacent periods"},
	        {"my.-bucket", "adjacent periods"},
	        {"192.168.5.4", "IP address"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char url[256];
		dcp_error *err = NULL;
		dt_fmt(url, sizeof(url), "s3://%s/run1", bad[i].bucket);
		int rc = dcp_validate_checkpoint_id(NULL, url, 1, &err);
		cr_assert_eq(rc, DCP_EID, "%s: expected DCP_EID, got %d", url, rc);
		cr_assert(dt_error_mentions(err, bad[i].why), "%s: the error does not say '%s': %s", url,
		          bad[i].why, dt_error_text(err));
		cr_assert(dt_error_mentions(err, bad[i].bucket), "%s: the error does not name the bucket",
		          url);
		dcp_error_free(err);
	}
	static const char *const good[] = {"abc", "my-bucket.v2", "a1b2c3", "192.168.5.com", "0bucket9"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		dcp_msg m = {{0}};
		cr_assert_eq(dcp_s3_bucket_check(good[i], NULL, &m), DCP_OK, "%s rejected: %s", good[i],
		             m.text);
	}
}

Test(s3_offline, bad_ids_through_save_are_eid, .timeout = DT_TIMEOUT)
{
	static const char *const bad[] = {
	        "s3://",
	        "s3:///run1",
	        "s3://Bad/run1",
	        "s3://ok-bucket//x",
	        "s3://ok-bucket/a/../b",
	        "s3://ok-bucket/a b",
	        "s3://ok-bucket/x?part_size=1M",
	        "s3://ok-bucket/x?concurrency=0",
	        "s3://ok-bucket/x?endpoint=ftp://h",
	        "s3://ok-bucket/x?nosuchkey=1",
	        "s3://ok-bucket/x?endpoint=http://user:pw@host:1",
	};
	dt_layout *l = mixed_layout(2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dt_outcome o;
		dt_expect e = {.status = DCP_EID, .any_ranks = 1};
		char what[300];
		dt_save(l, 2, bad[i], NULL, SEED_A, &o);
		dt_assert_failed(&o, &e, dt_fmt(what, sizeof(what), "save to %s", bad[i]));
		dt_outcome_clear(&o);
	}
	dt_layout_free(l);
}

Test(s3_offline, split_id, .timeout = DT_TIMEOUT)
{
	char *b, *p;
	dcp_msg m = {{0}};
	cr_assert_eq(dcp_s3_split_id("bkt/run1/step=100/", NULL, &b, &p, &m), DCP_OK, "%s", m.text);
	cr_assert_str_eq(b, "bkt");
	cr_assert_str_eq(p, "run1/step=100");
	free(b);
	free(p);
	cr_assert_eq(dcp_s3_split_id("bkt", NULL, &b, &p, &m), DCP_OK, "%s", m.text);
	cr_assert_str_eq(p, "");
	free(b);
	free(p);
	cr_assert_eq(dcp_s3_split_id("bkt/a/./b", NULL, &b, &p, &m), DCP_EID);
	cr_assert(strstr(m.text, "'.'") != NULL, "%s", m.text);
}

/* ------------------------------------------------------------------------ */
/* Offline: configuration                                                   */
/* ------------------------------------------------------------------------ */
static void clear_aws_env(void)
{
	static const char *const vars[] = {
	        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	        "AWS_REGION",        "AWS_DEFAULT_REGION",    "AWS_ENDPOINT_URL_S3",
	        "AWS_ENDPOINT_URL",  "AWS_PROFILE",           "AWS_DEFAULT_PROFILE",
	        "AWS_MAX_ATTEMPTS",  "AWS_CA_BUNDLE",         "AWS_SHARED_CREDENTIALS_FILE",
	        "AWS_CONFIG_FILE",   "DCP_S3_CONFIG"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	setenv("HOME", "/nonexistent-home-for-s3-tests", 1);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

static int load_cfg(const char *url, dcp_s3_config *cfg, dcp_msg *m)
{
	dcp_url u;
	int rc = dcp_url_parse(url, &u, m);
	cr_assert_eq(rc, DCP_OK, "%s", m->text);
	rc = dcp_s3_config_load(cfg, &u, url, m);
	dcp_url_clear(&u);
	return rc;
}

Test(s3_offline, config_sources_in_order, .timeout = DT_TIMEOUT)
{
	char dir[512], cred[600], conf[600], json[600], url[1200];
	dcp_s3_config cfg;
	dcp_msg m = {{0}};

	clear_aws_env();
	dt_mkdtemp(dir, sizeof(dir), "dcp-s3-config");
	dt_fmt(cred, sizeof(cred), "%s/credentials", dir);
	dt_fmt(conf, sizeof(conf), "%s/config", dir);
	dt_fmt(json, sizeof(json), "%s/p.json", dir);
	write_text(cred, "[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = " SECRET "\n"
	                 "[team]\naws_access_key_id = TEAMKEY\naws_secret_access_key = " SECRET "2\n"
	                 "aws_session_token = TOKEN-" SECRET "\n");
	write_text(
	        conf,
	        "# comment\n[default]\nregion = eu-west-1\n[profile team]\nregion = ap-south-1\n"
	        "endpoint_url = http://team-store:9000\nmax_attempts = 7\ns3 =\n"
	        "  addressing_style = path\n  multipart_chunksize = 16MB\n  max_concurrent_requests = 3\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);

	/* The default profile from the files. */
	cr_assert_eq(load_cfg("s3://bkt/x", &cfg, &m), DCP_OK, "%s", m.text);
	cr_assert_str_eq(cfg.region, "eu-west-1");
	cr_assert_str_eq(cfg.access_key_id, "DEFKEY");
	cr_assert_str_eq(cfg.secret_access_key, SECRET);
	cr_assert_null(cfg.endpoint);
	cr_assert_eq(cfg.path_style, -1);
	dcp_s3_config_clear(&cfg);

	/* AWS_PROFILE selects [profile team]; its s3 block applies. */
	setenv("AWS_PROFILE", "team", 1);
	cr_assert_eq(load_cfg("s3://bkt/x", &cfg, &m), DCP_OK, "%s", m.text);
	cr_assert_str_eq(cfg.region, "ap-south-1");
	cr_assert_str_eq(cfg.access_key_id, "TEAMKEY");
	cr_assert_str_eq(cfg.session_token, "TOKEN-" SECRET);
	cr_assert_str_eq(cfg.endpoint, "http://team-store:9000");
	cr_assert_eq(cfg.path_style, 1);
	cr_assert_eq(cfg.part_size, (uint64_t)16 << 20);
	cr_assert_eq(cfg.concurrency, 3);
	cr_assert_eq(cfg.max_attempts, 7);
	dcp_s3_config_clear(&cfg);

	/* The environment beats the files; AWS_PROFILE does not beat env keys. */
	setenv("AWS_REGION", "us-west-2", 1);
	setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1/", 1);
	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET "3", 1);
	cr_assert_eq(load_cfg("s3://bkt/x", &cfg, &m), DCP_OK, "%s", m.text);
	cr_assert_str_eq(cfg.region, "us-west-2");
	cr_assert_str_eq(cfg.endpoint, "http://127.0.0.1:1", "trailing '/' dropped");
	cr_assert_str_eq(cfg.access_key_id, "ENVKEY");
	dcp_s3_config_clear(&cfg);

	/* A JSON profile beats the environment; the URL beats everything, and
	 * profile= in the URL picks that profile's keys over the environment's. */
	write_text(json, "{\"endpoint\": \"http://minio.local:9000\", \"region\": \"eu-north-1\", "
	                 "\"part_size\": \"32M\", \"concurrency\": 8, \"retries\": 2, \"path_style\": true}");
	dt_fmt(url, sizeof(url), "s3://bkt/x?config=%s&region=sa-east-1&part_size=6M&profile=default", json);
	cr_assert_eq(load_cfg(url, &cfg, &m), DCP_OK, "%s", m.text);
	cr_assert_str_eq(cfg.endpoint, "http://minio.local:9000");
	cr_assert_str_eq(cfg.region, "sa-east-1");
	cr_assert_eq(cfg.part_size, (uint64_t)6 << 20);
	cr_assert_eq(cfg.concurrency, 8);
	cr_assert_eq(cfg.max_attempts, 3);
	cr_assert_eq(cfg.path_style, 1);
	cr_assert_str_eq(cfg.access_key_id, "DEFKEY");
	dcp_s3_config_clear(&cfg);

	/* A named profile that does not exist. */
	cr_assert_eq(load_cfg("s3://bkt/x?profile=nobody", &cfg, &m), DCP_EINVAL);
	cr_assert(strstr(m.text, "nobody") != NULL, "%s", m.text);
	dcp_s3_config_clear(&cfg);

	/* A malformed credentials line is reported by number, never shown. */
	write_text(cred, "[default]\naws_access_key_id = K\n" SECRET "\n");
	unsetenv("AWS_PROFILE");
	cr_assert_eq(load_cfg("s3://bkt/x", &cfg, &m), DCP_EINVAL);
	cr_assert(strstr(m.text, "line 3") != NULL, "%s", m.text);
	cr_assert(strstr(m.text, SECRET) == NULL, "a secret in a message: %s", m.text);
	dcp_s3_config_clear(&cfg);
	dt_rmtree(dir);
}

Test(s3_offline, multipart_threshold_default_and_overrides, .timeout = DT_TIMEOUT)
{
	char dir[512], conf[600];
	dcp_s3_config cfg;
	dcp_msg m = {{0}};

	clear_aws_env();
	cr_assert_eq(load_cfg("s3://bkt/x", &cfg, &m), DCP_OK, "%s", m.text);
	cr_assert_eq(cfg.multipart_threshold, DCP_S3_DEFAULT_THRESHOLD);
	cr_assert_gt(cfg.multipart_threshold, cfg.part_size, "small objects must be one PUT by default");
	dcp_s3_config_clear(&cfg);

	/* The AWS CLI's name in the config file's s3 block, then the URL. */
	dt_mkdtemp(dir, sizeof(dir), "dcp-s3-threshold");
	dt_fmt(conf, sizeof(conf), "%s/config", dir);
	write_text(conf, "[default]\ns3 =\n  multipart_threshold = 16MB\n");
	setenv("AWS_CONFIG_FILE", conf, 1);
	cr_assert_eq(load_cfg("s3://bkt/x", &cfg, &m), DCP_OK, "%s", m.text);
	cr_assert_eq(cfg.multipart_threshold, (uint64_t)16 << 20);
	dcp_s3_config_clear(&cfg);
	cr_assert_eq(load_cfg("s3://bkt/x?multipart_threshold=1G", &cfg, &m), DCP_OK, "%s", m.text);
	cr_assert_eq(cfg.multipart_threshold, (uint64_t)1 << 30);
	dcp_s3_config_clear(&cfg);

	/* Out of S3's range for one PUT: an id error naming the key. */
	cr_assert_eq(load_cfg("s3://bkt/x?multipart_threshold=6G", &cfg, &m), DCP_EID);
	cr_assert(strstr(m.text, "multipart threshold") != NULL, "%s", m.text);
	dcp_s3_config_clear(&cfg);
	cr_assert_eq(load_cfg("s3://bkt/x?multipart_threshold=1M", &cfg, &m), DCP_EID);
	dcp_s3_config_clear(&cfg);
	unsetenv("AWS_CONFIG_FILE");
	dt_rmtree(dir);
}

Test(s3_offline, minio_json_example_loads, .timeout = DT_TIMEOUT)
{
	const char *src = getenv("DCP_SOURCE_DIR");
	char path[1024], url[1200];
	dcp_s3_config cfg;
	dcp_msg m = {{0}};

	if (src == NULL)
		cr_skip_test("DCP_SOURCE_DIR is not set");
	clear_aws_env();
	dt_fmt(path, sizeof(path), "%s/conf/s3-minio.json", src);
	dt_fmt(url, sizeof(url), "s3://bkt/x?config=%s", path);
	cr_assert_eq(load_cfg(url, &cfg, &m), DCP_OK, "%s", m.text);
	cr_assert_not_null(cfg.endpoint);
	cr_assert_eq(cfg.path_style, 1);
	dcp_s3_config_clear(&cfg);
}

/* ------------------------------------------------------------------------ */
/* Against the server: the public API                                       */
/* ------------------------------------------------------------------------ */
Test(s3, save_4_ranks_load_3, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *l4, *l3;
	dt_outcome o;

	need_server();
	dt_fmt(url, sizeof(url), "s3://%s/%s", bucket(), prefix_for(pre, sizeof(pre), "reshard"));
	l4 = mixed_layout(4);
	l3 = mixed_layout(3);
	dt_save(l4, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save with 4 ranks to s3");
	dt_outcome_clear(&o);
	dt_load(l3, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load with 3 ranks from s3");
	dt_outcome_clear(&o);
	dt_load(l4, 0, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load with 1 rank (no-dist) from s3");
	dt_outcome_clear(&o);
	dt_layout_free(l4);
	dt_layout_free(l3);
}

Test(s3, no_checkpoint_is_enotfound, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX], want[DT_URL_MAX];
	dcp_error *err = NULL;

	need_server();
	dt_fmt(url, sizeof(url), "s3://%s/%s", bucket(), prefix_for(pre, sizeof(pre), "nothing"));
	int rc = dcp_validate_checkpoint_id(NULL, url, 0, &err);
	cr_assert_eq(rc, DCP_ENOTFOUND, "got %d: %s", rc, dt_error_text(err));
	cr_assert(dt_error_mentions(err, dt_fmt(want, sizeof(want), "no checkpoint at %s", url)), "%s",
	          dt_error_text(err));
	dcp_error_free(err);
}

Test(s3, multipart_through_the_api, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *save = dt_layout_new(), *load = dt_layout_new();
	uint64_t shape[] = {2, (uint64_t)11 << 20};
	dt_outcome o;
	tp_proxy *px;

	need_server();
	px = tp_start(endpoint());
	cr_assert_not_null(px);
	/* 2 ranks of 11 MiB each, one object each: 3 parts of 5M, 5M, 1M. */
	dt_split(dt_add_sharded(save, "big", DCP_U8, 2, shape), 0, 2, NULL);
	dt_split(dt_add_sharded(load, "big", DCP_U8, 2, shape), 1, 3, NULL);
	dt_fmt(url, sizeof(url),
	       "s3://%s/%s?part_size=5M&multipart_threshold=5M&concurrency=3&threads=1&endpoint=%s", bucket(),
	       prefix_for(pre, sizeof(pre), "mpu"), tp_endpoint(px));
	dt_save(save, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "multipart save");
	dt_outcome_clear(&o);
	cr_assert_eq(tp_log_match(px, "POST", "uploads=", 200), 2, "expected 2 multipart uploads");
	cr_assert_eq(tp_log_match(px, "PUT", "partNumber=", 200), 6, "expected 6 parts");
	cr_assert_eq(tp_log_match(px, "POST", "uploadId=", 200), 2, "expected 2 completions");
	dt_load(load, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of multipart objects with 3 ranks");
	dt_outcome_clear(&o);
	tp_stop(px);
	dt_layout_free(save);
	dt_layout_free(load);
}

Test(s3, overwrite_keeps_only_the_new_checkpoint, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *a = mixed_layout(4), *b = dt_layout_new();
	uint64_t s[] = {50, 4};
	dt_outcome o;
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	name_list *names = dt_xcalloc(1, sizeof(*names));
	dcp_msg m = {{0}};

	need_server();
	prefix_for(pre, sizeof(pre), "overwrite");
	dt_fmt(url, sizeof(url), "s3://%s/%s", bucket(), pre);
	dt_split(dt_add_sharded(b, "other", DCP_I32, 2, s), 0, 2, NULL);
	dt_save(a, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);

	/* overwrite off: refused, the first checkpoint stays. */
	dcp_save_options no = DCP_SAVE_OPTIONS_INIT;
	no.overwrite = 0;
	dt_save(b, 2, url, &no, SEED_B, &o);
	dt_expect e = {.status = DCP_EEXISTS, .any_ranks = 1, .mention = "already exists"};
	dt_assert_failed(&o, &e, "save over a checkpoint with overwrite off");
	dt_outcome_clear(&o);

	dt_save(b, 2, url, NULL, SEED_B, &o);
	dt_assert_ok(&o, "second save (overwrite)");
	dt_outcome_clear(&o);
	dt_load(b, 2, url, NULL, SEED_B, &o);
	dt_assert_ok(&o, "load of the second checkpoint");
	dt_outcome_clear(&o);

	cr_assert_eq(dcp_read_metadata(url, NULL, &md, &err), DCP_OK, "%s", dt_error_text(err));
	cr_assert_null(dcp_metadata_find(md, "model.w"),
	               "the old checkpoint's keys are still in the metadata");
	dcp_backend *be = open_backend(pre, "");
	cr_assert_eq(be->ops->list(be, "", collect, names, &m), DCP_OK, "%s", m.text);
	cr_assert(list_has(names, ".metadata"));
	for (size_t i = 0; i < names->n; i++)
		cr_assert(strcmp(names->names[i], ".metadata") == 0 || md_names(md, names->names[i]),
		          "object %s is not part of the new checkpoint", names->names[i]);
	be->ops->destroy(be);
	dcp_metadata_free(md);
	free(names);
	dt_layout_free(a);
	dt_layout_free(b);
}

Test(s3, wrong_bucket_fails_fast_with_s3_error, .timeout = DT_TIMEOUT)
{
	char url[DT_URL_MAX];
	dt_layout *l = mixed_layout(2);
	dt_outcome o;
	double t0;

	need_server();
	dt_fmt(url, sizeof(url), "s3://no-such-bucket-%ld/run1", (long)getpid());
	t0 = now_s();
	dt_save(l, 2, url, NULL, SEED_A, &o);
	dt_expect e = {.status = 0, .any_ranks = 1, .mention = "NoSuchBucket", .mention2 = "no-such-bucket-"};
	dt_assert_failed(&o, &e, "save to a missing bucket");
	dt_outcome_clear(&o);
	dt_load(l, 2, url, NULL, SEED_A, &o);
	dt_assert_failed(&o, &e, "load from a missing bucket");
	dt_outcome_clear(&o);
	cr_assert_lt(now_s() - t0, 5.0, "a missing bucket took %.1f s to report (no retries expected)",
	             now_s() - t0);
	dt_layout_free(l);
}

Test(s3, wrong_credentials_fail_fast_without_the_secret, .timeout = DT_TIMEOUT)
{
	char pre[256], url[DT_URL_MAX];
	dt_layout *l = mixed_layout(2);
	dt_outcome o;
	double t0;

	need_server();
	setenv("AWS_ACCESS_KEY_ID", "WRONGKEYID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	dt_fmt(url, sizeof(url), "s3://%s/%s", bucket(), prefix_for(pre, sizeof(pre), "creds"));
	t0 = now_s();
	dt_save(l, 2, url, NULL, SEED_A, &o);
	dt_expect e = {
	        .status = 0, .any_ranks = 1, .mention = "InvalidAccessKeyId", .mention2 = "environment"};
	dt_assert_failed(&o, &e, "save with a wrong access key");
	for (int r = 0; r < o.n; r++)
		cr_assert(!dt_error_mentions(o.err[r], SECRET), "the secret key is in the error: %s",
		          dt_error_text(o.err[r]));
	dt_outcome_clear(&o);
	dt_load(l, 2, url, NULL, SEED_A, &o);
	dt_assert_failed(&o, &e, "load with a wrong access key");
	dt_outcome_clear(&o);
	cr_assert_lt(now_s() - t0, 5.0, "wrong credentials took %.1f s to report", now_s() - t0);
	dt_layout_free(l);
}

#endif /* DCP_TEST_HAVE_S3 */
