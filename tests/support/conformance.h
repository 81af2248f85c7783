/*
 * The storage plugin conformance suite: what every storage plugin must do,
 * written once and run against each plugin's base URL.
 *
 * The list of plugins under test is tests/conformance/targets.def (one line
 * per plugin); tests/test_conformance.c runs every case on every target. A
 * test program that must set up its own storage first (e.g. an S3 server)
 * can call the cases directly with a target of its own.
 *
 * Every case runs on the test's main thread and uses Criterion assertions.
 */
#ifndef DCP_TESTS_SUPPORT_CONFORMANCE_H
#define DCP_TESTS_SUPPORT_CONFORMANCE_H

#include <stddef.h>

/* The checkpoint's objects are plain files under the URL's path (file://):
 * the suite may list, corrupt, truncate and delete them. */
#define CONF_LOCAL_FILES 1u

typedef struct conf_target {
	const char *name; /* short name for messages: "mem", "fs" */
	/*
	 * URL prefix; each case appends its own name. "{tmp}" is replaced by a
	 * fresh directory (mkdtemp, removed after the case), "{env}" by the
	 * value of the environment variable `env`.
	 */
	const char *base;
	unsigned flags; /* CONF_* */
	/* NULL, or an environment variable that must be set for this target to
	 * run (the cases are skipped otherwise, saying why). */
	const char *env;
} conf_target;

/* Save with 4 ranks, load with 3 (and 4): every element bit-exact. */
void conf_case_round_trip(const conf_target *t);
/* Bytes items: empty, small, over a checksum block, on one or all ranks;
 * loaded into caller and library buffers. */
void conf_case_bytes(const conf_target *t);
/* A second save to the same id replaces the first: only the new one loads,
 * and the old data objects are gone (local files). */
void conf_case_overwrite(const conf_target *t);
/* overwrite = 0 on an existing checkpoint: DCP_EEXISTS on every rank, the
 * old one intact; on a fresh id it saves. */
void conf_case_no_overwrite(const conf_target *t);
/* A save failing at each writer stage (through faulty+<url>) leaves the
 * previous checkpoint loadable bit-exact and (local files) no new files. */
void conf_case_failed_save_keeps_previous(const conf_target *t);
/* Loading or reading the metadata of an id with no checkpoint:
 * DCP_ENOTFOUND on every rank. */
void conf_case_missing(const conf_target *t);
/* dcp_remove: the checkpoint is gone afterwards (skipped when the plugin
 * does not support remove). */
void conf_case_remove(const conf_target *t);
/* Local files only (skipped otherwise): a flipped byte, a truncated data
 * file and a deleted data file are load errors naming the key and file. */
void conf_case_corrupt_flipped_byte(const conf_target *t);
void conf_case_corrupt_truncated_file(const conf_target *t);
void conf_case_corrupt_deleted_file(const conf_target *t);

#endif /* DCP_TESTS_SUPPORT_CONFORMANCE_H */
