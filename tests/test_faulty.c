/*
 * The faulty plugin (plugins/faulty): failure injection at every stage of a
 * save and a load on chosen ranks, scenario files from conf/faults/, removal
 * of its own URL parameters before the inner plugin sees the URL, mirroring of
 * the inner plugin's optional slots, and rejection of bad parameters.
 *
 * Everything goes through the public API: dcp_save / dcp_load on ranks run as
 * threads by dcp_run_ranks, with "faulty+mem://..." URLs. A small "probe"
 * plugin, registered in-process with dcp_registry_add, wraps mem:// and
 * records what it is given, so that tests can see exactly which URL and which
 * calls reach the inner plugin.
 *
 * The last tests load dcp-faulty.so with dlopen and give it fake host
 * services, to check what the protocol cannot show (which inner slots run,
 * and that an async failure arrives from another thread).
 *
 * Scenario files are found in $DCP_SOURCE_DIR/conf/faults (ctest sets it),
 * else in ../../conf/faults relative to this executable (build/bin/test_faulty
 * in a build folder at the top of the source tree). dcp-faulty.so is found in
 * $DCP_BINARY_DIR/lib/dcp/plugins, else in ../lib/dcp/plugins relative to it.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <dlfcn.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/storage.h"

#define MAXR 8
#define ROWS 8
#define COLS 4

/* snprintf into a path or URL buffer, failing the test if it does not fit. */
#define FORMAT(buf, len, ...) cr_assert(snprintf(buf, len, __VA_ARGS__) < (int)(len), "%s: too long", #buf)

/* ------------------------------------------------------------------------ */
/* A rank's state: a row-sharded f32 [8,4], a replicated f32 [4], bytes.     */
/* ------------------------------------------------------------------------ */
typedef struct rank_state {
	dcp_state *state;
	float shard[ROWS * COLS];
	float rep[COLS];
	char bytes[32];
	uint64_t row0, nrows;
} rank_state;

static float value_at(int salt, uint64_t row, uint64_t col)
{
	return (float)(salt * 1000 + (int)(row * COLS + col)) * 0.5f;
}

/* Builds rank's state of an nranks-way row split; zeroed buffers for a load. */
static int rank_state_init(rank_state *rs, int rank, int nranks, int salt, int for_load)
{
	uint64_t shape[2] = {ROWS, COLS}, rshape[1] = {COLS};
	uint64_t offsets[2], sizes[2];
	int rc;

	memset(rs, 0, sizeof(*rs));
	rs->row0 = (uint64_t)rank * ROWS / (uint64_t)nranks;
	rs->nrows = (uint64_t)(rank + 1) * ROWS / (uint64_t)nranks - rs->row0;
	for (uint64_t r = 0; r < rs->nrows && !for_load; r++)
		for (uint64_t c = 0; c < COLS; c++)
			rs->shard[r * COLS + c] = value_at(salt, rs->row0 + r, c);
	for (int c = 0; c < COLS && !for_load; c++)
		rs->rep[c] = (float)(salt + c);
	if (!for_load)
		snprintf(rs->bytes, sizeof(rs->bytes), "step=%d", salt);
	rs->state = dcp_state_new();
	if (rs->state == NULL)
		return DCP_ENOMEM;
	offsets[0] = rs->row0;
	offsets[1] = 0;
	sizes[0] = rs->nrows;
	sizes[1] = COLS;
	rc = DCP_OK;
	if (rs->nrows > 0)
		rc = dcp_state_add_shard(rs->state, "model.w", DCP_F32, 2, shape, offsets, sizes, rs->shard);
	if (rc == DCP_OK)
		rc = dcp_state_add_tensor(rs->state, "model.r", DCP_F32, 1, rshape, rs->rep);
	if (rc == DCP_OK)
		rc = dcp_state_add_bytes(rs->state, "step", rs->bytes,
		                         for_load ? sizeof(rs->bytes) : strlen(rs->bytes));
	return rc;
}

/* 1 if a loaded state holds what rank_state_init(salt) saved. */
static int rank_state_check(const rank_state *rs, int salt)
{
	char expect[32];
	const void *data = NULL;
	size_t len = 0;

	for (uint64_t r = 0; r < rs->nrows; r++)
		for (uint64_t c = 0; c < COLS; c++)
			if (rs->shard[r * COLS + c] != value_at(salt, rs->row0 + r, c))
				return 0;
	for (int c = 0; c < COLS; c++)
		if (rs->rep[c] != (float)(salt + c))
			return 0;
	snprintf(expect, sizeof(expect), "step=%d", salt);
	if (dcp_state_get_bytes(rs->state, "step", &data, &len) != DCP_OK)
		return 0;
	return len == strlen(expect) && memcmp(data, expect, len) == 0;
}

/* ------------------------------------------------------------------------ */
/* Running a save or a load on N ranks                                       */
/* ------------------------------------------------------------------------ */
typedef struct run {
	const char *url;
	int nranks;
	int coordinator;
	int load; /* 0: save, 1: load */
	int salt;
	dcp_registry *reg; /* NULL: the default registry */
	int rc[MAXR];
	dcp_error *err[MAXR];
	int data_ok[MAXR]; /* load: the state matched */
} run;

static int rank_main(dcp_comm *comm, int rank, void *arg)
{
	run *r = arg;
	rank_state rs;
	int rc = rank_state_init(&rs, rank, r->nranks, r->salt, r->load);

	if (rc != DCP_OK) {
		dcp_state_free(rs.state);
		r->rc[rank] = rc;
		return rc;
	}
	if (r->load) {
		dcp_load_options o = DCP_LOAD_OPTIONS_INIT;
		o.coordinator = r->coordinator;
		o.registry = r->reg;
		rc = dcp_load(rs.state, r->url, comm, &o, &r->err[rank]);
		r->data_ok[rank] = rc == DCP_OK && rank_state_check(&rs, r->salt);
	} else {
		dcp_save_options o = DCP_SAVE_OPTIONS_INIT;
		o.coordinator = r->coordinator;
		o.registry = r->reg;
		rc = dcp_save(rs.state, r->url, comm, &o, &r->err[rank]);
	}
	r->rc[rank] = rc;
	dcp_state_free(rs.state);
	return rc;
}

static void run_ranks(run *r)
{
	cr_assert(r->nranks >= 1 && r->nranks <= MAXR);
	for (int i = 0; i < MAXR; i++) {
		r->err[i] = NULL;
		r->rc[i] = -999;
		r->data_ok[i] = 0;
	}
	cr_assert_eq(dcp_run_ranks(r->nranks, rank_main, r, NULL), DCP_OK, "dcp_run_ranks failed to start");
}

static void run_clear(run *r)
{
	for (int i = 0; i < MAXR; i++) {
		dcp_error_free(r->err[i]);
		r->err[i] = NULL;
	}
}

static void save_ok(const char *url, int nranks, int coordinator, int salt, dcp_registry *reg)
{
	run r = {.url = url, .nranks = nranks, .coordinator = coordinator, .salt = salt, .reg = reg};
	run_ranks(&r);
	for (int i = 0; i < nranks; i++) {
		char *text = r.err[i] ? dcp_error_format(r.err[i]) : NULL;
		cr_assert_eq(r.rc[i], DCP_OK, "save to %s failed on rank %d: %s", url, i, text ? text : "?");
		free(text);
	}
	run_clear(&r);
}

