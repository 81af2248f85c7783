/*
 * dcp-test-mpi-ckpt: saves and loads a sharded state with one MPI process per
 * rank, for tests/mpi/run-mpi-tests.sh. Not a Criterion test: every process
 * of an mpirun job runs it, checks what it can see, and says so.
 *
 *   dcp-test-mpi-ckpt save URL SEED [--lose RANK:K:MODE]
 *   dcp-test-mpi-ckpt load URL SEED
 *
 * save: rank r of N holds rows [37r/N, 37(r+1)/N) of "model.w" (f32 37x29)
 * and a slice of "model.e" (i64 1000, split unevenly), every rank holds the
 * replicated "model.b" (f64 5), rank 0 holds the bytes item "meta". Values are
 * a function of (SEED, key, index). load: rank r of M holds column block
 * [29r/M, 29(r+1)/M) of model.w (a different sharding: the load reshards),
 * a different slice of model.e, model.b whole and meta; checks every element.
 *
 * --lose RANK:K:MODE makes rank RANK stop being a working peer at its K-th
 * collective call (1-based) inside dcp_save, through a comm that wraps the MPI
 * one:
 *   kill  the process raises SIGKILL there (a crash in the middle of a save);
 *   hang  the process stops taking part: it waits in an MPI_Barrier on
 *         MPI_COMM_WORLD, where the surviving ranks go after their dcp_save
 *         has returned. This is a peer that is alive but never answers the
 *         collective (stuck in I/O, deadlocked, or on a partitioned node),
 *         the case that only a timeout can end; the barrier afterwards only
 *         lets every process reach MPI_Finalize, so that the job ends cleanly
 *         and its output is complete. Its own dcp_save then gets DCP_ECOMM.
 * The surviving ranks rely on the MPI comm's timeout ($DCP_MPI_TIMEOUT).
 *
 * Output: on a failure every process prints the error's "rank R: STAGE:
 * message" lines (libdcp gives each rank the same error object) and the MPI
 * comm's own diagnosis; and always a line
 *   "process P of N: exit X"
 * that the test script counts. Exit status 0 ok, 1 failed, 2 usage.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "dcp/dcp.h"
#include "dcp/dcp_mpi.h"
#include "dcp/sys/comm.h"

#define ROWS  37
#define COLS  29
#define ELEMS 1000
#define BLEN  5

/* A comm that forwards to an MPI comm until rank `rank` reaches its `at`-th
 * collective; then it kills the process or stops taking part. */
typedef struct lose_comm {
	dcp_comm base;
	dcp_comm *inner; /* borrowed */
	int rank, at, kill, calls, gone;
} lose_comm;

/* 1 if this call is where the rank is lost (and then it is gone for good). */
static int lost(lose_comm *c)
{
	if (c->gone)
		return 1;
	if (c->rank != c->inner->rank(c->inner) || ++c->calls != c->at)
		return 0;
	fprintf(stderr, "process %d: stops at its collective call %d (%s)\n", c->rank, c->at,
	        c->kill ? "SIGKILL" : "hangs");
	fflush(stderr);
	if (c->kill)
		raise(SIGKILL);
	/* Hang: wait where the survivors go once their save has returned. */
	MPI_Barrier(MPI_COMM_WORLD);
	c->gone = 1;
	return 1;
}

static int lc_rank(const dcp_comm *self)
{
	const lose_comm *c = (const lose_comm *)self;
	return c->inner->rank(c->inner);
}

static int lc_size(const dcp_comm *self)
{
	const lose_comm *c = (const lose_comm *)self;
	return c->inner->size(c->inner);
}

static int lc_gather(dcp_comm *self, int root, const void *data, size_t len, dcp_buf *out)
{
	lose_comm *c = (lose_comm *)self;
	return lost(c) ? DCP_ECOMM : c->inner->gather(c->inner, root, data, len, out);
}

static int lc_scatter(dcp_comm *self, int root, const dcp_buf *in, dcp_buf *out)
{
	lose_comm *c = (lose_comm *)self;
	if (lost(c)) {
		out->data = NULL;
		out->len = 0;
		return DCP_ECOMM;
	}
	return c->inner->scatter(c->inner, root, in, out);
}

