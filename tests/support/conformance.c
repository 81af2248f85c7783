/*
 * The storage plugin conformance suite (see conformance.h).
 */
#include "conformance.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcptest.h"

#define SEED_A         UINT64_C(0xc0f0a)
#define SEED_B         UINT64_C(0xc0f0b)
#define CONF_MAX_FILES 512

typedef struct conf_ctx {
	const conf_target *t;
	char tmp[PATH_MAX]; /* "" when the base has no {tmp} */
	char url[DT_URL_MAX];
	char dir[DT_URL_MAX]; /* CONF_LOCAL_FILES: the checkpoint's directory */
} conf_ctx;

/* Expands the target's base for one case. Skips the test when the target
 * needs an environment variable that is not set. */
static void conf_begin(conf_ctx *c, const conf_target *t, const char *name)
{
	const char *envval = NULL;
	char expanded[DT_URL_MAX];
	size_t k = 0;
	memset(c, 0, sizeof(*c));
	c->t = t;
	if (t->env != NULL) {
		envval = getenv(t->env);
		if (envval == NULL || envval[0] == '\0')
			cr_skip_test("conformance target %s needs %s to be set", t->name, t->env);
	}
	for (const char *p = t->base; *p;) {
		const char *ins = NULL;
		if (strncmp(p, "{tmp}", 5) == 0) {
			if (c->tmp[0] == '\0')
				dt_mkdtemp(c->tmp, sizeof(c->tmp), "dcp-conformance");
			ins = c->tmp;
			p += 5;
		} else if (strncmp(p, "{env}", 5) == 0) {
			ins = envval ? envval : "";
			p += 5;
		}
		if (ins != NULL) {
			size_t n = strlen(ins);
			cr_assert_lt(k + n, sizeof(expanded), "%s: base URL too long", t->name);
			memcpy(expanded + k, ins, n);
			k += n;
		} else {
			cr_assert_lt(k + 1, sizeof(expanded), "%s: base URL too long", t->name);
			expanded[k++] = *p++;
		}
	}
	expanded[k] = '\0';
	dt_fmt(c->url, sizeof(c->url), "%s%s", expanded, name);
	if (t->flags & CONF_LOCAL_FILES) {
		if (strncmp(c->url, "file://", 7) == 0)
			dt_fmt(c->dir, sizeof(c->dir), "%s", c->url + 7);
		else
			dt_fmt(c->dir, sizeof(c->dir), "%s", c->url);
	}
}

static void conf_end(conf_ctx *c)
{
	if (c->tmp[0] != '\0')
		dt_rmtree(c->tmp);
}

/* "<what> [<target> <url>]" for assertion messages. */
static const char *conf_what(const conf_ctx *c, char *buf, size_t size, const char *what)
{
	return dt_fmt(buf, size, "%s [%s: %s]", what, c->t->name, c->url);
}

/* faulty+<url>?<query>: the same storage through the fault injector. */
static char *faulty_url(const conf_ctx *c, const char *query, char *buf, size_t size)
{
	return dt_fmt(buf, size, "faulty+%s%s%s", c->url, strchr(c->url, '?') ? "&" : "?", query);
}

/* A state with every kind of item, the same values for any world size. */
static dt_layout *conf_layout(int n)
{
	dt_layout *l = dt_layout_new();
	uint64_t rows[] = {16, 9}, cols[] = {6, 11}, rep[] = {5}, cube[] = {4, 3, 6};
	dt_split(dt_add_sharded(l, "model.rows", DCP_F32, 2, rows), 0, (size_t)n, NULL);
	dt_split(dt_add_sharded(l, "model.cols", DCP_BF16, 2, cols), 1, (size_t)n, NULL);
	dt_split_grid(dt_add_sharded(l, "model.cube", DCP_F16, 3, cube), 0, 2, 2, 2, NULL, n);
	dt_add_replicated(l, "model.replicated", DCP_I64, 1, rep, DT_RANKS(n));
	dt_add_bytes(l, "meta.step", 8, DT_RANKS(n));
	dt_add_bytes(l, "meta.config", 300, DT_RANK(n - 1));
	return l;
}

