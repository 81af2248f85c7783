/*
 * The faulty reader: forwards every slot to the inner plugin's reader, except
 * at the stages that cfg makes fail on this reader's rank. Its ops table
 * mirrors the inner reader's, as the writer's does (see faulty_writer.c).
 *
 * The rank that counts is opts->rank from reader_open until
 * set_up_storage_reader gives it (read_metadata runs before set-up).
 */
#include <stdlib.h>
#include <string.h>

#include "faulty.h"

typedef struct faulty_reader {
	dcp_storage_reader base; /* first: the core sees a dcp_storage_reader */
	dcp_reader_ops ops;      /* base.ops points here */
	faulty_plugin *plugin;
	dcp_plugin *inner_plugin; /* owned by the registry */
	dcp_storage_reader *inner;
	faulty_config cfg;
	dcp_open_options opts;
	int rank;
	faulty_async async;
} faulty_reader;

static faulty_reader *fr(dcp_storage_reader *r)
{
	return (faulty_reader *)r;
}

static int check_inner(const dcp_plugin *p, const char *url, const dcp_storage_reader *inner, dcp_msg *msg)
{
	const char *missing = NULL;

	if (inner == NULL || inner->ops == NULL) {
		dcp_msgf(msg,
		         "faulty plugin: the inner plugin '%s' returned no reader (or no ops table) for '%s'",
		         p->name, url);
		return DCP_EPLUGIN;
	}
	if (inner->ops->version < 1) {
		dcp_msgf(msg,
		         "faulty plugin: invalid reader ops version %u from the inner plugin '%s' for '%s'",
		         inner->ops->version, p->name, url);
		return DCP_EPLUGIN;
	}
	if (inner->ops->read_metadata == NULL)
		missing = "read_metadata";
	else if (inner->ops->set_up_storage_reader == NULL)
		missing = "set_up_storage_reader";
	else if (inner->ops->read_data == NULL)
		missing = "read_data";
	else if (inner->ops->close == NULL)
		missing = "close";
	if (missing != NULL) {
		dcp_msgf(msg,
		         "faulty plugin: the reader of the inner plugin '%s' (for '%s') lacks the required "
		         "slot '%s'; fix that plugin",
		         p->name, url, missing);
		return DCP_EPLUGIN;
	}
	return DCP_OK;
}

static int r_reset(dcp_storage_reader *r, const char *url, dcp_msg *msg);
static int r_read_metadata(dcp_storage_reader *r, dcp_metadata **out, dcp_msg *msg);
static int r_set_up(dcp_storage_reader *r, const dcp_metadata *md, int is_coordinator, int rank,
                    int world_size, dcp_msg *msg);
static int r_prepare_local_plan(dcp_storage_reader *r, dcp_load_plan *plan, dcp_msg *msg);
static int r_prepare_global_plan(dcp_storage_reader *r, dcp_load_plan *plans, int nranks, dcp_msg *msg);
static int r_read_data(dcp_storage_reader *r, const dcp_load_plan *plan, const dcp_read_req *reqs, size_t n,
                       dcp_future *fut, dcp_msg *msg);
static void r_close(dcp_storage_reader *r);

static void build_ops(faulty_reader *r)
{
	const dcp_reader_ops *in = r->inner->ops;
	dcp_reader_ops *o = &r->ops;

	memset(o, 0, sizeof(*o));
	o->version = DCP_READER_OPS_VERSION;
	o->reset = in->reset ? r_reset : NULL;
	o->read_metadata = r_read_metadata;
	o->set_up_storage_reader = r_set_up;
	o->prepare_local_plan =
	        in->prepare_local_plan || faulty_stage_enabled(&r->cfg, FAULTY_PREPARE_LOCAL_PLAN)
	                ? r_prepare_local_plan
	                : NULL;
	o->prepare_global_plan =
	        in->prepare_global_plan || faulty_stage_enabled(&r->cfg, FAULTY_PREPARE_GLOBAL_PLAN)
	                ? r_prepare_global_plan
	                : NULL;
	o->read_data = r_read_data;
	o->close = r_close;
	r->base.ops = o;
}

static int open_inner(dcp_plugin *p, const faulty_config *cfg, const dcp_open_options *opts,
                      dcp_storage_reader **out, dcp_msg *msg)
{
	int rc;

	*out = NULL;
	rc = p->reader_open(p, cfg->inner_url, opts, out, msg);
	if (rc != DCP_OK)
		return rc;
	rc = check_inner(p, cfg->inner_url, *out, msg);
	if (rc != DCP_OK) {
		if (*out != NULL && (*out)->ops != NULL && (*out)->ops->close != NULL)
			(*out)->ops->close(*out);
		*out = NULL;
	}
	return rc;
}

