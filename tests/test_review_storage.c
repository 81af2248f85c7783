/*
 * Regression tests for defects found in a review of the storage side (layout,
 * posix / fs, mem, s3). Each test failed before its fix. Public API, dcp/sys
 * headers and the test support only.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcptest.h"

/* ------------------------------------------------------------------------ */
/* fs: a temporary file left by a crashed process blocks every later commit  */
/* ------------------------------------------------------------------------ */
/*
 * put_atomic named its temporary file "..metadata.tmp-<pid>-<seq>" with seq
 * counted from 0 in each new backend (every writer opens one) and created it
 * with O_EXCL. A process that crashed between creating it and the rename
 * leaves the file behind; a later process with the same pid (a container's
 * PID 1, say) then fails every commit at that location with EEXIST.
 */
Test(review_storage, fs_commit_survives_a_stale_temporary_file, .timeout = DT_TIMEOUT)
{
	char dir[512], url[DT_URL_MAX], tmp[1024];
	dt_layout *l = dt_layout_new();
	dt_outcome o;
	FILE *f;

	dt_mkdtemp(dir, sizeof(dir), "dcp-review-storage");
	dt_add_bytes(l, "step", 8, DT_RANK(0));
	dt_fmt(tmp, sizeof(tmp), "%s/..metadata.tmp-%ld-0", dir, (long)getpid());
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	fputs("left by a crash", f);
	fclose(f);

	dt_fmt(url, sizeof(url), "file://%s", dir);
	dt_save(l, 0, url, NULL, 1, &o);
	dt_assert_ok(&o, "save next to a stale temporary file");
	dt_outcome_clear(&o);
	dt_load(l, 0, url, NULL, 1, &o);
	dt_assert_ok(&o, "load");
	dt_outcome_clear(&o);

	dt_layout_free(l);
	dt_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* s3: secrets in a malformed endpoint must not reach a message              */
/* ------------------------------------------------------------------------ */
static int have_s3_plugin(void)
{
	dcp_plugin *p = NULL;
	dcp_error *err = NULL;
	int rc = dcp_registry_find(NULL, "s3://dcp-review/x", &p, &err);

	dcp_error_free(err);
	return rc == DCP_OK;
}

/* Validates an s3:// id for a save (no network) with the given endpoint in
 * $AWS_ENDPOINT_URL_S3 and returns the formatted error (caller frees). */
static char *endpoint_error(const char *endpoint)
{
	dcp_error *err = NULL;
	char *text;
	int rc;

	cr_assert_eq(setenv("AWS_ENDPOINT_URL_S3", endpoint, 1), 0);
	unsetenv("AWS_ENDPOINT_URL");
	rc = dcp_validate_checkpoint_id(NULL, "s3://dcp-review/ckpt", 1, &err);
	cr_assert_neq(rc, DCP_OK, "endpoint '%s' was accepted", endpoint);
	text = dt_error_text(err);
	dcp_error_free(err);
	return text;
}

Test(review_storage, s3_endpoint_password_not_in_messages, .timeout = DT_TIMEOUT)
{
	static const char *const bad[] = {
	        "http://:s3cr3tPW@127.0.0.1:9000", /* empty user: "no host name" */
	        "htps://user:s3cr3tPW@host:9000",  /* scheme typo: "not an http:// URL" */
	        "https://:s3cr3tPW@host",
	};
	size_t i;

	if (!have_s3_plugin())
		cr_skip_test("the s3 plugin is not built");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = endpoint_error(bad[i]);
		cr_expect_null(strstr(text, "s3cr3tPW"), "endpoint %zu leaked its password: %s", i, text);
		free(text);
	}
}

/* ------------------------------------------------------------------------ */
/* s3: CompleteMultipartUpload answered 200 with an <Error> after keep-alive */
/* whitespace                                                               */
/* ------------------------------------------------------------------------ */
/*
 * S3 answers a long CompleteMultipartUpload with 200 at once and sends the
 * outcome later; MinIO sends blanks to keep the connection alive before the
 * XML document, declaration included. libxml2 refuses an XML declaration
 * after blanks, so the <Error> went unseen and the failed upload counted as
 * written. A tiny fake S3 on a thread of the test answers every request.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

typedef struct fake_s3 {
	int lfd;
	int port;
	pthread_t th;
	int completes; /* CompleteMultipartUpload requests seen */
} fake_s3;

