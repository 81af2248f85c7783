/*
 * The default save planner: one write item per chunk on every rank; on the
 * coordinator, dedup of replicated items (equal copies saved once, divergent
 * copies refused), validation of every tensor's chunks, and the description
 * of the checkpoint that becomes its metadata.
 */
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "metadata_internal.h"
#include "planner_internal.h"
#include "url.h"

void dcp_save_plan_clear(dcp_save_plan *plan)
{
	if (plan == NULL)
		return;
	for (size_t i = 0; i < plan->nitems; i++)
		free(plan->items[i].key);
	free(plan->items);
	free(plan->storage_data);
	free(plan->save_id);
	memset(plan, 0, sizeof(*plan));
}

int dcp_default_save_create_local_plan(void *ctx, const dcp_state *state, int rank, dcp_save_plan *out,
                                       dcp_msg *msg)
{
	(void)ctx;
	(void)rank;
	size_t n = 0, ne = dcp_state_count(state);
	for (size_t i = 0; i < ne; i++)
		n += dcp_state_entry_at(state, i)->nchunks;
	memset(out, 0, sizeof(*out));
	if (n == 0)
		return DCP_OK;
	out->items = calloc(n, sizeof(*out->items));
	if (out->items == NULL) {
		dcp_msgf(msg, "out of memory planning %zu items", n);
		return DCP_ENOMEM;
	}
	for (size_t i = 0; i < ne; i++) {
		const dcp_state_entry *e = dcp_state_entry_at(state, i);
		for (size_t c = 0; c < e->nchunks; c++) {
			const dcp_state_chunk *ch = &e->chunks[c];
			dcp_write_item *it = &out->items[out->nitems];
			it->key = dcp_strdup(e->key);
			if (it->key == NULL) {
				dcp_save_plan_clear(out);
				dcp_msgf(msg, "out of memory planning key '%s'", e->key);
				return DCP_ENOMEM;
			}
			out->nitems++;
			it->type = e->type;
			it->dtype = e->dtype;
			it->ndim = e->type == DCP_ITEM_TENSOR ? e->ndim : 0;
			for (int d = 0; d < it->ndim; d++) {
				it->shape[d] = e->shape[d];
				it->offsets[d] = ch->offsets[d];
				it->sizes[d] = ch->sizes[d];
			}
			if (e->type == DCP_ITEM_TENSOR)
				it->nbytes =
				        dcp_box_volume(it->ndim, it->sizes, NULL) * dcp_dtype_size(e->dtype);
			else
				it->nbytes = ch->nbytes;
			it->replicated = e->replicated;
			it->digest = e->replicated ? dcp_checksum(ch->data, it->nbytes) : 0;
			it->entry = (uint32_t)i;
			it->chunk = (uint32_t)c;
		}
	}
	return DCP_OK;
}

/* One write item of one rank, for sorting all items of all ranks by key. */
typedef struct item_ref {
	const char *key;
	int rank;
	uint32_t index;
} item_ref;

static int ref_cmp(const void *a, const void *b)
{
	const item_ref *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c != 0)
		return c;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->index < y->index ? -1 : (x->index > y->index);
}

/* A replicated key: the refs [first, first+count) and the chosen keeper. */
typedef struct replica_group {
	size_t first;
	size_t count;
	uint64_t nbytes;
} replica_group;

static int group_size_desc(const void *a, const void *b)
{
	const replica_group *x = a, *y = b;
	if (x->nbytes != y->nbytes)
		return x->nbytes > y->nbytes ? -1 : 1;
	return x->first < y->first ? -1 : (x->first > y->first);
}

static void format_shape(char *buf, size_t len, int ndim, const uint64_t *shape)
{
	size_t used = 0;
	used += (size_t)snprintf(buf, len, "[");
	for (int d = 0; d < ndim && used < len; d++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu", d ? ", " : "",
		                         (unsigned long long)shape[d]);
	if (used < len)
		snprintf(buf + used, len - used, "]");
}

static const char *kind_name(const dcp_write_item *it)
{
	if (it->type == DCP_ITEM_BYTES)
		return "a bytes item";
	return it->replicated ? "a whole (replicated) tensor" : "a tensor shard";
}

