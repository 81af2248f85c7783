/*
 * The state: validation and its messages, lookup, the planner view, loaded
 * flags, bytes storage (state_internal.h; this test needs the core's internal
 * symbols: link it with the static library or the objects), and dtypes.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/src/state_internal.h"
#include "dcp/dcp.h"
#include "dcp/sys/planner.h"

#include "failmalloc.h"

/* ------------------------------------------------------------------------ */

#define U64(...) ((const uint64_t[]){__VA_ARGS__})

static dcp_state *st;

static void setup(void)
{
	st = dcp_state_new();
	cr_assert_not_null(st);
}

static void teardown(void)
{
	dcp_state_free(st);
	st = NULL;
}

/* The last error contains every string of the NULL-terminated list. */
static void expect_error(const char *first, ...)
{
	const char *err = dcp_state_last_error(st);
	const char *s;
	va_list ap;

	va_start(ap, first);
	for (s = first; s != NULL; s = va_arg(ap, const char *))
		cr_assert_not_null(strstr(err, s), "message \"%s\" lacks \"%s\"", err, s);
	va_end(ap);
}

TestSuite(state, .init = setup, .fini = teardown);
TestSuite(state_oom, .init = setup, .fini = teardown);

Test(state, new_state_is_empty)
{
	cr_assert_eq(dcp_state_count(st), 0);
	cr_assert_null(dcp_state_entry_at(st, 0));
	cr_assert_eq(dcp_state_find(st, "a"), -1);
	cr_assert_str_eq(dcp_state_last_error(st), "");
	cr_assert_eq(dcp_state_was_loaded(st, "a"), 0);
	cr_assert_eq(dcp_state_count(NULL), 0);
	cr_assert_null(dcp_state_entry_at(NULL, 0));
	cr_assert_eq(dcp_state_find(NULL, "a"), -1);
	cr_assert_eq(dcp_state_find(st, NULL), -1);
	cr_assert_str_eq(dcp_state_last_error(NULL), "");
	cr_assert_eq(dcp_state_add_bytes(NULL, "a", NULL, 0), DCP_EINVAL);
	cr_assert_eq(dcp_state_add_tensor(NULL, "a", DCP_F32, 0, NULL, NULL), DCP_EINVAL);
	dcp_state_free(NULL);
}

Test(state, key_rules)
{
	char key[1100];
	int v = 0;

	cr_assert_eq(dcp_state_add_tensor(st, NULL, DCP_F32, 0, NULL, &v), DCP_EINVAL);
	expect_error("key is NULL", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "", DCP_F32, 0, NULL, &v), DCP_EINVAL);
	expect_error("key is empty", NULL);

	memset(key, 'k', 1025);
	key[1025] = '\0';
	cr_assert_eq(dcp_state_add_bytes(st, key, &v, sizeof(v)), DCP_EINVAL);
	expect_error("is 1025 bytes long", "at most 1024 bytes", "'kkkk", NULL);
	key[1024] = '\0';
	cr_assert_eq(dcp_state_add_bytes(st, key, &v, sizeof(v)), DCP_OK);
	cr_assert_eq(dcp_state_find(st, key), 0);

	cr_assert_eq(dcp_state_add_tensor(st, "opt.\nstep", DCP_I32, 0, NULL, &v), DCP_EINVAL);
	expect_error("'opt.\\x0astep'", "byte 0x0a at offset 4", "printable ASCII", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "a\x7f", DCP_I32, 0, NULL, &v), DCP_EINVAL);
	expect_error("0x7f at offset 1", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "caf\xc3\xa9", DCP_I32, 0, NULL, &v), DCP_EINVAL);
	expect_error("0xc3 at offset 3", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, " ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}", DCP_I32, 0, NULL, &v),
	             DCP_OK);
	cr_assert_eq(dcp_state_count(st), 2);
}

