/*
 * dcp_save: the two-phase save protocol.
 *
 *   plan step:  every rank: validate id, writer_open, set_up_storage_writer,
 *               create_local_plan, prepare_local_plan
 *               -> gather -> coordinator: create_global_plan (dedup,
 *               validation, metadata), save id, prepare_global_plan
 *               -> scatter final plans (or the same error to every rank)
 *   write step: every rank: finish_plan, resolve_data, write_data (a future),
 *               block checksums while the plugin writes, wait
 *               -> gather results -> coordinator: metadata storage fields,
 *               storage_meta, finish (the commit)
 *               -> scatter the outcome
 * A failed save makes every rank's writer abort (remove its own objects of
 * this save); the previous checkpoint is never touched by the core.
 */
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "future.h"
#include "metadata_internal.h"
#include "outcome.h"
#include "plan_codec.h"
#include "planner_internal.h"
#include "protocol.h"
#include "registry_internal.h"
#include "url.h"

typedef struct save_run {
	const dcp_state *state;
	dcp_comm *comm;
	int rank, size;
	dcp_save_options opts;
	dcp_save_planner planner;
	dcp_plugin *plugin;
	char *url;
	dcp_storage_writer *writer;
	dcp_save_plan final_plan;
	/* coordinator only */
	dcp_save_plan *plans;
	int nplans;
	dcp_metadata *md;
} save_run;

/* ------------------------------------------------------------------------ */
/* Plan step                                                                */
/* ------------------------------------------------------------------------ */

static void plan_local(save_run *s, dcp_local_failure *f, dcp_save_plan *local)
{
	dcp_msg msg = {{0}};
	int rc = dcp_registry_resolve(s->opts.registry, s->url, 1, 1, &s->plugin, NULL, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "validate_checkpoint_id", &msg);
		return;
	}
	dcp_open_options oo = {DCP_OPEN_OPTIONS_VERSION, s->rank, s->size, s->opts.overwrite};
	rc = s->plugin->writer_open(s->plugin, s->url, &oo, &s->writer, &msg);
	if (rc == DCP_OK && s->writer == NULL)
		rc = DCP_EPLUGIN;
	if (rc != DCP_OK) {
		s->writer = NULL;
		dcp_fail_msg(f, rc, "writer_open", &msg);
		return;
	}
	rc = dcp_check_writer_ops(s->plugin, s->writer->ops, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "writer_open", &msg);
		s->writer = NULL; /* an unusable table: we cannot even close it */
		return;
	}
	const dcp_writer_ops *ops = s->writer->ops;
	rc = ops->set_up_storage_writer(s->writer, s->rank == s->opts.coordinator, s->rank, s->size, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "set_up_storage_writer", &msg);
		return;
	}
	rc = s->planner.create_local_plan(s->planner.ctx, s->state, s->rank, local, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "create_local_plan", &msg);
		return;
	}
	if (ops->prepare_local_plan != NULL) {
		rc = ops->prepare_local_plan(s->writer, local, &msg);
		if (rc != DCP_OK)
			dcp_fail_msg(f, rc, "prepare_local_plan", &msg);
	}
}

