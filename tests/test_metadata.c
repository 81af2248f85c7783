/*
 * The checkpoint metadata model (dcp/sys/metadata.h): JSON round trips,
 * malformed documents, version refusal, validation of chunk geometry and
 * storage fields, path safety, lookup, copies and checksums.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/sys/metadata.h"

/* ------------------------------------------------------------------------ */
/* Helpers to build metadata                                                */
/* ------------------------------------------------------------------------ */

static dcp_metadata *md_new(uint64_t block, const char *save_id)
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
static dcp_md_item *md_add(dcp_metadata *md, const char *key, dcp_item_type type, dcp_dtype dtype, int ndim,
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
static void set_storage(const dcp_metadata *md, dcp_md_chunk *c, const char *path, uint64_t offset,
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
static void set_chunk(const dcp_metadata *md, const dcp_md_item *it, dcp_md_chunk *c, const uint64_t *offsets,
                      const uint64_t *sizes, const char *path, uint64_t offset)
{
	uint64_t vol = 1;
	for (int d = 0; d < it->ndim; d++) {
		c->offsets[d] = offsets[d];
		c->sizes[d] = sizes[d];
		vol *= sizes[d];
	}
	set_storage(md, c, path, offset, vol * dcp_dtype_size(it->dtype), offset + 1);
}

static void assert_md_equal(const dcp_metadata *a, const dcp_metadata *b)
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
static dcp_metadata *sample_md(void)
{
	dcp_metadata *md = md_new(16, "save-0001");
	uint64_t shape[2] = {4, 8};

	/* bytes item */
	dcp_md_item *it = md_add(md, "extra.blob", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	set_storage(md, &it->chunks[0], "data/__0_0.distcp", 0, 37, 1);
	/* empty bytes item */
	it = md_add(md, "extra.empty", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	set_storage(md, &it->chunks[0], "data/__0_0.distcp", 37, 0, 2);
	/* a tensor with no elements and no chunks */
	uint64_t zshape[2] = {0, 3};
	md_add(md, "model.empty", DCP_ITEM_TENSOR, DCP_F16, 2, zshape, 0);
	/* a scalar */
	it = md_add(md, "model.step", DCP_ITEM_TENSOR, DCP_I64, 0, NULL, 1);
	set_chunk(md, it, &it->chunks[0], NULL, NULL, "data/__1_0.distcp", 0);
	/* a sharded matrix: rows 0-1 in one file, rows 2-3 split by columns */
	it = md_add(md, "model.w", DCP_ITEM_TENSOR, DCP_F32, 2, shape, 3);
	set_chunk(md, it, &it->chunks[0], (uint64_t[]){0, 0}, (uint64_t[]){2, 8}, "data/__0_0.distcp", 37);
	set_chunk(md, it, &it->chunks[1], (uint64_t[]){2, 0}, (uint64_t[]){2, 3}, "data/__1_0.distcp", 8);
	set_chunk(md, it, &it->chunks[2], (uint64_t[]){2, 3}, (uint64_t[]){2, 5}, "data/__2_0.distcp", 0);
	md->storage_meta = strdup("{\"layout\":\"bucket\",\"threads\":2,\"files\":[\"a\",\"b\"],\"x\":null}");
	return md;
}

static char *encode_ok(const dcp_metadata *md, size_t *len)
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

static dcp_metadata *decode_ok(const char *json)
{
	dcp_metadata *md = NULL;
	dcp_msg msg = {{0}};
	int rc = dcp_metadata_decode(json, strlen(json), &md, &msg);
	cr_assert_eq(rc, DCP_OK, "decode: %s\n%.2000s", msg.text, json);
	cr_assert_not_null(md);
	return md;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

Test(metadata, round_trip_every_item_kind)
{
	dcp_metadata *md = sample_md();
	dcp_msg msg = {{0}};
	cr_assert_eq(dcp_metadata_validate(md, &msg), DCP_OK, "%s", msg.text);

	size_t len;
	char *json = encode_ok(md, &len);
	dcp_metadata *back = decode_ok(json);
	assert_md_equal(md, back);
	cr_assert_not_null(back->storage_meta);
	cr_expect_str_eq(back->storage_meta, md->storage_meta);

	/* encoding what was decoded gives the same text */
	char *again = encode_ok(back, NULL);
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
	dcp_metadata *md = sample_md();
	char *json = encode_ok(md, NULL);

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
	dcp_metadata *md = md_new(UINT64_C(1) << 62, "s");
	/* a u8 tensor of 2^63 + 2^53 + 1 elements in two chunks, in objects at
	 * offsets that end exactly at UINT64_MAX */
	uint64_t shape[1] = {big + (UINT64_C(1) << 53) + 1};
	dcp_md_item *it = md_add(md, "huge", DCP_ITEM_TENSOR, DCP_U8, 1, shape, 2);
	set_chunk(md, it, &it->chunks[0], (uint64_t[]){0}, (uint64_t[]){big}, "a", UINT64_MAX - big);
	set_chunk(md, it, &it->chunks[1], (uint64_t[]){big}, (uint64_t[]){(UINT64_C(1) << 53) + 1}, "b",
	          UINT64_C(1) << 53);
	it->chunks[0].storage.sums[0] = UINT64_MAX;
	it->chunks[0].storage.sums[1] = 0;
	/* a bytes item at 2^53 - 1 and one at 2^53 + 1 */
	it = md_add(md, "z1", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	set_storage(md, &it->chunks[0], "c", (UINT64_C(1) << 53) - 1, 3, 5);
	it = md_add(md, "z2", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	set_storage(md, &it->chunks[0], "c", (UINT64_C(1) << 53) + 1, 3, 6);

	char *json = encode_ok(md, NULL);
	cr_expect(strstr(json, "\"9223372036854775808\"") != NULL, "values above 2^53 are strings: %s", json);
	cr_expect(strstr(json, "\"9007199254740993\"") != NULL, "2^53 + 1 is a string: %s", json);
	cr_expect(strstr(json, ":9007199254740992,") != NULL, "2^53 is a number: %s", json);
	cr_expect(strstr(json, "\"ffffffffffffffff\"") != NULL);
	dcp_metadata *back = decode_ok(json);
	assert_md_equal(md, back);
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
	dcp_metadata *md = decode_ok(json);
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
	dcp_metadata *md = decode_ok(json);
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
	dcp_metadata *md = sample_md();
	size_t len;
	char *json = encode_ok(md, &len);
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
		dcp_metadata *md = sample_md();
		free(md->storage_meta);
		md->storage_meta = strdup(metas[i]);
		char *json = encode_ok(md, NULL);
		dcp_metadata *back = decode_ok(json);
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
	dcp_metadata *md = sample_md();
	free(md->storage_meta);
	md->storage_meta = NULL;
	char *json = encode_ok(md, NULL);
	cr_expect_null(strstr(json, "storage_meta"));
	dcp_metadata *back = decode_ok(json);
	cr_expect_null(back->storage_meta);
	free(json);
	dcp_metadata_free(back);
	dcp_metadata_free(md);
}

Test(metadata, keys_and_paths_with_quotes_are_escaped)
{
	dcp_metadata *md = md_new(8, "id \"quoted\"");
	dcp_md_item *it = md_add(md, "a\"b\\c", DCP_ITEM_BYTES, DCP_U8, 0, NULL, 1);
	set_storage(md, &it->chunks[0], "dir \"x\"/f\\", 0, 9, 1);
	/* backslash is not a safe path character: swap in a safe one */
	free(it->chunks[0].storage.path);
	it->chunks[0].storage.path = strdup("dir \"x\"/f'é");
	char *json = encode_ok(md, NULL);
	dcp_metadata *back = decode_ok(json);
	assert_md_equal(md, back);
	free(json);
	dcp_metadata_free(back);
	dcp_metadata_free(md);
}

Test(metadata, hundred_thousand_chunks, .timeout = 60)
{
	const size_t n = 100000;
	dcp_metadata *md = md_new(1024, "big");
	uint64_t shape[2] = {n, 4};
	dcp_md_item *it = md_add(md, "emb", DCP_ITEM_TENSOR, DCP_BF16, 2, shape, n);
	for (size_t i = 0; i < n; i++)
		set_chunk(md, it, &it->chunks[i], (uint64_t[]){i, 0}, (uint64_t[]){1, 4}, "data/x", i * 8);
	size_t len;
	char *json = encode_ok(md, &len);
	cr_expect_gt(len, n * 50);
	dcp_metadata *back = decode_ok(json);
	assert_md_equal(md, back);
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
	dcp_metadata *m = md_new(16, NULL);
	m->format_major = 2;
	cr_expect_eq(dcp_metadata_validate(m, &msg), DCP_EVERSION);
	cr_expect(strstr(msg.text, "upgrade libdcp") != NULL, "%s", msg.text);
	dcp_metadata_free(m);
}

/* ------------------------------------------------------------------------ */
/* Malformed documents                                                      */
/* ------------------------------------------------------------------------ */

#define HEAD                                                                                          \
	"{\"format\":{\"major\":1,\"minor\":0},\"save_id\":\"s\",\"checksum\":{\"algo\":\"xxh3-64\"," \
	"\"block\":16},"
#define SUM "\"0123456789abcdef\""
/* A valid u8 tensor item "k" of shape [4] in one chunk; pieces replaceable. */
#define TENSOR(key, dtype, shape, chunks) \
	"{\"key\":" key ",\"type\":\"tensor\",\"dtype\":" dtype ",\"shape\":" shape ",\"chunks\":" chunks "}"
#define CHUNK(offsets, sizes, path, offset, length, sums)                                   \
	"{\"offsets\":" offsets ",\"sizes\":" sizes ",\"path\":" path ",\"offset\":" offset \
	",\"length\":" length ",\"sums\":" sums "}"
#define OK_CHUNK   CHUNK("[0]", "[4]", "\"d/f\"", "0", "4", "[" SUM "]")
#define DOC(items) HEAD "\"items\":[" items "]}"

typedef struct bad_case {
	const char *name;
	const char *json;
	const char *want[3]; /* substrings the message must hold */
} bad_case;

static const bad_case bad_cases[] = {
        {"empty", "", {"empty"}},
        {"not json", "{\"format\":", {"not valid JSON"}},
        {"trailing data", DOC("") "x", {"after the JSON document"}},
        {"array root", "[]", {"must be a JSON object"}},
        {"no format", "{\"items\":[]}", {"'format'", "missing"}},
        {"format not object", "{\"format\":1}", {"'format'", "the number 1"}},
        {"major negative", "{\"format\":{\"major\":-1,\"minor\":0}}", {"'format.major'", "-1"}},
        {"major zero", "{\"format\":{\"major\":0,\"minor\":0}}", {"major version is 0"}},
        {"minor missing", "{\"format\":{\"major\":1},\"items\":[]}", {"'format.minor'"}},
        {"no checksum", "{\"format\":{\"major\":1,\"minor\":0},\"items\":[]}", {"'checksum'"}},
        {"unknown algo",
         "{\"format\":{\"major\":1,\"minor\":0},\"checksum\":{\"algo\":\"crc32c\",\"block\":4},\"items\":[]}",
         {"'crc32c'", "xxh3-64"}},
        {"block zero",
         "{\"format\":{\"major\":1,\"minor\":0},\"checksum\":{\"algo\":\"xxh3-64\",\"block\":0},"
         "\"items\":[]}",
         {"'checksum.block'"}},
        {"save_id number",
         "{\"format\":{\"major\":1,\"minor\":0},\"save_id\":5,\"checksum\":{\"algo\":\"xxh3-64\","
         "\"block\":4},\"items\":[]}",
         {"'save_id'"}},
        {"items missing", HEAD "\"x\":1}", {"'items'", "missing"}},
        {"items object", HEAD "\"items\":{}}", {"'items'", "an object"}},
        {"item not object", DOC("3"), {"items[0]", "an object"}},
        {"key missing", DOC("{\"type\":\"bytes\"}"), {"items[0]", "'key'"}},
        {"key empty", DOC(TENSOR("\"\"", "\"u8\"", "[4]", "[" OK_CHUNK "]")), {"items[0]", "'key'"}},
        {"key not printable",
         DOC(TENSOR("\"a\\u0001b\"", "\"u8\"", "[4]", "[" OK_CHUNK "]")),
         {"key", "printable ASCII"}},
        {"unknown type",
         DOC("{\"key\":\"k\",\"type\":\"blob\",\"chunks\":[]}"),
         {"item 'k'", "'type'", "\"blob\""}},
        {"unknown dtype",
         DOC(TENSOR("\"k\"", "\"f128\"", "[4]", "[" OK_CHUNK "]")),
         {"item 'k'", "'dtype'", "f128"}},
        {"dtype number", DOC(TENSOR("\"k\"", "4", "[4]", "[" OK_CHUNK "]")), {"item 'k'", "'dtype'"}},
        {"shape missing",
         DOC("{\"key\":\"k\",\"type\":\"tensor\",\"dtype\":\"u8\",\"chunks\":[]}"),
         {"item 'k'", "'shape'", "missing"}},
        {"ndim 9",
         DOC(TENSOR("\"k\"", "\"u8\"", "[1,1,1,1,1,1,1,1,1]", "[]")),
         {"item 'k'", "'shape'", "9 dimensions"}},
        {"shape element string", DOC(TENSOR("\"k\"", "\"u8\"", "[\"x\"]", "[]")), {"item 'k'", "'shape[0]'"}},
        {"shape overflow",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4294967296,4294967296,2]", "[]")),
         {"'k'", "overflows"}},
        {"shape overflow with a zero",
         DOC(TENSOR("\"k\"", "\"u8\"", "[\"18446744073709551615\",2,0]", "[]")),
         {"'k'", "overflows"}},
        {"shape above u64",
         DOC(TENSOR("\"k\"", "\"u8\"", "[\"18446744073709551616\"]", "[]")),
         {"'k'", "'shape[0]'"}},
        {"shape fraction", DOC(TENSOR("\"k\"", "\"u8\"", "[1.5]", "[]")), {"'k'", "'shape[0]'", "1.5"}},
        {"shape inexact double",
         DOC(TENSOR("\"k\"", "\"u8\"", "[9007199254740994]", "[]")),
         {"'k'", "'shape[0]'", "decimal string"}},
        {"shape negative string", DOC(TENSOR("\"k\"", "\"u8\"", "[\"-4\"]", "[]")), {"'k'", "'shape[0]'"}},
        {"chunks missing",
         DOC("{\"key\":\"k\",\"type\":\"tensor\",\"dtype\":\"u8\",\"shape\":[4]}"),
         {"item 'k'", "'chunks'"}},
        {"chunk not object", DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[[]]")), {"item 'k'", "'chunks[0]'"}},
        {"offsets ndim mismatch",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[0,0]", "[4]", "\"f\"", "0", "4", "[" SUM "]") "]")),
         {"item 'k'", "'chunks[0].offsets'", "2 dimensions"}},
        {"sizes missing",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[{\"offsets\":[0],\"path\":\"f\"}]")),
         {"item 'k'", "'chunks[0].sizes'"}},
        {"path missing",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[{\"offsets\":[0],\"sizes\":[4]}]")),
         {"item 'k'", "'chunks[0].path'"}},
        {"path dotdot",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"a/../../etc\"", "0", "4", "[" SUM "]") "]")),
         {"'k'", "a/../../etc", "not safe"}},
        {"path absolute",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"/etc/passwd\"", "0", "4", "[" SUM "]") "]")),
         {"'k'", "/etc/passwd", "not safe"}},
        {"path empty component",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"a//b\"", "0", "4", "[" SUM "]") "]")),
         {"'k'", "a//b"}},
        {"offset missing",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[{\"offsets\":[0],\"sizes\":[4],\"path\":\"f\"}]")),
         {"item 'k'", "'chunks[0].offset'", "missing"}},
        {"length bool",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"f\"", "0", "true", "[" SUM "]") "]")),
         {"item 'k'", "'chunks[0].length'", "true"}},
        {"length not volume",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[0]", "[4]", "\"f\"", "0", "5", "[" SUM "]") "]")),
         {"'k'", "length 5", "4 bytes"}},
        {"offset+length overflow",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"f\"", "\"18446744073709551614\"", "4", "[" SUM "]") "]")),
         {"'k'", "overflows"}},
        {"sums missing",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[{\"offsets\":[0],\"sizes\":[4],\"path\":\"f\",\"offset\":0,\"length\":4}]")),
         {"item 'k'", "'chunks[0].sums'"}},
        {"sums too few",
         DOC(TENSOR("\"k\"", "\"u8\"", "[40]",
                    "[" CHUNK("[0]", "[40]", "\"f\"", "0", "40", "[" SUM "]") "]")),
         {"'k'", "1 checksums", "expected 3"}},
        {"sums bad hex",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"f\"", "0", "4", "[\"0123456789abcdeg\"]") "]")),
         {"item 'k'", "'chunks[0].sums[0]'", "16 hex digits"}},
        {"sums short",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[0]", "[4]", "\"f\"", "0", "4", "[\"abc\"]") "]")),
         {"item 'k'", "'chunks[0].sums[0]'"}},
        {"sums long",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"f\"", "0", "4", "[\"0123456789abcdef0\"]") "]")),
         {"item 'k'", "'chunks[0].sums[0]'"}},
        {"absurd length",
         DOC(TENSOR("\"k\"", "\"u8\"", "[\"1152921504606846976\"]",
                    "[" CHUNK("[0]", "[\"1152921504606846976\"]", "\"f\"", "0", "\"1152921504606846976\"",
                              "[" SUM "]") "]")),
         {"'k'", "expected 72057594037927936"}},
        {"chunk outside shape",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[2]", "[4]", "\"f\"", "0", "4", "[" SUM "]") "]")),
         {"tensor 'k'", "offsets [2] sizes [4]", "outside the shape [4]"}},
        {"overlap",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[3]", "\"f\"", "0", "3",
                              "[" SUM "]") "," CHUNK("[2]", "[2]", "\"f\"", "3", "2", "[" SUM "]") "]")),
         {"tensor 'k'", "offsets [0] sizes [3] overlaps chunk at offsets [2] sizes [2]"}},
        {"gap",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[0]", "[3]", "\"f\"", "0", "3", "[" SUM "]") "]")),
         {"tensor 'k'", "chunks cover 3 of 4 elements"}},
        {"scalar twice",
         DOC(TENSOR("\"k\"", "\"u8\"", "[]",
                    "[" CHUNK("[]", "[]", "\"f\"", "0", "1", "[" SUM "]") "," CHUNK("[]", "[]", "\"f\"", "1",
                                                                                    "1", "[" SUM "]") "]")),
         {"tensor 'k'", "offsets [] sizes [] overlaps"}},
        {"duplicate key",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" OK_CHUNK "]") "," TENSOR("\"k\"", "\"u8\"", "[4]",
                                                                           "[" OK_CHUNK "]")),
         {"key 'k'", "more than one item"}},
        {"bytes two chunks",
         DOC("{\"key\":\"b\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"f\",\"offset\":0,\"length\":0,"
             "\"sums\":[]},{\"path\":\"f\",\"offset\":0,\"length\":0,\"sums\":[]}]}"),
         {"bytes item 'b'", "2 chunks"}},
        {"bytes no chunk",
         DOC("{\"key\":\"b\",\"type\":\"bytes\",\"chunks\":[]}"),
         {"bytes item 'b'", "0 chunks"}},
        {"bytes bad path",
         DOC("{\"key\":\"b\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"..\",\"offset\":0,\"length\":0,"
             "\"sums\":[]}]}"),
         {"bytes item 'b'", "'..'"}},
};