static void load_ok(const char *url, int nranks, int coordinator, int salt, dcp_registry *reg)
{
	run r = {.url = url,
	         .nranks = nranks,
	         .coordinator = coordinator,
	         .load = 1,
	         .salt = salt,
	         .reg = reg};
	run_ranks(&r);
	for (int i = 0; i < nranks; i++) {
		char *text = r.err[i] ? dcp_error_format(r.err[i]) : NULL;
		cr_assert_eq(r.rc[i], DCP_OK, "load from %s failed on rank %d: %s", url, i,
		             text ? text : "?");
		free(text);
		cr_assert(r.data_ok[i], "load from %s on rank %d: the data differ from what was saved", url,
		          i);
	}
	run_clear(&r);
}

/*
 * Checks that every rank failed with an equal error whose failing ranks are
 * exactly want[0..nwant-1] (ascending), each an injected failure whose
 * message names the stage given for it (stages[i], or stages[0] for all).
 */
static void expect_injected(const run *r, const int *want, size_t nwant, const char *const *stages,
                            size_t nstages)
{
	char *first = NULL;

	for (int rank = 0; rank < r->nranks; rank++) {
		const dcp_error *e = r->err[rank];
		char *text;

		cr_assert_neq(r->rc[rank], DCP_OK, "%s: rank %d succeeded, expected an injected failure",
		              r->url, rank);
		cr_assert_not_null(e, "%s: rank %d failed with no error object", r->url, rank);
		text = dcp_error_format(e);
		cr_assert_not_null(text);
		cr_assert_eq(r->rc[rank], dcp_error_code(e), "%s: rank %d returned %d but its error says %d",
		             r->url, rank, r->rc[rank], dcp_error_code(e));
		cr_assert_eq(dcp_error_count(e), nwant, "%s: rank %d: expected %zu failing ranks, got:\n%s",
		             r->url, rank, nwant, text);
		for (size_t i = 0; i < nwant; i++) {
			const char *stage = stages[nstages == 1 ? 0 : i];
			char expect[256];

			cr_assert_eq(dcp_error_rank(e, i), want[i],
			             "%s: entry %zu is rank %d, expected %d:\n%s", r->url, i,
			             dcp_error_rank(e, i), want[i], text);
			cr_assert_eq(dcp_error_entry_code(e, i), DCP_EINJECTED,
			             "%s: rank %d's code is %s:\n%s", r->url, want[i],
			             dcp_strerror(dcp_error_entry_code(e, i)), text);
			snprintf(expect, sizeof(expect),
			         "injected failure at %s on rank %d (faulty plugin: fail.%s)", stage, want[i],
			         stage);
			cr_assert_not_null(strstr(dcp_error_message(e, i), expect),
			                   "%s: rank %d's message lacks \"%s\":\n%s", r->url, want[i], expect,
			                   text);
			/* write_data_async fails in write_data's future: the core
			 * names the slot, the message names the injected stage. */
			const char *async = strstr(stage, "_async");
			int slot_len = async != NULL ? (int)(async - stage) : (int)strlen(stage);
			char slot[64];
			snprintf(slot, sizeof(slot), "%.*s", slot_len, stage);
			cr_assert_str_eq(dcp_error_stage(e, i), slot, "%s: rank %d's stage:\n%s", r->url,
			                 want[i], text);
		}
		for (int other = 0; other < r->nranks; other++) {
			int listed = 0;
			for (size_t i = 0; i < nwant; i++)
				listed |= want[i] == other;
			cr_assert_eq(dcp_error_has_rank(e, other), listed, "%s: rank %d listed=%d:\n%s",
			             r->url, other, !listed, text);
		}
		if (first == NULL) {
			first = text;
		} else {
			cr_assert_str_eq(text, first, "%s: rank %d's error differs from rank 0's", r->url,
			                 rank);
			free(text);
		}
	}
	free(first);
}

/* Runs a save or load of url on nranks with coordinator, expecting exactly
 * the ranks of `want` (a rank list, ascending) to fail at stage. */
static void expect_stage_failure(const char *url, int load, int nranks, int coordinator, int salt,
                                 const int *want, size_t nwant, const char *stage)
{
	run r = {.url = url, .nranks = nranks, .coordinator = coordinator, .load = load, .salt = salt};
	run_ranks(&r);
	expect_injected(&r, want, nwant, &stage, 1);
	run_clear(&r);
}

