/*
 * The dcp_backend slots over S3 (see s3_backend.h). Writers are in
 * s3_multipart.c; this file has reads, small whole-object operations,
 * listing, and opening / destroying a backend.
 */
#include <curl/curl.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_internal.h"

/* A read at least this many part sizes long (and at least the multipart
 * threshold) is split into parallel ranges. */
#define SPLIT_MIN_PARTS 2

void s3_stat_max(atomic_uint_fast64_t *slot, uint64_t v)
{
	uint64_t cur = atomic_load(slot);

	while (cur < v && !atomic_compare_exchange_weak(slot, &cur, v))
		;
}

static const char *backend_describe(dcp_backend *base, const char *path, char *buf, size_t len)
{
	s3_backend *b = (s3_backend *)base;

	if (len == 0)
		return buf;
	if (b->prefix[0] == '\0')
		snprintf(buf, len, "s3://%s/%s", b->bucket, path);
	else if (path[0] == '\0')
		snprintf(buf, len, "s3://%s/%s", b->bucket, b->prefix);
	else
		snprintf(buf, len, "s3://%s/%s/%s", b->bucket, b->prefix, path);
	return buf;
}

static int nomem(s3_backend *b, const char *what, const char *path, dcp_msg *msg)
{
	dcp_msgf(msg, "out of memory %s s3://%s/%s%s%s", what, b->bucket, b->prefix, b->prefix[0] ? "/" : "",
	         path);
	return DCP_ENOMEM;
}

/* The size of key for a message about a short object; 0 if unknown. */
static int head_size(s3_backend *b, const char *key, uint64_t *size, dcp_msg *msg)
{
	s3_req req = {0};
	s3_resp resp = {0};
	int rc;

	req.method = "HEAD";
	req.op = "HeadObject";
	req.key = key;
	rc = s3_execute(b, &req, NULL, &resp, msg);
	*size = resp.has_content_length ? resp.content_length : 0;
	s3_resp_free(&resp);
	return rc;
}

/* One ranged GET of exactly [off, off + len) of key into the concatenation
 * of dsts from its offset dsts_off. */
static int get_range(s3_backend *b, const char *key, uint64_t off, uint64_t len, const dcp_backend_dst *dsts,
                     size_t ndsts, uint64_t dsts_off, const atomic_int *cancel, dcp_msg *msg)
{
	static const long ok416[] = {416, 0};
	s3_req req = {0};
	s3_resp resp = {0};
	char where[DCP_S3_MAX_KEY + 80];
	int rc;

	req.method = "GET";
	req.op = "GetObject";
	req.key = key;
	req.has_range = 1;
	req.range_off = off;
	req.range_len = len;
	req.dsts = dsts;
	req.ndsts = ndsts;
	req.dsts_off = dsts_off;
	req.cancel = cancel;
	atomic_fetch_add(&b->n_ranged_gets, 1);
	rc = s3_execute(b, &req, ok416, &resp, msg);
	if (rc == DCP_OK && (resp.status == 416 || resp.dst_got < len)) {
		/* Shorter than the range: the object is smaller than the metadata says. */
		uint64_t size = resp.has_content_range ? resp.range_total : 0;
		dcp_msg hm;
		if (!resp.has_content_range && head_size(b, key, &size, &hm) != DCP_OK)
			size = 0;
		s3_describe_key(b, key, where, sizeof(where));
		if (resp.has_content_range || size > 0)
			dcp_msgf(msg, "%s is %llu bytes, expected at least %llu", where,
			         (unsigned long long)size, (unsigned long long)(off + len));
		else
			dcp_msgf(msg,
			         "%s is shorter than %llu bytes (a read of %llu bytes at offset %llu got "
			         "%llu)",
			         where, (unsigned long long)(off + len), (unsigned long long)len,
			         (unsigned long long)off, (unsigned long long)resp.dst_got);
		rc = DCP_ECORRUPT;
	}
	s3_resp_free(&resp);
	return rc;
}

