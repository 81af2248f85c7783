/*
 * The core protocol's failure matrix, after TestDistributedFailure in
 * PyTorch's test/distributed/checkpoint/test_checkpoint.py: every storage
 * stage failing on chosen ranks, with every coordinator, and the single-rank
 * "no-dist" variants, through the faulty+mem:// plugin.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcptest.h"

#define NRANKS 4
#define SEED_A UINT64_C(0xa11ce)
#define SEED_B UINT64_C(0xb0b)

/* TestDistributedFailure's state: sharded 20x20 by rows over every rank, a
 * replicated 10x10 and a bytes item on every rank. n == 0: the no-dist
 * state (replicated and bytes only, one rank).
 * (The same state as in test_checkpoint_protocol.c.) */
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
        {"read_metadata", "read_metadata", "plan", 1},
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
