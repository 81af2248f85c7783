/*
 * Test support for the faulty plugin's suites: a rank's state, runs of a
 * save or a load on N thread-ranks and their checks, scenario files.
 * See faultytest.h for the contracts.
 */
#include "faultytest.h"

#include <criterion/criterion.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROWS 8
#define COLS 4

/* ------------------------------------------------------------------------ */
/* A rank's state: a row-sharded f32 [8,4], a replicated f32 [4], bytes.     */
/* ------------------------------------------------------------------------ */
typedef struct rank_state {
	dcp_state *state;
	float shard[ROWS * COLS];
	float rep[COLS];
	char bytes[32];
	uint64_t row0, nrows;
} rank_state;

static float value_at(int salt, uint64_t row, uint64_t col)
{
	return (float)(salt * 1000 + (int)(row * COLS + col)) * 0.5f;
}

/* Builds rank's state of an nranks-way row split; zeroed buffers for a load. */
static int rank_state_init(rank_state *rs, int rank, int nranks, int salt, int for_load)
{
	uint64_t shape[2] = {ROWS, COLS}, rshape[1] = {COLS};
	uint64_t offsets[2], sizes[2];
	int rc;

	memset(rs, 0, sizeof(*rs));
	rs->row0 = (uint64_t)rank * ROWS / (uint64_t)nranks;
	rs->nrows = (uint64_t)(rank + 1) * ROWS / (uint64_t)nranks - rs->row0;
	for (uint64_t r = 0; r < rs->nrows && !for_load; r++)
		for (uint64_t c = 0; c < COLS; c++)
			rs->shard[r * COLS + c] = value_at(salt, rs->row0 + r, c);
	for (int c = 0; c < COLS && !for_load; c++)
		rs->rep[c] = (float)(salt + c);
	if (!for_load)
		snprintf(rs->bytes, sizeof(rs->bytes), "step=%d", salt);
	rs->state = dcp_state_new();
	if (rs->state == NULL)
		return DCP_ENOMEM;
	offsets[0] = rs->row0;
	offsets[1] = 0;
	sizes[0] = rs->nrows;
	sizes[1] = COLS;
	rc = DCP_OK;
	if (rs->nrows > 0)
		rc = dcp_state_add_shard(rs->state, "model.w", DCP_F32, 2, shape, offsets, sizes, rs->shard);
	if (rc == DCP_OK)
		rc = dcp_state_add_tensor(rs->state, "model.r", DCP_F32, 1, rshape, rs->rep);
	if (rc == DCP_OK)
		rc = dcp_state_add_bytes(rs->state, "step", rs->bytes,
		                         for_load ? sizeof(rs->bytes) : strlen(rs->bytes));
	return rc;
}

/* 1 if a loaded state holds what rank_state_init(salt) saved. */
static int rank_state_check(const rank_state *rs, int salt)
{
	char expect[32];
	const void *data = NULL;
	size_t len = 0;

	for (uint64_t r = 0; r < rs->nrows; r++)
		for (uint64_t c = 0; c < COLS; c++)
			if (rs->shard[r * COLS + c] != value_at(salt, rs->row0 + r, c))
				return 0;
	for (int c = 0; c < COLS; c++)
		if (rs->rep[c] != (float)(salt + c))
			return 0;
	snprintf(expect, sizeof(expect), "step=%d", salt);
	if (dcp_state_get_bytes(rs->state, "step", &data, &len) != DCP_OK)
		return 0;
	return len == strlen(expect) && memcmp(data, expect, len) == 0;
}

