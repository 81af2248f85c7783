/*
 * dcp_load: the two-phase load protocol.
 *
 *   plan step: coordinator: validate id, reader_open, read_metadata
 *              -> outcome of every rank -> broadcast of the coordinator's
 *              canonical URL and metadata (so all ranks load one checkpoint,
 *              whatever a concurrent save does to the URL, and read it from
 *              the same place whatever their working directories)
 *              every rank: (reader_open,) set_up_storage_reader,
 *              create_local_plan (resharding), prepare_local_plan
 *              -> gather -> coordinator: create_global_plan,
 *              prepare_global_plan -> scatter
 *   read step: every rank: read_data in batches of bounded memory, verify
 *              block checksums, copy each box into the state's buffers
 *              -> gather outcomes -> the same outcome on every rank
 *
 * Unlike DCP, a read_metadata failure is reported as itself, with its rank.
 * Data is verified before it is copied into a caller's buffer, except when a
 * stored chunk is read whole straight into an identical destination chunk;
 * then a mismatch still fails the load.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "error_internal.h"
#include "future.h"
#include "metadata_internal.h"
#include "outcome.h"
#include "plan_codec.h"
#include "planner_internal.h"
#include "protocol.h"
#include "registry_internal.h"
#include "state_internal.h"
#include "url.h"

/* Bytes of staging memory reads may use at once, per rank, unless the load
 * options say otherwise (staging_limit). */
#define STAGING_LIMIT ((uint64_t)256 << 20)

typedef struct load_run {
	dcp_state *state;
	dcp_comm *comm;
	int rank, size;
	dcp_load_options opts;
	dcp_load_planner planner;
	dcp_plugin *plugin;
	char *url;
	dcp_storage_reader *reader;
	dcp_metadata *md;
	dcp_load_plan final_plan;
	dcp_load_plan *plans; /* coordinator */
	int nplans;
} load_run;

/* Resolves the plugin of l->url and opens this rank's reader. */
static void open_reader(load_run *l, dcp_local_failure *f)
{
	dcp_msg msg = {{0}};
	int rc = dcp_registry_resolve(l->opts.registry, l->url, 1, 0, &l->plugin, NULL, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "validate_checkpoint_id", &msg);
		return;
	}
	dcp_open_options oo = {DCP_OPEN_OPTIONS_VERSION, l->rank, l->size, 1};
	rc = l->plugin->reader_open(l->plugin, l->url, &oo, &l->reader, &msg);
	if (rc == DCP_OK && l->reader == NULL)
		rc = DCP_EPLUGIN;
	if (rc != DCP_OK) {
		l->reader = NULL;
		dcp_fail_msg(f, rc, "reader_open", &msg);
		return;
	}
	rc = dcp_check_reader_ops(l->plugin, l->reader->ops, &msg);
	if (rc != DCP_OK) {
		l->reader = NULL;
		dcp_fail_msg(f, rc, "reader_open", &msg);
	}
}

/*
 * On the coordinator: opens its reader, reads and validates the metadata,
 * and, when there are other ranks, encodes what they need into *bundle: the
 * canonical URL and the metadata. Only the coordinator reads the metadata, so
 * every rank loads the one checkpoint it read, even if a save replaces the
 * checkpoint at the URL meanwhile, and ranks with different working
 * directories read from the same place.
 */
static void read_metadata_once(load_run *l, dcp_local_failure *f, dcp_wbuf *bundle)
{
	dcp_msg msg = {{0}};
	open_reader(l, f);
	if (f->code != DCP_OK)
		return;
	int rc = l->reader->ops->read_metadata(l->reader, &l->md, &msg);
	if (rc == DCP_OK && l->md == NULL)
		rc = DCP_EPLUGIN;
	/* A plugin may build metadata itself: check it as the decoder would. */
	if (rc == DCP_OK)
		rc = dcp_metadata_validate(l->md, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "read_metadata", &msg);
		return;
	}
	if (l->size == 1)
		return;
	char *json = NULL;
	size_t len = 0;
	rc = dcp_metadata_encode(l->md, &json, &len, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "read_metadata", &msg);
		return;
	}
	dcp_wbuf_str(bundle, l->url);
	dcp_wbuf_u64(bundle, len);
	dcp_wbuf_bytes(bundle, json, len);
	free(json);
	if (bundle->failed)
		dcp_fail(f, DCP_ENOMEM, "read_metadata",
		         "out of memory encoding the metadata for the other ranks");
}