static void save_ok(const conf_ctx *c, const dt_layout *l, int n, const char *url, const dcp_save_options *so,
                    uint64_t seed, const char *what)
{
	dt_outcome o;
	char w[DT_URL_MAX + 256];
	dt_save(l, n, url, so, seed, &o);
	dt_assert_ok(&o, conf_what(c, w, sizeof(w), what));
	dt_outcome_clear(&o);
}

static void load_ok(const conf_ctx *c, const dt_layout *l, int n, const char *url, uint64_t seed,
                    const char *what)
{
	dt_outcome o;
	char w[DT_URL_MAX + 256];
	dt_load(l, n, url, NULL, seed, &o);
	dt_assert_ok(&o, conf_what(c, w, sizeof(w), what));
	dt_outcome_clear(&o);
}

static dcp_metadata *read_md(const conf_ctx *c)
{
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata(c->url, NULL, &md, &err);
	if (rc != DCP_OK)
		cr_assert_fail("[%s] dcp_read_metadata(%s) returned %d (%s):\n%s", c->t->name, c->url, rc,
		               dcp_strerror(rc), dt_error_text(err));
	return md;
}

/* ------------------------------------------------------------------------ */
/* Local files                                                              */
/* ------------------------------------------------------------------------ */
typedef struct file_set {
	size_t n;
	char *paths[CONF_MAX_FILES]; /* relative to the checkpoint directory */
} file_set;