/* ------------------------------------------------------------------------ */
/* Running a save or a load on N ranks                                       */
/* ------------------------------------------------------------------------ */
/* Running a save or a load on N ranks                                       */
/* ------------------------------------------------------------------------ */
static int rank_main(dcp_comm *comm, int rank, void *arg)
{
	ft_run *r = arg;
	rank_state rs;
	int rc = rank_state_init(&rs, rank, r->nranks, r->salt, r->load);

	if (rc != DCP_OK) {
		dcp_state_free(rs.state);
		r->rc[rank] = rc;
		return rc;
	}
	if (r->load) {
		dcp_load_options o = DCP_LOAD_OPTIONS_INIT;
		o.coordinator = r->coordinator;
		o.registry = r->reg;
		rc = dcp_load(rs.state, r->url, comm, &o, &r->err[rank]);
		r->data_ok[rank] = rc == DCP_OK && rank_state_check(&rs, r->salt);
	} else {
		dcp_save_options o = DCP_SAVE_OPTIONS_INIT;
		o.coordinator = r->coordinator;
		o.registry = r->reg;
		rc = dcp_save(rs.state, r->url, comm, &o, &r->err[rank]);
	}
	r->rc[rank] = rc;
	dcp_state_free(rs.state);
	return rc;
}

void ft_run_ranks(ft_run *r)
{
	cr_assert(r->nranks >= 1 && r->nranks <= FT_MAXR);
	for (int i = 0; i < FT_MAXR; i++) {
		r->err[i] = NULL;
		r->rc[i] = -999;
		r->data_ok[i] = 0;
	}
	cr_assert_eq(dcp_run_ranks(r->nranks, rank_main, r, NULL), DCP_OK, "dcp_run_ranks failed to start");
}

void ft_run_clear(ft_run *r)
{
	for (int i = 0; i < FT_MAXR; i++) {
		dcp_error_free(r->err[i]);
		r->err[i] = NULL;
	}
}

void ft_save_ok(const char *url, int nranks, int coordinator, int salt, dcp_registry *reg)
{
	ft_run r = {.url = url, .nranks = nranks, .coordinator = coordinator, .salt = salt, .reg = reg};
	ft_run_ranks(&r);
	for (int i = 0; i < nranks; i++) {
		char *text = r.err[i] ? dcp_error_format(r.err[i]) : NULL;
		cr_assert_eq(r.rc[i], DCP_OK, "save to %s failed on rank %d: %s", url, i, text ? text : "?");
		free(text);
	}
	ft_run_clear(&r);
}

void ft_load_ok(const char *url, int nranks, int coordinator, int salt, dcp_registry *reg)
{
	ft_run r = {.url = url,
	            .nranks = nranks,
	            .coordinator = coordinator,
	            .load = 1,
	            .salt = salt,
	            .reg = reg};
	ft_run_ranks(&r);
	for (int i = 0; i < nranks; i++) {
		char *text = r.err[i] ? dcp_error_format(r.err[i]) : NULL;
		cr_assert_eq(r.rc[i], DCP_OK, "load from %s failed on rank %d: %s", url, i,
		             text ? text : "?");
		free(text);
		cr_assert(r.data_ok[i], "load from %s on rank %d: the data differ from what was saved", url,
		          i);
	}
	ft_run_clear(&r);
}

/*
 * Checks that every rank failed with an equal error whose failing ranks are
 * exactly want[0..nwant-1] (ascending), each an injected failure whose
 * message names the stage given for it (stages[i], or stages[0] for all).
 */
