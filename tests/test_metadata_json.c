/*
 * The checkpoint metadata model (dcp/sys/metadata.h): JSON round trips, the
 * refusal of a newer format version, encoding refusing invalid metadata, and
 * deep copies.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/sys/metadata.h"
#include "mdtest.h"

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

Test(metadata, round_trip_every_item_kind)
{
	dcp_metadata *md = mt_sample_md();
	dcp_msg msg = {{0}};
	cr_assert_eq(dcp_metadata_validate(md, &msg), DCP_OK, "%s", msg.text);

	size_t len;
	char *json = mt_encode_ok(md, &len);
	dcp_metadata *back = mt_decode_ok(json);
	mt_assert_md_equal(md, back);
	cr_assert_not_null(back->storage_meta);
	cr_expect_str_eq(back->storage_meta, md->storage_meta);

	/* encoding what was decoded gives the same text */
	char *again = mt_encode_ok(back, NULL);
	cr_expect_str_eq(again, json);

	/* lookups on the decoded metadata */
	const dcp_md_item *w = dcp_metadata_find(back, "model.w");
	cr_assert_not_null(w);
	cr_expect_eq(w->nchunks, 3);
	cr_expect_eq(dcp_metadata_find(back, "model.step")->ndim, 0);
	cr_expect_null(dcp_metadata_find(back, "model"));
	cr_expect_null(dcp_metadata_find(back, "zzz"));
	cr_expect_null(dcp_metadata_find(NULL, "model.w"));

	free(again);
	free(json);
	dcp_metadata_free(back);
	dcp_metadata_free(md);
}

Test(metadata, document_shape_is_as_documented)
{
	dcp_metadata *md = mt_sample_md();
	char *json = mt_encode_ok(md, NULL);

	cr_expect(strncmp(json, "{\"format\":{\"major\":1,\"minor\":0}", 31) == 0, "%s", json);
	cr_expect(strstr(json, "\"save_id\":\"save-0001\"") != NULL);
	cr_expect(strstr(json, "\"checksum\":{\"algo\":\"xxh3-64\",\"block\":16}") != NULL);
	cr_expect(
	        strstr(json, "{\"key\":\"model.w\",\"type\":\"tensor\",\"dtype\":\"f32\",\"shape\":[4,8],") !=
	        NULL);
	cr_expect(strstr(json, "{\"key\":\"extra.blob\",\"type\":\"bytes\",\"chunks\":[{\"path\":") != NULL);
	cr_expect(strstr(json, "\"offsets\":[2,3],\"sizes\":[2,5],\"path\":\"data/__2_0.distcp\"") != NULL);
	cr_expect(strstr(json, "\"storage_meta\":{\"layout\":\"bucket\"") != NULL);
	/* sums are 16 lowercase hex digits */
	char want[64];
	snprintf(want, sizeof(want), "\"sums\":[\"%016llx\"",
	         (unsigned long long)md->items[0].chunks[0].storage.sums[0]);
	cr_expect(strstr(json, want) != NULL, "%s not in %s", want, json);
	free(json);
	dcp_metadata_free(md);
}

