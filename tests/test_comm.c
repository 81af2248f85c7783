/*
 * Comms: the single comm, the thread group's collectives (every collective,
 * every root, with 1, 2, 4 and 17 ranks; empty, mixed and 1 MiB messages;
 * many rounds back to back), failures (bad arguments, mismatched calls, out
 * of memory on one rank) and dcp_run_ranks.
 *
 * Rank functions never call cr_assert (it is not thread-safe): they write what
 * went wrong into their rank's slot of the context and return nonzero, and
 * the test's own thread asserts on the results.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/comm.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_ON 1
#endif
#if defined(__SANITIZE_THREAD__)
#define TSAN_ON 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_ON 1
#endif
#if __has_feature(thread_sanitizer)
#define TSAN_ON 1
#endif
#if __has_feature(memory_sanitizer)
#define MSAN_ON 1
#endif
#endif

/* The out-of-memory tests ask for impossible sizes: let the sanitizers'
 * allocators answer NULL, as malloc does, instead of aborting. */
#if defined(ASAN_ON)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#endif
#if defined(TSAN_ON)
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#endif

/* Allocation failures on demand, per thread (builds without sanitizers). */
#include "failmalloc.h"

/* ------------------------------------------------------------------------ */
/* Messages and the per-rank report                                         */
/* ------------------------------------------------------------------------ */
#define MAX_RANKS 256
#define MIB       (1u << 20)

enum msg_mode {
	MSG_EMPTY, /* every message is 0 bytes */
	MSG_MIXED, /* some 0 bytes, others a few hundred, varying by rank and round */
	MSG_MIB,   /* 1 MiB + rank bytes */
};

typedef struct ctx {
	int n;
	enum msg_mode mode;
	int rounds;
	atomic_int counter;
	char err[MAX_RANKS][256];
} ctx;

#define RFAIL(c, rank, ...)                                                    \
	do {                                                                   \
		snprintf((c)->err[rank], sizeof((c)->err[rank]), __VA_ARGS__); \
		return -1;                                                     \
	} while (0)

static size_t msg_len(enum msg_mode mode, int src, int round)
{
	switch (mode) {
	case MSG_EMPTY:
		return 0;
	case MSG_MIB:
		return MIB + (size_t)src;
	default:
		return (src + round) % 3 == 0 ? 0 : 1 + (size_t)((src * 37 + round * 11) % 300);
	}
}

static uint8_t pattern(int src, int round, size_t i)
{
	return (uint8_t)((unsigned)src * 131u + (unsigned)round * 17u + i * 7u + (i >> 9) + 1u);
}

/* A malloc'd message of src in round; NULL for 0 bytes. */
static uint8_t *make_msg(size_t len, int src, int round)
{
	uint8_t *b;
	size_t i;

	if (len == 0)
		return NULL;
	b = malloc(len);
	if (b == NULL)
		return NULL;
	for (i = 0; i < len; i++)
		b[i] = pattern(src, round, i);
	return b;
}

/* 1 if buf holds exactly the message of src in round. */
static int msg_ok(const dcp_buf *buf, size_t len, int src, int round)
{
	const uint8_t *b = buf->data;
	size_t i;

	if (buf->len != len)
		return 0;
	if (len == 0)
		return 1;
	if (b == NULL)
		return 0;
	for (i = 0; i < len; i++)
		if (b[i] != pattern(src, round, i))
			return 0;
	return 1;
}

static ctx *ctx_new(int n, enum msg_mode mode, int rounds)
{
	ctx *c = calloc(1, sizeof(*c));

	cr_assert_not_null(c);
	c->n = n;
	c->mode = mode;
	c->rounds = rounds;
	atomic_init(&c->counter, 0);
	return c;
}

/* Runs fn on c->n ranks and asserts that every rank returned 0. */
static void run_checked(ctx *c, dcp_rank_fn fn)
{
	int results[MAX_RANKS];
	int r;

	for (r = 0; r < c->n; r++)
		results[r] = -12345;
	cr_assert_eq(dcp_run_ranks(c->n, fn, c, results), DCP_OK);
	for (r = 0; r < c->n; r++)
		cr_assert_eq(results[r], 0, "rank %d of %d: %s", r, c->n, c->err[r]);
}

