/*
 * One HTTP request to S3 on a libcurl easy handle taken from the backend's
 * pool. Handles go back to the pool after each request, so their open
 * connections are reused by the next request (curl_easy_reset keeps them).
 *
 * Signing: libcurl signs with AWS Signature V4 (CURLOPT_AWS_SIGV4). libcurl
 * 7.88 signs the path and query exactly as given, so the caller passes them
 * already in canonical form (keys and values percent-encoded, query keys
 * sorted, "k=" for empty values), and the x-amz-content-sha256 header is set
 * here explicitly: the hash of the empty body for requests without one,
 * UNSIGNED-PAYLOAD for bodies (allowed by S3; the layout checksums the data).
 *
 * Threads: any thread; the pool is guarded by b->pool_lock. The secret key is
 * passed to libcurl only as CURLOPT_PASSWORD and never logged
 * (CURLOPT_VERBOSE stays off).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3_internal.h"

#define EMPTY_SHA256   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ERROR_BODY_CAP ((size_t)64 << 10)
#define IO_BUFFER_SIZE (512L << 10)

void s3_resp_reset(s3_resp *r)
{
	char *body = r->body;
	size_t cap = r->body_cap;

	memset(r, 0, sizeof(*r));
	r->body = body;
	r->body_cap = cap;
	if (body != NULL)
		body[0] = '\0';
}

void s3_resp_free(s3_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static CURL *pool_get(s3_backend *b)
{
	CURL *h = NULL;

	pthread_mutex_lock(&b->pool_lock);
	if (b->npool > 0)
		h = b->pool[--b->npool];
	pthread_mutex_unlock(&b->pool_lock);
	if (h != NULL)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

static void pool_put(s3_backend *b, CURL *h)
{
	pthread_mutex_lock(&b->pool_lock);
	if (b->npool == b->cappool) {
		size_t cap = b->cappool ? b->cappool * 2 : 8;
		CURL_handle **p = realloc(b->pool, cap * sizeof(*p));
		if (p == NULL) {
			pthread_mutex_unlock(&b->pool_lock);
			curl_easy_cleanup(h);
			return;
		}
		b->pool = p;
		b->cappool = cap;
	}
	b->pool[b->npool++] = h;
	pthread_mutex_unlock(&b->pool_lock);
}

void s3_pool_clear(s3_backend *b)
{
	size_t i;

	for (i = 0; i < b->npool; i++)
		curl_easy_cleanup(b->pool[i]);
	free(b->pool);
	b->pool = NULL;
	b->npool = b->cappool = 0;
}

/* Per-transfer state of the callbacks. */
typedef struct xfer {
	const s3_req *req;
	s3_resp *resp;
	uint64_t sent;   /* upload cursor: bytes of the body sent */
	size_t seg;      /* with req->segs: the segment at the cursor */
	uint64_t inseg;  /* and the offset in it */
	size_t dseg;     /* with req->dsts: the destination at the download cursor */
	uint64_t indseg; /* and the offset in it */
	int oom;
} xfer;

/* Puts the download cursor at offset dsts_off of req->dsts. */
static void dst_start(xfer *x)
{
	const s3_req *q = x->req;
	uint64_t pos = q->dsts_off;

	if (q->dsts == NULL)
		return;
	for (x->dseg = 0; x->dseg < q->ndsts && pos >= q->dsts[x->dseg].len; x->dseg++)
		pos -= q->dsts[x->dseg].len;
	x->indseg = pos;
}

/* Stores k answer bytes at the download cursor (k <= what is left of the
 * range, which the caller checked). */
static void dst_store(xfer *x, const char *p, size_t k)
{
	const s3_req *q = x->req;

	x->resp->dst_got += k;
	if (q->dsts == NULL) {
		memcpy((char *)q->dst + x->resp->dst_got - k, p, k);
		return;
	}
	while (k > 0 && x->dseg < q->ndsts) {
		const dcp_backend_dst *d = &q->dsts[x->dseg];
		uint64_t avail = d->len - x->indseg;
		size_t m = k < avail ? k : (size_t)avail;
		if (d->data != NULL)
			memcpy((char *)d->data + x->indseg, p, m);
		p += m;
		k -= m;
		x->indseg += m;
		if (x->indseg == d->len) {
			x->dseg++;
			x->indseg = 0;
		}
	}
}

/* Puts the upload cursor at body offset pos (<= body_len). */
static void body_seek(xfer *x, uint64_t pos)
{
	const s3_req *q = x->req;

	x->sent = pos;
	if (q->segs == NULL)
		return;
	pos += q->segs_off;
	for (x->seg = 0; x->seg < q->nsegs && pos >= q->segs[x->seg].len; x->seg++)
		pos -= q->segs[x->seg].len;
	x->inseg = pos;
}

