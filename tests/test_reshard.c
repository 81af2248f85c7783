/*
 * Resharding: a checkpoint saved with one chunking and world size loads into
 * any other, bit-exact, after PyTorch's
 * test/distributed/checkpoint/test_file_system_checkpoint_cpu.py (the 10x20
 * sharding specs, row-wise to column-wise, sharded to plain and back), plus
 * world sizes, ranks holding several chunks or none, 3-D and 8-D tensors,
 * scalars, every dtype; the strict load errors and partial loads; and the
 * save planner's validation of chunk coverage.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcptest.h"

#define SEED UINT64_C(0x5eed)

/* Saves `from` with nfrom ranks and loads it into `to` with nto ranks
 * (0: no-dist), checking every element. */
static void roundtrip(const dt_layout *from, int nfrom, const dt_layout *to, int nto, const char *url,
                      const char *what)
{
	dt_outcome o;
	char msg[512];
	dt_save(from, nfrom, url, NULL, SEED, &o);
	dt_assert_ok(&o, dt_fmt(msg, sizeof(msg), "%s: save with %d ranks to %s", what, nfrom, url));
	dt_outcome_clear(&o);
	dt_load(to, nto, url, NULL, SEED, &o);
	dt_assert_ok(&o, dt_fmt(msg, sizeof(msg), "%s: load with %d ranks from %s", what, nto, url));
	dt_outcome_clear(&o);
}

/* ------------------------------------------------------------------------ */
/* The 10x20 specs of test_load_with_different_shard_plan                   */
/* ------------------------------------------------------------------------ */
enum { SPEC_CHUNK2, SPEC_CHUNK4, SPEC_ENUM5, SPEC_ENUM2, SPEC_COUNT_2RANKS, SPEC_ROWS5 = SPEC_COUNT_2RANKS };

static const char *const spec_names[] = {
        "chunk(dim0, r0 r1)", "chunk(dim0, r0 r1 r1 r0)", "rows [0:2]r0 [2:3]r1 [3:6]r0 [6:9]r1 [9:10]r0",
        "rows [0:8]r1 [8:10]r0", "rows [0:2][2:3][3:6][6:9][9:10] on 5 ranks"};

/* A 10x20 f32 tensor "sharded_tensor" laid out by one of the specs. Returns
 * the world size the spec needs. */
static int spec_10x20(dt_layout *l, int spec)
{
	uint64_t shape[] = {10, 20};
	dt_item *it = dt_add_sharded(l, "sharded_tensor", DCP_F32, 2, shape);
	static const int p0110[] = {0, 1, 1, 0};
	static const uint64_t b5[] = {0, 2, 3, 6, 9, 10};
	static const int p01010[] = {0, 1, 0, 1, 0};
	static const uint64_t b2[] = {0, 8, 10};
	static const int p10[] = {1, 0};
	switch (spec) {
	case SPEC_CHUNK2:
		dt_split(it, 0, 2, NULL);
		return 2;
	case SPEC_CHUNK4:
		dt_split(it, 0, 4, p0110);
		return 2;
	case SPEC_ENUM5:
		dt_split_at(it, 0, 5, b5, p01010);
		return 2;
	case SPEC_ENUM2:
		dt_split_at(it, 0, 2, b2, p10);
		return 2;
	default:
		dt_split_at(it, 0, 5, b5, NULL);
		return 5;
	}
}

Test(reshard, specs_10x20_pairwise, .timeout = DT_TIMEOUT)
{
	for (int s0 = 0; s0 <= SPEC_ROWS5; s0++) {
		for (int s1 = 0; s1 <= SPEC_ROWS5; s1++) {
			dt_layout *a, *b;
			char url[128], what[256];
			int n0, n1;
			if (s0 == s1)
				continue;
			a = dt_layout_new();
			b = dt_layout_new();
			n0 = spec_10x20(a, s0);
			n1 = spec_10x20(b, s1);
			dt_fmt(url, sizeof(url), "mem://specs-%d-%d", s0, s1);
			dt_fmt(what, sizeof(what), "%s -> %s", spec_names[s0], spec_names[s1]);
			roundtrip(a, n0, b, n1, url, what);
			dt_layout_free(a);
			dt_layout_free(b);
		}
	}
}

