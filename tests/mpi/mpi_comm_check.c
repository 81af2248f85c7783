/*
 * dcp-test-mpi-comm: checks libdcp_mpi's collectives under mpirun, for
 * tests/mpi/run-mpi-tests.sh. Every process runs every case and checks what
 * it receives; a failed check prints "FAIL process P: ..." and the process
 * exits 1 (and mpirun with it).
 *
 *   dcp-test-mpi-comm basic     contents of every collective for every root,
 *                               lengths 0 to several pieces, with 1 GiB and
 *                               7-byte pieces; a split communicator; the
 *                               application's own pending receive on
 *                               MPI_COMM_WORLD never sees libdcp's messages;
 *                               invalid arguments; options and DCP_MPI_TIMEOUT
 *   dcp-test-mpi-comm timeout   a rank that stops taking part turns into
 *                               DCP_ETIMEOUT on the ranks that depend on it,
 *                               within a bounded time (1 s timeout)
 *   dcp-test-mpi-comm big       a broadcast and a gather of 2^31 + 4097 bytes
 *                               (counts past INT_MAX are split, not truncated)
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "dcp/dcp.h"
#include "dcp/dcp_mpi.h"
#include "dcp/sys/comm.h"

/* This process's checks: its rank in MPI_COMM_WORLD and its failures. */
typedef struct tctx {
	int rank;
	int failures;
} tctx;

static void fail(tctx *t, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;

static void fail(tctx *t, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "FAIL process %d: ", t->rank);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	t->failures++;
}

#define CHECK(cond, ...)                      \
	do {                                  \
		if (!(cond))                  \
			fail(t, __VA_ARGS__); \
	} while (0)

static uint8_t pat(int src, int round, size_t i)
{
	return (uint8_t)(src * 131 + round * 17 + i * 7 + (i >> 9));
}

/* Message lengths: 0 for some (src, round), else up to a few pieces of 7. */
static size_t msg_len(int src, int round)
{
	if ((src + round) % 5 == 0)
		return 0;
	return (size_t)((src * 37 + round * 101) % 200) + 1;
}

static uint8_t *make(tctx *t, size_t len, int src, int round)
{
	uint8_t *p = malloc(len + 1);
	if (p == NULL) {
		fail(t, "out of memory");
		exit(1);
	}
	for (size_t i = 0; i < len; i++)
		p[i] = pat(src, round, i);
	return p;
}

static int same(const dcp_buf *b, size_t len, int src, int round)
{
	if (b->len != len || (len == 0) != (b->data == NULL))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (((const uint8_t *)b->data)[i] != pat(src, round, i))
			return 0;
	return 1;
}

static dcp_comm *make_comm(tctx *t, MPI_Comm mc, double timeout, size_t piece)
{
	dcp_mpi_options o = DCP_MPI_OPTIONS_INIT;
	o.timeout_s = timeout;
	o.piece_bytes = piece;
	char msg[256] = "";
	dcp_comm *c = NULL;
	int rc = dcp_comm_mpi_create(mc, &o, &c, msg, sizeof(msg));
	if (rc != DCP_OK) {
		fail(t, "dcp_comm_mpi_create: %s: %s", dcp_strerror(rc), msg);
		exit(1);
	}
	return c;
}