/* Parallel ranges of one read. */
typedef struct range_job {
	s3_backend *b;
	const char *key;
	uint64_t off, len, piece;
	const dcp_backend_dst *dsts;
	size_t ndsts;
	int nranges;
	atomic_int next;
	atomic_int cancel;
	pthread_mutex_t lock;
	int status;
	dcp_msg msg;
} range_job;

static void *range_thread(void *arg)
{
	range_job *j = arg;
	dcp_msg m;

	while (!atomic_load(&j->cancel)) {
		int k = atomic_fetch_add(&j->next, 1);
		uint64_t o, l;
		int rc;
		if (k >= j->nranges)
			break;
		o = (uint64_t)k * j->piece;
		l = j->len - o < j->piece ? j->len - o : j->piece;
		m.text[0] = '\0';
		rc = get_range(j->b, j->key, j->off + o, l, j->dsts, j->ndsts, o, &j->cancel, &m);
		if (rc != DCP_OK) {
			pthread_mutex_lock(&j->lock);
			if (j->status == DCP_OK) {
				j->status = rc;
				j->msg = m;
			}
			pthread_mutex_unlock(&j->lock);
			atomic_store(&j->cancel, 1);
		}
	}
	return NULL;
}

static int read_parallel(s3_backend *b, const char *key, uint64_t off, uint64_t len,
                         const dcp_backend_dst *dsts, size_t ndsts, dcp_msg *msg)
{
	range_job j;
	pthread_t th[DCP_S3_MAX_CONCURRENCY];
	/* concurrency ranges, none below the part size: each request moves a
	 * lot, and every range is in flight at once. */
	uint64_t piece = (len + (uint64_t)b->cfg.concurrency - 1) / (uint64_t)b->cfg.concurrency;
	int nth, started = 0, i;

	memset(&j, 0, sizeof(j));
	j.b = b;
	j.key = key;
	j.off = off;
	j.len = len;
	j.dsts = dsts;
	j.ndsts = ndsts;
	if (piece < b->cfg.part_size)
		piece = b->cfg.part_size;
	j.piece = piece;
	j.nranges = (int)((len + piece - 1) / piece);
	j.status = DCP_OK;
	atomic_init(&j.next, 0);
	atomic_init(&j.cancel, 0);
	if (pthread_mutex_init(&j.lock, NULL) != 0)
		return get_range(b, key, off, len, dsts, ndsts, 0, NULL, msg);
	nth = b->cfg.concurrency < j.nranges ? b->cfg.concurrency : j.nranges;
	for (i = 0; i < nth - 1; i++) {
		if (pthread_create(&th[i], NULL, range_thread, &j) != 0)
			break;
		started++;
	}
	range_thread(&j); /* this thread takes ranges too */
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&j.lock);
	if (j.status != DCP_OK)
		*msg = j.msg;
	return j.status;
}

/* The read_iov slot; read is the case of one destination. A read of at
 * least SPLIT_MIN_PARTS part sizes and multipart_threshold bytes is split
 * into up to `concurrency` ranges of at least the part size, fetched in
 * parallel, each into its slice of the destinations. Smaller reads are one
 * GET: the layout reads several objects at once already, and a request
 * costs more than a few MiB on a busy store. */
static int backend_read_iov(dcp_backend *base, const char *path, uint64_t offset, const dcp_backend_dst *dst,
                            size_t n, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	uint64_t len = 0;
	size_t i;
	char *key;
	int rc;

	for (i = 0; i < n; i++) {
		if (dst[i].len > UINT64_MAX - len) {
			dcp_msgf(msg, "s3://%s/%s: the destinations of a read add up to more than 2^64 bytes",
			         b->bucket, path);
			return DCP_EINVAL;
		}
		len += dst[i].len;
	}
	if (len == 0)
		return DCP_OK;
	key = s3_full_key(b, path);
	if (key == NULL)
		return nomem(b, "reading", path, msg);
	if (b->cfg.concurrency > 1 && len >= SPLIT_MIN_PARTS * b->cfg.part_size &&
	    len >= b->cfg.multipart_threshold)
		rc = read_parallel(b, key, offset, len, dst, n, msg);
	else
		rc = get_range(b, key, offset, len, dst, n, 0, NULL, msg);
	free(key);
	return rc;
}

