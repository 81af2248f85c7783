/*
 * The default load planner: for every chunk a rank wants, the stored chunks
 * that overlap it (resharding), strict about keys, dtypes and shapes unless
 * a partial load is asked for.
 *
 * Overlap search is not quadratic: per stored tensor, chunks are indexed by
 * their start along the dimension with the most distinct starts; a query
 * looks only at chunks whose start lies in (lo - longest extent, hi).
 */
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "planner_internal.h"
#include "state_internal.h"
#include "url.h"

void dcp_load_plan_clear(dcp_load_plan *plan)
{
	if (plan == NULL)
		return;
	free(plan->items);
	free(plan->storage_data);
	memset(plan, 0, sizeof(*plan));
}

typedef struct chunk_index {
	int dim;
	uint64_t max_extent;
	uint32_t n;
	uint32_t *order; /* chunk numbers sorted by offsets[dim] */
	const dcp_md_item *item;
} chunk_index;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : (x > y);
}

/* qsort has no context argument in C11: sort (start, chunk) pairs instead. */
typedef struct start_pair {
	uint64_t start;
	uint32_t chunk;
} start_pair;

static int cmp_pair(const void *a, const void *b)
{
	const start_pair *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->chunk < y->chunk ? -1 : (x->chunk > y->chunk);
}

static int index_build(chunk_index *ix, const dcp_md_item *mi)
{
	memset(ix, 0, sizeof(*ix));
	ix->item = mi;
	ix->n = (uint32_t)mi->nchunks;
	if (mi->ndim == 0 || mi->nchunks == 0)
		return DCP_OK;
	uint64_t *starts = malloc(mi->nchunks * sizeof(*starts));
	start_pair *pairs = malloc(mi->nchunks * sizeof(*pairs));
	ix->order = malloc(mi->nchunks * sizeof(*ix->order));
	if (starts == NULL || pairs == NULL || ix->order == NULL) {
		free(starts);
		free(pairs);
		free(ix->order);
		ix->order = NULL;
		return DCP_ENOMEM;
	}
	size_t best_distinct = 0;
	for (int d = 0; d < mi->ndim; d++) {
		for (size_t c = 0; c < mi->nchunks; c++)
			starts[c] = mi->chunks[c].offsets[d];
		qsort(starts, mi->nchunks, sizeof(*starts), cmp_u64);
		size_t distinct = 1;
		for (size_t c = 1; c < mi->nchunks; c++)
			distinct += starts[c] != starts[c - 1];
		if (distinct > best_distinct) {
			best_distinct = distinct;
			ix->dim = d;
		}
	}
	for (size_t c = 0; c < mi->nchunks; c++) {
		pairs[c].start = mi->chunks[c].offsets[ix->dim];
		pairs[c].chunk = (uint32_t)c;
		if (mi->chunks[c].sizes[ix->dim] > ix->max_extent)
			ix->max_extent = mi->chunks[c].sizes[ix->dim];
	}
	qsort(pairs, mi->nchunks, sizeof(*pairs), cmp_pair);
	for (size_t c = 0; c < mi->nchunks; c++)
		ix->order[c] = pairs[c].chunk;
	free(starts);
	free(pairs);
	return DCP_OK;
}