static int plan_global(void *ctx, const dcp_buf *payloads, int n, dcp_buf *replies, const char **stage,
                       dcp_msg *msg)
{
	save_run *s = ctx;
	s->plans = calloc((size_t)n, sizeof(*s->plans));
	s->md = calloc(1, sizeof(*s->md));
	*stage = "create_global_plan";
	if (s->plans == NULL || s->md == NULL) {
		dcp_msgf(msg, "out of memory on the coordinator");
		return DCP_ENOMEM;
	}
	s->nplans = n;
	for (int r = 0; r < n; r++) {
		int rc = dcp_save_plan_decode(payloads[r].data, payloads[r].len, &s->plans[r]);
		if (rc != DCP_OK) {
			dcp_msgf(msg, "the plan of rank %d could not be decoded (%s)", r, dcp_strerror(rc));
			return rc;
		}
	}
	int rc = s->planner.create_global_plan(s->planner.ctx, s->plans, n, &s->opts, s->md, msg);
	if (rc != DCP_OK)
		return rc;
	char id[40];
	dcp_make_save_id(id, sizeof(id));
	s->md->save_id = dcp_strdup(id);
	if (s->md->save_id == NULL) {
		dcp_msgf(msg, "out of memory on the coordinator");
		return DCP_ENOMEM;
	}
	for (int r = 0; r < n; r++) {
		free(s->plans[r].save_id);
		s->plans[r].save_id = dcp_strdup(id);
		if (s->plans[r].save_id == NULL) {
			dcp_msgf(msg, "out of memory on the coordinator");
			return DCP_ENOMEM;
		}
	}
	if (s->writer->ops->prepare_global_plan != NULL) {
		*stage = "prepare_global_plan";
		rc = s->writer->ops->prepare_global_plan(s->writer, s->plans, n, msg);
		if (rc != DCP_OK)
			return rc;
	}
	*stage = "create_global_plan";
	for (int r = 0; r < n; r++) {
		dcp_wbuf w = {0};
		dcp_save_plan_encode(&s->plans[r], &w);
		if (w.failed) {
			dcp_wbuf_free(&w);
			dcp_msgf(msg, "out of memory encoding the plan of rank %d", r);
			return DCP_ENOMEM;
		}
		replies[r].data = w.data;
		replies[r].len = w.len;
	}
	return DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* Write step                                                               */
/* ------------------------------------------------------------------------ */

typedef struct item_sums {
	uint32_t n;
	uint64_t *sums;
} item_sums;

static void sums_free(item_sums *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].sums);
	free(v);
}

/* Checks what the plugin says it wrote: one result per request, in range. */
static int check_results(const dcp_plugin *p, const dcp_future *fut, const dcp_save_plan *plan, dcp_msg *msg)
{
	if (fut->nresults != plan->nitems) {
		dcp_msgf(msg, "plugin '%s' returned %zu write results for %zu items", p->name, fut->nresults,
		         plan->nitems);
		return DCP_EPLUGIN;
	}
	unsigned char *seen = calloc(plan->nitems ? plan->nitems : 1, 1);
	if (seen == NULL) {
		dcp_msgf(msg, "out of memory checking write results");
		return DCP_ENOMEM;
	}
	int rc = DCP_OK;
	for (size_t i = 0; i < fut->nresults && rc == DCP_OK; i++) {
		const dcp_owned_result *r = &fut->results[i];
		if (r->index >= plan->nitems || seen[r->index]) {
			dcp_msgf(msg, "plugin '%s' returned a write result for item %u, which is %s", p->name,
			         r->index, r->index >= plan->nitems ? "not in the plan" : "reported twice");
			rc = DCP_EPLUGIN;
		} else if (r->length != plan->items[r->index].nbytes) {
			dcp_msgf(msg, "plugin '%s' wrote %llu bytes for '%s' but the item has %llu", p->name,
			         (unsigned long long)r->length, plan->items[r->index].key,
			         (unsigned long long)plan->items[r->index].nbytes);
			rc = DCP_EPLUGIN;
		} else if (!dcp_storage_path_is_safe(r->path)) {
			dcp_msgf(msg, "plugin '%s' wrote '%s' to the unsafe path '%s'", p->name,
			         plan->items[r->index].key, r->path);
			rc = DCP_EPLUGIN;
		} else {
			seen[r->index] = 1;
		}
	}
	free(seen);
	return rc;
}

static void encode_results(const dcp_future *fut, const item_sums *sums, dcp_wbuf *w)
{
	dcp_wbuf_u64(w, fut->nresults);
	for (size_t i = 0; i < fut->nresults; i++) {
		const dcp_owned_result *r = &fut->results[i];
		dcp_wbuf_u32(w, r->index);
		dcp_wbuf_str(w, r->path);
		dcp_wbuf_u64(w, r->offset);
		dcp_wbuf_u64(w, r->length);
		const item_sums *is = &sums[r->index];
		dcp_wbuf_u32(w, is->n);
		for (uint32_t k = 0; k < is->n; k++)
			dcp_wbuf_u64(w, is->sums[k]);
	}
}