static void fs3_send(int fd, const char *status, const char *extra, const char *body)
{
	char head[512];
	size_t blen = body != NULL ? strlen(body) : 0;
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n", status, blen,
	                 extra != NULL ? extra : "");
	(void)!write(fd, head, (size_t)n);
	if (blen > 0)
		(void)!write(fd, body, blen);
}

static void fs3_serve(fake_s3 *s, int fd)
{
	static char buf[1 << 16];
	size_t used = 0, need;
	char *end, *cl, method[16] = "", target[1024] = "";
	unsigned long long clen = 0, got;
	ssize_t r;

	for (;;) {
		r = read(fd, buf + used, sizeof(buf) - 1 - used);
		if (r <= 0)
			return;
		used += (size_t)r;
		buf[used] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
		if (used == sizeof(buf) - 1)
			return;
	}
	sscanf(buf, "%15s %1023s", method, target);
	cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl != NULL && cl < end)
		clen = strtoull(cl + 17, NULL, 10);
	need = (size_t)(end + 4 - buf);
	got = used - need;
	while (got < clen) { /* drain the body */
		r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			return;
		got += (unsigned long long)r;
	}
	if (strcmp(method, "HEAD") == 0) {
		/* The bucket exists; .metadata does not; data objects do. */
		if (strstr(target, ".metadata") != NULL)
			fs3_send(fd, "404 Not Found", NULL, NULL);
		else
			fs3_send(fd, "200 OK", NULL, NULL);
	} else if (strcmp(method, "GET") == 0) {
		fs3_send(fd, "404 Not Found", "Content-Type: application/xml\r\n",
		         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
		         "<Message>The specified key does not exist.</Message></Error>");
	} else if (strcmp(method, "POST") == 0 && strstr(target, "uploads=") != NULL) {
		fs3_send(fd, "200 OK", "Content-Type: application/xml\r\n",
		         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>"
		         "<Bucket>dcp-review</Bucket><Key>k</Key><UploadId>UP1</UploadId>"
		         "</InitiateMultipartUploadResult>");
	} else if (strcmp(method, "POST") == 0 && strstr(target, "uploadId=") != NULL) {
		__atomic_add_fetch(&s->completes, 1, __ATOMIC_SEQ_CST);
		fs3_send(
		        fd, "200 OK", "Content-Type: application/xml\r\n",
		        "     \n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
		        "<Message>We encountered an internal error. Please try again.</Message></Error>");
	} else if (strcmp(method, "PUT") == 0) {
		fs3_send(fd, "200 OK", "ETag: \"0123456789abcdef\"\r\n", NULL);
	} else if (strcmp(method, "DELETE") == 0) {
		fs3_send(fd, "204 No Content", NULL, NULL);
	} else {
		fs3_send(fd, "400 Bad Request", NULL, NULL);
	}
}

static void *fs3_main(void *arg)
{
	fake_s3 *s = arg;

	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		fs3_serve(s, fd);
		close(fd);
	}
}

static void fs3_start(fake_s3 *s)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	memset(s, 0, sizeof(*s));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s->lfd, 0);
	cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(s->lfd, 64), 0);
	cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&s->th, NULL, fs3_main, s), 0);
}

static void fs3_stop(fake_s3 *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	close(s->lfd);
	pthread_join(s->th, NULL);
}

Test(review_storage, s3_complete_error_after_blanks_fails_the_write, .timeout = DT_TIMEOUT)
{
	char url[DT_URL_MAX];
	dt_layout *l;
	dt_outcome o;
	dt_expect e;
	fake_s3 s;

	if (!have_s3_plugin())
		cr_skip_test("the s3 plugin is not built");
	unsetenv("AWS_ENDPOINT_URL_S3");
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	fs3_start(&s);
	l = dt_layout_new();
	/* 6 MiB: above the 5 MiB threshold, so a multipart upload of 2 parts. */
	dt_add_bytes(l, "blob", (size_t)6 << 20, DT_RANK(0));
	dt_fmt(url, sizeof(url),
	       "s3://dcp-review/ckpt?endpoint=http://127.0.0.1:%d&multipart_threshold=5M&part_size=5M"
	       "&retries=0&threads=1",
	       s.port);
	dt_save(l, 0, url, NULL, 1, &o);
	memset(&e, 0, sizeof(e));
	e.any_ranks = 1;
	e.step = "write";
	e.mention = "InternalError";
	dt_assert_failed(&o, &e, "save whose CompleteMultipartUpload failed in a 200 answer");
	cr_expect_geq(__atomic_load_n(&s.completes, __ATOMIC_SEQ_CST), 1);
	dt_outcome_clear(&o);
	dt_layout_free(l);
	fs3_stop(&s);
}