static int backend_read(dcp_backend *base, const char *path, uint64_t offset, uint64_t len, void *dst,
                        dcp_msg *msg)
{
	dcp_backend_dst d;

	d.data = dst;
	d.len = len;
	return backend_read_iov(base, path, offset, &d, 1, msg);
}

static int backend_get(dcp_backend *base, const char *path, void **data, uint64_t *len, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	s3_req req = {0};
	s3_resp resp = {0};
	char *key = s3_full_key(b, path);
	int rc;

	*data = NULL;
	*len = 0;
	if (key == NULL)
		return nomem(b, "reading", path, msg);
	req.method = "GET";
	req.op = "GetObject";
	req.key = key;
	req.want_body = 1;
	rc = s3_execute(b, &req, NULL, &resp, msg);
	if (rc == DCP_OK) {
		if (resp.body == NULL && (resp.body = malloc(1)) == NULL) {
			rc = nomem(b, "reading", path, msg);
		} else {
			*data = resp.body;
			*len = resp.body_len;
			resp.body = NULL;
		}
	}
	s3_resp_free(&resp);
	free(key);
	return rc;
}

static int put_object_atomic(dcp_backend *base, const char *path, const void *data, uint64_t len,
                             int create_only, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	s3_req req = {0};
	s3_resp resp = {0};
	char *key = s3_full_key(b, path);
	int rc;

	if (key == NULL)
		return nomem(b, "writing", path, msg);
	if (len > DCP_S3_MAX_PART_SIZE) {
		char where[DCP_S3_MAX_KEY + 80];
		dcp_msgf(msg, "%s: %llu bytes is more than one PUT can replace atomically (5 GiB)",
		         s3_describe_key(b, key, where, sizeof(where)), (unsigned long long)len);
		free(key);
		return DCP_EINVAL;
	}
	req.method = "PUT";
	req.op = "PutObject";
	req.key = key;
	req.has_body = 1;
	req.body = len > 0 ? data : "";
	req.body_len = len;
	req.content_type = "application/octet-stream";
	req.if_none_match = create_only ? "*" : NULL;
	rc = s3_execute(b, &req, NULL, &resp, msg);
	/* 412: the object exists; 409: a conditional write of the same key by
	 * another client is in progress (AWS). Either way another writer got
	 * there first. */
	if (rc != DCP_OK && create_only && (resp.status == 412 || resp.status == 409)) {
		char where[DCP_S3_MAX_KEY + 80];
		dcp_msgf(msg,
		         "%s already exists: another writer created it first (HTTP %ld to If-None-Match: *)",
		         s3_describe_key(b, key, where, sizeof(where)), resp.status);
		rc = DCP_EEXISTS;
	}
	if (rc == DCP_OK)
		atomic_fetch_add(&b->n_single_puts, 1);
	s3_resp_free(&resp);
	free(key);
	return rc;
}

static int backend_put_atomic(dcp_backend *base, const char *path, const void *data, uint64_t len,
                              dcp_msg *msg)
{
	return put_object_atomic(base, path, data, len, 0, msg);
}

static int backend_put_if_absent(dcp_backend *base, const char *path, const void *data, uint64_t len,
                                 dcp_msg *msg)
{
	return put_object_atomic(base, path, data, len, 1, msg);
}

static int backend_remove(dcp_backend *base, const char *path, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	static const long ok404[] = {404, 0};
	s3_req req = {0};
	s3_resp resp = {0};
	char *key = s3_full_key(b, path);
	char code[64], message[8];
	int rc;

	if (key == NULL)
		return nomem(b, "removing", path, msg);
	req.method = "DELETE";
	req.op = "DeleteObject";
	req.key = key;
	rc = s3_execute(b, &req, ok404, &resp, msg);
	/* A missing key is fine; a missing bucket is not. */
	if (rc == DCP_OK && resp.status == 404 &&
	    s3_xml_error(resp.body, resp.body_len, code, sizeof(code), message, sizeof(message)) &&
	    strcmp(code, "NoSuchKey") != 0)
		rc = s3_fail(b, &req, &resp, 1, msg);
	s3_resp_free(&resp);
	free(key);
	return rc;
}