/* ------------------------------------------------------------------------ */
/* One collective each, checked on every rank                               */
/* ------------------------------------------------------------------------ */
static int do_gather(ctx *c, dcp_comm *comm, int rank, int root, int round)
{
	size_t len = msg_len(c->mode, rank, round);
	uint8_t *mine = make_msg(len, rank, round);
	dcp_buf *out = NULL;
	int rc, r;

	if (len > 0 && mine == NULL)
		RFAIL(c, rank, "test out of memory");
	if (rank == root) {
		out = calloc((size_t)c->n, sizeof(*out));
		if (out == NULL)
			RFAIL(c, rank, "test out of memory");
	}
	rc = comm->gather(comm, root, mine, len, out);
	/* The comm must not keep the input: free it right away. */
	free(mine);
	if (rc != DCP_OK) {
		free(out);
		RFAIL(c, rank, "gather root %d round %d: %s", root, round, dcp_strerror(rc));
	}
	if (rank == root) {
		for (r = 0; r < c->n; r++) {
			if (!msg_ok(&out[r], msg_len(c->mode, r, round), r, round)) {
				dcp_bufs_release(out, (size_t)c->n);
				free(out);
				RFAIL(c, rank, "gather root %d round %d: wrong message from rank %d", root,
				      round, r);
			}
		}
		dcp_bufs_release(out, (size_t)c->n);
		free(out);
	}
	return 0;
}

static int do_scatter(ctx *c, dcp_comm *comm, int rank, int root, int round)
{
	dcp_buf *in = NULL, out = {(void *)&out, 999};
	int rc, r, ok;

	if (rank == root) {
		in = calloc((size_t)c->n, sizeof(*in));
		if (in == NULL)
			RFAIL(c, rank, "test out of memory");
		for (r = 0; r < c->n; r++) {
			in[r].len = msg_len(c->mode, r, round);
			in[r].data = make_msg(in[r].len, r, round);
			if (in[r].len > 0 && in[r].data == NULL)
				RFAIL(c, rank, "test out of memory");
		}
	}
	rc = comm->scatter(comm, root, in, &out);
	if (in != NULL) {
		dcp_bufs_release(in, (size_t)c->n);
		free(in);
	}
	if (rc != DCP_OK)
		RFAIL(c, rank, "scatter root %d round %d: %s", root, round, dcp_strerror(rc));
	ok = msg_ok(&out, msg_len(c->mode, rank, round), rank, round);
	free(out.data);
	if (!ok)
		RFAIL(c, rank, "scatter root %d round %d: wrong part", root, round);
	return 0;
}

static int do_broadcast(ctx *c, dcp_comm *comm, int rank, int root, int round)
{
	dcp_buf buf = {NULL, 0};
	void *sent = NULL;
	int rc, ok;

	if (rank == root) {
		buf.len = msg_len(c->mode, root, round);
		buf.data = make_msg(buf.len, root, round);
		if (buf.len > 0 && buf.data == NULL)
			RFAIL(c, rank, "test out of memory");
		sent = buf.data;
	}
	rc = comm->broadcast(comm, root, &buf);
	if (rc != DCP_OK) {
		free(sent);
		RFAIL(c, rank, "broadcast root %d round %d: %s", root, round, dcp_strerror(rc));
	}
	if (rank == root && buf.data != sent) {
		free(sent);
		RFAIL(c, rank, "broadcast root %d round %d: the root's buffer changed", root, round);
	}
	ok = msg_ok(&buf, msg_len(c->mode, root, round), root, round);
	free(buf.data);
	if (!ok)
		RFAIL(c, rank, "broadcast root %d round %d: wrong message", root, round);
	return 0;
}

