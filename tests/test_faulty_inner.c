/*
 * The faulty plugin (plugins/faulty): what the inner plugin sees. Removal of
 * the faulty plugin's own URL parameters before the inner plugin sees the
 * URL, forwarding of abort and remove, and mirroring of the inner plugin's
 * optional slots.
 *
 * A small "probe" plugin, registered in-process with dcp_registry_add, wraps
 * mem:// and records what it is given, so that tests can see exactly which
 * URL and which calls reach the inner plugin. Saves and loads run on ranks as
 * threads by dcp_run_ranks (see faultytest.h).
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "dcp/sys/storage.h"
#include "faultytest.h"

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
	char *writer_url[FT_MAXR];
	char *reader_url[FT_MAXR];
	int aborts[FT_MAXR];
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
	for (int i = 0; i < FT_MAXR; i++) {
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
	if (pw->rank >= 0 && pw->rank < FT_MAXR)
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

	if (opts->rank >= 0 && opts->rank < FT_MAXR)
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

	if (opts->rank >= 0 && opts->rank < FT_MAXR)
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
/* What the inner plugin sees                                                */
/* ------------------------------------------------------------------------ */
Test(faulty, own_parameters_are_removed_before_the_inner_plugin)
{
	probe_plugin *probe = NULL;
	dcp_registry *reg = probe_registry(&probe);
	char path[PATH_MAX], url[PATH_MAX + 160];
	const char *want = "probe://strip?keep=yes&zone=eu-1";
	dcp_error *err = NULL;

	ft_scenario_path("read-ranks-1-3.json", path, sizeof(path));
	FT_FORMAT(url, sizeof(url),
	          "faulty+probe://strip?fail.finish=3&keep=yes&faults=%s&fail.read_data_async=7&zone=eu-1",
	          path);

	cr_assert_eq(dcp_validate_checkpoint_id(reg, url, 1, &err), DCP_OK, "%s",
	             err ? dcp_error_message(err, 0) : "");
	cr_assert_str_eq(probe->validate_url, want);

	ft_save_ok(url, 2, 0, 6, reg);
	for (int r = 0; r < 2; r++)
		cr_assert_str_eq(probe->writer_url[r], want, "rank %d's writer got %s", r,
		                 probe->writer_url[r]);
	/* read-ranks-1-3.json fails read_data on ranks 1 and 3 only. */
	ft_load_ok(url, 1, 0, 6, reg);
	for (int r = 0; r < 1; r++)
		cr_assert_str_eq(probe->reader_url[r], want, "rank %d's reader got %s", r,
		                 probe->reader_url[r]);
	/* What probe stored is a real checkpoint. */
	ft_load_ok("mem://strip", 2, 0, 6, reg);
	dcp_registry_free(reg);
}

Test(faulty, abort_is_forwarded_to_the_inner_writer)
{
	probe_plugin *probe = NULL;
	dcp_registry *reg = probe_registry(&probe);
	ft_run r = {
	        .url = "faulty+probe://aborts?fail.write_data=1", .nranks = 3, .coordinator = 0, .reg = reg};
	const int want[] = {1};

	ft_run_ranks(&r);
	ft_expect_injected(&r, want, 1, (const char *[]){"write_data"}, 1);
	ft_run_clear(&r);
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
	ft_run r = {.url = "faulty+probe://"
	                   "minimal?minimal=1&fail.prepare_local_plan=1&fail.prepare_global_plan=0",
	            .nranks = 3,
	            .coordinator = 0,
	            .reg = reg};
	const int want[] = {1};

	/* No failure: the slots the inner writer lacks stay absent. */
	ft_save_ok("faulty+probe://minimal?minimal=1", 3, 0, 8, reg);
	ft_load_ok("faulty+probe://minimal?minimal=1", 2, 1, 8, reg);
	/* Injected into a slot the inner writer lacks. */
	ft_run_ranks(&r);
	ft_expect_injected(&r, want, 1, (const char *[]){"prepare_local_plan"}, 1);
	ft_run_clear(&r);
	/* On ranks that do not fail, the slot does what its absence means. */
	ft_save_ok("faulty+probe://minimal?minimal=1&fail.prepare_local_plan=7&fail.prepare_global_plan=1", 3,
	           0, 9, reg);
	ft_load_ok("faulty+probe://minimal?minimal=1&fail.prepare_local_plan=4", 3, 0, 9, reg);
	dcp_registry_free(reg);
}

Test(faulty, remove_is_forwarded_to_the_inner_plugin)
{
	probe_plugin *probe = NULL;
	dcp_registry *reg = probe_registry(&probe);
	dcp_error *err = NULL;
	const char *msg;
	int rc;

	ft_save_ok("mem://removed", 2, 0, 3, NULL);
	cr_assert(ft_checkpoint_exists("mem://removed"));
	rc = dcp_remove("faulty+mem://removed?fail.finish=*", NULL, &err);
	cr_assert_eq(rc, DCP_OK, "%s", err ? dcp_error_message(err, 0) : "");
	cr_assert_not(ft_checkpoint_exists("mem://removed"));

	/* The probe plugin has no remove slot: the faulty plugin says so. */
	ft_save_ok("probe://noremove", 2, 0, 3, reg);
	rc = dcp_remove("faulty+probe://noremove", reg, &err);
	cr_assert_eq(rc, DCP_EUNSUPPORTED);
	msg = dcp_error_message(err, 0);
	cr_assert_not_null(strstr(msg, "probe"), "%s", msg);
	cr_assert_not_null(strstr(msg, "cannot remove"), "%s", msg);
	dcp_error_free(err);
	dcp_registry_free(reg);
}