Test(metadata, malformed_documents_are_refused_with_precise_messages)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const bad_case *c = &bad_cases[i];
		dcp_metadata *md = (dcp_metadata *)0x1;
		dcp_msg msg = {{0}};
		int rc = dcp_metadata_decode(c->json, strlen(c->json), &md, &msg);
		cr_expect_eq(rc, DCP_EMETADATA, "[%s] rc %d: %s", c->name, rc, msg.text);
		cr_expect_null(md, "[%s] *out is NULL on failure", c->name);
		for (int k = 0; k < 3 && c->want[k] != NULL; k++)
			cr_expect(strstr(msg.text, c->want[k]) != NULL, "[%s] message lacks \"%s\": %s",
			          c->name, c->want[k], msg.text);
	}
}

Test(metadata, key_too_long_is_refused)
{
	char key[1100];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	size_t cap = 4096;
	char *json = malloc(cap);
	snprintf(json, cap,
	         DOC("{\"key\":\"%s\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"f\",\"offset\":0,\"length\":"
	             "0,"
	             "\"sums\":[]}]}"),
	         key);
	dcp_metadata *md = NULL;
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_decode(json, strlen(json), &md, &msg), DCP_EMETADATA);
	cr_expect(strstr(msg.text, "too long") != NULL, "%s", msg.text);
	/* 1024 bytes is fine */
	key[1024] = '\0';
	snprintf(json, cap,
	         DOC("{\"key\":\"%s\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"f\",\"offset\":0,\"length\":"
	             "0,"
	             "\"sums\":[]}]}"),
	         key);
	cr_expect_eq(dcp_metadata_decode(json, strlen(json), &md, &msg), DCP_OK, "%s", msg.text);
	dcp_metadata_free(md);
	free(json);
}