static int do_allgather(ctx *c, dcp_comm *comm, int rank, int round)
{
	size_t len = msg_len(c->mode, rank, round);
	uint8_t *mine = make_msg(len, rank, round);
	dcp_buf *out = calloc((size_t)c->n, sizeof(*out));
	int rc, r;

	if ((len > 0 && mine == NULL) || out == NULL)
		RFAIL(c, rank, "test out of memory");
	rc = comm->allgather(comm, mine, len, out);
	free(mine);
	if (rc != DCP_OK) {
		free(out);
		RFAIL(c, rank, "allgather round %d: %s", round, dcp_strerror(rc));
	}
	for (r = 0; r < c->n; r++) {
		if (!msg_ok(&out[r], msg_len(c->mode, r, round), r, round)) {
			dcp_bufs_release(out, (size_t)c->n);
			free(out);
			RFAIL(c, rank, "allgather round %d: wrong message from rank %d", round, r);
		}
	}
	dcp_bufs_release(out, (size_t)c->n);
	free(out);
	return 0;
}

/* A barrier lets nobody through before everyone arrived: each rank counts
 * itself in before it, and after it sees at least the whole round. */
static int do_barrier(ctx *c, dcp_comm *comm, int rank, int phase)
{
	int rc, seen;

	atomic_fetch_add(&c->counter, 1);
	rc = comm->barrier(comm);
	if (rc != DCP_OK)
		RFAIL(c, rank, "barrier: %s", dcp_strerror(rc));
	seen = atomic_load(&c->counter);
	if (seen < (phase + 1) * c->n)
		RFAIL(c, rank, "barrier %d let rank %d through after only %d arrivals", phase, rank, seen);
	return 0;
}

/* Every collective, every root. */
static int all_collectives(dcp_comm *comm, int rank, void *arg)
{
	ctx *c = arg;
	int round = 0, root;

	if (dcp_comm_rank(comm) != rank || dcp_comm_size(comm) != c->n)
		RFAIL(c, rank, "comm says rank %d of %d", dcp_comm_rank(comm), dcp_comm_size(comm));
	if (comm->version != DCP_COMM_VERSION || comm->destroy != NULL)
		RFAIL(c, rank, "bad version or destroy slot");
	for (root = 0; root < c->n; root++) {
		if (do_gather(c, comm, rank, root, round++) != 0 ||
		    do_scatter(c, comm, rank, root, round++) != 0 ||
		    do_broadcast(c, comm, rank, root, round++) != 0)
			return -1;
	}
	if (do_allgather(c, comm, rank, round++) != 0 || do_barrier(c, comm, rank, 0) != 0)
		return -1;
	return 0;
}

#define COLLECTIVES_TEST(n, mode, name)          \
	Test(thread_comm, name, .timeout = 120)  \
	{                                        \
		ctx *c = ctx_new(n, mode, 0);    \
		run_checked(c, all_collectives); \
		free(c);                         \
	}

COLLECTIVES_TEST(1, MSG_EMPTY, ranks1_empty)
COLLECTIVES_TEST(1, MSG_MIXED, ranks1_mixed)
COLLECTIVES_TEST(1, MSG_MIB, ranks1_mib)
COLLECTIVES_TEST(2, MSG_EMPTY, ranks2_empty)
COLLECTIVES_TEST(2, MSG_MIXED, ranks2_mixed)
COLLECTIVES_TEST(2, MSG_MIB, ranks2_mib)
COLLECTIVES_TEST(4, MSG_EMPTY, ranks4_empty)
COLLECTIVES_TEST(4, MSG_MIXED, ranks4_mixed)
COLLECTIVES_TEST(4, MSG_MIB, ranks4_mib)
COLLECTIVES_TEST(17, MSG_EMPTY, ranks17_empty)
COLLECTIVES_TEST(17, MSG_MIXED, ranks17_mixed)
COLLECTIVES_TEST(17, MSG_MIB, ranks17_mib)

/* Many collectives back to back, cycling operations and roots, so that a
 * rank racing ahead into the next collective is caught. */
