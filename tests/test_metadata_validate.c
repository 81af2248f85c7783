/*
 * The checkpoint metadata model (dcp/sys/metadata.h): in-memory validation of
 * chunk geometry (overlaps, gaps, bounds) and storage fields, and storage path
 * safety.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/sys/metadata.h"
#include "mdtest.h"

/* ------------------------------------------------------------------------ */
/* In-memory validation                                                     */
/* ------------------------------------------------------------------------ */

static void expect_invalid(dcp_metadata *md, int code, const char *want1, const char *want2)
{
	dcp_msg msg = {{0}};
	int rc = dcp_metadata_validate(md, &msg);
	cr_expect_eq(rc, code, "rc %d: %s", rc, msg.text);
	if (want1 != NULL)
		cr_expect(strstr(msg.text, want1) != NULL, "message lacks \"%s\": %s", want1, msg.text);
	if (want2 != NULL)
		cr_expect(strstr(msg.text, want2) != NULL, "message lacks \"%s\": %s", want2, msg.text);
	dcp_metadata_free(md);
}

Test(metadata, validate_checks_every_rule)
{
	dcp_metadata *md;

	md = mt_sample_md();
	md->checksum_block = 0;
	expect_invalid(md, DCP_EMETADATA, "block", NULL);

	md = mt_sample_md();
	md->format_major = 0;
	expect_invalid(md, DCP_EMETADATA, "format 0.0", NULL);

	md = mt_sample_md(); /* items out of order */
	dcp_md_item t = md->items[0];
	md->items[0] = md->items[1];
	md->items[1] = t;
	expect_invalid(md, DCP_EMETADATA, "not sorted", "'extra.empty' comes before 'extra.blob'");

	md = mt_sample_md();
	free(md->items[1].key);
	md->items[1].key = strdup("extra.blob");
	expect_invalid(md, DCP_EMETADATA, "'extra.blob' appears twice", NULL);

	md = mt_sample_md();
	md->items[0].type = (dcp_item_type)7;
	expect_invalid(md, DCP_EMETADATA, "'extra.blob'", "unknown type 7");

	md = mt_sample_md();
	md->items[4].dtype = DCP_DTYPE_COUNT_;
	expect_invalid(md, DCP_EMETADATA, "'model.w'", "unknown dtype");

	md = mt_sample_md();
	md->items[4].ndim = 9;
	expect_invalid(md, DCP_EMETADATA, "'model.w'", "ndim 9");

	md = mt_sample_md();
	md->items[0].ndim = 1;
	expect_invalid(md, DCP_EMETADATA, "bytes item 'extra.blob'", "ndim 1");

	md = mt_sample_md(); /* checksums for the wrong block count */
	md->items[4].chunks[0].storage.nsums = 1;
	expect_invalid(md, DCP_EMETADATA, "tensor 'model.w' chunk at offsets [0, 0] sizes [2, 8]",
	               "expected 4");

	md = mt_sample_md();
	free(md->items[0].chunks[0].storage.sums);
	md->items[0].chunks[0].storage.sums = NULL;
	expect_invalid(md, DCP_EMETADATA, "bytes item 'extra.blob'", "checksum array is missing");

	md = mt_sample_md();
	free(md->items[0].chunks[0].storage.path);
	md->items[0].chunks[0].storage.path = NULL;
	expect_invalid(md, DCP_EMETADATA, "bytes item 'extra.blob'", "not safe");

	md = mt_sample_md();
	md->items[0].chunks[0].storage.offset = UINT64_MAX - 10;
	expect_invalid(md, DCP_EMETADATA, "bytes item 'extra.blob'", "overflows");

	md = mt_sample_md();
	md->items[3].chunks[0].storage.length = 4;
	expect_invalid(md, DCP_EMETADATA, "'model.step'", "8 bytes");

	md = mt_sample_md();
	free(md->items[2].key);
	md->items[2].key = strdup("model.\tempty");
	expect_invalid(md, DCP_EMETADATA, "printable ASCII", NULL);

	md = mt_sample_md();
	free(md->save_id);
	md->save_id = strdup("");
	expect_invalid(md, DCP_EMETADATA, "save_id", NULL);

	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_validate(NULL, &msg), DCP_EINVAL);
	md = mt_md_new(1, NULL);
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_OK, "an empty metadata is valid: %s", msg.text);
	dcp_metadata_free(md);
}

