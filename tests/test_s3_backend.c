/*
 * The S3 backend against a server (issue 4): multipart uploads with parts in
 * parallel, write_iov and read_iov, listing with continuation tokens; and
 * what other clients see: libs3 (an independent client, Signature V2) reads
 * objects the plugin wrote and uploads a checkpoint that the plugin loads,
 * and `dcp cp` copies file:// -> s3:// -> file:// bit-exactly.
 *
 * Every test needs an S3-compatible server and is skipped without one: run
 * them with tests/s3/with-s3rver.sh (ctest's s3_server_backend test does).
 * The offline tests and the public API are in test_s3.c; the helpers are in
 * s3/s3test.c.
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
 * built and links it, with s3/s3test.c, into this test; without it
 * test_s3.c holds the placeholder and this file compiles no test. */
#ifdef DCP_TEST_HAVE_S3
#include <cjson/cJSON.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <sys/wait.h>

#include "s3/s3_backend.h"
#include "s3/s3test.h"

#ifdef DCP_TEST_HAVE_LIBS3
#include <libs3.h>
#endif

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
