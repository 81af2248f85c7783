/*
 * The faulty writer: forwards every slot to the inner plugin's writer, except
 * at the stages that cfg makes fail on this writer's rank.
 *
 * Its ops table is per writer and mirrors the inner writer's: an optional slot
 * that the inner writer leaves NULL stays NULL, so the core treats the faulty
 * writer exactly as the inner one, unless a failure must be injected in that
 * slot (prepare_local_plan, prepare_global_plan), in which case the slot
 * exists and, on ranks that do not fail, does what a NULL slot means: nothing.
 *
 * Threads: as any writer, used from its rank's thread only; the async failure
 * thread touches only the future and its own message.
 */
#include <stdlib.h>
#include <string.h>

#include "faulty.h"

typedef struct faulty_writer {
	dcp_storage_writer base; /* first: the core sees a dcp_storage_writer */
	dcp_writer_ops ops;      /* base.ops points here */
	faulty_plugin *plugin;
	dcp_plugin *inner_plugin; /* owned by the registry */
	dcp_storage_writer *inner;
	faulty_config cfg;
	dcp_open_options opts; /* kept to reopen the inner writer on a reset */
	int rank;              /* from opts, then from set_up_storage_writer */
	faulty_async async;
} faulty_writer;

static faulty_writer *fw(dcp_storage_writer *w)
{
	return (faulty_writer *)w;
}

/* Checks the inner writer's table: the core checks only the faulty one. */
static int check_inner(const dcp_plugin *p, const char *url, const dcp_storage_writer *inner, dcp_msg *msg)
{
	const char *missing = NULL;

	if (inner == NULL || inner->ops == NULL) {
		dcp_msgf(msg,
		         "faulty plugin: the inner plugin '%s' returned no writer (or no ops table) for '%s'",
		         p->name, url);
		return DCP_EPLUGIN;
	}
	if (inner->ops->version < 1) {
		dcp_msgf(msg,
		         "faulty plugin: invalid writer ops version %u from the inner plugin '%s' for '%s'",
		         inner->ops->version, p->name, url);
		return DCP_EPLUGIN;
	}
	if (inner->ops->set_up_storage_writer == NULL)
		missing = "set_up_storage_writer";
	else if (inner->ops->write_data == NULL)
		missing = "write_data";
	else if (inner->ops->finish == NULL)
		missing = "finish";
	else if (inner->ops->close == NULL)
		missing = "close";
	if (missing != NULL) {
		dcp_msgf(msg,
		         "faulty plugin: the writer of the inner plugin '%s' (for '%s') lacks the required "
		         "slot '%s'; fix that plugin",
		         p->name, url, missing);
		return DCP_EPLUGIN;
	}
	return DCP_OK;
}

static int w_reset(dcp_storage_writer *w, const char *url, dcp_msg *msg);
static int w_set_up(dcp_storage_writer *w, int is_coordinator, int rank, int world_size, dcp_msg *msg);
static int w_prepare_local_plan(dcp_storage_writer *w, dcp_save_plan *plan, dcp_msg *msg);
static int w_prepare_global_plan(dcp_storage_writer *w, dcp_save_plan *plans, int nranks, dcp_msg *msg);
static int w_write_data(dcp_storage_writer *w, const dcp_save_plan *plan, const dcp_write_req *reqs, size_t n,
                        dcp_future *fut, dcp_msg *msg);
static int w_finish(dcp_storage_writer *w, const dcp_metadata *md, dcp_msg *msg);
static int w_storage_meta(dcp_storage_writer *w, char **json, dcp_msg *msg);
static void w_abort(dcp_storage_writer *w);
static void w_close(dcp_storage_writer *w);

/* (Re)builds w->ops from the inner writer's table and w->cfg. */
static void build_ops(faulty_writer *w)
{
	const dcp_writer_ops *in = w->inner->ops;
	dcp_writer_ops *o = &w->ops;

	memset(o, 0, sizeof(*o));
	o->version = DCP_WRITER_OPS_VERSION;
	o->reset = in->reset ? w_reset : NULL;
	o->set_up_storage_writer = w_set_up;
	o->prepare_local_plan =
	        in->prepare_local_plan || faulty_stage_enabled(&w->cfg, FAULTY_PREPARE_LOCAL_PLAN)
	                ? w_prepare_local_plan
	                : NULL;
	o->prepare_global_plan =
	        in->prepare_global_plan || faulty_stage_enabled(&w->cfg, FAULTY_PREPARE_GLOBAL_PLAN)
	                ? w_prepare_global_plan
	                : NULL;
	o->write_data = w_write_data;
	o->finish = w_finish;
	o->storage_meta = in->storage_meta ? w_storage_meta : NULL;
	o->abort = in->abort ? w_abort : NULL;
	o->close = w_close;
	w->base.ops = o;
}

