/*
 * A checkpoint replaced while it is being loaded: the coordinator reads the
 * metadata once and every rank loads from it, so the load gives the old
 * checkpoint whole or fails on every rank with one error; no rank ever gets
 * values of the new save.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "dcp/sys/planner.h"
#include "dcptest.h"

#define NRANKS 3
#define SEED_A 0xA11CEu
#define SEED_B 0xB0Bu

/* A load planner whose first caller saves SEED_B over the checkpoint being
 * loaded, before any rank plans; the others wait for that save. */
typedef struct replacer {
	const dt_layout *layout;
	const char *url;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, done, save_status;
} replacer;

static int replacing_local_plan(void *ctx, const dcp_state *state, const dcp_metadata *md,
                                const dcp_load_options *opts, dcp_load_plan *out, dcp_msg *msg)
{
	replacer *r = ctx;
	pthread_mutex_lock(&r->mu);
	int first = !r->started;
	r->started = 1;
	pthread_mutex_unlock(&r->mu);
	if (first) {
		/* Every rank holds the whole replicated layout: one rank saves it. */
		dt_rank_state *b = dt_rank_state_new(r->layout, 0, DT_FILL_VALUES, SEED_B);
		dcp_error *err = NULL;
		int rc = dcp_save(b->state, r->url, NULL, NULL, &err);
		dcp_error_free(err);
		dt_rank_state_free(b);
		pthread_mutex_lock(&r->mu);
		r->save_status = rc;
		r->done = 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	} else {
		pthread_mutex_lock(&r->mu);
		while (!r->done)
			pthread_cond_wait(&r->cv, &r->mu);
		pthread_mutex_unlock(&r->mu);
	}
	return dcp_default_load_create_local_plan(NULL, state, md, opts, out, msg);
}

static void replaced_during_load(const char *url)
{
	dt_layout *l = dt_layout_new();
	const uint64_t shape[2] = {64, 48};
	dt_add_replicated(l, "weights", DCP_F32, 2, shape, DT_RANKS(NRANKS));
	dt_add_bytes(l, "config", 100, DT_RANKS(NRANKS));
	dt_outcome o;
	dt_save(l, NRANKS, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "the checkpoint to load");
	dt_outcome_clear(&o);

	replacer r = {l, url, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, DCP_OK};
	dcp_load_planner planner = {DCP_LOAD_PLANNER_VERSION,      &r,
	                            replacing_local_plan,          dcp_default_load_create_global_plan,
	                            dcp_default_load_load_bytes,   dcp_default_load_resolve_tensor,
	                            dcp_default_load_commit_tensor};
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	lo.planner = &planner;
	/* Checked against SEED_A: a rank that loaded SEED_B's values fails its
	 * check. */
	dt_load(l, NRANKS, url, &lo, SEED_A, &o);
	cr_assert_eq(r.save_status, DCP_OK, "the replacing save failed: %d", r.save_status);
	if (o.status[0] == DCP_OK) {
		dt_assert_ok(&o, "a load whose checkpoint was replaced meanwhile");
	} else {
		dt_expect e = {0};
		e.any_ranks = 1;
		e.step = "read";
		e.mention = "if a save replaced the checkpoint during this load, load again";
		dt_assert_failed(&o, &e, "a load whose checkpoint was replaced meanwhile");
	}
	dt_outcome_clear(&o);

	/* The new checkpoint is whole. */
	dt_load(l, NRANKS, url, NULL, SEED_B, &o);
	dt_assert_ok(&o, "the replacing checkpoint");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

Test(load_replaced, mem, .timeout = DT_TIMEOUT)
{
	replaced_during_load("mem://load-replaced");
}

Test(load_replaced, file, .timeout = DT_TIMEOUT)
{
	char dir[512], url[DT_URL_MAX];
	dt_mkdtemp(dir, sizeof(dir), "dcp-load-replaced");
	dt_fmt(url, sizeof(url), "file://%s/ckpt", dir);
	replaced_during_load(url);
	dt_rmtree(dir);
}