/* 1 if a committed checkpoint is at url. */
static int checkpoint_exists(const char *url)
{
	dcp_metadata *md = NULL;
	dcp_error *err = NULL;
	int rc = dcp_read_metadata(url, NULL, &md, &err);

	dcp_metadata_free(md);
	dcp_error_free(err);
	return rc == DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* Scenario files                                                            */
/* ------------------------------------------------------------------------ */
/* The conf/faults folder of the source tree (see the file comment). */
static void faults_dir(char *out, size_t len)
{
	const char *src = getenv("DCP_SOURCE_DIR");
	char exe[PATH_MAX];
	ssize_t n;

	if (src != NULL && src[0] != '\0') {
		FORMAT(out, len, "%s/conf/faults", src);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert(n > 0, "cannot find this test's executable to locate conf/faults; set DCP_SOURCE_DIR");
	exe[n] = '\0';
	FORMAT(out, len, "%s/../../conf/faults", dirname(exe));
}

static void scenario_path(const char *name, char *out, size_t len)
{
	char dir[PATH_MAX];

	faults_dir(dir, sizeof(dir));
	FORMAT(out, len, "%s/%s", dir, name);
	cr_assert_eq(access(out, R_OK), 0,
	             "scenario file %s not found; set DCP_SOURCE_DIR to the source tree", out);
}

/* Writes text to a new file in a fresh temporary folder; returns its path. */
static void temp_file(const char *name, const char *text, char *out, size_t len)
{
	char dir[] = "/tmp/dcp-test-faulty-XXXXXX";
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	FORMAT(out, len, "%s/%s", dir, name);
	f = fopen(out, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void temp_remove(const char *path)
{
	char copy[PATH_MAX];

	FORMAT(copy, sizeof(copy), "%s", path);
	unlink(path);
	rmdir(dirname(copy));
}

/* ------------------------------------------------------------------------ */
/* The probe plugin: scheme "probe", wraps mem:// and records its calls      */
/* ------------------------------------------------------------------------ */
/*
 * "probe://NAME?..." stores in "mem://NAME". With its own parameter
 * minimal=1, its writers and readers leave every optional slot NULL (except
 * storage_meta, which mem may need on load), so that tests can check that the
 * faulty plugin mirrors an inner plugin without them. It has no remove slot.
 */
typedef struct probe_plugin {
	dcp_plugin base;
	const dcp_host *host;
	pthread_mutex_t mu;
	char *validate_url;
	char *writer_url[MAXR];
	char *reader_url[MAXR];
	int aborts[MAXR];
} probe_plugin;

static const char *const probe_schemes[] = {"probe", NULL};

static void probe_record(probe_plugin *p, char **slot, const char *url)
{
	pthread_mutex_lock(&p->mu);
	free(*slot);
	*slot = strdup(url);
	pthread_mutex_unlock(&p->mu);
}

/* "probe://NAME?q" -> "mem://NAME" (malloc'd). */
static char *probe_inner_url(const char *url)
{
	const char *rest = strstr(url, "://");
	size_t n;
	char *out;

	if (rest == NULL)
		return NULL;
	rest += 3;
	n = strcspn(rest, "?");
	out = malloc(n + 7);
	if (out != NULL)
		snprintf(out, n + 7, "mem://%.*s", (int)n, rest);
	return out;
}

static int probe_mem(probe_plugin *p, const char *url, dcp_plugin **mem, char **inner, dcp_msg *msg)
{
	*inner = probe_inner_url(url);
	if (*inner == NULL) {
		dcp_msgf(msg, "probe: bad url '%s'", url);
		return DCP_EID;
	}
	return p->host->plugin_for_url(p->host, *inner, mem, msg);
}

static void probe_destroy(dcp_plugin *self)
{
	probe_plugin *p = (probe_plugin *)self;

	free(p->validate_url);
	for (int i = 0; i < MAXR; i++) {
		free(p->writer_url[i]);
		free(p->reader_url[i]);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static int probe_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	probe_plugin *p = (probe_plugin *)self;
	dcp_plugin *mem = NULL;
	char *inner = NULL;
	int rc;

	probe_record(p, &p->validate_url, url);
	rc = probe_mem(p, url, &mem, &inner, msg);
	if (rc == DCP_OK)
		rc = mem->validate_checkpoint_id(mem, inner, for_write, msg);
	free(inner);
	return rc;
}

typedef struct probe_writer {
	dcp_storage_writer base;
	dcp_writer_ops ops;
	probe_plugin *p;
	dcp_storage_writer *in;
	int rank;
} probe_writer;

#define PW(w) ((probe_writer *)(w))

static int pw_set_up(dcp_storage_writer *w, int is_coordinator, int rank, int world_size, dcp_msg *msg)
{
	return PW(w)->in->ops->set_up_storage_writer(PW(w)->in, is_coordinator, rank, world_size, msg);
}

static int pw_prepare_local_plan(dcp_storage_writer *w, dcp_save_plan *plan, dcp_msg *msg)
{
	dcp_storage_writer *in = PW(w)->in;
	return in->ops->prepare_local_plan ? in->ops->prepare_local_plan(in, plan, msg) : DCP_OK;
}

static int pw_prepare_global_plan(dcp_storage_writer *w, dcp_save_plan *plans, int nranks, dcp_msg *msg)
{
	dcp_storage_writer *in = PW(w)->in;
	return in->ops->prepare_global_plan ? in->ops->prepare_global_plan(in, plans, nranks, msg) : DCP_OK;
}

static int pw_write_data(dcp_storage_writer *w, const dcp_save_plan *plan, const dcp_write_req *reqs,
                         size_t n, dcp_future *fut, dcp_msg *msg)
{
	return PW(w)->in->ops->write_data(PW(w)->in, plan, reqs, n, fut, msg);
}

static int pw_finish(dcp_storage_writer *w, const dcp_metadata *md, dcp_msg *msg)
{
	return PW(w)->in->ops->finish(PW(w)->in, md, msg);
}

static int pw_storage_meta(dcp_storage_writer *w, char **json, dcp_msg *msg)
{
	dcp_storage_writer *in = PW(w)->in;
	*json = NULL;
	return in->ops->storage_meta ? in->ops->storage_meta(in, json, msg) : DCP_OK;
}

static void pw_abort(dcp_storage_writer *w)
{
	probe_writer *pw = PW(w);
	pthread_mutex_lock(&pw->p->mu);
	if (pw->rank >= 0 && pw->rank < MAXR)
		pw->p->aborts[pw->rank]++;
	pthread_mutex_unlock(&pw->p->mu);
	if (pw->in->ops->abort)
		pw->in->ops->abort(pw->in);
}

static void pw_close(dcp_storage_writer *w)
{
	PW(w)->in->ops->close(PW(w)->in);
	free(w);
}

static int probe_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                             dcp_storage_writer **out, dcp_msg *msg)
{
	probe_plugin *p = (probe_plugin *)self;
	dcp_plugin *mem = NULL;
	char *inner = NULL;
	int minimal = strstr(url, "minimal=1") != NULL;
	probe_writer *w;
	int rc;

	if (opts->rank >= 0 && opts->rank < MAXR)
		probe_record(p, &p->writer_url[opts->rank], url);
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return DCP_ENOMEM;
	rc = probe_mem(p, url, &mem, &inner, msg);
	if (rc == DCP_OK)
		rc = mem->writer_open(mem, inner, opts, &w->in, msg);
	free(inner);
	if (rc != DCP_OK) {
		free(w);
		return rc;
	}
	w->p = p;
	w->rank = opts->rank;
	w->ops.version = DCP_WRITER_OPS_VERSION;
	w->ops.set_up_storage_writer = pw_set_up;
	w->ops.prepare_local_plan = minimal ? NULL : pw_prepare_local_plan;
	w->ops.prepare_global_plan = minimal ? NULL : pw_prepare_global_plan;
	w->ops.write_data = pw_write_data;
	w->ops.finish = pw_finish;
	w->ops.storage_meta = w->in->ops->storage_meta ? pw_storage_meta : NULL;
	w->ops.abort = minimal ? NULL : pw_abort;
	w->ops.close = pw_close;
	w->base.ops = &w->ops;
	*out = &w->base;
	return DCP_OK;
}

typedef struct probe_reader {
	dcp_storage_reader base;
	dcp_reader_ops ops;
	dcp_storage_reader *in;
} probe_reader;

#define PR(r) ((probe_reader *)(r))

static int pr_read_metadata(dcp_storage_reader *r, dcp_metadata **out, dcp_msg *msg)
{
	return PR(r)->in->ops->read_metadata(PR(r)->in, out, msg);
}

static int pr_set_up(dcp_storage_reader *r, const dcp_metadata *md, int is_coordinator, int rank,
                     int world_size, dcp_msg *msg)
{
	return PR(r)->in->ops->set_up_storage_reader(PR(r)->in, md, is_coordinator, rank, world_size, msg);
}

static int pr_prepare_local_plan(dcp_storage_reader *r, dcp_load_plan *plan, dcp_msg *msg)
{
	dcp_storage_reader *in = PR(r)->in;
	return in->ops->prepare_local_plan ? in->ops->prepare_local_plan(in, plan, msg) : DCP_OK;
}

static int pr_prepare_global_plan(dcp_storage_reader *r, dcp_load_plan *plans, int nranks, dcp_msg *msg)
{
	dcp_storage_reader *in = PR(r)->in;
	return in->ops->prepare_global_plan ? in->ops->prepare_global_plan(in, plans, nranks, msg) : DCP_OK;
}

static int pr_read_data(dcp_storage_reader *r, const dcp_load_plan *plan, const dcp_read_req *reqs, size_t n,
                        dcp_future *fut, dcp_msg *msg)
{
	return PR(r)->in->ops->read_data(PR(r)->in, plan, reqs, n, fut, msg);
}

static void pr_close(dcp_storage_reader *r)
{
	PR(r)->in->ops->close(PR(r)->in);
	free(r);
}

static int probe_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                             dcp_storage_reader **out, dcp_msg *msg)
{
	probe_plugin *p = (probe_plugin *)self;
	dcp_plugin *mem = NULL;
	char *inner = NULL;
	int minimal = strstr(url, "minimal=1") != NULL;
	probe_reader *r;
	int rc;

	if (opts->rank >= 0 && opts->rank < MAXR)
		probe_record(p, &p->reader_url[opts->rank], url);
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return DCP_ENOMEM;
	rc = probe_mem(p, url, &mem, &inner, msg);
	if (rc == DCP_OK)
		rc = mem->reader_open(mem, inner, opts, &r->in, msg);
	free(inner);
	if (rc != DCP_OK) {
		free(r);
		return rc;
	}
	r->ops.version = DCP_READER_OPS_VERSION;
	r->ops.read_metadata = pr_read_metadata;
	r->ops.set_up_storage_reader = pr_set_up;
	r->ops.prepare_local_plan = minimal ? NULL : pr_prepare_local_plan;
	r->ops.prepare_global_plan = minimal ? NULL : pr_prepare_global_plan;
	r->ops.read_data = pr_read_data;
	r->ops.close = pr_close;
	r->base.ops = &r->ops;
	*out = &r->base;
	return DCP_OK;
}

static int probe_entry(const dcp_host *host, dcp_plugin **out, dcp_msg *msg)
{
	probe_plugin *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		dcp_msgf(msg, "probe: out of memory");
		return DCP_ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->host = host;
	p->base.version = DCP_PLUGIN_ABI_VERSION;
	p->base.name = "probe";
	p->base.schemes = probe_schemes;
	p->base.destroy = probe_destroy;
	p->base.validate_checkpoint_id = probe_validate;
	p->base.writer_open = probe_writer_open;
	p->base.reader_open = probe_reader_open;
	*out = &p->base;
	return DCP_OK;
}

/* A registry with the probe plugin; *probe is its plugin object. */
static dcp_registry *probe_registry(probe_plugin **probe)
{
	dcp_registry *reg = NULL;
	dcp_error *err = NULL;
	dcp_plugin *p = NULL;

	cr_assert_eq(dcp_registry_new(&reg, &err), DCP_OK);
	cr_assert_eq(dcp_registry_add(reg, probe_entry, &err), DCP_OK);
	cr_assert_eq(dcp_registry_find(reg, "probe://x", &p, &err), DCP_OK);
	cr_assert_str_eq(p->name, "probe");
	*probe = (probe_plugin *)p;
	return reg;
}

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
	save_ok("faulty+mem://transparent-a?fail.write_data=&fail.finish=", 4, 0, 7, NULL);
	load_ok("mem://transparent-a", 3, 0, 7, NULL);
	/* Saved without, loaded through faulty with failures for ranks that
	 * do not exist in this run. */
	save_ok("mem://transparent-b", 2, 1, 9, NULL);
	load_ok("faulty+mem://transparent-b?fail.read_data=5-7&fail.read_metadata=6", 4, 2, 9, NULL);
	load_ok("faulty+mem://transparent-b", 1, 0, 9, NULL);
}

Test(faulty, coordinator_stages_count_only_the_coordinators_rank)
{
	/* prepare_global_plan and finish run on the coordinator (rank 1): the
	 * other ranks being listed changes nothing. */
	save_ok("faulty+mem://coord-only?fail.prepare_global_plan=0,2,3&fail.finish=0,2-3", 4, 1, 3, NULL);
	load_ok("faulty+mem://coord-only?fail.prepare_global_plan=0,1,3", 4, 2, 3, NULL);
}

/* ------------------------------------------------------------------------ */
/* Every save stage                                                          */
/* ------------------------------------------------------------------------ */
typedef struct stage_case {
	const char *stage;
	const char *ranks; /* the fail.<stage> value */
	int nranks;
	int coordinator;
	int want[MAXR];
	size_t nwant;
} stage_case;

static void run_save_cases(const char *name, const stage_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const stage_case *c = &cases[i];
		char url[256], plain[128];

		FORMAT(plain, sizeof(plain), "mem://%s-%zu", name, i);
		FORMAT(url, sizeof(url), "faulty+%s?fail.%s=%s", plain, c->stage, c->ranks);
		expect_stage_failure(url, 0, c->nranks, c->coordinator, 1, c->want, c->nwant, c->stage);
		/* A failed save commits nothing. */
		cr_assert_not(checkpoint_exists(plain), "%s: a checkpoint exists after a failed save", url);
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

	save_ok("mem://keep-prev", 4, 0, 11, NULL);
	expect_stage_failure("faulty+mem://keep-prev?fail.write_data_async=3", 0, 4, 0, 12, want, 1,
	                     "write_data_async");
	expect_stage_failure("faulty+mem://keep-prev?fail.finish=3", 0, 4, 3, 13, want, 1, "finish");
	load_ok("mem://keep-prev", 2, 0, 11, NULL);
}

/* ------------------------------------------------------------------------ */
/* Every load stage                                                          */
/* ------------------------------------------------------------------------ */
static void run_load_cases(const char *name, const stage_case *cases, size_t n)
{
	char plain[128];

	FORMAT(plain, sizeof(plain), "mem://%s", name);
	save_ok(plain, 4, 0, 5, NULL);
	for (size_t i = 0; i < n; i++) {
		const stage_case *c = &cases[i];
		char url[256];

		FORMAT(url, sizeof(url), "faulty+%s?fail.%s=%s", plain, c->stage, c->ranks);
		expect_stage_failure(url, 1, c->nranks, c->coordinator, 5, c->want, c->nwant, c->stage);
	}
	/* The checkpoint is untouched by failed loads. */
	load_ok(plain, 3, 1, 5, NULL);
}

Test(faulty, load_read_metadata)
{
	const stage_case cases[] = {
	        {"read_metadata", "3", 4, 0, {3}, 1},
	        {"read_metadata", "0,1", 4, 1, {0, 1}, 2},
	        {"read_metadata", "0", 1, 0, {0}, 1},
	};
	run_load_cases("md-r", cases, sizeof(cases) / sizeof(cases[0]));
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
	run r = {.url = "faulty+mem://multi?fail.set_up_storage_writer=2&fail.prepare_local_plan=0",
	         .nranks = 4,
	         .coordinator = 1};

	run_ranks(&r);
	expect_injected(&r, want, 2, stages, 2);
	run_clear(&r);
}

/* ------------------------------------------------------------------------ */
/* Scenario files                                                            */
/* ------------------------------------------------------------------------ */
Test(faulty, scenario_write_async_rank1)
{
	char path[PATH_MAX], url[PATH_MAX + 64];
	const int want[] = {1};

	scenario_path("write-async-rank1.json", path, sizeof(path));
	FORMAT(url, sizeof(url), "faulty+mem://scen-async?faults=%s", path);
	expect_stage_failure(url, 0, 4, 0, 1, want, 1, "write_data_async");
	cr_assert_not(checkpoint_exists("mem://scen-async"));
}

Test(faulty, scenario_finish_coordinator)
{
	char path[PATH_MAX], url[PATH_MAX + 64];

	scenario_path("finish-coordinator.json", path, sizeof(path));
	FORMAT(url, sizeof(url), "faulty+mem://scen-finish?faults=%s", path);
	for (int coord = 0; coord < 4; coord++) {
		const int want[] = {coord};
		expect_stage_failure(url, 0, 4, coord, 1, want, 1, "finish");
	}
	cr_assert_not(checkpoint_exists("mem://scen-finish"));
	/* The same file does nothing to a load. */
	save_ok("mem://scen-finish", 4, 0, 2, NULL);
	load_ok(url, 4, 0, 2, NULL);
}

Test(faulty, scenario_read_ranks_1_3)
{
	char path[PATH_MAX], url[PATH_MAX + 64];
	const int want[] = {1, 3};

	scenario_path("read-ranks-1-3.json", path, sizeof(path));
	FORMAT(url, sizeof(url), "faulty+mem://scen-read?faults=%s", path);
	/* The scenario has no save stage: the save goes through. */
	save_ok(url, 4, 0, 4, NULL);
	expect_stage_failure(url, 1, 4, 0, 4, want, 2, "read_data");
	load_ok("mem://scen-read", 4, 0, 4, NULL);
}

Test(faulty, scenario_plan_ranks_0_2)
{
	char path[PATH_MAX], url[PATH_MAX + 64];
	const int want[] = {0, 2};
	const char *stages[] = {"prepare_local_plan", "set_up_storage_writer"};
	run r = {.nranks = 4, .coordinator = 3};

	scenario_path("plan-ranks-0-2.json", path, sizeof(path));
	FORMAT(url, sizeof(url), "faulty+mem://scen-plan?faults=%s", path);
	r.url = url;
	run_ranks(&r);
	expect_injected(&r, want, 2, stages, 2);
	run_clear(&r);
	cr_assert_not(checkpoint_exists("mem://scen-plan"));
}

Test(faulty, url_parameter_overrides_the_scenario_for_its_stage)
{
	char path[PATH_MAX], url[PATH_MAX + 96];
	const int want[] = {2};

	scenario_path("write-async-rank1.json", path, sizeof(path));
	/* Either order of the parameters: fail.<stage> wins over the file. */
	FORMAT(url, sizeof(url), "faulty+mem://scen-over?faults=%s&fail.write_data_async=2", path);
	expect_stage_failure(url, 0, 4, 0, 1, want, 1, "write_data_async");
	FORMAT(url, sizeof(url), "faulty+mem://scen-over?fail.write_data_async=2&faults=%s", path);
	expect_stage_failure(url, 0, 4, 0, 1, want, 1, "write_data_async");
	/* An empty list switches the file's entry off. */
	FORMAT(url, sizeof(url), "faulty+mem://scen-over?faults=%s&fail.write_data_async=", path);
	save_ok(url, 4, 0, 1, NULL);
}

Test(faulty, every_example_scenario_is_valid)
{
	char dir[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int n = 0;

	faults_dir(dir, sizeof(dir));
	d = opendir(dir);
	cr_assert_not_null(d, "cannot open %s; set DCP_SOURCE_DIR to the source tree", dir);
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char url[PATH_MAX * 2];
		dcp_error *err = NULL;
		int rc;

		if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		FORMAT(url, sizeof(url), "faulty+mem://examples?faults=%s/%s", dir, e->d_name);
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
	FORMAT(plain, sizeof(plain), "file://%s/ckpt", dir);
	FORMAT(url, sizeof(url), "faulty+%s?fail.write_data_async=1", plain);
	expect_stage_failure(url, 0, 3, 0, 21, w1, 1, "write_data_async");
	cr_assert_not(checkpoint_exists(plain));
	FORMAT(url, sizeof(url), "faulty+%s", plain);
	save_ok(url, 3, 2, 21, NULL);
	FORMAT(url, sizeof(url), "faulty+%s?fail.read_data=0", plain);
	expect_stage_failure(url, 1, 2, 1, 21, r0, 1, "read_data");
	load_ok(plain, 2, 1, 21, NULL);
	cr_assert_eq(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0, "cannot remove %s", dir);
}

/* ------------------------------------------------------------------------ */
/* What the inner plugin sees                                                */
/* ------------------------------------------------------------------------ */
Test(faulty, own_parameters_are_removed_before_the_inner_plugin)
{
	probe_plugin *probe = NULL;
	dcp_registry *reg = probe_registry(&probe);
	char path[PATH_MAX], url[PATH_MAX + 160];
	const char *want = "probe://strip?keep=yes&zone=eu-1";
	dcp_error *err = NULL;

	scenario_path("read-ranks-1-3.json", path, sizeof(path));
	FORMAT(url, sizeof(url),
	       "faulty+probe://strip?fail.finish=3&keep=yes&faults=%s&fail.read_data_async=7&zone=eu-1",
	       path);

	cr_assert_eq(dcp_validate_checkpoint_id(reg, url, 1, &err), DCP_OK, "%s",
	             err ? dcp_error_message(err, 0) : "");
	cr_assert_str_eq(probe->validate_url, want);

	save_ok(url, 2, 0, 6, reg);
	for (int r = 0; r < 2; r++)
		cr_assert_str_eq(probe->writer_url[r], want, "rank %d's writer got %s", r,
		                 probe->writer_url[r]);
	/* read-ranks-1-3.json fails read_data on ranks 1 and 3 only. */
	load_ok(url, 1, 0, 6, reg);
	for (int r = 0; r < 1; r++)
		cr_assert_str_eq(probe->reader_url[r], want, "rank %d's reader got %s", r,
		                 probe->reader_url[r]);
	/* What probe stored is a real checkpoint. */
	load_ok("mem://strip", 2, 0, 6, reg);
	dcp_registry_free(reg);
}

Test(faulty, abort_is_forwarded_to_the_inner_writer)
{
	probe_plugin *probe = NULL;
	dcp_registry *reg = probe_registry(&probe);
	run r = {.url = "faulty+probe://aborts?fail.write_data=1", .nranks = 3, .coordinator = 0, .reg = reg};
	const int want[] = {1};

	run_ranks(&r);
	expect_injected(&r, want, 1, (const char *[]){"write_data"}, 1);
	run_clear(&r);
	/* A failed save aborts every rank's writer once (see dcp_save). */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(probe->aborts[i], 1, "rank %d's inner writer was aborted %d times", i,
		             probe->aborts[i]);
	dcp_registry_free(reg);
}

/* The ops tables mirror the inner ones: an optional slot the inner writer
 * lacks is NULL in the faulty one, unless a failure is injected there. */
Test(faulty, optional_slots_mirror_the_inner_plugin)
{
	probe_plugin *probe = NULL;
	dcp_registry *reg = probe_registry(&probe);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 0, 1, 1};
	dcp_plugin *p = NULL;
	dcp_error *err = NULL;
	dcp_storage_writer *w = NULL;
	dcp_storage_reader *rd = NULL;
	dcp_msg msg = {{0}};

	cr_assert_eq(dcp_registry_find(reg, "faulty+probe://mirror", &p, &err), DCP_OK);

	cr_assert_eq(p->writer_open(p, "faulty+probe://mirror?minimal=1", &opts, &w, &msg), DCP_OK, "%s",
	             msg.text);
	cr_assert_null(w->ops->reset);
	cr_assert_null(w->ops->prepare_local_plan);
	cr_assert_null(w->ops->prepare_global_plan);
	cr_assert_null(w->ops->abort);
	cr_assert_not_null(w->ops->set_up_storage_writer);
	cr_assert_not_null(w->ops->write_data);
	cr_assert_not_null(w->ops->finish);
	w->ops->close(w);

	cr_assert_eq(p->writer_open(p, "faulty+probe://mirror?minimal=1&fail.prepare_local_plan=5", &opts, &w,
	                            &msg),
	             DCP_OK, "%s", msg.text);
	cr_assert_not_null(w->ops->prepare_local_plan);
	cr_assert_null(w->ops->prepare_global_plan);
	w->ops->close(w);

	cr_assert_eq(p->writer_open(p, "faulty+probe://mirror", &opts, &w, &msg), DCP_OK, "%s", msg.text);
	cr_assert_not_null(w->ops->prepare_local_plan);
	cr_assert_not_null(w->ops->prepare_global_plan);
	cr_assert_not_null(w->ops->abort);
	w->ops->close(w);

	cr_assert_eq(p->reader_open(p, "faulty+probe://mirror?minimal=1&fail.prepare_global_plan=0", &opts,
	                            &rd, &msg),
	             DCP_OK, "%s", msg.text);
	cr_assert_null(rd->ops->reset);
	cr_assert_null(rd->ops->prepare_local_plan);
	cr_assert_not_null(rd->ops->prepare_global_plan);
	rd->ops->close(rd);
	dcp_registry_free(reg);
}

Test(faulty, inner_plugin_without_optional_slots)
{
	probe_plugin *probe = NULL;
	dcp_registry *reg = probe_registry(&probe);
	run r = {.url = "faulty+probe://"
	                "minimal?minimal=1&fail.prepare_local_plan=1&fail.prepare_global_plan=0",
	         .nranks = 3,
	         .coordinator = 0,
	         .reg = reg};
	const int want[] = {1};

	/* No failure: the slots the inner writer lacks stay absent. */
	save_ok("faulty+probe://minimal?minimal=1", 3, 0, 8, reg);
	load_ok("faulty+probe://minimal?minimal=1", 2, 1, 8, reg);
	/* Injected into a slot the inner writer lacks. */
	run_ranks(&r);
	expect_injected(&r, want, 1, (const char *[]){"prepare_local_plan"}, 1);
	run_clear(&r);
	/* On ranks that do not fail, the slot does what its absence means. */
	save_ok("faulty+probe://minimal?minimal=1&fail.prepare_local_plan=7&fail.prepare_global_plan=1", 3, 0,
	        9, reg);
	load_ok("faulty+probe://minimal?minimal=1&fail.prepare_local_plan=4", 3, 0, 9, reg);
	dcp_registry_free(reg);
}

Test(faulty, remove_is_forwarded_to_the_inner_plugin)
{
	probe_plugin *probe = NULL;
	dcp_registry *reg = probe_registry(&probe);
	dcp_error *err = NULL;
	const char *msg;
	int rc;

	save_ok("mem://removed", 2, 0, 3, NULL);
	cr_assert(checkpoint_exists("mem://removed"));
	rc = dcp_remove("faulty+mem://removed?fail.finish=*", NULL, &err);
	cr_assert_eq(rc, DCP_OK, "%s", err ? dcp_error_message(err, 0) : "");
	cr_assert_not(checkpoint_exists("mem://removed"));

	/* The probe plugin has no remove slot: the faulty plugin says so. */
	save_ok("probe://noremove", 2, 0, 3, reg);
	rc = dcp_remove("faulty+probe://noremove", reg, &err);
	cr_assert_eq(rc, DCP_EUNSUPPORTED);
	msg = dcp_error_message(err, 0);
	cr_assert_not_null(strstr(msg, "probe"), "%s", msg);
	cr_assert_not_null(strstr(msg, "cannot remove"), "%s", msg);
	dcp_error_free(err);
	dcp_registry_free(reg);
}

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
	run r = {.url = "faulty+mem://bad-save?fail.wrte_data=1", .nranks = 3, .coordinator = 0};

	run_ranks(&r);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(r.rc[i], DCP_EID, "rank %d: %s", i, dcp_strerror(r.rc[i]));
		cr_assert_not_null(r.err[i]);
		cr_assert_not_null(strstr(dcp_error_message(r.err[i], 0), "fail.wrte_data"));
	}
	run_clear(&r);
	cr_assert_not(checkpoint_exists("mem://bad-save"));
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

		temp_file("scenario.json", cases[i].text, path, sizeof(path));
		FORMAT(url, sizeof(url), "faulty+mem://bad-scen?faults=%s", path);
		needles[k++] = path;
		for (size_t j = 0; cases[i].needles[j] != NULL; j++)
			needles[k++] = cases[i].needles[j];
		expect_rejected(NULL, url, DCP_EID, needles);
		temp_remove(path);
	}
}

