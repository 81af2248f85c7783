/*
 * The filesystem plugin (plugins/fs) through the public API, on file://
 * checkpoints under fresh mkdtemp directories: what issue 3's Tests list asks
 * of it and no other suite checks yet.
 *
 * Audit of issue 3's Tests list, and where each item is tested:
 *   round trips 4->3, 4->1, 1->4, 3->7, bytes items
 *       here (fs_roundtrip): file:// with bucket and item layouts and several
 *       thread counts. The same world sizes over mem:// are in test_reshard
 *       (world_*); 4->3 and bytes items over fs also in test_conformance.
 *   every fault stage through faulty+file://, previous checkpoint loadable
 *       test_conformance (failed_save_keeps_previous, target fs: every writer
 *       stage, the directory listed before and after, the metadata's save id
 *       unchanged) and test_layout (failed_*_keeps_previous,
 *       failed_first_save_leaves_no_checkpoint); load stages over fs in
 *       test_faulty (wraps_the_fs_plugin_too). Here: one save failing at
 *       every writer stage at once on different ranks, with the item layout
 *       and a non-zero coordinator, so that abort has many objects of several
 *       ranks to remove (fs_faults).
 *   a torn data file
 *       test_torn (torn.write_data / torn.bytes of the faulty plugin).
 *   corruption detection (flip a byte, truncate, delete)
 *       test_conformance (corrupt_*: names the key and file) and test_layout
 *       (truncated_/missing_data_file_is_corrupt_and_named). Here: the
 *       flipped byte's error names the key, the file and the byte range; with
 *       verify off that load succeeds (and the damage reaches the buffers);
 *       truncation and deletion are still errors with verify off; a corrupt
 *       .metadata is DCP_EMETADATA naming it, and a save may replace it
 *       (fs_corrupt).
 *   overwrite and overwrite=false
 *       test_conformance (overwrite, no_overwrite) and test_layout
 *       (overwrite_removes_previous_save_objects, no_overwrite_*,
 *       overwrite_in_url): not repeated here.
 *   id validation cases
 *       here (fs_id): empty, NUL byte, remote host, existing non-directory,
 *       missing parent, unwritable parent, no checkpoint for a reader,
 *       canonical paths in messages, accepted forms.
 *   CLI exit codes and messages
 *       test_cli.
 *   the fs plugin passes the conformance suite
 *       test_conformance (tests/conformance/targets.def: fs).
 * And the commit's crash safety: .metadata is replaced by rename, never
 * rewritten in place, and no temporary file stays (fs_commit).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcptest.h"

#define SEED_A    UINT64_C(0xf5a)
#define SEED_B    UINT64_C(0xf5b)
#define MAX_NAMES 512

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* A model-like state for n ranks, the same keys and values for any n: every
 * dtype family, row-, column- and grid-sharded tensors with uneven chunks, a
 * replicated tensor, and bytes items (replicated, on one rank, empty, and
 * one over a checksum block). */
static dt_layout *fs_layout(int n)
{
	dt_layout *l = dt_layout_new();
	uint64_t w[] = {26, 10}, c[] = {9, 14}, grid[] = {6, 8}, emb[] = {7, 5, 3}, bias[] = {10};

	dt_split(dt_add_sharded(l, "model.w", DCP_F32, 2, w), 0, (size_t)n, NULL);
	dt_split(dt_add_sharded(l, "model.c", DCP_BF16, 2, c), 1, (size_t)n, NULL);
	dt_split_grid(dt_add_sharded(l, "model.grid", DCP_I32, 2, grid), 0, 2, 1, 3, NULL, n);
	dt_split(dt_add_sharded(l, "model.embed", DCP_I64, 3, emb), 0, (size_t)n, NULL);
	dt_add_replicated(l, "model.bias", DCP_F16, 1, bias, DT_RANKS(n));
	dt_add_bytes(l, "opt.step", 8, DT_RANKS(n));
	dt_add_bytes(l, "extra.config", 100, DT_RANK(n - 1));
	dt_add_bytes(l, "extra.empty", 0, DT_RANK(0));
	dt_add_bytes(l, "extra.blob", (size_t)DCP_CHECKSUM_BLOCK_DEFAULT + 4097, DT_RANK(n / 2));
	return l;
}