Test(reshard, same_spec_same_world, .timeout = DT_TIMEOUT)
{
	for (int s = 0; s <= SPEC_ROWS5; s++) {
		dt_layout *a = dt_layout_new();
		char url[64];
		int n = spec_10x20(a, s);
		roundtrip(a, n, a, n, dt_fmt(url, sizeof(url), "mem://same-%d", s), spec_names[s]);
		dt_layout_free(a);
	}
}

Test(reshard, rowwise_to_colwise, .timeout = DT_TIMEOUT)
{
	uint64_t shape[] = {10, 20};
	dt_layout *rows = dt_layout_new(), *cols = dt_layout_new(), *cols3 = dt_layout_new();
	dt_layout *rows5 = dt_layout_new();
	dt_split(dt_add_sharded(rows, "sharded_tensor", DCP_F32, 2, shape), 0, 2, NULL);
	dt_split(dt_add_sharded(cols, "sharded_tensor", DCP_F32, 2, shape), 1, 2, NULL);
	dt_split(dt_add_sharded(cols3, "sharded_tensor", DCP_F32, 2, shape), 1, 3, NULL);
	spec_10x20(rows5, SPEC_ROWS5);
	roundtrip(rows, 2, cols, 2, "mem://rows-to-cols", "row-wise over 2 -> column-wise over 2");
	roundtrip(cols, 2, rows, 2, "mem://cols-to-rows", "column-wise over 2 -> row-wise over 2");
	roundtrip(rows5, 5, cols3, 3, "mem://rows5-to-cols3", "uneven rows over 5 -> column-wise over 3");
	roundtrip(cols3, 3, rows5, 5, "mem://cols3-to-rows5", "column-wise over 3 -> uneven rows over 5");
	dt_layout_free(rows);
	dt_layout_free(cols);
	dt_layout_free(cols3);
	dt_layout_free(rows5);
}

/* ------------------------------------------------------------------------ */
/* Sharded <-> plain (test_switch_between_sharded_tensor_to_tensor)         */
/* ------------------------------------------------------------------------ */
#define LEN32 32

static void spec_1d(dt_item *it, int spec)
{
	static const int p0110[] = {0, 1, 1, 0};
	static const uint64_t b8[] = {0, 8, LEN32}, b10[] = {0, 10, LEN32};
	static const int p10[] = {1, 0};
	switch (spec) {
	case 0:
		dt_split(it, 0, 2, NULL);
		break;
	case 1:
		dt_split(it, 0, 4, p0110);
		break;
	case 2:
		dt_split_at(it, 0, 2, b8, p10);
		break;
	default:
		dt_split_at(it, 0, 2, b10, NULL);
		break;
	}
}

Test(reshard, sharded_and_plain_swap_places, .timeout = DT_TIMEOUT)
{
	uint64_t shape[] = {LEN32};
	for (int s0 = 0; s0 < 4; s0++) {
		for (int s1 = 0; s1 < 4; s1++) {
			dt_layout *save = dt_layout_new(), *load = dt_layout_new();
			char url[64], what[128];
			/* Saved: "sharded" sharded, "replicated" whole on both ranks. */
			spec_1d(dt_add_sharded(save, "sharded", DCP_F32, 1, shape), s0);
			dt_add_replicated(save, "replicated", DCP_F32, 1, shape, DT_RANKS(2));
			/* Loaded the other way round. */
			dt_add_replicated(load, "sharded", DCP_F32, 1, shape, DT_RANKS(2));
			spec_1d(dt_add_sharded(load, "replicated", DCP_F32, 1, shape), s1);
			dt_fmt(url, sizeof(url), "mem://swap-%d-%d", s0, s1);
			dt_fmt(what, sizeof(what), "1-D spec %d saved, spec %d loaded, sharded<->plain", s0,
			       s1);
			roundtrip(save, 2, load, 2, url, what);
			dt_layout_free(save);
			dt_layout_free(load);
		}
	}
}

