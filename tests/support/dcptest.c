/*
 * Test support: layouts, deterministic values, rank runners, assertions.
 * See dcptest.h for the contracts.
 */
#include "dcptest.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Allocation and formatting                                                */
/* ------------------------------------------------------------------------ */
void *dt_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL) {
		fprintf(stderr, "dcptest: out of memory allocating %zu bytes\n", n);
		abort();
	}
	return p;
}

void *dt_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL) {
		fprintf(stderr, "dcptest: out of memory allocating %zu x %zu bytes\n", n, size);
		abort();
	}
	return p;
}

char *dt_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "dcptest: formatted text does not fit in %zu bytes (format \"%s\")\n", size,
		        fmt);
		abort();
	}
	return buf;
}

/* Appends to a bounded message buffer, truncating silently. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

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

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */
static uint64_t mix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static uint64_t value_base(uint64_t seed, const char *key)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= UINT64_C(0x100000001b3);
	}
	return mix64(seed ^ mix64(h));
}

static void value_at(uint64_t base, dcp_dtype dtype, size_t es, uint64_t gidx, unsigned char *out)
{
	uint64_t v = mix64(base + gidx);
	if (dtype == DCP_BOOL) {
		out[0] = (unsigned char)(v & 1);
		return;
	}
	for (size_t i = 0; i < es; i++)
		out[i] = (unsigned char)(v >> (8 * (i % 8)));
}

/* The fill of a buffer to load into: every byte differs from the value. */
static void invert_at(dcp_dtype dtype, size_t es, unsigned char *p)
{
	if (dtype == DCP_BOOL) {
		p[0] ^= 1;
		return;
	}
	for (size_t i = 0; i < es; i++)
		p[i] = (unsigned char)~p[i];
}

void dt_value(uint64_t seed, const char *key, dcp_dtype dtype, uint64_t gidx, unsigned char *out)
{
	value_at(value_base(seed, key), dtype, dcp_dtype_size(dtype), gidx, out);
}

uint64_t dt_item_seed(const dt_item *it, int rank, uint64_t seed)
{
	if (rank >= 0 && rank < 64 && (it->diverge & DT_RANK(rank)))
		return seed ^ mix64(UINT64_C(0x5eed0000) + (uint64_t)rank);
	return seed;
}

void dt_fill_bytes(uint64_t seed, const char *key, unsigned char *buf, size_t n)
{
	uint64_t base = value_base(seed, key);
	for (size_t i = 0; i < n; i++)
		value_at(base, DCP_U8, 1, i, buf + i);
}

/* Row-major global index of the element at local index idx of a chunk. */
static uint64_t global_index(const dt_item *it, const uint64_t *off, const uint64_t *idx)
{
	uint64_t g = 0;
	for (int d = 0; d < it->ndim; d++)
		g = g * it->shape[d] + off[d] + idx[d];
	return g;
}

static void next_index(int ndim, const uint64_t *size, uint64_t *idx)
{
	for (int d = ndim - 1; d >= 0; d--) {
		if (++idx[d] < size[d])
			return;
		idx[d] = 0;
	}
}

static void fill_box(const dt_item *it, const uint64_t *off, const uint64_t *size, unsigned char *buf,
                     uint64_t seed, dt_fill fill)
{
	size_t es = dcp_dtype_size(it->dtype);
	uint64_t base = value_base(seed, it->key);
	uint64_t n = dt_numel(it->ndim, size);
	uint64_t idx[DCP_MAX_DIMS] = {0};
	for (uint64_t e = 0; e < n; e++) {
		unsigned char *p = buf + e * es;
		value_at(base, it->dtype, es, global_index(it, off, idx), p);
		if (fill == DT_FILL_INVERSE)
			invert_at(it->dtype, es, p);
		next_index(it->ndim, size, idx);
	}
}

static void hex(const unsigned char *p, size_t n, char *out, size_t outlen)
{
	size_t k = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && k + 3 < outlen; i++)
		k += (size_t)snprintf(out + k, outlen - k, "%02x", p[i]);
}

