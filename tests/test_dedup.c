/*
 * Replicated items: written once (after PyTorch's
 * test/distributed/checkpoint/test_dedup_tensors.py), by a keeper that
 * balances bytes across ranks or, on request, by the lowest rank holding
 * them; copies that differ between ranks are refused (pytorch#120356); and
 * bytes items of every size round trip into caller or library buffers.
 *
 * Which rank wrote a stored chunk is read from its storage path in the
 * metadata: data objects are named per rank, "__<rank>_...".
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcptest.h"

#define SEED_A UINT64_C(0xdedc0de)
#define SEED_B UINT64_C(0xd1ff)

static dcp_metadata *read_md(const char *url)
{
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata(url, NULL, &md, &err);
	if (rc != DCP_OK)
		cr_assert_fail("dcp_read_metadata(%s) returned %d (%s):\n%s", url, rc, dcp_strerror(rc),
		               dt_error_text(err));
	return md;
}

/* The rank that wrote key's single stored chunk. */
static int writer_of(const dcp_metadata *md, const char *key)
{
	const dcp_md_item *it = dcp_metadata_find(md, key);
	int r;
	cr_assert_not_null(it, "metadata has no item '%s'", key);
	cr_assert_eq(it->nchunks, 1, "'%s' is stored in %zu chunks, expected exactly 1 (written once)", key,
	             it->nchunks);
	r = dt_path_rank(it->chunks[0].storage.path);
	cr_assert_geq(r, 0, "'%s' is stored at '%s', which is not named __<rank>_...", key,
	              it->chunks[0].storage.path);
	return r;
}

static void save_ok(const dt_layout *l, int n, const char *url, const dcp_save_options *so, uint64_t seed)
{
	dt_outcome o;
	char what[256];
	dt_save(l, n, url, so, seed, &o);
	dt_assert_ok(&o, dt_fmt(what, sizeof(what), "save to %s with %d ranks", url, n));
	dt_outcome_clear(&o);
}

static void load_ok(const dt_layout *l, int n, const char *url, uint64_t seed)
{
	dt_outcome o;
	char what[256];
	dt_load(l, n, url, NULL, seed, &o);
	dt_assert_ok(&o, dt_fmt(what, sizeof(what), "load from %s with %d ranks", url, n));
	dt_outcome_clear(&o);
}

/* ------------------------------------------------------------------------ */
/* Dedup                                                                    */
/* ------------------------------------------------------------------------ */

/* test_dedup_shards: "tensor_0" on both ranks, "r0" and "r1" on one each. */
Test(dedup, replicated_written_once, .timeout = DT_TIMEOUT)
{
	dt_layout *l = dt_layout_new(), *one = dt_layout_new();
	uint64_t s4[] = {4}, s10[] = {10};
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_metadata *md;
	int w;

	dt_add_replicated(l, "tensor_0", DCP_F32, 1, s4, DT_RANKS(2));
	dt_add_replicated(l, "r0", DCP_F32, 1, s10, DT_RANK(0));
	dt_add_replicated(l, "r1", DCP_F32, 1, s10, DT_RANK(1));

	so.dedup_keep_lowest_rank = 1;
	save_ok(l, 2, "mem://dedup-lowest", &so, SEED_A);
	md = read_md("mem://dedup-lowest");
	cr_assert_eq(md->nitems, 3);
	cr_assert_eq(writer_of(md, "tensor_0"), 0, "keep-lowest: tensor_0 written by rank %d",
	             writer_of(md, "tensor_0"));
	cr_assert_eq(writer_of(md, "r0"), 0);
	cr_assert_eq(writer_of(md, "r1"), 1);
	dcp_metadata_free(md);

	save_ok(l, 2, "mem://dedup-balanced", NULL, SEED_A);
	md = read_md("mem://dedup-balanced");
	w = writer_of(md, "tensor_0");
	cr_assert(w == 0 || w == 1, "tensor_0 written by rank %d", w);
	cr_assert_eq(writer_of(md, "r0"), 0);
	cr_assert_eq(writer_of(md, "r1"), 1);
	dcp_metadata_free(md);

	load_ok(l, 2, "mem://dedup-lowest", SEED_A);
	load_ok(l, 2, "mem://dedup-balanced", SEED_A);
	dt_add_replicated(one, "tensor_0", DCP_F32, 1, s4, DT_RANK(0));
	dt_add_replicated(one, "r0", DCP_F32, 1, s10, DT_RANK(0));
	dt_add_replicated(one, "r1", DCP_F32, 1, s10, DT_RANK(0));
	load_ok(one, 1, "mem://dedup-balanced", SEED_A);
	dt_layout_free(l);
	dt_layout_free(one);
}

