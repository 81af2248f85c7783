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
 * Threads: append, close and abort come from one thread at a time (the
 * writer's owner); the part threads take buffers from the queue under lock.
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

static int upload_part(s3_writer *w, s3_part *p, dcp_msg *msg)
{
	s3_backend *b = w->b;
	s3_req req = {0};
	s3_resp resp = {0};
	char *query = dcp_asprintf("partNumber=%d&uploadId=", p->number);
	int rc;

	if (query == NULL || s3_append_encoded(&query, w->upload_id, 0) != 0) {
		free(query);
		dcp_msgf(msg, "out of memory uploading part %d of %s", p->number, w->key);
		return DCP_ENOMEM;
	}
	req.method = "PUT";
	req.op = "UploadPart";
	req.key = w->key;
	req.query = query;
	req.has_body = 1;
	req.body = p->buf;
	req.body_len = p->len;
	req.cancel = &w->cancel;
	rc = s3_execute(b, &req, NULL, &resp, msg);
	if (rc == DCP_OK) {
		if (resp.etag[0] == '\0') {
			char where[DCP_S3_MAX_KEY + 80];
			dcp_msgf(msg, "UploadPart %d of %s: the answer (HTTP %ld from %s) has no ETag",
			         p->number, s3_describe_key(b, w->key, where, sizeof(where)), resp.status,
			         b->endpoint_shown);
			rc = DCP_EIO;
		} else if ((w->etags[p->number - 1] = dcp_strdup(resp.etag)) == NULL) {
			dcp_msgf(msg, "out of memory uploading part %d of %s", p->number, w->key);
			rc = DCP_ENOMEM;
		} else {
			atomic_fetch_add(&b->n_parts, 1);
		}
	}
	s3_resp_free(&resp);
	free(query);
	return rc;
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

/* CreateMultipartUpload and the part threads. */
static int start_upload(s3_writer *w, dcp_msg *msg)
{
	s3_backend *b = w->b;
	s3_req req = {0};
	s3_resp resp = {0};
	char where[DCP_S3_MAX_KEY + 80];
	int rc, i;

	req.method = "POST";
	req.op = "CreateMultipartUpload";
	req.key = w->key;
	req.query = "uploads=";
	req.has_body = 1;
	req.body = "";
	req.body_len = 0;
	req.content_type = "application/octet-stream";
	req.want_body = 1;
	rc = s3_execute(b, &req, NULL, &resp, msg);
	if (rc == DCP_OK) {
		rc = s3_xml_upload_id(resp.body, resp.body_len, &w->upload_id);
		if (rc == DCP_EIO)
			dcp_msgf(msg,
			         "CreateMultipartUpload %s: the answer (HTTP %ld from %s) has no UploadId",
			         s3_describe_key(b, w->key, where, sizeof(where)), resp.status,
			         b->endpoint_shown);
		else if (rc == DCP_ENOMEM)
			dcp_msgf(msg, "out of memory starting a multipart upload of %s", w->key);
	}
	s3_resp_free(&resp);
	if (rc != DCP_OK)
		return rc;
	atomic_fetch_add(&b->n_multipart, 1);
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
static int abort_upload(s3_writer *w, dcp_msg *msg)
{
	s3_backend *b = w->b;
	s3_req req = {0};
	s3_resp resp = {0};
	static const long ok[] = {404, 405, 501, 0};
	char *query = dcp_strdup("uploadId=");
	int rc;

	if (query == NULL || s3_append_encoded(&query, w->upload_id, 0) != 0) {
		dcp_msgf(msg, "out of memory aborting the multipart upload of %s", w->key);
		return DCP_ENOMEM;
	}
	req.method = "DELETE";
	req.op = "AbortMultipartUpload";
	req.key = w->key;
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

/* Cancels, joins and aborts the upload; appends what happened to the abort
 * to msg (when msg is not NULL). */
static void cancel_upload(s3_writer *w, dcp_msg *msg)
{
	dcp_msg am;
	int rc;

	atomic_store(&w->cancel, 1);
	join_parts(w);
	if (w->upload_id == NULL || w->aborted)
		return;
	w->aborted = 1;
	am.text[0] = '\0';
	rc = abort_upload(w, &am);
	if (msg != NULL && rc == DCP_EUNSUPPORTED) {
		size_t n = strlen(msg->text);
		snprintf(msg->text + n, sizeof(msg->text) - n, "; %s", am.text);
	} else if (msg != NULL && rc != DCP_OK) {
		size_t n = strlen(msg->text);
		snprintf(msg->text + n, sizeof(msg->text) - n,
		         "; aborting the multipart upload failed too: %s", am.text);
	}
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

static int put_single(s3_writer *w, dcp_msg *msg)
{
	s3_req req = {0};
	s3_resp resp = {0};
	int rc;

	req.method = "PUT";
	req.op = "PutObject";
	req.key = w->key;
	req.has_body = 1;
	req.body = w->cur != NULL ? w->cur->buf : "";
	req.body_len = w->cur != NULL ? w->cur->len : 0;
	req.content_type = "application/octet-stream";
	rc = s3_execute(w->b, &req, NULL, &resp, msg);
	if (rc == DCP_OK)
		atomic_fetch_add(&w->b->n_single_puts, 1);
	s3_resp_free(&resp);
	return rc;
}

static int complete_upload(s3_writer *w, dcp_msg *msg)
{
	s3_backend *b = w->b;
	s3_req req = {0};
	s3_resp resp = {0};
	char *body = NULL, *query = dcp_strdup("uploadId=");
	size_t len = 0;
	char num[48], code[96], message[400], where[DCP_S3_MAX_KEY + 80];
	int i, rc, bad = query == NULL || s3_append_encoded(&query, w->upload_id, 0) != 0;

	bad = bad || s3_append(&body, &len, "<CompleteMultipartUpload>") != 0;
	for (i = 0; i < w->nparts && !bad; i++) {
		snprintf(num, sizeof(num), "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
		bad = s3_append(&body, &len, num) != 0 ||
		      s3_xml_append_escaped(&body, &len, w->etags[i]) != 0 ||
		      s3_append(&body, &len, "</ETag></Part>") != 0;
	}
	bad = bad || s3_append(&body, &len, "</CompleteMultipartUpload>") != 0;
	if (bad) {
		free(body);
		free(query);
		dcp_msgf(msg, "out of memory completing the multipart upload of %s", w->key);
		return DCP_ENOMEM;
	}
	req.method = "POST";
	req.op = "CompleteMultipartUpload";
	req.key = w->key;
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
		         s3_describe_key(b, w->key, where, sizeof(where)), code, message, resp.status,
		         b->endpoint_shown);
		rc = DCP_EIO;
	}
	s3_resp_free(&resp);
	free(body);
	free(query);
	return rc;
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