Test(reshard, sharded_to_plain_on_one_rank_and_back, .timeout = DT_TIMEOUT)
{
	uint64_t shape[] = {LEN32};
	dt_layout *plain = dt_layout_new(), *sharded = dt_layout_new(), *sharded4 = dt_layout_new();
	dt_add_replicated(plain, "t", DCP_F32, 1, shape, DT_RANK(0));
	spec_1d(dt_add_sharded(sharded, "t", DCP_F32, 1, shape), 1);
	dt_split(dt_add_sharded(sharded4, "t", DCP_F32, 1, shape), 0, 5, (const int[]){3, 2, 1, 0, 3});
	roundtrip(sharded, 2, plain, 1, "mem://plain-1", "sharded over 2 -> plain on 1 rank");
	roundtrip(sharded, 2, plain, 0, "mem://plain-nodist", "sharded over 2 -> plain, no-dist");
	roundtrip(plain, 1, sharded, 2, "mem://plain-back", "plain on 1 rank -> sharded over 2");
	roundtrip(plain, 0, sharded4, 4, "mem://plain-back4", "plain, no-dist -> 5 chunks over 4 ranks");
	dt_layout_free(plain);
	dt_layout_free(sharded);
	dt_layout_free(sharded4);
}

/* ------------------------------------------------------------------------ */
/* World sizes                                                              */
/* ------------------------------------------------------------------------ */
/* A model-like state for n ranks, the same keys and values for any n. */
static dt_layout *mixed_layout(int n)
{
	dt_layout *l = dt_layout_new();
	uint64_t w0[] = {12, 10}, b0[] = {10}, w1[] = {9, 14}, emb[] = {7, 5, 3}, grid[] = {6, 8};
	dt_split(dt_add_sharded(l, "model.layers.0.weight", DCP_F32, 2, w0), 0, (size_t)n, NULL);
	dt_add_replicated(l, "model.layers.0.bias", DCP_BF16, 1, b0, DT_RANKS(n));
	dt_split(dt_add_sharded(l, "model.layers.1.weight", DCP_F16, 2, w1), 1, (size_t)n, NULL);
	dt_split(dt_add_sharded(l, "model.embed", DCP_I64, 3, emb), 0, (size_t)n, NULL);
	dt_split_grid(dt_add_sharded(l, "model.grid", DCP_I32, 2, grid), 0, 2, 1, 3, NULL, n);
	dt_add_bytes(l, "opt.step", 8, DT_RANKS(n));
	dt_add_bytes(l, "extra.config", 100, DT_RANK(n - 1));
	return l;
}

static void world_case(int nfrom, int nto)
{
	dt_layout *a = mixed_layout(nfrom), *b = mixed_layout(nto);
	char url[64], what[64];
	dt_fmt(url, sizeof(url), "mem://world-%d-%d", nfrom, nto);
	dt_fmt(what, sizeof(what), "%d ranks -> %d ranks", nfrom, nto);
	roundtrip(a, nfrom, b, nto, url, what);
	dt_layout_free(a);
	dt_layout_free(b);
}

Test(reshard, world_4_to_3, .timeout = DT_TIMEOUT)
{
	world_case(4, 3);
}

Test(reshard, world_4_to_1, .timeout = DT_TIMEOUT)
{
	world_case(4, 1);
}

Test(reshard, world_1_to_4, .timeout = DT_TIMEOUT)
{
	world_case(1, 4);
}

Test(reshard, world_3_to_7, .timeout = DT_TIMEOUT)
{
	world_case(3, 7);
}

Test(reshard, world_7_to_2_and_same, .timeout = DT_TIMEOUT)
{
	world_case(7, 2);
	world_case(4, 4);
}