/* Opens the inner writer for cfg->inner_url with plugin p into *out. */
static int open_inner(dcp_plugin *p, const faulty_config *cfg, const dcp_open_options *opts,
                      dcp_storage_writer **out, dcp_msg *msg)
{
	int rc;

	*out = NULL;
	rc = p->writer_open(p, cfg->inner_url, opts, out, msg);
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

int faulty_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                       dcp_storage_writer **out, dcp_msg *msg)
{
	faulty_plugin *plugin = (faulty_plugin *)self;
	faulty_writer *w;
	int rc;

	*out = NULL;
	if (opts == NULL) {
		dcp_msgf(msg, "faulty plugin: writer_open of '%s' called without options", url);
		return DCP_EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		dcp_msgf(msg, "faulty plugin: out of memory opening a writer for '%s'", url);
		return DCP_ENOMEM;
	}
	w->plugin = plugin;
	w->opts = *opts;
	w->rank = opts->rank;
	rc = faulty_config_parse(plugin, url, &w->cfg, msg);
	if (rc == DCP_OK)
		rc = faulty_inner_plugin(plugin, &w->cfg, &w->inner_plugin, msg);
	if (rc == DCP_OK)
		rc = open_inner(w->inner_plugin, &w->cfg, &w->opts, &w->inner, msg);
	if (rc != DCP_OK) {
		faulty_config_clear(&w->cfg);
		free(w);
		return rc;
	}
	build_ops(w);
	*out = &w->base;
	return DCP_OK;
}

/* Only present when the inner writer has reset. The new URL may name other
 * faults, or even another inner storage: then the inner writer is replaced by
 * a fresh one (opened first, so that a failure leaves the writer as it was). */
static int w_reset(dcp_storage_writer *base, const char *url, dcp_msg *msg)
{
	faulty_writer *w = fw(base);
	faulty_config cfg;
	dcp_plugin *p = NULL;
	dcp_storage_writer *inner = NULL;
	int rc;

	faulty_async_join(&w->async);
	rc = faulty_config_parse(w->plugin, url, &cfg, msg);
	if (rc == DCP_OK)
		rc = faulty_inner_plugin(w->plugin, &cfg, &p, msg);
	if (rc == DCP_OK && p == w->inner_plugin && w->inner->ops->reset != NULL)
		rc = w->inner->ops->reset(w->inner, cfg.inner_url, msg);
	else if (rc == DCP_OK)
		rc = open_inner(p, &cfg, &w->opts, &inner, msg);
	if (rc != DCP_OK) {
		faulty_config_clear(&cfg);
		return rc;
	}
	if (inner != NULL) {
		w->inner->ops->close(w->inner);
		w->inner = inner;
		w->inner_plugin = p;
	}
	faulty_config_clear(&w->cfg);
	w->cfg = cfg;
	build_ops(w);
	return DCP_OK;
}

static int w_set_up(dcp_storage_writer *base, int is_coordinator, int rank, int world_size, dcp_msg *msg)
{
	faulty_writer *w = fw(base);

	w->rank = rank;
	if (faulty_should_fail(&w->cfg, FAULTY_SET_UP_STORAGE_WRITER, rank))
		return faulty_inject(msg, FAULTY_SET_UP_STORAGE_WRITER, rank);
	return w->inner->ops->set_up_storage_writer(w->inner, is_coordinator, rank, world_size, msg);
}

static int w_prepare_local_plan(dcp_storage_writer *base, dcp_save_plan *plan, dcp_msg *msg)
{
	faulty_writer *w = fw(base);

	if (faulty_should_fail(&w->cfg, FAULTY_PREPARE_LOCAL_PLAN, w->rank))
		return faulty_inject(msg, FAULTY_PREPARE_LOCAL_PLAN, w->rank);
	if (w->inner->ops->prepare_local_plan == NULL)
		return DCP_OK; /* what a NULL slot means */
	return w->inner->ops->prepare_local_plan(w->inner, plan, msg);
}

/* Runs on the coordinator only: w->rank is the coordinator's rank. */
static int w_prepare_global_plan(dcp_storage_writer *base, dcp_save_plan *plans, int nranks, dcp_msg *msg)
{
	faulty_writer *w = fw(base);

	if (faulty_should_fail(&w->cfg, FAULTY_PREPARE_GLOBAL_PLAN, w->rank))
		return faulty_inject(msg, FAULTY_PREPARE_GLOBAL_PLAN, w->rank);
	if (w->inner->ops->prepare_global_plan == NULL)
		return DCP_OK;
	return w->inner->ops->prepare_global_plan(w->inner, plans, nranks, msg);
}

