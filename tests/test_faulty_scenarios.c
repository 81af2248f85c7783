/*
 * The faulty plugin (plugins/faulty): scenario files from conf/faults, their
 * interplay with fail.<stage> URL parameters, and the faulty plugin wrapping
 * the fs plugin.
 *
 * Everything goes through the public API: dcp_save / dcp_load on ranks run as
 * threads by dcp_run_ranks (see faultytest.h).
 *
 * Scenario files are found in $DCP_SOURCE_DIR/conf/faults (ctest sets it),
 * else in ../../conf/faults relative to this executable (build/bin/ in a
 * build folder at the top of the source tree).
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "faultytest.h"

/* ------------------------------------------------------------------------ */
/* Scenario files                                                            */
/* ------------------------------------------------------------------------ */
Test(faulty, scenario_write_async_rank1)
{
	char path[PATH_MAX], url[PATH_MAX + 64];
	const int want[] = {1};

	ft_scenario_path("write-async-rank1.json", path, sizeof(path));
	FT_FORMAT(url, sizeof(url), "faulty+mem://scen-async?faults=%s", path);
	ft_expect_stage_failure(url, 0, 4, 0, 1, want, 1, "write_data_async");
	cr_assert_not(ft_checkpoint_exists("mem://scen-async"));
}

Test(faulty, scenario_finish_coordinator)
{
	char path[PATH_MAX], url[PATH_MAX + 64];

	ft_scenario_path("finish-coordinator.json", path, sizeof(path));
	FT_FORMAT(url, sizeof(url), "faulty+mem://scen-finish?faults=%s", path);
	for (int coord = 0; coord < 4; coord++) {
		const int want[] = {coord};
		ft_expect_stage_failure(url, 0, 4, coord, 1, want, 1, "finish");
	}
	cr_assert_not(ft_checkpoint_exists("mem://scen-finish"));
	/* The same file does nothing to a load. */
	ft_save_ok("mem://scen-finish", 4, 0, 2, NULL);
	ft_load_ok(url, 4, 0, 2, NULL);
}

Test(faulty, scenario_read_ranks_1_3)
{
	char path[PATH_MAX], url[PATH_MAX + 64];
	const int want[] = {1, 3};

	ft_scenario_path("read-ranks-1-3.json", path, sizeof(path));
	FT_FORMAT(url, sizeof(url), "faulty+mem://scen-read?faults=%s", path);
	/* The scenario has no save stage: the save goes through. */
	ft_save_ok(url, 4, 0, 4, NULL);
	ft_expect_stage_failure(url, 1, 4, 0, 4, want, 2, "read_data");
	ft_load_ok("mem://scen-read", 4, 0, 4, NULL);
}

Test(faulty, scenario_plan_ranks_0_2)
{
	char path[PATH_MAX], url[PATH_MAX + 64];
	const int want[] = {0, 2};
	const char *stages[] = {"prepare_local_plan", "set_up_storage_writer"};
	ft_run r = {.nranks = 4, .coordinator = 3};

	ft_scenario_path("plan-ranks-0-2.json", path, sizeof(path));
	FT_FORMAT(url, sizeof(url), "faulty+mem://scen-plan?faults=%s", path);
	r.url = url;
	ft_run_ranks(&r);
	ft_expect_injected(&r, want, 2, stages, 2);
	ft_run_clear(&r);
	cr_assert_not(ft_checkpoint_exists("mem://scen-plan"));
}

Test(faulty, url_parameter_overrides_the_scenario_for_its_stage)
{
	char path[PATH_MAX], url[PATH_MAX + 96];
	const int want[] = {2};

	ft_scenario_path("write-async-rank1.json", path, sizeof(path));
	/* Either order of the parameters: fail.<stage> wins over the file. */
	FT_FORMAT(url, sizeof(url), "faulty+mem://scen-over?faults=%s&fail.write_data_async=2", path);
	ft_expect_stage_failure(url, 0, 4, 0, 1, want, 1, "write_data_async");
	FT_FORMAT(url, sizeof(url), "faulty+mem://scen-over?fail.write_data_async=2&faults=%s", path);
	ft_expect_stage_failure(url, 0, 4, 0, 1, want, 1, "write_data_async");
	/* An empty list switches the file's entry off. */
	FT_FORMAT(url, sizeof(url), "faulty+mem://scen-over?faults=%s&fail.write_data_async=", path);
	ft_save_ok(url, 4, 0, 1, NULL);
}

Test(faulty, every_example_scenario_is_valid)
{
	char dir[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int n = 0;

	ft_faults_dir(dir, sizeof(dir));
	d = opendir(dir);
	cr_assert_not_null(d, "cannot open %s; set DCP_SOURCE_DIR to the source tree", dir);
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char url[PATH_MAX * 2];
		dcp_error *err = NULL;
		int rc;

		if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		FT_FORMAT(url, sizeof(url), "faulty+mem://examples?faults=%s/%s", dir, e->d_name);
		rc = dcp_validate_checkpoint_id(NULL, url, 1, &err);
		cr_assert_eq(rc, DCP_OK, "%s: %s", e->d_name, err ? dcp_error_message(err, 0) : "");
		dcp_error_free(err);
		n++;
	}
	closedir(d);
	cr_assert_geq(n, 3, "expected at least 3 example scenarios in %s, found %d", dir, n);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

Test(faulty, wraps_the_fs_plugin_too)
{
	char dir[] = "/tmp/dcp-test-faulty-fs-XXXXXX";
	char plain[PATH_MAX], url[PATH_MAX + 64];
	const int w1[] = {1}, r0[] = {0};

	cr_assert_not_null(mkdtemp(dir));
	FT_FORMAT(plain, sizeof(plain), "file://%s/ckpt", dir);
	FT_FORMAT(url, sizeof(url), "faulty+%s?fail.write_data_async=1", plain);
	ft_expect_stage_failure(url, 0, 3, 0, 21, w1, 1, "write_data_async");
	cr_assert_not(ft_checkpoint_exists(plain));
	FT_FORMAT(url, sizeof(url), "faulty+%s", plain);
	ft_save_ok(url, 3, 2, 21, NULL);
	FT_FORMAT(url, sizeof(url), "faulty+%s?fail.read_data=0", plain);
	ft_expect_stage_failure(url, 1, 2, 1, 21, r0, 1, "read_data");
	ft_load_ok(plain, 2, 1, 21, NULL);
	cr_assert_eq(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0, "cannot remove %s", dir);
}
