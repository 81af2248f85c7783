/*
 * The core protocol, after PyTorch's test/distributed/checkpoint/test_checkpoint.py:
 * the default metadata of a small mixed state, a tensor held by one rank only,
 * a writer and reader that do nothing, and the whole failure matrix of
 * TestDistributedFailure (every storage stage failing on chosen ranks, with
 * every coordinator, and the single-rank "no-dist" variants), through the
 * faulty+mem:// plugin.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcp/sys/planner.h"
#include "dcptest.h"

#define NRANKS 4
#define SEED_A UINT64_C(0xa11ce)
#define SEED_B UINT64_C(0xb0b)

/* ------------------------------------------------------------------------ */
/* Default metadata                                                         */
/* ------------------------------------------------------------------------ */

/* The state of test_default_metadata: a 10x10 f32 tensor sharded by rows over
 * 2 ranks, a replicated f32 [4] and a 4-byte bytes item on both ranks. */
static dt_layout *default_layout(void)
{
	dt_layout *l = dt_layout_new();
	uint64_t s10x10[] = {10, 10}, s4[] = {4};
	dt_split(dt_add_sharded(l, "sharded", DCP_F32, 2, s10x10), 0, 2, NULL);
	dt_add_replicated(l, "replicated", DCP_F32, 1, s4, DT_RANKS(2));
	dt_add_bytes(l, "bytes", 4, DT_RANKS(2));
	return l;
}

static const dcp_md_item *md_item(const dcp_metadata *md, const char *key)
{
	const dcp_md_item *it = dcp_metadata_find(md, key);
	cr_assert_not_null(it, "metadata has no item '%s'", key);
	cr_assert_str_eq(it->key, key);
	return it;
}

/* The stored chunk's checksums are the XXH3 block sums of the bytes the rank
 * held for it. */
static void check_sums(const dcp_metadata *md, const dcp_md_chunk *c, const void *data, uint64_t len,
                       const char *what)
{
	uint64_t nsums = len == 0 ? 0 : (len + md->checksum_block - 1) / md->checksum_block;
	uint64_t *sums = dt_xcalloc(nsums + 1, sizeof(uint64_t));
	cr_assert_eq(c->storage.length, len, "%s: stored length %llu, expected %llu", what,
	             (unsigned long long)c->storage.length, (unsigned long long)len);
	cr_assert_eq(c->storage.nsums, nsums, "%s: %u checksums, expected %llu", what, c->storage.nsums,
	             (unsigned long long)nsums);
	dcp_checksum_blocks(data, len, md->checksum_block, sums);
	for (uint64_t i = 0; i < nsums; i++)
		cr_assert_eq(c->storage.sums[i], sums[i], "%s: checksum %llu is %016llx, expected %016llx",
		             what, (unsigned long long)i, (unsigned long long)c->storage.sums[i],
		             (unsigned long long)sums[i]);
	cr_assert(dcp_storage_path_is_safe(c->storage.path), "%s: unsafe storage path '%s'", what,
	          c->storage.path);
	free(sums);
}