typedef struct names {
	size_t n;
	char name[MAX_NAMES][256];
} names;

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The sorted entries of dir, "." and ".." left out (heap; free()). */
static names *list_dir(const char *dir)
{
	names *l = dt_xcalloc(1, sizeof(*l));
	DIR *d = opendir(dir);
	struct dirent *de;

	cr_assert_not_null(d, "cannot list %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cr_assert_lt(l->n, MAX_NAMES);
		dt_fmt(l->name[l->n++], sizeof(l->name[0]), "%s", de->d_name);
	}
	closedir(d);
	qsort(l->name, l->n, sizeof(l->name[0]), cmp_name);
	return l;
}

static char *names_text(const names *l, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n && used + 1 < size; i++)
		used += (size_t)snprintf(buf + used, size - used, " %s", l->name[i]);
	return buf;
}

static void assert_same_names(const names *a, const names *b, const char *what)
{
	char ta[8192], tb[8192];
	int same = a->n == b->n;

	for (size_t i = 0; same && i < a->n; i++)
		same = strcmp(a->name[i], b->name[i]) == 0;
	cr_assert(same, "%s: the directory changed.\nbefore:%s\nafter:%s", what,
	          names_text(a, ta, sizeof(ta)), names_text(b, tb, sizeof(tb)));
}

static dcp_metadata *read_md(const char *url)
{
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata(url, NULL, &md, &err);

	cr_assert_eq(rc, DCP_OK, "dcp_read_metadata(%s): %s", url, dt_error_text(err));
	return md;
}

static void save_ok(const dt_layout *l, int n, const char *url, uint64_t seed, const char *what)
{
	dt_outcome o;

	dt_save(l, n, url, NULL, seed, &o);
	dt_assert_ok(&o, what);
	dt_outcome_clear(&o);
}

static void load_ok(const dt_layout *l, int n, const char *url, uint64_t seed, const char *what)
{
	dt_outcome o;

	dt_load(l, n, url, NULL, seed, &o);
	dt_assert_ok(&o, what);
	dt_outcome_clear(&o);
}

/* The whole file at path (heap, NUL-terminated); *len its size. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	buf = dt_xmalloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "short read of %s", path);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "cannot create %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

/* Saves with nfrom ranks and loads with nto, through file://DIR?query; the
 * load fills the bytes items into library buffers when lib_alloc. Then the
 * same checkpoint loads with the saving world size too. */
static void roundtrip(int nfrom, int nto, const char *query, int lib_alloc)
{
	dt_layout *a = fs_layout(nfrom), *b = fs_layout(nto);
	char dir[DT_URL_MAX], url[2 * DT_URL_MAX], what[3 * DT_URL_MAX];
	dcp_metadata *md;

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-rt");
	dt_fmt(url, sizeof(url), "file://%s/ckpt%s%s", dir, query[0] ? "?" : "", query);
	for (size_t i = 0; i < b->nitems; i++)
		if (b->items[i].kind == DT_BYTES)
			b->items[i].lib_alloc = lib_alloc;
	save_ok(a, nfrom, url, SEED_A, dt_fmt(what, sizeof(what), "save with %d ranks to %s", nfrom, url));
	md = read_md(url);
	cr_assert_eq(md->nitems, a->nitems, "%s: %zu items in the metadata, expected %zu", url, md->nitems,
	             a->nitems);
	for (size_t i = 0; i < a->nitems; i++)
		cr_assert_not_null(dcp_metadata_find(md, a->items[i].key), "%s: no '%s' in the metadata", url,
		                   a->items[i].key);
	dcp_metadata_free(md);
	load_ok(b, nto, url, SEED_A,
	        dt_fmt(what, sizeof(what), "load with %d ranks of %s (%d ranks)", nto, url, nfrom));
	load_ok(a, nfrom, url, SEED_A, dt_fmt(what, sizeof(what), "load with %d ranks of %s", nfrom, url));
	dt_layout_free(a);
	dt_layout_free(b);
	dt_rmtree(dir);
}