/* Checks that every ref of one key describes the same thing. */
static int check_group_consistent(dcp_save_plan *plans, const item_ref *refs, size_t first, size_t count,
                                  dcp_msg *msg)
{
	const dcp_write_item *a = &plans[refs[first].rank].items[refs[first].index];
	for (size_t k = first + 1; k < first + count; k++) {
		const dcp_write_item *b = &plans[refs[k].rank].items[refs[k].index];
		if (a->type != b->type || a->replicated != b->replicated) {
			dcp_msgf(msg,
			         "key '%s' is %s on rank %d but %s on rank %d: a key must be the same kind "
			         "on every rank",
			         a->key, kind_name(a), refs[first].rank, kind_name(b), refs[k].rank);
			return DCP_EPLAN;
		}
		if (a->type != DCP_ITEM_TENSOR)
			continue;
		if (a->dtype != b->dtype) {
			dcp_msgf(msg, "key '%s' has dtype %s on rank %d but %s on rank %d", a->key,
			         dcp_dtype_name(a->dtype), refs[first].rank, dcp_dtype_name(b->dtype),
			         refs[k].rank);
			return DCP_EPLAN;
		}
		if (a->ndim != b->ndim ||
		    memcmp(a->shape, b->shape, sizeof(uint64_t) * (size_t)a->ndim) != 0) {
			char sa[200], sb[200];
			format_shape(sa, sizeof(sa), a->ndim, a->shape);
			format_shape(sb, sizeof(sb), b->ndim, b->shape);
			dcp_msgf(msg, "key '%s' has global shape %s on rank %d but %s on rank %d", a->key, sa,
			         refs[first].rank, sb, refs[k].rank);
			return DCP_EPLAN;
		}
	}
	return DCP_OK;
}

/* Replicated copies must be equal: pytorch#120356 kept one silently. */
static int check_replicas_equal(dcp_save_plan *plans, const item_ref *refs, size_t first, size_t count,
                                dcp_msg *msg)
{
	const dcp_write_item *a = &plans[refs[first].rank].items[refs[first].index];
	char ranks[400];
	size_t used = 0;
	int differ = 0;
	ranks[0] = '\0';
	for (size_t k = first + 1; k < first + count; k++) {
		const dcp_write_item *b = &plans[refs[k].rank].items[refs[k].index];
		if (a->nbytes == b->nbytes && a->digest == b->digest)
			continue;
		if (used + 40 < sizeof(ranks))
			used += (size_t)snprintf(ranks + used, sizeof(ranks) - used,
			                         "%s%d (%llu bytes, checksum %016llx)", differ ? ", " : "",
			                         refs[k].rank, (unsigned long long)b->nbytes,
			                         (unsigned long long)b->digest);
		differ++;
	}
	if (differ == 0)
		return DCP_OK;
	dcp_msgf(msg,
	         "replicated key '%s' differs between ranks: rank %d has %llu bytes, checksum %016llx; "
	         "rank(s) "
	         "%s differ. A key held by several ranks must hold equal data on each; give per-rank data a "
	         "per-rank key",
	         a->key, refs[first].rank, (unsigned long long)a->nbytes, (unsigned long long)a->digest,
	         ranks);
	return DCP_EDIVERGED;
}

