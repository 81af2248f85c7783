/*
 * Test support: layouts, the description of a whole checkpointed state
 * across N ranks. See dcptest.h for the contracts.
 */
#include "dcptest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Layouts                                                                  */
/* ------------------------------------------------------------------------ */
dt_layout *dt_layout_new(void)
{
	return dt_xcalloc(1, sizeof(dt_layout));
}

void dt_layout_free(dt_layout *l)
{
	free(l);
}

dt_layout *dt_layout_dup(const dt_layout *l)
{
	dt_layout *c = dt_layout_new();
	memcpy(c, l, sizeof(*c));
	return c;
}

dt_item *dt_layout_find(dt_layout *l, const char *key)
{
	for (size_t i = 0; i < l->nitems; i++)
		if (strcmp(l->items[i].key, key) == 0)
			return &l->items[i];
	return NULL;
}

uint64_t dt_numel(int ndim, const uint64_t *shape)
{
	uint64_t n = 1;
	for (int d = 0; d < ndim; d++)
		n *= shape[d];
	return n;
}

static dt_item *layout_append(dt_layout *l, const char *key, dt_kind kind)
{
	dt_item *it;
	if (l->nitems >= DT_MAX_ITEMS) {
		fprintf(stderr, "dcptest: layout full (%d items) adding '%s'\n", DT_MAX_ITEMS, key);
		abort();
	}
	if (strlen(key) >= DT_KEY_MAX) {
		fprintf(stderr, "dcptest: key '%s' longer than %d bytes\n", key, DT_KEY_MAX - 1);
		abort();
	}
	it = &l->items[l->nitems++];
	memset(it, 0, sizeof(*it));
	strcpy(it->key, key);
	it->kind = kind;
	return it;
}

static void set_shape(dt_item *it, dcp_dtype dtype, int ndim, const uint64_t *shape)
{
	if (ndim < 0 || ndim > DCP_MAX_DIMS) {
		fprintf(stderr, "dcptest: '%s': ndim %d out of range\n", it->key, ndim);
		abort();
	}
	it->dtype = dtype;
	it->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		it->shape[d] = shape[d];
}

dt_item *dt_add_sharded(dt_layout *l, const char *key, dcp_dtype dtype, int ndim, const uint64_t *shape)
{
	dt_item *it = layout_append(l, key, DT_SHARDED);
	set_shape(it, dtype, ndim, shape);
	return it;
}

dt_item *dt_add_replicated(dt_layout *l, const char *key, dcp_dtype dtype, int ndim, const uint64_t *shape,
                           uint64_t holders)
{
	dt_item *it = layout_append(l, key, DT_REPLICATED);
	set_shape(it, dtype, ndim, shape);
	it->holders = holders;
	return it;
}

dt_item *dt_add_bytes(dt_layout *l, const char *key, size_t len, uint64_t holders)
{
	dt_item *it = layout_append(l, key, DT_BYTES);
	it->len = len;
	it->holders = holders;
	return it;
}

void dt_chunk_add(dt_item *it, int rank, const uint64_t *off, const uint64_t *size)
{
	dt_chunk *c;
	if (it->nchunks >= DT_MAX_CHUNKS) {
		fprintf(stderr, "dcptest: '%s': more than %d chunks\n", it->key, DT_MAX_CHUNKS);
		abort();
	}
	if (rank < 0 || rank >= DT_MAX_RANKS) {
		fprintf(stderr, "dcptest: '%s': rank %d out of range\n", it->key, rank);
		abort();
	}
	c = &it->chunks[it->nchunks++];
	memset(c, 0, sizeof(*c));
	c->rank = rank;
	for (int d = 0; d < it->ndim; d++) {
		c->off[d] = off[d];
		c->size[d] = size[d];
	}
}

void dt_split_at(dt_item *it, int dim, size_t nparts, const uint64_t *bounds, const int *placement)
{
	for (size_t i = 0; i < nparts; i++) {
		uint64_t off[DCP_MAX_DIMS] = {0}, size[DCP_MAX_DIMS];
		for (int d = 0; d < it->ndim; d++)
			size[d] = it->shape[d];
		off[dim] = bounds[i];
		size[dim] = bounds[i + 1] - bounds[i];
		dt_chunk_add(it, placement ? placement[i] : (int)i, off, size);
	}
}

/* Bounds of a chunk-sharding split: parts of ceil(n / nparts), empty ones
 * dropped. Returns the number of non-empty parts. */
static size_t split_bounds(uint64_t n, size_t nparts, uint64_t *bounds)
{
	uint64_t step = (n + nparts - 1) / nparts;
	size_t k = 0;
	bounds[0] = 0;
	for (size_t i = 0; i < nparts; i++) {
		uint64_t lo = i * step, hi = lo + step;
		if (lo >= n)
			break;
		if (hi > n)
			hi = n;
		bounds[++k] = hi;
	}
	return k;
}

void dt_split(dt_item *it, int dim, size_t nparts, const int *placement)
{
	uint64_t bounds[DT_MAX_CHUNKS + 1];
	size_t k;
	if (nparts == 0 || nparts > DT_MAX_CHUNKS) {
		fprintf(stderr, "dcptest: '%s': bad part count %zu\n", it->key, nparts);
		abort();
	}
	k = split_bounds(it->shape[dim], nparts, bounds);
	dt_split_at(it, dim, k, bounds, placement);
}

void dt_split_grid(dt_item *it, int dim0, size_t parts0, int dim1, size_t parts1, const int *placement,
                   int nranks)
{
	uint64_t b0[DT_MAX_CHUNKS + 1], b1[DT_MAX_CHUNKS + 1];
	size_t k0 = split_bounds(it->shape[dim0], parts0, b0);
	size_t k1 = split_bounds(it->shape[dim1], parts1, b1);
	for (size_t i = 0; i < k0; i++) {
		for (size_t j = 0; j < k1; j++) {
			uint64_t off[DCP_MAX_DIMS] = {0}, size[DCP_MAX_DIMS];
			size_t part = i * parts1 + j;
			for (int d = 0; d < it->ndim; d++)
				size[d] = it->shape[d];
			off[dim0] = b0[i];
			size[dim0] = b0[i + 1] - b0[i];
			off[dim1] = b1[j];
			size[dim1] = b1[j + 1] - b1[j];
			dt_chunk_add(it, placement ? placement[part] : (int)(part % (size_t)nranks), off,
			             size);
		}
	}
}
