/*
 * One HTTP request to S3 on a libcurl easy handle taken from the backend's
 * pool. Handles go back to the pool after each request, so their open
 * connections are reused by the next request (curl_easy_reset keeps them).
 *
 * Signing: AWS Signature V4, computed here (s3_sigv4.c) over the headers
 * that build_headers sends, whatever the libcurl version. The path and query
 * are signed exactly as sent, so callers pass them already in canonical form
 * (keys and values percent-encoded, query keys sorted, "k=" for empty
 * values). x-amz-content-sha256 is the hash of the body for bodies from
 * memory up to SIGNED_BODY_MAX, else UNSIGNED-PAYLOAD (allowed by S3); data
 * bodies carry Content-MD5, which the store checks.
 *
 * Threads: any thread; the pool is guarded by b->pool_lock. The secret key
 * never reaches libcurl (only the signature does) and is never logged
 * (CURLOPT_VERBOSE stays off).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "s3_internal.h"

#define EMPTY_SHA256   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ERROR_BODY_CAP ((size_t)64 << 10)
#define IO_BUFFER_SIZE (512L << 10)
/* Bodies from memory up to this size are signed with their SHA-256. */
#define SIGNED_BODY_MAX ((uint64_t)1 << 20)

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
		r->has_content_length = r->has_content_range = r->has_range_bounds = 0;
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
		unsigned long long first, last;
		copy_value(tmp, sizeof(tmp), v, vn);
		if (sscanf(tmp, "bytes %llu-%llu", &first, &last) == 2 && first <= last) {
			r->range_first = first;
			r->range_last = last;
			r->has_range_bounds = 1;
		}
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

/* The headers of one request: each is sent, and each one in `signed` is
 * also signed, from the same strings, so that SignedHeaders can never name
 * a header that the request does not carry. */
typedef struct req_headers {
	s3_header h[S3_MAX_SIGNED_HEADERS];
	size_t n;
	char host[300], date[20], sha[72], range[64], md5[32], type[128];
} req_headers;

static void sign_add(req_headers *rh, const char *name, const char *value)
{
	rh->h[rh->n].name = name;
	rh->h[rh->n].value = value;
	rh->n++;
}

/* Builds and signs the request's headers into *out (a curl list). url is the
 * request URL; its authority is the Host header, its path the canonical
 * URI. Returns 0, DCP_ENOMEM, or DCP_EINVAL for a URL without a host. */
static int build_headers(s3_backend *b, const s3_req *req, const char *url, s3_resp *resp,
                         struct curl_slist **out)
{
	req_headers rh;
	struct curl_slist *l = NULL;
	const char *auth = strstr(url, "://"), *path, *qmark;
	char line[400];
	char *token = NULL;
	int oom = 0;
	size_t i;
	time_t now = time(NULL);
	struct tm tm;

	memset(&rh, 0, sizeof(rh));
	*out = NULL;
	if (auth == NULL)
		return DCP_EINVAL;
	auth += 3;
	path = auth + strcspn(auth, "/?");
	if ((size_t)(path - auth) >= sizeof(rh.host) || path == auth)
		return DCP_EINVAL;
	memcpy(rh.host, auth, (size_t)(path - auth));
	qmark = strchr(path, '?');
	if (qmark == NULL)
		qmark = path + strlen(path);

	gmtime_r(&now, &tm);
	strftime(rh.date, sizeof(rh.date), "%Y%m%dT%H%M%SZ", &tm);
	sign_add(&rh, "host", rh.host);
	sign_add(&rh, "x-amz-date", rh.date);
	/* Small bodies from memory (CompleteMultipartUpload, DeleteObjects,
	 * the metadata) are signed with their hash; data bodies are covered by
	 * Content-MD5 instead of a second pass over them. */
	if (!req->has_body)
		snprintf(rh.sha, sizeof(rh.sha), "%s", EMPTY_SHA256);
	else if (req->segs == NULL && req->body_len <= SIGNED_BODY_MAX) {
		if (s3_sha256_hex(req->body, (size_t)req->body_len, rh.sha) != 0)
			return DCP_ENOMEM;
	} else
		snprintf(rh.sha, sizeof(rh.sha), "UNSIGNED-PAYLOAD");
	sign_add(&rh, "x-amz-content-sha256", rh.sha);
	if (req->has_range) {
		snprintf(rh.range, sizeof(rh.range), "bytes=%llu-%llu", (unsigned long long)req->range_off,
		         (unsigned long long)(req->range_off + req->range_len - 1));
		sign_add(&rh, "range", rh.range);
	}
	if (req->has_md5) {
		s3_base64(req->md5, 16, rh.md5);
		sign_add(&rh, "content-md5", rh.md5);
	}
	if (req->content_type != NULL) {
		snprintf(rh.type, sizeof(rh.type), "%s", req->content_type);
		sign_add(&rh, "content-type", rh.type);
	}
	if (req->if_none_match != NULL)
		sign_add(&rh, "if-none-match", req->if_none_match);
	if (b->cfg.session_token != NULL && b->cfg.access_key_id != NULL)
		sign_add(&rh, "x-amz-security-token", b->cfg.session_token);

