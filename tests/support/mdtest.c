/*
 * Test support for the metadata model's suites: metadata builders, a deep
 * comparison, encode and decode that must succeed. See mdtest.h.
 */
#include "mdtest.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Helpers to build metadata                                                */
/* ------------------------------------------------------------------------ */

dcp_metadata *mt_md_new(uint64_t block, const char *save_id)
{
	dcp_metadata *md = calloc(1, sizeof(*md));
	cr_assert_not_null(md);
	md->format_major = DCP_FORMAT_MAJOR;
	md->format_minor = DCP_FORMAT_MINOR;
	md->checksum_block = block;
	md->save_id = save_id != NULL ? strdup(save_id) : NULL;
	return md;
}

/* Appends an item (items must be added in key order) and returns it. */
dcp_md_item *mt_md_add(dcp_metadata *md, const char *key, dcp_item_type type, dcp_dtype dtype, int ndim,
                       const uint64_t *shape, size_t nchunks)
{
	dcp_md_item *items = realloc(md->items, (md->nitems + 1) * sizeof(*items));
	cr_assert_not_null(items);
	md->items = items;
	dcp_md_item *it = &md->items[md->nitems++];
	memset(it, 0, sizeof(*it));
	it->key = strdup(key);
	it->type = type;
	it->dtype = dtype;
	it->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		it->shape[d] = shape[d];
	it->nchunks = nchunks;
	it->chunks = nchunks ? calloc(nchunks, sizeof(*it->chunks)) : NULL;
	cr_assert(nchunks == 0 || it->chunks != NULL);
	return it;
}

/* Fills a chunk's storage with a valid path/offset/length and `nsums`
 * distinct sums derived from seed (the right count for md's block). */
void mt_set_storage(const dcp_metadata *md, dcp_md_chunk *c, const char *path, uint64_t offset,
                    uint64_t length, uint64_t seed)
{
	c->storage.path = strdup(path);
	c->storage.offset = offset;
	c->storage.length = length;
	uint64_t n = length / md->checksum_block + (length % md->checksum_block != 0);
	cr_assert(n <= 1000000, "test helper: too many sums");
	c->storage.nsums = (uint32_t)n;
	c->storage.sums = n ? malloc(n * sizeof(uint64_t)) : NULL;
	for (uint64_t i = 0; i < n; i++)
		c->storage.sums[i] =
		        seed * 0x9e3779b97f4a7c15ull + i * 0xff51afd7ed558ccdull + UINT64_MAX - 3;
}

/* A tensor chunk whose storage length matches its volume. */
void mt_set_chunk(const dcp_metadata *md, const dcp_md_item *it, dcp_md_chunk *c, const uint64_t *offsets,
                  const uint64_t *sizes, const char *path, uint64_t offset)
{
	uint64_t vol = 1;
	for (int d = 0; d < it->ndim; d++) {
		c->offsets[d] = offsets[d];
		c->sizes[d] = sizes[d];
		vol *= sizes[d];
	}
	mt_set_storage(md, c, path, offset, vol * dcp_dtype_size(it->dtype), offset + 1);
}