static int body_append(s3_resp *r, const char *data, size_t n, size_t cap, int *oom)
{
	if (r->body_len + n + 1 > r->body_cap) {
		size_t want = r->body_cap ? r->body_cap : 4096;
		char *nb;
		while (want < r->body_len + n + 1)
			want *= 2;
		nb = realloc(r->body, want);
		if (nb == NULL) {
			*oom = 1;
			return -1;
		}
		r->body = nb;
		r->body_cap = want;
	}
	if (r->body_len + n > cap)
		n = cap > r->body_len ? cap - r->body_len : 0; /* error bodies: keep the start only */
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	xfer *x = arg;
	s3_resp *r = x->resp;
	const s3_req *q = x->req;
	size_t n = size * nmemb;

	if (r->status >= 200 && r->status < 300 && (q->dst != NULL || q->dsts != NULL)) {
		size_t k = n;
		const char *p = data;
		if (r->skip > 0) { /* a 200 answer to a ranged GET: the whole object */
			size_t s = r->skip < k ? (size_t)r->skip : k;
			r->skip -= s;
			p += s;
			k -= s;
		}
		if (k > q->range_len - r->dst_got) {
			if (r->status == 200) {
				/* Whole object: we have our range; stop the transfer. */
				dst_store(x, p, (size_t)(q->range_len - r->dst_got));
				return 0;
			}
			r->dst_overflow = 1;
			return 0;
		}
		dst_store(x, p, k);
		return n;
	}
	if (r->status >= 200 && r->status < 300 && !q->want_body)
		return n; /* discarded */
	if (body_append(r, data, n, r->status >= 200 && r->status < 300 ? SIZE_MAX : ERROR_BODY_CAP,
	                &x->oom) != 0)
		return 0;
	return n;
}

/* Copies the body into libcurl's upload buffer: the one copy of the bytes
 * on their way out (from the caller's memory with segs). */
static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	xfer *x = arg;
	const s3_req *q = x->req;
	uint64_t left = q->body_len - x->sent;
	size_t n = size * nmemb, done = 0;

	if (n > left)
		n = (size_t)left;
	if (q->segs == NULL) {
		if (n > 0)
			memcpy(buf, (const char *)q->body + x->sent, n);
		x->sent += n;
		return n;
	}
	while (done < n && x->seg < q->nsegs) {
		const dcp_backend_iov *g = &q->segs[x->seg];
		uint64_t avail = g->len - x->inseg;
		size_t k = n - done < avail ? n - done : (size_t)avail;
		memcpy(buf + done, (const char *)g->data + x->inseg, k);
		done += k;
		x->inseg += k;
		if (x->inseg == g->len) {
			x->seg++;
			x->inseg = 0;
		}
	}
	x->sent += done;
	return done;
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
	xfer *x = arg;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->req->body_len)
		return CURL_SEEKFUNC_FAIL;
	body_seek(x, (uint64_t)offset);
	return CURL_SEEKFUNC_OK;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	xfer *x = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (x->req->cancel != NULL && atomic_load(x->req->cancel)) {
		x->resp->cancelled = 1;
		return 1;
	}
	return 0;
}

static void copy_value(char *dst, size_t len, const char *v, size_t n)
{
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= len)
		n = len - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int header_is(const char *h, size_t n, const char *name, const char **value, size_t *vlen)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp(h, name, k) != 0 || h[k] != ':')
		return 0;
	*value = h + k + 1;
	*vlen = n - k - 1;
	return 1;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	xfer *x = arg;
	s3_resp *r = x->resp;
	size_t n = size * nmemb;
	const char *v;
	size_t vn;
	char tmp[128];

	if (n > 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new status line (after a 100 Continue, too): start over. */
		const char *sp = memchr(data, ' ', n);
		r->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
		r->has_content_length = r->has_content_range = 0;
		r->etag[0] = r->request_id[0] = '\0';
		if (r->status == 200 && x->req->has_range)
			r->skip = x->req->range_off;
		return n;
	}
	if (header_is(data, n, "etag", &v, &vn))
		copy_value(r->etag, sizeof(r->etag), v, vn);
	else if (header_is(data, n, "x-amz-request-id", &v, &vn))
		copy_value(r->request_id, sizeof(r->request_id), v, vn);
	else if (header_is(data, n, "content-length", &v, &vn)) {
		copy_value(tmp, sizeof(tmp), v, vn);
		r->content_length = strtoull(tmp, NULL, 10);
		r->has_content_length = 1;
	} else if (header_is(data, n, "content-range", &v, &vn)) {
		const char *slash;
		copy_value(tmp, sizeof(tmp), v, vn);
		slash = strchr(tmp, '/');
		if (slash != NULL && slash[1] >= '0' && slash[1] <= '9') {
			r->range_total = strtoull(slash + 1, NULL, 10);
			r->has_content_range = 1;
		}
	}
	return n;
}