/* DeleteObjects: up to 1,000 keys a request, quiet (the answer lists only
 * the keys that could not be removed). S3 requires Content-MD5 on it, which
 * s3_execute sends for small bodies. */
static int backend_remove_many(dcp_backend *base, const char *const *paths, size_t n, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	size_t i = 0;
	int rc = DCP_OK;

	while (i < n && rc == DCP_OK) {
		size_t end = n - i > 1000 ? i + 1000 : n, len = 0;
		char *body = NULL;
		int bad = s3_append(&body, &len, "<Delete><Quiet>true</Quiet>") != 0;
		s3_req req = {0};
		s3_resp resp = {0};
		char message[400];

		for (; i < end && !bad; i++) {
			char *key = s3_full_key(b, paths[i]);
			bad = key == NULL || s3_append(&body, &len, "<Object><Key>") != 0 ||
			      s3_xml_append_escaped(&body, &len, key) != 0 ||
			      s3_append(&body, &len, "</Key></Object>") != 0;
			free(key);
		}
		bad = bad || s3_append(&body, &len, "</Delete>") != 0;
		if (bad) {
			free(body);
			return nomem(b, "removing", paths[i < n ? i : n - 1], msg);
		}
		req.method = "POST";
		req.op = "DeleteObjects";
		req.query = "delete=";
		req.has_body = 1;
		req.body = body;
		req.body_len = len;
		req.content_type = "application/xml";
		req.want_body = 1;
		rc = s3_execute(b, &req, NULL, &resp, msg);
		if (rc == DCP_OK && s3_xml_text(resp.body, resp.body_len, "DeleteResult", "Error", message,
		                                sizeof(message))) {
			dcp_msgf(msg,
			         "DeleteObjects in s3://%s/%s: the store could not remove some of the %zu "
			         "objects (its "
			         "answer, HTTP %ld from %s, lists Error entries); remove them again, or with "
			         "dcp gc",
			         b->bucket, b->prefix, n, resp.status, b->endpoint_shown);
			rc = DCP_EIO;
		}
		s3_resp_free(&resp);
		free(body);
	}
	return rc;
}

/* HEAD of the bucket after a HEAD of an object answered 404: was it the
 * bucket that is missing? DCP_OK if the bucket exists, else the failure. */
static int check_bucket(s3_backend *b, dcp_msg *msg)
{
	s3_req req = {0};
	s3_resp resp = {0};
	int rc;

	if (atomic_load(&b->bucket_state) == 1)
		return DCP_OK;
	req.method = "HEAD";
	req.op = "HeadBucket";
	req.key = NULL;
	rc = s3_execute(b, &req, NULL, &resp, msg);
	if (rc == DCP_OK)
		atomic_store(&b->bucket_state, 1);
	else if (resp.status == 404)
		dcp_msgf(msg,
		         "bucket '%s' does not exist at %s (NoSuchBucket, HTTP 404 to HeadBucket): check the "
		         "bucket "
		         "name in the checkpoint id, or create the bucket",
		         b->bucket, b->endpoint_shown);
	s3_resp_free(&resp);
	return rc == DCP_ENOTFOUND ? DCP_EIO : rc;
}