Test(state, dtype_and_ndim_rules)
{
	float f[4] = {0};
	uint64_t shape9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	uint64_t zeros9[9] = {0};

	cr_assert_eq(dcp_state_add_tensor(st, "w", (dcp_dtype)10, 1, U64(4), f), DCP_EINVAL);
	expect_error("tensor 'w'", "unknown dtype 10", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "w", (dcp_dtype)-1, 1, U64(4), f), DCP_EINVAL);
	expect_error("unknown dtype -1", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "w", DCP_F32, -1, U64(4), f), DCP_EINVAL);
	expect_error("tensor 'w'", "ndim -1 is out of range", NULL);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 9, shape9, zeros9, shape9, f), DCP_EINVAL);
	expect_error("ndim 9 is out of range", "0 (a scalar) to 8", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "w", DCP_F32, 2, NULL, f), DCP_EINVAL);
	expect_error("tensor 'w'", "shape is NULL but ndim is 2", NULL);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 1, U64(4), NULL, U64(4), f), DCP_EINVAL);
	expect_error("offsets or sizes is NULL", NULL);
	cr_assert_eq(dcp_state_count(st), 0);

	/* 8 dims and scalars are fine. */
	cr_assert_eq(dcp_state_add_shard(st, "w8", DCP_F32, 8, shape9, zeros9, shape9, f), DCP_OK);
	cr_assert_eq(dcp_state_add_tensor(st, "s", DCP_F64, 0, NULL, f), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "s2", DCP_BOOL, 0, NULL, NULL, NULL, f), DCP_OK);
	cr_assert_eq(dcp_state_count(st), 3);
	cr_assert_eq(dcp_state_entry_at(st, 1)->chunks[0].nbytes, 8);
	cr_assert_eq(dcp_state_entry_at(st, 2)->chunks[0].nbytes, 1);
}

Test(state, size_overflow)
{
	/* 2^32 * 2^30 elements of 4 bytes = 2^64 bytes: one too many. */
	cr_assert_eq(dcp_state_add_shard(st, "big", DCP_F32, 2, U64(1ull << 32, 1ull << 30), U64(0, 0),
	                                 U64(0, 0), NULL),
	             DCP_EINVAL);
	expect_error("tensor 'big'", "[4294967296, 1073741824]", "f32", "2^64 bytes", NULL);
	/* 2^63 bytes fits (an empty chunk of it, so no data is needed). */
	cr_assert_eq(dcp_state_add_shard(st, "big", DCP_F32, 2, U64(1ull << 31, 1ull << 30), U64(0, 0),
	                                 U64(0, 0), NULL),
	             DCP_OK);
	/* A zero dim does not hide the others' overflow. */
	cr_assert_eq(dcp_state_add_shard(st, "z", DCP_U8, 3, U64(0, 1ull << 40, 1ull << 40), U64(0, 0, 0),
	                                 U64(0, 0, 0), NULL),
	             DCP_EINVAL);
	expect_error("tensor 'z'", "2^64", NULL);
	/* The largest u8 vector. */
	cr_assert_eq(dcp_state_add_shard(st, "u", DCP_U8, 1, U64(UINT64_MAX), U64(0), U64(0), NULL), DCP_OK);
}

Test(state, chunk_inside_shape)
{
	float f[8] = {0};

	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 1, U64(4), U64(3), U64(2), f), DCP_EINVAL);
	expect_error("tensor 'w'", "offsets [3] with sizes [2]", "shape [4] in dim 0", NULL);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(4, 4), U64(0, 1), U64(4, 4), f),
	             DCP_EINVAL);
	expect_error("offsets [0, 1] with sizes [4, 4]", "shape [4, 4] in dim 1", NULL);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 1, U64(4), U64(5), U64(0), NULL), DCP_EINVAL);
	expect_error("offsets [5] with sizes [0]", NULL);
	/* offset + size wraps around 2^64: still rejected. */
	cr_assert_eq(dcp_state_add_shard(st, "u", DCP_U8, 1, U64(UINT64_MAX), U64(UINT64_MAX - 1), U64(2), f),
	             DCP_EINVAL);
	expect_error("tensor 'u'", "dim 0", NULL);
	cr_assert_eq(dcp_state_count(st), 0);
	/* An empty chunk at the very end, and the last element. */
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 1, U64(4), U64(4), U64(0), NULL), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 1, U64(4), U64(3), U64(1), f), DCP_OK);
}

