/*
 * The core protocol with custom planners (dcp/sys/planner.h): a planner that
 * wraps the defaults, one whose slots are NULL, failures in a planner's slots
 * naming the right rank, and planner tables of unknown versions refused.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcp/sys/planner.h"
#include "dcptest.h"

#define SEED_A UINT64_C(0xa11ce)
#define SEED_B UINT64_C(0xb0b)

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