static int backend_exists(dcp_backend *base, const char *path, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	static const long ok404[] = {404, 0};
	s3_req req = {0};
	s3_resp resp = {0};
	char *key = s3_full_key(b, path);
	int rc;

	if (key == NULL)
		return nomem(b, "looking up", path, msg);
	req.method = "HEAD";
	req.op = "HeadObject";
	req.key = key;
	rc = s3_execute(b, &req, ok404, &resp, msg);
	if (rc == DCP_OK && resp.status == 404) {
		rc = check_bucket(b, msg);
		if (rc == DCP_OK)
			rc = 0;
	} else if (rc == DCP_OK) {
		atomic_store(&b->bucket_state, 1);
		rc = 1;
	} else if (resp.status == 403 || resp.status == 400) {
		/* HEAD answers have no error body: a ranged GET of the same key
		 * brings S3's Code and Message for the message. */
		s3_req g = {0};
		s3_resp gr = {0};
		dcp_msg gm;
		char byte;
		g.method = "GET";
		g.op = "HeadObject";
		g.key = key;
		g.has_range = 1;
		g.range_off = 0;
		g.range_len = 1;
		g.dst = &byte;
		if (s3_perform_once(b, &g, &gr) == DCP_OK && gr.status == resp.status) {
			(void)s3_fail(b, &g, &gr, 1, &gm);
			*msg = gm;
		}
		s3_resp_free(&gr);
	}
	s3_resp_free(&resp);
	free(key);
	return rc;
}

typedef struct list_ctx {
	size_t strip;                                          /* bytes of "<prefix>/" to drop from keys */
	int (*fn)(const char *path, uint64_t size, void *arg); /* or: */
	int (*fn_stat)(const char *path, uint64_t size, int64_t mtime, void *arg); /* one is NULL */
	void *arg;
	int stopped; /* fn's nonzero return */
} list_ctx;

static int list_one(const char *key, uint64_t size, int64_t mtime, void *arg)
{
	list_ctx *c = arg;
	int rc;

	if (strlen(key) <= c->strip)
		return 0;
	rc = c->fn != NULL ? c->fn(key + c->strip, size, c->arg)
	                   : c->fn_stat(key + c->strip, size, mtime, c->arg);
	if (rc != 0)
		c->stopped = 1;
	return rc;
}

/* Appends s to the malloc'd string *q (may be NULL). 0, or -1 (freed). */
static int append_literal(char **q, const char *s)
{
	size_t n = *q != NULL ? strlen(*q) : 0;

	return s3_append(q, &n, s);
}

static int list_objects(dcp_backend *base, const char *prefix,
                        int (*fn)(const char *path, uint64_t size, void *arg),
                        int (*fn_stat)(const char *path, uint64_t size, int64_t mtime, void *arg), void *arg,
                        dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	char *full = b->prefix[0] != '\0' ? dcp_asprintf("%s/%s", b->prefix, prefix) : dcp_strdup(prefix);
	char *token = NULL;
	list_ctx ctx;
	int rc = DCP_OK;

	if (full == NULL)
		return nomem(b, "listing", prefix, msg);
	ctx.strip = b->prefix[0] != '\0' ? strlen(b->prefix) + 1 : 0;
	ctx.fn = fn;
	ctx.fn_stat = fn_stat;
	ctx.arg = arg;
	ctx.stopped = 0;
	do {
		s3_req req = {0};
		s3_resp resp = {0};
		char *query = NULL;
		int truncated = 0, bad = 0;
		char *next = NULL;

		/* Canonical order: continuation-token, list-type, prefix. */
		if (token != NULL)
			bad = append_literal(&query, "continuation-token=") != 0 ||
			      s3_append_encoded(&query, token, 0) != 0 || append_literal(&query, "&") != 0;
		bad = bad || append_literal(&query, "list-type=2&prefix=") != 0 ||
		      s3_append_encoded(&query, full, 0) != 0;
		if (bad) {
			free(query);
			rc = nomem(b, "listing", prefix, msg);
			break;
		}
		req.method = "GET";
		req.op = "ListObjectsV2";
		req.key = NULL;
		req.query = query;
		req.want_body = 1;
		rc = s3_execute(b, &req, NULL, &resp, msg);
		if (rc == DCP_OK) {
			rc = s3_xml_list(resp.body, resp.body_len, list_one, &ctx, &truncated, &next);
			if (ctx.stopped) {
				/* fn's value, as the contract says */
			} else if (rc == DCP_EIO) {
				dcp_msgf(msg,
				         "ListObjectsV2 s3://%s/%s: the answer (HTTP %ld from %s) is not a "
				         "ListBucketResult",
				         b->bucket, full, resp.status, b->endpoint_shown);
			} else if (rc == DCP_ENOMEM) {
				nomem(b, "listing", prefix, msg);
			} else if (truncated && next == NULL) {
				dcp_msgf(msg,
				         "ListObjectsV2 s3://%s/%s: the answer is truncated but has no "
				         "continuation token",
				         b->bucket, full);
				rc = DCP_EIO;
			}
		}
		s3_resp_free(&resp);
		free(query);
		free(token);
		token = truncated && rc == DCP_OK ? next : NULL;
		if (token == NULL)
			free(next);
	} while (rc == DCP_OK && token != NULL);
	free(token);
	free(full);
	return rc;
}