static void write_local(save_run *s, const dcp_buf *plan_reply, dcp_local_failure *f, dcp_wbuf *payload)
{
	dcp_msg msg = {{0}};
	int rc = dcp_save_plan_decode(plan_reply->data, plan_reply->len, &s->final_plan);
	if (rc != DCP_OK) {
		dcp_fail(f, rc, "finish_plan",
		         "the final plan from the coordinator could not be decoded (%s)", dcp_strerror(rc));
		return;
	}
	dcp_save_plan *plan = &s->final_plan;
	rc = s->planner.finish_plan(s->planner.ctx, plan, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "finish_plan", &msg);
		return;
	}
	size_t n = plan->nitems;
	dcp_write_req *reqs = calloc(n ? n : 1, sizeof(*reqs));
	item_sums *sums = calloc(n ? n : 1, sizeof(*sums));
	dcp_future *fut = dcp_future_new();
	if (reqs == NULL || sums == NULL || fut == NULL) {
		dcp_fail(f, DCP_ENOMEM, "write_data", "out of memory preparing %zu writes", n);
		goto out;
	}
	const uint64_t block = DCP_CHECKSUM_BLOCK_DEFAULT;
	for (size_t i = 0; i < n; i++) {
		reqs[i].index = (uint32_t)i;
		reqs[i].item = &plan->items[i];
		rc = s->planner.resolve_data(s->planner.ctx, s->state, &plan->items[i], &reqs[i].data,
		                             &reqs[i].len, &msg);
		if (rc == DCP_OK && reqs[i].len != plan->items[i].nbytes) {
			dcp_msgf(&msg, "resolve_data gave %llu bytes for '%s', which has %llu",
			         (unsigned long long)reqs[i].len, plan->items[i].key,
			         (unsigned long long)plan->items[i].nbytes);
			rc = DCP_EPLAN;
		}
		if (rc != DCP_OK) {
			dcp_fail_msg(f, rc, "resolve_data", &msg);
			goto out;
		}
		uint64_t nb = (reqs[i].len + block - 1) / block;
		sums[i].n = (uint32_t)nb;
		if (nb > 0 && (sums[i].sums = malloc(nb * sizeof(uint64_t))) == NULL) {
			dcp_fail(f, DCP_ENOMEM, "write_data", "out of memory for the checksums of '%s'",
			         plan->items[i].key);
			goto out;
		}
	}
	rc = s->writer->ops->write_data(s->writer, plan, reqs, n, fut, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "write_data", &msg);
		goto out;
	}
	/* Checksums on this thread while the plugin's threads write. */
	for (size_t i = 0; i < n; i++)
		if (sums[i].n > 0)
			dcp_checksum_blocks(reqs[i].data, reqs[i].len, block, sums[i].sums);
	rc = dcp_future_wait(fut, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "write_data", &msg);
		goto out;
	}
	rc = check_results(s->plugin, fut, plan, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "write_data", &msg);
		goto out;
	}
	encode_results(fut, sums, payload);
	if (payload->failed)
		dcp_fail(f, DCP_ENOMEM, "write_data", "out of memory encoding %zu write results", n);
out:
	dcp_future_free(fut);
	free(reqs);
	sums_free(sums, n);
}