void mt_assert_md_equal(const dcp_metadata *a, const dcp_metadata *b)
{
	cr_assert_eq(a->format_major, b->format_major);
	cr_assert_eq(a->checksum_block, b->checksum_block);
	if (a->save_id == NULL || b->save_id == NULL)
		cr_assert_eq(a->save_id, b->save_id);
	else
		cr_assert_str_eq(a->save_id, b->save_id);
	cr_assert_eq(a->nitems, b->nitems);
	for (size_t i = 0; i < a->nitems; i++) {
		const dcp_md_item *x = &a->items[i], *y = &b->items[i];
		cr_assert_str_eq(x->key, y->key);
		cr_assert_eq(x->type, y->type, "%s", x->key);
		cr_assert_eq(x->ndim, y->ndim, "%s", x->key);
		if (x->type == DCP_ITEM_TENSOR) {
			cr_assert_eq(x->dtype, y->dtype, "%s", x->key);
			for (int d = 0; d < x->ndim; d++)
				cr_assert_eq(x->shape[d], y->shape[d], "%s dim %d", x->key, d);
		}
		cr_assert_eq(x->nchunks, y->nchunks, "%s", x->key);
		for (size_t c = 0; c < x->nchunks; c++) {
			const dcp_md_chunk *p = &x->chunks[c], *q = &y->chunks[c];
			for (int d = 0; d < x->ndim; d++) {
				cr_assert_eq(p->offsets[d], q->offsets[d], "%s chunk %zu", x->key, c);
				cr_assert_eq(p->sizes[d], q->sizes[d], "%s chunk %zu", x->key, c);
			}
			cr_assert_str_eq(p->storage.path, q->storage.path);
			cr_assert_eq(p->storage.offset, q->storage.offset, "%s chunk %zu", x->key, c);
			cr_assert_eq(p->storage.length, q->storage.length, "%s chunk %zu", x->key, c);
			cr_assert_eq(p->storage.nsums, q->storage.nsums, "%s chunk %zu", x->key, c);
			for (uint32_t s = 0; s < p->storage.nsums; s++)
				cr_assert_eq(p->storage.sums[s], q->storage.sums[s], "%s chunk %zu sum %u",
				             x->key, c, s);
		}
	}
}

/* A metadata with every kind of item, valid. */
dcp_metadata *mt_sample_md(void)
{
	dcp_metadata *md = mt_md_new(16, "save-0001");
	uint64_t shape[2] = {4, 8};

	/* bytes item */
	dcp_md_item *it = mt_md_add(md, "extra.blob", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	mt_set_storage(md, &it->chunks[0], "data/__0_0.distcp", 0, 37, 1);
	/* empty bytes item */
	it = mt_md_add(md, "extra.empty", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	mt_set_storage(md, &it->chunks[0], "data/__0_0.distcp", 37, 0, 2);
	/* a tensor with no elements and no chunks */
	uint64_t zshape[2] = {0, 3};
	mt_md_add(md, "model.empty", DCP_ITEM_TENSOR, DCP_F16, 2, zshape, 0);
	/* a scalar */
	it = mt_md_add(md, "model.step", DCP_ITEM_TENSOR, DCP_I64, 0, NULL, 1);
	mt_set_chunk(md, it, &it->chunks[0], NULL, NULL, "data/__1_0.distcp", 0);
	/* a sharded matrix: rows 0-1 in one file, rows 2-3 split by columns */
	it = mt_md_add(md, "model.w", DCP_ITEM_TENSOR, DCP_F32, 2, shape, 3);
	mt_set_chunk(md, it, &it->chunks[0], (uint64_t[]){0, 0}, (uint64_t[]){2, 8}, "data/__0_0.distcp", 37);
	mt_set_chunk(md, it, &it->chunks[1], (uint64_t[]){2, 0}, (uint64_t[]){2, 3}, "data/__1_0.distcp", 8);
	mt_set_chunk(md, it, &it->chunks[2], (uint64_t[]){2, 3}, (uint64_t[]){2, 5}, "data/__2_0.distcp", 0);
	md->storage_meta = strdup("{\"layout\":\"bucket\",\"threads\":2,\"files\":[\"a\",\"b\"],\"x\":null}");
	return md;
}

char *mt_encode_ok(const dcp_metadata *md, size_t *len)
{
	char *json = NULL;
	size_t n = 0;
	dcp_msg msg = {{0}};
	int rc = dcp_metadata_encode(md, &json, &n, &msg);
	cr_assert_eq(rc, DCP_OK, "encode: %s", msg.text);
	cr_assert_not_null(json);
	cr_assert_eq(strlen(json), n, "len excludes the NUL");
	if (len != NULL)
		*len = n;
	return json;
}

dcp_metadata *mt_decode_ok(const char *json)
{
	dcp_metadata *md = NULL;
	dcp_msg msg = {{0}};
	int rc = dcp_metadata_decode(json, strlen(json), &md, &msg);
	cr_assert_eq(rc, DCP_OK, "decode: %s\n%.2000s", msg.text, json);
	cr_assert_not_null(md);
	return md;
}