static int backend_list(dcp_backend *base, const char *prefix,
                        int (*fn)(const char *path, uint64_t size, void *arg), void *arg, dcp_msg *msg)
{
	return list_objects(base, prefix, fn, NULL, arg, msg);
}

static int backend_list_stat(dcp_backend *base, const char *prefix,
                             int (*fn)(const char *path, uint64_t size, int64_t mtime, void *arg), void *arg,
                             dcp_msg *msg)
{
	return list_objects(base, prefix, NULL, fn, arg, msg);
}

typedef struct uploads_ctx {
	size_t strip;
	int (*fn)(const char *path, const char *upload_id, int64_t initiated, void *arg);
	void *arg;
	int stopped;
} uploads_ctx;

static int upload_one(const char *key, const char *upload_id, int64_t initiated, void *arg)
{
	uploads_ctx *c = arg;
	int rc;

	if (strlen(key) <= c->strip)
		return 0;
	rc = c->fn(key + c->strip, upload_id, initiated, c->arg);
	if (rc != 0)
		c->stopped = 1;
	return rc;
}

/* ListMultipartUploads under the root, page by page (key-marker and
 * upload-id-marker). A store without it (s3rver: 501 NotImplemented) is
 * DCP_EUNSUPPORTED. */
static int backend_list_uploads(dcp_backend *base, const char *prefix,
                                int (*fn)(const char *path, const char *upload_id, int64_t initiated,
                                          void *arg),
                                void *arg, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	char *full = b->prefix[0] != '\0' ? dcp_asprintf("%s/%s", b->prefix, prefix) : dcp_strdup(prefix);
	char *key_marker = NULL, *id_marker = NULL;
	static const long ok[] = {501, 0};
	uploads_ctx ctx;
	int rc = DCP_OK;

	if (full == NULL)
		return nomem(b, "listing the uploads of", prefix, msg);
	ctx.strip = b->prefix[0] != '\0' ? strlen(b->prefix) + 1 : 0;
	ctx.fn = fn;
	ctx.arg = arg;
	ctx.stopped = 0;
	do {
		s3_req req = {0};
		s3_resp resp = {0};
		char *query = NULL, *nk = NULL, *nu = NULL;
		int truncated = 0, bad = 0;

		/* Canonical order: key-marker, prefix, upload-id-marker, uploads. */
		if (key_marker != NULL)
			bad = append_literal(&query, "key-marker=") != 0 ||
			      s3_append_encoded(&query, key_marker, 0) != 0 ||
			      append_literal(&query, "&") != 0;
		bad = bad || append_literal(&query, "prefix=") != 0 ||
		      s3_append_encoded(&query, full, 0) != 0;
		if (!bad && id_marker != NULL)
			bad = append_literal(&query, "&upload-id-marker=") != 0 ||
			      s3_append_encoded(&query, id_marker, 0) != 0;
		bad = bad || append_literal(&query, "&uploads=") != 0;
		if (bad) {
			free(query);
			rc = nomem(b, "listing the uploads of", prefix, msg);
			break;
		}
		req.method = "GET";
		req.op = "ListMultipartUploads";
		req.query = query;
		req.want_body = 1;
		rc = s3_execute(b, &req, ok, &resp, msg);
		if (rc == DCP_OK && resp.status == 501) {
			dcp_msgf(msg,
			         "the store at %s does not list multipart uploads (ListMultipartUploads "
			         "answered "
			         "HTTP 501): unfinished uploads under s3://%s/%s cannot be found; a bucket "
			         "lifecycle rule (AbortIncompleteMultipartUpload) removes them",
			         b->endpoint_shown, b->bucket, full);
			rc = DCP_EUNSUPPORTED;
		} else if (rc == DCP_OK) {
			rc = s3_xml_uploads(resp.body, resp.body_len, upload_one, &ctx, &truncated, &nk, &nu);
			if (ctx.stopped) {
				/* fn's value */
			} else if (rc == DCP_EIO) {
				dcp_msgf(msg,
				         "ListMultipartUploads s3://%s/%s: the answer (HTTP %ld from %s) is "
				         "not a "
				         "ListMultipartUploadsResult",
				         b->bucket, full, resp.status, b->endpoint_shown);
			} else if (rc == DCP_ENOMEM) {
				nomem(b, "listing the uploads of", prefix, msg);
			} else if (truncated && nk == NULL) {
				dcp_msgf(msg,
				         "ListMultipartUploads s3://%s/%s: the answer is truncated but has "
				         "no NextKeyMarker",
				         b->bucket, full);
				rc = DCP_EIO;
			}
		}
		s3_resp_free(&resp);
		free(query);
		free(key_marker);
		free(id_marker);
		key_marker = id_marker = NULL;
		if (rc == DCP_OK && truncated) {
			key_marker = nk;
			id_marker = nu;
		} else {
			free(nk);
			free(nu);
		}
	} while (rc == DCP_OK && key_marker != NULL);
	free(key_marker);
	free(id_marker);
	free(full);
	return rc;
}