/* ------------------------------------------------------------------------ */
/* Chunk placement                                                          */
/* ------------------------------------------------------------------------ */
Test(reshard, rank_with_several_chunks, .timeout = DT_TIMEOUT)
{
	uint64_t shape[] = {9, 12};
	dt_layout *diag = dt_layout_new(), *rows3 = dt_layout_new(), *many = dt_layout_new();
	/* 2x2 blocks: rank 0 holds (0,0) and (1,1), rank 1 the others. */
	dt_split_grid(dt_add_sharded(diag, "w", DCP_F64, 2, shape), 0, 2, 1, 2, (const int[]){0, 1, 1, 0}, 2);
	dt_split(dt_add_sharded(rows3, "w", DCP_F64, 2, shape), 0, 3, NULL);
	/* 3x4 blocks dealt round-robin over 2 ranks: 6 chunks each. */
	dt_split_grid(dt_add_sharded(many, "w", DCP_F64, 2, shape), 0, 3, 1, 4, NULL, 2);
	roundtrip(diag, 2, rows3, 3, "mem://several-1", "2x2 blocks diagonal on 2 ranks -> rows over 3");
	roundtrip(rows3, 3, diag, 2, "mem://several-2", "rows over 3 -> 2x2 blocks diagonal on 2 ranks");
	roundtrip(many, 2, diag, 2, "mem://several-3", "3x4 blocks on 2 ranks -> 2x2 blocks on 2 ranks");
	roundtrip(diag, 2, many, 2, "mem://several-4", "2x2 blocks on 2 ranks -> 3x4 blocks on 2 ranks");
	dt_layout_free(diag);
	dt_layout_free(rows3);
	dt_layout_free(many);
}

Test(reshard, rank_holding_none, .timeout = DT_TIMEOUT)
{
	uint64_t shape[] = {6, 4}, half[] = {3, 4}, lo[] = {0, 0}, hi[] = {3, 0};
	dt_layout *save = dt_layout_new(), *load = dt_layout_new();
	dt_item *it = dt_add_sharded(save, "only.0.and.2", DCP_F32, 2, shape);
	dt_chunk_add(it, 0, lo, half);
	dt_chunk_add(it, 2, hi, half);
	dt_add_bytes(save, "everyone", 3, DT_RANKS(3));
	/* Loaded by rank 1 alone; ranks 0 and 2 ask for nothing of it. */
	dt_add_replicated(load, "only.0.and.2", DCP_F32, 2, shape, DT_RANK(1));
	dt_add_bytes(load, "everyone", 3, DT_RANKS(3));
	roundtrip(save, 3, load, 3, "mem://none-1", "ranks 0 and 2 save, rank 1 loads");
	roundtrip(load, 3, save, 3, "mem://none-2", "rank 1 saves, ranks 0 and 2 load");
	dt_layout_free(save);
	dt_layout_free(load);
}

Test(reshard, three_dimensional, .timeout = DT_TIMEOUT)
{
	uint64_t shape[] = {4, 6, 5};
	dt_layout *a = dt_layout_new(), *b = dt_layout_new(), *c = dt_layout_new();
	dt_split(dt_add_sharded(a, "t3", DCP_F32, 3, shape), 1, 3, NULL);
	dt_split_grid(dt_add_sharded(b, "t3", DCP_F32, 3, shape), 0, 2, 2, 2, NULL, 4);
	dt_split(dt_add_sharded(c, "t3", DCP_F32, 3, shape), 2, 5, (const int[]){1, 0, 1, 0, 1});
	roundtrip(a, 3, b, 4, "mem://t3-1", "3-D split on dim 1 over 3 -> dims 0 x 2 over 4");
	roundtrip(b, 4, c, 2, "mem://t3-2", "3-D dims 0 x 2 over 4 -> dim 2 over 2");
	roundtrip(c, 2, a, 3, "mem://t3-3", "3-D dim 2 over 2 -> dim 1 over 3");
	dt_layout_free(a);
	dt_layout_free(b);
	dt_layout_free(c);
}