static int fill_md_item(dcp_save_plan *plans, const item_ref *refs, size_t first, size_t count,
                        dcp_md_item *mi, dcp_msg *msg)
{
	const dcp_write_item *a = &plans[refs[first].rank].items[refs[first].index];
	mi->key = dcp_strdup(a->key);
	if (mi->key == NULL)
		goto nomem;
	mi->type = a->type;
	mi->dtype = a->type == DCP_ITEM_TENSOR ? a->dtype : DCP_U8;
	mi->ndim = a->type == DCP_ITEM_TENSOR ? a->ndim : 0;
	memcpy(mi->shape, a->shape, sizeof(mi->shape));
	size_t n = a->replicated ? 1 : count;
	mi->chunks = calloc(n ? n : 1, sizeof(*mi->chunks));
	if (mi->chunks == NULL)
		goto nomem;
	for (size_t k = first; k < first + n; k++) {
		const dcp_write_item *it = &plans[refs[k].rank].items[refs[k].index];
		if (it->type == DCP_ITEM_TENSOR && it->nbytes == 0)
			continue; /* empty chunks hold no data and are not stored */
		dcp_md_chunk *c = &mi->chunks[mi->nchunks++];
		memcpy(c->offsets, it->offsets, sizeof(c->offsets));
		memcpy(c->sizes, it->sizes, sizeof(c->sizes));
		c->storage.length = it->nbytes;
	}
	if (mi->type == DCP_ITEM_TENSOR) {
		dcp_md_item_sort_chunks(mi);
		int rc = dcp_md_item_validate_chunks(mi, msg);
		if (rc != DCP_OK)
			return DCP_EPLAN;
	}
	return DCP_OK;
nomem:
	dcp_msgf(msg, "out of memory describing key '%s'", a->key);
	return DCP_ENOMEM;
}

/* Drops the items flagged in drop[r][i] from each plan, keeping order. */
static void compact_plans(dcp_save_plan *plans, int nranks, unsigned char **drop)
{
	for (int r = 0; r < nranks; r++) {
		size_t out = 0;
		for (size_t i = 0; i < plans[r].nitems; i++) {
			if (drop[r][i]) {
				free(plans[r].items[i].key);
				continue;
			}
			plans[r].items[out++] = plans[r].items[i];
		}
		plans[r].nitems = out;
	}
}

int dcp_default_save_create_global_plan(void *ctx, dcp_save_plan *plans, int nranks,
                                        const dcp_save_options *opts, dcp_metadata *md, dcp_msg *msg)
{
	(void)ctx;
	int rc = DCP_ENOMEM;
	size_t total = 0, nrefs = 0, ngroups = 0, nkeys = 0;
	for (int r = 0; r < nranks; r++)
		total += plans[r].nitems;
	item_ref *refs = calloc(total ? total : 1, sizeof(*refs));
	replica_group *groups = calloc(total ? total : 1, sizeof(*groups));
	unsigned char **drop = calloc((size_t)nranks, sizeof(*drop));
	uint64_t *load = calloc((size_t)nranks, sizeof(*load));
	if (refs == NULL || groups == NULL || drop == NULL || load == NULL)
		goto nomem;
	for (int r = 0; r < nranks; r++) {
		drop[r] = calloc(plans[r].nitems ? plans[r].nitems : 1, 1);
		if (drop[r] == NULL)
			goto nomem;
		for (size_t i = 0; i < plans[r].nitems; i++) {
			refs[nrefs].key = plans[r].items[i].key;
			refs[nrefs].rank = r;
			refs[nrefs].index = (uint32_t)i;
			nrefs++;
			if (!plans[r].items[i].replicated)
				load[r] += plans[r].items[i].nbytes;
		}
	}
	qsort(refs, nrefs, sizeof(*refs), ref_cmp);

	/* Pass 1: per key, consistency; replicated keys become groups. */
	for (size_t k = 0; k < nrefs;) {
		size_t e = k + 1;
		while (e < nrefs && strcmp(refs[e].key, refs[k].key) == 0)
			e++;
		nkeys++;
		rc = check_group_consistent(plans, refs, k, e - k, msg);
		const dcp_write_item *a = &plans[refs[k].rank].items[refs[k].index];
		if (rc == DCP_OK && a->replicated) {
			rc = check_replicas_equal(plans, refs, k, e - k, msg);
			groups[ngroups].first = k;
			groups[ngroups].count = e - k;
			groups[ngroups].nbytes = a->nbytes;
			ngroups++;
		} else if (rc == DCP_OK) {
			/* A rank must not hold one box of a shard twice: caught by the
			 * overlap check when the chunks are validated. */
		}
		if (rc != DCP_OK)
			goto out;
		k = e;
	}

	/* Pass 2: a keeper per replicated key; largest first so that the
	 * balance is good (greedy longest-processing-time). */
	if (!opts->dedup_keep_lowest_rank)
		qsort(groups, ngroups, sizeof(*groups), group_size_desc);
	for (size_t g = 0; g < ngroups; g++) {
		size_t keep = groups[g].first; /* refs are sorted by rank within a key */
		if (!opts->dedup_keep_lowest_rank) {
			for (size_t k = groups[g].first + 1; k < groups[g].first + groups[g].count; k++)
				if (load[refs[k].rank] < load[refs[keep].rank])
					keep = k;
		}
		load[refs[keep].rank] += groups[g].nbytes;
		for (size_t k = groups[g].first; k < groups[g].first + groups[g].count; k++)
			if (k != keep)
				drop[refs[k].rank][refs[k].index] = 1;
		/* Move the keeper first in its run so fill_md_item sees it. */
		if (keep != groups[g].first) {
			item_ref t = refs[groups[g].first];
			refs[groups[g].first] = refs[keep];
			refs[keep] = t;
		}
	}

	/* Pass 3: the checkpoint's description. */
	md->format_major = DCP_FORMAT_MAJOR;
	md->format_minor = DCP_FORMAT_MINOR;
	md->checksum_block = DCP_CHECKSUM_BLOCK_DEFAULT;
	md->items = calloc(nkeys ? nkeys : 1, sizeof(*md->items));
	if (md->items == NULL)
		goto nomem;
	for (size_t k = 0; k < nrefs;) {
		size_t e = k + 1;
		while (e < nrefs && strcmp(refs[e].key, refs[k].key) == 0)
			e++;
		rc = fill_md_item(plans, refs, k, e - k, &md->items[md->nitems++], msg);
		if (rc != DCP_OK)
			goto out;
		k = e;
	}
	/* Empty tensor chunks are not written. */
	for (int r = 0; r < nranks; r++)
		for (size_t i = 0; i < plans[r].nitems; i++)
			if (plans[r].items[i].type == DCP_ITEM_TENSOR && plans[r].items[i].nbytes == 0)
				drop[r][i] = 1;
	compact_plans(plans, nranks, drop);
	rc = DCP_OK;
	goto out;
nomem:
	rc = DCP_ENOMEM;
	dcp_msgf(msg, "out of memory building the global plan (%zu items)", total);
out:
	if (drop != NULL)
		for (int r = 0; r < nranks; r++)
			free(drop[r]);
	free(drop);
	free(refs);
	free(groups);
	free(load);
	return rc;
}

