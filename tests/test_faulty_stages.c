/*
 * The faulty plugin (plugins/faulty): the plugin object, its transparency
 * when no failure is injected, and failure injection at every stage of a
 * save and a load on chosen ranks.
 *
 * Everything goes through the public API: dcp_save / dcp_load on ranks run as
 * threads by dcp_run_ranks, with "faulty+mem://..." URLs (see faultytest.h).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcp/sys/storage.h"
#include "faultytest.h"

/* ------------------------------------------------------------------------ */
/* The plugin object                                                         */
/* ------------------------------------------------------------------------ */
Test(faulty, plugin_is_found_for_faulty_schemes_and_declares_wrapper)
{
	const char *urls[] = {"faulty+mem://decl", "FAULTY+MEM://decl", "faulty+file:///tmp/decl",
	                      "faulty+s3://bucket/key"};

	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		dcp_plugin *p = NULL;
		dcp_error *err = NULL;
		int rc = dcp_registry_find(NULL, urls[i], &p, &err);

		cr_assert_eq(rc, DCP_OK, "%s: %s", urls[i], err ? dcp_error_message(err, 0) : "");
		cr_assert_str_eq(p->name, "faulty");
		cr_assert_str_eq(p->schemes[0], "faulty");
		cr_assert_null(p->schemes[1]);
		cr_assert(p->capabilities & DCP_CAP_WRAPPER);
		cr_assert_not_null(p->remove);
	}
}

/* ------------------------------------------------------------------------ */
/* Transparency: no failure means the inner plugin's behaviour              */
/* ------------------------------------------------------------------------ */
Test(faulty, without_failures_it_is_the_inner_plugin)
{
	/* Saved through faulty (with an empty failure list), loaded without. */
	ft_save_ok("faulty+mem://transparent-a?fail.write_data=&fail.finish=", 4, 0, 7, NULL);
	ft_load_ok("mem://transparent-a", 3, 0, 7, NULL);
	/* Saved without, loaded through faulty with failures for ranks that
	 * do not exist in this run. */
	ft_save_ok("mem://transparent-b", 2, 1, 9, NULL);
	ft_load_ok("faulty+mem://transparent-b?fail.read_data=5-7&fail.read_metadata=6", 4, 2, 9, NULL);
	ft_load_ok("faulty+mem://transparent-b", 1, 0, 9, NULL);
}

Test(faulty, coordinator_stages_count_only_the_coordinators_rank)
{
	/* prepare_global_plan and finish run on the coordinator (rank 1): the
	 * other ranks being listed changes nothing. */
	ft_save_ok("faulty+mem://coord-only?fail.prepare_global_plan=0,2,3&fail.finish=0,2-3", 4, 1, 3, NULL);
	ft_load_ok("faulty+mem://coord-only?fail.prepare_global_plan=0,1,3", 4, 2, 3, NULL);
}

/* ------------------------------------------------------------------------ */
/* Every save stage                                                          */
/* ------------------------------------------------------------------------ */
typedef struct stage_case {
	const char *stage;
	const char *ranks; /* the fail.<stage> value */
	int nranks;
	int coordinator;
	int want[FT_MAXR];
	size_t nwant;
} stage_case;

static void run_save_cases(const char *name, const stage_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const stage_case *c = &cases[i];
		char url[256], plain[128];

		FT_FORMAT(plain, sizeof(plain), "mem://%s-%zu", name, i);
		FT_FORMAT(url, sizeof(url), "faulty+%s?fail.%s=%s", plain, c->stage, c->ranks);
		ft_expect_stage_failure(url, 0, c->nranks, c->coordinator, 1, c->want, c->nwant, c->stage);
		/* A failed save commits nothing. */
		cr_assert_not(ft_checkpoint_exists(plain), "%s: a checkpoint exists after a failed save",
		              url);
	}
}

