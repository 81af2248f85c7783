/*
 * The object writer: bytes appended are copied into part-size buffers. An
 * object that ends within the first buffer is written with one PUT at close.
 * Once more than a part size arrives, a multipart upload is created and full
 * buffers are handed to up to cfg.concurrency part threads of this writer;
 * the appending thread waits when every buffer (concurrency + 1 of them) is
 * in use, which bounds memory to (concurrency + 1) * part_size per object.
 * close uploads the last part and completes the upload with every part's
 * ETag; any failure (a part, the completion, or an abort by the caller)
 * cancels the parts in flight and sends AbortMultipartUpload. A server that
 * answers 405 or 501 to it (s3rver does) does not support abort: that is
 * reported in the message of the failure, without hiding it.
 *
 * write_iov (at the end) is the other way in, for callers whose bytes stay in
 * their buffers until the call returns (the layout): the object's size is
 * known, so it is one PUT up to cfg.multipart_threshold and a multipart
 * upload above, the body of each request read straight from the caller's
 * buffers, with the same abort on failure.
 *
 * Threads: append, close and abort come from one thread at a time (the
 * writer's owner); the part threads take buffers from the queue under lock.
 * write_iov may be called from any thread; its part threads live for the
 * call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_internal.h"

typedef struct s3_part {
	struct s3_part *next;
	char *buf; /* part_size bytes */
	uint64_t len;
	int number; /* 1..DCP_S3_MAX_PARTS */
} s3_part;

typedef struct s3_writer {
	dcp_backend_writer base; /* first */
	s3_backend *b;
	char *key;    /* full key */
	s3_part *cur; /* being filled; NULL before the first byte */

	/* The multipart upload, once started. */
	char *upload_id;
	int nparts;   /* parts handed out so far */
	char **etags; /* [DCP_S3_MAX_PARTS], by part number - 1 */
	pthread_t *threads;
	int nthreads;
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	int lock_ready;
	s3_part *queue, *queue_tail; /* full parts waiting for a thread */
	s3_part *spare;              /* free buffers */
	int nbuffers;                /* allocated buffers, at most concurrency + 1 */
	int in_flight;
	int closing; /* no more parts will come */
	int status;  /* first failure */
	int aborted; /* cancel_upload ran: nothing left to abort */
	dcp_msg fail;
	atomic_int cancel; /* set on the first failure or an abort */
} s3_writer;

static void part_free(s3_part *p)
{
	if (p != NULL) {
		free(p->buf);
		free(p);
	}
}

static s3_part *part_new(uint64_t size)
{
	s3_part *p = calloc(1, sizeof(*p));

	if (p != NULL && (p->buf = malloc(size)) == NULL) {
		free(p);
		p = NULL;
	}
	return p;
}

int s3_writer_open(dcp_backend *base, const char *path, dcp_backend_writer **out, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	s3_writer *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (w == NULL || (w->key = s3_full_key(b, path)) == NULL) {
		free(w);
		dcp_msgf(msg, "out of memory opening s3://%s/%s for writing", b->bucket, path);
		return DCP_ENOMEM;
	}
	w->base.backend = base;
	w->b = b;
	atomic_init(&w->cancel, 0);
	*out = &w->base;
	return DCP_OK;
}

/* Records the first failure and cancels the rest. Caller holds w->lock. */
static void fail_locked(s3_writer *w, int rc, const dcp_msg *m)
{
	if (w->status == DCP_OK) {
		w->status = rc;
		w->fail = *m;
	}
	atomic_store(&w->cancel, 1);
	pthread_cond_broadcast(&w->cond);
}

/*
 * UploadPart `number` of upload_id: req carries the body (body or segs), the
 * rest is filled here. *etag: malloc'd. cancel: as s3_req's.
 */