int dcp_default_save_finish_plan(void *ctx, dcp_save_plan *plan, dcp_msg *msg)
{
	(void)ctx;
	(void)plan;
	(void)msg;
	return DCP_OK;
}

int dcp_default_save_resolve_data(void *ctx, const dcp_state *state, const dcp_write_item *item,
                                  const void **data, uint64_t *len, dcp_msg *msg)
{
	(void)ctx;
	const dcp_state_entry *e = dcp_state_entry_at(state, item->entry);
	if (e == NULL || item->chunk >= e->nchunks || strcmp(e->key, item->key) != 0) {
		dcp_msgf(msg, "write item '%s' does not match this rank's state (entry %u, chunk %u)",
		         item->key, item->entry, item->chunk);
		return DCP_EPLAN;
	}
	*data = e->chunks[item->chunk].data;
	*len = item->nbytes;
	return DCP_OK;
}

void dcp_save_planner_resolve(const dcp_save_planner *custom, dcp_save_planner *out)
{
	memset(out, 0, sizeof(*out));
	out->version = DCP_SAVE_PLANNER_VERSION;
	if (custom != NULL && custom->version >= 1) {
		*out = *custom;
		out->version = DCP_SAVE_PLANNER_VERSION;
	}
	if (out->create_local_plan == NULL)
		out->create_local_plan = dcp_default_save_create_local_plan;
	if (out->create_global_plan == NULL)
		out->create_global_plan = dcp_default_save_create_global_plan;
	if (out->finish_plan == NULL)
		out->finish_plan = dcp_default_save_finish_plan;
	if (out->resolve_data == NULL)
		out->resolve_data = dcp_default_save_resolve_data;
}