/* Every prefix and many one-byte corruptions of a valid document: decode
 * must fail cleanly or succeed, never crash or leak (run under ASan). */
Test(metadata, truncated_and_corrupted_documents_never_crash, .timeout = 120)
{
	dcp_metadata *md = sample_md();
	size_t len;
	char *json = encode_ok(md, &len);
	char *buf = malloc(len + 1);

	for (size_t cut = 0; cut + 1 < len; cut++) {
		dcp_metadata *out = NULL;
		dcp_msg msg = {{0}};
		memcpy(buf, json, cut);
		int rc = dcp_metadata_decode(buf, cut, &out, &msg);
		cr_expect_eq(rc, DCP_EMETADATA, "prefix of %zu bytes: rc %d", cut, rc);
		cr_expect_null(out);
		cr_expect_neq(msg.text[0], '\0', "prefix of %zu bytes: no message", cut);
	}
	static const char repl[] = "\"{}[],:0-9e.\\ x\x01\x80";
	uint64_t seed = 12345;
	for (size_t pos = 0; pos < len; pos++) {
		for (size_t r = 0; r < 3; r++) {
			dcp_metadata *out = NULL;
			dcp_msg msg = {{0}};
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			memcpy(buf, json, len);
			buf[pos] = repl[(seed >> 33) % (sizeof(repl) - 1)];
			int rc = dcp_metadata_decode(buf, len, &out, &msg);
			if (rc == DCP_OK) {
				cr_expect_not_null(out);
				cr_expect_eq(dcp_metadata_validate(out, &msg), DCP_OK, "%s", msg.text);
				dcp_metadata_free(out);
			} else {
				cr_expect(rc == DCP_EMETADATA || rc == DCP_EVERSION, "pos %zu: rc %d", pos,
				          rc);
				cr_expect_null(out);
			}
		}
	}
	free(buf);
	free(json);
	dcp_metadata_free(md);
}