Test(state, data_null_only_for_empty_chunks)
{
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(4, 6), U64(0, 0), U64(2, 3), NULL),
	             DCP_EINVAL);
	expect_error("tensor 'w'", "data is NULL but the chunk has 6 elements", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "s", DCP_I64, 0, NULL, NULL), DCP_EINVAL);
	expect_error("tensor 's'", "1 elements", NULL);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(4, 6), U64(2, 0), U64(2, 0), NULL), DCP_OK);
	cr_assert_eq(dcp_state_add_tensor(st, "e", DCP_F32, 1, U64(0), NULL), DCP_OK);
	cr_assert_eq(dcp_state_add_bytes(st, "b", NULL, 5), DCP_EINVAL);
	expect_error("bytes item 'b'", "data is NULL but len is 5", NULL);
	cr_assert_eq(dcp_state_add_bytes(st, "b", NULL, 0), DCP_OK);
}

Test(state, same_key_must_agree)
{
	float f[16] = {0};
	char b[4] = {0};

	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(4, 4), U64(0, 0), U64(2, 4), f), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F64, 2, U64(4, 4), U64(2, 0), U64(2, 4), f),
	             DCP_EINVAL);
	expect_error("tensor 'w'", "dtype f32", "dtype f64", NULL);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(4, 5), U64(2, 0), U64(2, 4), f),
	             DCP_EINVAL);
	expect_error("tensor 'w'", "shape [4, 4]", "shape [4, 5]", NULL);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 1, U64(16), U64(8), U64(8), f), DCP_EINVAL);
	expect_error("shape [4, 4]", "shape [16]", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "w", DCP_F32, 2, U64(4, 4), f), DCP_EINVAL);
	expect_error("key 'w'", "as a tensor shard", "now as a whole tensor", NULL);
	cr_assert_eq(dcp_state_add_bytes(st, "w", b, sizeof(b)), DCP_EINVAL);
	expect_error("key 'w'", "as a tensor shard", "now as a bytes item", NULL);
	cr_assert_eq(dcp_state_entry_at(st, 0)->nchunks, 1);

	cr_assert_eq(dcp_state_add_bytes(st, "b", b, sizeof(b)), DCP_OK);
	cr_assert_eq(dcp_state_add_tensor(st, "b", DCP_U8, 1, U64(4), b), DCP_EINVAL);
	expect_error("key 'b'", "as a bytes item", "now as a whole tensor", NULL);
	cr_assert_eq(dcp_state_add_bytes(st, "b", b, sizeof(b)), DCP_EINVAL);
	expect_error("bytes item 'b' was already added", NULL);

	cr_assert_eq(dcp_state_add_tensor(st, "t", DCP_I32, 1, U64(4), f), DCP_OK);
	cr_assert_eq(dcp_state_add_tensor(st, "t", DCP_I32, 1, U64(4), f), DCP_EINVAL);
	expect_error("tensor 't' was already added as a whole tensor", NULL);
	cr_assert_eq(dcp_state_add_shard(st, "t", DCP_I32, 1, U64(4), U64(0), U64(0), NULL), DCP_EINVAL);
	expect_error("key 't'", "as a whole tensor", "now as a tensor shard", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "t", DCP_I16, 1, U64(4), f), DCP_EINVAL);
	expect_error("dtype i32", "dtype i16", NULL);
	cr_assert_eq(dcp_state_count(st), 3);
}

Test(state, chunks_must_not_overlap)
{
	float f[64] = {0};

	/* Four 4x4 quadrants of an 8x8 tensor, added in any order, are fine. */
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(8, 8), U64(4, 4), U64(4, 4), f), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(8, 8), U64(0, 0), U64(4, 4), f), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(8, 8), U64(0, 4), U64(4, 4), f), DCP_OK);
	/* Overlaps two of them in one element each dimension-wise. */
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(8, 8), U64(3, 3), U64(2, 2), f),
	             DCP_EINVAL);
	expect_error("tensor 'w'", "offsets [3, 3] with sizes [2, 2]", "overlaps",
	             "offsets [4, 4] with sizes [4, 4]", "added before on this rank", NULL);
	/* Empty chunks overlap nothing. */
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(8, 8), U64(2, 2), U64(0, 3), NULL), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(8, 8), U64(2, 2), U64(0, 3), NULL), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 2, U64(8, 8), U64(4, 0), U64(4, 4), f), DCP_OK);
	cr_assert_eq(dcp_state_entry_at(st, 0)->nchunks, 6);

	/* A scalar's chunks always overlap. */
	cr_assert_eq(dcp_state_add_shard(st, "s", DCP_F32, 0, NULL, NULL, NULL, f), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "s", DCP_F32, 0, NULL, NULL, NULL, f), DCP_EINVAL);
	expect_error("tensor 's'", "overlaps", NULL);
}

