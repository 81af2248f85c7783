/*
 * The core protocol, after PyTorch's test/distributed/checkpoint/test_checkpoint.py:
 * the default metadata of a small mixed state, a tensor held by one rank only,
 * a writer and reader that do nothing, and bad options refused on every rank.
 * The failure matrix is in test_checkpoint_failures.c, custom planners in
 * test_checkpoint_planner.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcptest.h"

#define NRANKS 4
#define SEED_A UINT64_C(0xa11ce)

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
	/* The coordinator reads the metadata once for every rank. */
	cr_assert_eq(c.read_metadata - before.read_metadata, 1,
	             "read_metadata called %u times, expected once (coordinator)",
	             c.read_metadata - before.read_metadata);
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