Test(reshard, eight_dimensional, .timeout = DT_TIMEOUT)
{
	uint64_t shape[DCP_MAX_DIMS] = {2, 3, 2, 2, 3, 2, 2, 2};
	dt_layout *a = dt_layout_new(), *b = dt_layout_new(), *c = dt_layout_new();
	dt_split_grid(dt_add_sharded(a, "t8", DCP_F64, 8, shape), 0, 2, 4, 3, NULL, 3);
	dt_split(dt_add_sharded(b, "t8", DCP_F64, 8, shape), 7, 2, NULL);
	dt_add_replicated(c, "t8", DCP_F64, 8, shape, DT_RANK(0));
	roundtrip(a, 3, b, 2, "mem://t8-1", "8-D dims 0 x 4 over 3 -> dim 7 over 2");
	roundtrip(b, 2, a, 3, "mem://t8-2", "8-D dim 7 over 2 -> dims 0 x 4 over 3");
	roundtrip(a, 3, c, 1, "mem://t8-3", "8-D dims 0 x 4 over 3 -> whole on 1 rank");
	dt_layout_free(a);
	dt_layout_free(b);
	dt_layout_free(c);
}

Test(reshard, scalars, .timeout = DT_TIMEOUT)
{
	dt_layout *a = dt_layout_new(), *b = dt_layout_new();
	/* A replicated scalar, and a scalar "shard" held by rank 1 only. */
	dt_add_replicated(a, "scalar.replicated", DCP_F64, 0, NULL, DT_RANKS(3));
	dt_chunk_add(dt_add_sharded(a, "scalar.owned", DCP_I32, 0, NULL), 1, NULL, NULL);
	dt_add_replicated(b, "scalar.replicated", DCP_F64, 0, NULL, DT_RANK(0));
	dt_add_replicated(b, "scalar.owned", DCP_I32, 0, NULL, DT_RANKS(2));
	roundtrip(a, 3, b, 2, "mem://scalars", "scalars over 3 ranks -> 2 ranks");
	dt_layout_free(a);
	dt_layout_free(b);
}

/* ------------------------------------------------------------------------ */
/* Every dtype                                                              */
/* ------------------------------------------------------------------------ */
static int all_dtypes[] = {DCP_F64, DCP_F32, DCP_F16, DCP_BF16, DCP_I64,
                           DCP_I32, DCP_I16, DCP_I8,  DCP_U8,   DCP_BOOL};

ParameterizedTestParameters(reshard, every_dtype)
{
	return cr_make_param_array(int, all_dtypes, sizeof(all_dtypes) / sizeof(all_dtypes[0]));
}

ParameterizedTest(int *dtype, reshard, every_dtype, .timeout = DT_TIMEOUT)
{
	dcp_dtype dt = (dcp_dtype)*dtype;
	uint64_t m[] = {7, 9}, v[] = {13};
	dt_layout *a = dt_layout_new(), *b = dt_layout_new(), *c = dt_layout_new();
	char url[64], what[64];
	dcp_dtype parsed;

	cr_assert_gt(dcp_dtype_size(dt), 0, "dtype %d has size 0", *dtype);
	cr_assert_eq(dcp_dtype_from_name(dcp_dtype_name(dt), &parsed), DCP_OK,
	             "dtype name '%s' does not parse", dcp_dtype_name(dt));
	cr_assert_eq(parsed, dt);

	dt_split(dt_add_sharded(a, "m", dt, 2, m), 0, 3, NULL);
	dt_split(dt_add_sharded(a, "v", dt, 1, v), 0, 3, NULL);
	dt_add_replicated(a, "r", dt, 2, m, DT_RANKS(3));
	dt_split(dt_add_sharded(b, "m", dt, 2, m), 1, 2, NULL);
	dt_split(dt_add_sharded(b, "v", dt, 1, v), 0, 4, (const int[]){1, 0, 1, 0});
	dt_split(dt_add_sharded(b, "r", dt, 2, m), 1, 2, (const int[]){1, 0});
	dt_add_replicated(c, "m", dt, 2, m, DT_RANK(0));
	dt_add_replicated(c, "v", dt, 1, v, DT_RANK(0));
	dt_add_replicated(c, "r", dt, 2, m, DT_RANK(0));

	dt_fmt(what, sizeof(what), "%s rows over 3 -> columns over 2", dcp_dtype_name(dt));
	roundtrip(a, 3, b, 2, dt_fmt(url, sizeof(url), "mem://dtype-%s-1", dcp_dtype_name(dt)), what);
	dt_fmt(what, sizeof(what), "%s columns over 2 -> whole on 1", dcp_dtype_name(dt));
	roundtrip(b, 2, c, 0, dt_fmt(url, sizeof(url), "mem://dtype-%s-2", dcp_dtype_name(dt)), what);
	dt_layout_free(a);
	dt_layout_free(b);
	dt_layout_free(c);
}