Test(state, entries_describe_what_was_added)
{
	float w[8];
	double r[3];
	char b[5] = "abcd";
	const dcp_state_entry *e;

	cr_assert_eq(dcp_state_add_shard(st, "model.w", DCP_F32, 2, U64(4, 4), U64(2, 0), U64(2, 4), w),
	             DCP_OK);
	cr_assert_eq(dcp_state_add_tensor(st, "model.r", DCP_F64, 1, U64(3), r), DCP_OK);
	cr_assert_eq(dcp_state_add_bytes(st, "step", b, 4), DCP_OK);
	cr_assert_eq(dcp_state_add_shard(st, "model.w", DCP_F32, 2, U64(4, 4), U64(0, 0), U64(2, 4), w),
	             DCP_OK);
	cr_assert_eq(dcp_state_count(st), 3);

	e = dcp_state_entry_at(st, 0);
	cr_assert_str_eq(e->key, "model.w");
	cr_assert_eq(e->type, DCP_ITEM_TENSOR);
	cr_assert_eq(e->replicated, 0);
	cr_assert_eq(e->dtype, DCP_F32);
	cr_assert_eq(e->ndim, 2);
	cr_assert_eq(e->shape[0], 4);
	cr_assert_eq(e->shape[1], 4);
	cr_assert_eq(e->nchunks, 2);
	cr_assert_eq(e->chunks[0].offsets[0], 2);
	cr_assert_eq(e->chunks[0].sizes[1], 4);
	cr_assert_eq(e->chunks[0].nbytes, 2 * 4 * 4);
	cr_assert_eq(e->chunks[0].data, w);
	cr_assert_eq(e->chunks[1].offsets[0], 0);

	e = dcp_state_entry_at(st, 1);
	cr_assert_str_eq(e->key, "model.r");
	cr_assert_eq(e->replicated, 1);
	cr_assert_eq(e->nchunks, 1);
	cr_assert_eq(e->chunks[0].offsets[0], 0);
	cr_assert_eq(e->chunks[0].sizes[0], 3);
	cr_assert_eq(e->chunks[0].nbytes, 24);
	cr_assert_eq(e->chunks[0].data, r);

	e = dcp_state_entry_at(st, 2);
	cr_assert_str_eq(e->key, "step");
	cr_assert_eq(e->type, DCP_ITEM_BYTES);
	cr_assert_eq(e->replicated, 1);
	cr_assert_eq(e->nchunks, 1);
	cr_assert_eq(e->chunks[0].nbytes, 4);
	cr_assert_eq(e->chunks[0].data, b);
	cr_assert_null(dcp_state_entry_at(st, 3));
}

Test(state, the_key_is_copied)
{
	char key[] = "layer.0";
	int v = 1;

	cr_assert_eq(dcp_state_add_tensor(st, key, DCP_I32, 0, NULL, &v), DCP_OK);
	key[6] = '1';
	cr_assert_eq(dcp_state_find(st, "layer.0"), 0);
	cr_assert_eq(dcp_state_find(st, "layer.1"), -1);
	cr_assert_str_eq(dcp_state_entry_at(st, 0)->key, "layer.0");
}

Test(state, find_many_keys)
{
	const int n = 20000;
	const dcp_state_entry *first;
	char key[64];
	int i, v = 0;

	cr_assert_eq(dcp_state_add_tensor(st, "k0", DCP_I32, 0, NULL, &v), DCP_OK);
	first = dcp_state_entry_at(st, 0);
	for (i = 1; i < n; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(dcp_state_add_tensor(st, key, DCP_I32, 0, NULL, &v), DCP_OK);
	}
	cr_assert_eq(dcp_state_count(st), (size_t)n);
	/* Entry pointers stay valid as the state grows. */
	cr_assert_eq(dcp_state_entry_at(st, 0), first);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(dcp_state_find(st, key), i);
		cr_assert_str_eq(dcp_state_entry_at(st, (size_t)i)->key, key);
	}
	cr_assert_eq(dcp_state_find(st, "k"), -1);
	cr_assert_eq(dcp_state_find(st, "k20000"), -1);
	cr_assert_eq(dcp_state_find(st, "k00"), -1);
}

