/*
 * The checkpoint layout shared by the mem and fs plugins (plugins/layout),
 * through the public API: which objects a save creates (bucket and item
 * layouts, bytes balanced across buckets, raw contiguous chunks), the commit
 * order (the previous save's objects go only after the new metadata is in),
 * cleanup after a failed save at any stage (the previous checkpoint stays
 * loadable and no object of the failed save is left), overwrite=0, removal,
 * and the layout's URL options.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcptest.h"

#define SEED_A    UINT64_C(0x1a70a)
#define SEED_B    UINT64_C(0x1a70b)
#define MAX_FILES 256

/* A state of 4 ranks with items of very different sizes, so that bucketing
 * has something to balance. */
static dt_layout *mixed_layout(void)
{
	dt_layout *l = dt_layout_new();
	uint64_t big[] = {96, 40}, mid[] = {300}, small[] = {7}, rep[] = {16};
	char key[32];

	dt_split(dt_add_sharded(l, "big", DCP_F32, 2, big), 0, 4, NULL);
	dt_split(dt_add_sharded(l, "mid", DCP_BF16, 1, mid), 0, 4, NULL);
	for (int i = 0; i < 6; i++) {
		uint64_t shape[] = {(uint64_t)(8 + 11 * i)};
		dt_split(dt_add_sharded(l, dt_fmt(key, sizeof(key), "t%d", i), DCP_I64, 1, shape), 0, 4,
		         NULL);
	}
	dt_split(dt_add_sharded(l, "small", DCP_I8, 1, small), 0, 4, NULL);
	dt_add_replicated(l, "rep", DCP_F32, 1, rep, DT_RANKS(4));
	dt_add_bytes(l, "blob", 1000, DT_RANKS(4));
	dt_add_bytes(l, "empty", 0, DT_RANK(2));
	return l;
}

/* A smaller state, for a second save with fewer objects. */
static dt_layout *small_layout(void)
{
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {24, 5};

	dt_split(dt_add_sharded(l, "big", DCP_F32, 2, s), 1, 2, NULL);
	dt_add_bytes(l, "blob", 10, DT_RANKS(2));
	return l;
}

/* ------------------------------------------------------------------------ */
/* Directory listings                                                       */
/* ------------------------------------------------------------------------ */
typedef struct listing {
	size_t n;
	char names[MAX_FILES][256];
} listing;

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The sorted names of the entries of dir (not "." and ".."). */
static listing *list_dir(const char *dir)
{
	listing *l = dt_xcalloc(1, sizeof(*l));
	DIR *d = opendir(dir);
	struct dirent *de;

	cr_assert_not_null(d, "cannot list %s", dir);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cr_assert_lt(l->n, MAX_FILES, "too many files in %s", dir);
		snprintf(l->names[l->n++], sizeof(l->names[0]), "%s", de->d_name);
	}
	closedir(d);
	qsort(l->names, l->n, sizeof(l->names[0]), cmp_name);
	return l;
}

static void assert_same_listing(const listing *a, const listing *b, const char *what)
{
	size_t i;

	for (i = 0; i < a->n && i < b->n; i++)
		cr_assert_str_eq(a->names[i], b->names[i], "%s: file %zu is '%s', expected '%s'", what, i,
		                 b->names[i], a->names[i]);
	cr_assert_eq(a->n, b->n, "%s: %zu files, expected %zu (first extra: '%s')", what, b->n, a->n,
	             b->n > a->n ? b->names[a->n] : a->names[b->n]);
}

static uint64_t file_size(const char *dir, const char *name)
{
	char path[DT_URL_MAX];
	struct stat st;

	cr_assert_eq(stat(dt_fmt(path, sizeof(path), "%s/%s", dir, name), &st), 0, "cannot stat %s", path);
	return (uint64_t)st.st_size;
}

/* ------------------------------------------------------------------------ */
/* Metadata helpers                                                         */
/* ------------------------------------------------------------------------ */
static dcp_metadata *read_md(const char *url)
{
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata(url, NULL, &md, &err);

	if (rc != DCP_OK)
		cr_assert_fail("dcp_read_metadata(%s) returned %d: %s", url, rc, dt_error_text(err));
	return md;
}

