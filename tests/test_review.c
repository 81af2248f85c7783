/*
 * Regression tests for defects found in a review of the core (registry,
 * protocol, planners, outcome exchange). Each test failed before its fix.
 * Public API and dcp/sys headers only.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcp/sys/comm.h"
#include "dcp/sys/storage.h"
#include "dcptest.h"

/* One test allocates what a corrupt metadata document asks for and expects
 * the allocation to fail (NULL), not the sanitizer to stop the process. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* ------------------------------------------------------------------------ */
/* A crafted plugin (scheme "craft"): its reader hands back the metadata     */
/* document in craft_json; its writer's set_up returns craft_setup_rc.       */
/* ------------------------------------------------------------------------ */
static const char *craft_json;
static int craft_setup_rc = DCP_OK;
static uint64_t craft_bytes_requested;

typedef struct craft_plugin {
	dcp_plugin base;
	const dcp_host *host;
} craft_plugin;

typedef struct craft_writer {
	dcp_storage_writer base;
	craft_plugin *p;
} craft_writer;

typedef struct craft_reader {
	dcp_storage_reader base;
	craft_plugin *p;
} craft_reader;

static const char *const craft_schemes[] = {"craft", NULL};

static int cw_set_up(dcp_storage_writer *w, int is_coordinator, int rank, int world_size, dcp_msg *msg)
{
	(void)w;
	(void)is_coordinator;
	(void)rank;
	(void)world_size;
	if (craft_setup_rc != DCP_OK)
		dcp_msgf(msg, "craft: set_up_storage_writer refused (returned %d)", craft_setup_rc);
	return craft_setup_rc;
}

static int cw_write_data(dcp_storage_writer *w, const dcp_save_plan *plan, const dcp_write_req *reqs,
                         size_t n, dcp_future *fut, dcp_msg *msg)
{
	craft_writer *cw = (craft_writer *)w;
	(void)plan;
	(void)msg;
	dcp_write_result *res = calloc(n ? n : 1, sizeof(*res));
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		res[i].index = reqs[i].index;
		res[i].path = "data";
		res[i].offset = off;
		res[i].length = reqs[i].len;
		off += reqs[i].len;
	}
	cw->p->host->write_future_complete(fut, DCP_OK, res, n, NULL);
	free(res);
	return DCP_OK;
}

static int cw_finish(dcp_storage_writer *w, const dcp_metadata *md, dcp_msg *msg)
{
	(void)w;
	(void)md;
	(void)msg;
	return DCP_OK;
}

static void cw_close(dcp_storage_writer *w)
{
	free(w);
}

static const dcp_writer_ops craft_writer_ops = {
        DCP_WRITER_OPS_VERSION, NULL, cw_set_up, NULL, NULL, cw_write_data, cw_finish, NULL, NULL, cw_close,
};

static int cr_read_metadata(dcp_storage_reader *r, dcp_metadata **out, dcp_msg *msg)
{
	craft_reader *cr = (craft_reader *)r;
	if (craft_json == NULL) {
		dcp_msgf(msg, "craft: no checkpoint");
		return DCP_ENOTFOUND;
	}
	return cr->p->host->metadata_decode(craft_json, strlen(craft_json), out, msg);
}

static int cr_set_up(dcp_storage_reader *r, const dcp_metadata *md, int is_coordinator, int rank,
                     int world_size, dcp_msg *msg)
{
	(void)r;
	(void)md;
	(void)is_coordinator;
	(void)rank;
	(void)world_size;
	(void)msg;
	return DCP_OK;
}

static int cr_read_data(dcp_storage_reader *r, const dcp_load_plan *plan, const dcp_read_req *reqs, size_t n,
                        dcp_future *fut, dcp_msg *msg)
{
	craft_reader *cr = (craft_reader *)r;
	(void)plan;
	(void)msg;
	for (size_t i = 0; i < n; i++)
		craft_bytes_requested += reqs[i].length;
	cr->p->host->read_future_complete(fut, DCP_OK, NULL);
	return DCP_OK;
}

static void cr_close(dcp_storage_reader *r)
{
	free(r);
}

static const dcp_reader_ops craft_reader_ops = {
        DCP_READER_OPS_VERSION, NULL, cr_read_metadata, cr_set_up, NULL, NULL, cr_read_data, cr_close,
};

