#include "outcome.h"

#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "url.h"
#include "wire.h"

enum { REPLY_OK = 0, REPLY_ERROR = 1 };

static int encode_local(const dcp_step_local *mine, dcp_wbuf *w)
{
	dcp_wbuf_i32(w, mine->status);
	dcp_wbuf_str(w, mine->status != DCP_OK ? (mine->stage ? mine->stage : "unknown") : NULL);
	dcp_wbuf_str(w, mine->status != DCP_OK ? (mine->message ? mine->message : "") : NULL);
	if (mine->status == DCP_OK) {
		dcp_wbuf_u64(w, mine->payload_len);
		dcp_wbuf_bytes(w, mine->payload, mine->payload_len);
	} else {
		dcp_wbuf_u64(w, 0);
	}
	return w->failed ? DCP_ENOMEM : DCP_OK;
}

/* A decoded rank outcome; payload points into the gathered buffer. */
typedef struct rank_outcome {
	int status;
	char *stage;
	char *message;
	const void *payload;
	size_t payload_len;
} rank_outcome;

static int decode_local(const dcp_buf *b, rank_outcome *o)
{
	dcp_rbuf r;
	dcp_rbuf_init(&r, b->data, b->len);
	o->status = dcp_rbuf_i32(&r);
	o->stage = dcp_rbuf_str(&r);
	o->message = dcp_rbuf_str(&r);
	uint64_t n = dcp_rbuf_u64(&r);
	o->payload = n ? dcp_rbuf_bytes(&r, (size_t)n) : NULL;
	o->payload_len = (size_t)n;
	return r.failed ? DCP_ECOMM : DCP_OK;
}

static void encode_error(dcp_wbuf *w, const char *step, rank_outcome *all, int n, int only_rank,
                         const char *stage, int code, const char *message)
{
	dcp_wbuf_u32(w, REPLY_ERROR);
	dcp_wbuf_str(w, step);
	if (only_rank >= 0) {
		dcp_wbuf_u32(w, 1);
		dcp_wbuf_i32(w, only_rank);
		dcp_wbuf_str(w, stage);
		dcp_wbuf_i32(w, code);
		dcp_wbuf_str(w, message);
		return;
	}
	uint32_t failed = 0;
	for (int r = 0; r < n; r++)
		failed += all[r].status != DCP_OK;
	dcp_wbuf_u32(w, failed);
	for (int r = 0; r < n; r++) {
		if (all[r].status == DCP_OK)
			continue;
		dcp_wbuf_i32(w, r);
		dcp_wbuf_str(w, all[r].stage ? all[r].stage : "unknown");
		dcp_wbuf_i32(w, all[r].status);
		dcp_wbuf_str(w, all[r].message ? all[r].message : "");
	}
}

static int decode_reply(const dcp_buf *b, dcp_buf *reply, dcp_error **err, int self)
{
	dcp_rbuf r;
	dcp_rbuf_init(&r, b->data, b->len);
	uint32_t kind = dcp_rbuf_u32(&r);
	if (!r.failed && kind == REPLY_OK) {
		size_t n = dcp_rbuf_left(&r);
		reply->len = n;
		reply->data = NULL;
		if (n > 0) {
			reply->data = malloc(n);
			if (reply->data == NULL)
				goto nomem;
			memcpy(reply->data, dcp_rbuf_bytes(&r, n), n);
		}
		return DCP_OK;
	}
	char *step = dcp_rbuf_str(&r);
	uint32_t n = dcp_rbuf_u32(&r);
	dcp_error *e = dcp_error_new(step ? step : "unknown");
	free(step);
	if (e == NULL)
		goto nomem;
	for (uint32_t i = 0; i < n && !r.failed; i++) {
		int rank = dcp_rbuf_i32(&r);
		char *stage = dcp_rbuf_str(&r);
		int code = dcp_rbuf_i32(&r);
		char *message = dcp_rbuf_str(&r);
		if (!r.failed)
			dcp_error_add(e, rank, stage ? stage : "unknown", code, message ? message : "");
		free(stage);
		free(message);
	}
	if (r.failed || kind != REPLY_ERROR) {
		dcp_error_free(e);
		dcp_error_set(err, dcp_error_local(DCP_ECOMM, "comm",
		                                   "rank %d received a malformed reply from the "
		                                   "coordinator",
		                                   self));
		return DCP_ECOMM;
	}
	int code = dcp_error_code(e);
	dcp_error_set(err, e);
	return code != DCP_OK ? code : DCP_ECOMM;
nomem:
	dcp_error_set(err, dcp_error_local(DCP_ENOMEM, "comm", "out of memory on rank %d", self));
	return DCP_ENOMEM;
}

