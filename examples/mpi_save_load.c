/*
 * dcp-example-mpi: what checkpointing looks like in an MPI application.
 *
 *   mpirun -np N dcp-example-mpi URL        (e.g. file:///tmp/ckpt)
 *
 * Each process is one rank. It describes its shards of the model, saves them
 * to URL (the storage plugin for the URL's scheme is found and loaded with
 * dlopen by libdcp's default registry: file:// -> dcp-fs.so), then loads the
 * checkpoint back into a different sharding and checks every element.
 *
 * The state of rank r of N:
 *   model.weight   f32 [8N+3, 16], rows split over the ranks (the last rank
 *                  has 3 more): what a data- or tensor-parallel layer holds
 *   model.bias     f32 [16], replicated: saved once, loaded on every rank
 *   train.step     bytes, only on rank 0
 * The load asks each rank for a block of columns of model.weight instead, as a
 * job restarted with another parallel layout would: libdcp reshards.
 *
 * Build: in this tree (target dcp-example-mpi), or against an installed
 * libdcp: see examples/standalone/. Link libdcp_mpi and libdcp.
 * Exit status 0 only if every rank saved, loaded and found every value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include <dcp/dcp.h>
#include <dcp/dcp_mpi.h>

#define COLS 16

static float weight_value(uint64_t r, uint64_t c)
{
	return (float)(r * 100 + c) + 0.5f;
}

/* [lo, hi) of block `i` of `n` over `len`. */
static void block(uint64_t len, int i, int n, uint64_t *lo, uint64_t *hi)
{
	*lo = len * (uint64_t)i / (uint64_t)n;
	*hi = len * (uint64_t)(i + 1) / (uint64_t)n;
}

/* Prints a failed collective's error (the same on every rank) once, from
 * rank 0, and the MPI comm's view of what went wrong, from every rank. */
static void report(const char *what, int rank, int rc, dcp_error *err, dcp_comm *comm)
{
	if (rank == 0) {
		char *text = err != NULL ? dcp_error_format(err) : NULL;
		fprintf(stderr, "%s failed: %s\n%s", what, dcp_strerror(rc), text != NULL ? text : "");
		free(text);
	}
	const char *why = dcp_comm_mpi_last_error(comm);
	if (why[0] != '\0')
		fprintf(stderr, "rank %d: MPI: %s\n", rank, why);
}

/* Saves this rank's shards to url. */
static int save(dcp_comm *comm, const char *url, int rank, int size)
{
	uint64_t rows = 8 * (uint64_t)size + 3, r0, r1;
	block(rows, rank, size, &r0, &r1);
	float *w = malloc((size_t)((r1 - r0) * COLS) * sizeof(*w) + 1);
	float bias[COLS];
	char step[] = "step=1200 lr=3e-4";
	dcp_state *st = dcp_state_new();
	if (w == NULL || st == NULL) {
		fprintf(stderr, "rank %d: out of memory\n", rank);
		free(w);
		dcp_state_free(st);
		return DCP_ENOMEM;
	}
	for (uint64_t r = r0; r < r1; r++)
		for (uint64_t c = 0; c < COLS; c++)
			w[(r - r0) * COLS + c] = weight_value(r, c);
	for (int c = 0; c < COLS; c++)
		bias[c] = -0.25f * (float)c;

	uint64_t shape[2] = {rows, COLS}, off[2] = {r0, 0}, sz[2] = {r1 - r0, COLS}, bshape[1] = {COLS};
	int rc = dcp_state_add_shard(st, "model.weight", DCP_F32, 2, shape, off, sz, w);
	if (rc == DCP_OK)
		rc = dcp_state_add_tensor(st, "model.bias", DCP_F32, 1, bshape, bias);
	if (rc == DCP_OK && rank == 0)
		rc = dcp_state_add_bytes(st, "train.step", step, strlen(step));
	if (rc != DCP_OK) {
		fprintf(stderr, "rank %d: %s\n", rank, dcp_state_last_error(st));
	} else {
		dcp_error *err = NULL;
		rc = dcp_save(st, url, comm, NULL, &err); /* collective: every rank */
		if (rc != DCP_OK)
			report("dcp_save", rank, rc, err, comm);
		dcp_error_free(err);
	}
	dcp_state_free(st);
	free(w);
	return rc;
}