static void list_rec(const char *root, const char *rel, file_set *fs)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;
	dt_fmt(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	d = opendir(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char sub[PATH_MAX], full[PATH_MAX];
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		dt_fmt(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		dt_fmt(full, sizeof(full), "%s/%s", root, sub);
		if (lstat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			list_rec(root, sub, fs);
		} else {
			cr_assert_lt(fs->n, CONF_MAX_FILES, "more than %d files under %s", CONF_MAX_FILES,
			             root);
			fs->paths[fs->n] = dt_xmalloc(strlen(sub) + 1);
			strcpy(fs->paths[fs->n++], sub);
		}
	}
	closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_files(const char *dir, file_set *fs)
{
	memset(fs, 0, sizeof(*fs));
	list_rec(dir, "", fs);
	qsort(fs->paths, fs->n, sizeof(fs->paths[0]), cmp_str);
}

static void free_files(file_set *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		free(fs->paths[i]);
	fs->n = 0;
}

static int in_set(const file_set *fs, const char *p)
{
	for (size_t i = 0; i < fs->n; i++)
		if (strcmp(fs->paths[i], p) == 0)
			return 1;
	return 0;
}

static int referenced(const dcp_metadata *md, const char *p)
{
	for (size_t i = 0; i < md->nitems; i++)
		for (size_t k = 0; k < md->items[i].nchunks; k++)
			if (strcmp(md->items[i].chunks[k].storage.path, p) == 0)
				return 1;
	return 0;
}

static size_t unreferenced_count(const file_set *fs, const dcp_metadata *md)
{
	size_t n = 0;
	for (size_t i = 0; i < fs->n; i++)
		n += !referenced(md, fs->paths[i]);
	return n;
}

static char *files_text(const file_set *fs)
{
	size_t len = 1;
	char *t;
	for (size_t i = 0; i < fs->n; i++)
		len += strlen(fs->paths[i]) + 3;
	t = dt_xmalloc(len);
	t[0] = '\0';
	for (size_t i = 0; i < fs->n; i++) {
		strcat(t, "  ");
		strcat(t, fs->paths[i]);
		strcat(t, "\n");
	}
	return t;
}

/* The stored chunk of key with the most bytes. */
static const dcp_md_chunk *largest_chunk(const dcp_metadata *md, const char *key)
{
	const dcp_md_item *it = dcp_metadata_find(md, key);
	const dcp_md_chunk *best = NULL;
	cr_assert_not_null(it, "metadata has no item '%s'", key);
	for (size_t k = 0; k < it->nchunks; k++)
		if (best == NULL || it->chunks[k].storage.length > best->storage.length)
			best = &it->chunks[k];
	cr_assert(best != NULL && best->storage.length > 0, "'%s' has no stored bytes", key);
	return best;
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                    */
/* ------------------------------------------------------------------------ */
void conf_case_round_trip(const conf_target *t)
{
	conf_ctx c;
	dt_layout *l4 = conf_layout(4), *l3 = conf_layout(3), *l1 = conf_layout(1);
	dcp_metadata *md;
	conf_begin(&c, t, "round-trip");
	save_ok(&c, l4, 4, c.url, NULL, SEED_A, "save with 4 ranks");
	md = read_md(&c);
	cr_assert_eq(md->nitems, l4->nitems, "[%s] the metadata lists %zu items, expected %zu", t->name,
	             md->nitems, l4->nitems);
	dcp_metadata_free(md);
	load_ok(&c, l3, 3, c.url, SEED_A, "load with 3 ranks");
	load_ok(&c, l4, 4, c.url, SEED_A, "load with 4 ranks");
	load_ok(&c, l1, 0, c.url, SEED_A, "load with 1 rank (no-dist)");
	dt_layout_free(l4);
	dt_layout_free(l3);
	dt_layout_free(l1);
	conf_end(&c);
}

void conf_case_bytes(const conf_target *t)
{
	conf_ctx c;
	dt_layout *save = dt_layout_new(), *load;
	conf_begin(&c, t, "bytes");
	dt_add_bytes(save, "b.empty", 0, DT_RANKS(3));
	dt_add_bytes(save, "b.small", 13, DT_RANK(1));
	dt_add_bytes(save, "b.over.a.block", ((size_t)DCP_CHECKSUM_BLOCK_DEFAULT) + 17, DT_RANK(2));
	dt_add_bytes(save, "b.everyone", 100, DT_RANKS(3));
	save_ok(&c, save, 3, c.url, NULL, SEED_A, "save of bytes items with 3 ranks");
	load = dt_layout_dup(save);
	for (size_t i = 0; i < load->nitems; i++)
		load->items[i].holders = DT_RANKS(2);
	load_ok(&c, load, 2, c.url, SEED_A, "load of bytes items into caller buffers with 2 ranks");
	for (size_t i = 0; i < load->nitems; i++)
		load->items[i].lib_alloc = 1;
	load_ok(&c, load, 2, c.url, SEED_A, "load of bytes items into library buffers with 2 ranks");
	dt_layout_free(save);
	dt_layout_free(load);
	conf_end(&c);
}

void conf_case_overwrite(const conf_target *t)
{
	conf_ctx c;
	dt_layout *a = conf_layout(4), *b = conf_layout(2), *l3 = conf_layout(3);
	uint64_t s[] = {7};
	dcp_metadata *mda, *mdb;
	file_set before, after;
	dt_outcome o;
	dt_expect e = {0};
	char w[DT_URL_MAX + 256];

	conf_begin(&c, t, "overwrite");
	dt_add_replicated(a, "only.in.the.first", DCP_F32, 1, s, DT_RANKS(4));
	save_ok(&c, a, 4, c.url, NULL, SEED_A, "first save");
	mda = read_md(&c);
	if (t->flags & CONF_LOCAL_FILES)
		list_files(c.dir, &before);

	save_ok(&c, b, 2, c.url, NULL, SEED_B, "second save over the first (overwrite = 1)");
	mdb = read_md(&c);
	cr_assert_str_neq(mda->save_id, mdb->save_id, "[%s] both saves have save id '%s'", t->name,
	                  mda->save_id);
	cr_assert_null(dcp_metadata_find(mdb, "only.in.the.first"),
	               "[%s] the second checkpoint still lists a key of the first", t->name);
	load_ok(&c, b, 2, c.url, SEED_B, "load of the second save");
	load_ok(&c, l3, 3, c.url, SEED_B, "load of the second save with 3 ranks");

	/* Nothing of the first save is loadable any more. */
	dt_load(a, 4, c.url, NULL, SEED_A, &o);
	e.status = DCP_ENOTFOUND;
	e.any_ranks = 1;
	e.mention = "only.in.the.first";
	dt_assert_failed(&o, &e, conf_what(&c, w, sizeof(w), "load of a key only the first save had"));
	dt_outcome_clear(&o);

	if (t->flags & CONF_LOCAL_FILES) {
		char *ta, *tb;
		list_files(c.dir, &after);
		ta = files_text(&before);
		tb = files_text(&after);
		for (size_t i = 0; i < before.n; i++)
			if (referenced(mda, before.paths[i]) && !referenced(mdb, before.paths[i]))
				cr_assert(
				        !in_set(&after, before.paths[i]),
				        "[%s] data file %s of the first save is still there after the second "
				        "save committed.\nBefore:\n%sAfter:\n%s",
				        t->name, before.paths[i], ta, tb);
		cr_assert_leq(unreferenced_count(&after, mdb), unreferenced_count(&before, mda),
		              "[%s] more files outside the metadata after the second save than after the "
		              "first.\nBefore:\n%sAfter:\n%s",
		              t->name, ta, tb);
		free(ta);
		free(tb);
		free_files(&before);
		free_files(&after);
	}
	dcp_metadata_free(mda);
	dcp_metadata_free(mdb);
	dt_layout_free(a);
	dt_layout_free(b);
	dt_layout_free(l3);
	conf_end(&c);
}

void conf_case_no_overwrite(const conf_target *t)
{
	conf_ctx c;
	dt_layout *l = conf_layout(3), *l2 = conf_layout(2);
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	char fresh[DT_URL_MAX + 16], w[DT_URL_MAX + 256];
	dt_outcome o;
	dt_expect e = {0};

	conf_begin(&c, t, "no-overwrite");
	so.overwrite = 0;
	save_ok(&c, l, 3, c.url, &so, SEED_A, "save with overwrite = 0 to a fresh id");
	dt_save(l, 3, c.url, &so, SEED_B, &o);
	e.status = DCP_EEXISTS;
	e.any_ranks = 1;
	dt_assert_failed(&o, &e, conf_what(&c, w, sizeof(w), "second save with overwrite = 0"));
	dt_outcome_clear(&o);
	load_ok(&c, l, 3, c.url, SEED_A, "load of the first save after the refused one");
	load_ok(&c, l2, 2, c.url, SEED_A, "load of the first save with 2 ranks");

	/* A different id next to it is fresh. */
	dt_fmt(fresh, sizeof(fresh), "%s-2", c.url);
	save_ok(&c, l, 3, fresh, &so, SEED_B, "save with overwrite = 0 to another fresh id");
	load_ok(&c, l, 3, fresh, SEED_B, "load of it");
	load_ok(&c, l, 3, c.url, SEED_A, "the first checkpoint is untouched");
	dt_layout_free(l);
	dt_layout_free(l2);
	conf_end(&c);
}

typedef struct fault_case {
	const char *query;
	const char *stage;
	uint64_t ranks;
} fault_case;

void conf_case_failed_save_keeps_previous(const conf_target *t)
{
	static const fault_case faults[] = {
	        {"fail.set_up_storage_writer=0", "set_up_storage_writer", DT_RANK(0)},
	        {"fail.prepare_local_plan=3", "prepare_local_plan", DT_RANK(3)},
	        {"fail.prepare_global_plan=0", "prepare_global_plan", DT_RANK(0)},
	        {"fail.write_data=1", "write_data", DT_RANK(1)},
	        {"fail.write_data_async=2,3", "write_data", DT_RANK(2) | DT_RANK(3)},
	        {"fail.finish=0", "finish", DT_RANK(0)},
	};
	conf_ctx c;
	dt_layout *l = conf_layout(4), *l3 = conf_layout(3);
	dcp_metadata *md;
	file_set before;

	conf_begin(&c, t, "failed-save");
	save_ok(&c, l, 4, c.url, NULL, SEED_A, "the good save");
	md = read_md(&c);
	if (t->flags & CONF_LOCAL_FILES)
		list_files(c.dir, &before);

	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		char furl[DT_URL_MAX + 128], w[2 * DT_URL_MAX];
		dt_outcome o;
		dt_expect e = {0};
		dcp_metadata *now;
		faulty_url(&c, faults[i].query, furl, sizeof(furl));
		dt_fmt(w, sizeof(w), "save through %s", furl);
		dt_save(l, 4, furl, NULL, SEED_B, &o);
		e.status = DCP_EINJECTED;
		e.ranks = faults[i].ranks;
		e.stage = faults[i].stage;
		dt_assert_failed(&o, &e, w);
		dt_outcome_clear(&o);

		load_ok(&c, l, 4, c.url, SEED_A, "load of the previous checkpoint after a failed save");
		now = read_md(&c);
		cr_assert_str_eq(now->save_id, md->save_id,
		                 "[%s] the metadata changed after a failed save (%s)", t->name, furl);
		dcp_metadata_free(now);
		if (t->flags & CONF_LOCAL_FILES) {
			file_set after;
			list_files(c.dir, &after);
			for (size_t k = 0; k < after.n || k < before.n; k++) {
				const char *x = k < after.n ? after.paths[k] : "(none)";
				const char *y = k < before.n ? before.paths[k] : "(none)";
				if (strcmp(x, y) != 0) {
					char *ta = files_text(&before), *tb = files_text(&after);
					cr_assert_fail("[%s] the failed save (%s) changed the files of the "
					               "checkpoint directory.\nBefore:\n%sAfter:\n%s",
					               t->name, furl, ta, tb);
				}
			}
			free_files(&after);
		}
	}
	/* And a good save still works afterwards. */
	save_ok(&c, l, 4, c.url, NULL, SEED_B, "a good save after the failed ones");
	load_ok(&c, l3, 3, c.url, SEED_B, "load of it with 3 ranks");
	if (t->flags & CONF_LOCAL_FILES)
		free_files(&before);
	dcp_metadata_free(md);
	dt_layout_free(l);
	dt_layout_free(l3);
	conf_end(&c);
}

void conf_case_missing(const conf_target *t)
{
	conf_ctx c;
	dt_layout *l = conf_layout(2);
	dt_outcome o;
	dt_expect e = {0};
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	char w[DT_URL_MAX + 256];
	int rc;

	conf_begin(&c, t, "never-saved");
	dt_load(l, 2, c.url, NULL, SEED_A, &o);
	e.status = DCP_ENOTFOUND;
	e.any_ranks = 1;
	dt_assert_failed(&o, &e, conf_what(&c, w, sizeof(w), "load of an id with no checkpoint"));
	dt_outcome_clear(&o);

	rc = dcp_read_metadata(c.url, NULL, &md, &err);
	cr_assert_eq(rc, DCP_ENOTFOUND, "[%s] dcp_read_metadata(%s) of no checkpoint returned %d (%s)",
	             t->name, c.url, rc, dcp_strerror(rc));
	cr_assert_not_null(err);
	dcp_error_free(err);
	dt_layout_free(l);
	conf_end(&c);
}

void conf_case_remove(const conf_target *t)
{
	conf_ctx c;
	dt_layout *l = conf_layout(2);
	dcp_error *err = NULL;
	dt_outcome o;
	dt_expect e = {0};
	dcp_metadata *md;
	char w[DT_URL_MAX + 256];
	int rc;

	conf_begin(&c, t, "remove");
	save_ok(&c, l, 2, c.url, NULL, SEED_A, "save");
	md = read_md(&c);
	rc = dcp_remove(c.url, NULL, &err);
	if (rc == DCP_EUNSUPPORTED) {
		dcp_error_free(err);
		dcp_metadata_free(md);
		dt_layout_free(l);
		conf_end(&c);
		cr_skip_test("plugin %s does not support remove", t->name);
	}
	cr_assert_eq(rc, DCP_OK, "[%s] dcp_remove(%s) returned %d:\n%s", t->name, c.url, rc,
	             dt_error_text(err));
	dt_load(l, 2, c.url, NULL, SEED_A, &o);
	e.status = DCP_ENOTFOUND;
	e.any_ranks = 1;
	dt_assert_failed(&o, &e, conf_what(&c, w, sizeof(w), "load after dcp_remove"));
	dt_outcome_clear(&o);
	if (t->flags & CONF_LOCAL_FILES) {
		file_set after;
		list_files(c.dir, &after);
		for (size_t i = 0; i < after.n; i++)
			cr_assert(!referenced(md, after.paths[i]),
			          "[%s] data file %s is still there after dcp_remove", t->name,
			          after.paths[i]);
		free_files(&after);
	}
	/* A new save to the same id works. */
	save_ok(&c, l, 2, c.url, NULL, SEED_B, "save after remove");
	load_ok(&c, l, 2, c.url, SEED_B, "load of it");
	dcp_metadata_free(md);
	dt_layout_free(l);
	conf_end(&c);
}

typedef enum corruption { FLIP_BYTE, TRUNCATE, DELETE } corruption;

static void corrupt_case(const conf_target *t, corruption how, const char *name)
{
	conf_ctx c;
	dt_layout *l4 = conf_layout(4), *l3 = conf_layout(3);
	const char *key = "model.rows";
	const dcp_md_chunk *ch;
	dcp_metadata *md;
	char file[2 * DT_URL_MAX], w[DT_URL_MAX + 256];
	const char *base;
	dt_outcome o;
	dt_expect e = {0};

	if (!(t->flags & CONF_LOCAL_FILES))
		cr_skip_test("corruption cases need local files; %s has none", t->name);
	conf_begin(&c, t, name);
	save_ok(&c, l4, 4, c.url, NULL, SEED_A, "save");
	md = read_md(&c);
	ch = largest_chunk(md, key);
	dt_fmt(file, sizeof(file), "%s/%s", c.dir, ch->storage.path);
	base = strrchr(ch->storage.path, '/') ? strrchr(ch->storage.path, '/') + 1 : ch->storage.path;

	if (how == FLIP_BYTE) {
		FILE *f = fopen(file, "r+b");
		long at = (long)(ch->storage.offset + ch->storage.length / 2);
		int b;
		cr_assert_not_null(f, "[%s] cannot open data file %s", t->name, file);
		cr_assert_eq(fseek(f, at, SEEK_SET), 0);
		b = fgetc(f);
		cr_assert_neq(b, EOF, "[%s] %s is shorter than its metadata says", t->name, file);
		cr_assert_eq(fseek(f, at, SEEK_SET), 0);
		fputc(b ^ 0x10, f);
		cr_assert_eq(fclose(f), 0);
		e.status = DCP_ECORRUPT;
		e.mention2 = key;
	} else if (how == TRUNCATE) {
		cr_assert_eq(truncate(file, (off_t)(ch->storage.offset + ch->storage.length / 2)), 0,
		             "[%s] cannot truncate %s", t->name, file);
		e.status = DCP_ECORRUPT;
	} else {
		cr_assert_eq(unlink(file), 0, "[%s] cannot delete %s", t->name, file);
	}
	dt_load(l3, 3, c.url, NULL, SEED_A, &o);
	e.any_ranks = 1;
	e.mention = base;
	dt_assert_failed(&o, &e, conf_what(&c, w, sizeof(w), "load of a corrupted checkpoint"));
	dt_outcome_clear(&o);
	dcp_metadata_free(md);
	dt_layout_free(l4);
	dt_layout_free(l3);
	conf_end(&c);
}

void conf_case_corrupt_flipped_byte(const conf_target *t)
{
	corrupt_case(t, FLIP_BYTE, "corrupt-flip");
}

void conf_case_corrupt_truncated_file(const conf_target *t)
{
	corrupt_case(t, TRUNCATE, "corrupt-truncate");
}

void conf_case_corrupt_deleted_file(const conf_target *t)
{
	corrupt_case(t, DELETE, "corrupt-delete");
}