Test(checkpoint, default_metadata, .timeout = DT_TIMEOUT)
{
	dt_layout *l = default_layout();
	const char *url = "mem://ckpt-default-metadata";
	dt_outcome o;
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	const dcp_md_item *it;
	int rc;

	dt_save(l, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save of the default state on 2 ranks");

	rc = dcp_read_metadata(url, NULL, &md, &err);
	if (rc != DCP_OK)
		cr_assert_fail("dcp_read_metadata(%s) returned %d: %s", url, rc, dt_error_text(err));
	cr_assert_null(err);
	cr_assert_eq(md->format_major, DCP_FORMAT_MAJOR);
	cr_assert_gt(md->checksum_block, 0);
	cr_assert(md->save_id != NULL && md->save_id[0] != '\0', "the metadata has no save id");
	cr_assert_eq(md->nitems, 3, "expected 3 items (bytes, replicated, sharded), got %zu", md->nitems);
	for (size_t i = 1; i < md->nitems; i++)
		cr_assert_lt(strcmp(md->items[i - 1].key, md->items[i].key), 0,
		             "items are not sorted by key");

	/* The bytes item: one chunk of 4 bytes. */
	it = md_item(md, "bytes");
	cr_assert_eq(it->type, DCP_ITEM_BYTES);
	cr_assert_eq(it->nchunks, 1);
	{
		unsigned char b[4];
		dt_fill_bytes(SEED_A, "bytes", b, 4);
		check_sums(md, &it->chunks[0], b, 4, "bytes");
	}

	/* The replicated tensor: stored once, whole. */
	it = md_item(md, "replicated");
	cr_assert_eq(it->type, DCP_ITEM_TENSOR);
	cr_assert_eq(it->dtype, DCP_F32, "replicated has dtype %s", dcp_dtype_name(it->dtype));
	cr_assert_eq(it->ndim, 1);
	cr_assert_eq(it->shape[0], 4);
	cr_assert_eq(it->nchunks, 1, "the replicated tensor has %zu stored chunks, expected 1", it->nchunks);
	cr_assert_eq(it->chunks[0].offsets[0], 0);
	cr_assert_eq(it->chunks[0].sizes[0], 4);
	cr_assert_eq(o.rs[0]->bufsize[1][0], 16);
	check_sums(md, &it->chunks[0], o.rs[0]->buf[1][0], 16, "replicated");

	/* The sharded tensor: two chunks of 5 rows, in row-major order. */
	it = md_item(md, "sharded");
	cr_assert_eq(it->type, DCP_ITEM_TENSOR);
	cr_assert_eq(it->dtype, DCP_F32);
	cr_assert_eq(it->ndim, 2);
	cr_assert_eq(it->shape[0], 10);
	cr_assert_eq(it->shape[1], 10);
	cr_assert_eq(it->nchunks, 2, "sharded has %zu chunks, expected 2", it->nchunks);
	for (size_t c = 0; c < 2; c++) {
		char what[64];
		cr_assert_eq(it->chunks[c].offsets[0], 5 * c, "chunk %zu starts at row %llu", c,
		             (unsigned long long)it->chunks[c].offsets[0]);
		cr_assert_eq(it->chunks[c].offsets[1], 0);
		cr_assert_eq(it->chunks[c].sizes[0], 5);
		cr_assert_eq(it->chunks[c].sizes[1], 10);
		/* Rank c held chunk c of item 0. */
		check_sums(md, &it->chunks[c], o.rs[c]->buf[0][c], 200,
		           dt_fmt(what, sizeof(what), "sharded chunk %zu", c));
		cr_assert_eq(dt_path_rank(it->chunks[c].storage.path), (int)c,
		             "sharded chunk %zu was written to '%s', expected a path of rank %zu", c,
		             it->chunks[c].storage.path, c);
	}
	dcp_metadata_free(md);
	dt_outcome_clear(&o);

	/* And it loads back, column-wise on 2 ranks. */
	{
		dt_layout *cols = dt_layout_new();
		uint64_t s10x10[] = {10, 10}, s4[] = {4};
		dt_split(dt_add_sharded(cols, "sharded", DCP_F32, 2, s10x10), 1, 2, NULL);
		dt_add_replicated(cols, "replicated", DCP_F32, 1, s4, DT_RANKS(2));
		dt_add_bytes(cols, "bytes", 4, DT_RANKS(2));
		dt_load(cols, 2, url, NULL, SEED_A, &o);
		dt_assert_ok(&o, "load of the default state column-wise");
		dt_outcome_clear(&o);
		dt_layout_free(cols);
	}
	dt_layout_free(l);
}

Test(checkpoint, tensor_held_by_one_rank_gives_one_chunk, .timeout = DT_TIMEOUT)
{
	dt_layout *l = dt_layout_new(), *back = dt_layout_new();
	uint64_t s[] = {4, 4}, zero[] = {0, 0};
	const char *url = "mem://ckpt-missing-rank-spec";
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	const dcp_md_item *it;
	dt_outcome o;

	dt_chunk_add(dt_add_sharded(l, "st", DCP_F64, 2, s), 1, zero, s);
	dt_save(l, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save of a tensor held only by rank 1");
	dt_outcome_clear(&o);

	cr_assert_eq(dcp_read_metadata(url, NULL, &md, &err), DCP_OK, "dcp_read_metadata: %s",
	             dt_error_text(err));
	cr_assert_eq(md->nitems, 1);
	it = md_item(md, "st");
	cr_assert_eq(it->dtype, DCP_F64);
	cr_assert_eq(it->nchunks, 1, "a tensor held by one rank has %zu chunks, expected 1", it->nchunks);
	cr_assert_eq(it->chunks[0].offsets[0], 0);
	cr_assert_eq(it->chunks[0].sizes[0], 4);
	cr_assert_eq(it->chunks[0].sizes[1], 4);
	cr_assert_eq(it->chunks[0].storage.length, 4 * 4 * 8);
	cr_assert_eq(dt_path_rank(it->chunks[0].storage.path), 1,
	             "written to '%s', expected a path of rank 1", it->chunks[0].storage.path);
	dcp_metadata_free(md);

	/* Loaded by rank 0 alone this time, rank 1 holding nothing. */
	dt_chunk_add(dt_add_sharded(back, "st", DCP_F64, 2, s), 0, zero, s);
	dt_load(back, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of the tensor into rank 0");
	dt_outcome_clear(&o);
	dt_layout_free(l);
	dt_layout_free(back);
}

/* ------------------------------------------------------------------------ */
/* A writer and a reader that do nothing                                    */
/* ------------------------------------------------------------------------ */

/* TestDistributedFailure's state: sharded 20x20 by rows over every rank, a
 * replicated 10x10 and a bytes item on every rank. n == 0: the no-dist
 * state (replicated and bytes only, one rank). */
static dt_layout *failure_layout(int n)
{
	dt_layout *l = dt_layout_new();
	uint64_t s20[] = {20, 20}, s10[] = {10, 10};
	int ranks = n == 0 ? 1 : n;
	if (n > 0)
		dt_split(dt_add_sharded(l, "sharded", DCP_F32, 2, s20), 0, (size_t)n, NULL);
	dt_add_replicated(l, "replicated", DCP_F32, 2, s10, DT_RANKS(ranks));
	dt_add_bytes(l, "bytes", 4, DT_RANKS(ranks));
	return l;
}

struct plain_load_arg {
	const dt_layout *l;
	const char *url;
	const dcp_load_options *opts;
};

/* Loads without checking values (the noop reader never fills buffers). */
static int load_unchecked(dcp_comm *comm, int rank, void *arg, dt_outcome *out)
{
	struct plain_load_arg *a = arg;
	dt_rank_state *rs = dt_rank_state_new(a->l, rank, DT_FILL_INVERSE, SEED_A);
	out->rs[rank] = rs;
	out->status[rank] = dcp_load(rs->state, a->url, comm, a->opts, &out->err[rank]);
	return out->status[rank];
}

Test(checkpoint, noop_writer_and_reader_work, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg = NULL;
	dcp_error *err = NULL;
	dcp_plugin *plugin = NULL;
	dt_layout *l = failure_layout(NRANKS);
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	dt_noop_counts c, before;
	dt_outcome o;
	dcp_metadata *md = NULL;
	struct plain_load_arg la;
	int rc;

	cr_assert_eq(dcp_registry_new(&reg, &err), DCP_OK, "dcp_registry_new: %s", dt_error_text(err));
	rc = dcp_registry_add(reg, dt_noop_plugin_entry, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_registry_add(noop): %s", dt_error_text(err));
	rc = dcp_registry_find(reg, "noop://dummy", &plugin, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_registry_find(noop://dummy): %s", dt_error_text(err));
	cr_assert(dt_is_noop_plugin(plugin), "noop://dummy did not resolve to the compiled-in plugin");

	so.registry = reg;
	dt_save(l, NRANKS, "noop://dummy", &so, SEED_A, &o);
	dt_assert_ok(&o, "save through a writer that does nothing");
	dt_outcome_clear(&o);

	dt_noop_get_counts(plugin, &c);
	cr_assert_eq(c.writer_open, NRANKS, "writer_open called %u times", c.writer_open);
	cr_assert_eq(c.set_up_storage_writer, NRANKS, "set_up_storage_writer called %u times",
	             c.set_up_storage_writer);
	cr_assert_eq(c.writer_prepare_local_plan, NRANKS);
	cr_assert_eq(c.writer_prepare_global_plan, 1, "prepare_global_plan called %u times, expected once",
	             c.writer_prepare_global_plan);
	cr_assert_eq(c.write_data, NRANKS, "write_data called %u times", c.write_data);
	cr_assert_eq(c.finish, 1, "finish called %u times, expected once (coordinator)", c.finish);
	cr_assert_eq(c.writer_close, NRANKS, "writer close called %u times", c.writer_close);
	cr_assert_eq(c.writer_abort, 0, "abort called %u times on a save that succeeded", c.writer_abort);
	/* 4 shards, the replicated tensor once, the bytes item once. */
	cr_assert_eq(c.items_written, NRANKS + 2, "%llu items written, expected %d (replicated items once)",
	             (unsigned long long)c.items_written, NRANKS + 2);
	cr_assert_eq(c.bytes_written, 20 * 20 * 4 + 10 * 10 * 4 + 4, "%llu bytes written",
	             (unsigned long long)c.bytes_written);

	/* The metadata the writer committed comes back through the reader. */
	rc = dcp_read_metadata("noop://dummy", reg, &md, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_read_metadata(noop://dummy): %s", dt_error_text(err));
	cr_assert_eq(md->nitems, 3);
	cr_assert_eq(md_item(md, "sharded")->nchunks, NRANKS);
	dcp_metadata_free(md);

	/* A load whose reads do nothing: verification off, nothing to check.
	 * (dcp_read_metadata above opened a reader too: count from here.) */
	dt_noop_get_counts(plugin, &before);
	lo.registry = reg;
	lo.verify = 0;
	la.l = l;
	la.url = "noop://dummy";
	la.opts = &lo;
	dt_run(NRANKS, load_unchecked, &la, &o);
	dt_assert_ok(&o, "load through a reader that does nothing");
	for (int r = 0; r < NRANKS; r++)
		cr_assert(dcp_state_was_loaded(o.rs[r]->state, "replicated"),
		          "rank %d: replicated not loaded", r);
	dt_outcome_clear(&o);

	dt_noop_get_counts(plugin, &c);
	cr_assert_eq(c.reader_open - before.reader_open, NRANKS, "reader_open called %u times",
	             c.reader_open - before.reader_open);
	cr_assert_geq(c.read_metadata - before.read_metadata, 1);
	cr_assert_eq(c.set_up_storage_reader - before.set_up_storage_reader, NRANKS);
	cr_assert_eq(c.reader_prepare_local_plan - before.reader_prepare_local_plan, NRANKS);
	cr_assert_eq(c.reader_prepare_global_plan - before.reader_prepare_global_plan, 1,
	             "reader prepare_global_plan called %u times, expected once (coordinator)",
	             c.reader_prepare_global_plan - before.reader_prepare_global_plan);
	cr_assert_eq(c.read_data - before.read_data, NRANKS);
	cr_assert_eq(c.reader_close - before.reader_close, NRANKS);
	/* Every reader opened was closed, dcp_read_metadata's too. */
	cr_assert_eq(c.reader_close, c.reader_open);
	cr_assert_eq(c.writer_close, c.writer_open);

	dcp_registry_free(reg);
	dt_layout_free(l);
}

/* ------------------------------------------------------------------------ */
/* The failure matrix                                                       */
/* ------------------------------------------------------------------------ */
typedef struct stage_spec {
	const char *name;     /* fail.<name>= */
	const char *function; /* what the error's stage must name */
	const char *step;
	int coordinator_only;
} stage_spec;

static const stage_spec save_stages[] = {
        {"set_up_storage_writer", "set_up_storage_writer", "plan", 0},
        {"prepare_local_plan", "prepare_local_plan", "plan", 0},
        {"prepare_global_plan", "prepare_global_plan", "plan", 1},
        {"write_data", "write_data", "write", 0},
        {"write_data_async", "write_data", "write", 0},
        {"finish", "finish", "write", 1},
};

static const stage_spec load_stages[] = {
        {"read_metadata", "read_metadata", "plan", 0},
        {"set_up_storage_reader", "set_up_storage_reader", "plan", 0},
        {"prepare_local_plan", "prepare_local_plan", "plan", 0},
        {"prepare_global_plan", "prepare_global_plan", "plan", 1},
        {"read_data", "read_data", "read", 0},
        {"read_data_async", "read_data", "read", 0},
};

static const stage_spec *find_stage(const stage_spec *t, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].name, name) == 0)
			return &t[i];
	cr_assert_fail("no stage '%s'", name);
	return NULL;
}

/* "1,3" and "r13" for a rank mask. */
static void mask_text(uint64_t m, char *list, size_t listlen, char *tag, size_t taglen)
{
	size_t a = 0, b = 0;
	list[0] = tag[0] = '\0';
	b += (size_t)snprintf(tag, taglen, "r");
	for (int r = 0; r < 64; r++) {
		if (!(m & DT_RANK(r)))
			continue;
		a += (size_t)snprintf(list + a, listlen - a, "%s%d", a ? "," : "", r);
		b += (size_t)snprintf(tag + b, taglen - b, "%d", r);
	}
}

/* The rank sets each stage is failed on, for a coordinator: the coordinator,
 * another rank, two ranks, every rank. */
static size_t fail_sets(int n, int coord, uint64_t *sets)
{
	if (n == 0) {
		sets[0] = DT_RANK(0);
		return 1;
	}
	sets[0] = DT_RANK(coord);
	sets[1] = DT_RANK((coord + 2) % n);
	sets[2] = DT_RANK(1) | DT_RANK(3);
	sets[3] = DT_RANKS(n);
	return 4;
}

/*
 * One failing save: a good checkpoint with SEED_A first, then a save of
 * SEED_B through the faulty wrapper failing `stage` on `fail`; every rank
 * must fail alike, naming exactly the ranks that ran the stage and failed;
 * then the SEED_A checkpoint must still load bit-exact.
 */
static void save_failure_case(const stage_spec *st, int n, int coord, uint64_t fail)
{
	dt_layout *l = failure_layout(n);
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	char list[64], tag[32], name[128], url[DT_URL_MAX], furl[DT_URL_MAX], what[256];
	int world = n == 0 ? 1 : n;
	uint64_t expect = fail & DT_RANKS(world);
	dt_outcome o;

	if (st->coordinator_only)
		expect &= DT_RANK(coord);
	mask_text(fail, list, sizeof(list), tag, sizeof(tag));
	dt_fmt(name, sizeof(name), "fsave-%s-n%d-c%d-%s", st->name, n, coord, tag);
	dt_fmt(url, sizeof(url), "mem://%s", name);
	dt_fmt(furl, sizeof(furl), "faulty+mem://%s?fail.%s=%s", name, st->name, list);
	dt_fmt(what, sizeof(what), "save to %s with %d ranks%s, coordinator %d", furl, world,
	       n == 0 ? " (no-dist)" : "", coord);
	so.coordinator = coord;
	lo.coordinator = coord;

	dt_save(l, n, url, &so, SEED_A, &o);
	dt_assert_ok(&o, "the first, good save");
	dt_outcome_clear(&o);

	dt_save(l, n, furl, &so, SEED_B, &o);
	if (expect == 0) {
		/* A coordinator-only stage failing on other ranks never runs there. */
		dt_assert_ok(&o, what);
		dt_outcome_clear(&o);
		dt_load(l, n, url, &lo, SEED_B, &o);
		dt_assert_ok(&o, "load of the second save");
	} else {
		dt_expect e = {0};
		e.status = DCP_EINJECTED;
		e.ranks = expect;
		e.step = st->step;
		e.stage = st->function;
		e.entry_code = DCP_EINJECTED;
		dt_assert_failed(&o, &e, what);
		dt_outcome_clear(&o);
		dt_load(l, n, url, &lo, SEED_A, &o);
		dt_assert_ok(&o, "load of the previous checkpoint after a failed save");
	}
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

/* A good checkpoint (saved once by the caller), then a load through the
 * faulty wrapper failing `stage` on `fail`, then a good load. */
static void load_failure_case(const stage_spec *st, int n, int coord, uint64_t fail, const char *name)
{
	dt_layout *l = failure_layout(n);
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	char list[64], tag[32], url[DT_URL_MAX], furl[DT_URL_MAX], what[256];
	int world = n == 0 ? 1 : n;
	uint64_t expect = fail & DT_RANKS(world);
	dt_outcome o;

	if (st->coordinator_only)
		expect &= DT_RANK(coord);
	mask_text(fail, list, sizeof(list), tag, sizeof(tag));
	dt_fmt(url, sizeof(url), "mem://%s", name);
	dt_fmt(furl, sizeof(furl), "faulty+mem://%s?fail.%s=%s", name, st->name, list);
	dt_fmt(what, sizeof(what), "load from %s with %d ranks%s, coordinator %d", furl, world,
	       n == 0 ? " (no-dist)" : "", coord);
	lo.coordinator = coord;

	dt_load(l, n, furl, &lo, SEED_A, &o);
	if (expect == 0) {
		dt_assert_ok(&o, what);
	} else {
		dt_expect e = {0};
		e.status = DCP_EINJECTED;
		e.ranks = expect;
		e.step = st->step;
		e.stage = st->function;
		e.entry_code = DCP_EINJECTED;
		dt_assert_failed(&o, &e, what);
	}
	dt_outcome_clear(&o);
	dt_load(l, n, url, &lo, SEED_A, &o);
	dt_assert_ok(&o, "a good load after the failed one");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

static void save_matrix(const char *stage)
{
	const stage_spec *st = find_stage(save_stages, sizeof(save_stages) / sizeof(save_stages[0]), stage);
	for (int coord = 0; coord < NRANKS; coord++) {
		uint64_t sets[8];
		size_t k = fail_sets(NRANKS, coord, sets);
		for (size_t i = 0; i < k; i++)
			save_failure_case(st, NRANKS, coord, sets[i]);
		/* A coordinator-only stage failing elsewhere than on the
		 * coordinator does not fail the save. */
		if (st->coordinator_only)
			save_failure_case(st, NRANKS, coord, DT_RANK((coord + 1) % NRANKS));
	}
}

static void load_matrix(const char *stage)
{
	const stage_spec *st = find_stage(load_stages, sizeof(load_stages) / sizeof(load_stages[0]), stage);
	dt_layout *l = failure_layout(NRANKS);
	char name[128], url[DT_URL_MAX];
	dt_outcome o;
	dt_fmt(name, sizeof(name), "fload-%s", stage);
	dt_fmt(url, sizeof(url), "mem://%s", name);
	dt_save(l, NRANKS, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "the checkpoint to load");
	dt_outcome_clear(&o);
	dt_layout_free(l);
	for (int coord = 0; coord < NRANKS; coord++) {
		uint64_t sets[8];
		size_t k = fail_sets(NRANKS, coord, sets);
		for (size_t i = 0; i < k; i++)
			load_failure_case(st, NRANKS, coord, sets[i], name);
		if (st->coordinator_only)
			load_failure_case(st, NRANKS, coord, DT_RANK((coord + 1) % NRANKS), name);
	}
}

#define SAVE_FAILURE(stage)                                                                                  \
	Test(save_failure, stage, .timeout = DT_TIMEOUT)                                                     \
	{                                                                                                    \
		save_matrix(#stage);                                                                         \
	}                                                                                                    \
	Test(save_failure_no_dist, stage, .timeout = DT_TIMEOUT)                                             \
	{                                                                                                    \
		save_failure_case(                                                                           \
		        find_stage(save_stages, sizeof(save_stages) / sizeof(save_stages[0]), #stage), 0, 0, \
		        DT_RANK(0));                                                                         \
	}

SAVE_FAILURE(set_up_storage_writer)
SAVE_FAILURE(prepare_local_plan)
SAVE_FAILURE(prepare_global_plan)
SAVE_FAILURE(write_data)
SAVE_FAILURE(write_data_async)
SAVE_FAILURE(finish)

#define LOAD_FAILURE(stage)                                                                                  \
	Test(load_failure, stage, .timeout = DT_TIMEOUT)                                                     \
	{                                                                                                    \
		load_matrix(#stage);                                                                         \
	}                                                                                                    \
	Test(load_failure_no_dist, stage, .timeout = DT_TIMEOUT)                                             \
	{                                                                                                    \
		dt_layout *l = failure_layout(0);                                                            \
		dt_outcome o;                                                                                \
		dt_save(l, 0, "mem://fload-nodist-" #stage, NULL, SEED_A, &o);                               \
		dt_assert_ok(&o, "the checkpoint to load");                                                  \
		dt_outcome_clear(&o);                                                                        \
		dt_layout_free(l);                                                                           \
		load_failure_case(                                                                           \
		        find_stage(load_stages, sizeof(load_stages) / sizeof(load_stages[0]), #stage), 0, 0, \
		        DT_RANK(0), "fload-nodist-" #stage);                                                 \
	}

LOAD_FAILURE(read_metadata)
LOAD_FAILURE(set_up_storage_reader)
LOAD_FAILURE(prepare_local_plan)
LOAD_FAILURE(prepare_global_plan)
LOAD_FAILURE(read_data)
LOAD_FAILURE(read_data_async)

/* The faulty wrapper with no fault configured is transparent. */
Test(checkpoint, faulty_without_faults_is_transparent, .timeout = DT_TIMEOUT)
{
	dt_layout *l = failure_layout(NRANKS);
	dt_outcome o;
	dt_save(l, NRANKS, "faulty+mem://transparent", NULL, SEED_A, &o);
	dt_assert_ok(&o, "save through faulty+mem:// without faults");
	dt_outcome_clear(&o);
	dt_load(l, NRANKS, "mem://transparent", NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of it through mem://");
	dt_outcome_clear(&o);
	dt_load(l, NRANKS, "faulty+mem://transparent", NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of it through faulty+mem://");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

/* Several stages failing at once: the error names every failing rank once,
 * with the stage where it first failed. */
Test(checkpoint, failures_on_different_ranks_at_one_step, .timeout = DT_TIMEOUT)
{
	dt_layout *l = failure_layout(NRANKS);
	dt_outcome o;
	dt_expect e = {0};
	char *t;

	dt_save(l, NRANKS, "mem://multi", NULL, SEED_A, &o);
	dt_assert_ok(&o, "the first save");
	dt_outcome_clear(&o);
	dt_save(l, NRANKS, "faulty+mem://multi?fail.set_up_storage_writer=1&fail.prepare_local_plan=2", NULL,
	        SEED_B, &o);
	e.status = DCP_EINJECTED;
	e.ranks = DT_RANK(1) | DT_RANK(2);
	e.step = "plan";
	e.entry_code = DCP_EINJECTED;
	dt_assert_failed(&o, &e, "save failing set-up on rank 1 and the local plan on rank 2");
	cr_assert(strstr(dcp_error_stage(o.err[0], 0), "set_up_storage_writer") != NULL,
	          "rank 1's stage is '%s'", dcp_error_stage(o.err[0], 0));
	cr_assert(strstr(dcp_error_stage(o.err[0], 1), "prepare_local_plan") != NULL,
	          "rank 2's stage is '%s'", dcp_error_stage(o.err[0], 1));
	/* The formatted error is one "rank R: STAGE: message" line per rank. */
	t = dt_error_text(o.err[0]);
	cr_assert(strncmp(t, "rank 1: ", 8) == 0, "formatted error:\n%s", t);
	cr_assert(strstr(t, "\nrank 2: ") != NULL, "formatted error:\n%s", t);
	free(t);
	dt_outcome_clear(&o);
	dt_load(l, NRANKS, "mem://multi", NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of the previous checkpoint");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

/* ------------------------------------------------------------------------ */
/* Custom planners (dcp/sys/planner.h)                                      */
/* ------------------------------------------------------------------------ */
/*
 * A planner that wraps every default slot, counts the calls, and fails the
 * slot named in fail_slot on the rank fail_rank (save: create_local_plan
 * knows its rank; load: a rank is recognised by holding the key fail_key).
 * ctx is shared by all ranks: counters are atomic.
 */
typedef struct counting_planner {
	atomic_uint save_local, save_global, save_finish, save_resolve;
	atomic_uint load_local, load_global, load_bytes, load_resolve, load_commit;
	const char *fail_slot; /* NULL: never fail */
	int fail_rank;
	const char *fail_key;
} counting_planner;

static int cp_save_local(void *ctx, const dcp_state *state, int rank, dcp_save_plan *out, dcp_msg *msg)
{
	counting_planner *p = ctx;
	atomic_fetch_add(&p->save_local, 1);
	if (p->fail_slot && strcmp(p->fail_slot, "create_local_plan") == 0 && rank == p->fail_rank) {
		dcp_msgf(msg, "custom planner refuses to plan rank %d", rank);
		return DCP_EPLAN;
	}
	return dcp_default_save_create_local_plan(NULL, state, rank, out, msg);
}

static int cp_save_global(void *ctx, dcp_save_plan *plans, int nranks, const dcp_save_options *opts,
                          dcp_metadata *md, dcp_msg *msg)
{
	counting_planner *p = ctx;
	atomic_fetch_add(&p->save_global, 1);
	if (p->fail_slot && strcmp(p->fail_slot, "create_global_plan") == 0) {
		dcp_msgf(msg, "custom planner refuses the global plan of %d ranks", nranks);
		return DCP_EPLAN;
	}
	return dcp_default_save_create_global_plan(NULL, plans, nranks, opts, md, msg);
}

static int cp_save_finish(void *ctx, dcp_save_plan *plan, dcp_msg *msg)
{
	atomic_fetch_add(&((counting_planner *)ctx)->save_finish, 1);
	return dcp_default_save_finish_plan(NULL, plan, msg);
}

static int cp_save_resolve(void *ctx, const dcp_state *state, const dcp_write_item *item, const void **data,
                           uint64_t *len, dcp_msg *msg)
{
	atomic_fetch_add(&((counting_planner *)ctx)->save_resolve, 1);
	return dcp_default_save_resolve_data(NULL, state, item, data, len, msg);
}

static int cp_load_local(void *ctx, const dcp_state *state, const dcp_metadata *md,
                         const dcp_load_options *opts, dcp_load_plan *out, dcp_msg *msg)
{
	atomic_fetch_add(&((counting_planner *)ctx)->load_local, 1);
	return dcp_default_load_create_local_plan(NULL, state, md, opts, out, msg);
}

static int cp_load_global(void *ctx, dcp_load_plan *plans, int nranks, dcp_msg *msg)
{
	atomic_fetch_add(&((counting_planner *)ctx)->load_global, 1);
	return dcp_default_load_create_global_plan(NULL, plans, nranks, msg);
}

static int cp_load_bytes(void *ctx, dcp_state *state, const dcp_read_item *item, const void *data,
                         uint64_t len, dcp_msg *msg)
{
	counting_planner *p = ctx;
	const dcp_state_entry *e = dcp_state_entry_at(state, item->entry);
	atomic_fetch_add(&p->load_bytes, 1);
	if (p->fail_slot && strcmp(p->fail_slot, "load_bytes") == 0 && e != NULL && p->fail_key != NULL &&
	    strcmp(e->key, p->fail_key) == 0) {
		dcp_msgf(msg, "custom planner refuses bytes item '%s'", e->key);
		return DCP_EMISMATCH;
	}
	return dcp_default_load_load_bytes(NULL, state, item, data, len, msg);
}

static int cp_load_resolve(void *ctx, dcp_state *state, const dcp_read_item *item, void **dst,
                           uint64_t dst_offsets[DCP_MAX_DIMS], uint64_t dst_sizes[DCP_MAX_DIMS], dcp_msg *msg)
{
	atomic_fetch_add(&((counting_planner *)ctx)->load_resolve, 1);
	return dcp_default_load_resolve_tensor(NULL, state, item, dst, dst_offsets, dst_sizes, msg);
}

static int cp_load_commit(void *ctx, dcp_state *state, const dcp_read_item *item, dcp_msg *msg)
{
	atomic_fetch_add(&((counting_planner *)ctx)->load_commit, 1);
	return dcp_default_load_commit_tensor(NULL, state, item, msg);
}

static void counting_planners(counting_planner *p, dcp_save_planner *sp, dcp_load_planner *lp)
{
	memset(sp, 0, sizeof(*sp));
	memset(lp, 0, sizeof(*lp));
	sp->version = DCP_SAVE_PLANNER_VERSION;
	sp->ctx = p;
	sp->create_local_plan = cp_save_local;
	sp->create_global_plan = cp_save_global;
	sp->finish_plan = cp_save_finish;
	sp->resolve_data = cp_save_resolve;
	lp->version = DCP_LOAD_PLANNER_VERSION;
	lp->ctx = p;
	lp->create_local_plan = cp_load_local;
	lp->create_global_plan = cp_load_global;
	lp->load_bytes = cp_load_bytes;
	lp->resolve_tensor = cp_load_resolve;
	lp->commit_tensor = cp_load_commit;
}

/* 3 ranks: a sharded tensor, a replicated one, a bytes item on every rank and
 * one held by rank 1 only. */
static dt_layout *planner_layout(int n)
{
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {9, 4}, r[] = {6};
	dt_split(dt_add_sharded(l, "p.sharded", DCP_F32, 2, s), 0, (size_t)n, NULL);
	dt_add_replicated(l, "p.replicated", DCP_I32, 1, r, DT_RANKS(n));
	dt_add_bytes(l, "p.bytes", 10, DT_RANKS(n));
	dt_add_bytes(l, "p.marker.1", 3, DT_RANK(1));
	return l;
}

Test(planner, wrapping_the_defaults, .timeout = DT_TIMEOUT)
{
	counting_planner p;
	dcp_save_planner sp;
	dcp_load_planner lp;
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	dt_layout *l3 = planner_layout(3), *l2 = planner_layout(2);
	dt_outcome o;

	memset(&p, 0, sizeof(p));
	counting_planners(&p, &sp, &lp);
	so.planner = &sp;
	so.coordinator = 2;
	lo.planner = &lp;
	lo.coordinator = 1;
	dt_save(l3, 3, "mem://planner-wrap", &so, SEED_A, &o);
	dt_assert_ok(&o, "save with a planner wrapping the defaults");
	dt_outcome_clear(&o);
	cr_assert_eq(atomic_load(&p.save_local), 3, "save create_local_plan called %u times",
	             atomic_load(&p.save_local));
	cr_assert_eq(atomic_load(&p.save_global), 1, "save create_global_plan called %u times",
	             atomic_load(&p.save_global));
	cr_assert_eq(atomic_load(&p.save_finish), 3, "finish_plan called %u times",
	             atomic_load(&p.save_finish));
	/* 3 shards, the replicated tensor once, p.bytes once, the marker. */
	cr_assert_eq(atomic_load(&p.save_resolve), 6,
	             "resolve_data called %u times, expected once per written item",
	             atomic_load(&p.save_resolve));

	dt_load(l2, 2, "mem://planner-wrap", &lo, SEED_A, &o);
	dt_assert_ok(&o, "load with a planner wrapping the defaults, 3 -> 2 ranks");
	dt_outcome_clear(&o);
	cr_assert_eq(atomic_load(&p.load_local), 2);
	cr_assert_eq(atomic_load(&p.load_global), 1);
	/* p.bytes on both ranks, the marker on rank 1. */
	cr_assert_eq(atomic_load(&p.load_bytes), 3, "load_bytes called %u times", atomic_load(&p.load_bytes));
	cr_assert_gt(atomic_load(&p.load_resolve), 0);
	cr_assert_eq(atomic_load(&p.load_commit), atomic_load(&p.load_resolve),
	             "resolve_tensor called %u times but commit_tensor %u times",
	             atomic_load(&p.load_resolve), atomic_load(&p.load_commit));
	dt_layout_free(l3);
	dt_layout_free(l2);
}

Test(planner, null_slots_use_the_defaults, .timeout = DT_TIMEOUT)
{
	dcp_save_planner sp;
	dcp_load_planner lp;
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	dt_layout *l3 = planner_layout(3), *l2 = planner_layout(2);
	dt_outcome o;
	memset(&sp, 0, sizeof(sp));
	memset(&lp, 0, sizeof(lp));
	sp.version = DCP_SAVE_PLANNER_VERSION;
	lp.version = DCP_LOAD_PLANNER_VERSION;
	so.planner = &sp;
	lo.planner = &lp;
	dt_save(l3, 3, "mem://planner-null", &so, SEED_A, &o);
	dt_assert_ok(&o, "save with a planner whose slots are all NULL");
	dt_outcome_clear(&o);
	dt_load(l2, 2, "mem://planner-null", &lo, SEED_A, &o);
	dt_assert_ok(&o, "load with a planner whose slots are all NULL");
	dt_outcome_clear(&o);
	dt_layout_free(l3);
	dt_layout_free(l2);
}

Test(planner, local_plan_failure_names_its_rank, .timeout = DT_TIMEOUT)
{
	counting_planner p;
	dcp_save_planner sp;
	dcp_load_planner lp;
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dt_layout *l = planner_layout(3);
	dt_outcome o;
	dt_expect e = {0};

	dt_save(l, 3, "mem://planner-local", NULL, SEED_A, &o);
	dt_assert_ok(&o, "the first save");
	dt_outcome_clear(&o);

	memset(&p, 0, sizeof(p));
	counting_planners(&p, &sp, &lp);
	p.fail_slot = "create_local_plan";
	p.fail_rank = 2;
	so.planner = &sp;
	dt_save(l, 3, "mem://planner-local", &so, SEED_B, &o);
	e.status = DCP_EPLAN;
	e.ranks = DT_RANK(2);
	e.step = "plan";
	e.stage = "create_local_plan";
	e.entry_code = DCP_EPLAN;
	e.mention = "custom planner refuses to plan rank 2";
	dt_assert_failed(&o, &e, "save whose planner fails on rank 2");
	dt_outcome_clear(&o);
	cr_assert_eq(atomic_load(&p.save_global), 0, "the global plan ran although a local plan failed");
	dt_load(l, 3, "mem://planner-local", NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of the previous checkpoint");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

Test(planner, global_plan_failure_names_the_coordinator, .timeout = DT_TIMEOUT)
{
	counting_planner p;
	dcp_save_planner sp;
	dcp_load_planner lp;
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dt_layout *l = planner_layout(3);
	dt_outcome o;
	dt_expect e = {0};

	memset(&p, 0, sizeof(p));
	counting_planners(&p, &sp, &lp);
	p.fail_slot = "create_global_plan";
	so.planner = &sp;
	so.coordinator = 1;
	dt_save(l, 3, "mem://planner-global", &so, SEED_B, &o);
	e.status = DCP_EPLAN;
	e.ranks = DT_RANK(1);
	e.step = "plan";
	e.stage = "create_global_plan";
	e.mention = "custom planner refuses the global plan of 3 ranks";
	dt_assert_failed(&o, &e, "save whose global plan fails on coordinator 1");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

Test(planner, load_bytes_failure_names_its_rank, .timeout = DT_TIMEOUT)
{
	counting_planner p;
	dcp_save_planner sp;
	dcp_load_planner lp;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	dt_layout *l = planner_layout(3);
	dt_outcome o;
	dt_expect e = {0};

	dt_save(l, 3, "mem://planner-bytes", NULL, SEED_A, &o);
	dt_assert_ok(&o, "the save");
	dt_outcome_clear(&o);
	memset(&p, 0, sizeof(p));
	counting_planners(&p, &sp, &lp);
	p.fail_slot = "load_bytes";
	p.fail_key = "p.marker.1";
	lo.planner = &lp;
	dt_load(l, 3, "mem://planner-bytes", &lo, SEED_A, &o);
	e.status = DCP_EMISMATCH;
	e.ranks = DT_RANK(1);
	e.step = "read";
	e.entry_code = DCP_EMISMATCH;
	e.mention = "custom planner refuses bytes item 'p.marker.1'";
	dt_assert_failed(&o, &e, "load whose load_bytes fails on rank 1");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

/* The versioning rule of dcp/sys/storage.h for every table: a version the
 * core does not know is refused, never guessed at. */
Test(planner, newer_planner_version_is_refused, .timeout = DT_TIMEOUT)
{
	counting_planner p;
	dcp_save_planner sp;
	dcp_load_planner lp;
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	dt_layout *l = planner_layout(2);
	dt_outcome o;
	dt_expect e = {0};
	memset(&p, 0, sizeof(p));
	counting_planners(&p, &sp, &lp);
	sp.version = DCP_SAVE_PLANNER_VERSION + 1;
	lp.version = DCP_LOAD_PLANNER_VERSION + 1;
	so.planner = &sp;
	lo.planner = &lp;
	e.any_ranks = 1;
	dt_save(l, 2, "mem://planner-newer", &so, SEED_A, &o);
	dt_assert_failed(&o, &e, "save with a save planner of version DCP_SAVE_PLANNER_VERSION + 1");
	dt_outcome_clear(&o);
	dt_save(l, 2, "mem://planner-newer", NULL, SEED_A, &o);
	dt_assert_ok(&o, "save with the default planner");
	dt_outcome_clear(&o);
	dt_load(l, 2, "mem://planner-newer", &lo, SEED_A, &o);
	dt_assert_failed(&o, &e, "load with a load planner of version DCP_LOAD_PLANNER_VERSION + 1");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

/* A planner whose version was left 0 (forgotten) but has slots set must not
 * be silently replaced by the defaults. */
Test(planner, version_zero_planner_is_refused, .timeout = DT_TIMEOUT)
{
	counting_planner p;
	dcp_save_planner sp;
	dcp_load_planner lp;
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	dt_layout *l = planner_layout(2);
	dt_outcome o;
	dt_expect e = {0};
	memset(&p, 0, sizeof(p));
	counting_planners(&p, &sp, &lp);
	sp.version = 0;
	lp.version = 0;
	so.planner = &sp;
	lo.planner = &lp;
	e.any_ranks = 1;
	dt_save(l, 2, "mem://planner-zero", &so, SEED_A, &o);
	dt_assert_failed(&o, &e, "save with a save planner of version 0 (its slots would be ignored)");
	dt_outcome_clear(&o);
	dt_save(l, 2, "mem://planner-zero", NULL, SEED_A, &o);
	dt_assert_ok(&o, "save with the default planner");
	dt_outcome_clear(&o);
	dt_load(l, 2, "mem://planner-zero", &lo, SEED_A, &o);
	dt_assert_failed(&o, &e, "load with a load planner of version 0 (its slots would be ignored)");
	dt_outcome_clear(&o);
	cr_assert_eq(atomic_load(&p.save_local) + atomic_load(&p.load_local), 0);
	dt_layout_free(l);
}

/* Bad options are refused on every rank before anything is written. */
Test(checkpoint, bad_options_are_refused, .timeout = DT_TIMEOUT)
{
	dt_layout *l = failure_layout(NRANKS);
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	dt_outcome o;

	so.coordinator = NRANKS;
	dt_save(l, NRANKS, "mem://bad-options", &so, SEED_A, &o);
	for (int r = 0; r < NRANKS; r++)
		cr_assert_eq(o.status[r], DCP_EINVAL, "coordinator %d of %d ranks: rank %d returned %d (%s)",
		             NRANKS, NRANKS, r, o.status[r], dcp_strerror(o.status[r]));
	dt_outcome_clear(&o);
	so.coordinator = 0;
	so.version = 0;
	dt_save(l, NRANKS, "mem://bad-options", &so, SEED_A, &o);
	for (int r = 0; r < NRANKS; r++)
		cr_assert_eq(o.status[r], DCP_EINVAL, "save options version 0: rank %d returned %d (%s)", r,
		             o.status[r], dcp_strerror(o.status[r]));
	dt_outcome_clear(&o);
	cr_assert_eq(dcp_read_metadata("mem://bad-options", NULL, &md, &err), DCP_ENOTFOUND,
	             "a refused save left a checkpoint behind");
	dcp_error_free(err);

	dt_save(l, NRANKS, "mem://bad-options", NULL, SEED_A, &o);
	dt_assert_ok(&o, "save with default options");
	dt_outcome_clear(&o);
	lo.coordinator = -1;
	dt_load(l, NRANKS, "mem://bad-options", &lo, SEED_A, &o);
	for (int r = 0; r < NRANKS; r++)
		cr_assert_eq(o.status[r], DCP_EINVAL, "load coordinator -1: rank %d returned %d (%s)", r,
		             o.status[r], dcp_strerror(o.status[r]));
	dt_outcome_clear(&o);
	dt_layout_free(l);
}