/* Loads url into a column block of model.weight; returns the status, and
 * the number of wrong values in *bad. */
static int load_and_check(dcp_comm *comm, const char *url, int rank, int size, uint64_t *bad)
{
	uint64_t rows = 8 * (uint64_t)size + 3, c0, c1;
	block(COLS, rank, size, &c0, &c1);
	float *w = calloc((size_t)(rows * (c1 - c0)) + 1, sizeof(*w));
	float bias[COLS] = {0};
	dcp_state *st = dcp_state_new();
	if (w == NULL || st == NULL) {
		fprintf(stderr, "rank %d: out of memory\n", rank);
		free(w);
		dcp_state_free(st);
		return DCP_ENOMEM;
	}
	uint64_t shape[2] = {rows, COLS}, off[2] = {0, c0}, sz[2] = {rows, c1 - c0}, bshape[1] = {COLS};
	int rc = dcp_state_add_shard(st, "model.weight", DCP_F32, 2, shape, off, sz, w);
	if (rc == DCP_OK)
		rc = dcp_state_add_tensor(st, "model.bias", DCP_F32, 1, bshape, bias);
	if (rc == DCP_OK)
		rc = dcp_state_add_bytes(st, "train.step", NULL, 0); /* the state allocates it */
	if (rc != DCP_OK) {
		fprintf(stderr, "rank %d: %s\n", rank, dcp_state_last_error(st));
	} else {
		dcp_error *err = NULL;
		rc = dcp_load(st, url, comm, NULL, &err);
		if (rc != DCP_OK)
			report("dcp_load", rank, rc, err, comm);
		dcp_error_free(err);
	}
	if (rc == DCP_OK) {
		for (uint64_t r = 0; r < rows; r++)
			for (uint64_t c = c0; c < c1; c++)
				*bad += w[r * (c1 - c0) + (c - c0)] != weight_value(r, c);
		for (int c = 0; c < COLS; c++)
			*bad += bias[c] != -0.25f * (float)c;
		const void *step = NULL;
		size_t len = 0;
		*bad += dcp_state_get_bytes(st, "train.step", &step, &len) != DCP_OK || len != 17 ||
		        memcmp(step, "step=1200 lr=3e-4", 17) != 0;
	}
	dcp_state_free(st);
	free(w);
	return rc;
}

int main(int argc, char **argv)
{
	int provided = 0, rank = 0, size = 1;
	MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc != 2) {
		if (rank == 0)
			fprintf(stderr, "usage: mpirun -np N %s URL   (e.g. file:///tmp/ckpt)\n", argv[0]);
		MPI_Finalize();
		return 2;
	}

	/* libdcp's comm over the application's communicator. It duplicates
	 * it: checkpoint traffic never mixes with the application's. The
	 * timeout comes from $DCP_MPI_TIMEOUT (default 600 s). */
	char msg[256];
	dcp_comm *comm = NULL;
	if (dcp_comm_mpi_create(MPI_COMM_WORLD, NULL, &comm, msg, sizeof(msg)) != DCP_OK) {
		fprintf(stderr, "rank %d: %s\n", rank, msg);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}

	uint64_t bad = 0;
	int rc = save(comm, argv[1], rank, size);
	if (rc == DCP_OK)
		rc = load_and_check(comm, argv[1], rank, size, &bad);
	if (rc == DCP_ETIMEOUT || rc == DCP_ECOMM) {
		/* A peer was lost: MPI_Finalize would wait for it. */
		dcp_comm_free(comm);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}

	/* dcp_save and dcp_load give every rank the same outcome; the check
	 * is per rank, so sum it. */
	uint64_t total = 0;
	MPI_Allreduce(&bad, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
	if (rank == 0 && rc == DCP_OK)
		printf("saved from %d ranks (row blocks) to %s, loaded back as column blocks: %s\n", size,
		       argv[1], total == 0 ? "every value matches" : "VALUES DIFFER");
	if (bad > 0)
		fprintf(stderr, "rank %d: %llu values differ\n", rank, (unsigned long long)bad);
	dcp_comm_free(comm);
	MPI_Finalize();
	return rc == DCP_OK && total == 0 ? 0 : 1;
}
