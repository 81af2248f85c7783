/*
 * Helpers shared by the S3 tests: see s3test.h.
 */
#include "s3test.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "s3/s3_backend.h"

const char *endpoint(void)
{
	const char *e = getenv("AWS_ENDPOINT_URL_S3");
	return e != NULL && e[0] != '\0' ? e : NULL;
}

const char *bucket(void)
{
	const char *b = getenv("DCP_S3_TEST_BUCKET");
	return b != NULL && b[0] != '\0' ? b : "dcp-test";
}

void need_server(void)
{
	if (endpoint() == NULL)
		cr_skip_test("AWS_ENDPOINT_URL_S3 is not set: run through tests/s3/with-s3rver.sh or "
		             "tests/s3/with-radosgw.sh");
}

const char *server_name(void)
{
	const char *s = getenv("DCP_S3_TEST_SERVER");
	return s != NULL && s[0] != '\0' ? s : "s3rver";
}

int server_is_s3rver(void)
{
	return strcmp(server_name(), "s3rver") == 0;
}

/* A prefix unique to this test run and name. */
char *prefix_for(char *buf, size_t n, const char *name)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return dt_fmt(buf, n, "t/%s-%ld-%ld", name, (long)getpid(), (long)(ts.tv_nsec / 1000));
}

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A mixed state split over nranks ranks. */
dt_layout *mixed_layout(int nranks)
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
dcp_backend *open_backend(const char *prefix, const char *query)
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

void fill_pattern(unsigned char *p, size_t n, uint32_t seed)
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
int write_object(dcp_backend *b, const char *path, const unsigned char *data, size_t n, dcp_msg *msg)
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

int collect(const char *path, uint64_t size, void *arg)
{
	name_list *l = arg;
	if (l->n < 512) {
		snprintf(l->names[l->n], sizeof(l->names[0]), "%s", path);
		l->sizes[l->n] = size;
		l->n++;
	}
	return 0;
}

int list_has(const name_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			return 1;
	return 0;
}

/* 1 if md names path as the storage of some chunk. */
int md_names(const dcp_metadata *md, const char *path)
{
	for (size_t i = 0; i < md->nitems; i++)
		for (size_t c = 0; c < md->items[i].nchunks; c++)
			if (strcmp(md->items[i].chunks[c].storage.path, path) == 0)
				return 1;
	return 0;
}
