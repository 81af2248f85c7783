/*
 * The in-process comm: a group of N ranks, one thread each.
 *
 * Every collective runs the same two-barrier protocol over one slot per rank:
 *   1. the rank posts what it offers (operation, root, borrowed pointers to its
 *      input, and whether its arguments are valid) into its own slot;
 *   2. first barrier: the last rank to arrive judges the posts (do all ranks
 *      run the same operation with the same root? are all arguments valid?);
 *   3. if the verdict is good, each rank copies what it receives from the
 *      other ranks' slots into buffers it mallocs;
 *   4. second barrier: nobody reads a slot any more, so every rank may return
 *      (its borrowed input may go away) and post the next collective.
 * The mutex taken by each barrier orders the slot writes of step 1 before the
 * reads of step 3, so slots need no lock of their own.
 *
 * Because every rank always passes both barriers, a failure on one rank
 * (out of memory while copying, bad arguments, a mismatched call) never
 * leaves another rank waiting. The outcome per rank is: DCP_OK; DCP_ENOMEM on
 * a rank whose own copy failed (the others still succeed); DCP_EINVAL on a
 * rank that passed invalid arguments and DCP_ECOMM on the others; DCP_ECOMM
 * on every rank if the ranks called different collectives or roots. The group
 * stays usable after any of these. Outputs are {NULL, 0} after a failure.
 *
 * Barriers wait on a condition variable with a generation counter: no sleeps
 * and no spinning.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "comm_internal.h"

enum tc_op {
	TC_GATHER = 1,
	TC_SCATTER,
	TC_BROADCAST,
	TC_ALLGATHER,
	TC_BARRIER,
};

enum tc_verdict {
	TC_AGREED = 0, /* same operation and root everywhere, arguments valid */
	TC_BAD_ARGS,   /* at least one rank passed invalid arguments */
	TC_MISMATCHED, /* ranks called different operations or roots */
};

/* What one rank offers to a collective. Written only by its rank, before the
 * first barrier; read by any rank between the two barriers. */
typedef struct tc_slot {
	int op;
	int root;
	int bad;          /* this rank's arguments are invalid */
	const void *data; /* gather, allgather: the rank's data; broadcast: the root's */
	size_t len;
	const dcp_buf *in; /* scatter: the root's parts */
} tc_slot;

typedef struct tc_comm {
	dcp_comm base; /* first: the group's comms are cast back from dcp_comm */
	dcp_thread_group *group;
	int rank;
} tc_comm;

struct dcp_thread_group {
	int size;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Under mu: */
	int arrived;       /* ranks waiting at the current barrier */
	unsigned long gen; /* barriers completed */
	int verdict;       /* enum tc_verdict of the last first barrier */
	tc_slot *slots;    /* size slots; see tc_slot */
	tc_comm *comms;    /* size comms */
};

static enum tc_verdict tc_judge(const dcp_thread_group *g)
{
	enum tc_verdict v = TC_AGREED;
	int r;

	for (r = 0; r < g->size; r++) {
		if (g->slots[r].op != g->slots[0].op || g->slots[r].root != g->slots[0].root)
			return TC_MISMATCHED;
		if (g->slots[r].bad)
			v = TC_BAD_ARGS;
	}
	return v;
}

/*
 * Waits until all ranks have arrived. With judge set, the last rank to arrive
 * computes the verdict on the posted slots; returns the verdict (meaningful
 * only for a judging barrier: it stays unchanged until the next one, which
 * cannot complete before this rank arrives there).
 */
static int tc_wait_all(dcp_thread_group *g, int judge)
{
	unsigned long gen;
	int verdict;

	pthread_mutex_lock(&g->mu);
	gen = g->gen;
	if (++g->arrived == g->size) {
		g->arrived = 0;
		if (judge)
			g->verdict = tc_judge(g);
		g->gen++;
		pthread_cond_broadcast(&g->cv);
	} else {
		while (gen == g->gen)
			pthread_cond_wait(&g->cv, &g->mu);
	}
	verdict = g->verdict;
	pthread_mutex_unlock(&g->mu);
	return verdict;
}

/* Steps 1 and 2: posts this rank's slot and waits for every rank. Returns
 * DCP_OK if the collective may go ahead, else this rank's error status. */
static int tc_enter(tc_comm *c, int op, int root, int bad, const void *data, size_t len, const dcp_buf *in)
{
	tc_slot *s = &c->group->slots[c->rank];

	s->op = op;
	s->root = root;
	s->bad = bad;
	s->data = data;
	s->len = len;
	s->in = in;
	switch (tc_wait_all(c->group, 1)) {
	case TC_AGREED:
		return DCP_OK;
	case TC_BAD_ARGS:
		return bad ? DCP_EINVAL : DCP_ECOMM;
	default:
		return DCP_ECOMM;
	}
}