/* On every other rank: takes the coordinator's URL and metadata. */
static void take_metadata(load_run *l, const dcp_buf *bundle, dcp_local_failure *f)
{
	dcp_msg msg = {{0}};
	dcp_rbuf r;
	dcp_rbuf_init(&r, bundle->data, bundle->len);
	char *url = dcp_rbuf_str(&r);
	uint64_t len = dcp_rbuf_u64(&r);
	const char *json = len <= dcp_rbuf_left(&r) ? dcp_rbuf_bytes(&r, (size_t)len) : NULL;
	if (url == NULL || json == NULL || r.failed) {
		free(url);
		dcp_fail(f, DCP_ECOMM, "read_metadata",
		         "the metadata sent by the coordinator (rank %d) could not be decoded (%zu bytes)",
		         l->opts.coordinator, bundle->len);
		return;
	}
	free(l->url);
	l->url = url;
	int rc = dcp_metadata_decode(json, (size_t)len, &l->md, &msg);
	if (rc != DCP_OK)
		dcp_fail_msg(f, rc, "read_metadata", &msg);
}

/* Every rank, with the metadata: sets up the reader and makes its plan. */
static void plan_local(load_run *l, dcp_local_failure *f, dcp_load_plan *local)
{
	dcp_msg msg = {{0}};
	if (l->reader == NULL)
		open_reader(l, f);
	if (f->code != DCP_OK)
		return;
	const dcp_reader_ops *ops = l->reader->ops;
	int rc = ops->set_up_storage_reader(l->reader, l->md, l->rank == l->opts.coordinator, l->rank,
	                                    l->size, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "set_up_storage_reader", &msg);
		return;
	}
	rc = l->planner.create_local_plan(l->planner.ctx, l->state, l->md, &l->opts, local, &msg);
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "create_local_plan", &msg);
		return;
	}
	if (ops->prepare_local_plan != NULL) {
		rc = ops->prepare_local_plan(l->reader, local, &msg);
		if (rc != DCP_OK)
			dcp_fail_msg(f, rc, "prepare_local_plan", &msg);
	}
}

