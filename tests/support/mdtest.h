/*
 * Test support for the metadata model's suites (tests/test_metadata_*.c):
 * builders of in-memory metadata (dcp/sys/metadata.h), a deep comparison,
 * and encode / decode calls that must succeed.
 *
 * Every helper runs on the test's main thread and fails the test (Criterion
 * assertions) when it cannot do its job. Metadata they return is owned by
 * the caller: free it with dcp_metadata_free.
 */
#ifndef DCP_TESTS_SUPPORT_MDTEST_H
#define DCP_TESTS_SUPPORT_MDTEST_H

#include <stddef.h>
#include <stdint.h>

#include "dcp/sys/metadata.h"

/* An empty metadata of the current format with checksum block `block`;
 * save_id may be NULL (none). */
dcp_metadata *mt_md_new(uint64_t block, const char *save_id);
/* Appends an item (items must be added in key order) with nchunks zeroed
 * chunks and returns it. shape has ndim entries (may be NULL if ndim == 0). */
dcp_md_item *mt_md_add(dcp_metadata *md, const char *key, dcp_item_type type, dcp_dtype dtype, int ndim,
                       const uint64_t *shape, size_t nchunks);
/* Fills a chunk's storage with a valid path/offset/length and `nsums`
 * distinct sums derived from seed (the right count for md's block). */
void mt_set_storage(const dcp_metadata *md, dcp_md_chunk *c, const char *path, uint64_t offset,
                    uint64_t length, uint64_t seed);
/* A tensor chunk whose storage length matches its volume. */
void mt_set_chunk(const dcp_metadata *md, const dcp_md_item *it, dcp_md_chunk *c, const uint64_t *offsets,
                  const uint64_t *sizes, const char *path, uint64_t offset);
/* Asserts that a and b hold the same items, chunks and storage fields. */
void mt_assert_md_equal(const dcp_metadata *a, const dcp_metadata *b);
/* A metadata with every kind of item, valid. */
dcp_metadata *mt_sample_md(void);
/* dcp_metadata_encode, which must succeed; *len (if len is not NULL) is the
 * length without the NUL. The caller frees the text. */
char *mt_encode_ok(const dcp_metadata *md, size_t *len);
/* dcp_metadata_decode of a NUL-terminated document, which must succeed. */
dcp_metadata *mt_decode_ok(const char *json);

#endif /* DCP_TESTS_SUPPORT_MDTEST_H */