/* One stored chunk, flattened. */
typedef struct stored {
	const char *path;
	uint64_t offset, length;
} stored;

static int cmp_stored(const void *a, const void *b)
{
	const stored *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c != 0)
		return c;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Every stored chunk of md, sorted by path and offset. */
static stored *all_chunks(const dcp_metadata *md, size_t *n)
{
	size_t cnt = 0, k = 0;
	stored *s;

	for (size_t i = 0; i < md->nitems; i++)
		cnt += md->items[i].nchunks;
	s = dt_xcalloc(cnt + 1, sizeof(*s));
	for (size_t i = 0; i < md->nitems; i++)
		for (size_t c = 0; c < md->items[i].nchunks; c++) {
			s[k].path = md->items[i].chunks[c].storage.path;
			s[k].offset = md->items[i].chunks[c].storage.offset;
			s[k].length = md->items[i].chunks[c].storage.length;
			k++;
		}
	qsort(s, cnt, sizeof(*s), cmp_stored);
	*n = cnt;
	return s;
}

/*
 * Checks what a save left in dir against its metadata: the files are exactly
 * .metadata and the objects the metadata names; every object is named
 * __<rank>_<n>.<save_id>.distcp; its chunks are raw and contiguous from
 * offset 0 to its end (no framing, no gaps). Returns the number of objects.
 */
static size_t check_objects(const char *dir, const dcp_metadata *md)
{
	size_t n, nobj = 0;
	stored *s = all_chunks(md, &n);
	listing *l = list_dir(dir);
	listing *want = dt_xcalloc(1, sizeof(*want));
	char suffix[256];

	dt_fmt(suffix, sizeof(suffix), ".%s.distcp", md->save_id);
	snprintf(want->names[want->n++], sizeof(want->names[0]), ".metadata");
	for (size_t i = 0; i < n;) {
		size_t j = i;
		uint64_t end = 0;
		cr_assert(strncmp(s[i].path, "__", 2) == 0 && dt_path_rank(s[i].path) >= 0,
		          "object '%s' is not named __<rank>_<n>...", s[i].path);
		cr_assert(strlen(s[i].path) > strlen(suffix) &&
		                  strcmp(s[i].path + strlen(s[i].path) - strlen(suffix), suffix) == 0,
		          "object '%s' does not end with '%s' (the save id)", s[i].path, suffix);
		for (; j < n && strcmp(s[j].path, s[i].path) == 0; j++) {
			cr_assert_eq(s[j].offset, end,
			             "%s: a chunk starts at %llu, expected %llu (contiguous)", s[j].path,
			             (unsigned long long)s[j].offset, (unsigned long long)end);
			end += s[j].length;
		}
		cr_assert_eq(file_size(dir, s[i].path), end, "%s is %llu bytes; its chunks add up to %llu",
		             s[i].path, (unsigned long long)file_size(dir, s[i].path),
		             (unsigned long long)end);
		snprintf(want->names[want->n++], sizeof(want->names[0]), "%s", s[i].path);
		nobj++;
		i = j;
	}
	qsort(want->names, want->n, sizeof(want->names[0]), cmp_name);
	assert_same_listing(want, l, "files of the checkpoint");
	free(want);
	free(l);
	free(s);
	return nobj;
}

static char *file_url(char *buf, size_t size, const char *dir, const char *query)
{
	return dt_fmt(buf, size, "file://%s%s", dir, query);
}

/* ------------------------------------------------------------------------ */
/* Bucket and item layouts                                                  */
/* ------------------------------------------------------------------------ */

/* threads=3, bucket: each rank writes min(3, its items) objects, balanced so
 * that no two of a rank's objects differ by more than its largest chunk. */