Test(state, last_error_stays_until_the_next_failure)
{
	int v = 0;

	cr_assert_eq(dcp_state_add_tensor(st, "", DCP_I32, 0, NULL, &v), DCP_EINVAL);
	cr_assert_eq(dcp_state_add_tensor(st, "a", DCP_I32, 0, NULL, &v), DCP_OK);
	expect_error("key is empty", NULL);
	cr_assert_eq(dcp_state_add_tensor(st, "a", DCP_I32, 0, NULL, &v), DCP_EINVAL);
	expect_error("tensor 'a' was already added", NULL);
}

Test(state, loaded_flags)
{
	float w[4];

	cr_assert_eq(dcp_state_add_tensor(st, "w", DCP_F32, 1, U64(4), w), DCP_OK);
	cr_assert_eq(dcp_state_add_tensor(st, "v", DCP_F32, 1, U64(4), w), DCP_OK);
	cr_assert_eq(dcp_state_was_loaded(st, "w"), 0);
	dcp_state_mark_loaded(st, 1, 0);
	cr_assert_eq(dcp_state_was_loaded(st, "w"), 0);
	cr_assert_eq(dcp_state_was_loaded(st, "v"), 1);
	dcp_state_mark_loaded(st, 2, 0); /* out of range: ignored */
	dcp_state_mark_loaded(NULL, 0, 0);
	cr_assert_eq(dcp_state_was_loaded(st, "nope"), 0);
	dcp_state_reset_loaded(st);
	cr_assert_eq(dcp_state_was_loaded(st, "v"), 0);
}

Test(state, bytes_into_the_callers_buffer)
{
	char buf[8] = "........";
	const void *data;
	size_t len;
	dcp_msg msg = {""};

	cr_assert_eq(dcp_state_add_bytes(st, "cfg", buf, sizeof(buf)), DCP_OK);
	/* Before a load: the buffer and its capacity. */
	cr_assert_eq(dcp_state_get_bytes(st, "cfg", &data, &len), DCP_OK);
	cr_assert_eq(data, buf);
	cr_assert_eq(len, 8);

	cr_assert_eq(dcp_state_store_bytes(st, 0, "hello", 5, &msg), DCP_OK);
	cr_assert_eq(memcmp(buf, "hello...", 8), 0);
	cr_assert_eq(dcp_state_was_loaded(st, "cfg"), 1);
	cr_assert_eq(dcp_state_get_bytes(st, "cfg", &data, &len), DCP_OK);
	cr_assert_eq(data, buf);
	cr_assert_eq(len, 5);

	/* Exactly the capacity fits; one more byte does not. */
	cr_assert_eq(dcp_state_store_bytes(st, 0, "12345678", 8, &msg), DCP_OK);
	cr_assert_eq(memcmp(buf, "12345678", 8), 0);
	dcp_state_reset_loaded(st);
	cr_assert_eq(dcp_state_store_bytes(st, 0, "123456789", 9, &msg), DCP_EMISMATCH);
	cr_assert_str_eq(msg.text,
	                 "bytes item 'cfg' is 9 bytes in the checkpoint but the buffer holds 8: pass a "
	                 "larger buffer or NULL to let libdcp allocate");
	cr_assert_str_eq(dcp_state_last_error(st), msg.text);
	cr_assert_eq(memcmp(buf, "12345678", 8), 0);
	cr_assert_eq(dcp_state_was_loaded(st, "cfg"), 0);
	/* msg may be NULL. */
	cr_assert_eq(dcp_state_store_bytes(st, 0, "123456789", 9, NULL), DCP_EMISMATCH);

	/* An empty item into a buffer. */
	cr_assert_eq(dcp_state_store_bytes(st, 0, NULL, 0, &msg), DCP_OK);
	cr_assert_eq(dcp_state_get_bytes(st, "cfg", &data, &len), DCP_OK);
	cr_assert_eq(data, buf);
	cr_assert_eq(len, 0);
}