static int send_part(s3_backend *b, const char *key, const char *upload_id, int number, s3_req *req,
                     const atomic_int *cancel, char **etag, dcp_msg *msg)
{
	s3_resp resp = {0};
	char *query = dcp_asprintf("partNumber=%d&uploadId=", number);
	int rc;

	*etag = NULL;
	if (query == NULL || s3_append_encoded(&query, upload_id, 0) != 0) {
		free(query);
		dcp_msgf(msg, "out of memory uploading part %d of %s", number, key);
		return DCP_ENOMEM;
	}
	req->method = "PUT";
	req->op = "UploadPart";
	req->key = key;
	req->query = query;
	req->has_body = 1;
	req->cancel = cancel;
	rc = s3_execute(b, req, NULL, &resp, msg);
	if (rc == DCP_OK) {
		if (resp.etag[0] == '\0') {
			char where[DCP_S3_MAX_KEY + 80];
			dcp_msgf(msg, "UploadPart %d of %s: the answer (HTTP %ld from %s) has no ETag",
			         number, s3_describe_key(b, key, where, sizeof(where)), resp.status,
			         b->endpoint_shown);
			rc = DCP_EIO;
		} else if ((*etag = dcp_strdup(resp.etag)) == NULL) {
			dcp_msgf(msg, "out of memory uploading part %d of %s", number, key);
			rc = DCP_ENOMEM;
		} else {
			atomic_fetch_add(&b->n_parts, 1);
		}
	}
	s3_resp_free(&resp);
	free(query);
	req->query = NULL;
	return rc;
}

static int upload_part(s3_writer *w, s3_part *p, dcp_msg *msg)
{
	s3_req req = {0};

	req.body = p->buf;
	req.body_len = p->len;
	return send_part(w->b, w->key, w->upload_id, p->number, &req, &w->cancel, &w->etags[p->number - 1],
	                 msg);
}

static void *part_thread(void *arg)
{
	s3_writer *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		s3_part *p;
		dcp_msg m;
		int rc;
		while (w->queue == NULL && !w->closing && w->status == DCP_OK)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->status != DCP_OK || w->queue == NULL)
			break;
		p = w->queue;
		w->queue = p->next;
		if (w->queue == NULL)
			w->queue_tail = NULL;
		w->in_flight++;
		s3_stat_max(&w->b->n_max_inflight, (uint64_t)w->in_flight);
		pthread_mutex_unlock(&w->lock);

		m.text[0] = '\0';
		rc = upload_part(w, p, &m);

		pthread_mutex_lock(&w->lock);
		w->in_flight--;
		p->next = w->spare;
		w->spare = p;
		if (rc != DCP_OK)
			fail_locked(w, rc, &m);
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* CreateMultipartUpload of key: *upload_id malloc'd. */
static int create_upload(s3_backend *b, const char *key, char **upload_id, dcp_msg *msg)
{
	s3_req req = {0};
	s3_resp resp = {0};
	char where[DCP_S3_MAX_KEY + 80];
	int rc;

	req.method = "POST";
	req.op = "CreateMultipartUpload";
	req.key = key;
	req.query = "uploads=";
	req.has_body = 1;
	req.body = "";
	req.body_len = 0;
	req.content_type = "application/octet-stream";
	req.want_body = 1;
	rc = s3_execute(b, &req, NULL, &resp, msg);
	if (rc == DCP_OK) {
		rc = s3_xml_upload_id(resp.body, resp.body_len, upload_id);
		if (rc == DCP_EIO)
			dcp_msgf(msg,
			         "CreateMultipartUpload %s: the answer (HTTP %ld from %s) has no UploadId",
			         s3_describe_key(b, key, where, sizeof(where)), resp.status,
			         b->endpoint_shown);
		else if (rc == DCP_ENOMEM)
			dcp_msgf(msg, "out of memory starting a multipart upload of %s", key);
	}
	s3_resp_free(&resp);
	if (rc == DCP_OK)
		atomic_fetch_add(&b->n_multipart, 1);
	return rc;
}

