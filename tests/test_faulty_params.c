/*
 * The faulty plugin (plugins/faulty): rejection of bad fail.<stage> URL
 * parameters and of bad scenario files, with messages that name what was
 * wrong, and a save with bad parameters failing on every rank.
 *
 * Everything goes through the public API (see faultytest.h).
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "faultytest.h"

/* ------------------------------------------------------------------------ */
/* Bad parameters                                                            */
/* ------------------------------------------------------------------------ */
/* Validates url for a save and checks the code and that the message holds
 * every one of the NULL-terminated strings. */
static void expect_rejected(dcp_registry *reg, const char *url, int code, const char *const *needles)
{
	dcp_error *err = NULL;
	int rc = dcp_validate_checkpoint_id(reg, url, 1, &err);
	const char *msg;

	cr_assert_eq(rc, code, "%s: expected %s, got %s", url, dcp_strerror(code), dcp_strerror(rc));
	cr_assert_not_null(err, "%s: no error object", url);
	msg = dcp_error_message(err, 0);
	for (size_t i = 0; needles[i] != NULL; i++)
		cr_assert_not_null(strstr(msg, needles[i]), "%s: the message lacks \"%s\": %s", url,
		                   needles[i], msg);
	dcp_error_free(err);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(faulty, bad_url_parameters_are_rejected)
{
	expect_rejected(NULL, "faulty+mem://bad?fail.write_dat=1", DCP_EID,
	                NEEDLES("fail.write_dat", "set_up_storage_writer", "write_data_async", "finish",
	                        "read_metadata", "read_data_async"));
	expect_rejected(NULL, "faulty+mem://bad?fail.=1", DCP_EID, NEEDLES("'fail.'", "prepare_global_plan"));
	expect_rejected(NULL, "faulty+mem://bad?fail=1", DCP_EID, NEEDLES("'fail'", "fail.<stage>"));
	expect_rejected(NULL, "faulty+mem://bad?fail.write_data=1-x", DCP_EID,
	                NEEDLES("fail.write_data", "1-x"));
	expect_rejected(NULL, "faulty+mem://bad?fail.finish=3-1", DCP_EID,
	                NEEDLES("fail.finish", "reversed"));
	expect_rejected(NULL, "faulty+mem://bad?fail.read_data=1,*", DCP_EID, NEEDLES("fail.read_data"));
	expect_rejected(NULL, "faulty+mem://bad?fail.read_data=70000", DCP_EID,
	                NEEDLES("fail.read_data", "70000"));
	expect_rejected(NULL, "faulty+mem://bad?faults=", DCP_EID, NEEDLES("faults", "empty"));
	expect_rejected(NULL, "faulty+mem://bad?faults=/nonexistent/dcp-scenario.json", DCP_EID,
	                NEEDLES("/nonexistent/dcp-scenario.json", "cannot open"));
	expect_rejected(NULL, "faulty://bad", DCP_EID, NEEDLES("faulty://bad", "faulty+<scheme>"));
	expect_rejected(NULL, "faulty+nosuchscheme://bad", DCP_ENOPLUGIN, NEEDLES("nosuchscheme"));
}

Test(faulty, bad_parameters_fail_a_save_on_every_rank)
{
	ft_run r = {.url = "faulty+mem://bad-save?fail.wrte_data=1", .nranks = 3, .coordinator = 0};

	ft_run_ranks(&r);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(r.rc[i], DCP_EID, "rank %d: %s", i, dcp_strerror(r.rc[i]));
		cr_assert_not_null(r.err[i]);
		cr_assert_not_null(strstr(dcp_error_message(r.err[i], 0), "fail.wrte_data"));
	}
	ft_run_clear(&r);
	cr_assert_not(ft_checkpoint_exists("mem://bad-save"));
}

Test(faulty, bad_scenario_files_are_rejected)
{
	static const struct {
		const char *text;
		const char *needles[4];
	} cases[] = {
	        {"{\"fail\": {\"write_data\": [1,}", {"not valid JSON", "line 1", NULL}},
	        {"[1, 2]", {"JSON object", NULL}},
	        {"{\"fail\": {\"wrte_data\": [1]}}",
	         {"\"wrte_data\"", "set_up_storage_writer", "read_data_async", NULL}},
	        {"{\"fails\": {\"write_data\": [1]}}", {"\"fails\"", "\"description\"", NULL}},
	        {"{\"description\": \"no fail key\"}", {"\"fail\"", NULL}},
	        {"{\"fail\": {\"write_data\": [-1]}}", {"\"write_data\"[0]", "0 to 65535", NULL}},
	        {"{\"fail\": {\"write_data\": [0, 1.5]}}", {"\"write_data\"[1]", NULL}},
	        {"{\"fail\": {\"finish\": [\"0\"]}}", {"\"finish\"[0]", NULL}},
	        {"{\"fail\": {\"finish\": true}}", {"\"finish\"", "array of ranks", NULL}},
	        {"{\"fail\": {\"finish\": \"2-\"}}", {"\"finish\"", "2-", NULL}},
	        {"{\"fail\": {}, \"description\": 3}", {"\"description\"", "string", NULL}},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[PATH_MAX], url[PATH_MAX + 64];
		const char *needles[6] = {NULL};
		size_t k = 0;

		ft_temp_file("scenario.json", cases[i].text, path, sizeof(path));
		FT_FORMAT(url, sizeof(url), "faulty+mem://bad-scen?faults=%s", path);
		needles[k++] = path;
		for (size_t j = 0; cases[i].needles[j] != NULL; j++)
			needles[k++] = cases[i].needles[j];
		expect_rejected(NULL, url, DCP_EID, needles);
		ft_temp_remove(path);
	}
}

Test(faulty, scenario_file_with_every_stage_and_both_rank_syntaxes)
{
	char path[PATH_MAX], url[PATH_MAX + 64];
	dcp_error *err = NULL;
	const int want[] = {0, 1, 2};

	ft_temp_file("all.json",
	             "{\"description\": \"every stage\", \"fail\": {\"set_up_storage_writer\": [], "
	             "\"prepare_local_plan\": \"\", \"prepare_global_plan\": [], \"write_data\": [9], "
	             "\"write_data_async\": \"0-2\", \"finish\": [], \"read_metadata\": [], "
	             "\"set_up_storage_reader\": [], \"read_data\": [], \"read_data_async\": \"*\"}}",
	             path, sizeof(path));
	FT_FORMAT(url, sizeof(url), "faulty+mem://every-stage?faults=%s", path);
	cr_assert_eq(dcp_validate_checkpoint_id(NULL, url, 1, &err), DCP_OK, "%s",
	             err ? dcp_error_message(err, 0) : "");
	ft_expect_stage_failure(url, 0, 3, 1, 1, want, 3, "write_data_async");
	ft_save_ok("mem://every-stage", 3, 1, 1, NULL);
	ft_expect_stage_failure(url, 1, 3, 1, 1, want, 3, "read_data_async");
	ft_temp_remove(path);
}