static int many_rounds(dcp_comm *comm, int rank, void *arg)
{
	ctx *c = arg;
	int round, phase = 0;

	for (round = 0; round < c->rounds; round++) {
		int root = (round * 7) % c->n, rc;
		switch (round % 5) {
		case 0:
			rc = do_gather(c, comm, rank, root, round);
			break;
		case 1:
			rc = do_scatter(c, comm, rank, root, round);
			break;
		case 2:
			rc = do_broadcast(c, comm, rank, root, round);
			break;
		case 3:
			rc = do_allgather(c, comm, rank, round);
			break;
		default:
			rc = do_barrier(c, comm, rank, phase++);
			break;
		}
		if (rc != 0)
			return -1;
	}
	return 0;
}

Test(thread_comm, many_rounds_17_ranks, .timeout = 120)
{
	ctx *c = ctx_new(17, MSG_MIXED, 1000);
	run_checked(c, many_rounds);
	free(c);
}

Test(thread_comm, many_rounds_2_ranks, .timeout = 120)
{
	ctx *c = ctx_new(2, MSG_MIXED, 3000);
	run_checked(c, many_rounds);
	free(c);
}

Test(thread_comm, many_rounds_256_ranks, .timeout = 120)
{
	ctx *c = ctx_new(256, MSG_MIXED, 40);
	run_checked(c, many_rounds);
	free(c);
}

/* ------------------------------------------------------------------------ */
/* Failures: every rank leaves, each with its own status                    */
/* ------------------------------------------------------------------------ */
static int expect_rc(ctx *c, int rank, const char *what, int rc, int want)
{
	if (rc != want)
		RFAIL(c, rank, "%s: got %s, expected %s", what, dcp_strerror(rc), dcp_strerror(want));
	return 0;
}

/* After any failure the group still works. */
static int still_works(ctx *c, dcp_comm *comm, int rank, int round)
{
	return do_allgather(c, comm, rank, round) != 0 ||
	       do_broadcast(c, comm, rank, c->n - 1, round + 1) != 0;
}

static int mismatched_calls(dcp_comm *comm, int rank, void *arg)
{
	ctx *c = arg;
	dcp_buf out[4], buf = {NULL, 0};
	int rc;

	/* Rank 0 gathers while the others wait at a barrier. */
	if (rank == 0)
		rc = comm->gather(comm, 0, "x", 1, out);
	else
		rc = comm->barrier(comm);
	if (expect_rc(c, rank, "gather vs barrier", rc, DCP_ECOMM) != 0)
		return -1;
	if (rank == 0 && (out[0].data != NULL || out[0].len != 0 || out[3].len != 0))
		RFAIL(c, rank, "outputs not cleared after a failure");
	/* Different roots. */
	if (rank != 1)
		buf = (dcp_buf){NULL, 0};
	rc = comm->broadcast(comm, rank == 2 ? 2 : 1, &buf);
	if (expect_rc(c, rank, "broadcast with two roots", rc, DCP_ECOMM) != 0)
		return -1;
	return still_works(c, comm, rank, 0);
}

Test(thread_comm, mismatched_calls_fail_everywhere, .timeout = 120)
{
	ctx *c = ctx_new(4, MSG_MIXED, 0);
	run_checked(c, mismatched_calls);
	free(c);
}