void ft_expect_injected(const ft_run *r, const int *want, size_t nwant, const char *const *stages,
                        size_t nstages)
{
	char *first = NULL;

	for (int rank = 0; rank < r->nranks; rank++) {
		const dcp_error *e = r->err[rank];
		char *text;

		cr_assert_neq(r->rc[rank], DCP_OK, "%s: rank %d succeeded, expected an injected failure",
		              r->url, rank);
		cr_assert_not_null(e, "%s: rank %d failed with no error object", r->url, rank);
		text = dcp_error_format(e);
		cr_assert_not_null(text);
		cr_assert_eq(r->rc[rank], dcp_error_code(e), "%s: rank %d returned %d but its error says %d",
		             r->url, rank, r->rc[rank], dcp_error_code(e));
		cr_assert_eq(dcp_error_count(e), nwant, "%s: rank %d: expected %zu failing ranks, got:\n%s",
		             r->url, rank, nwant, text);
		for (size_t i = 0; i < nwant; i++) {
			const char *stage = stages[nstages == 1 ? 0 : i];
			char expect[256];

			cr_assert_eq(dcp_error_rank(e, i), want[i],
			             "%s: entry %zu is rank %d, expected %d:\n%s", r->url, i,
			             dcp_error_rank(e, i), want[i], text);
			cr_assert_eq(dcp_error_entry_code(e, i), DCP_EINJECTED,
			             "%s: rank %d's code is %s:\n%s", r->url, want[i],
			             dcp_strerror(dcp_error_entry_code(e, i)), text);
			snprintf(expect, sizeof(expect),
			         "injected failure at %s on rank %d (faulty plugin: fail.%s)", stage, want[i],
			         stage);
			cr_assert_not_null(strstr(dcp_error_message(e, i), expect),
			                   "%s: rank %d's message lacks \"%s\":\n%s", r->url, want[i], expect,
			                   text);
			/* write_data_async fails in write_data's future: the core
			 * names the slot, the message names the injected stage. */
			const char *async = strstr(stage, "_async");
			int slot_len = async != NULL ? (int)(async - stage) : (int)strlen(stage);
			char slot[64];
			snprintf(slot, sizeof(slot), "%.*s", slot_len, stage);
			cr_assert_str_eq(dcp_error_stage(e, i), slot, "%s: rank %d's stage:\n%s", r->url,
			                 want[i], text);
		}
		for (int other = 0; other < r->nranks; other++) {
			int listed = 0;
			for (size_t i = 0; i < nwant; i++)
				listed |= want[i] == other;
			cr_assert_eq(dcp_error_has_rank(e, other), listed, "%s: rank %d listed=%d:\n%s",
			             r->url, other, !listed, text);
		}
		if (first == NULL) {
			first = text;
		} else {
			cr_assert_str_eq(text, first, "%s: rank %d's error differs from rank 0's", r->url,
			                 rank);
			free(text);
		}
	}
	free(first);
}

/* Runs a save or load of url on nranks with coordinator, expecting exactly
 * the ranks of `want` (a rank list, ascending) to fail at stage. */
void ft_expect_stage_failure(const char *url, int load, int nranks, int coordinator, int salt,
                             const int *want, size_t nwant, const char *stage)
{
	ft_run r = {.url = url, .nranks = nranks, .coordinator = coordinator, .load = load, .salt = salt};
	ft_run_ranks(&r);
	ft_expect_injected(&r, want, nwant, &stage, 1);
	ft_run_clear(&r);
}

/* 1 if a committed checkpoint is at url. */
int ft_checkpoint_exists(const char *url)
{
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata(url, NULL, &md, &err);

	dcp_metadata_free(md);
	dcp_error_free(err);
	return rc == DCP_OK;
}
/* ------------------------------------------------------------------------ */
/* Scenario files                                                            */
/* ------------------------------------------------------------------------ */
/* The conf/faults folder of the source tree (see the file comment). */
void ft_faults_dir(char *out, size_t len)
{
	const char *src = getenv("DCP_SOURCE_DIR");
	char exe[PATH_MAX];
	ssize_t n;

	if (src != NULL && src[0] != '\0') {
		FT_FORMAT(out, len, "%s/conf/faults", src);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert(n > 0, "cannot find this test's executable to locate conf/faults; set DCP_SOURCE_DIR");
	exe[n] = '\0';
	FT_FORMAT(out, len, "%s/../../conf/faults", dirname(exe));
}

void ft_scenario_path(const char *name, char *out, size_t len)
{
	char dir[PATH_MAX];

	ft_faults_dir(dir, sizeof(dir));
	FT_FORMAT(out, len, "%s/%s", dir, name);
	cr_assert_eq(access(out, R_OK), 0,
	             "scenario file %s not found; set DCP_SOURCE_DIR to the source tree", out);
}

/* Writes text to a new file in a fresh temporary folder; returns its path. */
void ft_temp_file(const char *name, const char *text, char *out, size_t len)
{
	char dir[] = "/tmp/dcp-test-faulty-XXXXXX";
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	FT_FORMAT(out, len, "%s/%s", dir, name);
	f = fopen(out, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

void ft_temp_remove(const char *path)
{
	char copy[PATH_MAX];

	FT_FORMAT(copy, sizeof(copy), "%s", path);
	unlink(path);
	rmdir(dirname(copy));
}
