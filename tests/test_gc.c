/*
 * dcp_gc on file:// and mem://: what killed saves left (data files that no
 * metadata names, temporary files of an interrupted commit) is removed when
 * old enough, young orphans are kept (a save may be writing them), the
 * committed checkpoint is never touched and still loads, a dry run removes
 * nothing, and metadata that does not decode stops everything.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "dcp/dcp.h"
#include "dcptest.h"

static dt_layout *small_layout(void)
{
	dt_layout *l = dt_layout_new();
	uint64_t shape[] = {32, 64};

	dt_split(dt_add_sharded(l, "w", DCP_F64, 2, shape), 0, 2, NULL);
	dt_add_bytes(l, "step", 8, DT_RANKS(2));
	return l;
}

static void put_file(const char *dir, const char *name, size_t n, int hours_old)
{
	char path[600];
	FILE *f;

	dt_fmt(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	cr_assert_not_null(f, "cannot create %s", path);
	for (size_t i = 0; i < n; i++)
		fputc((int)(i & 0xff), f);
	fclose(f);
	if (hours_old > 0) {
		struct timeval tv[2];
		gettimeofday(&tv[0], NULL);
		tv[0].tv_sec -= hours_old * 3600;
		tv[1] = tv[0];
		cr_assert_eq(utimes(path, tv), 0);
	}
}

static int has_file(const char *dir, const char *name)
{
	char path[600];
	struct stat st;

	dt_fmt(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.' || strcmp(e->d_name, ".metadata") == 0;
	closedir(d);
	return n;
}

static int gc(const char *url, double min_age, int dry, dcp_gc_report *r, char **text)
{
	dcp_gc_options o = DCP_GC_OPTIONS_INIT;
	dcp_error *err = NULL;
	int rc;

	o.min_age_s = min_age;
	o.dry_run = dry;
	rc = dcp_gc(url, &o, NULL, r, &err);
	if (text != NULL)
		*text = err != NULL ? dt_error_text(err) : NULL;
	dcp_error_free(err);
	return rc;
}

Test(gc, file_orphans_removed_young_and_committed_kept, .timeout = DT_TIMEOUT)
{
	char dir[256], url[300];
	dt_layout *l = small_layout();
	dcp_gc_report r;
	dt_outcome o;
	size_t committed;

	dt_mkdtemp(dir, sizeof(dir), "dcp-gc");
	dt_fmt(url, sizeof(url), "file://%s", dir);
	dt_save(l, 2, url, NULL, 7, &o);
	dt_assert_ok(&o, "save");
	dt_outcome_clear(&o);
	committed = count_files(dir);

	/* What killed saves leave: data files of other save ids, a temporary
	 * metadata file; two of them old, one as young as a save in flight. */
	put_file(dir, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp", 1000, 2);
	put_file(dir, "__1_3.00aa11bb22cc33dd44ee55ff66778899.distcp", 24, 2);
	put_file(dir, ".metadata.tmp-4242-0", 10, 2);
	put_file(dir, "__0_0.0123456789abcdef0123456789abcdef.distcp", 5, 0);
	put_file(dir, "notes.txt", 3, 2); /* the user's: never ours */

	cr_assert_eq(gc(url, 3600, 1, &r, NULL), DCP_OK);
	cr_assert_eq(r.objects_removed, 3, "dry run counted %llu", (unsigned long long)r.objects_removed);
	cr_assert_eq(r.bytes_removed, 1034);
	cr_assert_eq(r.objects_too_young, 1);
	cr_assert(has_file(dir, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp"), "a dry run removed a file");

	cr_assert_eq(gc(url, 3600, 0, &r, NULL), DCP_OK);
	cr_assert_eq(r.objects_removed, 3);
	cr_assert(!has_file(dir, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp"));
	cr_assert(!has_file(dir, "__1_3.00aa11bb22cc33dd44ee55ff66778899.distcp"));
	cr_assert(!has_file(dir, ".metadata.tmp-4242-0"));
	cr_assert(has_file(dir, "__0_0.0123456789abcdef0123456789abcdef.distcp"),
	          "a young orphan was removed");
	cr_assert(has_file(dir, "notes.txt"), "a file that is not the layout's was removed");
	cr_assert_eq(count_files(dir), committed + 2, "the committed checkpoint lost files");

	/* Age 0 takes the young one too; the checkpoint still loads. */
	cr_assert_eq(gc(url, 0, 0, &r, NULL), DCP_OK);
	cr_assert_eq(r.objects_removed, 1);
	dt_load(l, 2, url, NULL, 7, &o);
	dt_assert_ok(&o, "load after gc");
	dt_outcome_clear(&o);
	dt_rmtree(dir);
	dt_layout_free(l);
}

Test(gc, file_folder_of_a_killed_first_save, .timeout = DT_TIMEOUT)
{
	char dir[256];
	dcp_gc_report r;

	dt_mkdtemp(dir, sizeof(dir), "dcp-gc-first");
	put_file(dir, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp", 100, 0);
	cr_assert_eq(gc(dir, 0, 0, &r, NULL), DCP_OK);
	cr_assert_eq(r.objects_removed, 1);
	cr_assert_eq(count_files(dir), 0);
	dt_rmtree(dir);
}

Test(gc, undecodable_metadata_stops_everything, .timeout = DT_TIMEOUT)
{
	char dir[256], *text = NULL;
	dcp_gc_report r;

	dt_mkdtemp(dir, sizeof(dir), "dcp-gc-bad");
	put_file(dir, ".metadata", 40, 0);
	put_file(dir, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp", 100, 2);
	cr_assert_neq(gc(dir, 0, 0, &r, &text), DCP_OK, "gc ran over metadata that does not decode");
	cr_assert(text != NULL && strstr(text, "nothing was removed") != NULL && strstr(text, dir) != NULL,
	          "unclear error: %s", text ? text : "(none)");
	cr_assert(has_file(dir, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp"));
	free(text);
	dt_rmtree(dir);
}

Test(gc, bad_options_and_ids_are_refused, .timeout = DT_TIMEOUT)
{
	dcp_gc_options o = DCP_GC_OPTIONS_INIT;
	dcp_error *err = NULL;

	o.min_age_s = -1;
	cr_assert_eq(dcp_gc("mem://x", &o, NULL, NULL, &err), DCP_EINVAL);
	dcp_error_free(err);
	err = NULL;
	cr_assert_neq(dcp_gc("nosuchscheme://x", NULL, NULL, NULL, &err), DCP_OK);
	dcp_error_free(err);
}

Test(gc, mem_orphans_of_unknown_age_only_with_age_zero, .timeout = DT_TIMEOUT)
{
	dt_layout *l = small_layout();
	dcp_gc_report r;
	dt_outcome o;

	dt_save(l, 2, "mem://gc-mem", NULL, 3, &o);
	dt_assert_ok(&o, "save");
	dt_outcome_clear(&o);
	cr_assert_eq(gc("mem://gc-mem", 3600, 0, &r, NULL), DCP_OK);
	cr_assert_eq(r.objects_removed, 0, "nothing is an orphan after a clean save");
	cr_assert_eq(gc("mem://gc-mem", 0, 0, &r, NULL), DCP_OK);
	cr_assert_eq(r.objects_removed, 0, "gc removed an object of the committed checkpoint");
	dt_load(l, 2, "mem://gc-mem", NULL, 3, &o);
	dt_assert_ok(&o, "load after gc");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

Test(gc, through_faulty_to_the_inner_plugin, .timeout = DT_TIMEOUT)
{
	char dir[256], url[400];
	dcp_gc_report r;

	dt_mkdtemp(dir, sizeof(dir), "dcp-gc-faulty");
	put_file(dir, "__0_0.00aa11bb22cc33dd44ee55ff66778899.distcp", 100, 2);
	dt_fmt(url, sizeof(url), "faulty+file://%s", dir);
	cr_assert_eq(gc(url, 3600, 0, &r, NULL), DCP_OK);
	cr_assert_eq(r.objects_removed, 1);
	dt_rmtree(dir);
}