static int bad_arguments(dcp_comm *comm, int rank, void *arg)
{
	ctx *c = arg;
	dcp_buf out[3], one = {NULL, 0};
	int rc;

	/* A root out of range on every rank: each one's own error. */
	rc = comm->gather(comm, 3, "x", 1, out);
	if (expect_rc(c, rank, "gather root 3", rc, DCP_EINVAL) != 0)
		return -1;
	rc = comm->broadcast(comm, -1, &one);
	if (expect_rc(c, rank, "broadcast root -1", rc, DCP_EINVAL) != 0)
		return -1;
	/* One rank's bad argument: it gets DCP_EINVAL, the others DCP_ECOMM. */
	rc = comm->allgather(comm, "abc", 3, rank == 1 ? NULL : out);
	if (expect_rc(c, rank, "allgather without out on rank 1", rc, rank == 1 ? DCP_EINVAL : DCP_ECOMM) !=
	    0)
		return -1;
	if (rank != 1 && (out[0].data != NULL || out[2].len != 0))
		RFAIL(c, rank, "outputs not cleared after a failure");
	rc = comm->gather(comm, 2, rank == 0 ? NULL : "abc", 3, out);
	if (expect_rc(c, rank, "gather of NULL data on rank 0", rc, rank == 0 ? DCP_EINVAL : DCP_ECOMM) != 0)
		return -1;
	rc = comm->scatter(comm, 0, NULL, &one);
	if (expect_rc(c, rank, "scatter without input on the root", rc, rank == 0 ? DCP_EINVAL : DCP_ECOMM) !=
	    0)
		return -1;
	return still_works(c, comm, rank, 0);
}

Test(thread_comm, bad_arguments_fail_everywhere, .timeout = 120)
{
	ctx *c = ctx_new(3, MSG_MIXED, 0);
	run_checked(c, bad_arguments);
	free(c);
}

/* Sizes no allocator can satisfy: the ranks that must copy them get
 * DCP_ENOMEM, the others DCP_OK, and nobody hangs. Only the length is huge;
 * the data is never read because the allocation fails first. */
#define HUGE_LEN ((size_t)1 << 62)

static int out_of_memory(dcp_comm *comm, int rank, void *arg)
{
	ctx *c = arg;
	static const char tiny[1] = {'t'};
	dcp_buf out[4], buf, in[4];
	int rc, r;

	/* Broadcast from rank 1: every other rank fails to receive. */
	buf = rank == 1 ? (dcp_buf){(void *)tiny, HUGE_LEN} : (dcp_buf){(void *)&buf, 77};
	rc = comm->broadcast(comm, 1, &buf);
	if (expect_rc(c, rank, "huge broadcast", rc, rank == 1 ? DCP_OK : DCP_ENOMEM) != 0)
		return -1;
	if (rank != 1 && (buf.data != NULL || buf.len != 0))
		RFAIL(c, rank, "broadcast output not cleared after a failure");

	/* Gather to rank 0 with rank 2's message huge: only the root fails. */
	rc = comm->gather(comm, 0, rank == 2 ? tiny : "ab", rank == 2 ? HUGE_LEN : 2, out);
	if (expect_rc(c, rank, "huge gather", rc, rank == 0 ? DCP_ENOMEM : DCP_OK) != 0)
		return -1;
	if (rank == 0) {
		for (r = 0; r < 4; r++)
			if (out[r].data != NULL || out[r].len != 0)
				RFAIL(c, rank, "gather output %d not cleared after a failure", r);
	}

	/* Scatter from rank 3 with rank 1's part huge: only rank 1 fails. */
	for (r = 0; r < 4; r++)
		in[r] = (dcp_buf){(void *)tiny, r == 1 ? HUGE_LEN : 1};
	rc = comm->scatter(comm, 3, in, &buf);
	if (expect_rc(c, rank, "huge scatter part", rc, rank == 1 ? DCP_ENOMEM : DCP_OK) != 0)
		return -1;
	if (rank != 1) {
		if (buf.len != 1 || ((char *)buf.data)[0] != 't')
			RFAIL(c, rank, "wrong scatter part");
		free(buf.data);
	}

	/* Allgather with rank 3's message huge: everyone fails to copy it. */
	rc = comm->allgather(comm, rank == 3 ? tiny : "ab", rank == 3 ? HUGE_LEN : 2, out);
	if (expect_rc(c, rank, "huge allgather", rc, DCP_ENOMEM) != 0)
		return -1;
	return still_works(c, comm, rank, 0);
}

Test(thread_comm, out_of_memory_on_some_ranks, .timeout = 120)
{
	ctx *c = ctx_new(4, MSG_MIXED, 0);
	run_checked(c, out_of_memory);
	free(c);
}