static void craft_destroy(dcp_plugin *self)
{
	free(self);
}

static int craft_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	(void)self;
	(void)url;
	(void)for_write;
	(void)msg;
	return DCP_OK;
}

static int craft_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                             dcp_storage_writer **out, dcp_msg *msg)
{
	(void)url;
	(void)opts;
	(void)msg;
	craft_writer *w = calloc(1, sizeof(*w));
	w->base.ops = &craft_writer_ops;
	w->p = (craft_plugin *)self;
	*out = &w->base;
	return DCP_OK;
}

/* 1: reader_open fails after having set *out (to a reader it then freed). */
static int craft_open_fails;

static int craft_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                             dcp_storage_reader **out, dcp_msg *msg)
{
	(void)url;
	(void)opts;
	craft_reader *r = calloc(1, sizeof(*r));
	r->base.ops = &craft_reader_ops;
	r->p = (craft_plugin *)self;
	*out = &r->base;
	if (craft_open_fails) {
		free(r);
		dcp_msgf(msg, "craft: cannot open the checkpoint");
		return DCP_EIO;
	}
	return DCP_OK;
}

static int craft_entry(const dcp_host *host, dcp_plugin **out, dcp_msg *msg)
{
	(void)msg;
	craft_plugin *p = calloc(1, sizeof(*p));
	p->host = host;
	p->base.version = DCP_PLUGIN_ABI_VERSION;
	p->base.name = "craft";
	p->base.schemes = craft_schemes;
	p->base.destroy = craft_destroy;
	p->base.validate_checkpoint_id = craft_validate;
	p->base.writer_open = craft_writer_open;
	p->base.reader_open = craft_reader_open;
	*out = &p->base;
	return DCP_OK;
}

static dcp_registry *craft_registry(void)
{
	dcp_registry *reg = NULL;
	dcp_error *err = NULL;
	cr_assert_eq(dcp_registry_new(&reg, &err), DCP_OK, "dcp_registry_new: %s", dt_error_text(err));
	cr_assert_eq(dcp_registry_add(reg, craft_entry, &err), DCP_OK, "dcp_registry_add(craft): %s",
	             dt_error_text(err));
	return reg;
}