/* A tensor item with chunks given as {offsets..., sizes...} rows. */
static dcp_metadata *grid_md(const char *key, int ndim, const uint64_t *shape, size_t n,
                             const uint64_t *boxes)
{
	dcp_metadata *md = mt_md_new(1u << 20, "g");
	dcp_md_item *it = mt_md_add(md, key, DCP_ITEM_TENSOR, DCP_U8, ndim, shape, n);
	for (size_t i = 0; i < n; i++)
		mt_set_chunk(md, it, &it->chunks[i], boxes + i * 2 * ndim, boxes + i * 2 * ndim + ndim, "f",
		             0);
	return md;
}

Test(metadata, overlap_is_reported_with_key_and_both_chunks)
{
	uint64_t shape[2] = {3, 8};
	uint64_t boxes[] = {
	        0, 0, 1, 4, /* offsets [0,0] sizes [1,4] */
	        0, 4, 2, 4, /* [0,4] [2,4] */
	        1, 0, 2, 8, /* [1,0] [2,8]: overlaps the one above at (1, 4..7) */
	};
	dcp_metadata *md = grid_md("model.w", 2, shape, 3, boxes);
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_EMETADATA);
	cr_expect(strstr(msg.text,
	                 "tensor 'model.w': chunk at offsets [0, 4] sizes [2, 4] overlaps chunk at offsets "
	                 "[1, 0] sizes [2, 8]") != NULL,
	          "%s", msg.text);
	dcp_metadata_free(md);
}

Test(metadata, coverage_gap_is_reported_with_counts)
{
	uint64_t shape[2] = {10, 10};
	uint64_t boxes[] = {0, 0, 5, 10, 5, 0, 5, 9, 9, 9, 0, 0 /* an empty chunk overlaps nothing */};
	dcp_metadata *md = grid_md("model.w", 2, shape, 3, boxes);
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_EMETADATA);
	cr_expect(strstr(msg.text, "tensor 'model.w': chunks cover 95 of 100 elements: the save must include "
	                           "every part of "
	                           "the tensor") != NULL,
	          "%s", msg.text);
	dcp_metadata_free(md);
}

Test(metadata, chunk_outside_shape_is_reported)
{
	uint64_t shape[2] = {4, 4};
	uint64_t boxes[] = {0, 0, 4, 4, UINT64_MAX, 0, 2, 1};
	dcp_metadata *md = grid_md("w", 2, shape, 2, boxes);
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_EMETADATA);
	cr_expect(strstr(msg.text,
	                 "tensor 'w': chunk at offsets [18446744073709551615, 0] sizes [2, 1] lies outside "
	                 "the shape [4, 4]") != NULL,
	          "%s", msg.text);
	dcp_metadata_free(md);
}

Test(metadata, exact_tilings_pass_in_any_order)
{
	/* a 3x5 block grid of a 9x10 matrix, listed in reverse, plus empty chunks */
	uint64_t shape[2] = {9, 10};
	uint64_t boxes[(15 + 2) * 4];
	size_t n = 0;
	for (int r = 2; r >= 0; r--)
		for (int c = 4; c >= 0; c--) {
			uint64_t *b = boxes + 4 * n++;
			b[0] = (uint64_t)r * 3, b[1] = (uint64_t)c * 2, b[2] = 3, b[3] = 2;
		}
	uint64_t empty[8] = {0, 0, 0, 10, 9, 10, 0, 0};
	memcpy(boxes + 4 * n, empty, sizeof(empty));
	n += 2;
	dcp_metadata *md = grid_md("grid", 2, shape, n, boxes);
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_OK, "%s", msg.text);
	/* through JSON the chunks come back sorted row-major */
	char *json = mt_encode_ok(md, NULL);
	dcp_metadata *back = mt_decode_ok(json);
	const dcp_md_item *it = &back->items[0];
	for (size_t i = 1; i < it->nchunks; i++) {
		const uint64_t *a = it->chunks[i - 1].offsets, *b = it->chunks[i].offsets;
		cr_expect(a[0] < b[0] || (a[0] == b[0] && a[1] <= b[1]), "chunk %zu out of order", i);
	}
	free(json);
	dcp_metadata_free(back);
	dcp_metadata_free(md);
}

