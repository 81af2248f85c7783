/*
 * A storage plugin compiled into the test programs (registered with
 * dcp_registry_add, never dlopen'd). It stores no tensor data: writers report
 * every item written, finish keeps the committed metadata as JSON, readers
 * hand that metadata back and complete read_data without touching a buffer.
 * It counts every slot call so that tests can check what the core called.
 *
 * Threads: the plugin object's slots and counters are used from several rank
 * threads at once (atomics, and a mutex for the metadata); writer and reader
 * objects belong to one rank's thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/sys/storage.h"
#include "dcptest.h"

/* Marks plugins made here, so that dt_noop_get_counts can check its input. */
static const char noop_magic[] = "dcptest-noop";

typedef struct noop_plugin {
	dcp_plugin base;
	const char *magic;
	const dcp_host *host;
	const char *schemes[2];
	pthread_mutex_t lock;
	char *md_json; /* the last committed metadata, or NULL */
	size_t md_len;
	atomic_uint validate, writer_open, reader_open;
	atomic_uint set_up_storage_writer, writer_prepare_local_plan, writer_prepare_global_plan;
	atomic_uint write_data, finish, writer_close, writer_abort;
	atomic_uint read_metadata, set_up_storage_reader, reader_prepare_local_plan,
	        reader_prepare_global_plan;
	atomic_uint read_data, reader_close;
	atomic_uint_fast64_t items_written, bytes_written;
} noop_plugin;

typedef struct noop_writer {
	dcp_storage_writer base;
	noop_plugin *p;
	int rank;
	char path[64];
} noop_writer;

typedef struct noop_reader {
	dcp_storage_reader base;
	noop_plugin *p;
} noop_reader;

/* ---- writer ---- */
static int noop_set_up_storage_writer(dcp_storage_writer *w, int is_coordinator, int rank, int world_size,
                                      dcp_msg *msg)
{
	noop_writer *nw = (noop_writer *)w;
	(void)is_coordinator;
	(void)msg;
	(void)world_size;
	nw->rank = rank;
	snprintf(nw->path, sizeof(nw->path), "noop/__%d_0", rank);
	atomic_fetch_add(&nw->p->set_up_storage_writer, 1);
	return DCP_OK;
}

static int noop_w_prepare_local_plan(dcp_storage_writer *w, dcp_save_plan *plan, dcp_msg *msg)
{
	(void)plan;
	(void)msg;
	atomic_fetch_add(&((noop_writer *)w)->p->writer_prepare_local_plan, 1);
	return DCP_OK;
}

static int noop_w_prepare_global_plan(dcp_storage_writer *w, dcp_save_plan *plans, int nranks, dcp_msg *msg)
{
	(void)plans;
	(void)nranks;
	(void)msg;
	atomic_fetch_add(&((noop_writer *)w)->p->writer_prepare_global_plan, 1);
	return DCP_OK;
}

