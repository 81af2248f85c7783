/*
 * dcp-example-mem: save a sharded state from 4 ranks, load it back resharded
 * on 3 ranks, and check every element.
 *
 *   dcp-example-mem [URL]        (default: mem://example)
 *
 * Ranks are threads of one process (dcp_run_ranks), so the default mem://
 * store, which lives in the process, is seen by the save and the load. Any
 * other URL works the same way (e.g. faulty+mem://x?fail.write_data=2 to see
 * how a failure is reported on every rank).
 *
 * The state of each saving rank:
 *   model.weight  f32 [10, 20], sharded by rows, unevenly: the 4 ranks hold
 *                 rows [0:2), [2:3), [3:7) and [7:10)
 *   model.bias    f32 [20], replicated: every rank holds the same copy
 *   train.state   bytes, replicated: the same text on every rank
 * Each loading rank asks for a block of columns of model.weight ([0:7),
 * [7:14), [14:20)), so the load reshards row blocks into column blocks, plus
 * the whole bias and the bytes item.
 *
 * Exits 0 only if the save and the load succeed on every rank and every
 * loaded element is bit-identical to the saved one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dcp/dcp.h>

#define SAVE_RANKS 4
#define LOAD_RANKS 3
#define ROWS       10
#define COLS       20

/* Row blocks of the save: rank r holds rows [SAVE_ROWS[r], SAVE_ROWS[r + 1]). */
static const uint64_t SAVE_ROWS[SAVE_RANKS + 1] = {0, 2, 3, 7, 10};
/* Column blocks of the load: rank r wants columns [LOAD_COLS[r], LOAD_COLS[r + 1]). */
static const uint64_t LOAD_COLS[LOAD_RANKS + 1] = {0, 7, 14, 20};

static const char TRAIN_STATE[] = "step=1200 lr=3e-4 seed=42";

/* The saved value of model.weight[r][c]: exact in f32, distinct per element. */
static float weight_value(uint64_t r, uint64_t c)
{
	return (float)(r * 1000 + c) + 0.25f;
}

static float bias_value(uint64_t c)
{
	return -0.5f * (float)c;
}

/* What one rank reports back to main. Each rank writes only its own slot. */
typedef struct rank_report {
	int status;          /* DCP_OK or the first failing call's code */
	uint64_t checked;    /* elements and bytes compared after the load */
	uint64_t mismatched; /* of those, how many differ */
} rank_report;

typedef struct example {
	const char *url;
	rank_report save[SAVE_RANKS];
	rank_report load[LOAD_RANKS];
} example;

/* Prints a failed collective call once (from rank 0; every rank has the same error). */
static void report_error(int rank, const char *what, int rc, const dcp_error *err)
{
	if (rank != 0)
		return;
	fprintf(stderr, "dcp-example-mem: %s failed: %s\n", what, dcp_strerror(rc));
	if (err != NULL) {
		char *text = dcp_error_format(err);
		fprintf(stderr, "%s", text != NULL ? text : "(out of memory while formatting the error)\n");
		free(text);
	}
}