Test(faulty, scenario_file_with_every_stage_and_both_rank_syntaxes)
{
	char path[PATH_MAX], url[PATH_MAX + 64];
	dcp_error *err = NULL;
	const int want[] = {0, 1, 2};

	temp_file("all.json",
	          "{\"description\": \"every stage\", \"fail\": {\"set_up_storage_writer\": [], "
	          "\"prepare_local_plan\": \"\", \"prepare_global_plan\": [], \"write_data\": [9], "
	          "\"write_data_async\": \"0-2\", \"finish\": [], \"read_metadata\": [], "
	          "\"set_up_storage_reader\": [], \"read_data\": [], \"read_data_async\": \"*\"}}",
	          path, sizeof(path));
	FORMAT(url, sizeof(url), "faulty+mem://every-stage?faults=%s", path);
	cr_assert_eq(dcp_validate_checkpoint_id(NULL, url, 1, &err), DCP_OK, "%s",
	             err ? dcp_error_message(err, 0) : "");
	expect_stage_failure(url, 0, 3, 1, 1, want, 3, "write_data_async");
	save_ok("mem://every-stage", 3, 1, 1, NULL);
	expect_stage_failure(url, 1, 3, 1, 1, want, 3, "read_data_async");
	temp_remove(path);
}

/* ------------------------------------------------------------------------ */
/* The plugin alone, loaded with dlopen and given a fake host                */
/* ------------------------------------------------------------------------ */
/*
 * These tests drive dcp-faulty.so through the storage ABI with host services
 * of their own, to see what the protocol cannot show: which slots of the
 * inner writer run, and that an async failure completes the future from
 * another thread after write_data returned. The inner plugin ("fake") counts
 * its calls; with minimal=1 in its URL its tables have no optional slot.
 */
