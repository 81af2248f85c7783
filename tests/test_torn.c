/*
 * Torn writes through the faulty plugin (torn.write_data=<ranks>,
 * torn.bytes=<N>; see plugins/faulty/faulty.h and conf/faults/README.md):
 * the chosen ranks' write_data hands only the first N bytes of their data
 * to the inner plugin, which really writes a truncated object, and the save
 * then fails on exactly those ranks. The previous checkpoint stays loadable
 * bit-exact, no metadata ever names the torn object, and the abort removes
 * it.
 *
 * Two levels:
 * - the public API: dcp_save over faulty+file://DIR and faulty+mem://;
 * - the storage ABI: dcp-faulty.so and dcp-fs.so loaded with dlopen and given
 *   a host of this file's own (with its own futures), so that the torn object
 *   can be seen on disk between write_data and abort, and so that a host
 *   without the version-2 future slots is refused.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcp/sys/storage.h"
#include "dcptest.h"

#define SEED_A    UINT64_C(0x70a)
#define SEED_B    UINT64_C(0x70b)
#define MAX_NAMES 256

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */
static dt_layout *model(int n)
{
	dt_layout *l = dt_layout_new();
	uint64_t w[] = {40, 12}, c[] = {9, 30}, rep[] = {33};

	dt_split(dt_add_sharded(l, "w", DCP_F32, 2, w), 0, (size_t)n, NULL);
	dt_split(dt_add_sharded(l, "c", DCP_BF16, 2, c), 1, (size_t)n, NULL);
	dt_add_replicated(l, "rep", DCP_I64, 1, rep, DT_RANKS(n));
	dt_add_bytes(l, "blob", 700, DT_RANK(n - 1));
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

/* The sorted entries of dir (heap; free()). */
static names *list_dir(const char *dir)
{
	names *l = dt_xcalloc(1, sizeof(*l));
	DIR *d = opendir(dir);
	struct dirent *de;

	cr_assert_not_null(d, "cannot list %s", dir);
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

static int has_name(const names *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->name[i], name) == 0)
			return 1;
	return 0;
}

static dcp_metadata *read_md(const char *url)
{
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata(url, NULL, &md, &err);

	cr_assert_eq(rc, DCP_OK, "dcp_read_metadata(%s): %s", url, dt_error_text(err));
	return md;
}

/* Every object md names is in `files`. */
static void assert_md_names_existing(const dcp_metadata *md, const names *files, const char *what)
{
	char t[4096];

	for (size_t i = 0; i < md->nitems; i++)
		for (size_t k = 0; k < md->items[i].nchunks; k++) {
			const char *p = md->items[i].chunks[k].storage.path;
			cr_assert(p == NULL || has_name(files, p),
			          "%s: the metadata names '%s' (key '%s'), which is not in the directory:%s",
			          what, p, md->items[i].key, names_text(files, t, sizeof(t)));
		}
}

/* ------------------------------------------------------------------------ */
/* Through the public API                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A good save, then a torn one over it: the save fails on exactly the torn
 * ranks with DCP_EINJECTED at write_data, the directory is as before (the
 * torn objects were removed by abort), the metadata is the first save's and
 * names only objects that exist, and the first save loads bit-exact.
 */