static int noop_write_data(dcp_storage_writer *w, const dcp_save_plan *plan, const dcp_write_req *reqs,
                           size_t n, dcp_future *fut, dcp_msg *msg)
{
	noop_writer *nw = (noop_writer *)w;
	dcp_write_result *res = NULL;
	uint64_t off = 0;
	(void)plan;
	atomic_fetch_add(&nw->p->write_data, 1);
	if (n > 0) {
		res = calloc(n, sizeof(*res));
		if (res == NULL) {
			dcp_msgf(msg, "noop plugin: out of memory for %zu write results on rank %d", n,
			         nw->rank);
			return DCP_ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++) {
		res[i].index = reqs[i].index;
		res[i].path = nw->path;
		res[i].offset = off;
		res[i].length = reqs[i].len;
		off += reqs[i].len;
	}
	atomic_fetch_add(&nw->p->items_written, n);
	atomic_fetch_add(&nw->p->bytes_written, off);
	nw->p->host->write_future_complete(fut, DCP_OK, res, n, NULL);
	free(res);
	return DCP_OK;
}

static int noop_finish(dcp_storage_writer *w, const dcp_metadata *md, dcp_msg *msg)
{
	noop_plugin *p = ((noop_writer *)w)->p;
	char *json = NULL;
	size_t len = 0;
	int rc;
	atomic_fetch_add(&p->finish, 1);
	rc = p->host->metadata_encode(md, &json, &len, msg);
	if (rc != DCP_OK)
		return rc;
	pthread_mutex_lock(&p->lock);
	free(p->md_json);
	p->md_json = json;
	p->md_len = len;
	pthread_mutex_unlock(&p->lock);
	return DCP_OK;
}

static void noop_writer_abort(dcp_storage_writer *w)
{
	atomic_fetch_add(&((noop_writer *)w)->p->writer_abort, 1);
}

static void noop_writer_close(dcp_storage_writer *w)
{
	atomic_fetch_add(&((noop_writer *)w)->p->writer_close, 1);
	free(w);
}

static const dcp_writer_ops noop_writer_ops = {
        .version = DCP_WRITER_OPS_VERSION,
        .reset = NULL,
        .set_up_storage_writer = noop_set_up_storage_writer,
        .prepare_local_plan = noop_w_prepare_local_plan,
        .prepare_global_plan = noop_w_prepare_global_plan,
        .write_data = noop_write_data,
        .finish = noop_finish,
        .storage_meta = NULL,
        .abort = noop_writer_abort,
        .close = noop_writer_close,
};

/* ---- reader ---- */
static int noop_read_metadata(dcp_storage_reader *r, dcp_metadata **out, dcp_msg *msg)
{
	noop_plugin *p = ((noop_reader *)r)->p;
	int rc;
	atomic_fetch_add(&p->read_metadata, 1);
	pthread_mutex_lock(&p->lock);
	if (p->md_json == NULL) {
		pthread_mutex_unlock(&p->lock);
		dcp_msgf(msg, "noop plugin: no checkpoint has been saved to this plugin instance yet");
		return DCP_ENOTFOUND;
	}
	rc = p->host->metadata_decode(p->md_json, p->md_len, out, msg);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static int noop_set_up_storage_reader(dcp_storage_reader *r, const dcp_metadata *md, int is_coordinator,
                                      int rank, int world_size, dcp_msg *msg)
{
	(void)md;
	(void)is_coordinator;
	(void)rank;
	(void)world_size;
	(void)msg;
	atomic_fetch_add(&((noop_reader *)r)->p->set_up_storage_reader, 1);
	return DCP_OK;
}

static int noop_r_prepare_local_plan(dcp_storage_reader *r, dcp_load_plan *plan, dcp_msg *msg)
{
	(void)plan;
	(void)msg;
	atomic_fetch_add(&((noop_reader *)r)->p->reader_prepare_local_plan, 1);
	return DCP_OK;
}

static int noop_r_prepare_global_plan(dcp_storage_reader *r, dcp_load_plan *plans, int nranks, dcp_msg *msg)
{
	(void)plans;
	(void)nranks;
	(void)msg;
	atomic_fetch_add(&((noop_reader *)r)->p->reader_prepare_global_plan, 1);
	return DCP_OK;
}

static int noop_read_data(dcp_storage_reader *r, const dcp_load_plan *plan, const dcp_read_req *reqs,
                          size_t n, dcp_future *fut, dcp_msg *msg)
{
	noop_plugin *p = ((noop_reader *)r)->p;
	(void)plan;
	(void)reqs;
	(void)n;
	(void)msg;
	atomic_fetch_add(&p->read_data, 1);
	p->host->read_future_complete(fut, DCP_OK, NULL);
	return DCP_OK;
}

static void noop_reader_close(dcp_storage_reader *r)
{
	atomic_fetch_add(&((noop_reader *)r)->p->reader_close, 1);
	free(r);
}

static const dcp_reader_ops noop_reader_ops = {
        .version = DCP_READER_OPS_VERSION,
        .reset = NULL,
        .read_metadata = noop_read_metadata,
        .set_up_storage_reader = noop_set_up_storage_reader,
        .prepare_local_plan = noop_r_prepare_local_plan,
        .prepare_global_plan = noop_r_prepare_global_plan,
        .read_data = noop_read_data,
        .close = noop_reader_close,
};

/* ---- plugin ---- */
static void noop_destroy(dcp_plugin *self)
{
	noop_plugin *p = (noop_plugin *)self;
	pthread_mutex_destroy(&p->lock);
	free(p->md_json);
	free(p);
}

static int noop_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	(void)for_write;
	atomic_fetch_add(&((noop_plugin *)self)->validate, 1);
	if (url == NULL || url[0] == '\0') {
		dcp_msgf(msg, "noop plugin: empty checkpoint id");
		return DCP_EID;
	}
	return DCP_OK;
}

static int noop_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                            dcp_storage_writer **out, dcp_msg *msg)
{
	noop_writer *w = calloc(1, sizeof(*w));
	(void)url;
	if (w == NULL) {
		dcp_msgf(msg, "noop plugin: out of memory opening a writer for %s", url);
		return DCP_ENOMEM;
	}
	w->base.ops = &noop_writer_ops;
	w->p = (noop_plugin *)self;
	w->rank = opts ? opts->rank : 0;
	snprintf(w->path, sizeof(w->path), "noop/__%d_0", w->rank);
	atomic_fetch_add(&w->p->writer_open, 1);
	*out = &w->base;
	return DCP_OK;
}