/* Finds the metadata chunk that a rank's write item became. */
static dcp_md_chunk *chunk_for_item(dcp_metadata *md, const dcp_write_item *it)
{
	dcp_md_item *mi = (dcp_md_item *)dcp_metadata_find(md, it->key);
	if (mi == NULL || mi->nchunks == 0)
		return NULL;
	if (it->replicated || it->type != DCP_ITEM_TENSOR)
		return &mi->chunks[0];
	size_t lo = 0, hi = mi->nchunks;
	size_t nd = (size_t)mi->ndim;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = 0;
		for (size_t d = 0; d < nd && c == 0; d++)
			if (mi->chunks[mid].offsets[d] != it->offsets[d])
				c = mi->chunks[mid].offsets[d] < it->offsets[d] ? -1 : 1;
		if (c == 0)
			return &mi->chunks[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int merge_results(save_run *s, int r, const dcp_buf *payload, dcp_msg *msg)
{
	dcp_rbuf rb;
	dcp_rbuf_init(&rb, payload->data, payload->len);
	uint64_t n = dcp_rbuf_u64(&rb);
	const dcp_save_plan *plan = &s->plans[r];
	for (uint64_t i = 0; i < n && !rb.failed; i++) {
		uint32_t index = dcp_rbuf_u32(&rb);
		char *path = dcp_rbuf_str(&rb);
		uint64_t offset = dcp_rbuf_u64(&rb);
		uint64_t length = dcp_rbuf_u64(&rb);
		uint32_t nsums = dcp_rbuf_u32(&rb);
		if (rb.failed || index >= plan->nitems || path == NULL || nsums > dcp_rbuf_left(&rb) / 8) {
			free(path);
			dcp_msgf(msg, "the write results of rank %d could not be decoded (entry %llu)", r,
			         (unsigned long long)i);
			return DCP_ECOMM;
		}
		dcp_md_chunk *c = chunk_for_item(s->md, &plan->items[index]);
		if (c == NULL || c->storage.path != NULL) {
			dcp_msgf(msg,
			         "the write result of rank %d for '%s' matches %s chunk of the checkpoint", r,
			         plan->items[index].key, c == NULL ? "no" : "an already written");
			free(path);
			return DCP_EPLAN;
		}
		c->storage.path = path;
		c->storage.offset = offset;
		c->storage.length = length;
		c->storage.nsums = nsums;
		if (nsums > 0) {
			c->storage.sums = malloc(nsums * sizeof(uint64_t));
			if (c->storage.sums == NULL) {
				dcp_msgf(msg, "out of memory on the coordinator");
				return DCP_ENOMEM;
			}
		}
		for (uint32_t k = 0; k < nsums; k++)
			c->storage.sums[k] = dcp_rbuf_u64(&rb);
	}
	if (rb.failed) {
		dcp_msgf(msg, "the write results of rank %d could not be decoded", r);
		return DCP_ECOMM;
	}
	return DCP_OK;
}

static int write_global(void *ctx, const dcp_buf *payloads, int n, dcp_buf *replies, const char **stage,
                        dcp_msg *msg)
{
	save_run *s = ctx;
	(void)replies;
	*stage = "finish";
	for (int r = 0; r < n; r++) {
		int rc = merge_results(s, r, &payloads[r], msg);
		if (rc != DCP_OK)
			return rc;
	}
	for (size_t i = 0; i < s->md->nitems; i++) {
		const dcp_md_item *mi = &s->md->items[i];
		for (size_t c = 0; c < mi->nchunks; c++) {
			if (mi->chunks[c].storage.path == NULL) {
				dcp_msgf(msg, "no rank wrote chunk %zu of '%s': the plan lost it", c,
				         mi->key);
				return DCP_EPLAN;
			}
		}
	}
	if (s->writer->ops->storage_meta != NULL) {
		char *json = NULL;
		*stage = "storage_meta";
		int rc = s->writer->ops->storage_meta(s->writer, &json, msg);
		if (rc != DCP_OK) {
			free(json);
			return rc;
		}
		free(s->md->storage_meta);
		s->md->storage_meta = json;
		*stage = "finish";
	}
	int rc = dcp_metadata_validate(s->md, msg);
	if (rc != DCP_OK)
		return rc;
	return s->writer->ops->finish(s->writer, s->md, msg);
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                   */
/* ------------------------------------------------------------------------ */

static int check_args(const dcp_state *state, const char *url, dcp_comm *comm, const dcp_save_options *o,
                      dcp_error **err)
{
	const char *problem = NULL;
	/* A NULL state or url fails this rank inside the collective steps (so
	 * that no other rank waits for it); only what every rank passes alike
	 * (options) is refused here, before any collective. */
	(void)state;
	(void)url;
	if (o->version < 1 || o->version > DCP_SAVE_OPTIONS_VERSION)
		problem = "options.version is not DCP_SAVE_OPTIONS_VERSION (initialise with "
		          "DCP_SAVE_OPTIONS_INIT)";
	else if (o->coordinator < 0 || o->coordinator >= comm->size(comm))
		problem = "options.coordinator is not a rank of the comm";
	else if (o->planner != NULL && o->planner->version != DCP_SAVE_PLANNER_VERSION)
		problem = "options.planner->version is not DCP_SAVE_PLANNER_VERSION (set it when filling the "
		          "planner's slots)";
	if (problem == NULL)
		return DCP_OK;
	dcp_error_set(err, dcp_error_local(DCP_EINVAL, "dcp_save", "dcp_save: %s", problem));
	return DCP_EINVAL;
}

int dcp_save(const dcp_state *state, const char *url, dcp_comm *comm, const dcp_save_options *options,
             dcp_error **err)
{
	static const dcp_save_options defaults = DCP_SAVE_OPTIONS_INIT;
	dcp_comm *owned = NULL;
	if (err != NULL)
		*err = NULL;
	comm = dcp_comm_or_single(comm, &owned);
	if (comm == NULL) {
		dcp_error_set(err, dcp_error_local(DCP_ENOMEM, "dcp_save", "out of memory creating a comm"));
		return DCP_ENOMEM;
	}
	save_run s;
	memset(&s, 0, sizeof(s));
	s.opts = options ? *options : defaults;
	int rc = check_args(state, url, comm, &s.opts, err);
	if (rc != DCP_OK) {
		dcp_comm_free(owned);
		return rc;
	}
	s.state = state;
	s.comm = comm;
	s.rank = comm->rank(comm);
	s.size = comm->size(comm);
	dcp_save_planner_resolve(s.opts.planner, &s.planner);
	dcp_msg msg = {{0}};
	char *canon = NULL;
	/* The canonical URL is a pure function of the id and the current
	 * directory: every rank computes the same, or the same error. */
	rc = dcp_url_canonical(url, &canon, &msg);
	s.url = canon;

	/* Plan step. */
	dcp_local_failure f = {0};
	dcp_save_plan local = {0};
	dcp_wbuf w = {0};
	if (state == NULL)
		dcp_fail(&f, DCP_EINVAL, "dcp_save",
		         "dcp_save: state is NULL on this rank: every rank passes its own "
		         "state (an empty one if it holds nothing)");
	else if (url == NULL)
		dcp_fail(&f, DCP_EINVAL, "dcp_save",
		         "dcp_save: url is NULL on this rank: every rank passes the same "
		         "checkpoint id");
	else if (rc != DCP_OK)
		dcp_fail_msg(&f, rc, "validate_checkpoint_id", &msg);
	else
		plan_local(&s, &f, &local);
	if (f.code == DCP_OK) {
		dcp_save_plan_encode(&local, &w);
		if (w.failed)
			dcp_fail(&f, DCP_ENOMEM, "create_local_plan",
			         "out of memory encoding the local plan");
	}
	dcp_step_local mine = {f.code, f.stage, f.msg.text, w.data, w.len};
	dcp_buf reply = {0};
	rc = dcp_step_exchange(comm, s.opts.coordinator, "plan", &mine, plan_global, &s, &reply, err);
	dcp_wbuf_free(&w);
	dcp_save_plan_clear(&local);

	/* Write step. */
	if (rc == DCP_OK) {
		dcp_local_failure wf = {0};
		dcp_wbuf payload = {0};
		write_local(&s, &reply, &wf, &payload);
		dcp_step_local wmine = {wf.code, wf.stage, wf.msg.text, payload.data, payload.len};
		dcp_buf wreply = {0};
		rc = dcp_step_exchange(comm, s.opts.coordinator, "write", &wmine, write_global, &s, &wreply,
		                       err);
		dcp_wbuf_free(&payload);
		free(wreply.data);
	}
	free(reply.data);

	if (s.writer != NULL) {
		if (rc != DCP_OK && s.writer->ops->abort != NULL)
			s.writer->ops->abort(s.writer);
		s.writer->ops->close(s.writer);
	}
	dcp_save_plan_clear(&s.final_plan);
	if (s.plans != NULL)
		for (int r = 0; r < s.nplans; r++)
			dcp_save_plan_clear(&s.plans[r]);
	free(s.plans);
	dcp_metadata_free(s.md);
	free(s.url);
	dcp_comm_free(owned);
	return rc;
}