static void backend_destroy(dcp_backend *base)
{
	s3_backend *b = (s3_backend *)base;

	if (b == NULL)
		return;
	s3_pool_clear(b);
	pthread_mutex_destroy(&b->pool_lock);
	dcp_s3_config_clear(&b->cfg);
	free(b->bucket);
	free(b->prefix);
	free(b->base_url);
	free(b->bucket_url);
	free(b->endpoint_shown);
	free(b);
}

static const dcp_backend_ops s3_ops = {
        .version = DCP_BACKEND_VERSION,
        .writer_open = s3_writer_open,
        .writer_append = s3_writer_append,
        .writer_close = s3_writer_close,
        .writer_abort = s3_writer_abort,
        .read = backend_read,
        .get = backend_get,
        .put_atomic = backend_put_atomic,
        .remove = backend_remove,
        .list = backend_list,
        .exists = backend_exists,
        .describe = backend_describe,
        .destroy = backend_destroy,
        .write_iov = s3_write_iov,
        .read_iov = backend_read_iov,
        .put_if_absent = backend_put_if_absent,
        .list_stat = backend_list_stat,
        .list_uploads = backend_list_uploads,
        .abort_upload = s3_abort_upload,
        .remove_many = backend_remove_many,
};

/* libcurl's and libxml2's global initialisation, once per process: neither
 * may run while another thread uses the library, so it is never repeated
 * per backend, and never undone (the process may still hold other handles;
 * the OS reclaims it at exit). */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_init_rc; /* written once under global_once, read after it */

static void global_init(void)
{
	global_init_rc = (int)curl_global_init(CURL_GLOBAL_DEFAULT);
	xmlInitParser();
}

/* Fills base_url and bucket_url from the endpoint and the addressing style. */
static int build_urls(s3_backend *b)
{
	const char *ep = b->cfg.endpoint;
	char *aws = NULL;
	int path_style = b->cfg.path_style;

	if (ep == NULL) {
		aws = dcp_asprintf("https://s3.%s.amazonaws.com", b->cfg.region);
		if (aws == NULL)
			return -1;
		ep = aws;
	}
	if (path_style < 0)
		path_style = b->cfg.endpoint != NULL || strchr(b->bucket, '.') != NULL;
	b->endpoint_shown = dcp_strdup(ep);
	if (path_style) {
		b->bucket_url = dcp_asprintf("%s/%s", ep, b->bucket);
		b->base_url = dcp_asprintf("%s/%s/", ep, b->bucket);
	} else {
		const char *host = strstr(ep, "://") + 3;
		b->bucket_url = dcp_asprintf("%.*s%s.%s/", (int)(host - ep), ep, b->bucket, host);
		b->base_url = b->bucket_url != NULL ? dcp_strdup(b->bucket_url) : NULL;
	}
	free(aws);
	return b->endpoint_shown != NULL && b->bucket_url != NULL && b->base_url != NULL ? 0 : -1;
}