Test(metadata, deeply_nested_document_is_refused)
{
	size_t depth = 5000;
	char *json = malloc(2 * depth + 1);
	for (size_t i = 0; i < depth; i++) {
		json[i] = '[';
		json[2 * depth - 1 - i] = ']';
	}
	json[2 * depth] = '\0';
	dcp_metadata *md = NULL;
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_decode(json, 2 * depth, &md, &msg), DCP_EMETADATA);
	free(json);
}

/* ------------------------------------------------------------------------ */
/* Encoding refuses what a decoder would refuse                             */
/* ------------------------------------------------------------------------ */

Test(metadata, encode_refuses_invalid_metadata)
{
	char *json = (char *)0x1;
	size_t len = 7;
	dcp_msg msg = {{0}};

	dcp_metadata *md = sample_md();
	free(md->storage_meta);
	md->storage_meta = strdup("{\"a\":");
	cr_expect_eq(dcp_metadata_encode(md, &json, &len, &msg), DCP_EMETADATA);
	cr_expect_null(json);
	cr_expect(strstr(msg.text, "storage_meta is not one valid JSON value") != NULL, "%s", msg.text);
	free(md->storage_meta);
	md->storage_meta = strdup("{} {}");
	cr_expect_eq(dcp_metadata_encode(md, &json, &len, &msg), DCP_EMETADATA);
	dcp_metadata_free(md);

	md = sample_md();
	md->items[4].chunks[1].storage.length += 4;
	cr_expect_eq(dcp_metadata_encode(md, &json, &len, &msg), DCP_EMETADATA);
	cr_expect(strstr(msg.text, "cannot encode invalid metadata") != NULL, "%s", msg.text);
	cr_expect(strstr(msg.text, "model.w") != NULL, "%s", msg.text);
	dcp_metadata_free(md);
}

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

	md = sample_md();
	md->checksum_block = 0;
	expect_invalid(md, DCP_EMETADATA, "block", NULL);

	md = sample_md();
	md->format_major = 0;
	expect_invalid(md, DCP_EMETADATA, "format 0.0", NULL);

	md = sample_md(); /* items out of order */
	dcp_md_item t = md->items[0];
	md->items[0] = md->items[1];
	md->items[1] = t;
	expect_invalid(md, DCP_EMETADATA, "not sorted", "'extra.empty' comes before 'extra.blob'");

	md = sample_md();
	free(md->items[1].key);
	md->items[1].key = strdup("extra.blob");
	expect_invalid(md, DCP_EMETADATA, "'extra.blob' appears twice", NULL);

	md = sample_md();
	md->items[0].type = (dcp_item_type)7;
	expect_invalid(md, DCP_EMETADATA, "'extra.blob'", "unknown type 7");

	md = sample_md();
	md->items[4].dtype = DCP_DTYPE_COUNT_;
	expect_invalid(md, DCP_EMETADATA, "'model.w'", "unknown dtype");

	md = sample_md();
	md->items[4].ndim = 9;
	expect_invalid(md, DCP_EMETADATA, "'model.w'", "ndim 9");

	md = sample_md();
	md->items[0].ndim = 1;
	expect_invalid(md, DCP_EMETADATA, "bytes item 'extra.blob'", "ndim 1");

	md = sample_md(); /* checksums for the wrong block count */
	md->items[4].chunks[0].storage.nsums = 1;
	expect_invalid(md, DCP_EMETADATA, "tensor 'model.w' chunk at offsets [0, 0] sizes [2, 8]",
	               "expected 4");

	md = sample_md();
	free(md->items[0].chunks[0].storage.sums);
	md->items[0].chunks[0].storage.sums = NULL;
	expect_invalid(md, DCP_EMETADATA, "bytes item 'extra.blob'", "checksum array is missing");

	md = sample_md();
	free(md->items[0].chunks[0].storage.path);
	md->items[0].chunks[0].storage.path = NULL;
	expect_invalid(md, DCP_EMETADATA, "bytes item 'extra.blob'", "not safe");

	md = sample_md();
	md->items[0].chunks[0].storage.offset = UINT64_MAX - 10;
	expect_invalid(md, DCP_EMETADATA, "bytes item 'extra.blob'", "overflows");

	md = sample_md();
	md->items[3].chunks[0].storage.length = 4;
	expect_invalid(md, DCP_EMETADATA, "'model.step'", "8 bytes");

	md = sample_md();
	free(md->items[2].key);
	md->items[2].key = strdup("model.\tempty");
	expect_invalid(md, DCP_EMETADATA, "printable ASCII", NULL);

	md = sample_md();
	free(md->save_id);
	md->save_id = strdup("");
	expect_invalid(md, DCP_EMETADATA, "save_id", NULL);

	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_validate(NULL, &msg), DCP_EINVAL);
	md = md_new(1, NULL);
	cr_expect_eq(dcp_metadata_validate(md, &msg), DCP_OK, "an empty metadata is valid: %s", msg.text);
	dcp_metadata_free(md);
}