enum {
	F_RESET,
	F_SET_UP,
	F_LPLAN,
	F_GPLAN,
	F_WRITE,
	F_FINISH,
	F_META,
	F_ABORT,
	F_CLOSE,
	F_READ_MD,
	F_READ,
	F_N
};

typedef struct fake_env {
	dcp_host host; /* first: the host callbacks find the env from it */
	dcp_plugin inner;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char last_url[512]; /* the last URL the inner plugin was given */
	int calls[F_N];     /* inner slot calls */
	int last_rank;      /* set_up's rank as the inner writer saw it */
	int completions;    /* futures completed */
	int status;         /* of the last completion */
	char message[DCP_MSG_MAX];
	pthread_t completer; /* the thread of the last completion */
} fake_env;

typedef struct fake_io {
	union {
		dcp_storage_writer w;
		dcp_storage_reader r;
	} base;
	fake_env *env;
} fake_io;

#define ENV_OF(x) (((fake_io *)(void *)(x))->env)

static void fake_count(fake_env *env, int slot)
{
	pthread_mutex_lock(&env->mu);
	env->calls[slot]++;
	pthread_mutex_unlock(&env->mu);
}

static void fake_complete(const dcp_host *host, int status, const char *message)
{
	fake_env *env = (fake_env *)(void *)host;
	pthread_mutex_lock(&env->mu);
	env->completions++;
	env->status = status;
	snprintf(env->message, sizeof(env->message), "%s", message ? message : "");
	env->completer = pthread_self();
	pthread_cond_broadcast(&env->cv);
	pthread_mutex_unlock(&env->mu);
}