/* The coordinator's part: decide, and build one reply per rank. */
static int coordinate(const char *step, dcp_buf *gathered, int n, dcp_global_fn fn, void *ctx,
                      int coordinator, dcp_wbuf *replies)
{
	rank_outcome *all = calloc((size_t)n, sizeof(*all));
	dcp_buf *payloads = calloc((size_t)n, sizeof(*payloads));
	dcp_buf *out = calloc((size_t)n, sizeof(*out));
	int rc = DCP_OK, anyfail = 0;
	if (all == NULL || payloads == NULL || out == NULL) {
		rc = DCP_ENOMEM;
		goto done;
	}
	for (int r = 0; r < n; r++) {
		if (decode_local(&gathered[r], &all[r]) != DCP_OK) {
			all[r].status = DCP_ECOMM;
			free(all[r].stage);
			all[r].stage = dcp_strdup("comm");
		}
		anyfail |= all[r].status != DCP_OK;
		payloads[r].data = (void *)all[r].payload;
		payloads[r].len = all[r].payload_len;
	}
	if (anyfail) {
		encode_error(&replies[0], step, all, n, -1, NULL, 0, NULL);
		goto share;
	}
	if (fn != NULL) {
		const char *stage = "global";
		dcp_msg msg = {{0}};
		int grc = fn(ctx, payloads, n, out, &stage, &msg);
		if (grc > 0) /* statuses are negative: a positive one is a broken slot */
			grc = DCP_EPLUGIN;
		if (grc != DCP_OK) {
			encode_error(&replies[0], step, all, n, coordinator, stage, grc, msg.text);
			goto share;
		}
	}
	for (int r = 0; r < n; r++) {
		dcp_wbuf_u32(&replies[r], REPLY_OK);
		dcp_wbuf_bytes(&replies[r], out[r].data, out[r].len);
		if (replies[r].failed)
			rc = DCP_ENOMEM;
	}
	goto done;
share:
	/* The same error for everyone: replies[1..] alias replies[0]. */
	if (replies[0].failed)
		rc = DCP_ENOMEM;
	for (int r = 1; r < n; r++)
		replies[r] = replies[0];
done:
	if (all != NULL)
		for (int r = 0; r < n; r++) {
			free(all[r].stage);
			free(all[r].message);
		}
	if (out != NULL)
		dcp_bufs_release(out, (size_t)n);
	free(all);
	free(payloads);
	free(out);
	return rc;
}

int dcp_step_exchange(dcp_comm *comm, int coordinator, const char *step, const dcp_step_local *mine,
                      dcp_global_fn fn, void *ctx, dcp_buf *reply, dcp_error **err)
{
	int self = comm->rank(comm), n = comm->size(comm);
	dcp_wbuf w = {0};
	reply->data = NULL;
	reply->len = 0;
	dcp_step_local oom = {DCP_ENOMEM, "comm", "out of memory encoding this rank's outcome", NULL, 0};
	if (encode_local(mine, &w) != DCP_OK) {
		dcp_wbuf_free(&w);
		encode_local(&oom, &w);
	}
	dcp_buf *gathered = NULL;
	dcp_wbuf *replies = NULL;
	dcp_buf *sendv = NULL;
	int share = 0;
	if (self == coordinator) {
		gathered = calloc((size_t)n, sizeof(*gathered));
		replies = calloc((size_t)n, sizeof(*replies));
		sendv = calloc((size_t)n, sizeof(*sendv));
	}
	int crc = comm->gather(comm, coordinator, w.data, w.len, gathered);
	dcp_wbuf_free(&w);
	if (self == coordinator) {
		int prc = crc != DCP_OK ? crc : DCP_ENOMEM;
		if (crc == DCP_OK && gathered && replies && sendv)
			prc = coordinate(step, gathered, n, fn, ctx, coordinator, replies);
		if (prc != DCP_OK) {
			/* Still answer every rank so that none waits: with an error. */
			if (replies != NULL) {
				/* replies[1..] may alias replies[0] (a shared error): free
				 * that buffer once, comparing with its address before the
				 * free clears replies[0]. */
				const unsigned char *shared = replies[0].data;
				for (int r = 0; r < n; r++)
					if (r == 0 || replies[r].data != shared)
						dcp_wbuf_free(&replies[r]);
				memset(replies, 0, (size_t)n * sizeof(*replies));
				encode_error(&replies[0], step, NULL, n, coordinator, "coordinate", prc,
				             crc != DCP_OK
				                     ? "the coordinator could not gather every rank's outcome"
				                     : "out of memory on the coordinator");
				for (int r = 1; r < n; r++)
					replies[r] = replies[0];
			}
		}
		share = replies != NULL && n > 1 && replies[1].data == replies[0].data;
		if (sendv != NULL && replies != NULL)
			for (int r = 0; r < n; r++) {
				sendv[r].data = replies[r].data;
				sendv[r].len = replies[r].len;
			}
	}
	dcp_buf mine_reply = {0};
	int src = comm->scatter(comm, coordinator, sendv, &mine_reply);
	if (self == coordinator) {
		if (replies != NULL)
			for (int r = 0; r < n; r++)
				if (!(share && r > 0))
					dcp_wbuf_free(&replies[r]);
		if (gathered != NULL)
			dcp_bufs_release(gathered, (size_t)n);
		free(gathered);
		free(replies);
		free(sendv);
	}
	if (crc != DCP_OK || src != DCP_OK) {
		free(mine_reply.data);
		int code = crc != DCP_OK ? crc : src;
		dcp_error *e = dcp_error_new(step);
		if (e != NULL) {
			char text[300];
			snprintf(text, sizeof(text),
			         "the %s step's exchange with the coordinator (rank %d) failed on this rank "
			         "(%s): "
			         "another rank may have died or stopped answering; look at the other ranks' "
			         "output (with MPI, DCP_MPI_TIMEOUT bounds the wait)",
			         step, coordinator, dcp_strerror(code));
			dcp_error_add(e, self, "comm", code, text);
		}
		dcp_error_set(err, e);
		return code;
	}
	int rc = decode_reply(&mine_reply, reply, err, self);
	free(mine_reply.data);
	return rc;
}