static int lc_broadcast(dcp_comm *self, int root, dcp_buf *buf)
{
	lose_comm *c = (lose_comm *)self;
	if (lost(c)) {
		if (c->rank != root) {
			buf->data = NULL;
			buf->len = 0;
		}
		return DCP_ECOMM;
	}
	return c->inner->broadcast(c->inner, root, buf);
}

static int lc_allgather(dcp_comm *self, const void *data, size_t len, dcp_buf *out)
{
	lose_comm *c = (lose_comm *)self;
	if (lost(c)) {
		memset(out, 0, (size_t)lc_size(self) * sizeof(*out));
		return DCP_ECOMM;
	}
	return c->inner->allgather(c->inner, data, len, out);
}

static int lc_barrier(dcp_comm *self)
{
	lose_comm *c = (lose_comm *)self;
	return lost(c) ? DCP_ECOMM : c->inner->barrier(c->inner);
}

/* ------------------------------------------------------------------------ */

static float w_val(uint64_t seed, uint64_t i)
{
	return (float)((seed * 7919u + i * 31u) % 65521u) - 1000.0f;
}

static int64_t e_val(uint64_t seed, uint64_t i)
{
	return (int64_t)(seed * 1000003u) - (int64_t)(i * i);
}

static double b_val(uint64_t seed, uint64_t i)
{
	return (double)seed + 0.25 * (double)i;
}

/* [lo, hi) of part r of n over len items; `skew` makes the parts uneven. */
static void part(uint64_t len, int r, int n, int skew, uint64_t *lo, uint64_t *hi)
{
	uint64_t w = (uint64_t)n * (uint64_t)n + (uint64_t)(skew ? n : 0);
	uint64_t a = 0, b = 0;
	for (int k = 0; k <= r; k++) {
		a = b;
		b += (uint64_t)n + (uint64_t)(skew ? (k % 2) * 2 : 0);
	}
	*lo = len * a / w;
	*hi = r == n - 1 ? len : len * b / w;
}

static int report(int rank, int size, int ex)
{
	printf("process %d of %d: exit %d\n", rank, size, ex);
	fflush(stdout);
	return ex;
}

static int print_failure(const char *what, int rc, dcp_error *err, dcp_comm *mpi)
{
	fprintf(stderr, "%s failed: %s\n", what, dcp_strerror(rc));
	if (err != NULL) {
		char *text = dcp_error_format(err);
		if (text != NULL)
			fputs(text, stderr);
		free(text);
	}
	const char *why = dcp_comm_mpi_last_error(mpi);
	if (why[0] != '\0')
		fprintf(stderr, "mpi comm: %s\n", why);
	fflush(stderr);
	return 1;
}