Test(faulty, save_set_up_storage_writer)
{
	const stage_case cases[] = {
	        {"set_up_storage_writer", "1", 4, 0, {1}, 1},
	        {"set_up_storage_writer", "0,2,3", 4, 2, {0, 2, 3}, 3},
	        {"set_up_storage_writer", "*", 4, 3, {0, 1, 2, 3}, 4},
	        {"set_up_storage_writer", "0", 1, 0, {0}, 1},
	};
	run_save_cases("setup-w", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, save_prepare_local_plan)
{
	const stage_case cases[] = {
	        {"prepare_local_plan", "0", 4, 0, {0}, 1},
	        {"prepare_local_plan", "1-2", 4, 3, {1, 2}, 2},
	        {"prepare_local_plan", "0", 1, 0, {0}, 1},
	};
	run_save_cases("lplan-w", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, save_prepare_global_plan)
{
	const stage_case cases[] = {
	        {"prepare_global_plan", "0", 4, 0, {0}, 1},
	        {"prepare_global_plan", "1", 4, 1, {1}, 1},
	        {"prepare_global_plan", "*", 4, 3, {3}, 1},
	        {"prepare_global_plan", "0", 1, 0, {0}, 1},
	};
	run_save_cases("gplan-w", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, save_write_data)
{
	const stage_case cases[] = {
	        {"write_data", "2,3", 4, 0, {2, 3}, 2},
	        {"write_data", "1", 4, 1, {1}, 1},
	        {"write_data", "0", 1, 0, {0}, 1},
	};
	run_save_cases("write-w", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, save_write_data_async)
{
	const stage_case cases[] = {
	        {"write_data_async", "1", 4, 0, {1}, 1},
	        {"write_data_async", "0-3", 4, 2, {0, 1, 2, 3}, 4},
	        {"write_data_async", "0", 1, 0, {0}, 1},
	};
	run_save_cases("async-w", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, save_finish)
{
	const stage_case cases[] = {
	        {"finish", "2", 4, 2, {2}, 1},
	        {"finish", "*", 4, 0, {0}, 1},
	        {"finish", "0", 1, 0, {0}, 1},
	};
	run_save_cases("finish-w", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, failed_save_keeps_the_previous_checkpoint)
{
	const int want[] = {3};

	ft_save_ok("mem://keep-prev", 4, 0, 11, NULL);
	ft_expect_stage_failure("faulty+mem://keep-prev?fail.write_data_async=3", 0, 4, 0, 12, want, 1,
	                        "write_data_async");
	ft_expect_stage_failure("faulty+mem://keep-prev?fail.finish=3", 0, 4, 3, 13, want, 1, "finish");
	ft_load_ok("mem://keep-prev", 2, 0, 11, NULL);
}

/* ------------------------------------------------------------------------ */
/* Every load stage                                                          */
/* ------------------------------------------------------------------------ */
static void run_load_cases(const char *name, const stage_case *cases, size_t n)
{
	char plain[128];

	FT_FORMAT(plain, sizeof(plain), "mem://%s", name);
	ft_save_ok(plain, 4, 0, 5, NULL);
	for (size_t i = 0; i < n; i++) {
		const stage_case *c = &cases[i];
		char url[256];

		FT_FORMAT(url, sizeof(url), "faulty+%s?fail.%s=%s", plain, c->stage, c->ranks);
		ft_expect_stage_failure(url, 1, c->nranks, c->coordinator, 5, c->want, c->nwant, c->stage);
	}
	/* The checkpoint is untouched by failed loads. */
	ft_load_ok(plain, 3, 1, 5, NULL);
}

/* Only the coordinator reads the metadata (the others get it from it): a
 * fault there fails the load with the coordinator's rank alone; a fault on
 * another rank is never reached. */
Test(faulty, load_read_metadata)
{
	const stage_case cases[] = {
	        {"read_metadata", "0", 4, 0, {0}, 1},
	        {"read_metadata", "0,1", 4, 1, {1}, 1},
	        {"read_metadata", "0", 1, 0, {0}, 1},
	};
	run_load_cases("md-r", cases, sizeof(cases) / sizeof(cases[0]));
	ft_load_ok("faulty+mem://md-r?fail.read_metadata=1-3", 4, 0, 5, NULL);
}

Test(faulty, load_set_up_storage_reader)
{
	const stage_case cases[] = {
	        {"set_up_storage_reader", "1", 4, 0, {1}, 1},
	        {"set_up_storage_reader", "*", 3, 2, {0, 1, 2}, 3},
	        {"set_up_storage_reader", "0", 1, 0, {0}, 1},
	};
	run_load_cases("setup-r", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, load_prepare_local_plan)
{
	const stage_case cases[] = {
	        {"prepare_local_plan", "0,2", 4, 0, {0, 2}, 2},
	        {"prepare_local_plan", "0", 1, 0, {0}, 1},
	};
	run_load_cases("lplan-r", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, load_prepare_global_plan)
{
	const stage_case cases[] = {
	        {"prepare_global_plan", "*", 4, 3, {3}, 1},
	        {"prepare_global_plan", "2", 4, 2, {2}, 1},
	        {"prepare_global_plan", "0", 1, 0, {0}, 1},
	};
	run_load_cases("gplan-r", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, load_read_data)
{
	const stage_case cases[] = {
	        {"read_data", "3", 4, 0, {3}, 1},
	        {"read_data", "0-1", 2, 1, {0, 1}, 2},
	        {"read_data", "0", 1, 0, {0}, 1},
	};
	run_load_cases("read-r", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, load_read_data_async)
{
	const stage_case cases[] = {
	        {"read_data_async", "1", 4, 0, {1}, 1},
	        {"read_data_async", "0,3", 4, 3, {0, 3}, 2},
	        {"read_data_async", "0", 1, 0, {0}, 1},
	};
	run_load_cases("async-r", cases, sizeof(cases) / sizeof(cases[0]));
}

Test(faulty, several_stages_in_one_url_fail_each_rank_at_its_stage)
{
	const int want[] = {0, 2};
	const char *stages[] = {"prepare_local_plan", "set_up_storage_writer"};
	ft_run r = {.url = "faulty+mem://multi?fail.set_up_storage_writer=2&fail.prepare_local_plan=0",
	            .nranks = 4,
	            .coordinator = 1};

	ft_run_ranks(&r);
	ft_expect_injected(&r, want, 2, stages, 2);
	ft_run_clear(&r);
}