/* CreateMultipartUpload and the part threads. */
static int start_upload(s3_writer *w, dcp_msg *msg)
{
	s3_backend *b = w->b;
	int rc, i;

	rc = create_upload(b, w->key, &w->upload_id, msg);
	if (rc != DCP_OK)
		return rc;
	w->etags = calloc(DCP_S3_MAX_PARTS, sizeof(*w->etags));
	w->threads = calloc((size_t)b->cfg.concurrency, sizeof(*w->threads));
	if (w->etags == NULL || w->threads == NULL || pthread_mutex_init(&w->lock, NULL) != 0) {
		dcp_msgf(msg, "out of memory starting a multipart upload of %s", w->key);
		return DCP_ENOMEM;
	}
	if (pthread_cond_init(&w->cond, NULL) != 0) {
		pthread_mutex_destroy(&w->lock);
		dcp_msgf(msg, "cannot create a condition variable for the multipart upload of %s", w->key);
		return DCP_ENOMEM;
	}
	w->lock_ready = 1;
	w->status = DCP_OK;
	w->nbuffers = 1; /* w->cur */
	for (i = 0; i < b->cfg.concurrency; i++) {
		if (pthread_create(&w->threads[i], NULL, part_thread, w) != 0)
			break;
		w->nthreads++;
	}
	if (w->nthreads == 0) {
		dcp_msgf(msg, "cannot start a thread to upload the parts of %s", w->key);
		return DCP_EIO;
	}
	return DCP_OK;
}

/* Hands w->cur to the part threads and gets an empty buffer (waiting for
 * one when all are in use). */
static int submit_part(s3_writer *w, dcp_msg *msg)
{
	s3_backend *b = w->b;
	s3_part *p = w->cur;
	int rc = DCP_OK;

	if (w->nparts >= DCP_S3_MAX_PARTS) {
		char where[DCP_S3_MAX_KEY + 80];
		dcp_msgf(msg,
		         "%s needs more than %d parts of %llu bytes (S3's limit): raise the part size, e.g. "
		         "?part_size=%lluM",
		         s3_describe_key(b, w->key, where, sizeof(where)), DCP_S3_MAX_PARTS,
		         (unsigned long long)b->cfg.part_size, (unsigned long long)(b->cfg.part_size >> 19));
		return DCP_EINVAL;
	}
	p->number = ++w->nparts;
	p->next = NULL;
	w->cur = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->queue_tail != NULL)
		w->queue_tail->next = p;
	else
		w->queue = p;
	w->queue_tail = p;
	pthread_cond_broadcast(&w->cond);
	while (w->status == DCP_OK && w->spare == NULL && w->nbuffers >= b->cfg.concurrency + 1)
		pthread_cond_wait(&w->cond, &w->lock);
	if (w->status != DCP_OK) {
		rc = w->status;
		*msg = w->fail;
	} else if (w->spare != NULL) {
		w->cur = w->spare;
		w->spare = w->cur->next;
	}
	pthread_mutex_unlock(&w->lock);
	if (rc == DCP_OK && w->cur == NULL) {
		w->cur = part_new(b->cfg.part_size);
		if (w->cur == NULL) {
			dcp_msgf(msg, "out of memory for a %llu-byte part buffer of %s",
			         (unsigned long long)b->cfg.part_size, w->key);
			return DCP_ENOMEM;
		}
		pthread_mutex_lock(&w->lock);
		w->nbuffers++;
		pthread_mutex_unlock(&w->lock);
	}
	if (rc == DCP_OK)
		w->cur->len = 0;
	return rc;
}

static void cancel_upload(s3_writer *w, dcp_msg *msg);