Test(state, bytes_allocated_by_the_state)
{
	const void *data, *first;
	size_t len;
	dcp_msg msg = {""};
	char big[3000];

	memset(big, 'z', sizeof(big));
	cr_assert_eq(dcp_state_add_bytes(st, "rng", NULL, 0), DCP_OK);
	cr_assert_eq(dcp_state_get_bytes(st, "rng", &data, &len), DCP_OK);
	cr_assert_null(data);
	cr_assert_eq(len, 0);

	cr_assert_eq(dcp_state_store_bytes(st, 0, "abc", 3, &msg), DCP_OK);
	cr_assert_eq(dcp_state_get_bytes(st, "rng", &data, &len), DCP_OK);
	cr_assert_not_null(data);
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(data, "abc", 3), 0);
	first = data;
	cr_assert_eq(dcp_state_entry_at(st, 0)->chunks[0].data, data);
	cr_assert_eq(dcp_state_entry_at(st, 0)->chunks[0].nbytes, 3);

	/* A later load replaces it, whatever its size (the old one is freed:
	 * the sanitizer build checks for leaks). */
	dcp_state_reset_loaded(st);
	cr_assert_eq(dcp_state_store_bytes(st, 0, big, sizeof(big), &msg), DCP_OK);
	cr_assert_eq(dcp_state_get_bytes(st, "rng", &data, &len), DCP_OK);
	cr_assert_eq(len, sizeof(big));
	cr_assert_eq(memcmp(data, big, sizeof(big)), 0);
	(void)first;

	/* An empty item still gives a non-NULL buffer. */
	cr_assert_eq(dcp_state_store_bytes(st, 0, NULL, 0, &msg), DCP_OK);
	cr_assert_eq(dcp_state_get_bytes(st, "rng", &data, &len), DCP_OK);
	cr_assert_not_null(data);
	cr_assert_eq(len, 0);
	cr_assert_eq(dcp_state_was_loaded(st, "rng"), 1);
}

Test(state, bytes_lookup_errors)
{
	float w[2];
	char b[2];
	const void *data;
	size_t len;
	dcp_msg msg = {""};

	cr_assert_eq(dcp_state_add_tensor(st, "w", DCP_F32, 1, U64(2), w), DCP_OK);
	cr_assert_eq(dcp_state_add_bytes(st, "b", b, 2), DCP_OK);
	cr_assert_eq(dcp_state_get_bytes(st, "nope", &data, &len), DCP_ENOTFOUND);
	cr_assert_eq(dcp_state_get_bytes(st, "w", &data, &len), DCP_EINVAL);
	cr_assert_eq(dcp_state_get_bytes(NULL, "b", &data, &len), DCP_EINVAL);
	cr_assert_eq(dcp_state_get_bytes(st, "b", NULL, NULL), DCP_OK);

	cr_assert_eq(dcp_state_store_bytes(st, 0, "ab", 2, &msg), DCP_EINVAL);
	cr_assert_not_null(strstr(msg.text, "'w' is a tensor"), "%s", msg.text);
	cr_assert_eq(dcp_state_store_bytes(st, 2, "ab", 2, &msg), DCP_EINVAL);
	cr_assert_not_null(strstr(msg.text, "no entry 2"), "%s", msg.text);
	cr_assert_eq(dcp_state_store_bytes(st, 1, NULL, 2, &msg), DCP_EINVAL);
	cr_assert_eq(dcp_state_store_bytes(NULL, 0, "ab", 2, &msg), DCP_EINVAL);
	cr_assert_eq(dcp_state_was_loaded(st, "b"), 0);
}

Test(dtype, sizes_and_names)
{
	static const struct {
		dcp_dtype dtype;
		size_t size;
		const char *name;
	} table[] = {
	        {DCP_F64, 8, "f64"}, {DCP_F32, 4, "f32"},   {DCP_F16, 2, "f16"}, {DCP_BF16, 2, "bf16"},
	        {DCP_I64, 8, "i64"}, {DCP_I32, 4, "i32"},   {DCP_I16, 2, "i16"}, {DCP_I8, 1, "i8"},
	        {DCP_U8, 1, "u8"},   {DCP_BOOL, 1, "bool"},
	};
	size_t i;

	cr_assert_eq(sizeof(table) / sizeof(table[0]), (size_t)DCP_DTYPE_COUNT_);
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		dcp_dtype back = DCP_DTYPE_COUNT_;
		cr_assert_eq(dcp_dtype_size(table[i].dtype), table[i].size);
		cr_assert_str_eq(dcp_dtype_name(table[i].dtype), table[i].name);
		cr_assert_eq(dcp_dtype_from_name(table[i].name, &back), DCP_OK);
		cr_assert_eq(back, table[i].dtype);
	}
}

