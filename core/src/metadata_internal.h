/*
 * Metadata helpers shared inside the core (not exported from libdcp): chunk
 * validation and sorting, and clearing of partly built items. The model
 * itself is in dcp/sys/metadata.h.
 */
#ifndef DCP_METADATA_INTERNAL_H
#define DCP_METADATA_INTERNAL_H

#include "dcp/sys/metadata.h"

/* Longest key accepted, in bytes (keys are printable ASCII). */
#define DCP_KEY_MAX 1024

/*
 * Checks the chunks of a tensor item: 0 <= ndim <= DCP_MAX_DIMS, a shape
 * whose element count fits in 64 bits, every chunk inside the shape, no two
 * chunks overlapping (chunks with no elements overlap nothing), and the
 * chunks covering every element exactly once. Storage fields are not looked
 * at. Returns DCP_OK, DCP_EMETADATA with a message naming the key and the
 * offending chunk(s), or DCP_ENOMEM. Runs in O(n log n) for chunkings along
 * one dimension and never worse than O(n^2). item->chunks may be in any order.
 */
int dcp_md_item_validate_chunks(const dcp_md_item *item, dcp_msg *msg);

/* Sorts item->chunks by offsets[0..ndim-1], lexicographically (row-major
 * order of their first elements). Never fails. */
void dcp_md_item_sort_chunks(dcp_md_item *item);

/* Frees what s owns (path, sums) and zeroes it. NULL-safe. */
void dcp_storage_info_clear(dcp_storage_info *s);

/* Frees what it owns (key, chunks and their storage) and zeroes it.
 * NULL-safe; works on a partly filled item (NULL pointers, chunks that were
 * calloc'd but not filled). */
void dcp_md_item_clear(dcp_md_item *it);

#endif /* DCP_METADATA_INTERNAL_H */
