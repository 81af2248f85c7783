#include "box.h"

#include <string.h>

uint64_t dcp_box_volume(int ndim, const uint64_t *sizes, int *overflow)
{
	uint64_t v = 1;
	for (int d = 0; d < ndim; d++) {
		if (sizes[d] != 0 && v > UINT64_MAX / sizes[d]) {
			if (overflow)
				*overflow = 1;
			return 0;
		}
		v *= sizes[d];
	}
	return v;
}

int dcp_box_intersect(int ndim, const uint64_t *a_off, const uint64_t *a_sz, const uint64_t *b_off,
                      const uint64_t *b_sz, uint64_t *out_off, uint64_t *out_sz)
{
	for (int d = 0; d < ndim; d++) {
		uint64_t lo = a_off[d] > b_off[d] ? a_off[d] : b_off[d];
		uint64_t ae = a_off[d] + a_sz[d], be = b_off[d] + b_sz[d];
		uint64_t hi = ae < be ? ae : be;
		if (hi <= lo)
			return 0;
		out_off[d] = lo;
		out_sz[d] = hi - lo;
	}
	return 1;
}

int dcp_box_equal(int ndim, const uint64_t *a_off, const uint64_t *a_sz, const uint64_t *b_off,
                  const uint64_t *b_sz)
{
	for (int d = 0; d < ndim; d++)
		if (a_off[d] != b_off[d] || a_sz[d] != b_sz[d])
			return 0;
	return 1;
}

/* Row-major linear index, within a chunk, of the element at global coords. */
static uint64_t linear_index(int ndim, const uint64_t *chunk_off, const uint64_t *chunk_sz,
                             const uint64_t *at)
{
	uint64_t idx = 0;
	for (int d = 0; d < ndim; d++)
		idx = idx * chunk_sz[d] + (at[d] - chunk_off[d]);
	return idx;
}

void dcp_box_byte_range(int ndim, const uint64_t *chunk_off, const uint64_t *chunk_sz,
                        const uint64_t *box_off, const uint64_t *box_sz, uint64_t elem, uint64_t *first,
                        uint64_t *end)
{
	uint64_t last[DCP_MAX_DIMS];
	for (int d = 0; d < ndim; d++)
		last[d] = box_off[d] + box_sz[d] - 1;
	*first = linear_index(ndim, chunk_off, chunk_sz, box_off) * elem;
	*end = (linear_index(ndim, chunk_off, chunk_sz, last) + 1) * elem;
}

void dcp_box_copy(int ndim, uint64_t elem, const void *src, uint64_t src_origin, const uint64_t *src_off,
                  const uint64_t *src_sz, void *dst, const uint64_t *dst_off, const uint64_t *dst_sz,
                  const uint64_t *box_off, const uint64_t *box_sz)
{
	if (ndim == 0) {
		(void)src_origin; /* a scalar's only range starts at byte 0 */
		memcpy(dst, src, elem);
		return;
	}
	/* Merge trailing dims into one contiguous run while the box spans the
	 * whole extent of both chunks in that dim. */
	int inner = ndim - 1;
	uint64_t run = box_sz[inner] * elem;
	while (inner > 0 && box_sz[inner] == src_sz[inner] && box_sz[inner] == dst_sz[inner]) {
		inner--;
		run *= box_sz[inner];
	}
	/* Odometer over dims [0, inner) of the box; dim `inner` starts each run. */
	uint64_t at[DCP_MAX_DIMS];
	for (int d = 0; d < ndim; d++)
		at[d] = box_off[d];
	const unsigned char *s = src;
	unsigned char *t = dst;
	for (;;) {
		uint64_t si = linear_index(ndim, src_off, src_sz, at) * elem - src_origin;
		uint64_t di = linear_index(ndim, dst_off, dst_sz, at) * elem;
		memcpy(t + di, s + si, run);
		int d = inner - 1;
		while (d >= 0) {
			if (++at[d] < box_off[d] + box_sz[d])
				break;
			at[d] = box_off[d];
			d--;
		}
		if (d < 0)
			break;
	}
}