static int do_save(dcp_comm *mpi, const char *url, uint64_t seed, const char *lose)
{
	int rank = dcp_comm_rank(mpi), n = dcp_comm_size(mpi);
	uint64_t r0, r1, e0, e1;
	part(ROWS, rank, n, 1, &r0, &r1);
	part(ELEMS, rank, n, 1, &e0, &e1);
	float *w = malloc((size_t)((r1 - r0) * COLS) * sizeof(*w) + 1);
	int64_t *e = malloc((size_t)(e1 - e0) * sizeof(*e) + 1);
	double b[BLEN];
	char meta[64];
	dcp_state *st = dcp_state_new();
	if (w == NULL || e == NULL || st == NULL) {
		fprintf(stderr, "process %d: out of memory\n", rank);
		return 1;
	}
	for (uint64_t i = 0; i < (r1 - r0) * COLS; i++)
		w[i] = w_val(seed, r0 * COLS + i);
	for (uint64_t i = e0; i < e1; i++)
		e[i - e0] = e_val(seed, i);
	for (uint64_t i = 0; i < BLEN; i++)
		b[i] = b_val(seed, i);
	snprintf(meta, sizeof(meta), "seed=%" PRIu64 " ranks=%d", seed, n);

	uint64_t wshape[2] = {ROWS, COLS}, woff[2] = {r0, 0}, wsz[2] = {r1 - r0, COLS};
	uint64_t eshape[1] = {ELEMS}, eoff[1] = {e0}, esz[1] = {e1 - e0}, bshape[1] = {BLEN};
	int rc = dcp_state_add_shard(st, "model.w", DCP_F32, 2, wshape, woff, wsz, w);
	if (rc == DCP_OK)
		rc = dcp_state_add_shard(st, "model.e", DCP_I64, 1, eshape, eoff, esz, e);
	if (rc == DCP_OK)
		rc = dcp_state_add_tensor(st, "model.b", DCP_F64, 1, bshape, b);
	if (rc == DCP_OK && rank == 0)
		rc = dcp_state_add_bytes(st, "meta", meta, strlen(meta));
	if (rc != DCP_OK) {
		fprintf(stderr, "process %d: describing the state failed: %s\n", rank,
		        dcp_state_last_error(st));
		return 1;
	}

	lose_comm lc;
	memset(&lc, 0, sizeof(lc));
	dcp_comm *comm = mpi;
	if (lose != NULL) {
		char mode[16] = "";
		if (sscanf(lose, "%d:%d:%15s", &lc.rank, &lc.at, mode) != 3 ||
		    (strcmp(mode, "kill") != 0 && strcmp(mode, "hang") != 0) || lc.at < 1) {
			fprintf(stderr, "--lose takes RANK:K:kill or RANK:K:hang, not '%s'\n", lose);
			return 2;
		}
		lc.kill = strcmp(mode, "kill") == 0;
		lc.inner = mpi;
		lc.base.version = DCP_COMM_VERSION;
		lc.base.rank = lc_rank;
		lc.base.size = lc_size;
		lc.base.gather = lc_gather;
		lc.base.scatter = lc_scatter;
		lc.base.broadcast = lc_broadcast;
		lc.base.allgather = lc_allgather;
		lc.base.barrier = lc_barrier;
		lc.base.destroy = NULL;
		comm = &lc.base;
	}

	dcp_error *err = NULL;
	double t0 = MPI_Wtime();
	rc = dcp_save(st, url, comm, NULL, &err);
	double secs = MPI_Wtime() - t0;
	int ex = 0;
	if (rc != DCP_OK)
		ex = print_failure("dcp_save", rc, err, mpi);
	else
		printf("process %d: saved in %.3f s\n", rank, secs);
	if (rc != DCP_OK && lose != NULL)
		fprintf(stderr, "process %d: dcp_save returned after %.3f s\n", rank, secs);
	/* A hanging lost rank waits in this barrier (see --lose): meet it there.
	 * A killed one is gone: do not wait for it. */
	if (lose != NULL && !lc.kill && !lc.gone)
		MPI_Barrier(MPI_COMM_WORLD);
	/* With a peer gone, MPI_Finalize would wait for it forever: end without
	 * it, as dcp/dcp_mpi.h advises after DCP_ETIMEOUT. */
	if (lose != NULL && lc.kill && rc != DCP_OK) {
		printf("process %d of %d: exit %d (without MPI_Finalize: a peer was lost)\n", rank, n, ex);
		fflush(stdout);
		fflush(stderr);
		_exit(ex);
	}
	dcp_error_free(err);
	dcp_state_free(st);
	free(w);
	free(e);
	return ex;
}