#if DCP_ALLOC_FAILURES
/* Each allocation an allgather makes on one rank, failed in turn: that rank
 * alone gets DCP_ENOMEM and the group goes on. */
static int allgather_alloc_failures(dcp_comm *comm, int rank, void *arg)
{
	ctx *c = arg;
	int k;

	for (k = 0; k < 2 * c->n; k++) {
		dcp_buf out[8];
		int victim = k % c->n, rc, hit = 0;
		if (rank == victim) {
			fail_hit = 0;
			fail_countdown = k / c->n; /* the 1st, 2nd, ... allocation */
		}
		rc = comm->allgather(comm, "abcd", 4, out);
		if (rank == victim) {
			fail_countdown = -1;
			hit = fail_hit;
			if (hit)
				atomic_fetch_add(&c->counter, 1);
		}
		if (expect_rc(c, rank, "allgather with a failed allocation", rc, hit ? DCP_ENOMEM : DCP_OK) !=
		    0)
			return -1;
		if (rc == DCP_OK)
			dcp_bufs_release(out, (size_t)c->n);
		else if (out[0].data != NULL || out[c->n - 1].data != NULL)
			RFAIL(c, rank, "outputs not cleared after a failure");
		if (still_works(c, comm, rank, k) != 0)
			return -1;
	}
	return 0;
}

Test(thread_comm, allocation_failure_on_one_rank, .timeout = 120)
{
	ctx *c = ctx_new(5, MSG_MIXED, 0);
	run_checked(c, allgather_alloc_failures);
	/* Each rank's allgather allocates its 5 copies: the 1st and 2nd fail. */
	cr_assert_eq(atomic_load(&c->counter), 2 * 5);
	free(c);
}
#endif

/* ------------------------------------------------------------------------ */
/* Thread groups driven by the test's own threads                           */
/* ------------------------------------------------------------------------ */
typedef struct own_thread {
	ctx *c;
	dcp_comm *comm;
	int rank;
	int result;
} own_thread;

static void *own_thread_main(void *p)
{
	own_thread *t = p;

	t->result = all_collectives(t->comm, t->rank, t->c);
	return NULL;
}

Test(thread_group, driven_by_own_threads, .timeout = 120)
{
	enum { N = 3 };
	dcp_thread_group *g = dcp_thread_group_new(N);
	pthread_t th[N];
	own_thread t[N];
	ctx *c = ctx_new(N, MSG_MIXED, 0);
	int r;

	cr_assert_not_null(g);
	for (r = 0; r < N; r++) {
		t[r] = (own_thread){c, dcp_thread_group_comm(g, r), r, -1};
		cr_assert_not_null(t[r].comm);
		cr_assert_eq(pthread_create(&th[r], NULL, own_thread_main, &t[r]), 0);
	}
	for (r = 0; r < N; r++) {
		cr_assert_eq(pthread_join(th[r], NULL), 0);
		cr_assert_eq(t[r].result, 0, "rank %d: %s", r, c->err[r]);
	}
	/* The group's comms belong to it: dcp_comm_free leaves them alone. */
	dcp_comm_free(dcp_thread_group_comm(g, 0));
	cr_assert_eq(dcp_comm_rank(dcp_thread_group_comm(g, 0)), 0);
	dcp_thread_group_free(g);
	free(c);
}

Test(thread_group, bad_arguments, .timeout = 120)
{
	dcp_thread_group *g = dcp_thread_group_new(2);

	cr_assert_null(dcp_thread_group_new(0));
	cr_assert_null(dcp_thread_group_new(-3));
	cr_assert_not_null(g);
	cr_assert_null(dcp_thread_group_comm(g, 2));
	cr_assert_null(dcp_thread_group_comm(g, -1));
	cr_assert_null(dcp_thread_group_comm(NULL, 0));
	cr_assert_eq(dcp_comm_size(dcp_thread_group_comm(g, 1)), 2);
	cr_assert_eq(dcp_comm_rank(dcp_thread_group_comm(g, 1)), 1);
	dcp_thread_group_free(g);
	dcp_thread_group_free(NULL);
	cr_assert_eq(dcp_comm_rank(NULL), -1);
	cr_assert_eq(dcp_comm_size(NULL), 0);
	dcp_comm_free(NULL);
}