static void torn_over_previous(const char *query, uint64_t torn_ranks, int nranks)
{
	dt_layout *a = model(nranks), *l3 = model(3);
	char dir[DT_URL_MAX], url[DT_URL_MAX], furl[2 * DT_URL_MAX], t1[4096], t2[4096];
	names *before, *after;
	dcp_metadata *md0, *md1;
	dt_outcome o;
	dt_expect e = {0};

	dt_mkdtemp(dir, sizeof(dir), "dcp-torn");
	dt_fmt(url, sizeof(url), "file://%s", dir);
	dt_fmt(furl, sizeof(furl), "faulty+file://%s?%s", dir, query);
	dt_save(a, nranks, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "the good save");
	dt_outcome_clear(&o);
	md0 = read_md(url);
	before = list_dir(dir);

	dt_save(a, nranks, furl, NULL, SEED_B, &o);
	e.status = DCP_EINJECTED;
	e.ranks = torn_ranks;
	e.step = "write";
	e.stage = "write_data";
	e.entry_code = DCP_EINJECTED;
	e.mention = "torn write";
	e.mention2 = "torn.write_data";
	dt_assert_failed(&o, &e, furl);
	dt_outcome_clear(&o);

	after = list_dir(dir);
	cr_assert_eq(after->n, before->n, "the torn save (%s) changed the directory.\nbefore:%s\nafter:%s",
	             furl, names_text(before, t1, sizeof(t1)), names_text(after, t2, sizeof(t2)));
	for (size_t i = 0; i < before->n; i++)
		cr_assert_str_eq(after->name[i], before->name[i],
		                 "the torn save (%s) changed the directory.\nbefore:%s\nafter:%s", furl,
		                 names_text(before, t1, sizeof(t1)), names_text(after, t2, sizeof(t2)));
	md1 = read_md(url);
	cr_assert_str_eq(md1->save_id, md0->save_id, "the metadata changed after the torn save %s", furl);
	assert_md_names_existing(md1, after, furl);

	dt_load(a, nranks, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of the previous checkpoint after a torn save");
	dt_outcome_clear(&o);
	dt_load(l3, 3, url, NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of the previous checkpoint with 3 ranks after a torn save");
	dt_outcome_clear(&o);

	dcp_metadata_free(md0);
	dcp_metadata_free(md1);
	free(before);
	free(after);
	dt_layout_free(a);
	dt_layout_free(l3);
	dt_rmtree(dir);
}

Test(torn, save_fails_on_exactly_the_torn_ranks_and_keeps_previous, .timeout = DT_TIMEOUT)
{
	torn_over_previous("threads=1&torn.write_data=1,3&torn.bytes=100", DT_RANK(1) | DT_RANK(3), 4);
}

Test(torn, zero_bytes_on_every_rank, .timeout = DT_TIMEOUT)
{
	torn_over_previous("torn.write_data=*&torn.bytes=0", DT_RANKS(4), 4);
}

/* More bytes than the rank has: everything is written, and the save still
 * fails (the write "died" after its last byte). */
Test(torn, more_bytes_than_written_still_fails, .timeout = DT_TIMEOUT)
{
	torn_over_previous("layout=item&threads=3&torn.write_data=0&torn.bytes=1000000000", DT_RANK(0), 2);
}

/* The cut falls inside the third item, with one object per item. */
Test(torn, item_layout_cut_inside_an_item, .timeout = DT_TIMEOUT)
{
	torn_over_previous("layout=item&threads=2&torn.write_data=2&torn.bytes=1000", DT_RANK(2), 3);
}

/* A scenario file may ask for it too, and a URL parameter overrides it. */
Test(torn, scenario_file_and_url_override, .timeout = DT_TIMEOUT)
{
	char dir[DT_URL_MAX], path[DT_URL_MAX + 32], query[2 * DT_URL_MAX];
	FILE *f;

	dt_mkdtemp(dir, sizeof(dir), "dcp-torn-scen");
	dt_fmt(path, sizeof(path), "%s/torn.json", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\"description\": \"rank 2 dies after 64 bytes\", \"torn\": {\"write_data\": [2], \"bytes\": "
	      "64}}",
	      f);
	cr_assert_eq(fclose(f), 0);
	torn_over_previous(dt_fmt(query, sizeof(query), "faults=%s", path), DT_RANK(2), 4);
	torn_over_previous(dt_fmt(query, sizeof(query), "faults=%s&torn.write_data=0", path), DT_RANK(0), 4);
	dt_rmtree(dir);
}

/* A first save that is torn leaves no checkpoint and no file. */
Test(torn, first_save_torn_leaves_nothing, .timeout = DT_TIMEOUT)
{
	dt_layout *a = model(3);
	char dir[DT_URL_MAX], url[DT_URL_MAX], furl[DT_URL_MAX + 64], t[4096];
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	names *after;
	dt_outcome o;
	dt_expect e = {0};

	dt_mkdtemp(dir, sizeof(dir), "dcp-torn-first");
	dt_fmt(url, sizeof(url), "file://%s", dir);
	dt_fmt(furl, sizeof(furl), "faulty+%s?torn.write_data=1&torn.bytes=17", url);
	dt_save(a, 3, furl, NULL, SEED_A, &o);
	e.status = DCP_EINJECTED;
	e.ranks = DT_RANK(1);
	e.stage = "write_data";
	dt_assert_failed(&o, &e, furl);
	dt_outcome_clear(&o);
	after = list_dir(dir);
	cr_assert_eq(after->n, 0, "a torn first save left files:%s", names_text(after, t, sizeof(t)));
	cr_assert_eq(dcp_read_metadata(url, NULL, &md, &err), DCP_ENOTFOUND);
	dcp_error_free(err);
	free(after);
	dt_layout_free(a);
	dt_rmtree(dir);
}

/* Over mem:// too: the previous checkpoint still loads. */
Test(torn, mem_inner_plugin, .timeout = DT_TIMEOUT)
{
	dt_layout *a = model(4);
	dt_outcome o;
	dt_expect e = {0};

	dt_save(a, 4, "mem://torn-mem", NULL, SEED_A, &o);
	dt_assert_ok(&o, "the good save");
	dt_outcome_clear(&o);
	dt_save(a, 4, "faulty+mem://torn-mem?torn.write_data=0-1&torn.bytes=5", NULL, SEED_B, &o);
	e.status = DCP_EINJECTED;
	e.ranks = DT_RANK(0) | DT_RANK(1);
	e.stage = "write_data";
	dt_assert_failed(&o, &e, "a torn save over mem://");
	dt_outcome_clear(&o);
	dt_load(a, 4, "mem://torn-mem", NULL, SEED_A, &o);
	dt_assert_ok(&o, "load of the previous mem checkpoint");
	dt_outcome_clear(&o);
	dt_layout_free(a);
}

Test(torn, bad_parameters_are_rejected, .timeout = DT_TIMEOUT)
{
	static const struct {
		const char *url;
		const char *needle;
	} bad[] = {
	        {"faulty+mem://t?torn.write_data=1&torn.bytes=abc", "torn.bytes"},
	        {"faulty+mem://t?torn.write_data=1&torn.bytes=-1", "torn.bytes"},
	        {"faulty+mem://t?torn.write_data=1&torn.bytes=", "torn.bytes"},
	        {"faulty+mem://t?torn.write_data=1&torn.bytes=18446744073709551616", "torn.bytes"},
	        {"faulty+mem://t?torn.write=1", "torn.write"},
	        {"faulty+mem://t?torn=1", "torn.write_data"},
	        {"faulty+mem://t?torn.write_data=1-x", "torn.write_data"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dcp_error *err = NULL;
		int rc = dcp_validate_checkpoint_id(NULL, bad[i].url, 1, &err);
		cr_assert_eq(rc, DCP_EID, "%s: %d (%s)", bad[i].url, rc, dcp_strerror(rc));
		cr_assert(dt_error_mentions(err, bad[i].needle), "%s: the error does not name '%s':\n%s",
		          bad[i].url, bad[i].needle, dt_error_text(err));
		dcp_error_free(err);
	}
	{
		dcp_error *err = NULL;
		int rc = dcp_validate_checkpoint_id(NULL, "faulty+mem://t?torn.write_data=0&torn.bytes=4096",
		                                    1, &err);
		cr_assert_eq(rc, DCP_OK, "%s", dt_error_text(err));
	}
}

/* ------------------------------------------------------------------------ */
/* Through the storage ABI, with a host of this test's own                  */
/* ------------------------------------------------------------------------ */
struct dcp_future {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int status;
	char message[DCP_MSG_MAX];
	size_t nresults;
	pthread_t completer;
};

static dcp_future *t_future_new(void)
{
	dcp_future *f = calloc(1, sizeof(*f));

	if (f != NULL) {
		pthread_mutex_init(&f->mu, NULL);
		pthread_cond_init(&f->cv, NULL);
	}
	return f;
}

static void t_complete(dcp_future *f, int status, size_t n, const char *message)
{
	pthread_mutex_lock(&f->mu);
	f->done++;
	f->status = status;
	f->nresults = n;
	f->completer = pthread_self();
	snprintf(f->message, sizeof(f->message), "%s", message ? message : "");
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void t_write_complete(dcp_future *f, int status, const dcp_write_result *r, size_t n,
                             const char *message)
{
	(void)r;
	t_complete(f, status, n, message);
}

static void t_read_complete(dcp_future *f, int status, const char *message)
{
	t_complete(f, status, 0, message);
}

static int t_future_wait(dcp_future *f, dcp_msg *msg)
{
	int st;

	pthread_mutex_lock(&f->mu);
	while (!f->done)
		pthread_cond_wait(&f->cv, &f->mu);
	st = f->status;
	if (msg != NULL)
		snprintf(msg->text, sizeof(msg->text), "%s", f->message);
	pthread_mutex_unlock(&f->mu);
	return st;
}

static void t_future_free(dcp_future *f)
{
	if (f == NULL)
		return;
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static int t_md_encode(const dcp_metadata *md, char **json, size_t *len, dcp_msg *msg)
{
	(void)md, (void)json, (void)len;
	dcp_msgf(msg, "test host: no metadata encoder");
	return DCP_EUNSUPPORTED;
}

static int t_md_decode(const char *json, size_t len, dcp_metadata **out, dcp_msg *msg)
{
	(void)json, (void)len, (void)out;
	dcp_msgf(msg, "test host: no metadata decoder");
	return DCP_EUNSUPPORTED;
}

static void t_md_free(dcp_metadata *md)
{
	(void)md;
}

typedef struct test_env {
	dcp_host host; /* first: plugin_for_url finds the env from it */
	void *dl_faulty, *dl_fs;
	dcp_plugin *faulty, *fs;
	int future_allocs;
} test_env;

static int t_plugin_for_url(const dcp_host *host, const char *url, dcp_plugin **out, dcp_msg *msg)
{
	test_env *env = (test_env *)(void *)host;

	if (strncmp(url, "file://", 7) != 0) {
		dcp_msgf(msg, "test host: no plugin for '%s'", url);
		return DCP_ENOPLUGIN;
	}
	*out = env->fs;
	return DCP_OK;
}

static dcp_plugin *load_plugin(test_env *env, const char *name, void **dl)
{
	char dir[4096], path[4200];
	const char *bin = getenv("DCP_BINARY_DIR");
	dcp_plugin_entry_fn entry;
	dcp_plugin *p = NULL;
	dcp_msg msg = {{0}};

	if (bin != NULL && bin[0] != '\0')
		dt_fmt(path, sizeof(path), "%s/lib/dcp/plugins/dcp-%s.so", bin, name);
	else
		dt_fmt(path, sizeof(path), "%s/../lib/dcp/plugins/dcp-%s.so", dt_exe_dir(dir, sizeof(dir)),
		       name);
	*dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(*dl, "cannot load %s: %s", path, dlerror());
	*(void **)&entry = dlsym(*dl, DCP_PLUGIN_ENTRY_SYMBOL);
	cr_assert_not_null(entry, "%s has no %s", path, DCP_PLUGIN_ENTRY_SYMBOL);
	cr_assert_eq(entry(&env->host, &p, &msg), DCP_OK, "%s: %s", path, msg.text);
	return p;
}

/* version: the host version to claim; with_futures: fill the v2 slots. */
static void env_open(test_env *env, unsigned version, int with_futures)
{
	memset(env, 0, sizeof(*env));
	env->host.version = version;
	env->host.metadata_encode = t_md_encode;
	env->host.metadata_decode = t_md_decode;
	env->host.metadata_free = t_md_free;
	env->host.write_future_complete = t_write_complete;
	env->host.read_future_complete = t_read_complete;
	env->host.plugin_for_url = t_plugin_for_url;
	if (with_futures) {
		env->host.future_new = t_future_new;
		env->host.future_wait = t_future_wait;
		env->host.future_free = t_future_free;
	}
	env->fs = load_plugin(env, "fs", &env->dl_fs);
	env->faulty = load_plugin(env, "faulty", &env->dl_faulty);
}

static void env_close(test_env *env)
{
	env->faulty->destroy(env->faulty);
	env->fs->destroy(env->fs);
	dlclose(env->dl_faulty);
	dlclose(env->dl_fs);
}

static uint64_t file_size(const char *dir, const char *name)
{
	char path[DT_URL_MAX + 300];
	struct stat st;

	cr_assert_eq(stat(dt_fmt(path, sizeof(path), "%s/%s", dir, name), &st), 0, "cannot stat %s", path);
	return (uint64_t)st.st_size;
}

/*
 * Three requests of 8 bytes, torn.bytes=10, one object (threads=1): between
 * write_data and abort the directory holds exactly one data object of 10
 * bytes, the first 10 bytes of the rank's data; the outer future failed with
 * DCP_EINJECTED saying 10 of 24 bytes; abort removes the object.
 */
Test(torn_abi, the_inner_plugin_writes_a_truncated_object, .timeout = DT_TIMEOUT)
{
	test_env env;
	char dir[DT_URL_MAX], url[DT_URL_MAX + 64], want_name[128], path[DT_URL_MAX + 200], t[4096];
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 0, 1, 1};
	unsigned char data[3][8], got[64];
	dcp_write_item items[3];
	dcp_write_req reqs[3];
	dcp_save_plan plan = {0};
	dcp_storage_writer *w = NULL;
	dcp_future *fut;
	dcp_msg msg = {{0}};
	names *l;
	FILE *f;
	size_t n;

	env_open(&env, DCP_HOST_VERSION, 1);
	dt_mkdtemp(dir, sizeof(dir), "dcp-torn-abi");
	dt_fmt(url, sizeof(url), "faulty+file://%s?threads=1&torn.write_data=0&torn.bytes=10", dir);
	memset(items, 0, sizeof(items));
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 8; k++)
			data[i][k] = (unsigned char)(0x10 * (i + 1) + k);
		items[i].key = (char *)(i == 0 ? "a" : i == 1 ? "b" : "c");
		items[i].type = DCP_ITEM_BYTES;
		items[i].nbytes = 8;
		reqs[i].index = (uint32_t)i;
		reqs[i].item = &items[i];
		reqs[i].data = data[i];
		reqs[i].len = 8;
	}
	plan.nitems = 3;
	plan.items = items;
	plan.save_id = (char *)"torn-abi-save";

	cr_assert_eq(env.faulty->writer_open(env.faulty, url, &opts, &w, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(w->ops->set_up_storage_writer(w, 1, 0, 1, &msg), DCP_OK, "%s", msg.text);
	fut = t_future_new();
	cr_assert_not_null(fut);
	cr_assert_eq(w->ops->write_data(w, &plan, reqs, 3, fut, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(t_future_wait(fut, &msg), DCP_EINJECTED, "the torn write did not fail: '%s'", msg.text);
	cr_assert_eq(fut->done, 1, "the future was completed %d times", fut->done);
	cr_assert(strstr(msg.text, "10 of its 24 bytes") != NULL && strstr(msg.text, "rank 0") != NULL,
	          "unexpected message: %s", msg.text);

	/* The truncated object is on disk, with the first 10 bytes. */
	l = list_dir(dir);
	dt_fmt(want_name, sizeof(want_name), "__0_0.torn-abi-save%s", ".distcp");
	cr_assert_eq(l->n, 1, "expected one torn object, found:%s", names_text(l, t, sizeof(t)));
	cr_assert_str_eq(l->name[0], want_name);
	cr_assert_eq(file_size(dir, want_name), 10);
	f = fopen(dt_fmt(path, sizeof(path), "%s/%s", dir, want_name), "rb");
	cr_assert_not_null(f);
	n = fread(got, 1, sizeof(got), f);
	fclose(f);
	cr_assert_eq(n, 10);
	cr_assert_eq(memcmp(got, data[0], 8), 0, "the torn object does not start with the first request");
	cr_assert_eq(memcmp(got + 8, data[1], 2), 0,
	             "the torn object's last bytes are not the second request's");
	free(l);

	/* The failed save's abort removes it. */
	cr_assert_not_null(w->ops->abort);
	w->ops->abort(w);
	l = list_dir(dir);
	cr_assert_eq(l->n, 0, "abort left:%s", names_text(l, t, sizeof(t)));
	free(l);
	w->ops->close(w);
	t_future_free(fut);
	env_close(&env);
	dt_rmtree(dir);
}

/* A rank that is not torn writes everything through the same URL. */
Test(torn_abi, other_ranks_write_whole, .timeout = DT_TIMEOUT)
{
	test_env env;
	char dir[DT_URL_MAX], url[DT_URL_MAX + 64];
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 1, 2, 1};
	unsigned char data[100];
	dcp_write_item item = {0};
	dcp_write_req req;
	dcp_save_plan plan = {0};
	dcp_storage_writer *w = NULL;
	dcp_future *fut;
	dcp_msg msg = {{0}};

	env_open(&env, DCP_HOST_VERSION, 1);
	dt_mkdtemp(dir, sizeof(dir), "dcp-torn-abi2");
	dt_fmt(url, sizeof(url), "faulty+file://%s?torn.write_data=0&torn.bytes=10", dir);
	memset(data, 0x5a, sizeof(data));
	item.key = (char *)"x";
	item.type = DCP_ITEM_BYTES;
	item.nbytes = sizeof(data);
	req.index = 0;
	req.item = &item;
	req.data = data;
	req.len = sizeof(data);
	plan.nitems = 1;
	plan.items = &item;
	plan.save_id = (char *)"whole";
	cr_assert_eq(env.faulty->writer_open(env.faulty, url, &opts, &w, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(w->ops->set_up_storage_writer(w, 0, 1, 2, &msg), DCP_OK, "%s", msg.text);
	fut = t_future_new();
	cr_assert_eq(w->ops->write_data(w, &plan, &req, 1, fut, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(t_future_wait(fut, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(fut->nresults, 1);
	cr_assert_eq(file_size(dir, "__1_0.whole.distcp"), sizeof(data));
	w->ops->abort(w);
	w->ops->close(w);
	t_future_free(fut);
	env_close(&env);
	dt_rmtree(dir);
}

/* A host without the version-2 future slots cannot serve a torn write: the
 * id is refused with DCP_EVERSION; other faults still work. */
Test(torn_abi, host_without_futures_is_refused, .timeout = DT_TIMEOUT)
{
	test_env env;
	char dir[DT_URL_MAX], url[DT_URL_MAX + 64];
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 0, 1, 1};
	dcp_storage_writer *w = NULL;
	dcp_msg msg = {{0}};

	env_open(&env, 1, 0);
	dt_mkdtemp(dir, sizeof(dir), "dcp-torn-abi3");
	dt_fmt(url, sizeof(url), "faulty+file://%s?torn.write_data=0", dir);
	cr_assert_eq(env.faulty->validate_checkpoint_id(env.faulty, url, 1, &msg), DCP_EVERSION, "%s",
	             msg.text);
	cr_assert(strstr(msg.text, "torn.write_data") != NULL && strstr(msg.text, "version") != NULL, "%s",
	          msg.text);
	cr_assert_eq(env.faulty->writer_open(env.faulty, url, &opts, &w, &msg), DCP_EVERSION, "%s", msg.text);
	cr_assert_null(w);
	dt_fmt(url, sizeof(url), "faulty+file://%s?fail.finish=0", dir);
	cr_assert_eq(env.faulty->validate_checkpoint_id(env.faulty, url, 1, &msg), DCP_OK, "%s", msg.text);
	env_close(&env);
	dt_rmtree(dir);
}