static int noop_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                            dcp_storage_reader **out, dcp_msg *msg)
{
	noop_reader *r = calloc(1, sizeof(*r));
	(void)opts;
	if (r == NULL) {
		dcp_msgf(msg, "noop plugin: out of memory opening a reader for %s", url);
		return DCP_ENOMEM;
	}
	r->base.ops = &noop_reader_ops;
	r->p = (noop_plugin *)self;
	atomic_fetch_add(&r->p->reader_open, 1);
	*out = &r->base;
	return DCP_OK;
}

static int noop_remove(dcp_plugin *self, const char *url, dcp_msg *msg)
{
	noop_plugin *p = (noop_plugin *)self;
	(void)url;
	(void)msg;
	pthread_mutex_lock(&p->lock);
	free(p->md_json);
	p->md_json = NULL;
	p->md_len = 0;
	pthread_mutex_unlock(&p->lock);
	return DCP_OK;
}

static int make_plugin(const dcp_host *host, const char *name, const char *scheme, dcp_plugin **out,
                       dcp_msg *msg)
{
	noop_plugin *p;
	if (host == NULL || host->version < 1) {
		dcp_msgf(msg, "%s plugin: the host table is missing or has version 0", name);
		return DCP_EVERSION;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		dcp_msgf(msg, "%s plugin: out of memory", name);
		return DCP_ENOMEM;
	}
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		dcp_msgf(msg, "%s plugin: pthread_mutex_init failed", name);
		return DCP_ENOMEM;
	}
	p->magic = noop_magic;
	p->host = host;
	p->schemes[0] = scheme;
	p->schemes[1] = NULL;
	p->base.version = DCP_PLUGIN_ABI_VERSION;
	p->base.name = name;
	p->base.schemes = p->schemes;
	p->base.capabilities = DCP_CAP_PROCESS_LOCAL;
	p->base.destroy = noop_destroy;
	p->base.validate_checkpoint_id = noop_validate;
	p->base.writer_open = noop_writer_open;
	p->base.reader_open = noop_reader_open;
	p->base.remove = noop_remove;
	*out = &p->base;
	return DCP_OK;
}

int dt_noop_plugin_entry(const dcp_host *host, dcp_plugin **out, dcp_msg *msg)
{
	return make_plugin(host, "noop", "noop", out, msg);
}

int dt_fakefile_plugin_entry(const dcp_host *host, dcp_plugin **out, dcp_msg *msg)
{
	return make_plugin(host, "fakefile", "file", out, msg);
}

int dt_is_noop_plugin(const dcp_plugin *p)
{
	return p != NULL && p->destroy == noop_destroy && ((const noop_plugin *)p)->magic == noop_magic;
}

void dt_noop_get_counts(dcp_plugin *plugin, dt_noop_counts *out)
{
	noop_plugin *p = (noop_plugin *)plugin;
	memset(out, 0, sizeof(*out));
	if (!dt_is_noop_plugin(plugin))
		return;
	out->validate = atomic_load(&p->validate);
	out->writer_open = atomic_load(&p->writer_open);
	out->reader_open = atomic_load(&p->reader_open);
	out->set_up_storage_writer = atomic_load(&p->set_up_storage_writer);
	out->writer_prepare_local_plan = atomic_load(&p->writer_prepare_local_plan);
	out->writer_prepare_global_plan = atomic_load(&p->writer_prepare_global_plan);
	out->write_data = atomic_load(&p->write_data);
	out->finish = atomic_load(&p->finish);
	out->writer_close = atomic_load(&p->writer_close);
	out->writer_abort = atomic_load(&p->writer_abort);
	out->read_metadata = atomic_load(&p->read_metadata);
	out->set_up_storage_reader = atomic_load(&p->set_up_storage_reader);
	out->reader_prepare_local_plan = atomic_load(&p->reader_prepare_local_plan);
	out->reader_prepare_global_plan = atomic_load(&p->reader_prepare_global_plan);
	out->read_data = atomic_load(&p->read_data);
	out->reader_close = atomic_load(&p->reader_close);
	out->items_written = atomic_load(&p->items_written);
	out->bytes_written = atomic_load(&p->bytes_written);
}