#define NREP      8
#define REP_ELEMS 256 /* f32: 1 KiB each */

static dt_layout *replicated_layout(int n, int heavy_rank0)
{
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {REP_ELEMS}, big[] = {4 * REP_ELEMS}, zero[] = {0};
	for (int i = 0; i < (heavy_rank0 ? 4 : NREP); i++) {
		char key[32];
		dt_add_replicated(l, dt_fmt(key, sizeof(key), "rep.%d", i), DCP_F32, 1, s, DT_RANKS(n));
	}
	if (heavy_rank0)
		dt_chunk_add(dt_add_sharded(l, "big", DCP_F32, 1, big), 0, zero, big);
	return l;
}

Test(dedup, default_balances_bytes_across_ranks, .timeout = DT_TIMEOUT)
{
	dt_layout *l = replicated_layout(4, 0);
	dcp_metadata *md;
	int count[4] = {0};
	save_ok(l, 4, "mem://balance", NULL, SEED_A);
	md = read_md("mem://balance");
	for (int i = 0; i < NREP; i++) {
		char key[32];
		int w = writer_of(md, dt_fmt(key, sizeof(key), "rep.%d", i));
		cr_assert(w >= 0 && w < 4, "rep.%d written by rank %d", i, w);
		count[w]++;
	}
	for (int r = 0; r < 4; r++)
		cr_assert_eq(count[r], NREP / 4,
		             "8 equal replicated items over 4 ranks: rank %d writes %d, expected 2 "
		             "(per rank: %d %d %d %d)",
		             r, count[r], count[0], count[1], count[2], count[3]);
	dcp_metadata_free(md);
	load_ok(l, 4, "mem://balance", SEED_A);
	dt_layout_free(l);
}

Test(dedup, balancing_counts_each_ranks_own_bytes, .timeout = DT_TIMEOUT)
{
	/* Rank 0 already writes 4 KiB of its own: the four 1 KiB replicated
	 * items go to ranks 1..3. */
	dt_layout *l = replicated_layout(4, 1);
	dcp_metadata *md;
	int count[4] = {0};
	save_ok(l, 4, "mem://balance-heavy", NULL, SEED_A);
	md = read_md("mem://balance-heavy");
	cr_assert_eq(writer_of(md, "big"), 0);
	for (int i = 0; i < 4; i++) {
		char key[32];
		count[writer_of(md, dt_fmt(key, sizeof(key), "rep.%d", i))]++;
	}
	cr_assert_eq(count[0], 0,
	             "rank 0 holds 4 KiB of its own yet writes %d of the replicated items "
	             "(per rank: %d %d %d %d)",
	             count[0], count[0], count[1], count[2], count[3]);
	for (int r = 1; r < 4; r++)
		cr_assert_geq(count[r], 1,
		              "rank %d writes none of the replicated items (per rank: %d %d %d %d)", r,
		              count[0], count[1], count[2], count[3]);
	dcp_metadata_free(md);
	load_ok(l, 4, "mem://balance-heavy", SEED_A);
	dt_layout_free(l);
}