/* Step 4. */
static int tc_leave(tc_comm *c, int status)
{
	tc_wait_all(c->group, 0);
	return status;
}

static void tc_clear(dcp_buf *bufs, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		bufs[i].data = NULL;
		bufs[i].len = 0;
	}
}

/* out[r] = copy of every rank's posted data; all {NULL, 0} on failure. */
static int tc_copy_all(dcp_thread_group *g, dcp_buf *out)
{
	int r;

	for (r = 0; r < g->size; r++) {
		if (dcp_buf_copy(&out[r], g->slots[r].data, g->slots[r].len) != DCP_OK) {
			dcp_bufs_release(out, (size_t)r);
			return DCP_ENOMEM;
		}
	}
	return DCP_OK;
}

static int root_ok(const dcp_thread_group *g, int root)
{
	return root >= 0 && root < g->size;
}

static int tc_rank(const dcp_comm *self)
{
	return ((const tc_comm *)self)->rank;
}

static int tc_size(const dcp_comm *self)
{
	return ((const tc_comm *)self)->group->size;
}

static int tc_gather(dcp_comm *self, int root, const void *data, size_t len, dcp_buf *out)
{
	tc_comm *c = (tc_comm *)self;
	dcp_thread_group *g = c->group;
	int is_root = c->rank == root;
	int bad = !root_ok(g, root) || (data == NULL && len > 0) || (is_root && out == NULL);
	int st;

	if (is_root && out != NULL)
		tc_clear(out, g->size);
	st = tc_enter(c, TC_GATHER, root, bad, data, len, NULL);
	if (st == DCP_OK && is_root)
		st = tc_copy_all(g, out);
	return tc_leave(c, st);
}

static int tc_scatter(dcp_comm *self, int root, const dcp_buf *in, dcp_buf *out)
{
	tc_comm *c = (tc_comm *)self;
	dcp_thread_group *g = c->group;
	int is_root = c->rank == root;
	int bad = !root_ok(g, root) || out == NULL || (is_root && in == NULL);
	int r, st;

	if (is_root && in != NULL) {
		for (r = 0; r < g->size; r++)
			if (in[r].data == NULL && in[r].len > 0)
				bad = 1;
	}
	if (out != NULL)
		tc_clear(out, 1);
	st = tc_enter(c, TC_SCATTER, root, bad, NULL, 0, is_root ? in : NULL);
	if (st == DCP_OK) {
		const dcp_buf *part = &g->slots[root].in[c->rank];
		st = dcp_buf_copy(out, part->data, part->len);
	}
	return tc_leave(c, st);
}

static int tc_broadcast(dcp_comm *self, int root, dcp_buf *buf)
{
	tc_comm *c = (tc_comm *)self;
	dcp_thread_group *g = c->group;
	int is_root = c->rank == root;
	int bad = !root_ok(g, root) || buf == NULL || (is_root && buf->data == NULL && buf->len > 0);
	int st;

	if (!is_root && buf != NULL)
		tc_clear(buf, 1);
	if (is_root && !bad)
		st = tc_enter(c, TC_BROADCAST, root, bad, buf->data, buf->len, NULL);
	else
		st = tc_enter(c, TC_BROADCAST, root, bad, NULL, 0, NULL);
	if (st == DCP_OK && !is_root)
		st = dcp_buf_copy(buf, g->slots[root].data, g->slots[root].len);
	return tc_leave(c, st);
}

static int tc_allgather(dcp_comm *self, const void *data, size_t len, dcp_buf *out)
{
	tc_comm *c = (tc_comm *)self;
	dcp_thread_group *g = c->group;
	int bad = out == NULL || (data == NULL && len > 0);
	int st;

	if (out != NULL)
		tc_clear(out, g->size);
	st = tc_enter(c, TC_ALLGATHER, 0, bad, data, len, NULL);
	if (st == DCP_OK)
		st = tc_copy_all(g, out);
	return tc_leave(c, st);
}

static int tc_barrier(dcp_comm *self)
{
	tc_comm *c = (tc_comm *)self;

	/* Two barriers like every other collective, so that a rank calling a
	 * barrier while the others gather is detected, not deadlocked. */
	return tc_leave(c, tc_enter(c, TC_BARRIER, 0, 0, NULL, 0, NULL));
}