int s3_writer_append(dcp_backend_writer *base, const void *data, uint64_t len, dcp_msg *msg)
{
	s3_writer *w = (s3_writer *)base;
	uint64_t ps = w->b->cfg.part_size;
	const char *src = data;
	int rc;

	while (len > 0) {
		uint64_t room, k;
		if (w->cur == NULL) {
			w->cur = part_new(ps);
			if (w->cur == NULL) {
				dcp_msgf(msg, "out of memory for a %llu-byte part buffer of %s",
				         (unsigned long long)ps, w->key);
				return DCP_ENOMEM;
			}
		}
		if (w->cur->len == ps) {
			/* More bytes after a full buffer: this object is multipart. */
			rc = w->upload_id == NULL ? start_upload(w, msg) : DCP_OK;
			if (rc == DCP_OK)
				rc = submit_part(w, msg);
			if (rc != DCP_OK) {
				/* Abort now, so that msg says what became of the upload. */
				cancel_upload(w, msg);
				return rc;
			}
		}
		room = ps - w->cur->len;
		k = len < room ? len : room;
		memcpy(w->cur->buf + w->cur->len, src, k);
		w->cur->len += k;
		src += k;
		len -= k;
	}
	return DCP_OK;
}

/* Stops the part threads (after the queue drains, unless cancelled). */
static void join_parts(s3_writer *w)
{
	int i;

	if (!w->lock_ready)
		return;
	pthread_mutex_lock(&w->lock);
	w->closing = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	w->nthreads = 0;
}

/*
 * AbortMultipartUpload. DCP_OK when aborted (or already gone),
 * DCP_EUNSUPPORTED when the server answers 405/501, else the failure; msg
 * says which.
 */
static int abort_key(s3_backend *b, const char *key, const char *upload_id, dcp_msg *msg)
{
	s3_req req = {0};
	s3_resp resp = {0};
	static const long ok[] = {404, 405, 501, 0};
	char *query = dcp_strdup("uploadId=");
	int rc;

	if (query == NULL || s3_append_encoded(&query, upload_id, 0) != 0) {
		dcp_msgf(msg, "out of memory aborting the multipart upload of %s", key);
		return DCP_ENOMEM;
	}
	req.method = "DELETE";
	req.op = "AbortMultipartUpload";
	req.key = key;
	req.query = query;
	atomic_fetch_add(&b->n_aborts, 1);
	rc = s3_execute(b, &req, ok, &resp, msg);
	if (rc == DCP_OK && (resp.status == 405 || resp.status == 501)) {
		atomic_fetch_add(&b->n_aborts_unsupported, 1);
		dcp_msgf(msg,
		         "the store at %s does not support AbortMultipartUpload (HTTP %ld): the uploaded "
		         "parts stay "
		         "until a lifecycle rule removes them",
		         b->endpoint_shown, resp.status);
		rc = DCP_EUNSUPPORTED;
	}
	s3_resp_free(&resp);
	free(query);
	return rc;
}

int s3_abort_upload(dcp_backend *base, const char *path, const char *upload_id, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	char *key = s3_full_key(b, path);
	int rc;

	if (key == NULL) {
		dcp_msgf(msg, "out of memory aborting the multipart upload of %s", path);
		return DCP_ENOMEM;
	}
	rc = abort_key(b, key, upload_id, msg);
	free(key);
	return rc;
}

/* Aborts upload_id of key and appends what became of it to msg (when msg is
 * not NULL): nothing if it was aborted, else why not. */
static void abort_and_tell(s3_backend *b, const char *key, const char *upload_id, dcp_msg *msg)
{
	dcp_msg am;
	int rc;

	am.text[0] = '\0';
	rc = abort_key(b, key, upload_id, &am);
	if (msg != NULL && rc == DCP_EUNSUPPORTED) {
		size_t n = strlen(msg->text);
		snprintf(msg->text + n, sizeof(msg->text) - n, "; %s", am.text);
	} else if (msg != NULL && rc != DCP_OK) {
		size_t n = strlen(msg->text);
		snprintf(msg->text + n, sizeof(msg->text) - n,
		         "; aborting the multipart upload failed too: %s", am.text);
	}
}

/* Cancels, joins and aborts the upload; appends what happened to the abort
 * to msg (when msg is not NULL). */