Test(dedup, keep_lowest_rank, .timeout = DT_TIMEOUT)
{
	dt_layout *l = replicated_layout(4, 0);
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_metadata *md;
	uint64_t s[] = {16};
	dt_add_replicated(l, "held.by.2.and.3", DCP_I64, 1, s, DT_RANK(2) | DT_RANK(3));
	dt_add_bytes(l, "bytes.held.by.1.and.3", 33, DT_RANK(1) | DT_RANK(3));
	so.dedup_keep_lowest_rank = 1;
	save_ok(l, 4, "mem://lowest", &so, SEED_A);
	md = read_md("mem://lowest");
	for (int i = 0; i < NREP; i++) {
		char key[32];
		int w = writer_of(md, dt_fmt(key, sizeof(key), "rep.%d", i));
		cr_assert_eq(w, 0, "keep-lowest: rep.%d written by rank %d, expected 0", i, w);
	}
	cr_assert_eq(writer_of(md, "held.by.2.and.3"), 2);
	cr_assert_eq(writer_of(md, "bytes.held.by.1.and.3"), 1);
	dcp_metadata_free(md);
	load_ok(l, 4, "mem://lowest", SEED_A);

	/* Balanced: the keeper is still one of the holders. */
	save_ok(l, 4, "mem://holders", NULL, SEED_A);
	md = read_md("mem://holders");
	{
		int w = writer_of(md, "held.by.2.and.3");
		cr_assert(w == 2 || w == 3, "held.by.2.and.3 written by rank %d", w);
		w = writer_of(md, "bytes.held.by.1.and.3");
		cr_assert(w == 1 || w == 3, "bytes.held.by.1.and.3 written by rank %d", w);
	}
	dcp_metadata_free(md);
	load_ok(l, 4, "mem://holders", SEED_A);
	dt_layout_free(l);
}

/* ------------------------------------------------------------------------ */
/* Divergent replicated copies                                              */
/* ------------------------------------------------------------------------ */
static void diverged_case(dt_layout *l, const char *url, const char *mention, const char *m2, const char *m3,
                          const char *what)
{
	dt_outcome o;
	dt_expect e = {0};
	dt_layout *good = dt_layout_dup(l);
	for (size_t i = 0; i < good->nitems; i++)
		good->items[i].diverge = 0;
	save_ok(good, 4, url, NULL, SEED_A);

	dt_save(l, 4, url, NULL, SEED_B, &o);
	e.status = DCP_EDIVERGED;
	e.any_ranks = 1;
	e.step = "plan";
	e.mention = mention;
	e.mention2 = m2;
	e.mention3 = m3;
	dt_assert_failed(&o, &e, what);
	dt_outcome_clear(&o);

	/* Nothing of the refused save is visible. */
	load_ok(good, 4, url, SEED_A);
	load_ok(good, 3 /* resharded too */, url, SEED_A);
	dt_layout_free(good);
}

Test(diverged, replicated_tensor_differs_on_ranks_1_and_3, .timeout = DT_TIMEOUT)
{
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {8, 8}, r[] = {12};
	dt_add_replicated(l, "model.shared.weight", DCP_F32, 2, s, DT_RANKS(4))->diverge =
	        DT_RANK(1) | DT_RANK(3);
	dt_split(dt_add_sharded(l, "model.sharded", DCP_F32, 1, r), 0, 4, NULL);
	diverged_case(l, "mem://diverged-tensor", "model.shared.weight", "1", "3",
	              "save of a replicated tensor whose copies differ on ranks 1 and 3");
	dt_layout_free(l);
}

Test(diverged, replicated_bytes_differ, .timeout = DT_TIMEOUT)
{
	dt_layout *l = dt_layout_new();
	dt_add_bytes(l, "rng.state.shared", 16, DT_RANKS(4))->diverge = DT_RANK(2);
	dt_add_bytes(l, "step", 8, DT_RANKS(4));
	diverged_case(l, "mem://diverged-bytes", "rng.state.shared", "2", NULL,
	              "save of a bytes item whose copy differs on rank 2");
	dt_layout_free(l);
}

Test(diverged, only_among_holders, .timeout = DT_TIMEOUT)
{
	/* Held by ranks 0 and 2 only; rank 2's copy differs. */
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {5};
	dt_add_replicated(l, "partly.held", DCP_I16, 1, s, DT_RANK(0) | DT_RANK(2))->diverge = DT_RANK(2);
	dt_add_bytes(l, "step", 8, DT_RANKS(4));
	diverged_case(l, "mem://diverged-partly", "partly.held", "2", NULL,
	              "save of a tensor held by ranks 0 and 2 whose copies differ");
	dt_layout_free(l);
}

/* ------------------------------------------------------------------------ */
/* Bytes items                                                              */
/* ------------------------------------------------------------------------ */
#define LARGE (3u << 20)

static dt_layout *bytes_layout(int n)
{
	dt_layout *l = dt_layout_new();
	dt_add_bytes(l, "b.empty", 0, DT_RANKS(n));
	dt_add_bytes(l, "b.small", 5, DT_RANKS(n));
	dt_add_bytes(l, "b.large", LARGE, DT_RANK(0));
	dt_add_bytes(l, "b.odd", 1001, DT_RANK(n - 1));
	dt_add_bytes(l, "bytes0", 1, DT_RANKS(n));
	dt_add_bytes(l, "bytes1", 6, DT_RANKS(n));
	return l;
}