/* One round of every collective with root `root`, contents checked. */
static void round_all(tctx *t, dcp_comm *c, int root, int round, const char *name)
{
	int me = dcp_comm_rank(c), n = dcp_comm_size(c), rc;
	dcp_buf *out = calloc((size_t)n, sizeof(*out));
	size_t len = msg_len(me, round);
	uint8_t *mine = make(t, len, me, round);

	rc = c->gather(c, root, mine, len, me == root ? out : NULL);
	CHECK(rc == DCP_OK, "%s gather root %d round %d: %s (%s)", name, root, round, dcp_strerror(rc),
	      dcp_comm_mpi_last_error(c));
	if (rc == DCP_OK && me == root)
		for (int r = 0; r < n; r++)
			CHECK(same(&out[r], msg_len(r, round), r, round),
			      "%s gather: part of rank %d differs", name, r);
	dcp_bufs_release(out, (size_t)n);

	rc = c->allgather(c, mine, len, out);
	CHECK(rc == DCP_OK, "%s allgather round %d: %s (%s)", name, round, dcp_strerror(rc),
	      dcp_comm_mpi_last_error(c));
	for (int r = 0; r < n && rc == DCP_OK; r++)
		CHECK(same(&out[r], msg_len(r, round), r, round), "%s allgather: part of rank %d differs",
		      name, r);
	dcp_bufs_release(out, (size_t)n);

	/* scatter: part for rank r is the pattern of (r, round + 1). */
	dcp_buf *in = NULL;
	if (me == root) {
		in = calloc((size_t)n, sizeof(*in));
		for (int r = 0; r < n; r++) {
			in[r].len = msg_len(r, round + 1);
			in[r].data = in[r].len > 0 ? make(t, in[r].len, r, round + 1) : NULL;
		}
	}
	dcp_buf got = {NULL, 0};
	rc = c->scatter(c, root, in, &got);
	CHECK(rc == DCP_OK && same(&got, msg_len(me, round + 1), me, round + 1),
	      "%s scatter root %d round %d: %s (%s)", name, root, round, dcp_strerror(rc),
	      dcp_comm_mpi_last_error(c));
	free(got.data);
	if (in != NULL) {
		dcp_bufs_release(in, (size_t)n);
		free(in);
	}

	dcp_buf b = {NULL, 0};
	uint8_t *rootdata = NULL;
	if (me == root) {
		b.len = msg_len(root, round + 2);
		rootdata = make(t, b.len, root, round + 2);
		b.data = b.len > 0 ? rootdata : NULL;
	}
	rc = c->broadcast(c, root, &b);
	CHECK(rc == DCP_OK && same(&b, msg_len(root, round + 2), root, round + 2),
	      "%s broadcast root %d round %d: %s (%s)", name, root, round, dcp_strerror(rc),
	      dcp_comm_mpi_last_error(c));
	if (me != root)
		free(b.data);
	free(rootdata);

	rc = c->barrier(c);
	CHECK(rc == DCP_OK, "%s barrier: %s", name, dcp_strerror(rc));
	free(mine);
	free(out);
}