/* First position in ix->order whose start is >= v. */
static size_t index_lower_bound(const chunk_index *ix, uint64_t v)
{
	size_t lo = 0, hi = ix->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ix->item->chunks[ix->order[mid]].offsets[ix->dim] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

typedef struct plan_builder {
	dcp_load_plan *plan;
	size_t cap;
} plan_builder;

static dcp_read_item *plan_push(plan_builder *b)
{
	if (b->plan->nitems == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		dcp_read_item *p = realloc(b->plan->items, cap * sizeof(*p));
		if (p == NULL)
			return NULL;
		b->plan->items = p;
		b->cap = cap;
	}
	dcp_read_item *it = &b->plan->items[b->plan->nitems++];
	memset(it, 0, sizeof(*it));
	return it;
}

static void shape_text(char *buf, size_t len, int ndim, const uint64_t *shape)
{
	size_t used = (size_t)snprintf(buf, len, "[");
	for (int d = 0; d < ndim && used < len; d++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu", d ? ", " : "",
		                         (unsigned long long)shape[d]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
}

static int check_entry(const dcp_state_entry *e, const dcp_md_item *mi, dcp_msg *msg)
{
	if (e->type != mi->type) {
		dcp_msgf(msg, "key '%s' is %s in the state but %s in the checkpoint", e->key,
		         e->type == DCP_ITEM_TENSOR ? "a tensor" : "a bytes item",
		         mi->type == DCP_ITEM_TENSOR ? "a tensor" : "a bytes item");
		return DCP_EMISMATCH;
	}
	if (e->type == DCP_ITEM_BYTES) {
		/* Refused before anything is read: a caller's buffer must hold it. */
		uint64_t stored = mi->nchunks == 1 ? mi->chunks[0].storage.length : 0;
		const dcp_state_chunk *c = &e->chunks[0];
		if (c->data != NULL && stored > c->nbytes) {
			dcp_msgf(msg,
			         "bytes item '%s' is %llu bytes in the checkpoint but the buffer holds %llu: "
			         "pass a "
			         "larger buffer, or NULL to let libdcp allocate",
			         e->key, (unsigned long long)stored, (unsigned long long)c->nbytes);
			return DCP_EMISMATCH;
		}
		return DCP_OK;
	}
	if (e->dtype != mi->dtype) {
		dcp_msgf(msg, "key '%s': dtype %s requested but the checkpoint has %s", e->key,
		         dcp_dtype_name(e->dtype), dcp_dtype_name(mi->dtype));
		return DCP_EMISMATCH;
	}
	if (e->ndim != mi->ndim || memcmp(e->shape, mi->shape, sizeof(uint64_t) * (size_t)e->ndim) != 0) {
		char a[200], b[200];
		shape_text(a, sizeof(a), e->ndim, e->shape);
		shape_text(b, sizeof(b), mi->ndim, mi->shape);
		dcp_msgf(msg, "key '%s': shape %s requested but the checkpoint has %s", e->key, a, b);
		return DCP_EMISMATCH;
	}
	return DCP_OK;
}

int dcp_default_load_create_local_plan(void *ctx, const dcp_state *state, const dcp_metadata *md,
                                       const dcp_load_options *opts, dcp_load_plan *out, dcp_msg *msg)
{
	(void)ctx;
	memset(out, 0, sizeof(*out));
	plan_builder b = {out, 0};
	size_t ne = dcp_state_count(state);
	chunk_index ix = {0};
	for (size_t i = 0; i < ne; i++) {
		const dcp_state_entry *e = dcp_state_entry_at(state, i);
		const dcp_md_item *mi = dcp_metadata_find(md, e->key);
		if (mi == NULL) {
			if (opts->partial)
				continue;
			dcp_msgf(
			        msg,
			        "key '%s' is not in the checkpoint (it has %zu keys): check the key, or load "
			        "with partial=1 to skip keys the checkpoint lacks",
			        e->key, md->nitems);
			dcp_load_plan_clear(out);
			return DCP_ENOTFOUND;
		}
		int rc = check_entry(e, mi, msg);
		if (rc != DCP_OK) {
			dcp_load_plan_clear(out);
			return rc;
		}
		uint32_t mi_index = (uint32_t)(mi - md->items);
		if (e->type == DCP_ITEM_BYTES) {
			dcp_read_item *it = plan_push(&b);
			if (it == NULL)
				goto nomem;
			it->md_item = mi_index;
			it->entry = (uint32_t)i;
			continue;
		}
		if (index_build(&ix, mi) != DCP_OK)
			goto nomem;
		for (size_t c = 0; c < e->nchunks; c++) {
			const dcp_state_chunk *want = &e->chunks[c];
			if (dcp_box_volume(e->ndim, want->sizes, NULL) == 0)
				continue;
			if (e->ndim == 0) { /* a scalar: one chunk holds it */
				dcp_read_item *it = plan_push(&b);
				if (it == NULL)
					goto nomem;
				it->md_item = mi_index;
				it->entry = (uint32_t)i;
				it->chunk = (uint32_t)c;
				continue;
			}
			uint64_t lo = want->offsets[ix.dim], hi = lo + want->sizes[ix.dim];
			size_t from = index_lower_bound(&ix, lo > ix.max_extent ? lo - ix.max_extent + 1 : 0);
			size_t to = index_lower_bound(&ix, hi);
			for (size_t k = from; k < to; k++) {
				uint32_t sc = ix.order[k];
				const dcp_md_chunk *stored = &mi->chunks[sc];
				uint64_t bo[DCP_MAX_DIMS], bs[DCP_MAX_DIMS];
				if (!dcp_box_intersect(e->ndim, want->offsets, want->sizes, stored->offsets,
				                       stored->sizes, bo, bs))
					continue;
				dcp_read_item *it = plan_push(&b);
				if (it == NULL)
					goto nomem;
				it->md_item = mi_index;
				it->md_chunk = sc;
				it->entry = (uint32_t)i;
				it->chunk = (uint32_t)c;
				memcpy(it->box_offsets, bo, sizeof(bo));
				memcpy(it->box_sizes, bs, sizeof(bs));
			}
		}
		free(ix.order);
		ix.order = NULL;
	}
	return DCP_OK;
nomem:
	free(ix.order);
	dcp_load_plan_clear(out);
	dcp_msgf(msg, "out of memory building the load plan");
	return DCP_ENOMEM;
}

int dcp_default_load_create_global_plan(void *ctx, dcp_load_plan *plans, int nranks, dcp_msg *msg)
{
	(void)ctx;
	(void)plans;
	(void)nranks;
	(void)msg;
	return DCP_OK;
}

int dcp_default_load_load_bytes(void *ctx, dcp_state *state, const dcp_read_item *item, const void *data,
                                uint64_t len, dcp_msg *msg)
{
	(void)ctx;
	return dcp_state_store_bytes(state, item->entry, data, len, msg);
}

int dcp_default_load_resolve_tensor(void *ctx, dcp_state *state, const dcp_read_item *item, void **dst,
                                    uint64_t dst_offsets[DCP_MAX_DIMS], uint64_t dst_sizes[DCP_MAX_DIMS],
                                    dcp_msg *msg)
{
	(void)ctx;
	const dcp_state_entry *e = dcp_state_entry_at(state, item->entry);
	if (e == NULL || item->chunk >= e->nchunks) {
		dcp_msgf(msg, "read item (entry %u, chunk %u) does not match this rank's state", item->entry,
		         item->chunk);
		return DCP_EPLAN;
	}
	*dst = e->chunks[item->chunk].data;
	memcpy(dst_offsets, e->chunks[item->chunk].offsets, sizeof(uint64_t) * DCP_MAX_DIMS);
	memcpy(dst_sizes, e->chunks[item->chunk].sizes, sizeof(uint64_t) * DCP_MAX_DIMS);
	return DCP_OK;
}

int dcp_default_load_commit_tensor(void *ctx, dcp_state *state, const dcp_read_item *item, dcp_msg *msg)
{
	(void)ctx;
	(void)state;
	(void)item;
	(void)msg;
	return DCP_OK;
}

void dcp_load_planner_resolve(const dcp_load_planner *custom, dcp_load_planner *out)
{
	memset(out, 0, sizeof(*out));
	if (custom != NULL && custom->version >= 1)
		*out = *custom;
	out->version = DCP_LOAD_PLANNER_VERSION;
	if (out->create_local_plan == NULL)
		out->create_local_plan = dcp_default_load_create_local_plan;
	if (out->create_global_plan == NULL)
		out->create_global_plan = dcp_default_load_create_global_plan;
	if (out->load_bytes == NULL)
		out->load_bytes = dcp_default_load_load_bytes;
	if (out->resolve_tensor == NULL)
		out->resolve_tensor = dcp_default_load_resolve_tensor;
	if (out->commit_tensor == NULL)
		out->commit_tensor = dcp_default_load_commit_tensor;
}