Test(bytes, round_trip_into_caller_buffers, .timeout = DT_TIMEOUT)
{
	dt_layout *save = bytes_layout(3), *load = bytes_layout(2);
	dcp_metadata *md;
	save_ok(save, 3, "mem://bytes-caller", NULL, SEED_A);
	md = read_md("mem://bytes-caller");
	cr_assert_eq(md->nitems, 6);
	cr_assert_eq(dcp_metadata_find(md, "b.large")->type, DCP_ITEM_BYTES);
	cr_assert_eq(dcp_metadata_find(md, "b.large")->chunks[0].storage.length, LARGE);
	cr_assert_eq(dcp_metadata_find(md, "b.empty")->chunks[0].storage.length, 0);
	cr_assert_eq(dcp_metadata_find(md, "b.odd")->chunks[0].storage.length, 1001);
	dcp_metadata_free(md);
	/* Buffers of the exact size, on 2 ranks now. */
	load_ok(load, 2, "mem://bytes-caller", SEED_A);
	/* Buffers larger than needed: the loaded length is the stored one. */
	for (size_t i = 0; i < load->nitems; i++)
		load->items[i].capacity = load->items[i].len + 64;
	load_ok(load, 2, "mem://bytes-caller", SEED_A);
	dt_layout_free(save);
	dt_layout_free(load);
}

Test(bytes, round_trip_into_library_buffers, .timeout = DT_TIMEOUT)
{
	dt_layout *save = bytes_layout(2), *load = bytes_layout(4);
	dt_outcome o;
	save_ok(save, 2, "mem://bytes-lib", NULL, SEED_A);
	for (size_t i = 0; i < load->nitems; i++)
		load->items[i].lib_alloc = 1;
	load->items[2].holders = DT_RANKS(4); /* b.large on every rank */
	dt_load(load, 4, "mem://bytes-lib", NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of bytes items into library-allocated buffers");
	for (int r = 0; r < 4; r++) {
		const void *data = NULL;
		size_t len = 1;
		cr_assert_eq(dcp_state_get_bytes(o.rs[r]->state, "b.empty", &data, &len), DCP_OK);
		cr_assert_eq(len, 0, "rank %d: b.empty has length %zu", r, len);
		cr_assert_eq(dcp_state_get_bytes(o.rs[r]->state, "no.such.key", &data, &len), DCP_ENOTFOUND);
	}
	dt_outcome_clear(&o);
	dt_layout_free(save);
	dt_layout_free(load);
}

Test(bytes, buffer_too_small, .timeout = DT_TIMEOUT)
{
	dt_layout *save = bytes_layout(2), *load;
	dt_outcome o;
	dt_expect e = {0};
	save_ok(save, 2, "mem://bytes-small", NULL, SEED_A);

	load = bytes_layout(2);
	dt_layout_find(load, "b.small")->capacity = 4;
	dt_load(load, 2, "mem://bytes-small", NULL, SEED_A, &o);
	e.status = DCP_EMISMATCH;
	e.any_ranks = 1;
	e.mention = "b.small";
	dt_assert_failed(&o, &e, "load of a 5-byte item into a 4-byte buffer");
	dt_outcome_clear(&o);
	dt_layout_free(load);

	load = bytes_layout(2);
	dt_layout_find(load, "b.large")->capacity = LARGE - 1;
	dt_load(load, 2, "mem://bytes-small", NULL, SEED_A, &o);
	e.mention = "b.large";
	dt_assert_failed(&o, &e, "load of a 3 MiB item into a buffer one byte short");
	dt_outcome_clear(&o);
	dt_layout_free(load);
	dt_layout_free(save);
}

Test(bytes, overwritten_with_other_values, .timeout = DT_TIMEOUT)
{
	/* test_save_load_bytes: what was saved replaces what the buffers held. */
	dt_layout *l = bytes_layout(2);
	save_ok(l, 2, "mem://bytes-again", NULL, SEED_A);
	save_ok(l, 2, "mem://bytes-again", NULL, SEED_B);
	load_ok(l, 2, "mem://bytes-again", SEED_B);
	dt_layout_free(l);
}