static void case_basic(tctx *t)
{
	int size;
	MPI_Comm_size(MPI_COMM_WORLD, &size);

	/* The application's own pending receive on MPI_COMM_WORLD, any source
	 * and tag: libdcp's messages, on their duplicate, must never match it. */
	int app_msg = -1;
	MPI_Request app_req;
	MPI_Irecv(&app_msg, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &app_req);

	size_t pieces[2] = {0, 7};
	for (int p = 0; p < 2; p++) {
		dcp_comm *c = make_comm(t, MPI_COMM_WORLD, 30, pieces[p]);
		CHECK(dcp_comm_rank(c) == t->rank && dcp_comm_size(c) == size, "rank/size differ from MPI's");
		for (int round = 0; round < 3; round++)
			for (int root = 0; root < size; root++)
				round_all(t, c, root, round * size + root,
				          p == 0 ? "world" : "world/7-byte pieces");
		dcp_comm_free(c);
	}
	int flag = 1;
	MPI_Test(&app_req, &flag, MPI_STATUS_IGNORE);
	CHECK(!flag, "the application's receive on MPI_COMM_WORLD matched a libdcp message");
	/* Complete it with an application message from the previous rank, once
	 * every rank has tested its own (the barrier cannot match it). */
	MPI_Barrier(MPI_COMM_WORLD);
	int v = t->rank;
	MPI_Send(&v, 1, MPI_INT, (t->rank + 1) % size, 99, MPI_COMM_WORLD);
	MPI_Wait(&app_req, MPI_STATUS_IGNORE);
	CHECK(app_msg == (t->rank + size - 1) % size, "application message from rank %d expected, got %d",
	      (t->rank + size - 1) % size, app_msg);

	/* Any communicator: the halves of a split, each its own group. */
	MPI_Comm half;
	MPI_Comm_split(MPI_COMM_WORLD, t->rank % 2, -t->rank, &half); /* reversed order */
	dcp_comm *h = make_comm(t, half, 30, 5);
	int hsize;
	MPI_Comm_size(half, &hsize);
	CHECK(dcp_comm_size(h) == hsize, "split comm size %d, MPI says %d", dcp_comm_size(h), hsize);
	for (int root = 0; root < hsize; root++)
		round_all(t, h, root, 50 + root, "split");
	dcp_comm_free(h);
	MPI_Comm_free(&half);

	/* Invalid arguments on rank 1: EINVAL there, ECOMM elsewhere; the comm
	 * stays usable. */
	dcp_comm *c = make_comm(t, MPI_COMM_WORLD, 30, 0);
	dcp_buf *out = calloc((size_t)size, sizeof(*out));
	int rc = c->allgather(c, t->rank == 1 ? NULL : "12345", 5, out);
	int want = size == 1 ? DCP_OK : (t->rank == 1 ? DCP_EINVAL : DCP_ECOMM);
	if (size == 1)
		want = DCP_OK;
	CHECK(rc == want, "allgather with bad arguments on rank 1: got %s, want %s", dcp_strerror(rc),
	      dcp_strerror(want));
	dcp_bufs_release(out, (size_t)size);
	rc = c->gather(c, size, "x", 1, out);
	CHECK(rc == DCP_EINVAL, "gather with root %d out of range: got %s", size, dcp_strerror(rc));
	round_all(t, c, 0, 77, "after bad arguments");
	free(out);
	dcp_comm_free(c);

	/* Options and $DCP_MPI_TIMEOUT. */
	dcp_comm *tc = NULL;
	char msg[256];
	unsetenv("DCP_MPI_TIMEOUT");
	tc = dcp_comm_mpi_new(MPI_COMM_WORLD, NULL);
	CHECK(tc != NULL && dcp_comm_mpi_timeout(tc) == DCP_MPI_DEFAULT_TIMEOUT, "default timeout");
	dcp_comm_free(tc);
	setenv("DCP_MPI_TIMEOUT", "2.5", 1);
	tc = dcp_comm_mpi_new(MPI_COMM_WORLD, NULL);
	CHECK(tc != NULL && dcp_comm_mpi_timeout(tc) == 2.5, "DCP_MPI_TIMEOUT=2.5 not taken");
	dcp_comm_free(tc);
	dcp_mpi_options o = DCP_MPI_OPTIONS_INIT;
	o.timeout_s = 0;
	tc = dcp_comm_mpi_new(MPI_COMM_WORLD, &o);
	CHECK(tc != NULL && dcp_comm_mpi_timeout(tc) == 0, "the option must win over DCP_MPI_TIMEOUT");
	dcp_comm_free(tc);
	setenv("DCP_MPI_TIMEOUT", "ten", 1);
	tc = NULL;
	rc = dcp_comm_mpi_create(MPI_COMM_WORLD, NULL, &tc, msg, sizeof(msg));
	CHECK(rc == DCP_EINVAL && tc == NULL && strstr(msg, "DCP_MPI_TIMEOUT='ten'") != NULL,
	      "a bad DCP_MPI_TIMEOUT must be refused, naming it (got %s: %s)", dcp_strerror(rc), msg);
	unsetenv("DCP_MPI_TIMEOUT");
	o.piece_bytes = ((size_t)1 << 30) + 1;
	rc = dcp_comm_mpi_create(MPI_COMM_WORLD, &o, &tc, msg, sizeof(msg));
	CHECK(rc == DCP_EINVAL && tc == NULL, "piece_bytes over 2^30 must be refused");
	rc = dcp_comm_mpi_create(MPI_COMM_NULL, NULL, &tc, msg, sizeof(msg));
	CHECK(rc == DCP_EINVAL && tc == NULL, "MPI_COMM_NULL must be refused");
	CHECK(dcp_comm_mpi_timeout(NULL) < 0 && dcp_comm_mpi_last_error(NULL)[0] == '\0',
	      "NULL is not an MPI comm");
}

/*
 * One lost-peer case: rank `lost` does not call the collective `what` (it
 * waits in an MPI_Barrier on MPI_COMM_WORLD instead, where the others go
 * afterwards); the others call it with a 1 s timeout. want_timeout[r]: 1 if
 * rank r depends on the lost rank and must get DCP_ETIMEOUT, 0 if it must
 * succeed.
 */
static void lost_case(tctx *t, const char *what, int lost, const int *want_timeout)
{
	int size;
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	dcp_comm *c = make_comm(t, MPI_COMM_WORLD, 1.0, 0);
	if (t->rank == lost) {
		MPI_Barrier(MPI_COMM_WORLD);
		dcp_comm_free(c);
		return;
	}
	dcp_buf *out = calloc((size_t)size, sizeof(*out));
	dcp_buf b = {(void *)"hello", 5};
	dcp_buf got = {NULL, 0};
	double t0 = MPI_Wtime();
	int rc;
	if (strcmp(what, "allgather") == 0)
		rc = c->allgather(c, "abc", 3, out);
	else if (strcmp(what, "gather") == 0)
		rc = c->gather(c, 0, "abc", 3, out);
	else if (strcmp(what, "broadcast") == 0)
		rc = c->broadcast(c, 0, t->rank == 0 ? &b : &got);
	else
		rc = c->barrier(c);
	double secs = MPI_Wtime() - t0;
	int want = want_timeout[t->rank] ? DCP_ETIMEOUT : DCP_OK;
	CHECK(rc == want, "%s with rank %d lost: got %s, want %s (%s)", what, lost, dcp_strerror(rc),
	      dcp_strerror(want), dcp_comm_mpi_last_error(c));
	/* A timeout ends within the timeout per hop of the tree, plus slack. */
	CHECK(secs < 6.0, "%s with rank %d lost took %.2f s", what, lost, secs);
	if (rc == DCP_ETIMEOUT)
		printf("process %d: %s with rank %d lost: %s after %.2f s: %s\n", t->rank, what, lost,
		       dcp_strerror(rc), secs, dcp_comm_mpi_last_error(c));
	dcp_bufs_release(out, (size_t)size);
	free(out);
	free(got.data);
	MPI_Barrier(MPI_COMM_WORLD); /* release the lost rank */
	dcp_comm_free(c);
}

