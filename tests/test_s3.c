/*
 * The S3 plugin and backend (issue 4).
 *
 * Tests in suite s3_offline need no server: bucket and prefix rules, the
 * configuration sources, and that no secret reaches a message. The others
 * need an S3-compatible server and are skipped without one: run them with
 * tests/s3/with-s3rver.sh (ctest's s3_server test does), which exports
 * AWS_ENDPOINT_URL_S3, the S3RVER credentials and DCP_S3_TEST_BUCKET. They
 * save and load through the public API (dcp_save / dcp_load on thread ranks),
 * drive the backend directly where counters are needed (multipart, parallel
 * parts), read objects back with libs3 (an independent client, Signature V2),
 * and put the fault-injecting proxy (tests/s3/proxy.c) between the plugin and
 * the server to inject 500/503 answers, resets, a server that goes away, and
 * to record AbortMultipartUpload requests.
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
 * built and links it, with the proxy, into this test; without it (no
 * libcurl, or tests/s3 not added) only a placeholder test is compiled. */
#ifndef DCP_TEST_HAVE_S3
Test(s3_offline, not_built)
{
	cr_skip_test("the S3 backend is not built (libcurl4-openssl-dev and libxml2-dev are needed), or "
	             "tests/s3 is "
	             "not added to the build");
}
#else
#include <cjson/cJSON.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <sys/wait.h>

#include "s3/proxy.h"
#include "s3/s3_backend.h"

#ifdef DCP_TEST_HAVE_LIBS3
#include <libs3.h>
#endif

#define SEED_A UINT64_C(0x5a3e1)
#define SEED_B UINT64_C(0xb0a7)
#define SECRET "s3cr3t-V4LUE-never-shown"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */
static const char *endpoint(void)
{
	const char *e = getenv("AWS_ENDPOINT_URL_S3");
	return e != NULL && e[0] != '\0' ? e : NULL;
}

static const char *bucket(void)
{
	const char *b = getenv("DCP_S3_TEST_BUCKET");
	return b != NULL && b[0] != '\0' ? b : "dcp-test";
}

static void need_server(void)
{
	if (endpoint() == NULL)
		cr_skip_test("AWS_ENDPOINT_URL_S3 is not set: run through tests/s3/with-s3rver.sh");
}

/* A prefix unique to this test run and name. */
static char *prefix_for(char *buf, size_t n, const char *name)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return dt_fmt(buf, n, "t/%s-%ld-%ld", name, (long)getpid(), (long)(ts.tv_nsec / 1000));
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A mixed state split over nranks ranks. */
static dt_layout *mixed_layout(int nranks)
{
	dt_layout *l = dt_layout_new();
	uint64_t w[] = {64, 33}, b3[] = {7, 5, 3}, emb[] = {130, 8};
	dt_split(dt_add_sharded(l, "model.w", DCP_F32, 2, w), 0, (size_t)nranks, NULL);
	dt_split(dt_add_sharded(l, "model.b", DCP_F64, 3, b3), 1, (size_t)nranks, NULL);
	dt_split(dt_add_sharded(l, "emb", DCP_BF16, 2, emb), 0, (size_t)nranks, NULL);
	dt_add_replicated(l, "opt.step", DCP_I64, 0, NULL, DT_RANKS(nranks));
	dt_add_bytes(l, "extra", 100, DT_RANKS(nranks));
	return l;
}

/* A backend on the test bucket with the environment's configuration and the
 * URL-style overrides in query ("part_size=5M&concurrency=4", may be ""). */
static dcp_backend *open_backend(const char *prefix, const char *query)
{
	char url[DT_URL_MAX];
	dcp_url u;
	dcp_s3_config cfg;
	dcp_backend *b = NULL;
	dcp_msg msg = {{0}};
	int rc;

	dt_fmt(url, sizeof(url), "s3://%s/%s%s%s", bucket(), prefix, query[0] ? "?" : "", query);
	rc = dcp_url_parse(url, &u, &msg);
	cr_assert_eq(rc, DCP_OK, "%s: %s", url, msg.text);
	rc = dcp_s3_config_load(&cfg, &u, url, &msg);
	cr_assert_eq(rc, DCP_OK, "config for %s: %s", url, msg.text);
	rc = dcp_s3_backend_open(&cfg, bucket(), prefix, &b, &msg);
	cr_assert_eq(rc, DCP_OK, "open %s: %s", url, msg.text);
	dcp_s3_config_clear(&cfg);
	dcp_url_clear(&u);
	return b;
}