Test(metadata, u64_values_round_trip_exactly)
{
	const uint64_t big = UINT64_C(1) << 63;
	dcp_metadata *md = mt_md_new(UINT64_C(1) << 62, "s");
	/* a u8 tensor of 2^63 + 2^53 + 1 elements in two chunks, in objects at
	 * offsets that end exactly at UINT64_MAX */
	uint64_t shape[1] = {big + (UINT64_C(1) << 53) + 1};
	dcp_md_item *it = mt_md_add(md, "huge", DCP_ITEM_TENSOR, DCP_U8, 1, shape, 2);
	mt_set_chunk(md, it, &it->chunks[0], (uint64_t[]){0}, (uint64_t[]){big}, "a", UINT64_MAX - big);
	mt_set_chunk(md, it, &it->chunks[1], (uint64_t[]){big}, (uint64_t[]){(UINT64_C(1) << 53) + 1}, "b",
	             UINT64_C(1) << 53);
	it->chunks[0].storage.sums[0] = UINT64_MAX;
	it->chunks[0].storage.sums[1] = 0;
	/* a bytes item at 2^53 - 1 and one at 2^53 + 1 */
	it = mt_md_add(md, "z1", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	mt_set_storage(md, &it->chunks[0], "c", (UINT64_C(1) << 53) - 1, 3, 5);
	it = mt_md_add(md, "z2", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	mt_set_storage(md, &it->chunks[0], "c", (UINT64_C(1) << 53) + 1, 3, 6);

	char *json = mt_encode_ok(md, NULL);
	cr_expect(strstr(json, "\"9223372036854775808\"") != NULL, "values above 2^53 are strings: %s", json);
	cr_expect(strstr(json, "\"9007199254740993\"") != NULL, "2^53 + 1 is a string: %s", json);
	cr_expect(strstr(json, ":9007199254740992,") != NULL, "2^53 is a number: %s", json);
	cr_expect(strstr(json, "\"ffffffffffffffff\"") != NULL);
	dcp_metadata *back = mt_decode_ok(json);
	mt_assert_md_equal(md, back);
	cr_expect_eq(back->items[0].chunks[0].storage.offset + back->items[0].chunks[0].storage.length,
	             UINT64_MAX);
	free(json);
	dcp_metadata_free(back);
	dcp_metadata_free(md);
}

Test(metadata, decode_accepts_numbers_as_strings_and_ignores_unknown_fields)
{
	const char *json =
	        "{\"future\":[1,2,{\"x\":1}],\"format\":{\"major\":1,\"minor\":7,\"extra\":true},"
	        "\"checksum\":{\"algo\":\"xxh3-64\",\"block\":\"16\",\"new\":1},"
	        "\"items\":[{\"key\":\"t\",\"type\":\"tensor\",\"dtype\":\"u8\",\"shape\":[\"20\"],\"hint\":"
	        "\"x\","
	        "\"chunks\":[{\"offsets\":[0],\"sizes\":[20],\"path\":\"f\",\"offset\":\"0\",\"length\":20,"
	        "\"sums\":[\"00000000000000AA\",\"00000000000000bb\"],\"compression\":null}]}]}";
	dcp_metadata *md = mt_decode_ok(json);
	cr_expect_eq(md->format_major, 1);
	cr_expect_eq(md->format_minor, 7);
	cr_expect_null(md->save_id);
	cr_expect_null(md->storage_meta);
	cr_expect_eq(md->checksum_block, 16);
	cr_assert_eq(md->nitems, 1);
	cr_expect_eq(md->items[0].shape[0], 20);
	cr_expect_eq(md->items[0].chunks[0].storage.sums[0], 0xaa);
	cr_expect_eq(md->items[0].chunks[0].storage.sums[1], 0xbb);
	dcp_metadata_free(md);
}

Test(metadata, decode_sorts_items_and_chunks)
{
	const char *json = "{\"format\":{\"major\":1,\"minor\":0},\"checksum\":{\"algo\":\"xxh3-64\","
	                   "\"block\":64},\"items\":["
	                   "{\"key\":\"b\",\"type\":\"tensor\",\"dtype\":\"u8\",\"shape\":[2,2],\"chunks\":["
	                   "{\"offsets\":[1,1],\"sizes\":[1,1],\"path\":\"f\",\"offset\":3,\"length\":1,"
	                   "\"sums\":[\"0000000000000003\"]},"
	                   "{\"offsets\":[1,0],\"sizes\":[1,1],\"path\":\"f\",\"offset\":2,\"length\":1,"
	                   "\"sums\":[\"0000000000000002\"]},"
	                   "{\"offsets\":[0,0],\"sizes\":[1,2],\"path\":\"f\",\"offset\":0,\"length\":2,"
	                   "\"sums\":[\"0000000000000001\"]}"
	                   "]},"
	                   "{\"key\":\"a\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"g\",\"offset\":0,"
	                   "\"length\":0,\"sums\":[]}]}"
	                   "]}";
	dcp_metadata *md = mt_decode_ok(json);
	cr_assert_eq(md->nitems, 2);
	cr_expect_str_eq(md->items[0].key, "a");
	cr_expect_str_eq(md->items[1].key, "b");
	const dcp_md_item *b = &md->items[1];
	for (size_t i = 0; i < 3; i++)
		cr_expect_eq(b->chunks[i].storage.sums[0], i + 1, "chunk %zu in row-major order", i);
	dcp_metadata_free(md);
}

Test(metadata, decode_takes_unterminated_buffer_and_trailing_whitespace)
{
	dcp_metadata *md = mt_sample_md();
	size_t len;
	char *json = mt_encode_ok(md, &len);
	/* a copy with no NUL after it, and one with trailing whitespace + NUL */
	char *raw = malloc(len);
	memcpy(raw, json, len);
	dcp_metadata *back = NULL;
	dcp_msg msg = {{0}};
	cr_assert_eq(dcp_metadata_decode(raw, len, &back, &msg), DCP_OK, "%s", msg.text);
	dcp_metadata_free(back);
	char *ws = malloc(len + 4);
	memcpy(ws, json, len);
	memcpy(ws + len, " \n\t", 4);
	cr_assert_eq(dcp_metadata_decode(ws, len + 4, &back, &msg), DCP_OK, "%s", msg.text);
	dcp_metadata_free(back);
	free(ws);
	free(raw);
	free(json);
	dcp_metadata_free(md);
}

Test(metadata, storage_meta_of_any_json_kind)
{
	static const char *metas[] = {"\"text\"",
	                              "42",
	                              "[1,[2,[3]]]",
	                              "{}",
	                              " {\"a\" : [ true , false ] } ",
	                              "{\"big\":\"18446744073709551615\"}"};
	for (size_t i = 0; i < sizeof(metas) / sizeof(metas[0]); i++) {
		dcp_metadata *md = mt_sample_md();
		free(md->storage_meta);
		md->storage_meta = strdup(metas[i]);
		char *json = mt_encode_ok(md, NULL);
		dcp_metadata *back = mt_decode_ok(json);
		cr_assert_not_null(back->storage_meta, "%s", metas[i]);
		/* compact form of the same value */
		char want[128];
		size_t n = 0;
		int in_str = 0;
		for (const char *p = metas[i]; *p; p++) {
			if (*p == '"')
				in_str = !in_str;
			if (in_str || (*p != ' '))
				want[n++] = *p;
		}
		want[n] = '\0';
		cr_expect_str_eq(back->storage_meta, want);
		free(json);
		dcp_metadata_free(back);
		dcp_metadata_free(md);
	}
	/* no storage_meta: the field is absent and decodes as NULL */
	dcp_metadata *md = mt_sample_md();
	free(md->storage_meta);
	md->storage_meta = NULL;
	char *json = mt_encode_ok(md, NULL);
	cr_expect_null(strstr(json, "storage_meta"));
	dcp_metadata *back = mt_decode_ok(json);
	cr_expect_null(back->storage_meta);
	free(json);
	dcp_metadata_free(back);
	dcp_metadata_free(md);
}

Test(metadata, keys_and_paths_with_quotes_are_escaped)
{
	dcp_metadata *md = mt_md_new(8, "id \"quoted\"");
	dcp_md_item *it = mt_md_add(md, "a\"b\\c", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	mt_set_storage(md, &it->chunks[0], "dir \"x\"/f\\", 0, 9, 1);
	/* backslash is not a safe path character: swap in a safe one */
	free(it->chunks[0].storage.path);
	it->chunks[0].storage.path = strdup("dir \"x\"/f'é");
	char *json = mt_encode_ok(md, NULL);
	dcp_metadata *back = mt_decode_ok(json);
	mt_assert_md_equal(md, back);
	free(json);
	dcp_metadata_free(back);
	dcp_metadata_free(md);
}

Test(metadata, hundred_thousand_chunks, .timeout = 60)
{
	const size_t n = 100000;
	dcp_metadata *md = mt_md_new(1024, "big");
	uint64_t shape[2] = {n, 4};
	dcp_md_item *it = mt_md_add(md, "emb", DCP_ITEM_TENSOR, DCP_BF16, 2, shape, n);
	for (size_t i = 0; i < n; i++)
		mt_set_chunk(md, it, &it->chunks[i], (uint64_t[]){i, 0}, (uint64_t[]){1, 4}, "data/x", i * 8);
	size_t len;
	char *json = mt_encode_ok(md, &len);
	cr_expect_gt(len, n * 50);
	dcp_metadata *back = mt_decode_ok(json);
	mt_assert_md_equal(md, back);
	free(json);
	dcp_metadata_free(back);
	dcp_metadata_free(md);
}

/* ------------------------------------------------------------------------ */
/* Version refusal                                                          */
/* ------------------------------------------------------------------------ */

Test(metadata, newer_major_is_refused_with_eversion)
{
	/* the rest of a newer document may look like anything */
	const char *json = "{\"format\":{\"major\":2,\"minor\":0},\"items\":\"elsewhere\"}";
	dcp_metadata *md = (dcp_metadata *)0x1;
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_decode(json, strlen(json), &md, &msg), DCP_EVERSION);
	cr_expect_null(md);
	cr_expect_str_eq(msg.text,
	                 "checkpoint format 2.0 is newer than this libdcp supports (1.x): upgrade libdcp");

	const char *json2 = "{\"format\":{\"major\":\"3\",\"minor\":5}}";
	cr_expect_eq(dcp_metadata_decode(json2, strlen(json2), &md, &msg), DCP_EVERSION);
	cr_expect(strstr(msg.text, "3.5 is newer") != NULL, "%s", msg.text);

	/* validate refuses an in-memory metadata of a newer major too */
	dcp_metadata *m = mt_md_new(16, NULL);
	m->format_major = 2;
	cr_expect_eq(dcp_metadata_validate(m, &msg), DCP_EVERSION);
	cr_expect(strstr(msg.text, "upgrade libdcp") != NULL, "%s", msg.text);
	dcp_metadata_free(m);
}

/* ------------------------------------------------------------------------ */
/* Encoding refuses what a decoder would refuse                             */
/* ------------------------------------------------------------------------ */

Test(metadata, encode_refuses_invalid_metadata)
{
	char *json = (char *)0x1;
	size_t len = 7;
	dcp_msg msg = {{0}};

	dcp_metadata *md = mt_sample_md();
	free(md->storage_meta);
	md->storage_meta = strdup("{\"a\":");
	cr_expect_eq(dcp_metadata_encode(md, &json, &len, &msg), DCP_EMETADATA);
	cr_expect_null(json);
	cr_expect(strstr(msg.text, "storage_meta is not one valid JSON value") != NULL, "%s", msg.text);
	free(md->storage_meta);
	md->storage_meta = strdup("{} {}");
	cr_expect_eq(dcp_metadata_encode(md, &json, &len, &msg), DCP_EMETADATA);
	dcp_metadata_free(md);

	md = mt_sample_md();
	md->items[4].chunks[1].storage.length += 4;
	cr_expect_eq(dcp_metadata_encode(md, &json, &len, &msg), DCP_EMETADATA);
	cr_expect(strstr(msg.text, "cannot encode invalid metadata") != NULL, "%s", msg.text);
	cr_expect(strstr(msg.text, "model.w") != NULL, "%s", msg.text);
	dcp_metadata_free(md);
}

/* ------------------------------------------------------------------------ */
/* Copy and free                                                            */
/* ------------------------------------------------------------------------ */

Test(metadata, dup_is_deep)
{
	dcp_metadata *md = mt_sample_md();
	dcp_metadata *c = dcp_metadata_dup(md);
	cr_assert_not_null(c);
	mt_assert_md_equal(md, c);
	cr_expect_str_eq(c->storage_meta, md->storage_meta);
	cr_expect_neq(c->items, md->items);
	cr_expect_neq(c->items[0].key, md->items[0].key);
	cr_expect_neq(c->items[4].chunks[0].storage.sums, md->items[4].chunks[0].storage.sums);
	uint64_t before = md->items[4].chunks[0].storage.sums[0];
	c->items[4].chunks[0].storage.sums[0] ^= 1;
	c->items[4].chunks[0].storage.path[0] = 'X';
	cr_expect_eq(md->items[4].chunks[0].storage.sums[0], before);
	cr_expect_eq(md->items[4].chunks[0].storage.path[0], 'd');
	dcp_metadata_free(c);
	dcp_metadata_free(md);
	cr_expect_null(dcp_metadata_dup(NULL));
	dcp_metadata_free(NULL);
}