static void case_timeout(tctx *t)
{
	int size;
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (size < 3) {
		fail(t, "the timeout case needs at least 3 processes");
		return;
	}
	int *want = calloc((size_t)size, sizeof(*want));
	/* allgather depends on every rank: all survivors time out. */
	for (int r = 0; r < size; r++)
		want[r] = 1;
	lost_case(t, "allgather", size - 1, want);
	lost_case(t, "barrier", 1, want);
	lost_case(t, "broadcast", 0, want); /* the root is lost */
	/* gather to 0: only the root waits for the lost rank. */
	for (int r = 0; r < size; r++)
		want[r] = r == 0;
	lost_case(t, "gather", size - 1, want);
	free(want);
}

static void case_big(tctx *t)
{
	int size;
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	size_t len = ((size_t)1 << 31) + 4097;
	dcp_comm *c = make_comm(t, MPI_COMM_WORLD, 120, 0);
	dcp_buf b = {NULL, 0};
	uint8_t *src = NULL;
	if (t->rank == 0) {
		src = malloc(len);
		if (src == NULL) {
			fail(t, "out of memory for %zu bytes", len);
			exit(1);
		}
		for (size_t i = 0; i < len; i++)
			src[i] = pat(0, 3, i);
		b.data = src;
		b.len = len;
	}
	int rc = c->broadcast(c, 0, &b);
	CHECK(rc == DCP_OK, "broadcast of %zu bytes: %s (%s)", len, dcp_strerror(rc),
	      dcp_comm_mpi_last_error(c));
	if (rc == DCP_OK && t->rank != 0)
		CHECK(same(&b, len, 0, 3), "broadcast of %zu bytes: received %zu bytes, or they differ", len,
		      b.len);
	if (t->rank != 0)
		free(b.data);
	free(src);

	/* The last rank gathers: its part and one big part from rank 0. */
	int root = size - 1;
	size_t mine = t->rank == 0 ? len : 3;
	uint8_t *data = NULL;
	if (t->rank == 0) {
		data = malloc(len);
		if (data == NULL) {
			fail(t, "out of memory");
			exit(1);
		}
		for (size_t i = 0; i < len; i++)
			data[i] = pat(1, 4, i);
	}
	dcp_buf *out = calloc((size_t)size, sizeof(*out));
	rc = c->gather(c, root, t->rank == 0 ? data : (void *)"abc", mine, out);
	free(data);
	CHECK(rc == DCP_OK, "gather with a part of %zu bytes: %s", len, dcp_strerror(rc));
	if (rc == DCP_OK && t->rank == root)
		CHECK(same(&out[0], len, 1, 4), "gather: the %zu-byte part differs (%zu bytes received)", len,
		      out[0].len);
	dcp_bufs_release(out, (size_t)size);
	free(out);
	dcp_comm_free(c);
}

int main(int argc, char **argv)
{
	int provided;
	tctx ctx = {0, 0}, *t = &ctx;
	MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &t->rank);
	if (argc != 2) {
		fprintf(stderr, "usage: %s basic|timeout|big\n", argv[0]);
		MPI_Finalize();
		return 2;
	}
	if (strcmp(argv[1], "basic") == 0)
		case_basic(t);
	else if (strcmp(argv[1], "timeout") == 0)
		case_timeout(t);
	else if (strcmp(argv[1], "big") == 0)
		case_big(t);
	else
		fail(t, "unknown case '%s'", argv[1]);
	int any = t->failures > 0, all_ok = 0;
	MPI_Allreduce(&any, &all_ok, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (t->rank == 0)
		printf("dcp-test-mpi-comm %s: %s\n", argv[1], all_ok ? "FAILED" : "ok");
	MPI_Finalize();
	return any ? 1 : 0;
}