static int save_rank(dcp_comm *comm, int rank, void *arg)
{
	example *ex = arg;
	rank_report *rep = &ex->save[rank];
	const uint64_t shape[2] = {ROWS, COLS};
	const uint64_t offsets[2] = {SAVE_ROWS[rank], 0};
	const uint64_t sizes[2] = {SAVE_ROWS[rank + 1] - SAVE_ROWS[rank], COLS};
	const uint64_t bias_shape[1] = {COLS};
	float bias[COLS];
	char train_state[sizeof TRAIN_STATE];
	dcp_error *err = NULL;
	dcp_state *state = NULL;
	float *rows = malloc(sizes[0] * COLS * sizeof *rows);
	int rc = DCP_ENOMEM;

	if (rows == NULL) {
		fprintf(stderr, "dcp-example-mem: rank %d: out of memory for %llu rows\n", rank,
		        (unsigned long long)sizes[0]);
		goto out;
	}
	for (uint64_t r = 0; r < sizes[0]; r++)
		for (uint64_t c = 0; c < COLS; c++)
			rows[r * COLS + c] = weight_value(offsets[0] + r, c);
	for (uint64_t c = 0; c < COLS; c++)
		bias[c] = bias_value(c);
	memcpy(train_state, TRAIN_STATE, sizeof train_state);

	state = dcp_state_new();
	if (state == NULL) {
		fprintf(stderr, "dcp-example-mem: rank %d: out of memory for a state\n", rank);
		goto out;
	}
	rc = dcp_state_add_shard(state, "model.weight", DCP_F32, 2, shape, offsets, sizes, rows);
	if (rc == DCP_OK)
		rc = dcp_state_add_tensor(state, "model.bias", DCP_F32, 1, bias_shape, bias);
	if (rc == DCP_OK)
		rc = dcp_state_add_bytes(state, "train.state", train_state, sizeof train_state);
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp-example-mem: rank %d: building the state failed: %s\n", rank,
		        dcp_state_last_error(state));
		goto out;
	}

	/* Collective: every rank calls it; all succeed or all get the same error. */
	rc = dcp_save(state, ex->url, comm, NULL, &err);
	if (rc != DCP_OK)
		report_error(rank, "save", rc, err);
out:
	rep->status = rc;
	dcp_error_free(err);
	dcp_state_free(state);
	free(rows);
	return rc;
}

static int load_rank(dcp_comm *comm, int rank, void *arg)
{
	example *ex = arg;
	rank_report *rep = &ex->load[rank];
	const uint64_t shape[2] = {ROWS, COLS};
	const uint64_t offsets[2] = {0, LOAD_COLS[rank]};
	const uint64_t sizes[2] = {ROWS, LOAD_COLS[rank + 1] - LOAD_COLS[rank]};
	const uint64_t bias_shape[1] = {COLS};
	float bias[COLS];
	dcp_error *err = NULL;
	dcp_state *state = NULL;
	const void *bytes = NULL;
	size_t bytes_len = 0;
	float *cols = malloc(ROWS * sizes[1] * sizeof *cols);
	int rc = DCP_ENOMEM;

	if (cols == NULL) {
		fprintf(stderr, "dcp-example-mem: rank %d: out of memory for %llu columns\n", rank,
		        (unsigned long long)sizes[1]);
		goto out;
	}
	/* Poison the destinations so that an element the load misses is seen. */
	memset(cols, 0xff, ROWS * sizes[1] * sizeof *cols);
	memset(bias, 0xff, sizeof bias);

	state = dcp_state_new();
	if (state == NULL) {
		fprintf(stderr, "dcp-example-mem: rank %d: out of memory for a state\n", rank);
		goto out;
	}
	rc = dcp_state_add_shard(state, "model.weight", DCP_F32, 2, shape, offsets, sizes, cols);
	if (rc == DCP_OK)
		rc = dcp_state_add_tensor(state, "model.bias", DCP_F32, 1, bias_shape, bias);
	if (rc == DCP_OK) /* NULL: the state allocates a buffer of the stored size */
		rc = dcp_state_add_bytes(state, "train.state", NULL, 0);
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp-example-mem: rank %d: building the state failed: %s\n", rank,
		        dcp_state_last_error(state));
		goto out;
	}

	rc = dcp_load(state, ex->url, comm, NULL, &err);
	if (rc != DCP_OK) {
		report_error(rank, "load", rc, err);
		goto out;
	}

	/* Bit-exact comparison, element by element. */
	for (uint64_t r = 0; r < ROWS; r++) {
		for (uint64_t c = 0; c < sizes[1]; c++) {
			float want = weight_value(r, offsets[1] + c);
			const float *got = &cols[r * sizes[1] + c];
			rep->checked++;
			if (memcmp(got, &want, sizeof want) != 0) {
				if (rep->mismatched++ == 0)
					fprintf(stderr,
					        "dcp-example-mem: rank %d: model.weight[%llu][%llu] is %g, "
					        "saved %g\n",
					        rank, (unsigned long long)r,
					        (unsigned long long)(offsets[1] + c), (double)*got,
					        (double)want);
			}
		}
	}
	for (uint64_t c = 0; c < COLS; c++) {
		float want = bias_value(c);
		rep->checked++;
		if (memcmp(&bias[c], &want, sizeof want) != 0) {
			if (rep->mismatched++ == 0)
				fprintf(stderr,
				        "dcp-example-mem: rank %d: model.bias[%llu] is %g, saved %g\n", rank,
				        (unsigned long long)c, (double)bias[c], (double)want);
		}
	}
	rc = dcp_state_get_bytes(state, "train.state", &bytes, &bytes_len);
	rep->checked += sizeof TRAIN_STATE;
	if (rc != DCP_OK || bytes_len != sizeof TRAIN_STATE || memcmp(bytes, TRAIN_STATE, bytes_len) != 0) {
		rep->mismatched += sizeof TRAIN_STATE;
		fprintf(stderr,
		        "dcp-example-mem: rank %d: train.state is %zu bytes and differs from the %zu saved\n",
		        rank, bytes_len, sizeof TRAIN_STATE);
	}
	rc = DCP_OK;