/* A tensor item with chunks given as {offsets..., sizes...} rows. */
static dcp_metadata *grid_md(const char *key, int ndim, const uint64_t *shape, size_t n,
                             const uint64_t *boxes)
{
	dcp_metadata *md = md_new(1u << 20, "g");
	dcp_md_item *it = md_add(md, key, DCP_ITEM_TENSOR, DCP_U8, ndim, shape, n);
	for (size_t i = 0; i < n; i++)
		set_chunk(md, it, &it->chunks[i], boxes + i * 2 * ndim, boxes + i * 2 * ndim + ndim, "f", 0);
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
	char *json = encode_ok(md, NULL);
	dcp_metadata *back = decode_ok(json);
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

/* ------------------------------------------------------------------------ */
/* Copy and free                                                            */
/* ------------------------------------------------------------------------ */

Test(metadata, dup_is_deep)
{
	dcp_metadata *md = sample_md();
	dcp_metadata *c = dcp_metadata_dup(md);
	cr_assert_not_null(c);
	assert_md_equal(md, c);
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

/* ------------------------------------------------------------------------ */
/* Checksums                                                                */
/* ------------------------------------------------------------------------ */

Test(metadata, checksum_blocks_match_checksums_of_pieces)
{
	const uint64_t block = 64;
	unsigned char data[64 * 5 + 7];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 131 + 7);
	static const uint64_t lens[] = {0, 1, 63, 64, 65, 128, 64 * 5 + 7};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		uint64_t len = lens[k], n = (len + block - 1) / block;
		uint64_t sums[8];
		for (size_t i = 0; i < 8; i++)
			sums[i] = 0xdeadbeef;
		dcp_checksum_blocks(data, len, block, sums);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t piece = len - i * block < block ? len - i * block : block;
			cr_expect_eq(sums[i], dcp_checksum(data + i * block, piece), "len %llu block %llu",
			             (unsigned long long)len, (unsigned long long)i);
		}
		cr_expect_eq(sums[n], 0xdeadbeef, "len %llu: nothing written past block %llu",
		             (unsigned long long)len, (unsigned long long)n);
	}
	/* one whole block equals the whole-buffer checksum */
	uint64_t one;
	dcp_checksum_blocks(data, 50, 1u << 20, &one);
	cr_expect_eq(one, dcp_checksum(data, 50));
	/* a change in block 2 changes only sums[2] */
	uint64_t a[6], b[6];
	dcp_checksum_blocks(data, sizeof(data), block, a);
	data[2 * 64 + 10] ^= 0x40;
	dcp_checksum_blocks(data, sizeof(data), block, b);
	for (int i = 0; i < 6; i++)
		cr_expect_eq(a[i] != b[i], i == 2, "block %d", i);
}

Test(metadata, checksum_is_xxh3_64_seed_0)
{
	/* Known answers of XXH3-64 with seed 0 (xxHash's own test vectors). */
	cr_expect_eq(dcp_checksum(NULL, 0), UINT64_C(0x2D06800538D394C2));
	cr_expect_eq(dcp_checksum("", 0), UINT64_C(0x2D06800538D394C2));
	cr_expect_neq(dcp_checksum("a", 1), dcp_checksum("b", 1));
	cr_expect_eq(dcp_checksum("abc", 3), dcp_checksum("abcd", 3));
}
