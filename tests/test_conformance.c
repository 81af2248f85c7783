/*
 * Every storage plugin listed in tests/conformance/targets.def passes every
 * case of the conformance suite (tests/support/conformance.c): round trips
 * 4 -> 3 ranks, bytes items, overwrite, overwrite = 0, failed saves (through
 * the faulty wrapper of the same plugin) that keep the previous checkpoint,
 * missing checkpoints, remove, and corruption where the objects are files.
 * Each (case, plugin) pair is one Criterion test.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "conformance.h"
#include "dcptest.h"

static const conf_target conf_targets[] = {
#define DCP_CONFORMANCE_TARGET(name, base, flags, env) {#name, base, flags, env},
#include "conformance/targets.def"
#undef DCP_CONFORMANCE_TARGET
};

#define NTARGETS (sizeof(conf_targets) / sizeof(conf_targets[0]))

/* Parameters are indices into conf_targets (plain ints travel safely to
 * Criterion's worker processes). */
static int conf_indices[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

#define CONFORMANCE_CASE(case_)                                                                      \
	ParameterizedTestParameters(conformance, case_)                                              \
	{                                                                                            \
		_Static_assert(NTARGETS <= sizeof(conf_indices) / sizeof(conf_indices[0]),           \
		               "more conformance targets than conf_indices");                        \
		return cr_make_param_array(int, conf_indices, NTARGETS);                             \
	}                                                                                            \
	ParameterizedTest(int *target, conformance, case_, .timeout = DT_TIMEOUT)                    \
	{                                                                                            \
		cr_log_info("conformance case " #case_ " on plugin %s", conf_targets[*target].name); \
		conf_case_##case_(&conf_targets[*target]);                                           \
	}

CONFORMANCE_CASE(round_trip)
CONFORMANCE_CASE(bytes)
CONFORMANCE_CASE(overwrite)
CONFORMANCE_CASE(no_overwrite)
CONFORMANCE_CASE(failed_save_keeps_previous)
CONFORMANCE_CASE(missing)
CONFORMANCE_CASE(remove)
CONFORMANCE_CASE(corrupt_flipped_byte)
CONFORMANCE_CASE(corrupt_truncated_file)
CONFORMANCE_CASE(corrupt_deleted_file)