/* ------------------------------------------------------------------------ */
/* dcp_run_ranks                                                            */
/* ------------------------------------------------------------------------ */
static int rank_result(dcp_comm *comm, int rank, void *arg)
{
	ctx *c = arg;
	dcp_buf out[MAX_RANKS];
	int r, rc;

	/* Every rank learns every rank id, and returns a value of its own. */
	rc = comm->allgather(comm, &rank, sizeof(rank), out);
	if (rc != DCP_OK)
		RFAIL(c, rank, "allgather: %s", dcp_strerror(rc));
	for (r = 0; r < c->n; r++) {
		int got;
		memcpy(&got, out[r].data, sizeof(got));
		if (out[r].len != sizeof(int) || got != r)
			RFAIL(c, rank, "wrong id from rank %d", r);
	}
	dcp_bufs_release(out, (size_t)c->n);
	atomic_fetch_add(&c->counter, 1);
	return 7 * rank - 3;
}

Test(run_ranks, results_per_rank, .timeout = 120)
{
	static const int sizes[] = {1, 2, 17, 256};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ctx *c = ctx_new(sizes[i], MSG_EMPTY, 0);
		int results[MAX_RANKS], r;
		cr_assert_eq(dcp_run_ranks(c->n, rank_result, c, results), DCP_OK);
		for (r = 0; r < c->n; r++)
			cr_assert_eq(results[r], 7 * r - 3, "rank %d of %d: %s", r, c->n, c->err[r]);
		cr_assert_eq(atomic_load(&c->counter), c->n);
		/* results may be NULL. */
		cr_assert_eq(dcp_run_ranks(c->n, rank_result, c, NULL), DCP_OK);
		cr_assert_eq(atomic_load(&c->counter), 2 * c->n);
		free(c);
	}
}

static int count_calls(dcp_comm *comm, int rank, void *arg)
{
	(void)comm;
	(void)rank;
	atomic_fetch_add((atomic_int *)arg, 1);
	return 0;
}

Test(run_ranks, bad_arguments, .timeout = 120)
{
	atomic_int calls;
	int results[1] = {42};

	atomic_init(&calls, 0);
	cr_assert_eq(dcp_run_ranks(0, count_calls, &calls, results), DCP_EINVAL);
	cr_assert_eq(dcp_run_ranks(-1, count_calls, &calls, results), DCP_EINVAL);
	cr_assert_eq(dcp_run_ranks(1, NULL, &calls, results), DCP_EINVAL);
	cr_assert_eq(atomic_load(&calls), 0);
	cr_assert_eq(results[0], 42);
}

#if DCP_ALLOC_FAILURES
/* Address space for only a few thread stacks: dcp_run_ranks must fail
 * without running fn on any rank (a rank would wait forever for the ranks
 * that never started) and without hanging on the threads it did start. */
Test(run_ranks, thread_creation_failure, .timeout = 60)
{
	struct rlimit old, lim;
	atomic_int calls;
	unsigned long pages = 0;
	int results[64], r, rc;
	FILE *f = fopen("/proc/self/statm", "r");

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	atomic_init(&calls, 0);
	for (r = 0; r < 64; r++)
		results[r] = -777;
	cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 40 * (rlim_t)MIB;
	cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
	rc = dcp_run_ranks(64, count_calls, &calls, results);
	cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);

	cr_assert_eq(rc, DCP_ENOMEM);
	cr_assert_eq(atomic_load(&calls), 0);
	for (r = 0; r < 64; r++)
		cr_assert_eq(results[r], -777);
	/* With the address space back, the same call works. */
	cr_assert_eq(dcp_run_ranks(64, count_calls, &calls, results), DCP_OK);
	cr_assert_eq(atomic_load(&calls), 64);
}
#endif