/* The fake "future" is the env's host table itself: never dereferenced by
 * the plugin, handed back to the completion callbacks. */
static void fake_write_complete(dcp_future *fut, int status, const dcp_write_result *results, size_t n,
                                const char *message)
{
	(void)results;
	(void)n;
	fake_complete((const dcp_host *)(void *)fut, status, message);
}

static void fake_read_complete(dcp_future *fut, int status, const char *message)
{
	fake_complete((const dcp_host *)(void *)fut, status, message);
}

static void fake_wait_completion(fake_env *env, int n)
{
	pthread_mutex_lock(&env->mu);
	while (env->completions < n)
		pthread_cond_wait(&env->cv, &env->mu);
	pthread_mutex_unlock(&env->mu);
}

static int fw_reset(dcp_storage_writer *w, const char *url, dcp_msg *msg)
{
	(void)msg;
	snprintf(ENV_OF(w)->last_url, sizeof(ENV_OF(w)->last_url), "%s", url);
	fake_count(ENV_OF(w), F_RESET);
	return DCP_OK;
}
static int fw_set_up(dcp_storage_writer *w, int is_coordinator, int rank, int world_size, dcp_msg *msg)
{
	(void)is_coordinator, (void)world_size, (void)msg;
	ENV_OF(w)->last_rank = rank;
	fake_count(ENV_OF(w), F_SET_UP);
	return DCP_OK;
}
static int fw_lplan(dcp_storage_writer *w, dcp_save_plan *plan, dcp_msg *msg)
{
	(void)plan, (void)msg;
	fake_count(ENV_OF(w), F_LPLAN);
	return DCP_OK;
}
static int fw_gplan(dcp_storage_writer *w, dcp_save_plan *plans, int nranks, dcp_msg *msg)
{
	(void)plans, (void)nranks, (void)msg;
	fake_count(ENV_OF(w), F_GPLAN);
	return DCP_OK;
}
static int fw_write(dcp_storage_writer *w, const dcp_save_plan *plan, const dcp_write_req *reqs, size_t n,
                    dcp_future *fut, dcp_msg *msg)
{
	(void)plan, (void)reqs, (void)n, (void)msg;
	fake_count(ENV_OF(w), F_WRITE);
	ENV_OF(w)->host.write_future_complete(fut, DCP_OK, NULL, 0, NULL);
	return DCP_OK;
}
static int fw_finish(dcp_storage_writer *w, const dcp_metadata *md, dcp_msg *msg)
{
	(void)md, (void)msg;
	fake_count(ENV_OF(w), F_FINISH);
	return DCP_OK;
}
static int fw_meta(dcp_storage_writer *w, char **json, dcp_msg *msg)
{
	(void)msg;
	*json = NULL;
	fake_count(ENV_OF(w), F_META);
	return DCP_OK;
}
static void fw_abort(dcp_storage_writer *w)
{
	fake_count(ENV_OF(w), F_ABORT);
}
static void fw_close(dcp_storage_writer *w)
{
	fake_count(ENV_OF(w), F_CLOSE);
	free(w);
}
static int fr_read_md(dcp_storage_reader *r, dcp_metadata **out, dcp_msg *msg)
{
	(void)msg;
	*out = NULL;
	fake_count(ENV_OF(r), F_READ_MD);
	return DCP_OK;
}
static int fr_set_up(dcp_storage_reader *r, const dcp_metadata *md, int is_coordinator, int rank,
                     int world_size, dcp_msg *msg)
{
	(void)md, (void)is_coordinator, (void)world_size, (void)msg;
	ENV_OF(r)->last_rank = rank;
	fake_count(ENV_OF(r), F_SET_UP);
	return DCP_OK;
}
static int fr_read(dcp_storage_reader *r, const dcp_load_plan *plan, const dcp_read_req *reqs, size_t n,
                   dcp_future *fut, dcp_msg *msg)
{
	(void)plan, (void)reqs, (void)n, (void)msg;
	fake_count(ENV_OF(r), F_READ);
	ENV_OF(r)->host.read_future_complete(fut, DCP_OK, NULL);
	return DCP_OK;
}
static void fr_close(dcp_storage_reader *r)
{
	fake_count(ENV_OF(r), F_CLOSE);
	free(r);
}

