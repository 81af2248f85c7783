/*
 * Test support: deterministic values, and the per-rank states built from a
 * layout and checked after a load. See dcptest.h for the contracts.
 */
#include "dcptest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcptest_priv.h"

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
			dt_why_set(why, whylen,
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
	dt_why_set(rs->why, sizeof(rs->why), "rank %d: %s('%s', chunk %zu) returned %d (%s): %s", rs->rank,
	           call, it->key, chunk, rc, dcp_strerror(rc), dcp_state_last_error(rs->state));
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
				dt_why_set(why, whylen,
				           "rank %d: bytes '%s' was skipped but its buffer changed", rs->rank,
				           it->key);
				return 1;
			}
			free(want);
		}
		return 0;
	}
	if (rc != DCP_OK) {
		dt_why_set(why, whylen, "rank %d: dcp_state_get_bytes('%s') returned %d (%s)", rs->rank,
		           it->key, rc, dcp_strerror(rc));
		return 1;
	}
	if (len != it->len) {
		dt_why_set(why, whylen, "rank %d: bytes '%s': loaded length %zu, expected %zu", rs->rank,
		           it->key, len, it->len);
		return 1;
	}
	if (!it->lib_alloc && data != rs->buf[i][0]) {
		dt_why_set(why, whylen,
		           "rank %d: bytes '%s': dcp_state_get_bytes gave %p, not the caller's buffer %p",
		           rs->rank, it->key, data, rs->buf[i][0]);
		return 1;
	}
	if (len > 0 && data == NULL) {
		dt_why_set(why, whylen, "rank %d: bytes '%s': NULL data for %zu bytes", rs->rank, it->key,
		           len);
		return 1;
	}
	want = dt_xmalloc(len);
	dt_fill_bytes(rs->seed, it->key, want, len);
	for (size_t k = 0; k < len; k++) {
		if (((const unsigned char *)data)[k] != want[k]) {
			dt_why_set(why, whylen, "rank %d: bytes '%s': byte %zu is 0x%02x, expected 0x%02x",
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
				dt_why_set(why, whylen,
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
			dt_why_set(why, whylen, "rank %d: dcp_state_was_loaded('%s') is %d, expected %d",
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