Test(dtype, unknown)
{
	dcp_dtype d = DCP_F32;

	cr_assert_eq(dcp_dtype_size(DCP_DTYPE_COUNT_), 0);
	cr_assert_eq(dcp_dtype_size((dcp_dtype)-1), 0);
	cr_assert_str_eq(dcp_dtype_name(DCP_DTYPE_COUNT_), "unknown");
	cr_assert_str_eq(dcp_dtype_name((dcp_dtype)1000), "unknown");
	cr_assert_eq(dcp_dtype_from_name("F32", &d), DCP_EINVAL);
	cr_assert_eq(dcp_dtype_from_name("f3", &d), DCP_EINVAL);
	cr_assert_eq(dcp_dtype_from_name("unknown", &d), DCP_EINVAL);
	cr_assert_eq(dcp_dtype_from_name("", &d), DCP_EINVAL);
	cr_assert_eq(dcp_dtype_from_name(NULL, &d), DCP_EINVAL);
	cr_assert_eq(dcp_dtype_from_name("f32", NULL), DCP_EINVAL);
	cr_assert_eq(d, DCP_F32);
}

#if DCP_ALLOC_FAILURES
/* Every allocation of an add, failed in turn: DCP_ENOMEM, the state as it
 * was, and a message; then the same add succeeds. */
Test(state_oom, adds_fail_cleanly)
{
	float w[16] = {0};
	char key[32];
	int i, hits = 0;

	for (i = 0; i < 300; i++) {
		size_t count = dcp_state_count(st);
		long k;
		snprintf(key, sizeof(key), "key.%d", i);
		for (k = 0;; k++) {
			int rc, hit;
			fail_after(k);
			switch (i % 3) {
			case 0:
				rc = dcp_state_add_tensor(st, key, DCP_F32, 1, U64(16), w);
				break;
			case 1:
				rc = dcp_state_add_bytes(st, key, w, 3);
				break;
			default:
				/* A new chunk of an existing tensor. */
				snprintf(key, sizeof(key), "sharded");
				rc = dcp_state_add_shard(st, key, DCP_F32, 1, U64(10000), U64((uint64_t)i),
				                         U64(1), w);
				break;
			}
			hit = fail_done();
			if (!hit) {
				cr_assert_eq(rc, DCP_OK, "%s", dcp_state_last_error(st));
				break;
			}
			hits++;
			cr_assert_eq(rc, DCP_ENOMEM);
			cr_assert_not_null(strstr(dcp_state_last_error(st), "out of memory"));
			cr_assert_eq(dcp_state_count(st), count);
			if (i % 3 != 2)
				cr_assert_eq(dcp_state_find(st, key), -1);
		}
	}
	cr_assert_gt(hits, 300 / 3);
	for (i = 0; i < 300; i += 3) {
		snprintf(key, sizeof(key), "key.%d", i);
		cr_assert_geq(dcp_state_find(st, key), 0);
	}
	cr_assert_eq(dcp_state_entry_at(st, (size_t)dcp_state_find(st, "sharded"))->nchunks, 100);
}

Test(state_oom, store_bytes_keeps_the_old_buffer)
{
	const void *data;
	size_t len;
	dcp_msg msg = {""};

	cr_assert_eq(dcp_state_add_bytes(st, "b", NULL, 0), DCP_OK);
	cr_assert_eq(dcp_state_store_bytes(st, 0, "old", 3, &msg), DCP_OK);
	fail_after(0);
	cr_assert_eq(dcp_state_store_bytes(st, 0, "newer", 5, &msg), DCP_ENOMEM);
	cr_assert_eq(fail_done(), 1);
	cr_assert_not_null(strstr(msg.text, "out of memory allocating 5 bytes for bytes item 'b'"), "%s",
	                   msg.text);
	cr_assert_eq(dcp_state_get_bytes(st, "b", &data, &len), DCP_OK);
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(data, "old", 3), 0);
}
#endif