int dcp_s3_backend_open(const dcp_s3_config *cfg, const char *bucket, const char *prefix, dcp_backend **out,
                        dcp_msg *msg)
{
	s3_backend *b;
	int rc;

	*out = NULL;
	rc = dcp_s3_bucket_check(bucket, NULL, msg);
	if (rc != DCP_OK)
		return rc;
	if (cfg->part_size < DCP_S3_MIN_PART_SIZE || cfg->part_size > DCP_S3_MAX_PART_SIZE ||
	    cfg->multipart_threshold < DCP_S3_MIN_PART_SIZE ||
	    cfg->multipart_threshold > DCP_S3_MAX_PART_SIZE || cfg->concurrency < 1 ||
	    cfg->concurrency > DCP_S3_MAX_CONCURRENCY || cfg->max_attempts < 1 || cfg->region == NULL) {
		dcp_msgf(msg,
		         "S3 configuration for bucket '%s' is out of range (part size %llu, multipart "
		         "threshold %llu, concurrency %d, attempts %d, region %s)",
		         bucket, (unsigned long long)cfg->part_size,
		         (unsigned long long)cfg->multipart_threshold, cfg->concurrency, cfg->max_attempts,
		         cfg->region != NULL ? cfg->region : "none");
		return DCP_EINVAL;
	}
	pthread_once(&global_once, global_init);
	if (global_init_rc != CURLE_OK) {
		dcp_msgf(msg, "libcurl could not be initialised (curl_global_init failed: %s)",
		         curl_easy_strerror((CURLcode)global_init_rc));
		return DCP_EIO;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL || pthread_mutex_init(&b->pool_lock, NULL) != 0) {
		free(b);
		dcp_msgf(msg, "out of memory opening bucket '%s'", bucket);
		return DCP_ENOMEM;
	}
	b->base.ops = &s3_ops;
	b->base.capabilities = DCP_CAP_ATOMIC_COMMIT | DCP_CAP_DURABLE | DCP_CAP_RANGED_READ;
	if (dcp_s3_config_copy(&b->cfg, cfg, msg) != DCP_OK) {
		dcp_s3_config_init(&b->cfg);
		backend_destroy(&b->base);
		return DCP_ENOMEM;
	}
	b->bucket = dcp_strdup(bucket);
	b->prefix = dcp_strdup(prefix != NULL ? prefix : "");
	if (b->bucket == NULL || b->prefix == NULL || build_urls(b) != 0) {
		backend_destroy(&b->base);
		dcp_msgf(msg, "out of memory opening bucket '%s'", bucket);
		return DCP_ENOMEM;
	}
	*out = &b->base;
	return DCP_OK;
}

void dcp_s3_backend_stats(dcp_backend *base, dcp_s3_stats *out)
{
	s3_backend *b = (s3_backend *)base;

	out->requests = atomic_load(&b->n_requests);
	out->retries = atomic_load(&b->n_retries);
	out->single_puts = atomic_load(&b->n_single_puts);
	out->multipart_uploads = atomic_load(&b->n_multipart);
	out->parts = atomic_load(&b->n_parts);
	out->max_parts_in_flight = atomic_load(&b->n_max_inflight);
	out->aborts = atomic_load(&b->n_aborts);
	out->aborts_unsupported = atomic_load(&b->n_aborts_unsupported);
	out->ranged_gets = atomic_load(&b->n_ranged_gets);
	out->bytes_sent = atomic_load(&b->n_bytes_sent);
	out->bytes_received = atomic_load(&b->n_bytes_received);
}