static int plan_global(void *ctx, const dcp_buf *payloads, int n, dcp_buf *replies, const char **stage,
                       dcp_msg *msg)
{
	load_run *l = ctx;
	*stage = "create_global_plan";
	l->plans = calloc((size_t)n, sizeof(*l->plans));
	if (l->plans == NULL) {
		dcp_msgf(msg, "out of memory on the coordinator");
		return DCP_ENOMEM;
	}
	l->nplans = n;
	for (int r = 0; r < n; r++) {
		int rc = dcp_load_plan_decode(payloads[r].data, payloads[r].len, &l->plans[r]);
		if (rc != DCP_OK) {
			dcp_msgf(msg, "the plan of rank %d could not be decoded (%s)", r, dcp_strerror(rc));
			return rc;
		}
	}
	int rc = l->planner.create_global_plan(l->planner.ctx, l->plans, n, msg);
	if (rc != DCP_OK)
		return rc;
	if (l->reader->ops->prepare_global_plan != NULL) {
		*stage = "prepare_global_plan";
		rc = l->reader->ops->prepare_global_plan(l->reader, l->plans, n, msg);
		if (rc != DCP_OK)
			return rc;
	}
	for (int r = 0; r < n; r++) {
		dcp_wbuf w = {0};
		dcp_load_plan_encode(&l->plans[r], &w);
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
/* Read step                                                                */
/* ------------------------------------------------------------------------ */

/* One read and what to do with its bytes. */
typedef struct pending_read {
	const dcp_read_item *item;
	const dcp_md_item *mi;
	const dcp_md_chunk *chunk;
	uint64_t first, end; /* byte range of the stored chunk being read */
	void *buf;           /* staging (owned) or the destination itself */
	int direct;
	void *dst; /* destination chunk, for tensors */
	uint64_t dst_off[DCP_MAX_DIMS], dst_sz[DCP_MAX_DIMS];
	/* The box this read delivers: the plan item's, or one piece of it. */
	uint64_t box_off[DCP_MAX_DIMS], box_sz[DCP_MAX_DIMS];
	int last_piece;    /* 1: delivering it completes the plan item */
	int verified;      /* checked on a plugin thread (read_request_done) */
	int verify_status; /* its outcome */
} pending_read;

static void chunk_text(char *buf, size_t len, const dcp_md_item *mi, const dcp_md_chunk *c)
{
	size_t used = (size_t)snprintf(buf, len, "offsets [");
	for (int d = 0; d < mi->ndim && used < len; d++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu", d ? ", " : "",
		                         (unsigned long long)c->offsets[d]);
	if (used < len)
		used += (size_t)snprintf(buf + used, len - used, "] sizes [");
	for (int d = 0; d < mi->ndim && used < len; d++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu", d ? ", " : "",
		                         (unsigned long long)c->sizes[d]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
}

/* Checks every checksum block wholly inside [first, end) of the chunk; the
 * range was widened to block boundaries (or the chunk's end) beforehand. */
static int verify(const load_run *l, const pending_read *p, dcp_msg *msg)
{
	const dcp_storage_info *si = &p->chunk->storage;
	uint64_t B = l->md->checksum_block;
	for (uint64_t k = p->first / B; k * B < p->end; k++) {
		uint64_t start = k * B;
		uint64_t blen = si->length - start < B ? si->length - start : B;
		if (k >= si->nsums)
			break;
		uint64_t got = dcp_checksum((const unsigned char *)p->buf + (start - p->first), blen);
		if (got != si->sums[k]) {
			char where[300] = "";
			if (p->mi->type == DCP_ITEM_TENSOR)
				chunk_text(where, sizeof(where), p->mi, p->chunk);
			dcp_msgf(msg,
			         "checksum mismatch in '%s'%s%s%s: object '%s' bytes [%llu, %llu) do not "
			         "match "
			         "the checkpoint's metadata: the checkpoint is damaged; restore it from "
			         "another "
			         "copy or save it again (or load with verify=0 at your own risk)",
			         p->mi->key, where[0] ? " (chunk at " : "", where, where[0] ? ")" : "",
			         si->path, (unsigned long long)(si->offset + start),
			         (unsigned long long)(si->offset + start + blen));
			return DCP_ECORRUPT;
		}
	}
	return DCP_OK;
}

/* 1 if the box (no empty dim) lies inside the chunk; no overflow. */
static int box_inside(int nd, const uint64_t *bo, const uint64_t *bs, const uint64_t *co, const uint64_t *cs)
{
	for (int d = 0; d < nd; d++)
		if (bs[d] == 0 || bo[d] < co[d] || bo[d] - co[d] > cs[d] || bs[d] > cs[d] - (bo[d] - co[d]))
			return 0;
	return 1;
}

/* With verification on, a staged read covers whole checksum blocks. */
static void widen_to_blocks(const load_run *l, pending_read *p)
{
	if (!l->opts.verify)
		return;
	const dcp_storage_info *si = &p->chunk->storage;
	uint64_t B = l->md->checksum_block;
	p->first = p->first / B * B;
	/* Round end up to a block boundary or the chunk's end, whichever comes
	 * first, without overflowing (B and lengths come from the metadata and
	 * may be close to 2^64). */
	uint64_t tail = p->end % B;
	if (tail != 0)
		p->end = si->length - p->end <= B - tail ? si->length : p->end + (B - tail);
}

/* Prepares one read item: which bytes to read and where they go. */
static int prepare_read(load_run *l, const dcp_read_item *it, pending_read *p, dcp_msg *msg)
{
	memset(p, 0, sizeof(*p));
	p->item = it;
	p->last_piece = 1;
	memcpy(p->box_off, it->box_offsets, sizeof(p->box_off));
	memcpy(p->box_sz, it->box_sizes, sizeof(p->box_sz));
	p->mi = &l->md->items[it->md_item];
	p->chunk = &p->mi->chunks[it->md_chunk];
	const dcp_storage_info *si = &p->chunk->storage;
	if (p->mi->type == DCP_ITEM_BYTES) {
		p->first = 0;
		p->end = si->length;
	} else {
		int rc = l->planner.resolve_tensor(l->planner.ctx, l->state, it, &p->dst, p->dst_off,
		                                   p->dst_sz, msg);
		if (rc != DCP_OK)
			return rc;
		int nd = p->mi->ndim;
		uint64_t elem = dcp_dtype_size(p->mi->dtype);
		if (nd == 0) {
			p->first = 0;
			p->end = elem;
			p->direct = 1;
		} else {
			/* A custom planner may change boxes: never copy outside the
			 * stored chunk or the destination chunk. */
			if (!box_inside(nd, it->box_offsets, it->box_sizes, p->chunk->offsets,
			                p->chunk->sizes) ||
			    !box_inside(nd, it->box_offsets, it->box_sizes, p->dst_off, p->dst_sz)) {
				char box[300], where[300], dst[300];
				dcp_md_chunk b, d;
				memcpy(b.offsets, it->box_offsets, sizeof(b.offsets));
				memcpy(b.sizes, it->box_sizes, sizeof(b.sizes));
				memcpy(d.offsets, p->dst_off, sizeof(d.offsets));
				memcpy(d.sizes, p->dst_sz, sizeof(d.sizes));
				chunk_text(box, sizeof(box), p->mi, &b);
				chunk_text(where, sizeof(where), p->mi, p->chunk);
				chunk_text(dst, sizeof(dst), p->mi, &d);
				dcp_msgf(msg,
				         "read item for '%s': box (%s) is empty or not inside the stored "
				         "chunk (%s) "
				         "and the destination chunk (%s): the load planner made an invalid "
				         "plan",
				         p->mi->key, box, where, dst);
				return DCP_EPLAN;
			}
			dcp_box_byte_range(nd, p->chunk->offsets, p->chunk->sizes, it->box_offsets,
			                   it->box_sizes, elem, &p->first, &p->end);
			p->direct = dcp_box_equal(nd, it->box_offsets, it->box_sizes, p->chunk->offsets,
			                          p->chunk->sizes) &&
			            dcp_box_equal(nd, it->box_offsets, it->box_sizes, p->dst_off, p->dst_sz);
		}
		if (p->direct)
			p->buf = p->dst;
	}
	if (!p->direct)
		widen_to_blocks(l, p);
	return DCP_OK;
}

/*
 * Cutting a staged box into pieces whose byte span in the stored chunk is at
 * most `limit` (a column of a large row-major chunk spans nearly all of it):
 * the box's indexes in dims [0, cut_dim) are taken one at a time, and dim
 * cut_dim in runs of `run` indexes; dims after it stay whole. Returns 0 when
 * the whole box fits.
 */
static int choose_cut(const pending_read *p, uint64_t elem, uint64_t limit, int *cut_dim, uint64_t *run)
{
	int nd = p->mi->ndim;
	const uint64_t *cs = p->chunk->sizes;
	uint64_t stride[DCP_MAX_DIMS], span[DCP_MAX_DIMS + 1];
	uint64_t st = elem;
	for (int d = nd - 1; d >= 0; d--) {
		stride[d] = st;
		st *= cs[d];
	}
	/* span[d]: bytes from the first to the last element of the box with
	 * dims before d fixed (span[nd] = one element). */
	span[nd] = elem;
	for (int d = nd - 1; d >= 0; d--)
		span[d] = span[d + 1] + (p->box_sz[d] - 1) * stride[d];
	if (span[0] <= limit)
		return 0;
	int d = 0;
	while (span[d + 1] > limit)
		d++;
	uint64_t k = 1 + (limit - span[d + 1]) / stride[d];
	*cut_dim = d;
	*run = k < p->box_sz[d] ? k : p->box_sz[d];
	return 1;
}

/* The next piece after *at (an index into the box per dim, from the
 * odometer of choose_cut's cut); 0 when there is none. */
static int next_piece(const pending_read *whole, int cut_dim, uint64_t run, uint64_t *at)
{
	at[cut_dim] += run;
	if (at[cut_dim] < whole->box_sz[cut_dim])
		return 1;
	at[cut_dim] = 0;
	for (int d = cut_dim - 1; d >= 0; d--) {
		if (++at[d] < whole->box_sz[d])
			return 1;
		at[d] = 0;
	}
	return 0;
}

/* The piece of `whole` starting at `at`. */
static void make_piece(const load_run *l, const pending_read *whole, int cut_dim, uint64_t run,
                       const uint64_t *at, pending_read *p)
{
	int nd = whole->mi->ndim;
	*p = *whole;
	for (int d = 0; d < nd; d++) {
		p->box_off[d] = whole->box_off[d] + at[d];
		if (d < cut_dim)
			p->box_sz[d] = 1;
		else if (d == cut_dim)
			p->box_sz[d] = whole->box_sz[d] - at[d] < run ? whole->box_sz[d] - at[d] : run;
	}
	dcp_box_byte_range(nd, p->chunk->offsets, p->chunk->sizes, p->box_off, p->box_sz,
	                   dcp_dtype_size(p->mi->dtype), &p->first, &p->end);
	uint64_t probe[DCP_MAX_DIMS];
	memcpy(probe, at, sizeof(probe));
	p->last_piece = !next_piece(whole, cut_dim, run, probe);
	widen_to_blocks(l, p);
}

static int deliver(load_run *l, pending_read *p, dcp_msg *msg)
{
	/* Verified already on an I/O thread: only a failure is checked again,
	 * here, to produce its message. */
	if (l->opts.verify && (!p->verified || p->verify_status != DCP_OK)) {
		int rc = verify(l, p, msg);
		if (rc != DCP_OK)
			return rc;
	}
	const dcp_read_item *it = p->item;
	if (p->mi->type == DCP_ITEM_BYTES)
		return l->planner.load_bytes(l->planner.ctx, l->state, it, p->buf, p->end - p->first, msg);
	if (!p->direct)
		dcp_box_copy(p->mi->ndim, dcp_dtype_size(p->mi->dtype), p->buf, p->first, p->chunk->offsets,
		             p->chunk->sizes, p->dst, p->dst_off, p->dst_sz, p->box_off, p->box_sz);
	if (!p->last_piece)
		return DCP_OK;
	return l->planner.commit_tensor(l->planner.ctx, l->state, it, msg);
}

/*
 * A plugin's read error names the object (e.g. a truncated or missing file)
 * but not the keys, which only the core knows: append the key of the first
 * read of this batch from the object the message names.
 */
static void name_keys_of_object(const pending_read *ps, size_t n, dcp_msg *msg)
{
	const pending_read *first = NULL;
	size_t others = 0;
	for (size_t i = 0; i < n; i++) {
		const dcp_storage_info *si = &ps[i].chunk->storage;
		if (si->path == NULL || strstr(msg->text, si->path) == NULL)
			continue;
		if (first == NULL)
			first = &ps[i];
		else if (strcmp(ps[i].mi->key, first->mi->key) != 0)
			others++;
	}
	if (first == NULL)
		return;
	const dcp_storage_info *si = &first->chunk->storage;
	size_t used = strlen(msg->text);
	if (others == 0)
		snprintf(msg->text + used, sizeof(msg->text) - used,
		         " (reading '%s': bytes [%llu, %llu) of %s)", first->mi->key,
		         (unsigned long long)(si->offset + first->first),
		         (unsigned long long)(si->offset + first->end), si->path);
	else
		snprintf(msg->text + used, sizeof(msg->text) - used,
		         " (reading '%s' and %zu other key(s) stored in %s)", first->mi->key, others,
		         si->path);
}

/* What read_request_done needs to verify one request of a batch. */
typedef struct batch_hook {
	load_run *l;
	pending_read *ps;
	size_t n;
} batch_hook;

/* Runs on a plugin's I/O thread: touches only request `index`. */
static void verify_on_io_thread(void *ctx, size_t index)
{
	batch_hook *h = ctx;
	if (index >= h->n || h->ps[index].verified)
		return;
	h->ps[index].verify_status = verify(h->l, &h->ps[index], NULL);
	h->ps[index].verified = 1;
}

/* Reads one batch, then verifies and delivers it. Frees staging buffers. */
static void run_batch(load_run *l, pending_read *ps, dcp_read_req *reqs, size_t n, dcp_local_failure *f)
{
	dcp_msg msg = {{0}};
	dcp_future *fut = dcp_future_new();
	if (fut == NULL) {
		dcp_fail(f, DCP_ENOMEM, "read_data", "out of memory");
		return;
	}
	batch_hook hook = {l, ps, n};
	if (l->opts.verify) {
		fut->on_request_done = verify_on_io_thread;
		fut->on_request_done_ctx = &hook;
	}
	int rc = l->reader->ops->read_data(l->reader, &l->final_plan, reqs, n, fut, &msg);
	if (rc == DCP_OK)
		rc = dcp_future_wait(fut, &msg);
	dcp_future_free(fut);
	if (rc != DCP_OK) {
		name_keys_of_object(ps, n, &msg);
		dcp_fail_msg(f, rc, "read_data", &msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		rc = deliver(l, &ps[i], &msg);
		if (rc != DCP_OK) {
			dcp_fail_msg(f, rc, rc == DCP_ECORRUPT ? "verify" : "commit", &msg);
			return;
		}
	}
}

static int check_plan_indexes(const load_run *l, dcp_msg *msg)
{
	size_t ne = dcp_state_count(l->state);
	for (size_t i = 0; i < l->final_plan.nitems; i++) {
		const dcp_read_item *it = &l->final_plan.items[i];
		if (it->md_item >= l->md->nitems || it->md_chunk >= l->md->items[it->md_item].nchunks ||
		    it->entry >= ne) {
			dcp_msgf(msg,
			         "read item %zu of the final plan points outside the metadata or the state",
			         i);
			return DCP_EPLAN;
		}
	}
	return DCP_OK;
}

/* The reads of one batch, in the order of the plan. */
typedef struct read_queue {
	pending_read *ps;
	dcp_read_req *reqs;
	size_t n, cap;
	uint64_t staged; /* bytes of staging buffers held by the batch */
} read_queue;

static void queue_flush(load_run *l, read_queue *q, dcp_local_failure *f)
{
	if (q->n > 0 && f->code == DCP_OK)
		run_batch(l, q->ps, q->reqs, q->n, f);
	for (size_t k = 0; k < q->n; k++)
		if (!q->ps[k].direct) {
			free(q->ps[k].buf);
			q->ps[k].buf = NULL;
		}
	q->n = 0;
	q->staged = 0;
}

/* Adds one read to the batch, running the batch first if the read's
 * staging would take it over the limit. Allocates the read's staging. */
static void queue_add(load_run *l, read_queue *q, const pending_read *p, uint64_t limit, dcp_local_failure *f)
{
	uint64_t need = p->direct ? 0 : p->end - p->first;
	if (q->n > 0 && q->staged + need > limit)
		queue_flush(l, q, f);
	if (f->code != DCP_OK)
		return;
	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 64;
		pending_read *ps = realloc(q->ps, cap * sizeof(*ps));
		if (ps != NULL)
			q->ps = ps;
		dcp_read_req *reqs = ps != NULL ? realloc(q->reqs, cap * sizeof(*reqs)) : NULL;
		if (reqs == NULL) {
			dcp_fail(f, DCP_ENOMEM, "read_data", "out of memory preparing %zu reads", cap);
			return;
		}
		q->reqs = reqs;
		q->cap = cap;
	}
	pending_read *mine = &q->ps[q->n];
	*mine = *p;
	if (!mine->direct) {
		mine->buf = malloc(need ? need : 1);
		if (mine->buf == NULL) {
			dcp_fail(f, DCP_ENOMEM, "read_data", "out of memory staging %llu bytes of '%s'",
			         (unsigned long long)need, mine->mi->key);
			return;
		}
		q->staged += need;
	}
	dcp_read_req *r = &q->reqs[q->n];
	memset(r, 0, sizeof(*r));
	r->storage = &mine->chunk->storage;
	r->offset = mine->first;
	r->length = mine->end - mine->first;
	r->dst = mine->buf;
	q->n++;
}

static void read_local(load_run *l, const dcp_buf *plan_reply, dcp_local_failure *f)
{
	dcp_msg msg = {{0}};
	int rc = dcp_load_plan_decode(plan_reply->data, plan_reply->len, &l->final_plan);
	if (rc == DCP_OK)
		rc = check_plan_indexes(l, &msg);
	else
		dcp_msgf(&msg, "the final plan from the coordinator could not be decoded");
	if (rc != DCP_OK) {
		dcp_fail_msg(f, rc, "read_data", &msg);
		return;
	}
	uint64_t limit = l->opts.staging_limit ? l->opts.staging_limit : STAGING_LIMIT;
	read_queue q = {0};
	for (size_t i = 0; i < l->final_plan.nitems && f->code == DCP_OK; i++) {
		pending_read p;
		rc = prepare_read(l, &l->final_plan.items[i], &p, &msg);
		if (rc != DCP_OK) {
			dcp_fail_msg(f, rc, "resolve_tensor", &msg);
			break;
		}
		int cut_dim = 0;
		uint64_t run = 0, elem = dcp_dtype_size(p.mi->dtype);
		if (p.direct || p.mi->type != DCP_ITEM_TENSOR || p.mi->ndim == 0 ||
		    p.end - p.first <= limit ||
		    !choose_cut(&p, elem, limit > elem ? limit : elem, &cut_dim, &run)) {
			queue_add(l, &q, &p, limit, f);
			continue;
		}
		/* Too large to stage at once: read it in pieces. */
		uint64_t at[DCP_MAX_DIMS] = {0};
		do {
			pending_read piece;
			make_piece(l, &p, cut_dim, run, at, &piece);
			queue_add(l, &q, &piece, limit, f);
		} while (f->code == DCP_OK && next_piece(&p, cut_dim, run, at));
	}
	queue_flush(l, &q, f);
	free(q.ps);
	free(q.reqs);
}

/* After success: every state entry the checkpoint had is loaded. */
static void mark_loaded(load_run *l)
{
	size_t ne = dcp_state_count(l->state);
	for (size_t i = 0; i < ne; i++) {
		const dcp_state_entry *e = dcp_state_entry_at(l->state, i);
		const dcp_md_item *mi = dcp_metadata_find(l->md, e->key);
		if (mi == NULL)
			continue;
		uint64_t len = 0;
		if (mi->type == DCP_ITEM_BYTES && mi->nchunks == 1)
			len = mi->chunks[0].storage.length;
		dcp_state_mark_loaded(l->state, i, len);
	}
}

static int check_args(const dcp_state *state, const char *url, dcp_comm *comm, const dcp_load_options *o,
                      dcp_error **err)
{
	const char *problem = NULL;
	/* A NULL state or url fails this rank inside the collective steps (so
	 * that no other rank waits for it); only what every rank passes alike
	 * (options) is refused here, before any collective. */
	(void)state;
	(void)url;
	if (o->version < 1 || o->version > DCP_LOAD_OPTIONS_VERSION)
		problem = "options.version is not DCP_LOAD_OPTIONS_VERSION (initialise with "
		          "DCP_LOAD_OPTIONS_INIT)";
	else if (o->coordinator < 0 || o->coordinator >= comm->size(comm))
		problem = "options.coordinator is not a rank of the comm";
	else if (o->planner != NULL && o->planner->version != DCP_LOAD_PLANNER_VERSION)
		problem = "options.planner->version is not DCP_LOAD_PLANNER_VERSION (set it when filling the "
		          "planner's slots)";
	if (problem == NULL)
		return DCP_OK;
	dcp_error_set(err, dcp_error_local(DCP_EINVAL, "dcp_load", "dcp_load: %s", problem));
	return DCP_EINVAL;
}

int dcp_load(dcp_state *state, const char *url, dcp_comm *comm, const dcp_load_options *options,
             dcp_error **err)
{
	static const dcp_load_options defaults = DCP_LOAD_OPTIONS_INIT;
	dcp_comm *owned = NULL;
	if (err != NULL)
		*err = NULL;
	comm = dcp_comm_or_single(comm, &owned);
	if (comm == NULL) {
		dcp_error_set(err, dcp_error_local(DCP_ENOMEM, "dcp_load", "out of memory creating a comm"));
		return DCP_ENOMEM;
	}
	load_run l;
	memset(&l, 0, sizeof(l));
	l.opts = defaults;
	if (options != NULL && options->version == 1) /* a version 1 struct ends before staging_limit */
		memcpy(&l.opts, options, offsetof(dcp_load_options, staging_limit));
	else if (options != NULL)
		l.opts = *options;
	int rc = check_args(state, url, comm, &l.opts, err);
	if (rc != DCP_OK) {
		dcp_comm_free(owned);
		return rc;
	}
	l.state = state;
	l.comm = comm;
	l.rank = comm->rank(comm);
	l.size = comm->size(comm);
	dcp_load_planner_resolve(l.opts.planner, &l.planner);
	if (state != NULL)
		dcp_state_reset_loaded(state);
	dcp_msg msg = {{0}};
	rc = dcp_url_canonical(url, &l.url, &msg);

	/* Metadata step: the coordinator reads the metadata, the others get
	 * it (with its URL) from the coordinator. */
	dcp_local_failure f = {0};
	dcp_wbuf bundle = {0};
	int coord = l.rank == l.opts.coordinator;
	if (state == NULL)
		dcp_fail(&f, DCP_EINVAL, "dcp_load",
		         "dcp_load: state is NULL on this rank: every rank passes its own "
		         "state (an empty one if it holds nothing)");
	else if (url == NULL)
		dcp_fail(&f, DCP_EINVAL, "dcp_load",
		         "dcp_load: url is NULL on this rank: every rank passes the same "
		         "checkpoint id");
	else if (rc != DCP_OK)
		dcp_fail_msg(&f, rc, "validate_checkpoint_id", &msg);
	else if (coord)
		read_metadata_once(&l, &f, &bundle);
	dcp_step_local first = {f.code, f.stage, f.msg.text, NULL, 0};
	dcp_buf ignored = {0};
	rc = dcp_step_exchange(comm, l.opts.coordinator, "plan", &first, NULL, NULL, &ignored, err);
	free(ignored.data);
	if (rc == DCP_OK && l.size > 1) {
		dcp_buf shared = {coord ? bundle.data : NULL, coord ? bundle.len : 0};
		rc = comm->broadcast(comm, l.opts.coordinator, &shared);
		if (rc != DCP_OK)
			dcp_error_set(err, dcp_error_local(rc, "read_metadata",
			                                   "the metadata could not be sent from the "
			                                   "coordinator (rank %d) to the other ranks: %s",
			                                   l.opts.coordinator, dcp_strerror(rc)));
		else if (!coord) {
			take_metadata(&l, &shared, &f);
			free(shared.data);
		}
	}
	dcp_wbuf_free(&bundle);

	/* Plan step. */
	dcp_load_plan local = {0};
	dcp_wbuf w = {0};
	if (rc == DCP_OK && f.code == DCP_OK)
		plan_local(&l, &f, &local);
	if (f.code == DCP_OK) {
		dcp_load_plan_encode(&local, &w);
		if (w.failed)
			dcp_fail(&f, DCP_ENOMEM, "create_local_plan",
			         "out of memory encoding the local plan");
	}
	dcp_step_local mine = {f.code, f.stage, f.msg.text, w.data, w.len};
	dcp_buf reply = {0};
	if (rc == DCP_OK)
		rc = dcp_step_exchange(comm, l.opts.coordinator, "plan", &mine, plan_global, &l, &reply, err);
	dcp_wbuf_free(&w);
	dcp_load_plan_clear(&local);

	if (rc == DCP_OK) {
		dcp_local_failure rf = {0};
		read_local(&l, &reply, &rf);
		dcp_step_local rmine = {rf.code, rf.stage, rf.msg.text, NULL, 0};
		dcp_buf rreply = {0};
		rc = dcp_step_exchange(comm, l.opts.coordinator, "read", &rmine, NULL, NULL, &rreply, err);
		free(rreply.data);
		if (rc == DCP_OK)
			mark_loaded(&l);
	}
	free(reply.data);

	if (l.reader != NULL)
		l.reader->ops->close(l.reader);
	dcp_load_plan_clear(&l.final_plan);
	if (l.plans != NULL)
		for (int r = 0; r < l.nplans; r++)
			dcp_load_plan_clear(&l.plans[r]);
	free(l.plans);
	dcp_metadata_free(l.md);
	free(l.url);
	dcp_comm_free(owned);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Metadata only                                                            */
/* ------------------------------------------------------------------------ */

int dcp_read_metadata(const char *url, dcp_registry *reg, dcp_metadata **out, dcp_error **err)
{
	dcp_msg msg = {{0}};
	dcp_plugin *p = NULL;
	char *canon = NULL;
	if (out == NULL) {
		dcp_error_set(err, dcp_error_local(DCP_EINVAL, "dcp_read_metadata",
		                                   "dcp_read_metadata: out is NULL"));
		return DCP_EINVAL;
	}
	*out = NULL;
	int rc = dcp_registry_resolve(reg, url, 1, 0, &p, &canon, &msg);
	if (rc != DCP_OK) {
		dcp_error_set(err, dcp_error_local(rc, "validate_checkpoint_id", "%s", msg.text));
		return rc;
	}
	dcp_open_options oo = {DCP_OPEN_OPTIONS_VERSION, 0, 1, 1};
	dcp_storage_reader *r = NULL;
	const char *stage = "reader_open";
	rc = p->reader_open(p, canon, &oo, &r, &msg);
	if (rc == DCP_OK && r == NULL)
		rc = DCP_EPLUGIN;
	if (rc != DCP_OK)
		r = NULL; /* a failed open owns nothing (as in dcp_load) */
	if (rc == DCP_OK && (rc = dcp_check_reader_ops(p, r->ops, &msg)) != DCP_OK)
		r = NULL;
	if (rc == DCP_OK) {
		stage = "read_metadata";
		rc = r->ops->read_metadata(r, out, &msg);
		if (rc == DCP_OK && *out == NULL)
			rc = DCP_EPLUGIN;
	}
	if (r != NULL)
		r->ops->close(r);
	free(canon);
	if (rc > 0) /* statuses are negative: a positive one is a broken plugin */
		rc = DCP_EPLUGIN;
	if (rc != DCP_OK) {
		dcp_metadata_free(*out);
		*out = NULL;
		dcp_error_set(err,
		              dcp_error_local(rc, stage, "%s", msg.text[0] ? msg.text : dcp_strerror(rc)));
	}
	return rc;
}