out:
	rep->status = rc;
	dcp_error_free(err);
	dcp_state_free(state);
	free(cols);
	return rc;
}

/* Prints "[a:b) [b:c) ..." for a block table. */
static void print_blocks(const uint64_t *bounds, int n)
{
	for (int i = 0; i < n; i++)
		printf("%s[%llu:%llu)", i ? " " : "", (unsigned long long)bounds[i],
		       (unsigned long long)bounds[i + 1]);
}

int main(int argc, char **argv)
{
	example ex;
	int results[SAVE_RANKS];
	uint64_t checked = 0, mismatched = 0;
	int rc;

	if (argc > 2 || (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))) {
		fprintf(stderr, "usage: %s [URL]   (default mem://example)\n", argv[0]);
		return 2;
	}
	memset(&ex, 0, sizeof ex);
	ex.url = argc == 2 ? argv[1] : "mem://example";

	rc = dcp_run_ranks(SAVE_RANKS, save_rank, &ex, results);
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp-example-mem: could not start %d rank threads: %s\n", SAVE_RANKS,
		        dcp_strerror(rc));
		return 1;
	}
	for (int r = 0; r < SAVE_RANKS; r++)
		if (ex.save[r].status != DCP_OK) {
			fprintf(stderr, "dcp-example-mem: the save to %s failed (rank %d: %s)\n", ex.url, r,
			        dcp_strerror(ex.save[r].status));
			return 1;
		}
	printf("saved to %s from %d ranks:\n", ex.url, SAVE_RANKS);
	printf("  model.weight  f32[%d,%d], rows ", ROWS, COLS);
	print_blocks(SAVE_ROWS, SAVE_RANKS);
	printf("\n  model.bias    f32[%d], replicated on every rank\n", COLS);
	printf("  train.state   %zu bytes, replicated on every rank\n", sizeof TRAIN_STATE);

	rc = dcp_run_ranks(LOAD_RANKS, load_rank, &ex, results);
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp-example-mem: could not start %d rank threads: %s\n", LOAD_RANKS,
		        dcp_strerror(rc));
		return 1;
	}
	for (int r = 0; r < LOAD_RANKS; r++) {
		if (ex.load[r].status != DCP_OK) {
			fprintf(stderr, "dcp-example-mem: the load from %s failed (rank %d: %s)\n", ex.url, r,
			        dcp_strerror(ex.load[r].status));
			return 1;
		}
		checked += ex.load[r].checked;
		mismatched += ex.load[r].mismatched;
	}
	printf("loaded with %d ranks: model.weight columns ", LOAD_RANKS);
	print_blocks(LOAD_COLS, LOAD_RANKS);
	printf(", model.bias and train.state on every rank\n");
	printf("checked %llu values (elements and bytes): %llu differ\n", (unsigned long long)checked,
	       (unsigned long long)mismatched);
	if (mismatched != 0) {
		printf("FAILED\n");
		return 1;
	}
	printf("OK\n");
	return 0;
}