/* The request URL: base, encoded key, query. malloc'd. */
static char *request_url(const s3_backend *b, const s3_req *q)
{
	char *u = dcp_strdup(q->key != NULL ? b->base_url : b->bucket_url);

	if (u != NULL && q->key != NULL && s3_append_encoded(&u, q->key, 1) != 0)
		return NULL;
	if (u != NULL && q->query != NULL) {
		char *w = dcp_asprintf("%s?%s", u, q->query);
		free(u);
		u = w;
	}
	return u;
}

static struct curl_slist *add_header(struct curl_slist *l, const char *h, int *oom)
{
	struct curl_slist *n;

	if (*oom)
		return l;
	n = curl_slist_append(l, h);
	if (n == NULL) {
		*oom = 1;
		return l;
	}
	return n;
}

int s3_perform_once(s3_backend *b, const s3_req *req, s3_resp *resp)
{
	CURL *h;
	char *url;
	struct curl_slist *hdrs = NULL;
	char line[160];
	char errbuf[CURL_ERROR_SIZE];
	int oom = 0;
	xfer x;
	CURLcode cc;

	s3_resp_reset(resp);
	url = request_url(b, req);
	h = url != NULL ? pool_get(b) : NULL;
	if (h == NULL) {
		free(url);
		return DCP_ENOMEM;
	}
	memset(&x, 0, sizeof(x));
	x.req = req;
	x.resp = resp;
	body_seek(&x, 0);
	dst_start(&x);
	errbuf[0] = '\0';

	hdrs = add_header(hdrs,
	                  req->has_body ? "x-amz-content-sha256: UNSIGNED-PAYLOAD"
	                                : "x-amz-content-sha256: " EMPTY_SHA256,
	                  &oom);
	if (req->has_range) {
		snprintf(line, sizeof(line), "Range: bytes=%llu-%llu", (unsigned long long)req->range_off,
		         (unsigned long long)(req->range_off + req->range_len - 1));
		hdrs = add_header(hdrs, line, &oom);
	}
	/* No "Expect: 100-continue" (libcurl adds it to bodies over 1 MiB): it
	 * costs a round trip per request, and an S3 error answer ends the
	 * transfer early anyway. */
	if (req->has_body)
		hdrs = add_header(hdrs, "Expect:", &oom);
	if (req->content_type != NULL) {
		snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
		hdrs = add_header(hdrs, line, &oom);
	}
	if (b->cfg.session_token != NULL && b->cfg.access_key_id != NULL) {
		char *t = dcp_asprintf("x-amz-security-token: %s", b->cfg.session_token);
		if (t == NULL)
			oom = 1;
		else {
			hdrs = add_header(hdrs, t, &oom);
			explicit_bzero(t, strlen(t));
			free(t);
		}
	}
	if (oom) {
		curl_slist_free_all(hdrs);
		pool_put(b, h);
		free(url);
		return DCP_ENOMEM;
	}

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, b->cfg.connect_timeout_s);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, b->cfg.low_speed_time_s);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, b->cfg.verify_tls ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, b->cfg.verify_tls ? 2L : 0L);
	if (b->cfg.ca_bundle != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, b->cfg.ca_bundle);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, IO_BUFFER_SIZE);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, IO_BUFFER_SIZE);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "libdcp-s3/" DCP_VERSION_STRING);
	if (b->cfg.access_key_id != NULL && b->cfg.secret_access_key != NULL) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, b->sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, b->cfg.access_key_id);
		curl_easy_setopt(h, CURLOPT_PASSWORD, b->cfg.secret_access_key);
	}
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	if (req->cancel != NULL) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (req->has_body) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
		if (strcmp(req->method, "PUT") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	} else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	}

	cc = curl_easy_perform(h);
	atomic_fetch_add(&b->n_requests, 1);
	resp->curl_code = (int)cc;
	if (cc != CURLE_OK) {
		if (resp->dst_overflow)
			snprintf(resp->curl_err, sizeof(resp->curl_err),
			         "the answer has more bytes than the %llu asked for",
			         (unsigned long long)req->range_len);
		else
			snprintf(resp->curl_err, sizeof(resp->curl_err), "%s",
			         errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
		/* A 200 answer to a ranged GET stopped on purpose once the range was in. */
		if (cc == CURLE_WRITE_ERROR && !resp->dst_overflow && !x.oom &&
		    (req->dst != NULL || req->dsts != NULL) && resp->status == 200 &&
		    resp->dst_got == req->range_len) {
			resp->curl_code = CURLE_OK;
			resp->curl_err[0] = '\0';
		}
	} else {
		long code = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		resp->status = code;
	}
	if (req->has_body && resp->curl_code == CURLE_OK)
		atomic_fetch_add(&b->n_bytes_sent, req->body_len);
	if (req->dst != NULL || req->dsts != NULL)
		atomic_fetch_add(&b->n_bytes_received, resp->dst_got);
	/* Never leave a pointer to this stack frame's buffers in a pooled handle. */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	pool_put(b, h);
	curl_slist_free_all(hdrs);
	free(url);
	return x.oom ? DCP_ENOMEM : DCP_OK;
}