/* A quadratic overlap check would take minutes here. */
Test(metadata, overlap_check_scales, .timeout = 60)
{
	size_t n = 200000;
	uint64_t shape[2] = {n, 16};
	uint64_t *boxes = malloc(n * 4 * sizeof(uint64_t));
	for (size_t i = 0; i < n; i++) {
		/* rows, in scrambled order */
		size_t row = (i * 7919) % n;
		boxes[4 * i] = row, boxes[4 * i + 1] = 0, boxes[4 * i + 2] = 1, boxes[4 * i + 3] = 16;
	}
	dcp_metadata *md = grid_md("rows", 2, shape, n, boxes);
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_OK, "%s", msg.text);
	/* make the last chunk two rows tall: it now overlaps its neighbour */
	dcp_md_chunk *c = &md->items[0].chunks[n - 1];
	uint64_t row = c->offsets[0];
	c->sizes[0] = 2;
	if (row == n - 1)
		c->offsets[0] = row - 1;
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_EMETADATA);
	cr_expect(strstr(msg.text, "tensor 'rows': chunk at offsets") != NULL, "%s", msg.text);
	cr_expect(strstr(msg.text, "overlaps") != NULL, "%s", msg.text);
	dcp_metadata_free(md);

	/* a 500 x 400 grid of column-major-listed blocks */
	const size_t R = 500, C = 400;
	uint64_t gshape[2] = {R * 2, C * 3};
	boxes = realloc(boxes, R * C * 4 * sizeof(uint64_t));
	n = 0;
	for (size_t cc = 0; cc < C; cc++)
		for (size_t r = 0; r < R; r++) {
			uint64_t *b = boxes + 4 * n++;
			b[0] = r * 2, b[1] = cc * 3, b[2] = 2, b[3] = 3;
		}
	md = grid_md("grid", 2, gshape, n, boxes);
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_OK, "%s", msg.text);
	dcp_metadata_free(md);
	free(boxes);
}

/* ------------------------------------------------------------------------ */
/* Paths                                                                    */
/* ------------------------------------------------------------------------ */

Test(metadata, storage_path_safety)
{
	static const char *safe[] = {"a",   "__0_0.distcp", "dir/sub/file", "a.b/..c/d..",
	                             "...", "x y/z'é",      "a-b_c~"};
	static const char *unsafe[] = {"",  "/abs", "a/",    "a//b", "..",   "../a",  "a/..", "a/../b",
	                               ".", "./a",  "a/./b", "a\\b", "a\nb", "a\x7f", "//",   "/"};
	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		cr_expect(dcp_storage_path_is_safe(safe[i]), "'%s' should be safe", safe[i]);
	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
		cr_expect(!dcp_storage_path_is_safe(unsafe[i]), "'%s' should be unsafe", unsafe[i]);
	cr_expect(!dcp_storage_path_is_safe(NULL));
	char *longp = malloc(5000);
	memset(longp, 'a', 4999);
	longp[4999] = '\0';
	cr_expect(!dcp_storage_path_is_safe(longp), "over 4096 bytes");
	longp[4096] = '\0';
	cr_expect(dcp_storage_path_is_safe(longp), "4096 bytes");
	free(longp);
}