	/* Sent as "Name: value" with the names in their usual case; the
	 * signature uses the lowercase names, as SigV4 requires. */
	for (i = 0; i < rh.n && !oom; i++) {
		static const char *const shown[][2] = {
		        {"host", "Host"},
		        {"range", "Range"},
		        {"content-md5", "Content-MD5"},
		        {"content-type", "Content-Type"},
		        {"if-none-match", "If-None-Match"},
		};
		const char *name = rh.h[i].name;
		size_t k;
		for (k = 0; k < sizeof(shown) / sizeof(shown[0]); k++)
			if (strcmp(shown[k][0], name) == 0)
				name = shown[k][1];
		if (strcmp(rh.h[i].name, "x-amz-security-token") == 0) {
			token = dcp_asprintf("%s: %s", name, rh.h[i].value);
			if (token == NULL)
				oom = 1;
			else {
				l = add_header(l, token, &oom);
				explicit_bzero(token, strlen(token));
				free(token);
			}
			continue;
		}
		snprintf(line, sizeof(line), "%s: %s", name, rh.h[i].value);
		l = add_header(l, line, &oom);
	}
	/* No "Expect: 100-continue" (libcurl adds it to bodies over 1 MiB): it
	 * costs a round trip per request, and an S3 error answer ends the
	 * transfer early anyway. Not signed: it is removed, not sent. */
	if (req->has_body)
		l = add_header(l, "Expect:", &oom);
	/* libcurl's own "Accept: * / *" is neither needed nor signed. */
	l = add_header(l, "Accept:", &oom);

	if (!oom && b->cfg.access_key_id != NULL && b->cfg.secret_access_key != NULL) {
		s3_sigv4_request sr = {0};
		s3_sigv4_result res;
		sr.method = req->method;
		sr.canonical_uri = path;
		sr.canonical_uri_len = (size_t)(qmark - path);
		sr.canonical_query = *qmark == '?' ? qmark + 1 : "";
		sr.headers = rh.h;
		sr.nheaders = rh.n;
		sr.payload_hash = rh.sha;
		sr.amz_date = rh.date;
		sr.region = b->cfg.region;
		sr.service = "s3";
		sr.access_key_id = b->cfg.access_key_id;
		sr.secret = b->cfg.secret_access_key;
		if (s3_sigv4_sign(&sr, &res) != 0)
			oom = 1;
		else {
			l = add_header(l, res.authorization, &oom);
			snprintf(resp->string_to_sign, sizeof(resp->string_to_sign), "%s",
			         res.string_to_sign);
			s3_sigv4_result_free(&res);
		}
	}
	if (oom) {
		curl_slist_free_all(l);
		return DCP_ENOMEM;
	}
	*out = l;
	return DCP_OK;
}

/* A 206 answer must carry exactly the range asked for: bytes of another part
 * of the object would be stored as if they were the wanted ones. */
static void check_content_range(const s3_req *req, s3_resp *resp)
{
	uint64_t last = req->range_off + req->range_len - 1;

	if (resp->status != 206 || !req->has_range)
		return;
	if (!resp->has_range_bounds || resp->range_first != req->range_off || resp->range_last > last ||
	    (resp->has_content_range && resp->range_last + 1 < resp->range_total &&
	     resp->range_last != last) ||
	    (resp->has_content_length && resp->content_length != resp->range_last - resp->range_first + 1))
		resp->range_mismatch = 1;
}

int s3_perform_once(s3_backend *b, const s3_req *req, s3_resp *resp)
{
	CURL *h;
	char *url;
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE];
	xfer x;
	CURLcode cc;
	int rc;

	s3_resp_reset(resp);
	url = request_url(b, req);
	if (url == NULL)
		return DCP_ENOMEM;
	rc = build_headers(b, req, url, resp, &hdrs);
	if (rc != DCP_OK) {
		free(url);
		return DCP_ENOMEM;
	}
	h = pool_get(b);
	if (h == NULL) {
		curl_slist_free_all(hdrs);
		free(url);
		return DCP_ENOMEM;
	}
	memset(&x, 0, sizeof(x));
	x.req = req;
	x.resp = resp;
	body_seek(&x, 0);
	dst_start(&x);
	errbuf[0] = '\0';

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
	if (resp->curl_code == CURLE_OK)
		check_content_range(req, resp);
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