static void fmt_coords(int ndim, const uint64_t *off, const uint64_t *idx, char *out, size_t outlen)
{
	size_t k = 0;
	out[0] = '\0';
	k += (size_t)snprintf(out + k, outlen - k, "[");
	for (int d = 0; d < ndim && k + 24 < outlen; d++)
		k += (size_t)snprintf(out + k, outlen - k, "%s%llu", d ? ", " : "",
		                      (unsigned long long)(off[d] + idx[d]));
	snprintf(out + k, outlen - k, "]");
}

/* 0 if buf holds the box's values (or, with want_inverse, the inverse fill). */
static int check_box(const dt_item *it, int rank, size_t chunk, const uint64_t *off, const uint64_t *size,
                     const unsigned char *buf, uint64_t seed, int want_inverse, char *why, size_t whylen)
{
	size_t es = dcp_dtype_size(it->dtype);
	uint64_t base = value_base(seed, it->key);
	uint64_t n = dt_numel(it->ndim, size);
	uint64_t idx[DCP_MAX_DIMS] = {0};
	unsigned char want[16];
	for (uint64_t e = 0; e < n; e++) {
		const unsigned char *p = buf + e * es;
		value_at(base, it->dtype, es, global_index(it, off, idx), want);
		if (want_inverse)
			invert_at(it->dtype, es, want);
		if (memcmp(p, want, es) != 0) {
			char got_h[40], want_h[40], at[200];
			hex(p, es, got_h, sizeof(got_h));
			hex(want, es, want_h, sizeof(want_h));
			fmt_coords(it->ndim, off, idx, at, sizeof(at));
			why_set(why, whylen,
			        "rank %d: key '%s' (%s) chunk %zu: element at %s is 0x%s, expected 0x%s%s",
			        rank, it->key, dcp_dtype_name(it->dtype), chunk, at, got_h, want_h,
			        want_inverse ? " (the buffer should be untouched)" : "");
			return 1;
		}
		next_index(it->ndim, size, idx);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Per-rank states                                                          */
/* ------------------------------------------------------------------------ */
static void add_failed(dt_rank_state *rs, const char *call, const dt_item *it, size_t chunk, int rc)
{
	if (rs->add_failed)
		return;
	rs->add_failed = 1;
	why_set(rs->why, sizeof(rs->why), "rank %d: %s('%s', chunk %zu) returned %d (%s): %s", rs->rank, call,
	        it->key, chunk, rc, dcp_strerror(rc), dcp_state_last_error(rs->state));
}

dt_rank_state *dt_rank_state_new(const dt_layout *l, int rank, dt_fill fill, uint64_t seed)
{
	dt_rank_state *rs = dt_xcalloc(1, sizeof(*rs));
	rs->layout = l;
	rs->rank = rank;
	rs->seed = seed;
	rs->fill = fill;
	rs->state = dcp_state_new();
	if (rs->state == NULL) {
		fprintf(stderr, "dcptest: dcp_state_new returned NULL\n");
		abort();
	}
	for (size_t i = 0; i < l->nitems; i++) {
		const dt_item *it = &l->items[i];
		uint64_t s = fill == DT_FILL_VALUES ? dt_item_seed(it, rank, seed) : seed;
		int rc;
		if (it->kind == DT_SHARDED) {
			for (size_t c = 0; c < it->nchunks; c++) {
				const dt_chunk *ch = &it->chunks[c];
				size_t n;
				if (ch->rank != rank)
					continue;
				n = (size_t)(dt_numel(it->ndim, ch->size) * dcp_dtype_size(it->dtype));
				rs->buf[i][c] = dt_xmalloc(n);
				rs->bufsize[i][c] = n;
				fill_box(it, ch->off, ch->size, rs->buf[i][c], s, fill);
				rc = dcp_state_add_shard(rs->state, it->key, it->dtype, it->ndim, it->shape,
				                         ch->off, ch->size, rs->buf[i][c]);
				if (rc != DCP_OK)
					add_failed(rs, "dcp_state_add_shard", it, c, rc);
			}
		} else if (it->kind == DT_REPLICATED) {
			uint64_t zero[DCP_MAX_DIMS] = {0};
			size_t n;
			if (!(it->holders & DT_RANK(rank)))
				continue;
			n = (size_t)(dt_numel(it->ndim, it->shape) * dcp_dtype_size(it->dtype));
			rs->buf[i][0] = dt_xmalloc(n);
			rs->bufsize[i][0] = n;
			fill_box(it, zero, it->shape, rs->buf[i][0], s, fill);
			rc = dcp_state_add_tensor(rs->state, it->key, it->dtype, it->ndim, it->shape,
			                          rs->buf[i][0]);
			if (rc != DCP_OK)
				add_failed(rs, "dcp_state_add_tensor", it, 0, rc);
		} else {
			size_t cap;
			if (!(it->holders & DT_RANK(rank)))
				continue;
			if (fill == DT_FILL_VALUES) {
				cap = it->len;
			} else if (it->lib_alloc) {
				rc = dcp_state_add_bytes(rs->state, it->key, NULL, 0);
				if (rc != DCP_OK)
					add_failed(rs, "dcp_state_add_bytes", it, 0, rc);
				continue;
			} else {
				cap = it->capacity ? it->capacity : it->len;
			}
			rs->buf[i][0] = dt_xmalloc(cap);
			rs->bufsize[i][0] = cap;
			dt_fill_bytes(s, it->key, rs->buf[i][0], cap);
			if (fill == DT_FILL_INVERSE)
				for (size_t b = 0; b < cap; b++)
					((unsigned char *)rs->buf[i][0])[b] ^= 0xff;
			rc = dcp_state_add_bytes(rs->state, it->key, rs->buf[i][0], cap);
			if (rc != DCP_OK)
				add_failed(rs, "dcp_state_add_bytes", it, 0, rc);
		}
	}
	return rs;
}

void dt_rank_state_free(dt_rank_state *rs)
{
	if (rs == NULL)
		return;
	dcp_state_free(rs->state);
	for (size_t i = 0; i < DT_MAX_ITEMS; i++)
		for (size_t c = 0; c < DT_MAX_CHUNKS; c++)
			free(rs->buf[i][c]);
	free(rs);
}

static int check_bytes(const dt_rank_state *rs, size_t i, const dt_item *it, char *why, size_t whylen)
{
	const void *data = NULL;
	size_t len = 0;
	unsigned char *want;
	int rc = dcp_state_get_bytes(rs->state, it->key, &data, &len);
	if (it->expect_missing) {
		if (rs->buf[i][0] != NULL) {
			unsigned char *b = rs->buf[i][0];
			want = dt_xmalloc(rs->bufsize[i][0]);
			dt_fill_bytes(rs->seed, it->key, want, rs->bufsize[i][0]);
			for (size_t k = 0; k < rs->bufsize[i][0]; k++)
				want[k] ^= 0xff;
			if (memcmp(b, want, rs->bufsize[i][0]) != 0) {
				free(want);
				why_set(why, whylen, "rank %d: bytes '%s' was skipped but its buffer changed",
				        rs->rank, it->key);
				return 1;
			}
			free(want);
		}
		return 0;
	}
	if (rc != DCP_OK) {
		why_set(why, whylen, "rank %d: dcp_state_get_bytes('%s') returned %d (%s)", rs->rank, it->key,
		        rc, dcp_strerror(rc));
		return 1;
	}
	if (len != it->len) {
		why_set(why, whylen, "rank %d: bytes '%s': loaded length %zu, expected %zu", rs->rank,
		        it->key, len, it->len);
		return 1;
	}
	if (!it->lib_alloc && data != rs->buf[i][0]) {
		why_set(why, whylen,
		        "rank %d: bytes '%s': dcp_state_get_bytes gave %p, not the caller's buffer %p",
		        rs->rank, it->key, data, rs->buf[i][0]);
		return 1;
	}
	if (len > 0 && data == NULL) {
		why_set(why, whylen, "rank %d: bytes '%s': NULL data for %zu bytes", rs->rank, it->key, len);
		return 1;
	}
	want = dt_xmalloc(len);
	dt_fill_bytes(rs->seed, it->key, want, len);
	for (size_t k = 0; k < len; k++) {
		if (((const unsigned char *)data)[k] != want[k]) {
			why_set(why, whylen, "rank %d: bytes '%s': byte %zu is 0x%02x, expected 0x%02x",
			        rs->rank, it->key, k, ((const unsigned char *)data)[k], want[k]);
			free(want);
			return 1;
		}
	}
	free(want);
	/* Past the loaded length the caller's buffer must be untouched. */
	if (!it->lib_alloc && rs->bufsize[i][0] > len) {
		unsigned char *b = rs->buf[i][0];
		want = dt_xmalloc(rs->bufsize[i][0]);
		dt_fill_bytes(rs->seed, it->key, want, rs->bufsize[i][0]);
		for (size_t k = len; k < rs->bufsize[i][0]; k++) {
			if (b[k] != (unsigned char)(want[k] ^ 0xff)) {
				why_set(why, whylen,
				        "rank %d: bytes '%s': byte %zu past the loaded length %zu was "
				        "overwritten",
				        rs->rank, it->key, k, len);
				free(want);
				return 1;
			}
		}
		free(want);
	}
	return 0;
}

int dt_rank_state_check(const dt_rank_state *rs, char *why, size_t whylen)
{
	const dt_layout *l = rs->layout;
	uint64_t zero[DCP_MAX_DIMS] = {0};
	for (size_t i = 0; i < l->nitems; i++) {
		const dt_item *it = &l->items[i];
		int held = 0;
		if (it->kind == DT_SHARDED) {
			for (size_t c = 0; c < it->nchunks; c++)
				held |= it->chunks[c].rank == rs->rank;
		} else {
			held = (it->holders & DT_RANK(rs->rank)) != 0;
		}
		if (!held)
			continue;
		if (dcp_state_was_loaded(rs->state, it->key) != !it->expect_missing) {
			why_set(why, whylen, "rank %d: dcp_state_was_loaded('%s') is %d, expected %d",
			        rs->rank, it->key, dcp_state_was_loaded(rs->state, it->key),
			        !it->expect_missing);
			return 1;
		}
		if (it->kind == DT_BYTES) {
			if (check_bytes(rs, i, it, why, whylen))
				return 1;
		} else if (it->kind == DT_REPLICATED) {
			if (check_box(it, rs->rank, 0, zero, it->shape, rs->buf[i][0], rs->seed,
			              it->expect_missing, why, whylen))
				return 1;
		} else {
			for (size_t c = 0; c < it->nchunks; c++) {
				const dt_chunk *ch = &it->chunks[c];
				if (ch->rank != rs->rank)
					continue;
				if (check_box(it, rs->rank, c, ch->off, ch->size, rs->buf[i][c], rs->seed,
				              it->expect_missing, why, whylen))
					return 1;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Running ranks                                                            */
/* ------------------------------------------------------------------------ */
void dt_outcome_init(dt_outcome *o)
{
	memset(o, 0, sizeof(*o));
}

void dt_outcome_clear(dt_outcome *o)
{
	for (int r = 0; r < DT_MAX_RANKS; r++) {
		dcp_error_free(o->err[r]);
		dt_rank_state_free(o->rs[r]);
	}
	dt_outcome_init(o);
}

struct run_ctx {
	const dt_closure *closures;
	dt_outcome *out;
};

static int run_trampoline(dcp_comm *comm, int rank, void *arg)
{
	struct run_ctx *x = arg;
	if (rank < 0 || rank >= DT_MAX_RANKS)
		return DCP_EINVAL;
	if (dcp_comm_rank(comm) != rank) {
		x->out->bad[rank] = 1;
		why_set(x->out->why[rank], DT_WHY_MAX,
		        "dcp_run_ranks passed rank %d but dcp_comm_rank says %d", rank, dcp_comm_rank(comm));
	}
	return x->closures[rank].fn(comm, rank, x->closures[rank].arg, x->out);
}

int dt_run_closures(int n, const dt_closure *closures, dt_outcome *out)
{
	struct run_ctx x = {closures, out};
	int results[DT_MAX_RANKS];
	dt_outcome_init(out);
	if (n == 0) {
		dcp_comm *comm = dcp_comm_single_new();
		if (comm == NULL)
			return DCP_ENOMEM;
		out->n = 1;
		closures[0].fn(comm, 0, closures[0].arg, out);
		dcp_comm_free(comm);
		return DCP_OK;
	}
	if (n < 0 || n > DT_MAX_RANKS)
		return DCP_EINVAL;
	out->n = n;
	return dcp_run_ranks(n, run_trampoline, &x, results);
}

int dt_run(int n, dt_rank_fn fn, void *arg, dt_outcome *out)
{
	dt_closure c[DT_MAX_RANKS];
	for (int r = 0; r < DT_MAX_RANKS; r++) {
		c[r].fn = fn;
		c[r].arg = arg;
	}
	return dt_run_closures(n, c, out);
}

struct io_arg {
	const dt_layout *l;
	const char *url;
	const dcp_save_options *so;
	const dcp_load_options *lo;
	uint64_t seed;
};

static int save_rank(dcp_comm *comm, int rank, void *arg, dt_outcome *out)
{
	struct io_arg *a = arg;
	dt_rank_state *rs = dt_rank_state_new(a->l, rank, DT_FILL_VALUES, a->seed);
	out->rs[rank] = rs;
	if (rs->add_failed) {
		out->bad[rank] = 1;
		memcpy(out->why[rank], rs->why, sizeof(rs->why));
	}
	out->status[rank] = dcp_save(rs->state, a->url, comm, a->so, &out->err[rank]);
	return out->status[rank];
}

static int load_rank(dcp_comm *comm, int rank, void *arg, dt_outcome *out)
{
	struct io_arg *a = arg;
	dt_rank_state *rs = dt_rank_state_new(a->l, rank, DT_FILL_INVERSE, a->seed);
	out->rs[rank] = rs;
	if (rs->add_failed) {
		out->bad[rank] = 1;
		memcpy(out->why[rank], rs->why, sizeof(rs->why));
	}
	out->status[rank] = dcp_load(rs->state, a->url, comm, a->lo, &out->err[rank]);
	if (out->status[rank] == DCP_OK && !out->bad[rank])
		out->bad[rank] = dt_rank_state_check(rs, out->why[rank], DT_WHY_MAX);
	return out->status[rank];
}

static void run_or_fail(int n, dt_rank_fn fn, void *arg, dt_outcome *out)
{
	int rc = dt_run(n, fn, arg, out);
	if (rc != DCP_OK) {
		fprintf(stderr, "dcptest: could not start %d ranks: %d (%s)\n", n, rc, dcp_strerror(rc));
		abort();
	}
}

void dt_save(const dt_layout *l, int n, const char *url, const dcp_save_options *opts, uint64_t seed,
             dt_outcome *out)
{
	struct io_arg a = {l, url, opts, NULL, seed};
	run_or_fail(n, save_rank, &a, out);
}

void dt_load(const dt_layout *l, int n, const char *url, const dcp_load_options *opts, uint64_t seed,
             dt_outcome *out)
{
	struct io_arg a = {l, url, NULL, opts, seed};
	run_or_fail(n, load_rank, &a, out);
}

/* ------------------------------------------------------------------------ */
/* Assertions                                                               */
/* ------------------------------------------------------------------------ */
char *dt_error_text(const dcp_error *err)
{
	char *t;
	if (err == NULL) {
		t = dt_xmalloc(32);
		strcpy(t, "(no error object)");
		return t;
	}
	t = dcp_error_format(err);
	if (t == NULL) {
		t = dt_xmalloc(40);
		strcpy(t, "(dcp_error_format returned NULL)");
	}
	return t;
}

int dt_error_mentions(const dcp_error *err, const char *needle)
{
	char *t = dt_error_text(err);
	int found = strstr(t, needle) != NULL;
	free(t);
	return found;
}

void dt_assert_ok(const dt_outcome *o, const char *what)
{
	cr_assert(o->n > 0, "%s: no rank ran", what);
	for (int r = 0; r < o->n; r++) {
		if (o->status[r] != DCP_OK) {
			char *t = dt_error_text(o->err[r]);
			cr_assert_fail("%s: rank %d returned %d (%s); its error object:\n%s", what, r,
			               o->status[r], dcp_strerror(o->status[r]), t);
		}
		cr_assert_null(o->err[r], "%s: rank %d succeeded but was given an error object", what, r);
		cr_assert(!o->bad[r], "%s: %s", what, o->why[r]);
	}
}

static int popcount64(uint64_t m)
{
	int n = 0;
	for (; m; m &= m - 1)
		n++;
	return n;
}

void dt_assert_failed(const dt_outcome *o, const dt_expect *e, const char *what)
{
	const dcp_error *e0;
	char *t0;
	int st;
	cr_assert(o->n > 0, "%s: no rank ran", what);
	st = o->status[0];
	for (int r = 0; r < o->n; r++) {
		cr_assert(!o->bad[r], "%s: %s", what, o->why[r]);
		cr_assert_neq(o->status[r], DCP_OK,
		              "%s: rank %d returned DCP_OK, expected a failure on every rank", what, r);
		cr_assert_eq(o->status[r], st, "%s: rank %d returned %d (%s) but rank 0 returned %d (%s)",
		             what, r, o->status[r], dcp_strerror(o->status[r]), st, dcp_strerror(st));
		cr_assert_not_null(o->err[r], "%s: rank %d failed with %d (%s) but got no error object", what,
		                   r, o->status[r], dcp_strerror(o->status[r]));
	}
	e0 = o->err[0];
	t0 = dt_error_text(e0);
	if (e->status != 0)
		cr_assert_eq(st, e->status, "%s: status %d (%s), expected %d (%s); error:\n%s", what, st,
		             dcp_strerror(st), e->status, dcp_strerror(e->status), t0);
	cr_assert_eq(
	        st, dcp_error_code(e0),
	        "%s: the ranks returned %d (%s) but dcp_error_code of their error is %d (%s); error:\n%s",
	        what, st, dcp_strerror(st), dcp_error_code(e0), dcp_strerror(dcp_error_code(e0)), t0);
	for (int r = 1; r < o->n; r++) {
		char *tr = dt_error_text(o->err[r]);
		cr_assert_str_eq(
		        tr, t0, "%s: rank %d's error differs from rank 0's:\n--- rank 0:\n%s--- rank %d:\n%s",
		        what, r, t0, r, tr);
		cr_assert_str_eq(dcp_error_step(o->err[r]), dcp_error_step(e0),
		                 "%s: rank %d's step '%s' != '%s'", what, r, dcp_error_step(o->err[r]),
		                 dcp_error_step(e0));
		free(tr);
	}
	cr_assert(dcp_error_count(e0) > 0, "%s: the error object has no entries", what);
	if (!e->any_ranks) {
		uint64_t seen = 0;
		cr_assert_eq(dcp_error_count(e0), (size_t)popcount64(e->ranks),
		             "%s: the error names %zu ranks, expected %d; error:\n%s", what,
		             dcp_error_count(e0), popcount64(e->ranks), t0);
		for (size_t i = 0; i < dcp_error_count(e0); i++) {
			int r = dcp_error_rank(e0, i);
			cr_assert(r >= 0 && r < 64 && (e->ranks & DT_RANK(r)),
			          "%s: the error names rank %d, which was not meant to fail; error:\n%s",
			          what, r, t0);
			cr_assert(!(seen & DT_RANK(r)), "%s: the error names rank %d twice; error:\n%s", what,
			          r, t0);
			seen |= DT_RANK(r);
			if (i > 0)
				cr_assert_lt(dcp_error_rank(e0, i - 1), r,
				             "%s: error entries are not ordered by rank; error:\n%s", what,
				             t0);
		}
		for (int r = 0; r < o->n; r++)
			cr_assert_eq(dcp_error_has_rank(e0, r), (e->ranks & DT_RANK(r)) != 0,
			             "%s: dcp_error_has_rank(%d) is %d; error:\n%s", what, r,
			             dcp_error_has_rank(e0, r), t0);
	}
	cr_assert_eq(dcp_error_code(e0), dcp_error_entry_code(e0, 0),
	             "%s: dcp_error_code %d is not the first entry's code %d; error:\n%s", what,
	             dcp_error_code(e0), dcp_error_entry_code(e0, 0), t0);
	if (e->step != NULL)
		cr_assert_str_eq(dcp_error_step(e0), e->step, "%s: step '%s', expected '%s'; error:\n%s",
		                 what, dcp_error_step(e0), e->step, t0);
	for (size_t i = 0; i < dcp_error_count(e0); i++) {
		const char *stage = dcp_error_stage(e0, i);
		const char *msg = dcp_error_message(e0, i);
		cr_assert_not_null(stage, "%s: entry %zu has a NULL stage", what, i);
		cr_assert_not_null(msg, "%s: entry %zu has a NULL message", what, i);
		cr_assert(msg[0] != '\0', "%s: entry %zu (rank %d) has an empty message; error:\n%s", what, i,
		          dcp_error_rank(e0, i), t0);
		if (e->stage != NULL)
			cr_assert(strstr(stage, e->stage) != NULL,
			          "%s: rank %d's stage is '%s', expected it to name '%s'; error:\n%s", what,
			          dcp_error_rank(e0, i), stage, e->stage, t0);
		if (e->entry_code != 0)
			cr_assert_eq(dcp_error_entry_code(e0, i), e->entry_code,
			             "%s: rank %d's code is %d (%s), expected %d (%s); error:\n%s", what,
			             dcp_error_rank(e0, i), dcp_error_entry_code(e0, i),
			             dcp_strerror(dcp_error_entry_code(e0, i)), e->entry_code,
			             dcp_strerror(e->entry_code), t0);
	}
	if (e->mention != NULL)
		cr_assert(strstr(t0, e->mention) != NULL, "%s: the error does not mention '%s':\n%s", what,
		          e->mention, t0);
	if (e->mention2 != NULL)
		cr_assert(strstr(t0, e->mention2) != NULL, "%s: the error does not mention '%s':\n%s", what,
		          e->mention2, t0);
	if (e->mention3 != NULL)
		cr_assert(strstr(t0, e->mention3) != NULL, "%s: the error does not mention '%s':\n%s", what,
		          e->mention3, t0);
	free(t0);
}

/* ------------------------------------------------------------------------ */
/* Misc                                                                     */
/* ------------------------------------------------------------------------ */
int dt_path_rank(const char *path)
{
	const char *b = strrchr(path, '/');
	long r = 0;
	const char *p;
	b = b ? b + 1 : path;
	if (b[0] != '_' || b[1] != '_' || b[2] < '0' || b[2] > '9')
		return -1;
	for (p = b + 2; *p >= '0' && *p <= '9'; p++) {
		r = r * 10 + (*p - '0');
		if (r > 1000000)
			return -1;
	}
	return *p == '_' ? (int)r : -1;
}

char *dt_mkdtemp(char *buf, size_t size, const char *prefix)
{
	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	dt_fmt(buf, size, "%s/%s-XXXXXX", tmp, prefix);
	if (mkdtemp(buf) == NULL) {
		perror("dcptest: mkdtemp");
		abort();
	}
	return buf;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void dt_rmtree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *dt_exe_dir(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	char *slash;
	if (n <= 0 || (size_t)n >= size - 1) {
		fprintf(stderr, "dcptest: cannot read /proc/self/exe\n");
		abort();
	}
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	return buf;
}