static const dcp_writer_ops fake_writer_full = {DCP_WRITER_OPS_VERSION,
                                                fw_reset,
                                                fw_set_up,
                                                fw_lplan,
                                                fw_gplan,
                                                fw_write,
                                                fw_finish,
                                                fw_meta,
                                                fw_abort,
                                                fw_close};
static const dcp_writer_ops fake_writer_minimal = {
        DCP_WRITER_OPS_VERSION, NULL, fw_set_up, NULL, NULL, fw_write, fw_finish, NULL, NULL, fw_close};
static const dcp_reader_ops fake_reader_full = {
        DCP_READER_OPS_VERSION, NULL, fr_read_md, fr_set_up, NULL, NULL, fr_read, fr_close};

static int fake_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                            dcp_storage_writer **out, dcp_msg *msg)
{
	fake_env *env = (fake_env *)((char *)self - offsetof(fake_env, inner));
	fake_io *io = calloc(1, sizeof(*io));
	(void)opts, (void)msg;
	if (io == NULL)
		return DCP_ENOMEM;
	snprintf(env->last_url, sizeof(env->last_url), "%s", url);
	io->env = env;
	io->base.w.ops = strstr(url, "minimal=1") ? &fake_writer_minimal : &fake_writer_full;
	*out = &io->base.w;
	return DCP_OK;
}

static int fake_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                            dcp_storage_reader **out, dcp_msg *msg)
{
	fake_env *env = (fake_env *)((char *)self - offsetof(fake_env, inner));
	fake_io *io = calloc(1, sizeof(*io));
	(void)opts, (void)msg;
	if (io == NULL)
		return DCP_ENOMEM;
	snprintf(env->last_url, sizeof(env->last_url), "%s", url);
	io->env = env;
	io->base.r.ops = &fake_reader_full;
	*out = &io->base.r;
	return DCP_OK;
}

static int fake_plugin_for_url(const dcp_host *host, const char *url, dcp_plugin **out, dcp_msg *msg)
{
	fake_env *env = (fake_env *)(void *)host;
	if (strncmp(url, "fake://", 7) != 0) {
		dcp_msgf(msg, "fake host: no plugin for '%s'", url);
		return DCP_ENOPLUGIN;
	}
	*out = &env->inner;
	return DCP_OK;
}

/* dcp-faulty.so from the build tree ($DCP_BINARY_DIR, else next to bin/). */
static dcp_plugin *faulty_from_so(fake_env *env, void **dl)
{
	const char *bin = getenv("DCP_BINARY_DIR");
	char exe[PATH_MAX], path[PATH_MAX + 64];
	dcp_plugin_entry_fn entry;
	dcp_plugin *p = NULL;
	dcp_msg msg = {{0}};

	if (bin != NULL && bin[0] != '\0') {
		FORMAT(path, sizeof(path), "%s/lib/dcp/plugins/dcp-faulty.so", bin);
	} else {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		cr_assert(n > 0);
		exe[n] = '\0';
		FORMAT(path, sizeof(path), "%s/../lib/dcp/plugins/dcp-faulty.so", dirname(exe));
	}
	*dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(*dl, "cannot load %s: %s", path, dlerror());
	*(void **)&entry = dlsym(*dl, DCP_PLUGIN_ENTRY_SYMBOL);
	cr_assert_not_null(entry, "%s has no %s", path, DCP_PLUGIN_ENTRY_SYMBOL);

	memset(env, 0, sizeof(*env));
	pthread_mutex_init(&env->mu, NULL);
	pthread_cond_init(&env->cv, NULL);
	env->host.version = DCP_HOST_VERSION;
	env->host.write_future_complete = fake_write_complete;
	env->host.read_future_complete = fake_read_complete;
	env->host.plugin_for_url = fake_plugin_for_url;
	env->inner.version = DCP_PLUGIN_ABI_VERSION;
	env->inner.name = "fake";
	env->inner.writer_open = fake_writer_open;
	env->inner.reader_open = fake_reader_open;
	cr_assert_eq(entry(&env->host, &p, &msg), DCP_OK, "%s", msg.text);
	return p;
}

static void faulty_unload(fake_env *env, dcp_plugin *p, void *dl)
{
	p->destroy(p);
	dlclose(dl);
	pthread_cond_destroy(&env->cv);
	pthread_mutex_destroy(&env->mu);
}

#define FAKE_FUT(env) ((dcp_future *)(void *)&(env)->host)

