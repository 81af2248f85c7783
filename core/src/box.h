/*
 * N-dimensional boxes (offsets + sizes per dim, row-major) and copies between
 * them: the arithmetic behind resharding.
 */
#ifndef DCP_BOX_H
#define DCP_BOX_H

#include <stdint.h>

#include "dcp/dcp.h"

/* Product of sizes[0..ndim-1] (1 for ndim 0); 0 and *overflow = 1 if it
 * does not fit in uint64. */
uint64_t dcp_box_volume(int ndim, const uint64_t *sizes, int *overflow);

/* Intersection of boxes a and b; returns 1 and fills out_* if non-empty. */
int dcp_box_intersect(int ndim, const uint64_t *a_off, const uint64_t *a_sz, const uint64_t *b_off,
                      const uint64_t *b_sz, uint64_t *out_off, uint64_t *out_sz);

/* 1 if the boxes are equal. */
int dcp_box_equal(int ndim, const uint64_t *a_off, const uint64_t *a_sz, const uint64_t *b_off,
                  const uint64_t *b_sz);

/*
 * The byte range [*first, *end) of a chunk (row-major, `elem` bytes per
 * element) that holds every element of `box` (which lies inside the chunk).
 */
void dcp_box_byte_range(int ndim, const uint64_t *chunk_off, const uint64_t *chunk_sz,
                        const uint64_t *box_off, const uint64_t *box_sz, uint64_t elem, uint64_t *first,
                        uint64_t *end);

/*
 * Copies the elements of `box` from a source chunk to a destination chunk.
 * src points at byte `src_origin` of the source chunk (so a partial read of
 * the chunk can be used); every byte the copy touches lies at or after
 * src_origin. Runs of contiguous bytes are copied with one memcpy each.
 */
void dcp_box_copy(int ndim, uint64_t elem, const void *src, uint64_t src_origin, const uint64_t *src_off,
                  const uint64_t *src_sz, void *dst, const uint64_t *dst_off, const uint64_t *dst_sz,
                  const uint64_t *box_off, const uint64_t *box_sz);

#endif /* DCP_BOX_H */
