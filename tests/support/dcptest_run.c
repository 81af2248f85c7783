/*
 * Test support: running N thread-ranks with per-rank closures, and the
 * save and load of a layout on every rank. See dcptest.h for the contracts.
 */
#include "dcptest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcptest_priv.h"

/* ------------------------------------------------------------------------ */
/* Running ranks                                                            */
/* ------------------------------------------------------------------------ */
void dt_outcome_init(dt_outcome *o)
{
	memset(o, 0, sizeof(*o));
}

void dt_outcome_clear(dt_outcome *o)
{
	for (int r = 0; r < DT_MAX_RANKS; r++) {
		dcp_error_free(o->err[r]);
		dt_rank_state_free(o->rs[r]);
	}
	dt_outcome_init(o);
}

struct run_ctx {
	const dt_closure *closures;
	dt_outcome *out;
};

static int run_trampoline(dcp_comm *comm, int rank, void *arg)
{
	struct run_ctx *x = arg;
	if (rank < 0 || rank >= DT_MAX_RANKS)
		return DCP_EINVAL;
	if (dcp_comm_rank(comm) != rank) {
		x->out->bad[rank] = 1;
		dt_why_set(x->out->why[rank], DT_WHY_MAX,
		           "dcp_run_ranks passed rank %d but dcp_comm_rank says %d", rank,
		           dcp_comm_rank(comm));
	}
	return x->closures[rank].fn(comm, rank, x->closures[rank].arg, x->out);
}

int dt_run_closures(int n, const dt_closure *closures, dt_outcome *out)
{
	struct run_ctx x = {closures, out};
	int results[DT_MAX_RANKS];
	dt_outcome_init(out);
	if (n == 0) {
		dcp_comm *comm = dcp_comm_single_new();
		if (comm == NULL)
			return DCP_ENOMEM;
		out->n = 1;
		closures[0].fn(comm, 0, closures[0].arg, out);
		dcp_comm_free(comm);
		return DCP_OK;
	}
	if (n < 0 || n > DT_MAX_RANKS)
		return DCP_EINVAL;
	out->n = n;
	return dcp_run_ranks(n, run_trampoline, &x, results);
}

int dt_run(int n, dt_rank_fn fn, void *arg, dt_outcome *out)
{
	dt_closure c[DT_MAX_RANKS];
	for (int r = 0; r < DT_MAX_RANKS; r++) {
		c[r].fn = fn;
		c[r].arg = arg;
	}
	return dt_run_closures(n, c, out);
}

struct io_arg {
	const dt_layout *l;
	const char *url;
	const dcp_save_options *so;
	const dcp_load_options *lo;
	uint64_t seed;
};

static int save_rank(dcp_comm *comm, int rank, void *arg, dt_outcome *out)
{
	struct io_arg *a = arg;
	dt_rank_state *rs = dt_rank_state_new(a->l, rank, DT_FILL_VALUES, a->seed);
	out->rs[rank] = rs;
	if (rs->add_failed) {
		out->bad[rank] = 1;
		memcpy(out->why[rank], rs->why, sizeof(rs->why));
	}
	out->status[rank] = dcp_save(rs->state, a->url, comm, a->so, &out->err[rank]);
	return out->status[rank];
}

static int load_rank(dcp_comm *comm, int rank, void *arg, dt_outcome *out)
{
	struct io_arg *a = arg;
	dt_rank_state *rs = dt_rank_state_new(a->l, rank, DT_FILL_INVERSE, a->seed);
	out->rs[rank] = rs;
	if (rs->add_failed) {
		out->bad[rank] = 1;
		memcpy(out->why[rank], rs->why, sizeof(rs->why));
	}
	out->status[rank] = dcp_load(rs->state, a->url, comm, a->lo, &out->err[rank]);
	if (out->status[rank] == DCP_OK && !out->bad[rank])
		out->bad[rank] = dt_rank_state_check(rs, out->why[rank], DT_WHY_MAX);
	return out->status[rank];
}

static void run_or_fail(int n, dt_rank_fn fn, void *arg, dt_outcome *out)
{
	int rc = dt_run(n, fn, arg, out);
	if (rc != DCP_OK) {
		fprintf(stderr, "dcptest: could not start %d ranks: %d (%s)\n", n, rc, dcp_strerror(rc));
		abort();
	}
}

void dt_save(const dt_layout *l, int n, const char *url, const dcp_save_options *opts, uint64_t seed,
             dt_outcome *out)
{
	struct io_arg a = {l, url, opts, NULL, seed};
	run_or_fail(n, save_rank, &a, out);
}

void dt_load(const dt_layout *l, int n, const char *url, const dcp_load_options *opts, uint64_t seed,
             dt_outcome *out)
{
	struct io_arg a = {l, url, NULL, opts, seed};
	run_or_fail(n, load_rank, &a, out);
}