Test(faulty, abi_write_data_async_fails_the_future_from_another_thread)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 1, 2, 1};
	dcp_storage_writer *w = NULL;
	dcp_save_plan plan = {0};
	dcp_msg msg = {{0}};

	cr_assert_eq(p->writer_open(p, "faulty+fake://a?fail.write_data_async=1&x=1", &opts, &w, &msg),
	             DCP_OK, "%s", msg.text);
	cr_assert_str_eq(env.last_url, "fake://a?x=1");
	cr_assert_eq(w->ops->set_up_storage_writer(w, 0, 1, 2, &msg), DCP_OK);
	cr_assert_eq(w->ops->write_data(w, &plan, NULL, 0, FAKE_FUT(&env), &msg), DCP_OK);
	fake_wait_completion(&env, 1);
	cr_assert_eq(env.status, DCP_EINJECTED);
	cr_assert_str_eq(env.message, "injected failure at write_data_async on rank 1 "
	                              "(faulty plugin: fail.write_data_async)");
	cr_assert_not(pthread_equal(env.completer, pthread_self()),
	              "the future failed on the caller's thread");
	cr_assert_eq(env.calls[F_WRITE], 0, "the inner writer wrote although the write fails");
	cr_assert_eq(env.calls[F_SET_UP], 1);
	w->ops->close(w); /* joins the failing thread */
	cr_assert_eq(env.calls[F_CLOSE], 1);
	cr_assert_eq(env.completions, 1);
	faulty_unload(&env, p, dl);
}

Test(faulty, abi_read_data_async_fails_the_future_from_another_thread)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 3, 4, 0};
	dcp_storage_reader *r = NULL;
	dcp_metadata *md = NULL;
	dcp_load_plan plan = {0};
	dcp_msg msg = {{0}};

	cr_assert_eq(p->reader_open(p, "faulty+fake://b?fail.read_data_async=3", &opts, &r, &msg), DCP_OK,
	             "%s", msg.text);
	cr_assert_str_eq(env.last_url, "fake://b");
	cr_assert_eq(r->ops->read_metadata(r, &md, &msg), DCP_OK);
	cr_assert_eq(r->ops->set_up_storage_reader(r, md, 1, 3, 4, &msg), DCP_OK);
	cr_assert_eq(r->ops->read_data(r, &plan, NULL, 0, FAKE_FUT(&env), &msg), DCP_OK);
	fake_wait_completion(&env, 1);
	cr_assert_eq(env.status, DCP_EINJECTED);
	cr_assert_str_eq(env.message, "injected failure at read_data_async on rank 3 "
	                              "(faulty plugin: fail.read_data_async)");
	cr_assert_not(pthread_equal(env.completer, pthread_self()));
	cr_assert_eq(env.calls[F_READ], 0);
	r->ops->close(r);
	faulty_unload(&env, p, dl);
}

Test(faulty, abi_every_writer_slot_forwards_on_a_rank_that_does_not_fail)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 0, 4, 1};
	dcp_storage_writer *w = NULL;
	dcp_save_plan plan = {0};
	dcp_metadata md = {0};
	char *json = NULL;
	dcp_msg msg = {{0}};
	const char *all = "faulty+fake://c?fail.set_up_storage_writer=1-3&fail.prepare_local_plan=1-3&"
	                  "fail.prepare_global_plan=1-3&fail.write_data=1-3&fail.write_data_async=1-3&"
	                  "fail.finish=1-3";

	cr_assert_eq(p->writer_open(p, all, &opts, &w, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(w->ops->reset(w, all, &msg), DCP_OK);
	cr_assert_str_eq(env.last_url, "fake://c");
	cr_assert_eq(w->ops->set_up_storage_writer(w, 1, 0, 4, &msg), DCP_OK);
	cr_assert_eq(w->ops->prepare_local_plan(w, &plan, &msg), DCP_OK);
	cr_assert_eq(w->ops->prepare_global_plan(w, &plan, 1, &msg), DCP_OK);
	cr_assert_eq(w->ops->write_data(w, &plan, NULL, 0, FAKE_FUT(&env), &msg), DCP_OK);
	cr_assert_eq(env.completions, 1);
	cr_assert_eq(env.status, DCP_OK);
	cr_assert_eq(w->ops->storage_meta(w, &json, &msg), DCP_OK);
	cr_assert_eq(w->ops->finish(w, &md, &msg), DCP_OK);
	w->ops->abort(w);
	w->ops->close(w);
	for (int s = F_RESET; s <= F_CLOSE; s++)
		cr_assert_eq(env.calls[s], 1, "inner writer slot %d called %d times", s, env.calls[s]);
	faulty_unload(&env, p, dl);
}

Test(faulty, abi_the_rank_that_counts_is_set_up_s_and_reset_takes_new_faults)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 0, 4, 1};
	dcp_storage_writer *w = NULL;
	dcp_storage_reader *r = NULL;
	dcp_metadata *md = NULL;
	dcp_metadata empty = {0};
	dcp_save_plan plan = {0};
	dcp_msg msg = {{0}};

	/* opts say rank 0; set-up says rank 2, which fails at finish. */
	cr_assert_eq(p->writer_open(p, "faulty+fake://d?fail.finish=2", &opts, &w, &msg), DCP_OK, "%s",
	             msg.text);
	cr_assert_eq(w->ops->set_up_storage_writer(w, 1, 2, 4, &msg), DCP_OK);
	cr_assert_eq(env.last_rank, 2);
	cr_assert_eq(w->ops->finish(w, &empty, &msg), DCP_EINJECTED);
	cr_assert_str_eq(msg.text, "injected failure at finish on rank 2 (faulty plugin: fail.finish)");
	cr_assert_eq(env.calls[F_FINISH], 0);
	/* A reset brings new faults and new inner parameters. */
	cr_assert_eq(w->ops->reset(w, "faulty+fake://e?k=v&fail.prepare_local_plan=2", &msg), DCP_OK, "%s",
	             msg.text);
	cr_assert_str_eq(env.last_url, "fake://e?k=v");
	cr_assert_eq(w->ops->finish(w, &empty, &msg), DCP_OK);
	cr_assert_eq(w->ops->prepare_local_plan(w, &plan, &msg), DCP_EINJECTED);
	cr_assert_eq(w->ops->reset(w, "faulty+fake://e?fail.nope=2", &msg), DCP_EID);
	cr_assert_not_null(strstr(msg.text, "fail.nope"), "%s", msg.text);
	w->ops->close(w);

	/* read_metadata runs before set-up: opts' rank counts there. */
	const dcp_open_options ropts = {DCP_OPEN_OPTIONS_VERSION, 3, 4, 0};
	cr_assert_eq(p->reader_open(p, "faulty+fake://f?fail.read_metadata=3", &ropts, &r, &msg), DCP_OK);
	cr_assert_eq(r->ops->read_metadata(r, &md, &msg), DCP_EINJECTED);
	cr_assert_null(md);
	cr_assert_str_eq(msg.text,
	                 "injected failure at read_metadata on rank 3 (faulty plugin: fail.read_metadata)");
	cr_assert_eq(env.calls[F_READ_MD], 0);
	r->ops->close(r);
	faulty_unload(&env, p, dl);
}

Test(faulty, abi_an_inner_writer_without_optional_slots)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 1, 2, 1};
	dcp_storage_writer *w = NULL;
	dcp_save_plan plan = {0};
	dcp_msg msg = {{0}};

	cr_assert_eq(
	        p->writer_open(p, "faulty+fake://g?minimal=1&fail.prepare_global_plan=0", &opts, &w, &msg),
	        DCP_OK, "%s", msg.text);
	cr_assert_null(w->ops->reset);
	cr_assert_null(w->ops->prepare_local_plan);
	cr_assert_null(w->ops->storage_meta);
	cr_assert_null(w->ops->abort);
	cr_assert_not_null(w->ops->prepare_global_plan); /* a failure may be injected there */
	cr_assert_eq(w->ops->set_up_storage_writer(w, 1, 1, 2, &msg), DCP_OK);
	cr_assert_eq(w->ops->prepare_global_plan(w, &plan, 1, &msg), DCP_OK); /* rank 1 does not fail */
	w->ops->close(w);
	cr_assert_eq(env.calls[F_GPLAN], 0);
	cr_assert_eq(env.calls[F_CLOSE], 1);
	faulty_unload(&env, p, dl);
}