dcp_thread_group *dcp_thread_group_new(int size)
{
	dcp_thread_group *g;
	int r;

	if (size < 1)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->size = size;
	g->slots = calloc((size_t)size, sizeof(*g->slots));
	g->comms = calloc((size_t)size, sizeof(*g->comms));
	if (g->slots == NULL || g->comms == NULL)
		goto fail;
	if (pthread_mutex_init(&g->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&g->cv, NULL) != 0) {
		pthread_mutex_destroy(&g->mu);
		goto fail;
	}
	for (r = 0; r < size; r++) {
		tc_comm *c = &g->comms[r];
		c->base.version = DCP_COMM_VERSION;
		c->base.rank = tc_rank;
		c->base.size = tc_size;
		c->base.gather = tc_gather;
		c->base.scatter = tc_scatter;
		c->base.broadcast = tc_broadcast;
		c->base.allgather = tc_allgather;
		c->base.barrier = tc_barrier;
		c->base.destroy = NULL; /* owned by the group */
		c->group = g;
		c->rank = r;
	}
	return g;

fail:
	free(g->slots);
	free(g->comms);
	free(g);
	return NULL;
}

dcp_comm *dcp_thread_group_comm(dcp_thread_group *group, int rank)
{
	if (group == NULL || rank < 0 || rank >= group->size)
		return NULL;
	return &group->comms[rank].base;
}

void dcp_thread_group_free(dcp_thread_group *group)
{
	if (group == NULL)
		return;
	pthread_cond_destroy(&group->cv);
	pthread_mutex_destroy(&group->mu);
	free(group->slots);
	free(group->comms);
	free(group);
}

/* ------------------------------------------------------------------------ */
/* dcp_run_ranks                                                            */
/* ------------------------------------------------------------------------ */

/*
 * Threads are created first and wait at a start gate; only once all of them
 * exist are they told to run. If one cannot be created, the started ones are
 * told to leave instead, so that no rank ever waits in a collective for a
 * rank that does not exist.
 */
enum gate_state { GATE_WAIT, GATE_RUN, GATE_LEAVE };

typedef struct run_gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state; /* enum gate_state, under mu */
} run_gate;

typedef struct run_rank {
	run_gate *gate;
	dcp_comm *comm;
	int rank;
	dcp_rank_fn fn;
	void *arg;
	int result; /* written by the rank's thread, read after join */
} run_rank;

static void *run_rank_main(void *p)
{
	run_rank *rr = p;
	int state;

	pthread_mutex_lock(&rr->gate->mu);
	while (rr->gate->state == GATE_WAIT)
		pthread_cond_wait(&rr->gate->cv, &rr->gate->mu);
	state = rr->gate->state;
	pthread_mutex_unlock(&rr->gate->mu);
	if (state == GATE_RUN)
		rr->result = rr->fn(rr->comm, rr->rank, rr->arg);
	return NULL;
}

static void gate_open(run_gate *gate, int state)
{
	pthread_mutex_lock(&gate->mu);
	gate->state = state;
	pthread_cond_broadcast(&gate->cv);
	pthread_mutex_unlock(&gate->mu);
}

/*
 * Returns DCP_EINVAL for size < 1 or fn NULL, DCP_ENOMEM if memory ran out or
 * not every thread could be created (then fn ran on no rank and results is
 * left untouched), else DCP_OK with results[r] = fn's return on rank r.
 */
int dcp_run_ranks(int size, dcp_rank_fn fn, void *arg, int *results)
{
	dcp_thread_group *g = NULL;
	pthread_t *threads = NULL;
	run_rank *ranks = NULL;
	run_gate gate;
	int started = 0, r, st = DCP_OK;

	if (size < 1 || fn == NULL)
		return DCP_EINVAL;
	gate.state = GATE_WAIT;
	if (pthread_mutex_init(&gate.mu, NULL) != 0)
		return DCP_ENOMEM;
	if (pthread_cond_init(&gate.cv, NULL) != 0) {
		pthread_mutex_destroy(&gate.mu);
		return DCP_ENOMEM;
	}
	g = dcp_thread_group_new(size);
	threads = calloc((size_t)size, sizeof(*threads));
	ranks = calloc((size_t)size, sizeof(*ranks));
	if (g == NULL || threads == NULL || ranks == NULL) {
		st = DCP_ENOMEM;
		goto out;
	}
	for (r = 0; r < size; r++) {
		ranks[r].gate = &gate;
		ranks[r].comm = dcp_thread_group_comm(g, r);
		ranks[r].rank = r;
		ranks[r].fn = fn;
		ranks[r].arg = arg;
		if (pthread_create(&threads[r], NULL, run_rank_main, &ranks[r]) != 0) {
			/* EAGAIN: out of threads or memory for their stacks. */
			st = DCP_ENOMEM;
			break;
		}
		started++;
	}
	gate_open(&gate, st == DCP_OK ? GATE_RUN : GATE_LEAVE);
	for (r = 0; r < started; r++)
		pthread_join(threads[r], NULL);
	if (st == DCP_OK && results != NULL) {
		for (r = 0; r < size; r++)
			results[r] = ranks[r].result;
	}

out:
	free(ranks);
	free(threads);
	dcp_thread_group_free(g);
	pthread_cond_destroy(&gate.cv);
	pthread_mutex_destroy(&gate.mu);
	return st;
}