static int do_load(dcp_comm *comm, const char *url, uint64_t seed)
{
	int rank = dcp_comm_rank(comm), n = dcp_comm_size(comm);
	uint64_t c0, c1, e0, e1;
	part(COLS, rank, n, 0, &c0, &c1);
	part(ELEMS, n - 1 - rank, n, 1, &e0, &e1); /* another split than any save's */
	float *w = malloc((size_t)(ROWS * (c1 - c0)) * sizeof(*w) + 1);
	int64_t *e = malloc((size_t)(e1 - e0) * sizeof(*e) + 1);
	double b[BLEN];
	dcp_state *st = dcp_state_new();
	if (w == NULL || e == NULL || st == NULL) {
		fprintf(stderr, "process %d: out of memory\n", rank);
		return 1;
	}
	memset(w, 0xA5, (size_t)(ROWS * (c1 - c0)) * sizeof(*w));
	memset(e, 0xA5, (size_t)(e1 - e0) * sizeof(*e));
	memset(b, 0xA5, sizeof(b));
	uint64_t wshape[2] = {ROWS, COLS}, woff[2] = {0, c0}, wsz[2] = {ROWS, c1 - c0};
	uint64_t eshape[1] = {ELEMS}, eoff[1] = {e0}, esz[1] = {e1 - e0}, bshape[1] = {BLEN};
	int rc = dcp_state_add_shard(st, "model.w", DCP_F32, 2, wshape, woff, wsz, w);
	if (rc == DCP_OK)
		rc = dcp_state_add_shard(st, "model.e", DCP_I64, 1, eshape, eoff, esz, e);
	if (rc == DCP_OK)
		rc = dcp_state_add_tensor(st, "model.b", DCP_F64, 1, bshape, b);
	if (rc == DCP_OK)
		rc = dcp_state_add_bytes(st, "meta", NULL, 0);
	if (rc != DCP_OK) {
		fprintf(stderr, "process %d: describing the state failed: %s\n", rank,
		        dcp_state_last_error(st));
		return 1;
	}
	dcp_error *err = NULL;
	rc = dcp_load(st, url, comm, NULL, &err);
	int ex = 0;
	if (rc != DCP_OK) {
		ex = print_failure("dcp_load", rc, err, comm);
	} else {
		uint64_t bad = 0;
		for (uint64_t r = 0; r < ROWS; r++)
			for (uint64_t k = c0; k < c1; k++)
				bad += w[r * (c1 - c0) + (k - c0)] != w_val(seed, r * COLS + k);
		for (uint64_t i = e0; i < e1; i++)
			bad += e[i - e0] != e_val(seed, i);
		for (uint64_t i = 0; i < BLEN; i++)
			bad += b[i] != b_val(seed, i);
		const void *m = NULL;
		size_t mlen = 0;
		char want[32];
		snprintf(want, sizeof(want), "seed=%" PRIu64 " ", seed);
		if (dcp_state_get_bytes(st, "meta", &m, &mlen) != DCP_OK || mlen < strlen(want) ||
		    memcmp(m, want, strlen(want)) != 0)
			bad++;
		if (bad > 0) {
			fprintf(stderr, "process %d: %" PRIu64 " values differ from seed %" PRIu64 "\n", rank,
			        bad, seed);
			ex = 1;
		} else {
			printf("process %d of %d: loaded and checked columns %" PRIu64 "..%" PRIu64
			       " (seed %" PRIu64 ", meta '%.*s')\n",
			       rank, n, c0, c1, seed, (int)mlen, (const char *)m);
		}
	}
	dcp_error_free(err);
	dcp_state_free(st);
	free(w);
	free(e);
	return ex;
}

int main(int argc, char **argv)
{
	int provided = 0, rank = 0, size = 1;
	MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc < 4 || (strcmp(argv[1], "save") != 0 && strcmp(argv[1], "load") != 0) ||
	    (argc != 4 && !(argc == 6 && strcmp(argv[4], "--lose") == 0 && strcmp(argv[1], "save") == 0))) {
		if (rank == 0)
			fprintf(stderr, "usage: %s save URL SEED [--lose RANK:K:kill|hang] | load URL SEED\n",
			        argv[0]);
		MPI_Finalize();
		return 2;
	}
	uint64_t seed = strtoull(argv[3], NULL, 10);
	char msg[256];
	dcp_comm *comm = NULL;
	int rc = dcp_comm_mpi_create(MPI_COMM_WORLD, NULL, &comm, msg, sizeof(msg));
	if (rc != DCP_OK) {
		fprintf(stderr, "process %d: dcp_comm_mpi_create: %s\n", rank, msg);
		MPI_Finalize();
		return report(rank, size, 1);
	}
	int ex = strcmp(argv[1], "save") == 0 ? do_save(comm, argv[2], seed, argc == 6 ? argv[5] : NULL)
	                                      : do_load(comm, argv[2], seed);
	dcp_comm_free(comm);
	/* Said before MPI_Finalize: once one process has exited non-zero,
	 * mpirun may kill the others, but not before all have reached it. */
	report(rank, size, ex);
	MPI_Finalize();
	return ex;
}
