/*
 * Test support for the faulty plugin's suites (tests/test_faulty_*.c),
 * written against the public API only.
 *
 * Pieces:
 * - A rank's state: a row-sharded f32 [8,4], a replicated f32 [4] and a
 *   bytes item, with values that depend on a salt, so that a load can be
 *   checked against the save it comes from.
 * - Runners: a save or a load of one URL on N thread-ranks (dcp_run_ranks),
 *   collecting every rank's status and error object (ft_run), and the checks
 *   of their outcome: every rank succeeded (ft_save_ok, ft_load_ok), or every
 *   rank failed alike with injected failures on exactly the expected ranks
 *   (ft_expect_injected, ft_expect_stage_failure).
 * - Scenario files: where conf/faults is, and temporary scenario files.
 *
 * Threads: everything here runs on the test's main thread (Criterion
 * assertions), except what ft_run_ranks runs on the ranks' threads.
 */
#ifndef DCP_TESTS_SUPPORT_FAULTYTEST_H
#define DCP_TESTS_SUPPORT_FAULTYTEST_H

#include <stddef.h>

#include "dcp/dcp.h"

/* The most ranks a run may have. */
#define FT_MAXR 8

/* snprintf into a path or URL buffer, failing the test if it does not fit
 * (a Criterion assertion: include <criterion/criterion.h> and <stdio.h>). */
#define FT_FORMAT(buf, len, ...) cr_assert(snprintf(buf, len, __VA_ARGS__) < (int)(len), "%s: too long", #buf)

/* ------------------------------------------------------------------------ */
/* Running a save or a load on N ranks                                       */
/* ------------------------------------------------------------------------ */
typedef struct ft_run {
	const char *url;
	int nranks;
	int coordinator;
	int load; /* 0: save, 1: load */
	int salt;
	dcp_registry *reg; /* NULL: the default registry */
	int rc[FT_MAXR];
	dcp_error *err[FT_MAXR];
	int data_ok[FT_MAXR]; /* load: the state matched */
} ft_run;

/* Runs r's save or load on r->nranks thread-ranks (1..FT_MAXR) and waits for
 * all; fills r->rc, r->err (owned: free with ft_run_clear) and r->data_ok. */
void ft_run_ranks(ft_run *r);
/* Frees the error objects of a run. */
void ft_run_clear(ft_run *r);

/* A save (salt's values) of url on nranks that must succeed on every rank. */
void ft_save_ok(const char *url, int nranks, int coordinator, int salt, dcp_registry *reg);
/* A load of url on nranks that must succeed on every rank with salt's values. */
void ft_load_ok(const char *url, int nranks, int coordinator, int salt, dcp_registry *reg);

/*
 * Checks that every rank failed with an equal error whose failing ranks are
 * exactly want[0..nwant-1] (ascending), each an injected failure whose
 * message names the stage given for it (stages[i], or stages[0] for all).
 */
void ft_expect_injected(const ft_run *r, const int *want, size_t nwant, const char *const *stages,
                        size_t nstages);
/* Runs a save or load of url on nranks with coordinator, expecting exactly
 * the ranks of `want` (a rank list, ascending) to fail at stage. */
void ft_expect_stage_failure(const char *url, int load, int nranks, int coordinator, int salt,
                             const int *want, size_t nwant, const char *stage);

/* 1 if a committed checkpoint is at url. */
int ft_checkpoint_exists(const char *url);

/* ------------------------------------------------------------------------ */
/* Scenario files                                                            */
/* ------------------------------------------------------------------------ */
/* The conf/faults folder of the source tree: $DCP_SOURCE_DIR/conf/faults
 * (ctest sets it), else ../../conf/faults relative to the test executable
 * (build/bin/test_faulty_* in a build folder at the top of the source tree). */
void ft_faults_dir(char *out, size_t len);
/* The path of conf/faults/<name>; fails the test if it cannot be read. */
void ft_scenario_path(const char *name, char *out, size_t len);
/* Writes text to a new file in a fresh temporary folder; returns its path
 * in out. Remove both with ft_temp_remove. */
void ft_temp_file(const char *name, const char *text, char *out, size_t len);
void ft_temp_remove(const char *path);

#endif /* DCP_TESTS_SUPPORT_FAULTYTEST_H */