static void fill_pattern(unsigned char *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

/* Writes data to path with appends of uneven sizes. */
static int write_object(dcp_backend *b, const char *path, const unsigned char *data, size_t n, dcp_msg *msg)
{
	dcp_backend_writer *w;
	size_t off = 0, step = 777777;
	int rc = b->ops->writer_open(b, path, &w, msg);
	if (rc != DCP_OK)
		return rc;
	while (off < n) {
		size_t k = n - off < step ? n - off : step;
		rc = b->ops->writer_append(w, data + off, k, msg);
		if (rc != DCP_OK) {
			b->ops->writer_abort(w);
			return rc;
		}
		off += k;
		step = step * 3 % 3000001 + 1;
	}
	return b->ops->writer_close(w, msg);
}

typedef struct name_list {
	size_t n;
	char names[512][256];
	uint64_t sizes[512];
} name_list;

static int collect(const char *path, uint64_t size, void *arg)
{
	name_list *l = arg;
	if (l->n < 512) {
		snprintf(l->names[l->n], sizeof(l->names[0]), "%s", path);
		l->sizes[l->n] = size;
		l->n++;
	}
	return 0;
}

static int list_has(const name_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			return 1;
	return 0;
}

/* 1 if md names path as the storage of some chunk. */
static int md_names(const dcp_metadata *md, const char *path)
{
	for (size_t i = 0; i < md->nitems; i++)
		for (size_t c = 0; c < md->items[i].nchunks; c++)
			if (strcmp(md->items[i].chunks[c].storage.path, path) == 0)
				return 1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* libs3: the independent second client                                     */
/* ------------------------------------------------------------------------ */
#ifdef DCP_TEST_HAVE_LIBS3
typedef struct s3buf {
	unsigned char *data;
	size_t len, cap, pos;
	S3Status status;
	char err[256];
} s3buf;

static S3Status l3_props(const S3ResponseProperties *p, void *d)
{
	(void)p;
	(void)d;
	return S3StatusOK;
}

static void l3_done(S3Status st, const S3ErrorDetails *e, void *d)
{
	s3buf *b = d;
	b->status = st;
	snprintf(b->err, sizeof(b->err), "%s%s%s", S3_get_status_name(st),
	         e != NULL && e->message ? ": " : "", e != NULL && e->message ? e->message : "");
}

static S3Status l3_data(int n, const char *buf, void *d)
{
	s3buf *b = d;
	if (b->len + (size_t)n > b->cap) {
		b->cap = (b->len + (size_t)n) * 2;
		b->data = realloc(b->data, b->cap);
		cr_assert_not_null(b->data);
	}
	memcpy(b->data + b->len, buf, (size_t)n);
	b->len += (size_t)n;
	return S3StatusOK;
}

static int l3_put_data(int n, char *buf, void *d)
{
	s3buf *b = d;
	size_t k = b->len - b->pos < (size_t)n ? b->len - b->pos : (size_t)n;
	memcpy(buf, b->data + b->pos, k);
	b->pos += k;
	return (int)k;
}

static S3BucketContext l3_bucket(char *host, size_t n)
{
	const char *e = endpoint();
	S3BucketContext c;
	dt_fmt(host, n, "%s", strncmp(e, "http://", 7) == 0 ? e + 7 : e);
	memset(&c, 0, sizeof(c));
	c.hostName = host;
	c.bucketName = bucket();
	c.protocol = S3ProtocolHTTP;
	c.uriStyle = S3UriStylePath;
	c.accessKeyId = getenv("AWS_ACCESS_KEY_ID");
	c.secretAccessKey = getenv("AWS_SECRET_ACCESS_KEY");
	return c;
}

/* GETs bucket/key with libs3 into *out (malloc'd). */
static void l3_get(const char *key, s3buf *out)
{
	char host[256];
	S3BucketContext c = l3_bucket(host, sizeof(host));
	S3GetObjectHandler h = {{l3_props, l3_done}, l3_data};
	memset(out, 0, sizeof(*out));
	out->status = S3StatusInternalError;
	S3_get_object(&c, key, NULL, 0, 0, NULL, &h, out);
}

static void l3_put(const char *key, const void *data, size_t len, s3buf *st)
{
	char host[256];
	S3BucketContext c = l3_bucket(host, sizeof(host));
	S3PutObjectHandler h = {{l3_props, l3_done}, l3_put_data};
	memset(st, 0, sizeof(*st));
	st->data = (unsigned char *)data;
	st->len = len;
	st->status = S3StatusInternalError;
	S3_put_object(&c, key, len, NULL, NULL, &h, st);
}
#endif

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

/* ------------------------------------------------------------------------ */
/* Against the server: the backend                                          */
/* ------------------------------------------------------------------------ */
Test(s3, backend_multipart_parts_in_parallel, .timeout = DT_TIMEOUT)
{
	char pre[256];
	size_t n = ((size_t)23 << 20) + 12345;
	unsigned char *data = dt_xmalloc(n), *back = dt_xmalloc(n);
	dcp_backend *b;
	dcp_s3_stats st;
	dcp_msg m = {{0}};
	void *whole;
	uint64_t wlen;

	need_server();
	fill_pattern(data, n, 7);
	b = open_backend(prefix_for(pre, sizeof(pre), "parts"),
	                 "part_size=5M&multipart_threshold=5M&concurrency=4");
	cr_assert_eq(write_object(b, "big.bin", data, n, &m), DCP_OK, "%s", m.text);
	dcp_s3_backend_stats(b, &st);
	cr_assert_eq(st.multipart_uploads, 1);
	cr_assert_eq(st.parts, 5, "expected 5 parts of 5 MiB for 23 MiB, got %llu",
	             (unsigned long long)st.parts);
	cr_assert_geq(st.max_parts_in_flight, 2, "parts were not uploaded in parallel");
	cr_assert_leq(st.max_parts_in_flight, 4, "more parts in flight than the concurrency");

	/* Whole, split into parallel ranges, and a small range. */
	cr_assert_eq(b->ops->read(b, "big.bin", 0, n, back, &m), DCP_OK, "%s", m.text);
	cr_assert(memcmp(data, back, n) == 0, "ranged parallel read differs");
	memset(back, 0, 1000);
	cr_assert_eq(b->ops->read(b, "big.bin", 5 * 1048576 - 10, 1000, back, &m), DCP_OK, "%s", m.text);
	cr_assert(memcmp(data + 5 * 1048576 - 10, back, 1000) == 0, "small ranged read differs");
	cr_assert_eq(b->ops->get(b, "big.bin", &whole, &wlen, &m), DCP_OK, "%s", m.text);
	cr_assert_eq(wlen, n);
	cr_assert(memcmp(whole, data, n) == 0);
	free(whole);

	/* Past the end: corrupt, with the sizes. */
	int rc = b->ops->read(b, "big.bin", n - 10, 20, back, &m);
	cr_assert_eq(rc, DCP_ECORRUPT, "read past the end gave %d: %s", rc, m.text);
	cr_assert(strstr(m.text, "expected at least") != NULL, "%s", m.text);
	rc = b->ops->read(b, "big.bin", n + 10, 20, back, &m);
	cr_assert_eq(rc, DCP_ECORRUPT, "read beyond the end gave %d: %s", rc, m.text);
	rc = b->ops->read(b, "missing.bin", 0, 20, back, &m);
	cr_assert_eq(rc, DCP_ENOTFOUND, "read of a missing object gave %d: %s", rc, m.text);
	cr_assert_eq(b->ops->exists(b, "big.bin", &m), 1, "%s", m.text);
	cr_assert_eq(b->ops->exists(b, "missing.bin", &m), 0, "%s", m.text);
	cr_assert_eq(b->ops->remove(b, "big.bin", &m), DCP_OK, "%s", m.text);
	cr_assert_eq(b->ops->remove(b, "big.bin", &m), DCP_OK, "second remove: %s", m.text);
	cr_assert_eq(b->ops->exists(b, "big.bin", &m), 0, "%s", m.text);

	/* A small object is one PUT. */
	cr_assert_eq(write_object(b, "small.bin", data, 1000, &m), DCP_OK, "%s", m.text);
	dcp_s3_backend_stats(b, &st);
	cr_assert_eq(st.single_puts, 1);
	cr_assert_eq(st.multipart_uploads, 1);
	b->ops->destroy(b);
	free(data);
	free(back);
}

/* write_iov sends the caller's buffers: segments of uneven sizes (empty ones
 * too) that straddle part boundaries, as one PUT below the threshold and as
 * parts in parallel above it. */
Test(s3, backend_write_iov_single_put_and_parts, .timeout = DT_TIMEOUT)
{
	char pre[256];
	size_t n = ((size_t)17 << 20) + 4321,
	       cuts[] = {0, 1, 3u << 20, (5u << 20) + 1, (5u << 20) + 1, (12u << 20) - 7, (15u << 20) + 99};
	size_t ncuts = sizeof(cuts) / sizeof(cuts[0]);
	unsigned char *data = dt_xmalloc(n), *back = dt_xmalloc(n);
	dcp_backend_iov iov[8];
	dcp_backend *b;
	dcp_s3_stats st;
	dcp_msg m = {{0}};
	atomic_int stop;

	need_server();
	fill_pattern(data, n, 11);
	for (size_t i = 0; i < ncuts; i++) {
		size_t end = i + 1 < ncuts ? cuts[i + 1] : n;
		iov[i].data = data + cuts[i];
		iov[i].len = end - cuts[i];
	}
	atomic_init(&stop, 0);
	prefix_for(pre, sizeof(pre), "iov");

	/* Above the threshold: 4 parts of 5 MiB, sent in parallel. */
	b = open_backend(pre, "part_size=5M&multipart_threshold=5M&concurrency=4");
	cr_assert_not_null(b->ops->write_iov);
	cr_assert_eq(b->ops->write_iov(b, "parts.bin", iov, ncuts, &stop, &m), DCP_OK, "%s", m.text);
	dcp_s3_backend_stats(b, &st);
	cr_assert_eq(st.multipart_uploads, 1);
	cr_assert_eq(st.parts, 4, "expected 4 parts of 5 MiB for 17 MiB, got %llu",
	             (unsigned long long)st.parts);
	cr_assert_geq(st.max_parts_in_flight, 2, "parts were not uploaded in parallel");
	cr_assert_leq(st.max_parts_in_flight, 4, "more parts in flight than the concurrency");
	/* Above the threshold, a read is split: 4 ranges of at least 5 MiB. */
	cr_assert_eq(b->ops->read(b, "parts.bin", 0, n, back, &m), DCP_OK, "%s", m.text);
	cr_assert(memcmp(data, back, n) == 0, "the multipart object differs from the buffers");
	dcp_s3_backend_stats(b, &st);
	cr_assert_eq(st.ranged_gets, 4, "expected 4 ranged GETs, got %llu",
	             (unsigned long long)st.ranged_gets);
	b->ops->destroy(b);

	/* Below the (default) threshold: one PUT of every buffer; and an empty object. */
	b = open_backend(pre, "part_size=5M");
	cr_assert_eq(b->ops->write_iov(b, "one.bin", iov, ncuts, NULL, &m), DCP_OK, "%s", m.text);
	cr_assert_eq(b->ops->write_iov(b, "empty.bin", iov, 0, NULL, &m), DCP_OK, "%s", m.text);
	dcp_s3_backend_stats(b, &st);
	cr_assert_eq(st.single_puts, 2);
	cr_assert_eq(st.multipart_uploads, 0);
	/* Below the threshold, a read is one GET. */
	memset(back, 0, n);
	cr_assert_eq(b->ops->read(b, "one.bin", 0, n, back, &m), DCP_OK, "%s", m.text);
	cr_assert(memcmp(data, back, n) == 0, "the object of one PUT differs from the buffers");
	dcp_s3_backend_stats(b, &st);
	cr_assert_eq(st.ranged_gets, 1, "expected one GET, got %llu", (unsigned long long)st.ranged_gets);

	/* read_iov scatters one GET over several destinations, dropping a gap. */
	{
		unsigned char *x = dt_xmalloc(1000), *y = dt_xmalloc(3u << 20);
		dcp_backend_dst d[3] = {{x, 1000}, {NULL, 4096}, {y, 3u << 20}};
		cr_assert_not_null(b->ops->read_iov);
		cr_assert_eq(b->ops->read_iov(b, "one.bin", (5u << 20) - 10, d, 3, &m), DCP_OK, "%s", m.text);
		cr_assert(memcmp(x, data + (5u << 20) - 10, 1000) == 0, "first destination differs");
		cr_assert(memcmp(y, data + (5u << 20) - 10 + 1000 + 4096, 3u << 20) == 0,
		          "destination after the gap differs");
		dcp_s3_backend_stats(b, &st);
		cr_assert_eq(st.ranged_gets, 2, "read_iov took %llu GETs",
		             (unsigned long long)st.ranged_gets - 1);
		/* Past the end: corrupt, as read. */
		cr_assert_eq(b->ops->read_iov(b, "one.bin", n - 100, d, 3, &m), DCP_ECORRUPT, "%s", m.text);
		free(x);
		free(y);
	}
	cr_assert_eq(b->ops->exists(b, "empty.bin", &m), 1, "%s", m.text);

	/* A stop already set: nothing is written, and the result says why. */
	atomic_store(&stop, 1);
	b->ops->destroy(b);
	b = open_backend(pre, "part_size=5M&multipart_threshold=5M");
	cr_assert_eq(b->ops->write_iov(b, "stopped.bin", iov, ncuts, &stop, &m), DCP_EPEER);
	cr_assert_eq(b->ops->exists(b, "stopped.bin", &m), 0, "%s", m.text);
	b->ops->destroy(b);
	free(data);
	free(back);
}

typedef struct key_counter {
	size_t n;
	int bad;
} key_counter;

static int count_key(const char *path, uint64_t size, void *arg)
{
	key_counter *c = arg;
	c->n++;
	if (strncmp(path, "k/", 2) != 0 || size != 1)
		c->bad = 1;
	return 0;
}

Test(s3, list_uses_continuation_tokens, .timeout = DT_TIMEOUT)
{
	char pre[256], name[64];
	dcp_backend *b;
	name_list *names = dt_xcalloc(1, sizeof(*names));
	dcp_msg m = {{0}};
	size_t total = 0;

	need_server();
	/* More than one page (s3rver and S3 answer at most 1000 keys). */
	b = open_backend(prefix_for(pre, sizeof(pre), "list"), "");
	for (int i = 0; i < 1003; i++)
		cr_assert_eq(b->ops->put_atomic(b, dt_fmt(name, sizeof(name), "k/%04d", i), "x", 1, &m),
		             DCP_OK, "%s", m.text);
	cr_assert_eq(b->ops->put_atomic(b, "other", "yy", 2, &m), DCP_OK, "%s", m.text);
	/* Count only (the name list holds 512). */
	{
		key_counter c = {0, 0};
		cr_assert_eq(b->ops->list(b, "k/", count_key, &c, &m), DCP_OK, "%s", m.text);
		total = c.n;
		cr_assert_eq(c.bad, 0, "a listed key is outside the prefix or has the wrong size");
	}
	cr_assert_eq(total, 1003, "listed %zu keys under k/, expected 1003", total);
	cr_assert_eq(b->ops->list(b, "oth", collect, names, &m), DCP_OK, "%s", m.text);
	cr_assert_eq(names->n, 1);
	cr_assert_str_eq(names->names[0], "other");
	cr_assert_eq(names->sizes[0], 2);
	b->ops->destroy(b);
	free(names);
}

/* ------------------------------------------------------------------------ */
/* libs3 as a second client                                                 */
/* ------------------------------------------------------------------------ */
Test(s3, libs3_reads_what_the_plugin_wrote, .timeout = DT_TIMEOUT)
{
#ifndef DCP_TEST_HAVE_LIBS3
	cr_skip_test("built without libs3 (libs3-dev)");
#else
	char pre[256], url[DT_URL_MAX], key[1024];
	dt_layout *l = mixed_layout(4);
	uint64_t big[] = {(uint64_t)6 << 20};
	dt_outcome o;
	name_list *names = dt_xcalloc(1, sizeof(*names));
	dcp_msg m = {{0}};

	need_server();
	dt_add_replicated(l, "big", DCP_U8, 1, big, DT_RANK(0));
	prefix_for(pre, sizeof(pre), "libs3");
	dt_fmt(url, sizeof(url), "s3://%s/%s?part_size=5M&multipart_threshold=5M", bucket(), pre);
	dt_save(l, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save");
	dt_outcome_clear(&o);
	cr_assert_eq(S3_initialize(NULL, S3_INIT_ALL, NULL), S3StatusOK);
	dcp_backend *b = open_backend(pre, "");
	cr_assert_eq(b->ops->list(b, "", collect, names, &m), DCP_OK, "%s", m.text);
	cr_assert_geq(names->n, 5, "expected .metadata and 4 ranks' objects");
	for (size_t i = 0; i < names->n; i++) {
		void *mine;
		uint64_t len;
		s3buf theirs;
		cr_assert_eq(b->ops->get(b, names->names[i], &mine, &len, &m), DCP_OK, "%s", m.text);
		l3_get(dt_fmt(key, sizeof(key), "%s/%s", pre, names->names[i]), &theirs);
		cr_assert_eq(theirs.status, S3StatusOK, "libs3 GET %s: %s", key, theirs.err);
		cr_assert_eq(theirs.len, len, "%s: libs3 read %zu bytes, the plugin wrote %llu", key,
		             theirs.len, (unsigned long long)len);
		cr_assert(memcmp(theirs.data, mine, len) == 0, "%s differs between libs3 and the plugin",
		          key);
		cr_assert_eq(names->sizes[i], len, "%s: listed size differs", key);
		free(theirs.data);
		free(mine);
	}
	b->ops->destroy(b);
	S3_deinitialize();
	free(names);
	dt_layout_free(l);
#endif
}

#ifdef DCP_TEST_HAVE_LIBS3
/* Uploads every file under dir/rel to prefix/rel with libs3. */
static void l3_upload_tree(const char *dir, const char *rel, const char *prefix)
{
	char path[2048], key[2048];
	DIR *d = opendir(dt_fmt(path, sizeof(path), "%s%s%s", dir, rel[0] ? "/" : "", rel));
	struct dirent *e;
	cr_assert_not_null(d, "opendir %s", path);
	while ((e = readdir(d)) != NULL) {
		char sub[1024], full[2048];
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		dt_fmt(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
		dt_fmt(full, sizeof(full), "%s/%s", dir, sub);
		cr_assert_eq(stat(full, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			l3_upload_tree(dir, sub, prefix);
			continue;
		}
		FILE *f = fopen(full, "rb");
		cr_assert_not_null(f);
		unsigned char *buf = dt_xmalloc((size_t)st.st_size + 1);
		cr_assert_eq(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
		fclose(f);
		s3buf stt;
		l3_put(dt_fmt(key, sizeof(key), "%s/%s", prefix, sub), buf, (size_t)st.st_size, &stt);
		cr_assert_eq(stt.status, S3StatusOK, "libs3 PUT %s: %s", key, stt.err);
		free(buf);
	}
	closedir(d);
}
#endif

Test(s3, fs_checkpoint_uploaded_by_libs3_loads_through_s3, .timeout = DT_TIMEOUT)
{
#ifndef DCP_TEST_HAVE_LIBS3
	cr_skip_test("built without libs3 (libs3-dev)");
#else
	char dir[512], pre[256], url[DT_URL_MAX], furl[1024];
	dt_layout *l4 = mixed_layout(4), *l3 = mixed_layout(3);
	dt_outcome o;

	need_server();
	dt_mkdtemp(dir, sizeof(dir), "dcp-s3-fs");
	dt_fmt(furl, sizeof(furl), "file://%s/ckpt", dir);
	dt_save(l4, 4, furl, NULL, SEED_B, &o);
	if (o.status[0] == DCP_ENOPLUGIN || o.status[0] == DCP_EPLUGIN) {
		dt_outcome_clear(&o);
		cr_skip_test("the fs plugin is not available");
	}
	dt_assert_ok(&o, "save to a directory");
	dt_outcome_clear(&o);
	cr_assert_eq(S3_initialize(NULL, S3_INIT_ALL, NULL), S3StatusOK);
	prefix_for(pre, sizeof(pre), "from-fs");
	char ck[600];
	l3_upload_tree(dt_fmt(ck, sizeof(ck), "%s/ckpt", dir), "", pre);
	S3_deinitialize();
	dt_fmt(url, sizeof(url), "s3://%s/%s", bucket(), pre);
	dt_load(l3, 3, url, NULL, SEED_B, &o);
	dt_assert_ok(&o, "load through s3:// of a checkpoint uploaded with libs3");
	dt_outcome_clear(&o);
	dt_rmtree(dir);
	dt_layout_free(l4);
	dt_layout_free(l3);
#endif
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
	dt_expect e = {.status = 0,
	               .any_ranks = 1,
	               .mention = "AccessDenied",
	               .mention2 = "does not support AbortMultipartUpload"};
	dt_assert_failed(&o, &e, "save with a part refused");
	dt_outcome_clear(&o);

	size_t started = tp_log_match(px, "POST", "uploads=", 200);
	cr_assert_geq(started, 1, "no multipart upload was started");
	/* Every upload that started got an AbortMultipartUpload (s3rver: 405). */
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
	cr_assert_eq(tp_log_match(px, "DELETE", "uploadId=", 405), started,
	             "%zu uploads started, %zu AbortMultipartUpload sent", started,
	             tp_log_match(px, "DELETE", "uploadId=", 0));
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
/* ------------------------------------------------------------------------ */
/* `dcp cp` file -> s3 -> file, through the dcp tool                          */
/* ------------------------------------------------------------------------ */
extern char **environ;

typedef struct tool_run {
	int code;  /* exit status, or 128 + signal */
	char *out; /* stdout, malloc'd */
	char *err; /* stderr, malloc'd */
} tool_run;

/* The dcp tool next to this test program (both are built into build/bin);
 * 0 if it is not there. */
static int dcp_tool_path(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	cr_assert(n > 0, "readlink(/proc/self/exe) failed");
	self[n] = '\0';
	dt_fmt(buf, len, "%s/dcp", dirname(self));
	return access(buf, X_OK) == 0;
}

static char *read_fd_all(int fd)
{
	struct stat st;
	cr_assert(fstat(fd, &st) == 0);
	char *buf = dt_xmalloc((size_t)st.st_size + 1);
	ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
	cr_assert(n == st.st_size, "short read of a captured output");
	buf[n] = '\0';
	return buf;
}

/* Runs `dcp args...` (NULL-terminated, without "dcp"), capturing stdout and
 * stderr. */
static tool_run run_tool(const char *const *args)
{
	char bin[PATH_MAX], outp[] = "/tmp/dcp-s3-out-XXXXXX", errp[] = "/tmp/dcp-s3-err-XXXXXX";
	char *argv[16];
	size_t n = 0;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = 0, rc, ofd, efd;
	tool_run r;

	cr_assert(dcp_tool_path(bin, sizeof(bin)), "no dcp tool at %s", bin);
	argv[n++] = bin;
	for (size_t i = 0; args[i] != NULL; i++) {
		cr_assert(n + 1 < sizeof(argv) / sizeof(argv[0]));
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	ofd = mkstemp(outp);
	efd = mkstemp(errp);
	cr_assert(ofd >= 0 && efd >= 0, "mkstemp failed");
	unlink(outp);
	unlink(errp);
	cr_assert(posix_spawn_file_actions_init(&fa) == 0);
	posix_spawn_file_actions_adddup2(&fa, ofd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, efd, STDERR_FILENO);
	rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert(rc == 0, "posix_spawn(%s) failed: %s", bin, strerror(rc));
	cr_assert(waitpid(pid, &status, 0) == pid);
	r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r.out = read_fd_all(ofd);
	r.err = read_fd_all(efd);
	close(ofd);
	close(efd);
	return r;
}

#define RUN_TOOL(...) run_tool((const char *const[]){__VA_ARGS__, NULL})

static void tool_run_ok(tool_run *r, const char *what)
{
	cr_assert_eq(r->code, 0, "%s: exit status %d\nstdout:\n%s\nstderr:\n%s", what, r->code, r->out,
	             r->err);
	free(r->out);
	free(r->err);
}

/*
 * `dcp inspect --json URL` without what is particular to one copy: the url,
 * the save id, the data files, and each chunk's file and offset in it. What
 * stays: every key, type, dtype, shape, chunk box, length and block
 * checksum, the counts and the checksum scheme. Caller frees.
 */
static cJSON *inspect_portable(const char *url)
{
	tool_run r = RUN_TOOL("inspect", "--json", url);
	cJSON *j, *items, *it;

	cr_assert_eq(r.code, 0, "dcp inspect --json %s: exit status %d: %s", url, r.code, r.err);
	j = cJSON_Parse(r.out);
	cr_assert_not_null(j, "dcp inspect --json %s printed no JSON:\n%s", url, r.out);
	free(r.out);
	free(r.err);
	cJSON_DeleteItemFromObjectCaseSensitive(j, "url");
	cJSON_DeleteItemFromObjectCaseSensitive(j, "save_id");
	cJSON_DeleteItemFromObjectCaseSensitive(j, "files");
	cJSON_DeleteItemFromObjectCaseSensitive(j, "storage_meta");
	items = cJSON_GetObjectItemCaseSensitive(j, "items");
	cr_assert(cJSON_IsArray(items) && cJSON_GetArraySize(items) > 0, "no items in the inspect of %s",
	          url);
	cJSON_ArrayForEach(it, items)
	{
		cJSON *chunks = cJSON_GetObjectItemCaseSensitive(it, "chunks"), *c;
		cr_assert(cJSON_IsArray(chunks), "an item without chunks in the inspect of %s", url);
		cJSON_ArrayForEach(c, chunks)
		{
			cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(c, "checksums"));
			cJSON_DeleteItemFromObjectCaseSensitive(c, "file");
			cJSON_DeleteItemFromObjectCaseSensitive(c, "offset");
		}
	}
	return j;
}

static void assert_same_inspect(cJSON *a, cJSON *b, const char *what)
{
	if (!cJSON_Compare(a, b, 1)) {
		char *x = cJSON_Print(a), *y = cJSON_Print(b);
		cr_assert_fail(
		        "%s: the checkpoints differ in keys, chunks or checksums\n--- source:\n%.4000s\n"
		        "--- copy:\n%.4000s",
		        what, x, y);
	}
}

Test(s3, dcp_cp_file_to_s3_and_back_is_bit_exact, .timeout = DT_TIMEOUT)
{
	char bin[PATH_MAX], dir[512], a[600], b[600], s3[DT_URL_MAX], pre[256];
	cJSON *ja, *js, *jb;
	tool_run r;

	need_server();
	if (!dcp_tool_path(bin, sizeof(bin)))
		cr_skip_test("the dcp tool is not built next to this test (%s)", bin);
	r = RUN_TOOL("plugins");
	if (r.code != 0 || strstr(r.out, "file") == NULL)
		cr_skip_test("no file:// plugin in this build");
	free(r.out);
	free(r.err);
	dt_mkdtemp(dir, sizeof(dir), "dcp-s3-cp");
	dt_fmt(a, sizeof(a), "file://%s/a", dir);
	dt_fmt(b, sizeof(b), "file://%s/b", dir);
	/* Small parts, so that the copy's objects are multipart uploads whose
	 * parts come straight from the loaded buffers. */
	dt_fmt(s3, sizeof(s3), "s3://%s/%s?part_size=5M&multipart_threshold=5M", bucket(),
	       prefix_for(pre, sizeof(pre), "cp"));

	r = RUN_TOOL("save", "--ranks", "4", "--size", "24M", "--seed", "7", a);
	tool_run_ok(&r, "dcp save to file://");
	r = RUN_TOOL("cp", a, s3);
	tool_run_ok(&r, "dcp cp file:// -> s3://");
	r = RUN_TOOL("cp", s3, b);
	tool_run_ok(&r, "dcp cp s3:// -> file://");

	/* Every element of both copies, loaded with another number of ranks. */
	r = RUN_TOOL("load", "--ranks", "3", s3);
	tool_run_ok(&r, "dcp load of the s3:// copy");
	r = RUN_TOOL("load", "--ranks", "3", b);
	tool_run_ok(&r, "dcp load of the file:// copy of the s3:// copy");
	r = RUN_TOOL("verify", b);
	tool_run_ok(&r, "dcp verify of the file:// copy");

	/* The same keys, chunks and block checksums in all three. */
	ja = inspect_portable(a);
	js = inspect_portable(s3);
	jb = inspect_portable(b);
	assert_same_inspect(ja, js, "file:// -> s3://");
	assert_same_inspect(ja, jb, "file:// -> s3:// -> file://");
	cJSON_Delete(ja);
	cJSON_Delete(js);
	cJSON_Delete(jb);
	dt_rmtree(dir);
}

#endif /* DCP_TEST_HAVE_S3 */