/* ------------------------------------------------------------------------ */
/* The single comm                                                          */
/* ------------------------------------------------------------------------ */
Test(single_comm, collectives_copy_their_input, .timeout = 120)
{
	dcp_comm *c = dcp_comm_single_new();
	dcp_buf out[1], in[1], buf;
	char data[] = "hello";

	cr_assert_not_null(c);
	cr_assert_eq(c->version, DCP_COMM_VERSION);
	cr_assert_eq(dcp_comm_rank(c), 0);
	cr_assert_eq(dcp_comm_size(c), 1);

	cr_assert_eq(c->gather(c, 0, data, 5, out), DCP_OK);
	cr_assert_eq(out[0].len, 5);
	cr_assert_neq(out[0].data, data);
	cr_assert_eq(memcmp(out[0].data, "hello", 5), 0);
	dcp_bufs_release(out, 1);
	cr_assert_null(out[0].data);

	cr_assert_eq(c->allgather(c, data, 5, out), DCP_OK);
	cr_assert_eq(out[0].len, 5);
	cr_assert_neq(out[0].data, data);
	cr_assert_eq(memcmp(out[0].data, "hello", 5), 0);
	dcp_bufs_release(out, 1);

	in[0] = (dcp_buf){data, 3};
	cr_assert_eq(c->scatter(c, 0, in, &buf), DCP_OK);
	cr_assert_eq(buf.len, 3);
	cr_assert_neq(buf.data, data);
	cr_assert_eq(memcmp(buf.data, "hel", 3), 0);
	free(buf.data);

	buf = (dcp_buf){data, 5};
	cr_assert_eq(c->broadcast(c, 0, &buf), DCP_OK);
	cr_assert_eq(buf.data, data);
	cr_assert_eq(buf.len, 5);

	cr_assert_eq(c->barrier(c), DCP_OK);

	/* 0-byte messages. */
	cr_assert_eq(c->gather(c, 0, NULL, 0, out), DCP_OK);
	cr_assert_eq(out[0].len, 0);
	dcp_bufs_release(out, 1);
	cr_assert_eq(c->allgather(c, NULL, 0, out), DCP_OK);
	cr_assert_eq(out[0].len, 0);
	in[0] = (dcp_buf){NULL, 0};
	cr_assert_eq(c->scatter(c, 0, in, &buf), DCP_OK);
	cr_assert_eq(buf.len, 0);

	/* 1 MiB. */
	{
		uint8_t *big = make_msg(MIB, 0, 5);
		cr_assert_not_null(big);
		cr_assert_eq(c->allgather(c, big, MIB, out), DCP_OK);
		cr_assert(msg_ok(&out[0], MIB, 0, 5));
		dcp_bufs_release(out, 1);
		free(big);
	}
	dcp_comm_free(c);
}

Test(single_comm, bad_arguments_and_out_of_memory, .timeout = 120)
{
	dcp_comm *c = dcp_comm_single_new();
	dcp_buf out[1] = {{(void *)1, 9}}, buf = {NULL, 3};

	cr_assert_not_null(c);
	cr_assert_eq(c->gather(c, 1, "a", 1, out), DCP_EINVAL);
	cr_assert_null(out[0].data);
	cr_assert_eq(c->gather(c, 0, NULL, 1, out), DCP_EINVAL);
	cr_assert_eq(c->gather(c, 0, "a", 1, NULL), DCP_EINVAL);
	cr_assert_eq(c->scatter(c, 0, NULL, out), DCP_EINVAL);
	cr_assert_eq(c->broadcast(c, -1, &buf), DCP_EINVAL);
	cr_assert_eq(c->broadcast(c, 0, &buf), DCP_EINVAL);
	cr_assert_eq(c->broadcast(c, 0, NULL), DCP_EINVAL);
	cr_assert_eq(c->allgather(c, "a", HUGE_LEN, out), DCP_ENOMEM);
	cr_assert_null(out[0].data);
	cr_assert_eq(out[0].len, 0);
	dcp_comm_free(c);
}