/* ------------------------------------------------------------------------ */
/* A plugin slot that returns a positive value (an errno, say) must not make */
/* dcp_save "succeed" with a positive status: statuses are 0 or negative.    */
/* ------------------------------------------------------------------------ */
Test(review, positive_plugin_status_is_a_negative_failure, .timeout = 30)
{
	dcp_registry *reg = craft_registry();
	dcp_state *st = dcp_state_new();
	unsigned char blob[4] = {1, 2, 3, 4};
	cr_assert_eq(dcp_state_add_bytes(st, "blob", blob, sizeof(blob)), DCP_OK);
	craft_setup_rc = 1; /* EPERM, returned by mistake instead of a DCP_E* code */
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	so.registry = reg;
	dcp_error *err = NULL;
	int rc = dcp_save(st, "craft://x", NULL, &so, &err);
	cr_expect(rc < 0, "dcp_save returned %d (%s): a failure must be a negative code", rc,
	          dcp_strerror(rc));
	cr_expect_not_null(err, "a failed save gives an error object");
	if (err != NULL) {
		cr_expect(dcp_error_code(err) < 0, "error code %d", dcp_error_code(err));
		cr_expect_str_eq(dcp_error_stage(err, 0), "set_up_storage_writer");
		cr_expect(dt_error_mentions(err, "craft: set_up_storage_writer refused"), "%s",
		          dt_error_text(err));
	}
	dcp_error_free(err);
	dcp_state_free(st);
	dcp_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* A metadata document that passes validation but whose sizes make the      */
/* block-aligned verification range overflow: the load must not "succeed"   */
/* with an empty, unverified bytes item.                                     */
/* ------------------------------------------------------------------------ */
Test(review, verify_range_rounding_does_not_overflow, .timeout = 30)
{
	/* block 2^63; the item is 2^63 + 2^62 bytes: two checksum blocks. */
	craft_json =
	        "{\"format\":{\"major\":1,\"minor\":0},\"save_id\":\"s\",\"checksum\":{\"algo\":\"xxh3-64\","
	        "\"block\":\"9223372036854775808\"},\"items\":["
	        "{\"key\":\"blob\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"d\",\"offset\":0,"
	        "\"length\":\"13835058055282163712\",\"sums\":[\"0123456789abcdef\",\"0123456789abcdef\"]}]}"
	        "]}";
	dcp_registry *reg = craft_registry();
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata("craft://x", reg, &md, &err);
	cr_assert_eq(rc, DCP_OK, "the crafted metadata is accepted by the decoder: %s", dt_error_text(err));
	dcp_metadata_free(md);

	dcp_state *st = dcp_state_new();
	cr_assert_eq(dcp_state_add_bytes(st, "blob", NULL, 0), DCP_OK);
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	lo.registry = reg;
	rc = dcp_load(st, "craft://x", NULL, &lo, &err);
	const void *data = NULL;
	size_t len = 0;
	dcp_state_get_bytes(st, "blob", &data, &len);
	cr_expect_neq(
	        rc, DCP_OK,
	        "a load of a %s-byte item succeeded with %zu bytes (%llu bytes read, checksums unchecked)",
	        "13835058055282163712", len, (unsigned long long)craft_bytes_requested);
	cr_expect_eq(dcp_state_was_loaded(st, "blob"), 0);
	dcp_error_free(err);
	dcp_state_free(st);
	dcp_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* A rank whose own input is bad (state NULL) must still take part in the   */
/* collectives, so that the other ranks get the error instead of hanging.   */
/* ------------------------------------------------------------------------ */
typedef struct null_state_arg {
	dcp_registry *reg;
	int load;
	dcp_error *err[2];
} null_state_arg;

static int null_state_rank(dcp_comm *comm, int rank, void *arg)
{
	null_state_arg *a = arg;
	dcp_state *st = dcp_state_new();
	unsigned char blob[4] = {1, 2, 3, 4};
	dcp_state_add_bytes(st, "blob", blob, sizeof(blob));
	int rc;
	if (a->load) {
		dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
		lo.registry = a->reg;
		rc = dcp_load(rank == 1 ? NULL : st, "noop://x", comm, &lo, &a->err[rank]);
	} else {
		dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
		so.registry = a->reg;
		rc = dcp_save(rank == 1 ? NULL : st, "noop://x", comm, &so, &a->err[rank]);
	}
	dcp_state_free(st);
	return rc;
}

static void check_null_state(int load)
{
	null_state_arg a = {0};
	dcp_error *err = NULL;
	cr_assert_eq(dcp_registry_new(&a.reg, &err), DCP_OK);
	cr_assert_eq(dcp_registry_add(a.reg, dt_noop_plugin_entry, &err), DCP_OK);
	if (load) { /* a checkpoint to load from */
		null_state_arg s = {a.reg, 0, {NULL, NULL}};
		dcp_state *st = dcp_state_new();
		unsigned char blob[4] = {1, 2, 3, 4};
		dcp_state_add_bytes(st, "blob", blob, sizeof(blob));
		dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
		so.registry = a.reg;
		cr_assert_eq(dcp_save(st, "noop://x", NULL, &so, &err), DCP_OK, "%s", dt_error_text(err));
		dcp_state_free(st);
		(void)s;
	}
	a.load = load;
	int results[2] = {0, 0};
	cr_assert_eq(dcp_run_ranks(2, null_state_rank, &a, results), DCP_OK);
	for (int r = 0; r < 2; r++) {
		cr_expect_eq(results[r], DCP_EINVAL, "rank %d returned %d (%s)", r, results[r],
		             dcp_strerror(results[r]));
		cr_expect_not_null(a.err[r], "rank %d has no error object", r);
		if (a.err[r] != NULL) {
			cr_expect_eq(dcp_error_count(a.err[r]), 1);
			cr_expect_eq(dcp_error_rank(a.err[r], 0), 1, "the error names rank 1 (%s)",
			             dt_error_text(a.err[r]));
			cr_expect(dt_error_mentions(a.err[r], "state is NULL"), "%s",
			          dt_error_text(a.err[r]));
		}
		dcp_error_free(a.err[r]);
	}
	dcp_registry_free(a.reg);
}

Test(review, save_with_null_state_on_one_rank_does_not_hang, .timeout = 30)
{
	check_null_state(0);
}

Test(review, load_with_null_state_on_one_rank_does_not_hang, .timeout = 30)
{
	check_null_state(1);
}

/* ------------------------------------------------------------------------ */
/* Non-collective calls that fail give an error object (dcp.h).             */
/* ------------------------------------------------------------------------ */
Test(review, null_out_argument_gives_an_error_object)
{
	dcp_registry *reg = craft_registry();
	dcp_error *err = NULL;
	int rc = dcp_registry_find(reg, "craft://x", NULL, &err);
	cr_expect_eq(rc, DCP_EINVAL);
	cr_expect_not_null(err, "dcp_registry_find(out = NULL) failed without an error object");
	if (err != NULL) {
		cr_expect_eq(dcp_error_code(err), DCP_EINVAL);
		cr_expect(dt_error_mentions(err, "out"), "%s", dt_error_text(err));
	}
	dcp_error_free(err);
	err = NULL;
	rc = dcp_read_metadata("craft://x", reg, NULL, &err);
	cr_expect_eq(rc, DCP_EINVAL);
	cr_expect_not_null(err, "dcp_read_metadata(out = NULL) failed without an error object");
	if (err != NULL)
		cr_expect_eq(dcp_error_code(err), DCP_EINVAL);
	dcp_error_free(err);
	dcp_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* A custom global load plan whose box leaves the stored chunk and the      */
/* destination chunk is refused (DCP_EPLAN), not copied out of bounds.      */
/* ------------------------------------------------------------------------ */
static int widen_box_global(void *ctx, dcp_load_plan *plans, int nranks, dcp_msg *msg)
{
	(void)ctx;
	(void)msg;
	for (int r = 0; r < nranks; r++)
		for (size_t i = 0; i < plans[r].nitems; i++)
			plans[r].items[i].box_sizes[0] += 1000;
	return DCP_OK;
}

Test(review, load_refuses_a_plan_box_outside_its_chunks, .timeout = 30)
{
	dcp_registry *reg = NULL;
	dcp_error *err = NULL;
	cr_assert_eq(dcp_registry_new(&reg, &err), DCP_OK);
	cr_assert_eq(dcp_registry_add(reg, dt_noop_plugin_entry, &err), DCP_OK);
	float src[8] = {0}, dst[8] = {0};
	uint64_t shape[1] = {8};
	dcp_state *st = dcp_state_new();
	cr_assert_eq(dcp_state_add_tensor(st, "w", DCP_F32, 1, shape, src), DCP_OK);
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	so.registry = reg;
	cr_assert_eq(dcp_save(st, "noop://x", NULL, &so, &err), DCP_OK, "%s", dt_error_text(err));
	dcp_state_free(st);

	st = dcp_state_new();
	uint64_t off[1] = {0}, sz[1] = {4};
	cr_assert_eq(dcp_state_add_shard(st, "w", DCP_F32, 1, shape, off, sz, dst), DCP_OK);
	dcp_load_planner lp = {DCP_LOAD_PLANNER_VERSION, NULL, NULL, widen_box_global, NULL, NULL, NULL};
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	lo.registry = reg;
	lo.verify = 0; /* the noop reader never fills buffers */
	lo.planner = &lp;
	int rc = dcp_load(st, "noop://x", NULL, &lo, &err);
	cr_expect_eq(rc, DCP_EPLAN,
	             "a load with a box of 1004 elements into a 4-element chunk returned %d (%s)", rc,
	             dcp_strerror(rc));
	if (err != NULL)
		cr_expect(dt_error_mentions(err, "'w'"), "%s", dt_error_text(err));
	dcp_error_free(err);
	dcp_state_free(st);
	dcp_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* A reader_open that fails owns nothing afterwards: dcp_read_metadata must  */
/* not close whatever *out was left pointing at (dcp_load does not).        */
/* ------------------------------------------------------------------------ */
Test(review, read_metadata_does_not_close_a_reader_that_failed_to_open, .timeout = 30)
{
	dcp_registry *reg = craft_registry();
	craft_open_fails = 1;
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata("craft://x", reg, &md, &err);
	cr_expect_eq(rc, DCP_EIO, "dcp_read_metadata returned %d (%s)", rc, dcp_strerror(rc));
	cr_expect_null(md);
	cr_expect(err != NULL && dt_error_mentions(err, "craft: cannot open"), "%s", dt_error_text(err));
	cr_expect(err != NULL && strcmp(dcp_error_stage(err, 0), "reader_open") == 0);
	dcp_error_free(err);
	dcp_registry_free(reg);
}