static void check_buckets(int threads)
{
	dt_layout *l = mixed_layout();
	char dir[DT_URL_MAX], url[DT_URL_MAX], q[32];
	dt_outcome o;
	dcp_metadata *md;
	stored *s;
	size_t n;

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-bucket");
	file_url(url, sizeof(url), dir, dt_fmt(q, sizeof(q), "?threads=%d&layout=bucket", threads));
	dt_save(l, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save with buckets");
	dt_outcome_clear(&o);

	md = read_md(url);
	check_objects(dir, md);
	s = all_chunks(md, &n);
	for (int r = 0; r < 4; r++) {
		uint64_t bytes[64] = {0}, largest = 0, lo = UINT64_MAX, hi = 0;
		size_t nchunks = 0, nobj = 0;
		const char *prev = NULL;
		for (size_t i = 0; i < n; i++) {
			if (dt_path_rank(s[i].path) != r)
				continue;
			nchunks++;
			if (prev == NULL || strcmp(prev, s[i].path) != 0)
				nobj++;
			cr_assert_leq(nobj, 64);
			prev = s[i].path;
			bytes[nobj - 1] += s[i].length;
			if (s[i].length > largest)
				largest = s[i].length;
		}
		cr_assert_gt(nchunks, 0, "rank %d wrote nothing", r);
		cr_assert_eq(nobj, nchunks < (size_t)threads ? nchunks : (size_t)threads,
		             "rank %d wrote %zu chunks into %zu objects with threads=%d", r, nchunks, nobj,
		             threads);
		for (size_t b = 0; b < nobj; b++) {
			lo = bytes[b] < lo ? bytes[b] : lo;
			hi = bytes[b] > hi ? bytes[b] : hi;
		}
		cr_assert_leq(hi - lo, largest,
		              "rank %d: buckets of %llu and %llu bytes differ by more than its largest "
		              "chunk (%llu)",
		              r, (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)largest);
	}
	free(s);
	dcp_metadata_free(md);

	dt_load(l, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of a bucketed checkpoint on 3 ranks");
	dt_outcome_clear(&o);
	dt_rmtree(dir);
	dt_layout_free(l);
}

Test(layout, bucket_objects_balanced_threads_3, .timeout = DT_TIMEOUT)
{
	check_buckets(3);
}

Test(layout, bucket_one_object_per_rank_threads_1, .timeout = DT_TIMEOUT)
{
	check_buckets(1);
}

Test(layout, bucket_threads_more_than_items, .timeout = DT_TIMEOUT)
{
	check_buckets(16);
}

Test(layout, item_layout_one_object_per_item, .timeout = DT_TIMEOUT)
{
	dt_layout *l = mixed_layout();
	char dir[DT_URL_MAX], url[DT_URL_MAX];
	dt_outcome o;
	dcp_metadata *md;
	size_t nchunks = 0, nobj;

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-item");
	file_url(url, sizeof(url), dir, "?layout=item&threads=4");
	dt_save(l, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save with one object per item");
	dt_outcome_clear(&o);

	md = read_md(url);
	for (size_t i = 0; i < md->nitems; i++)
		nchunks += md->items[i].nchunks;
	nobj = check_objects(dir, md);
	cr_assert_eq(nobj, nchunks, "%zu stored chunks in %zu objects; layout=item wants one each", nchunks,
	             nobj);
	for (size_t i = 0; i < md->nitems; i++)
		for (size_t c = 0; c < md->items[i].nchunks; c++)
			cr_assert_eq(md->items[i].chunks[c].storage.offset, 0,
			             "%s chunk %zu is at offset %llu", md->items[i].key, c,
			             (unsigned long long)md->items[i].chunks[c].storage.offset);
	dcp_metadata_free(md);

	dt_load(l, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of an item-layout checkpoint on 2 ranks");
	dt_outcome_clear(&o);
	dt_rmtree(dir);
	dt_layout_free(l);
}

/* A load reads with a different thread count than the save used. */
Test(layout, mem_round_trip_both_layouts, .timeout = DT_TIMEOUT)
{
	dt_layout *l = mixed_layout();
	const char *saves[] = {"mem://layout-rt-bucket?threads=3",
	                       "mem://layout-rt-item?layout=item&threads=2"};
	const char *loads[] = {"mem://layout-rt-bucket?threads=1", "mem://layout-rt-item?threads=8"};
	dt_outcome o;

	for (int i = 0; i < 2; i++) {
		dt_save(l, 4, saves[i], NULL, SEED_A, &o);
		dt_assert_ok(&o, saves[i]);
		dt_outcome_clear(&o);
		dt_load(l, 3, loads[i], NULL, SEED_A, &o);
		dt_assert_ok(&o, loads[i]);
		dt_outcome_clear(&o);
	}
	dt_layout_free(l);
}

/* ------------------------------------------------------------------------ */
/* Overwrite and commit order                                               */
/* ------------------------------------------------------------------------ */

/* A second save replaces the first: afterwards only the new save's objects
 * remain (the old ones were removed after the commit), and a file of the
 * user's in the directory is left alone. */
Test(layout, overwrite_removes_previous_save_objects, .timeout = DT_TIMEOUT)
{
	dt_layout *a = mixed_layout(), *b = small_layout();
	char dir[DT_URL_MAX], url[DT_URL_MAX], path[DT_URL_MAX];
	dt_outcome o;
	dcp_metadata *ma, *mb;
	FILE *f;

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-overwrite");
	file_url(url, sizeof(url), dir, "");
	dt_save(a, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);
	ma = read_md(url);
	check_objects(dir, ma);

	dt_save(b, 2, url, NULL, SEED_B, &o);
	dt_assert_ok(&o, "second save over the first");
	dt_outcome_clear(&o);
	mb = read_md(url);
	cr_assert_str_neq(ma->save_id, mb->save_id, "two saves share the save id '%s'", ma->save_id);
	check_objects(dir, mb);

	/* Someone else's file survives the next overwrite. */
	f = fopen(dt_fmt(path, sizeof(path), "%s/notes.txt", dir), "w");
	cr_assert_not_null(f);
	fputs("mine\n", f);
	fclose(f);
	dt_save(a, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "third save");
	dt_outcome_clear(&o);
	cr_assert_eq(file_size(dir, "notes.txt"), 5);
	dt_load(a, 1, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of the third save");
	dt_outcome_clear(&o);

	dcp_metadata_free(ma);
	dcp_metadata_free(mb);
	dt_rmtree(dir);
	dt_layout_free(a);
	dt_layout_free(b);
}

static void check_refused(const char *url, const char *shown)
{
	dt_layout *a = mixed_layout(), *b = small_layout();
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	char mention[DT_URL_MAX];
	dt_outcome o;
	dt_expect e = {0};

	dt_save(a, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);

	so.overwrite = 0;
	dt_save(b, 2, url, &so, SEED_B, &o);
	e.status = DCP_EEXISTS;
	e.ranks = DT_RANK(0);
	e.step = "plan";
	e.mention = dt_fmt(mention, sizeof(mention), "checkpoint already exists at %s", shown);
	e.mention2 = "overwrite";
	dt_assert_failed(&o, &e, "a save with overwrite=0 over a checkpoint");
	dt_outcome_clear(&o);

	dt_load(a, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "the first checkpoint after a refused save");
	dt_outcome_clear(&o);
	dt_layout_free(a);
	dt_layout_free(b);
}

Test(layout, no_overwrite_refuses_existing_file_checkpoint, .timeout = DT_TIMEOUT)
{
	char dir[DT_URL_MAX], url[DT_URL_MAX];
	listing *before, *after;

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-noover");
	file_url(url, sizeof(url), dir, "");
	check_refused(url, dir);
	before = list_dir(dir);
	{
		/* Refused again: nothing is written, nothing removed. */
		dcp_metadata *md = read_md(url);
		after = list_dir(dir);
		assert_same_listing(before, after, "after a refused save");
		check_objects(dir, md);
		dcp_metadata_free(md);
	}
	free(before);
	free(after);
	dt_rmtree(dir);
}

Test(layout, no_overwrite_refuses_existing_mem_checkpoint, .timeout = DT_TIMEOUT)
{
	check_refused("mem://layout-noover", "mem://layout-noover");
}

Test(layout, no_overwrite_saves_where_nothing_is, .timeout = DT_TIMEOUT)
{
	dt_layout *a = small_layout();
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	char dir[DT_URL_MAX], url[DT_URL_MAX];
	dt_outcome o;

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-fresh");
	/* A directory that does not exist yet: the writer creates it. */
	file_url(url, sizeof(url), dir, "/sub");
	so.overwrite = 0;
	dt_save(a, 2, url, &so, SEED_A, &o);
	dt_assert_ok(&o, "a save with overwrite=0 to a new directory");
	dt_outcome_clear(&o);
	dt_load(a, 2, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "its load");
	dt_outcome_clear(&o);
	dt_rmtree(dir);
	dt_layout_free(a);
}

/*
 * A save that fails at any stage, on any rank, leaves the previous
 * checkpoint exactly as it was: same files, loadable bit-exact. The failed
 * save's objects are removed by abort on every rank that wrote some.
 */
static void check_failed_save(const char *faults, int coordinator)
{
	dt_layout *a = mixed_layout(), *b = mixed_layout();
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	char dir[DT_URL_MAX], url[DT_URL_MAX], furl[DT_URL_MAX], what[DT_URL_MAX];
	listing *before, *after;
	dt_outcome o;

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-fail");
	file_url(url, sizeof(url), dir, "?threads=2");
	dt_fmt(furl, sizeof(furl), "faulty+file://%s?threads=3&%s", dir, faults);
	dt_save(a, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);
	before = list_dir(dir);

	so.coordinator = coordinator;
	dt_save(b, 4, furl, &so, SEED_B, &o);
	for (int r = 0; r < o.n; r++)
		cr_assert_neq(o.status[r], DCP_OK, "%s: rank %d succeeded", faults, r);
	dt_outcome_clear(&o);

	after = list_dir(dir);
	assert_same_listing(before, after,
	                    dt_fmt(what, sizeof(what), "files after a save failing with %s", faults));
	dt_load(a, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, what);
	dt_outcome_clear(&o);

	free(before);
	free(after);
	dt_rmtree(dir);
	dt_layout_free(a);
	dt_layout_free(b);
}

Test(layout, failed_write_data_keeps_previous, .timeout = DT_TIMEOUT)
{
	check_failed_save("fail.write_data=1", 0);
}

Test(layout, failed_write_data_async_keeps_previous, .timeout = DT_TIMEOUT)
{
	check_failed_save("fail.write_data_async=2,3", 0);
}

Test(layout, failed_finish_keeps_previous, .timeout = DT_TIMEOUT)
{
	check_failed_save("fail.finish=*", 0);
}

Test(layout, failed_finish_on_coordinator_2_keeps_previous, .timeout = DT_TIMEOUT)
{
	check_failed_save("fail.finish=2", 2);
}

Test(layout, failed_plan_keeps_previous, .timeout = DT_TIMEOUT)
{
	check_failed_save("fail.prepare_global_plan=*&fail.set_up_storage_writer=3", 1);
}

/* The same through mem://: the previous checkpoint still loads. */
Test(layout, failed_mem_save_keeps_previous, .timeout = DT_TIMEOUT)
{
	dt_layout *a = mixed_layout(), *b = small_layout();
	const char *stages[] = {"fail.write_data=0", "fail.write_data_async=3", "fail.finish=*"};
	dt_outcome o;

	dt_save(a, 4, "mem://layout-fail", NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
		char url[DT_URL_MAX];
		dt_save(b, 4, dt_fmt(url, sizeof(url), "faulty+mem://layout-fail?%s", stages[i]), NULL,
		        SEED_B, &o);
		cr_assert_neq(o.status[0], DCP_OK, "%s succeeded", url);
		dt_outcome_clear(&o);
		dt_load(a, 2, "mem://layout-fail", NULL, SEED_A, &o);
		dt_assert_ok(&o, url);
		dt_outcome_clear(&o);
	}
	dt_layout_free(a);
	dt_layout_free(b);
}

/* ------------------------------------------------------------------------ */
/* Removal                                                                  */
/* ------------------------------------------------------------------------ */
Test(layout, remove_takes_metadata_data_and_directory, .timeout = DT_TIMEOUT)
{
	dt_layout *a = mixed_layout();
	char dir[DT_URL_MAX], url[DT_URL_MAX], mention[DT_URL_MAX];
	dcp_error *err = NULL;
	dcp_metadata *md = NULL;
	struct stat st;
	dt_outcome o;
	int rc;

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-rm");
	file_url(url, sizeof(url), dir, "");
	dt_save(a, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save");
	dt_outcome_clear(&o);

	rc = dcp_remove(url, NULL, &err);
	if (rc != DCP_OK)
		cr_assert_fail("dcp_remove(%s) returned %d: %s", url, rc, dt_error_text(err));
	cr_assert_neq(stat(dir, &st), 0, "the emptied directory %s is still there", dir);

	rc = dcp_read_metadata(url, NULL, &md, &err);
	cr_assert_eq(rc, DCP_ENOTFOUND, "reading a removed checkpoint returned %d", rc);
	cr_assert(dt_error_mentions(err, dt_fmt(mention, sizeof(mention), "no checkpoint at %s", dir)),
	          "error does not say 'no checkpoint at %s': %s", dir, dt_error_text(err));
	dcp_error_free(err);
	err = NULL;

	/* mem:// too; a second removal finds nothing. */
	dt_save(a, 4, "mem://layout-rm", NULL, SEED_A, &o);
	dt_assert_ok(&o, "mem save");
	dt_outcome_clear(&o);
	rc = dcp_remove("mem://layout-rm", NULL, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_remove(mem://layout-rm) returned %d", rc);
	rc = dcp_remove("mem://layout-rm", NULL, &err);
	cr_assert_eq(rc, DCP_ENOTFOUND, "a second dcp_remove returned %d", rc);
	cr_assert(dt_error_mentions(err, "no checkpoint at mem://layout-rm"), "%s", dt_error_text(err));
	dcp_error_free(err);
	dt_layout_free(a);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */
Test(layout, bad_options_are_rejected_with_a_reason, .timeout = DT_TIMEOUT)
{
	const struct {
		const char *url;
		const char *mention;
	} cases[] = {
	        {"mem://opt?threads=0", "threads"},
	        {"mem://opt?threads=65", "threads"},
	        {"mem://opt?threads=two", "threads"},
	        {"mem://opt?layout=rows", "layout"},
	        {"mem://opt?thread=4", "unknown option 'thread'"},
	        {"mem://opt?overwrite=maybe", "overwrite"},
	        {"file:///tmp/dcp-layout-opt?layout=", "layout"},
	        {"file:///tmp/dcp-layout-opt?bogus", "unknown option 'bogus'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dcp_error *err = NULL;
		int rc = dcp_validate_checkpoint_id(NULL, cases[i].url, 1, &err);
		cr_assert_eq(rc, DCP_EID, "%s: validate returned %d", cases[i].url, rc);
		cr_assert(dt_error_mentions(err, cases[i].mention), "%s: error does not mention '%s': %s",
		          cases[i].url, cases[i].mention, dt_error_text(err));
		dcp_error_free(err);
	}
	{
		dcp_error *err = NULL;
		int rc = dcp_validate_checkpoint_id(NULL, "mem://opt?threads=64&layout=item&overwrite=0", 1,
		                                    &err);
		cr_assert_eq(rc, DCP_OK, "good options rejected: %s", dt_error_text(err));
	}
}

/* overwrite=0 in the URL overrides the save option. */
Test(layout, overwrite_in_url, .timeout = DT_TIMEOUT)
{
	dt_layout *a = small_layout();
	dt_outcome o;
	dt_expect e = {0};

	dt_save(a, 2, "mem://layout-url-overwrite", NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save");
	dt_outcome_clear(&o);
	dt_save(a, 2, "mem://layout-url-overwrite?overwrite=0", NULL, SEED_B, &o);
	e.status = DCP_EEXISTS;
	e.any_ranks = 1;
	e.mention = "checkpoint already exists at mem://layout-url-overwrite";
	dt_assert_failed(&o, &e, "overwrite=0 in the URL");
	dt_outcome_clear(&o);
	dt_load(a, 2, "mem://layout-url-overwrite", NULL, SEED_A, &o);
	dt_assert_ok(&o, "first save still there");
	dt_outcome_clear(&o);
	dt_layout_free(a);
}

/* ------------------------------------------------------------------------ */
/* Damaged data objects                                                     */
/* ------------------------------------------------------------------------ */

/* The largest data object of a fresh file checkpoint of `a`. */
static void largest_object(const char *url, char *name, size_t size)
{
	dcp_metadata *md = read_md(url);
	uint64_t best = 0;

	for (size_t i = 0; i < md->nitems; i++)
		for (size_t c = 0; c < md->items[i].nchunks; c++) {
			const dcp_storage_info *s = &md->items[i].chunks[c].storage;
			if (s->offset + s->length > best) {
				best = s->offset + s->length;
				dt_fmt(name, size, "%s", s->path);
			}
		}
	cr_assert_gt(best, 0);
	dcp_metadata_free(md);
}

Test(layout, truncated_data_file_is_corrupt_and_named, .timeout = DT_TIMEOUT)
{
	dt_layout *a = mixed_layout();
	char dir[DT_URL_MAX], url[DT_URL_MAX], name[256], path[DT_URL_MAX];
	dt_outcome o;
	dt_expect e = {0};

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-trunc");
	file_url(url, sizeof(url), dir, "");
	dt_save(a, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save");
	dt_outcome_clear(&o);
	largest_object(url, name, sizeof(name));
	dt_fmt(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(truncate(path, (off_t)(file_size(dir, name) - 3)), 0);

	dt_load(a, 2, url, NULL, SEED_A, &o);
	e.status = DCP_ECORRUPT;
	e.any_ranks = 1;
	e.step = "read";
	e.mention = path;
	e.mention2 = "expected at least";
	dt_assert_failed(&o, &e, "load of a truncated data file");
	dt_outcome_clear(&o);
	dt_rmtree(dir);
	dt_layout_free(a);
}

Test(layout, missing_data_file_is_corrupt_and_named, .timeout = DT_TIMEOUT)
{
	dt_layout *a = mixed_layout();
	char dir[DT_URL_MAX], url[DT_URL_MAX], name[256], path[DT_URL_MAX];
	dt_outcome o;
	dt_expect e = {0};

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-missing");
	file_url(url, sizeof(url), dir, "");
	dt_save(a, 4, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "save");
	dt_outcome_clear(&o);
	largest_object(url, name, sizeof(name));
	cr_assert_eq(unlink(dt_fmt(path, sizeof(path), "%s/%s", dir, name)), 0);

	dt_load(a, 3, url, NULL, SEED_A, &o);
	e.status = DCP_ECORRUPT;
	e.any_ranks = 1;
	e.step = "read";
	e.mention = path;
	e.mention2 = "missing";
	dt_assert_failed(&o, &e, "load with a deleted data file");
	dt_outcome_clear(&o);
	dt_rmtree(dir);
	dt_layout_free(a);
}

/* A first save that fails leaves no checkpoint at all, on mem and on file. */
Test(layout, failed_first_save_leaves_no_checkpoint, .timeout = DT_TIMEOUT)
{
	dt_layout *a = mixed_layout();
	char dir[DT_URL_MAX], url[DT_URL_MAX], furl[DT_URL_MAX];
	const char *stages[] = {"fail.finish=*", "fail.write_data_async=0"};
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	listing *l;
	dt_outcome o;
	int rc;

	dt_mkdtemp(dir, sizeof(dir), "dcp-layout-first");
	file_url(url, sizeof(url), dir, "");
	for (size_t i = 0; i < 2; i++) {
		dt_save(a, 4, dt_fmt(furl, sizeof(furl), "faulty+file://%s?%s", dir, stages[i]), NULL, SEED_A,
		        &o);
		cr_assert_neq(o.status[0], DCP_OK, "%s succeeded", furl);
		dt_outcome_clear(&o);
		l = list_dir(dir);
		cr_assert_eq(l->n, 0, "%s left %zu files, the first '%s'", furl, l->n, l->names[0]);
		free(l);
		rc = dcp_read_metadata(url, NULL, &md, &err);
		cr_assert_eq(rc, DCP_ENOTFOUND, "%s: read_metadata returned %d", furl, rc);
		dcp_error_free(err);
		err = NULL;

		dt_save(a, 4, dt_fmt(furl, sizeof(furl), "faulty+mem://layout-first?%s", stages[i]), NULL,
		        SEED_A, &o);
		cr_assert_neq(o.status[0], DCP_OK, "%s succeeded", furl);
		dt_outcome_clear(&o);
		rc = dcp_read_metadata("mem://layout-first", NULL, &md, &err);
		cr_assert_eq(rc, DCP_ENOTFOUND, "%s: read_metadata returned %d", furl, rc);
		dcp_error_free(err);
		err = NULL;
	}
	dt_rmtree(dir);
	dt_layout_free(a);
}