static void cancel_upload(s3_writer *w, dcp_msg *msg)
{
	atomic_store(&w->cancel, 1);
	join_parts(w);
	if (w->upload_id == NULL || w->aborted)
		return;
	w->aborted = 1;
	abort_and_tell(w->b, w->key, w->upload_id, msg);
}

static void writer_free(s3_writer *w)
{
	s3_part *p, *next;
	int i;

	part_free(w->cur);
	for (p = w->queue; p != NULL; p = next) {
		next = p->next;
		part_free(p);
	}
	for (p = w->spare; p != NULL; p = next) {
		next = p->next;
		part_free(p);
	}
	if (w->etags != NULL)
		for (i = 0; i < w->nparts && i < DCP_S3_MAX_PARTS; i++)
			free(w->etags[i]);
	free(w->etags);
	free(w->threads);
	if (w->lock_ready) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
	}
	free(w->upload_id);
	free(w->key);
	free(w);
}

/* PutObject of key; req carries the body (body or segs), the rest is filled
 * here. */
static int put_object(s3_backend *b, const char *key, s3_req *req, const atomic_int *cancel, dcp_msg *msg)
{
	s3_resp resp = {0};
	int rc;

	req->method = "PUT";
	req->op = "PutObject";
	req->key = key;
	req->has_body = 1;
	req->content_type = "application/octet-stream";
	req->cancel = cancel;
	rc = s3_execute(b, req, NULL, &resp, msg);
	if (rc == DCP_OK)
		atomic_fetch_add(&b->n_single_puts, 1);
	s3_resp_free(&resp);
	return rc;
}

static int put_single(s3_writer *w, dcp_msg *msg)
{
	s3_req req = {0};

	req.body = w->cur != NULL ? w->cur->buf : "";
	req.body_len = w->cur != NULL ? w->cur->len : 0;
	return put_object(w->b, w->key, &req, NULL, msg);
}

/* The 16 bytes of a "<32 hex>" ETag (quotes allowed). 0, or -1 if it has
 * another form. */
static int etag_md5(const char *e, unsigned char out[16])
{
	size_t n, i;

	if (*e == '"')
		e++;
	n = strcspn(e, "\"");
	if (n != 32)
		return -1;
	for (i = 0; i < 32; i++) {
		int c = e[i], v = c >= '0' && c <= '9'   ? c - '0'
		                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
		                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                                         : -1;
		if (v < 0)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)(v << 4);
		else
			out[i / 2] |= (unsigned char)v;
	}
	return 0;
}

/*
 * The ETag of a completed multipart upload is, by S3's convention,
 * "<MD5 of the concatenated MD5s of the parts>-<number of parts>". Each
 * part's ETag was already checked against the MD5 of its bytes
 * (s3_execute), so this checks that the store assembled exactly those parts
 * in that order. Stores that do not follow the convention (no "-N", s3rver)
 * or whose part ETags are no MD5s (SSE-KMS) are not compared.
 */
static int check_multipart_etag(s3_backend *b, const char *key, char *const *etags, int nparts,
                                const s3_resp *resp, dcp_msg *msg)
{
	char etag[160], want[33], where[DCP_S3_MAX_KEY + 80];
	unsigned char(*md5s)[16], final[16], got[16];
	const char *dash;
	int i, ok = 1;

	if (!s3_xml_text(resp->body, resp->body_len, "CompleteMultipartUploadResult", "ETag", etag,
	                 sizeof(etag)))
		return DCP_OK;
	dash = strrchr(etag, '-');
	if (dash == NULL)
		return DCP_OK;
	md5s = malloc((size_t)nparts * sizeof(*md5s));
	if (md5s == NULL) {
		dcp_msgf(msg, "out of memory checking the ETag of the multipart upload of %s", key);
		return DCP_ENOMEM;
	}
	for (i = 0; i < nparts && ok; i++)
		ok = etag_md5(etags[i], md5s[i]) == 0;
	if (!ok) {
		free(md5s);
		return DCP_OK;
	}
	ok = s3_md5_of_md5s((const unsigned char(*)[16])md5s, (size_t)nparts, final) == 0;
	free(md5s);
	{
		char hexpart[40];
		size_t hl = (size_t)(dash - etag) - (etag[0] == '"');
		snprintf(hexpart, sizeof(hexpart), "%.*s", (int)(hl < 39 ? hl : 39), etag + (etag[0] == '"'));
		if (ok && etag_md5(hexpart, got) == 0 && memcmp(got, final, 16) == 0 &&
		    strtol(dash + 1, NULL, 10) == nparts)
			return DCP_OK;
	}
	s3_hex(final, 16, want);
	dcp_msgf(msg,
	         "CompleteMultipartUpload %s: the store answered ETag %s, but the %d parts sent make "
	         "\"%s-%d\": the object it assembled is not the one uploaded (HTTP %ld from %s); set "
	         "verify_etag=0 only if this store computes multipart ETags another way",
	         s3_describe_key(b, key, where, sizeof(where)), etag, nparts, want, nparts, resp->status,
	         b->endpoint_shown);
	return DCP_EIO;
}