Test(fs_roundtrip, ranks_4_to_3, .timeout = DT_TIMEOUT)
{
	roundtrip(4, 3, "", 0);
}

Test(fs_roundtrip, ranks_4_to_1_item_layout, .timeout = DT_TIMEOUT)
{
	roundtrip(4, 1, "layout=item&threads=2", 1);
}

Test(fs_roundtrip, ranks_1_to_4_one_thread, .timeout = DT_TIMEOUT)
{
	roundtrip(1, 4, "threads=1", 0);
}

Test(fs_roundtrip, ranks_3_to_7_many_threads, .timeout = DT_TIMEOUT)
{
	roundtrip(3, 7, "threads=8", 1);
}

/* A bare absolute path is a file:// id of its own. */
Test(fs_roundtrip, bare_path, .timeout = DT_TIMEOUT)
{
	dt_layout *a = fs_layout(2), *b = fs_layout(3);
	char dir[DT_URL_MAX], path[DT_URL_MAX + 16], url[DT_URL_MAX + 32];

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-bare");
	dt_fmt(path, sizeof(path), "%s/ckpt", dir);
	dt_fmt(url, sizeof(url), "file://%s", path);
	save_ok(a, 2, path, SEED_A, "save to a bare path");
	load_ok(b, 3, url, SEED_A, "load of it through file://");
	dt_layout_free(a);
	dt_layout_free(b);
	dt_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Failures at every writer stage in one save                               */
/* ------------------------------------------------------------------------ */
Test(fs_faults, every_writer_stage_on_different_ranks, .timeout = DT_TIMEOUT)
{
	static const struct {
		const char *query;
		const char *stage;
		uint64_t ranks;
	} cases[] = {
	        {"fail.set_up_storage_writer=2", "set_up_storage_writer", DT_RANK(2)},
	        {"fail.prepare_local_plan=*", "prepare_local_plan", DT_RANKS(4)},
	        {"fail.prepare_global_plan=*", "prepare_global_plan", DT_RANK(3)},
	        {"fail.write_data=0", "write_data", DT_RANK(0)},
	        {"fail.write_data_async=1-2", "write_data", DT_RANK(1) | DT_RANK(2)},
	        {"fail.write_data=0&fail.write_data_async=3", "write_data", DT_RANK(0) | DT_RANK(3)},
	        {"fail.finish=*", "finish", DT_RANK(3)},
	};
	dt_layout *a = fs_layout(4), *l3 = fs_layout(3);
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	char dir[DT_URL_MAX], url[DT_URL_MAX + 32], furl[2 * DT_URL_MAX];
	dcp_metadata *md0;
	names *before;

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-faults");
	dt_fmt(url, sizeof(url), "file://%s", dir);
	save_ok(a, 4, url, SEED_A, "the good save");
	md0 = read_md(url);
	before = list_dir(dir);
	so.coordinator = 3;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dt_outcome o;
		dt_expect e = {0};
		dcp_metadata *md;
		names *after;

		dt_fmt(furl, sizeof(furl), "faulty+file://%s?layout=item&threads=3&%s", dir, cases[i].query);
		dt_save(a, 4, furl, &so, SEED_B, &o);
		e.status = DCP_EINJECTED;
		e.ranks = cases[i].ranks;
		e.stage = cases[i].stage;
		dt_assert_failed(&o, &e, furl);
		dt_outcome_clear(&o);

		after = list_dir(dir);
		assert_same_names(before, after, furl);
		free(after);
		md = read_md(url);
		cr_assert_str_eq(md->save_id, md0->save_id, "%s changed the metadata", furl);
		dcp_metadata_free(md);
		load_ok(l3, 3, url, SEED_A, furl);
	}
	/* The directory is still usable for a good save. */
	save_ok(a, 4, url, SEED_B, "a good save after the failed ones");
	load_ok(l3, 3, url, SEED_B, "its load");
	free(before);
	dcp_metadata_free(md0);
	dt_layout_free(a);
	dt_layout_free(l3);
	dt_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Corruption                                                               */
/* ------------------------------------------------------------------------ */

/* The stored chunk of key with the most bytes. */
static const dcp_md_chunk *largest_chunk(const dcp_metadata *md, const char *key)
{
	const dcp_md_item *it = dcp_metadata_find(md, key);
	const dcp_md_chunk *best = NULL;

	cr_assert_not_null(it, "no '%s' in the metadata", key);
	for (size_t k = 0; k < it->nchunks; k++)
		if (best == NULL || it->chunks[k].storage.length > best->storage.length)
			best = &it->chunks[k];
	cr_assert(best != NULL && best->storage.length > 0);
	return best;
}

Test(fs_corrupt, flipped_byte_names_key_file_and_range, .timeout = DT_TIMEOUT)
{
	dt_layout *a = fs_layout(4), *l3 = fs_layout(3);
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	char dir[DT_URL_MAX], url[DT_URL_MAX + 32], file[2 * DT_URL_MAX], range[96];
	const char *key = "model.w";
	const dcp_md_chunk *ch;
	dcp_metadata *md;
	uint64_t at, block, k, start, end;
	dt_outcome o;
	dt_expect e = {0};
	int fd, bad = 0;
	unsigned char byte;

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-flip");
	dt_fmt(url, sizeof(url), "file://%s", dir);
	save_ok(a, 4, url, SEED_A, "save");
	md = read_md(url);
	ch = largest_chunk(md, key);
	dt_fmt(file, sizeof(file), "%s/%s", dir, ch->storage.path);
	at = ch->storage.offset + ch->storage.length / 2 + 1;
	fd = open(file, O_RDWR);
	cr_assert_geq(fd, 0, "cannot open %s", file);
	cr_assert_eq(pread(fd, &byte, 1, (off_t)at), 1);
	byte ^= 0x01; /* one bit */
	cr_assert_eq(pwrite(fd, &byte, 1, (off_t)at), 1);
	cr_assert_eq(close(fd), 0);

	/* The block of the chunk that holds the flipped byte. */
	block = md->checksum_block;
	cr_assert_gt(block, 0);
	k = (at - ch->storage.offset) / block;
	start = ch->storage.offset + k * block;
	end = ch->storage.offset +
	      ((k + 1) * block < ch->storage.length ? (k + 1) * block : ch->storage.length);
	dt_fmt(range, sizeof(range), "bytes [%llu, %llu)", (unsigned long long)start,
	       (unsigned long long)end);

	dt_load(l3, 3, url, NULL, SEED_A, &o);
	e.status = DCP_ECORRUPT;
	e.any_ranks = 1;
	e.step = "read";
	e.mention = key;
	e.mention2 = ch->storage.path;
	e.mention3 = range;
	dt_assert_failed(&o, &e, "load of a file with a flipped bit");
	dt_outcome_clear(&o);

	/* verify=0: the load succeeds, and the damage is in the buffers. */
	lo.verify = 0;
	dt_load(l3, 3, url, &lo, SEED_A, &o);
	for (int r = 0; r < o.n; r++) {
		cr_assert_eq(o.status[r], DCP_OK, "rank %d failed a load with verify=0: %s", r,
		             dt_error_text(o.err[r]));
		if (o.bad[r]) {
			bad++;
			cr_assert(strstr(o.why[r], key) != NULL, "rank %d: unexpected difference: %s", r,
			          o.why[r]);
		}
	}
	cr_assert_eq(bad, 1, "%d ranks saw the flipped bit with verify=0, expected 1", bad);
	dt_outcome_clear(&o);
	dcp_metadata_free(md);
	dt_layout_free(a);
	dt_layout_free(l3);
	dt_rmtree(dir);
}

/* Truncated or deleted data files are errors even without checksums. */
Test(fs_corrupt, truncated_and_deleted_files_fail_with_verify_off, .timeout = DT_TIMEOUT)
{
	dt_layout *a = fs_layout(4), *l3 = fs_layout(3);
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	char dir[DT_URL_MAX], url[DT_URL_MAX + 32], file[2 * DT_URL_MAX];
	const dcp_md_chunk *ch;
	dcp_metadata *md;
	dt_outcome o;
	dt_expect e = {0};

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-trunc");
	dt_fmt(url, sizeof(url), "file://%s", dir);
	save_ok(a, 4, url, SEED_A, "save");
	md = read_md(url);
	lo.verify = 0;

	ch = largest_chunk(md, "model.c");
	dt_fmt(file, sizeof(file), "%s/%s", dir, ch->storage.path);
	cr_assert_eq(truncate(file, (off_t)(ch->storage.offset + ch->storage.length - 1)), 0);
	dt_load(l3, 3, url, &lo, SEED_A, &o);
	e.status = DCP_ECORRUPT;
	e.any_ranks = 1;
	e.step = "read";
	e.mention = file;
	e.mention2 = "offset";
	dt_assert_failed(&o, &e, "load with verify=0 of a truncated data file");
	dt_outcome_clear(&o);

	ch = largest_chunk(md, "extra.blob");
	dt_fmt(file, sizeof(file), "%s/%s", dir, ch->storage.path);
	cr_assert_eq(unlink(file), 0);
	dt_load(l3, 3, url, &lo, SEED_A, &o);
	e.mention = file;
	e.mention2 = "missing";
	dt_assert_failed(&o, &e, "load with verify=0 with a deleted data file");
	dt_outcome_clear(&o);
	dcp_metadata_free(md);
	dt_layout_free(a);
	dt_layout_free(l3);
	dt_rmtree(dir);
}

/* A .metadata that is not valid metadata: a clear DCP_EMETADATA naming it,
 * on every rank of a load and for dcp_read_metadata; a save with overwrite
 * replaces it. */
Test(fs_corrupt, corrupt_metadata, .timeout = DT_TIMEOUT)
{
	dt_layout *a = fs_layout(2);
	char dir[DT_URL_MAX], url[DT_URL_MAX + 32], mdpath[DT_URL_MAX + 32];
	char *good;
	size_t len;
	const char *garbage[] = {"this is not JSON", "", "{\"format_version\": 1}", "[]", NULL};

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-badmd");
	dt_fmt(url, sizeof(url), "file://%s", dir);
	dt_fmt(mdpath, sizeof(mdpath), "%s/.metadata", dir);
	save_ok(a, 2, url, SEED_A, "save");
	good = slurp(mdpath, &len);
	cr_assert_gt(len, 10);

	for (int i = 0; i < 5; i++) {
		dcp_metadata *md = NULL;
		dcp_error *err = NULL;
		dt_outcome o;
		dt_expect e = {0};
		char what[128];
		int rc;

		if (garbage[i] != NULL)
			write_file(mdpath, garbage[i], strlen(garbage[i]));
		else
			write_file(mdpath, good, len / 2); /* cut in the middle */
		dt_fmt(what, sizeof(what), "corrupt .metadata #%d", i);
		rc = dcp_read_metadata(url, NULL, &md, &err);
		cr_assert_eq(rc, DCP_EMETADATA, "%s: dcp_read_metadata returned %d (%s)", what, rc,
		             dcp_strerror(rc));
		cr_assert(dt_error_mentions(err, mdpath), "%s: the error does not name %s:\n%s", what, mdpath,
		          dt_error_text(err));
		dcp_error_free(err);

		dt_load(a, 2, url, NULL, SEED_A, &o);
		e.status = DCP_EMETADATA;
		e.any_ranks = 1;
		e.mention = mdpath;
		dt_assert_failed(&o, &e, what);
		dt_outcome_clear(&o);
	}
	save_ok(a, 2, url, SEED_B, "a save over a corrupt .metadata");
	load_ok(a, 2, url, SEED_B, "its load");
	free(good);
	dt_layout_free(a);
	dt_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Checkpoint ids                                                           */
/* ------------------------------------------------------------------------ */

/* dcp_validate_checkpoint_id(url) returns code with an error that mentions
 * every non-NULL needle. */
static void expect_id(const char *url, int for_write, int code, const char *n1, const char *n2)
{
	dcp_error *err = NULL;
	int rc = dcp_validate_checkpoint_id(NULL, url, for_write, &err);

	cr_assert_eq(rc, code, "validate(%s, %s) returned %d (%s), expected %d (%s):\n%s", url,
	             for_write ? "write" : "read", rc, dcp_strerror(rc), code, dcp_strerror(code),
	             dt_error_text(err));
	if (code == DCP_OK) {
		cr_assert_null(err);
		return;
	}
	cr_assert(n1 == NULL || dt_error_mentions(err, n1), "validate(%s): the error does not say '%s':\n%s",
	          url, n1, dt_error_text(err));
	cr_assert(n2 == NULL || dt_error_mentions(err, n2), "validate(%s): the error does not say '%s':\n%s",
	          url, n2, dt_error_text(err));
	dcp_error_free(err);
}

Test(fs_id, rejected_ids_say_why, .timeout = DT_TIMEOUT)
{
	char dir[DT_URL_MAX], url[2 * DT_URL_MAX], path[DT_URL_MAX + 64], path2[DT_URL_MAX + 64];

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-id");
	/* Empty path. */
	expect_id("file://", 1, DCP_EID, "file://", NULL);
	expect_id("file://", 0, DCP_EID, "file://", NULL);
	/* A NUL byte, percent-encoded. */
	expect_id(dt_fmt(url, sizeof(url), "file://%s/a%%00b", dir), 1, DCP_EID, "NUL", NULL);
	expect_id(dt_fmt(url, sizeof(url), "file://%s/a%%00b", dir), 0, DCP_EID, "NUL", NULL);
	/* A remote host. */
	expect_id("file://storage.example.com/ckpt", 1, DCP_EID, "storage.example.com", "local");
	expect_id("file://storage.example.com/ckpt", 0, DCP_EID, "storage.example.com", NULL);
	/* An existing file that is not a directory. */
	dt_fmt(path, sizeof(path), "%s/plain-file", dir);
	write_file(path, "x", 1);
	expect_id(dt_fmt(url, sizeof(url), "file://%s", path), 1, DCP_EID, path, "not a directory");
	expect_id(dt_fmt(url, sizeof(url), "file://%s", path), 0, DCP_EID, path, "not a directory");
	/* A parent that does not exist. */
	dt_fmt(path, sizeof(path), "%s/missing", dir);
	expect_id(dt_fmt(url, sizeof(url), "file://%s/sub", path), 1, DCP_EID, path, "does not exist");
	/* A parent that is a file (stat says ENOTDIR). */
	dt_fmt(path, sizeof(path), "%s/plain-file", dir);
	expect_id(dt_fmt(url, sizeof(url), "file://%s/sub", path), 1, DCP_EID, path, "Not a directory");
	/* No checkpoint for a reader: a missing and an empty directory. */
	dt_fmt(path, sizeof(path), "%s/nothing", dir);
	expect_id(dt_fmt(url, sizeof(url), "file://%s", path), 0, DCP_ENOTFOUND, "no checkpoint at", path);
	expect_id(dt_fmt(url, sizeof(url), "file://%s", dir), 0, DCP_ENOTFOUND, "no checkpoint at", dir);
	/* Messages show the canonical path. */
	dt_fmt(path2, sizeof(path2), "%s/x", dir);
	dt_fmt(url, sizeof(url), "file://%s//x/./y/../", dir);
	expect_id(url, 0, DCP_ENOTFOUND, "no checkpoint at", path2);
	dt_fmt(url, sizeof(url), "file://localhost%s/./missing/../missing//sub", dir);
	expect_id(url, 1, DCP_EID, dt_fmt(path2, sizeof(path2), "%s/missing/sub", dir), "does not exist");
	/* Nothing of this was created. */
	{
		names *l = list_dir(dir);
		char t[4096];
		cr_assert_eq(l->n, 1, "validation created files:%s", names_text(l, t, sizeof(t)));
		free(l);
	}
	dt_rmtree(dir);
}

Test(fs_id, accepted_ids, .timeout = DT_TIMEOUT)
{
	char dir[DT_URL_MAX], url[2 * DT_URL_MAX];

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-idok");
	/* Writers: an existing directory, or a new one in an existing one. */
	expect_id(dt_fmt(url, sizeof(url), "file://%s", dir), 1, DCP_OK, NULL, NULL);
	expect_id(dt_fmt(url, sizeof(url), "file://%s/new", dir), 1, DCP_OK, NULL, NULL);
	expect_id(dt_fmt(url, sizeof(url), "file://localhost%s/new", dir), 1, DCP_OK, NULL, NULL);
	expect_id(dt_fmt(url, sizeof(url), "file://LOCALHOST%s/new", dir), 1, DCP_OK, NULL, NULL);
	expect_id(dt_fmt(url, sizeof(url), "%s/new", dir), 1, DCP_OK, NULL, NULL);
	expect_id(dt_fmt(url, sizeof(url), "file://%s/new?threads=2&layout=item", dir), 1, DCP_OK, NULL,
	          NULL);
	/* Readers, once a checkpoint is there, in every spelling. */
	{
		dt_layout *a = fs_layout(1);
		save_ok(a, 1, dt_fmt(url, sizeof(url), "file://%s/ck", dir), SEED_A, "save");
		dt_layout_free(a);
	}
	expect_id(dt_fmt(url, sizeof(url), "file://%s/ck", dir), 0, DCP_OK, NULL, NULL);
	expect_id(dt_fmt(url, sizeof(url), "file://localhost%s/ck", dir), 0, DCP_OK, NULL, NULL);
	expect_id(dt_fmt(url, sizeof(url), "%s/ck", dir), 0, DCP_OK, NULL, NULL);
	expect_id(dt_fmt(url, sizeof(url), "file://%s/./x/../ck/", dir), 0, DCP_OK, NULL, NULL);
	dt_rmtree(dir);
}

Test(fs_id, unwritable_parent, .timeout = DT_TIMEOUT)
{
	char dir[DT_URL_MAX], ro[DT_URL_MAX + 16], url[2 * DT_URL_MAX];

	/* As root (a CI container), without the capabilities that ignore
	 * permission bits: the test runs as root and as any user alike. */
	dt_drop_file_privileges();
	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-ro");
	dt_fmt(ro, sizeof(ro), "%s/ro", dir);
	cr_assert_eq(mkdir(ro, 0555), 0);
	expect_id(dt_fmt(url, sizeof(url), "file://%s/sub", ro), 1, DCP_EID, ro, "not writable");
	/* An existing directory that is not writable. */
	expect_id(dt_fmt(url, sizeof(url), "file://%s", ro), 1, DCP_EID, ro, "not writable");
	cr_assert_eq(chmod(ro, 0755), 0);
	dt_rmtree(dir);
}

/* A save to an invalid id fails on every rank with DCP_EID and creates
 * nothing; a load of no checkpoint fails with DCP_ENOTFOUND. */
Test(fs_id, collectives_on_bad_ids, .timeout = DT_TIMEOUT)
{
	dt_layout *a = fs_layout(3);
	char dir[DT_URL_MAX], url[2 * DT_URL_MAX], missing[DT_URL_MAX + 16];
	dt_outcome o;
	dt_expect e = {0};
	names *l;

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-idsave");
	dt_fmt(missing, sizeof(missing), "%s/missing", dir);
	dt_save(a, 3, dt_fmt(url, sizeof(url), "file://%s/sub", missing), NULL, SEED_A, &o);
	e.status = DCP_EID;
	e.any_ranks = 1;
	e.mention = missing;
	dt_assert_failed(&o, &e, "a save under a missing parent");
	dt_outcome_clear(&o);
	l = list_dir(dir);
	cr_assert_eq(l->n, 0, "a refused save created '%s'", l->n ? l->name[0] : "");
	free(l);

	dt_load(a, 3, dt_fmt(url, sizeof(url), "file://%s", dir), NULL, SEED_A, &o);
	e.status = DCP_ENOTFOUND;
	e.mention = "no checkpoint at";
	e.mention2 = dir;
	dt_assert_failed(&o, &e, "a load of an empty directory");
	dt_outcome_clear(&o);
	dt_layout_free(a);
	dt_rmtree(dir);
}

/* ------------------------------------------------------------------------ */
/* Commit                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A second save replaces .metadata by rename: the name points at a new inode
 * afterwards, while the old inode (kept alive here by a hard link) still holds
 * the first save's metadata byte for byte, so it was never truncated or
 * rewritten in place. No temporary file is left in the directory.
 */
Test(fs_commit, metadata_is_replaced_by_rename, .timeout = DT_TIMEOUT)
{
	dt_layout *a = fs_layout(4), *b = fs_layout(2);
	char dir[DT_URL_MAX], url[DT_URL_MAX + 32], mdpath[DT_URL_MAX + 32], keep[DT_URL_MAX + 32], t[8192];
	struct stat st0, st1, stk;
	char *old, *kept, *now;
	size_t oldlen, keptlen, nowlen;
	dcp_metadata *md0, *md1;
	names *l;

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-commit");
	dt_fmt(url, sizeof(url), "file://%s", dir);
	dt_fmt(mdpath, sizeof(mdpath), "%s/.metadata", dir);
	dt_fmt(keep, sizeof(keep), "%s/old-metadata-link", dir);
	save_ok(a, 4, url, SEED_A, "first save");
	md0 = read_md(url);
	cr_assert_eq(stat(mdpath, &st0), 0);
	old = slurp(mdpath, &oldlen);
	cr_assert_eq(link(mdpath, keep), 0, "cannot hard-link %s: %s", mdpath, strerror(errno));

	save_ok(b, 2, url, SEED_B, "second save");
	md1 = read_md(url);
	cr_assert_str_neq(md0->save_id, md1->save_id);
	cr_assert_eq(stat(mdpath, &st1), 0);
	cr_assert_neq(st1.st_ino, st0.st_ino, ".metadata kept its inode %llu: it was rewritten in place",
	              (unsigned long long)st0.st_ino);
	cr_assert_eq(stat(keep, &stk), 0);
	cr_assert_eq(stk.st_ino, st0.st_ino);
	cr_assert_eq(stk.st_nlink, 1, "the old .metadata inode still has %llu names",
	             (unsigned long long)stk.st_nlink);
	kept = slurp(keep, &keptlen);
	cr_assert(keptlen == oldlen && memcmp(kept, old, oldlen) == 0,
	          "the old .metadata inode was modified by the second save");
	now = slurp(mdpath, &nowlen);
	cr_assert(nowlen != oldlen || memcmp(now, old, oldlen) != 0, "the new .metadata equals the old one");

	/* No temporary file stays, and the new checkpoint loads. */
	l = list_dir(dir);
	for (size_t i = 0; i < l->n; i++)
		cr_assert(strstr(l->name[i], ".tmp") == NULL, "a temporary file stayed after the commit:%s",
		          names_text(l, t, sizeof(t)));
	free(l);
	load_ok(b, 2, url, SEED_B, "load of the second save");
	/* The user's file (the hard link) is left alone by the commit. */
	cr_assert_eq(access(keep, F_OK), 0);

	free(old);
	free(kept);
	free(now);
	dcp_metadata_free(md0);
	dcp_metadata_free(md1);
	dt_layout_free(a);
	dt_layout_free(b);
	dt_rmtree(dir);
}

/* The first save of a directory leaves only .metadata and data files. */
Test(fs_commit, first_save_leaves_no_temporary_file, .timeout = DT_TIMEOUT)
{
	dt_layout *a = fs_layout(3);
	char dir[DT_URL_MAX], url[DT_URL_MAX + 32], t[8192];
	names *l;

	dt_mkdtemp(dir, sizeof(dir), "dcp-fs-first");
	dt_fmt(url, sizeof(url), "file://%s/new", dir);
	save_ok(a, 3, url, SEED_A, "save to a new directory");
	dt_fmt(url, sizeof(url), "%s/new", dir);
	l = list_dir(url);
	cr_assert_gt(l->n, 1);
	for (size_t i = 0; i < l->n; i++)
		cr_assert(strcmp(l->name[i], ".metadata") == 0 || (strncmp(l->name[i], "__", 2) == 0 &&
		                                                   strstr(l->name[i], ".distcp") != NULL),
		          "unexpected entry after a save:%s", names_text(l, t, sizeof(t)));
	free(l);
	dt_layout_free(a);
	dt_rmtree(dir);
}