int faulty_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                       dcp_storage_reader **out, dcp_msg *msg)
{
	faulty_plugin *plugin = (faulty_plugin *)self;
	faulty_reader *r;
	int rc;

	*out = NULL;
	if (opts == NULL) {
		dcp_msgf(msg, "faulty plugin: reader_open of '%s' called without options", url);
		return DCP_EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		dcp_msgf(msg, "faulty plugin: out of memory opening a reader for '%s'", url);
		return DCP_ENOMEM;
	}
	r->plugin = plugin;
	r->opts = *opts;
	r->rank = opts->rank;
	rc = faulty_config_parse(plugin, url, &r->cfg, msg);
	if (rc == DCP_OK)
		rc = faulty_inner_plugin(plugin, &r->cfg, &r->inner_plugin, msg);
	if (rc == DCP_OK)
		rc = open_inner(r->inner_plugin, &r->cfg, &r->opts, &r->inner, msg);
	if (rc != DCP_OK) {
		faulty_config_clear(&r->cfg);
		free(r);
		return rc;
	}
	build_ops(r);
	*out = &r->base;
	return DCP_OK;
}

/* As the writer's reset (faulty_writer.c). */
static int r_reset(dcp_storage_reader *base, const char *url, dcp_msg *msg)
{
	faulty_reader *r = fr(base);
	faulty_config cfg;
	dcp_plugin *p = NULL;
	dcp_storage_reader *inner = NULL;
	int rc;

	faulty_async_join(&r->async);
	rc = faulty_config_parse(r->plugin, url, &cfg, msg);
	if (rc == DCP_OK)
		rc = faulty_inner_plugin(r->plugin, &cfg, &p, msg);
	if (rc == DCP_OK && p == r->inner_plugin && r->inner->ops->reset != NULL)
		rc = r->inner->ops->reset(r->inner, cfg.inner_url, msg);
	else if (rc == DCP_OK)
		rc = open_inner(p, &cfg, &r->opts, &inner, msg);
	if (rc != DCP_OK) {
		faulty_config_clear(&cfg);
		return rc;
	}
	if (inner != NULL) {
		r->inner->ops->close(r->inner);
		r->inner = inner;
		r->inner_plugin = p;
	}
	faulty_config_clear(&r->cfg);
	r->cfg = cfg;
	build_ops(r);
	return DCP_OK;
}

static int r_read_metadata(dcp_storage_reader *base, dcp_metadata **out, dcp_msg *msg)
{
	faulty_reader *r = fr(base);

	if (faulty_should_fail(&r->cfg, FAULTY_READ_METADATA, r->rank)) {
		*out = NULL;
		return faulty_inject(msg, FAULTY_READ_METADATA, r->rank);
	}
	return r->inner->ops->read_metadata(r->inner, out, msg);
}

static int r_set_up(dcp_storage_reader *base, const dcp_metadata *md, int is_coordinator, int rank,
                    int world_size, dcp_msg *msg)
{
	faulty_reader *r = fr(base);

	r->rank = rank;
	if (faulty_should_fail(&r->cfg, FAULTY_SET_UP_STORAGE_READER, rank))
		return faulty_inject(msg, FAULTY_SET_UP_STORAGE_READER, rank);
	return r->inner->ops->set_up_storage_reader(r->inner, md, is_coordinator, rank, world_size, msg);
}

static int r_prepare_local_plan(dcp_storage_reader *base, dcp_load_plan *plan, dcp_msg *msg)
{
	faulty_reader *r = fr(base);

	if (faulty_should_fail(&r->cfg, FAULTY_PREPARE_LOCAL_PLAN, r->rank))
		return faulty_inject(msg, FAULTY_PREPARE_LOCAL_PLAN, r->rank);
	if (r->inner->ops->prepare_local_plan == NULL)
		return DCP_OK; /* what a NULL slot means */
	return r->inner->ops->prepare_local_plan(r->inner, plan, msg);
}

/* Runs on the coordinator only: r->rank is the coordinator's rank. */
static int r_prepare_global_plan(dcp_storage_reader *base, dcp_load_plan *plans, int nranks, dcp_msg *msg)
{
	faulty_reader *r = fr(base);

	if (faulty_should_fail(&r->cfg, FAULTY_PREPARE_GLOBAL_PLAN, r->rank))
		return faulty_inject(msg, FAULTY_PREPARE_GLOBAL_PLAN, r->rank);
	if (r->inner->ops->prepare_global_plan == NULL)
		return DCP_OK;
	return r->inner->ops->prepare_global_plan(r->inner, plans, nranks, msg);
}

static int r_read_data(dcp_storage_reader *base, const dcp_load_plan *plan, const dcp_read_req *reqs,
                       size_t n, dcp_future *fut, dcp_msg *msg)
{
	faulty_reader *r = fr(base);

	if (faulty_should_fail(&r->cfg, FAULTY_READ_DATA, r->rank))
		return faulty_inject(msg, FAULTY_READ_DATA, r->rank);
	if (faulty_should_fail(&r->cfg, FAULTY_READ_DATA_ASYNC, r->rank)) {
		faulty_async_fail(&r->async, r->plugin->host, fut, 0, FAULTY_READ_DATA_ASYNC, r->rank);
		return DCP_OK;
	}
	return r->inner->ops->read_data(r->inner, plan, reqs, n, fut, msg);
}

static void r_close(dcp_storage_reader *base)
{
	faulty_reader *r = fr(base);

	faulty_async_join(&r->async);
	r->inner->ops->close(r->inner);
	faulty_config_clear(&r->cfg);
	free(r);
}