/* ------------------------------------------------------------------------ */
/* Strict loads, partial loads                                              */
/* ------------------------------------------------------------------------ */
static void save_simple(const char *url)
{
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {13, 17}, b[] = {4, 4};
	dt_outcome o;
	dt_split(dt_add_sharded(l, "layer.weight", DCP_F32, 2, s), 0, 2, NULL);
	dt_add_replicated(l, "layer.bias", DCP_F32, 2, b, DT_RANKS(2));
	dt_add_bytes(l, "layer.blob", 5, DT_RANKS(2));
	dt_save(l, 2, url, NULL, SEED, &o);
	dt_assert_ok(&o, "save of the simple state");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

/* The loaded state of save_simple, with its own tweaks. */
static dt_layout *simple_for_load(void)
{
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {13, 17}, b[] = {4, 4};
	dt_split(dt_add_sharded(l, "layer.weight", DCP_F32, 2, s), 1, 2, NULL);
	dt_add_replicated(l, "layer.bias", DCP_F32, 2, b, DT_RANKS(2));
	dt_add_bytes(l, "layer.blob", 5, DT_RANKS(2));
	return l;
}

static void expect_load_error(const dt_layout *l, const char *url, const dcp_load_options *opts, int status,
                              const char *m1, const char *m2, const char *m3, const char *what)
{
	dt_outcome o;
	dt_expect e = {0};
	dt_load(l, 2, url, opts, SEED, &o);
	e.status = status;
	e.any_ranks = 1;
	e.mention = m1;
	e.mention2 = m2;
	e.mention3 = m3;
	dt_assert_failed(&o, &e, what);
	dt_outcome_clear(&o);
}

Test(strict, missing_key, .timeout = DT_TIMEOUT)
{
	dt_layout *l = simple_for_load();
	uint64_t s[] = {3};
	save_simple("mem://strict-missing");
	dt_add_replicated(l, "model.not.in.checkpoint", DCP_F32, 1, s, DT_RANKS(2));
	expect_load_error(l, "mem://strict-missing", NULL, DCP_ENOTFOUND, "model.not.in.checkpoint", NULL,
	                  NULL, "strict load of a key missing from the checkpoint");
	dt_layout_free(l);

	/* A missing bytes item too. */
	l = simple_for_load();
	dt_add_bytes(l, "blob.not.in.checkpoint", 3, DT_RANK(1));
	expect_load_error(l, "mem://strict-missing", NULL, DCP_ENOTFOUND, "blob.not.in.checkpoint", NULL,
	                  NULL, "strict load of a bytes key missing from the checkpoint");
	dt_layout_free(l);
}

Test(strict, shape_mismatch, .timeout = DT_TIMEOUT)
{
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {13, 19}, b[] = {4, 4}, flat[] = {16};
	save_simple("mem://strict-shape");
	dt_split(dt_add_sharded(l, "layer.weight", DCP_F32, 2, s), 0, 2, NULL);
	dt_add_replicated(l, "layer.bias", DCP_F32, 2, b, DT_RANKS(2));
	expect_load_error(l, "mem://strict-shape", NULL, DCP_EMISMATCH, "layer.weight", "17", "19",
	                  "load of [13, 17] into [13, 19]");
	dt_layout_free(l);

	/* Same number of elements, different rank. */
	l = simple_for_load();
	dt_layout_find(l, "layer.bias")->ndim = 1;
	dt_layout_find(l, "layer.bias")->shape[0] = flat[0];
	expect_load_error(l, "mem://strict-shape", NULL, DCP_EMISMATCH, "layer.bias", NULL, NULL,
	                  "load of [4, 4] into [16]");
	dt_layout_free(l);
}

Test(strict, dtype_mismatch, .timeout = DT_TIMEOUT)
{
	dt_layout *l = simple_for_load();
	save_simple("mem://strict-dtype");
	dt_layout_find(l, "layer.bias")->dtype = DCP_I32;
	expect_load_error(l, "mem://strict-dtype", NULL, DCP_EMISMATCH, "layer.bias", "f32", "i32",
	                  "load of an f32 tensor into i32");
	dt_layout_free(l);

	l = simple_for_load();
	dt_layout_find(l, "layer.weight")->dtype = DCP_BF16;
	expect_load_error(l, "mem://strict-dtype", NULL, DCP_EMISMATCH, "layer.weight", "f32", "bf16",
	                  "load of an f32 tensor into bf16");
	dt_layout_free(l);
}

Test(strict, kind_mismatch, .timeout = DT_TIMEOUT)
{
	dt_layout *l = simple_for_load();
	dt_item *it;
	uint64_t s[] = {5};
	save_simple("mem://strict-kind");
	/* A bytes item asked for as a tensor. */
	it = dt_layout_find(l, "layer.blob");
	it->kind = DT_REPLICATED;
	it->dtype = DCP_U8;
	it->ndim = 1;
	it->shape[0] = s[0];
	expect_load_error(l, "mem://strict-kind", NULL, 0, "layer.blob", NULL, NULL,
	                  "load of a bytes item as a tensor");
	dt_layout_free(l);
}

Test(partial, skips_missing_keys, .timeout = DT_TIMEOUT)
{
	dt_layout *l = simple_for_load();
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	uint64_t s[] = {3, 2};
	dt_outcome o;
	save_simple("mem://partial");
	dt_add_replicated(l, "model.absent.tensor", DCP_F32, 2, s, DT_RANKS(2))->expect_missing = 1;
	dt_split(dt_add_sharded(l, "model.absent.shard", DCP_I16, 2, s), 0, 2, NULL);
	dt_layout_find(l, "model.absent.shard")->expect_missing = 1;
	dt_add_bytes(l, "model.absent.blob", 7, DT_RANK(0))->expect_missing = 1;

	lo.partial = 1;
	dt_load(l, 2, "mem://partial", &lo, SEED, &o);
	dt_assert_ok(&o, "partial load with three keys missing from the checkpoint");
	for (int r = 0; r < 2; r++) {
		cr_assert_eq(dcp_state_was_loaded(o.rs[r]->state, "layer.weight"), 1);
		cr_assert_eq(dcp_state_was_loaded(o.rs[r]->state, "layer.bias"), 1);
		cr_assert_eq(dcp_state_was_loaded(o.rs[r]->state, "model.absent.tensor"), 0);
		cr_assert_eq(dcp_state_was_loaded(o.rs[r]->state, "no.such.key.in.state"), 0);
	}
	dt_outcome_clear(&o);

	/* The same load without partial fails. */
	for (size_t i = 0; i < l->nitems; i++)
		l->items[i].expect_missing = 0;
	expect_load_error(l, "mem://partial", NULL, DCP_ENOTFOUND, "model.absent", NULL, NULL,
	                  "the same load, strict");
	dt_layout_free(l);
}

Test(partial, does_not_hide_mismatches, .timeout = DT_TIMEOUT)
{
	dt_layout *l = simple_for_load();
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	save_simple("mem://partial-mismatch");
	dt_layout_find(l, "layer.bias")->dtype = DCP_F64;
	lo.partial = 1;
	expect_load_error(l, "mem://partial-mismatch", &lo, DCP_EMISMATCH, "layer.bias", "f32", "f64",
	                  "partial load of an f32 tensor into f64");
	dt_layout_free(l);
}

/* ------------------------------------------------------------------------ */
/* Save-side validation of the chunking                                     */
/* ------------------------------------------------------------------------ */
static void expect_save_error(const dt_layout *l, int n, const char *url, int status, const char *mention,
                              const char *what)
{
	dt_outcome o;
	dt_expect e = {0};
	dt_save(l, n, url, NULL, SEED, &o);
	e.status = status;
	e.any_ranks = 1;
	e.step = "plan";
	e.mention = mention;
	dt_assert_failed(&o, &e, what);
	dt_outcome_clear(&o);
}

Test(validation, overlapping_chunks, .timeout = DT_TIMEOUT)
{
	dt_layout *l = dt_layout_new();
	uint64_t shape[] = {10, 4}, o0[] = {0, 0}, s0[] = {6, 4}, o1[] = {5, 0}, s1[] = {5, 4};
	dt_item *it = dt_add_sharded(l, "overlapping.key", DCP_F32, 2, shape);
	dt_chunk_add(it, 0, o0, s0);
	dt_chunk_add(it, 1, o1, s1);
	expect_save_error(l, 2, "mem://overlap", DCP_EPLAN, "overlapping.key",
	                  "rows [0:6] and [5:10] overlap");
	dt_layout_free(l);
}

Test(validation, chunks_leave_a_gap, .timeout = DT_TIMEOUT)
{
	dt_layout *l = dt_layout_new();
	uint64_t shape[] = {10, 4}, o0[] = {0, 0}, s0[] = {4, 4}, o1[] = {5, 0}, s1[] = {5, 4};
	dt_item *it = dt_add_sharded(l, "gappy.key", DCP_F32, 2, shape);
	dt_chunk_add(it, 0, o0, s0);
	dt_chunk_add(it, 1, o1, s1);
	expect_save_error(l, 2, "mem://gap", DCP_EPLAN, "gappy.key", "row 4 is in no chunk");
	dt_layout_free(l);
}

struct layout_save_arg {
	const dt_layout *l;
	const char *url;
};

static int save_own_layout(dcp_comm *comm, int rank, void *arg, dt_outcome *out)
{
	struct layout_save_arg *a = arg;
	dt_rank_state *rs = dt_rank_state_new(a->l, rank, DT_FILL_VALUES, SEED);
	out->rs[rank] = rs;
	out->status[rank] = dcp_save(rs->state, a->url, comm, NULL, &out->err[rank]);
	return out->status[rank];
}

/* Rank 0 says the tensor is f32 10x4, rank 1 says `shape1` / `dtype1`. */
static void disagree_case(const uint64_t *shape1, dcp_dtype dtype1, const char *url, const char *what)
{
	dt_layout *l0 = dt_layout_new(), *l1 = dt_layout_new();
	uint64_t shape0[] = {10, 4}, o0[] = {0, 0}, s0[] = {5, 4}, o1[] = {5, 0}, s1[] = {5, shape1[1]};
	struct layout_save_arg a0 = {l0, url}, a1 = {l1, url};
	dt_closure c[2] = {{save_own_layout, &a0}, {save_own_layout, &a1}};
	dt_outcome o;
	dt_expect e = {0};
	dt_chunk_add(dt_add_sharded(l0, "disagreeing.key", DCP_F32, 2, shape0), 0, o0, s0);
	dt_chunk_add(dt_add_sharded(l1, "disagreeing.key", dtype1, 2, shape1), 1, o1, s1);
	cr_assert_eq(dt_run_closures(2, c, &o), DCP_OK);
	e.any_ranks = 1;
	e.step = "plan";
	e.mention = "disagreeing.key";
	dt_assert_failed(&o, &e, what);
	dt_outcome_clear(&o);
	dt_layout_free(l0);
	dt_layout_free(l1);
}

Test(validation, ranks_disagree_on_shape_or_dtype, .timeout = DT_TIMEOUT)
{
	uint64_t same[] = {10, 4}, wider[] = {10, 5};
	disagree_case(wider, DCP_F32, "mem://disagree-shape",
	              "rank 0 saves a 10x4 tensor, rank 1 a 10x5 one");
	disagree_case(same, DCP_I32, "mem://disagree-dtype", "rank 0 saves an f32 tensor, rank 1 an i32 one");
}