/* CompleteMultipartUpload of upload_id with parts 1..nparts. */
static int complete_key(s3_backend *b, const char *key, const char *upload_id, char *const *etags, int nparts,
                        dcp_msg *msg)
{
	s3_req req = {0};
	s3_resp resp = {0};
	char *body = NULL, *query = dcp_strdup("uploadId=");
	size_t len = 0;
	char num[48], code[96], message[400], where[DCP_S3_MAX_KEY + 80];
	int i, rc, bad = query == NULL || s3_append_encoded(&query, upload_id, 0) != 0;

	bad = bad || s3_append(&body, &len, "<CompleteMultipartUpload>") != 0;
	for (i = 0; i < nparts && !bad; i++) {
		snprintf(num, sizeof(num), "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
		bad = s3_append(&body, &len, num) != 0 || s3_xml_append_escaped(&body, &len, etags[i]) != 0 ||
		      s3_append(&body, &len, "</ETag></Part>") != 0;
	}
	bad = bad || s3_append(&body, &len, "</CompleteMultipartUpload>") != 0;
	if (bad) {
		free(body);
		free(query);
		dcp_msgf(msg, "out of memory completing the multipart upload of %s", key);
		return DCP_ENOMEM;
	}
	req.method = "POST";
	req.op = "CompleteMultipartUpload";
	req.key = key;
	req.query = query;
	req.has_body = 1;
	req.body = body;
	req.body_len = len;
	req.content_type = "application/xml";
	req.want_body = 1;
	rc = s3_execute(b, &req, NULL, &resp, msg);
	/* S3 may answer 200 and still fail: the error is in the body. */
	if (rc == DCP_OK &&
	    s3_xml_error(resp.body, resp.body_len, code, sizeof(code), message, sizeof(message))) {
		dcp_msgf(msg, "CompleteMultipartUpload %s failed: %s: %s (HTTP %ld from %s)",
		         s3_describe_key(b, key, where, sizeof(where)), code, message, resp.status,
		         b->endpoint_shown);
		rc = DCP_EIO;
	}
	if (rc == DCP_OK && b->cfg.verify_etag)
		rc = check_multipart_etag(b, key, etags, nparts, &resp, msg);
	s3_resp_free(&resp);
	free(body);
	free(query);
	return rc;
}

static int complete_upload(s3_writer *w, dcp_msg *msg)
{
	return complete_key(w->b, w->key, w->upload_id, w->etags, w->nparts, msg);
}

int s3_writer_close(dcp_backend_writer *base, dcp_msg *msg)
{
	s3_writer *w = (s3_writer *)base;
	int rc;

	if (w->upload_id == NULL) {
		rc = put_single(w, msg);
		writer_free(w);
		return rc;
	}
	if (w->aborted) {
		dcp_msgf(msg, "the multipart upload of %s failed and was aborted by an earlier append",
		         w->key);
		writer_free(w);
		return DCP_EIO;
	}
	rc = DCP_OK;
	if (w->cur != NULL && w->cur->len > 0)
		rc = submit_part(w, msg);
	if (rc == DCP_OK) {
		join_parts(w);
		pthread_mutex_lock(&w->lock);
		if (w->status != DCP_OK) {
			rc = w->status;
			*msg = w->fail;
		}
		pthread_mutex_unlock(&w->lock);
	}
	if (rc == DCP_OK)
		rc = complete_upload(w, msg);
	if (rc != DCP_OK)
		cancel_upload(w, msg);
	writer_free(w);
	return rc;
}

void s3_writer_abort(dcp_backend_writer *base)
{
	s3_writer *w = (s3_writer *)base;

	if (w == NULL)
		return;
	if (w->upload_id != NULL)
		cancel_upload(w, NULL);
	writer_free(w);
}

/* ------------------------------------------------------------------------ */
/* write_iov: the object's size is known and its bytes stay in the caller's  */
/* buffers until the call returns, so they are sent from there: one PUT, or */
/* parts that are slices of the buffers, with no part buffers and no copy.  */
/* ------------------------------------------------------------------------ */

typedef struct iov_upload {
	s3_backend *b;
	char *key;       /* owned */
	char *upload_id; /* owned */
	const dcp_backend_iov *iov;
	size_t n;
	uint64_t total, part_size;
	int nparts;
	char **etags;           /* [nparts] */
	atomic_int next;        /* next part index to send */
	atomic_int in_flight;   /* parts being sent */
	atomic_int cancel;      /* set on the first failure */
	const atomic_int *stop; /* the caller's; may be NULL */
	pthread_mutex_t lock;   /* guards status and msg */
	int status;
	dcp_msg msg;
} iov_upload;

static void iov_fail(iov_upload *u, int rc, const dcp_msg *m)
{
	pthread_mutex_lock(&u->lock);
	if (u->status == DCP_OK) {
		u->status = rc;
		u->msg = *m;
	}
	pthread_mutex_unlock(&u->lock);
	atomic_store(&u->cancel, 1);
}

/* Runs on up to cfg.concurrency threads (the caller's among them): sends
 * parts until none is left or one failed. */
static void *iov_part_thread(void *arg)
{
	iov_upload *u = arg;
	dcp_msg m;

	while (!atomic_load(&u->cancel)) {
		s3_req req = {0};
		uint64_t off;
		int k, rc;
		if (u->stop != NULL && atomic_load(u->stop)) {
			dcp_msgf(&m, "the upload of %s stopped because another object of the save failed",
			         u->key);
			iov_fail(u, DCP_EPEER, &m);
			break;
		}
		k = atomic_fetch_add(&u->next, 1);
		if (k >= u->nparts)
			break;
		off = (uint64_t)k * u->part_size;
		req.segs = u->iov;
		req.nsegs = u->n;
		req.segs_off = off;
		req.body_len = u->total - off < u->part_size ? u->total - off : u->part_size;
		s3_stat_max(&u->b->n_max_inflight, (uint64_t)atomic_fetch_add(&u->in_flight, 1) + 1);
		m.text[0] = '\0';
		rc = send_part(u->b, u->key, u->upload_id, k + 1, &req, &u->cancel, &u->etags[k], &m);
		atomic_fetch_sub(&u->in_flight, 1);
		if (rc != DCP_OK)
			iov_fail(u, rc, &m);
	}
	return NULL;
}

/* The parts of u (upload created), then completion or abort. */
static int iov_multipart(iov_upload *u, dcp_msg *msg)
{
	s3_backend *b = u->b;
	pthread_t th[DCP_S3_MAX_CONCURRENCY];
	int nth = b->cfg.concurrency < u->nparts ? b->cfg.concurrency : u->nparts, started = 0, i, rc;

	for (i = 0; i < nth - 1; i++) {
		if (pthread_create(&th[i], NULL, iov_part_thread, u) != 0)
			break; /* fewer threads: the ones running take every part */
		started++;
	}
	(void)iov_part_thread(u);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	rc = u->status;
	if (rc == DCP_OK)
		rc = complete_key(b, u->key, u->upload_id, u->etags, u->nparts, msg);
	else
		*msg = u->msg;
	if (rc != DCP_OK)
		abort_and_tell(b, u->key, u->upload_id, msg);
	return rc;
}

int s3_write_iov(dcp_backend *base, const char *path, const dcp_backend_iov *iov, size_t n,
                 const atomic_int *stop, dcp_msg *msg)
{
	s3_backend *b = (s3_backend *)base;
	char where[DCP_S3_MAX_KEY + 80];
	iov_upload u;
	uint64_t total = 0, ps = b->cfg.part_size;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (iov[i].len > UINT64_MAX - total) {
			dcp_msgf(msg, "s3://%s/%s: the buffers to write add up to more than 2^64 bytes",
			         b->bucket, path);
			return DCP_EINVAL;
		}
		total += iov[i].len;
	}
	if (stop != NULL && atomic_load(stop)) {
		dcp_msgf(msg, "the upload of %s did not start because another object of the save failed",
		         base->ops->describe(base, path, where, sizeof(where)));
		return DCP_EPEER;
	}
	memset(&u, 0, sizeof(u));
	u.key = s3_full_key(b, path);
	if (u.key == NULL) {
		dcp_msgf(msg, "out of memory writing s3://%s/%s", b->bucket, path);
		return DCP_ENOMEM;
	}
	if (total <= b->cfg.multipart_threshold) {
		s3_req req = {0};
		if (total > 0) {
			req.segs = iov;
			req.nsegs = n;
		} else {
			req.body = "";
		}
		req.body_len = total;
		rc = put_object(b, u.key, &req, stop, msg);
		if (rc != DCP_OK && stop != NULL && atomic_load(stop))
			rc = DCP_EPEER;
		free(u.key);
		return rc;
	}
	/* The object's size is known: a part size large enough for S3's 10,000
	 * parts (rounded up to whole MiB) rather than a failure. */
	if ((total + ps - 1) / ps > DCP_S3_MAX_PARTS)
		ps = ((total + DCP_S3_MAX_PARTS - 1) / DCP_S3_MAX_PARTS + (1u << 20) - 1) &
		     ~(uint64_t)((1u << 20) - 1);
	if (ps > DCP_S3_MAX_PART_SIZE) {
		dcp_msgf(msg,
		         "%s: %llu bytes is more than S3 can store in one object (10,000 parts of 5 GiB)",
		         s3_describe_key(b, u.key, where, sizeof(where)), (unsigned long long)total);
		free(u.key);
		return DCP_EINVAL;
	}
	u.b = b;
	u.iov = iov;
	u.n = n;
	u.total = total;
	u.part_size = ps;
	u.nparts = (int)((total + ps - 1) / ps);
	u.stop = stop;
	u.status = DCP_OK;
	atomic_init(&u.next, 0);
	atomic_init(&u.in_flight, 0);
	atomic_init(&u.cancel, 0);
	u.etags = calloc((size_t)u.nparts, sizeof(*u.etags));
	if (u.etags == NULL || pthread_mutex_init(&u.lock, NULL) != 0) {
		free(u.etags);
		dcp_msgf(msg, "out of memory starting a multipart upload of %s",
		         s3_describe_key(b, u.key, where, sizeof(where)));
		free(u.key);
		return DCP_ENOMEM;
	}
	rc = create_upload(b, u.key, &u.upload_id, msg);
	if (rc == DCP_OK)
		rc = iov_multipart(&u, msg);
	if (rc != DCP_OK && stop != NULL && atomic_load(stop))
		rc = DCP_EPEER;
	for (i = 0; i < (size_t)u.nparts; i++)
		free(u.etags[i]);
	free(u.etags);
	pthread_mutex_destroy(&u.lock);
	free(u.upload_id);
	free(u.key);
	return rc;
}