/*
 * A torn write (torn.write_data): hands the inner writer the same requests
 * cut to the first cfg.torn_bytes bytes of the rank's data, in request order
 * (a request wholly past the cut keeps its item with length 0), waits for
 * the inner write on the inner future (made through the host's version-2
 * future slots), then completes fut with DCP_EINJECTED: the inner storage
 * holds a truncated object and the save fails, as when a node dies in the
 * middle of a write. If the inner write itself fails, that failure is
 * reported instead. fut is completed before this returns (the contract
 * allows it); the abort that the failed save brings goes to the inner
 * writer, which removes the torn object.
 */
static int torn_write_data(faulty_writer *w, const dcp_save_plan *plan, const dcp_write_req *reqs, size_t n,
                           dcp_future *fut, dcp_msg *msg)
{
	const dcp_host *host = w->plugin->host;
	dcp_write_req *cut = NULL;
	dcp_future *inner_fut;
	uint64_t left = w->cfg.torn_bytes, total = 0, kept = 0;
	dcp_msg imsg = {{0}};
	int rc;

	/* Checked when the URL was parsed; checked again rather than crash. */
	rc = faulty_torn_check_host(host, w->cfg.inner_url, msg);
	if (rc != DCP_OK)
		return rc;
	if (n > 0) {
		cut = malloc(n * sizeof(*cut));
		if (cut == NULL) {
			dcp_msgf(
			        msg,
			        "faulty plugin: out of memory preparing a torn write of %zu items on rank %d",
			        n, w->rank);
			return DCP_ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++) {
		cut[i] = reqs[i];
		cut[i].len = reqs[i].len < left ? reqs[i].len : left;
		left -= cut[i].len;
		kept += cut[i].len;
		total += reqs[i].len;
	}
	inner_fut = host->future_new();
	if (inner_fut == NULL) {
		free(cut);
		dcp_msgf(msg, "faulty plugin: out of memory preparing a torn write on rank %d", w->rank);
		return DCP_ENOMEM;
	}
	rc = w->inner->ops->write_data(w->inner, plan, cut, n, inner_fut, msg);
	if (rc != DCP_OK) {
		/* The inner writer never completes inner_fut after an error. */
		host->future_free(inner_fut);
		free(cut);
		return rc;
	}
	rc = host->future_wait(inner_fut, &imsg);
	host->future_free(inner_fut);
	free(cut);
	if (rc != DCP_OK) {
		host->write_future_complete(fut, rc, NULL, 0, imsg.text);
		return DCP_OK;
	}
	dcp_msgf(&imsg,
	         "injected torn write at write_data on rank %d: %llu of its %llu bytes were written, then "
	         "the write failed (faulty plugin: torn.write_data, torn.bytes=%llu)",
	         w->rank, (unsigned long long)kept, (unsigned long long)total,
	         (unsigned long long)w->cfg.torn_bytes);
	host->write_future_complete(fut, DCP_EINJECTED, NULL, 0, imsg.text);
	return DCP_OK;
}

/* write_data fails at once; write_data_async returns DCP_OK without writing
 * anything and fails the future from a thread joined before the next write,
 * in abort and in close; a torn write writes a prefix, then fails. */
static int w_write_data(dcp_storage_writer *base, const dcp_save_plan *plan, const dcp_write_req *reqs,
                        size_t n, dcp_future *fut, dcp_msg *msg)
{
	faulty_writer *w = fw(base);

	if (faulty_should_fail(&w->cfg, FAULTY_WRITE_DATA, w->rank))
		return faulty_inject(msg, FAULTY_WRITE_DATA, w->rank);
	if (faulty_should_fail(&w->cfg, FAULTY_WRITE_DATA_ASYNC, w->rank)) {
		faulty_async_fail(&w->async, w->plugin->host, fut, 1, FAULTY_WRITE_DATA_ASYNC, w->rank);
		return DCP_OK;
	}
	if (faulty_torn_write(&w->cfg, w->rank))
		return torn_write_data(w, plan, reqs, n, fut, msg);
	return w->inner->ops->write_data(w->inner, plan, reqs, n, fut, msg);
}

/* Runs on the coordinator only. */
static int w_finish(dcp_storage_writer *base, const dcp_metadata *md, dcp_msg *msg)
{
	faulty_writer *w = fw(base);

	if (faulty_should_fail(&w->cfg, FAULTY_FINISH, w->rank))
		return faulty_inject(msg, FAULTY_FINISH, w->rank);
	return w->inner->ops->finish(w->inner, md, msg);
}

static int w_storage_meta(dcp_storage_writer *base, char **json, dcp_msg *msg)
{
	faulty_writer *w = fw(base);

	return w->inner->ops->storage_meta(w->inner, json, msg);
}

static void w_abort(dcp_storage_writer *base)
{
	faulty_writer *w = fw(base);

	faulty_async_join(&w->async);
	w->inner->ops->abort(w->inner);
}

static void w_close(dcp_storage_writer *base)
{
	faulty_writer *w = fw(base);

	faulty_async_join(&w->async);
	w->inner->ops->close(w->inner);
	faulty_config_clear(&w->cfg);
	free(w);
}
