/*
 * dcp-s3.so: checkpoints in AWS S3 or an S3-compatible store (MinIO,
 * s3rver). Ids are s3://BUCKET/PREFIX[?key=value&...]; the checkpoint's
 * objects are the keys under PREFIX/. The layout (object names, commit
 * order, cleanup) is plugins/layout's, over the S3 backend.
 *
 * Query keys: the layout's (threads, layout, overwrite) and the backend's
 * (endpoint, region, path_style, part_size, multipart_threshold,
 * concurrency, retries, profile, config); see backends/s3/s3_backend.h for
 * where the rest of the configuration comes from. A save sends the state's
 * own buffers (the backend's write_iov): it holds no part buffers.
 *
 * The plugin keeps no state besides the host table: every writer and reader
 * reads the configuration and opens its own backend (its own connections).
 * It initialises libcurl when loaded and releases it when destroyed.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "s3/s3_backend.h"

#define S3_DEFAULT_THREADS 4

typedef struct s3_plugin {
	dcp_plugin base; /* first: the registry sees this */
	const dcp_host *host;
} s3_plugin;

static const char *const s3_schemes[] = {"s3", NULL};

/* A parsed id: everything needed to open a backend. */
typedef struct s3_id {
	char *bucket, *prefix;
	char *location; /* "s3://bucket/prefix" (no query): for messages */
	dcp_layout_options options;
	dcp_s3_config cfg;
} s3_id;

static void s3_id_clear(s3_id *id)
{
	free(id->bucket);
	free(id->prefix);
	free(id->location);
	dcp_s3_config_clear(&id->cfg);
	memset(id, 0, sizeof(*id));
}

/* Parses and checks url; no network. Clear id in every case. */
static int s3_id_parse(const char *url, s3_id *id, dcp_msg *msg)
{
	dcp_url u;
	int rc;

	memset(id, 0, sizeof(*id));
	dcp_s3_config_init(&id->cfg);
	rc = dcp_url_parse(url, &u, msg);
	if (rc == DCP_OK && strcmp(u.scheme, "s3") != 0) {
		dcp_msgf(msg, "checkpoint id '%s' is not an s3:// id", url);
		rc = DCP_EID;
	}
	if (rc == DCP_OK)
		rc = dcp_s3_split_id(u.rest, url, &id->bucket, &id->prefix, msg);
	if (rc == DCP_OK)
		rc = dcp_layout_options_parse(&u, S3_DEFAULT_THREADS, dcp_s3_url_keys, url, &id->options,
		                              msg);
	if (rc == DCP_OK)
		rc = dcp_s3_config_load(&id->cfg, &u, url, msg);
	if (rc == DCP_OK) {
		id->location = id->prefix[0] != '\0' ? dcp_asprintf("s3://%s/%s", id->bucket, id->prefix)
		                                     : dcp_asprintf("s3://%s", id->bucket);
		if (id->location == NULL) {
			dcp_msgf(msg, "out of memory parsing checkpoint id '%s'", url);
			rc = DCP_ENOMEM;
		}
	}
	dcp_url_clear(&u);
	return rc;
}

static int s3_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	dcp_backend *b;
	s3_id id;
	int rc;

	(void)self;
	rc = s3_id_parse(url, &id, msg);
	if (rc == DCP_OK && !for_write) {
		rc = dcp_s3_backend_open(&id.cfg, id.bucket, id.prefix, &b, msg);
		if (rc == DCP_OK) {
			rc = dcp_layout_exists(b, msg);
			b->ops->destroy(b);
			if (rc == 0) {
				dcp_msgf(msg, "no checkpoint at %s", id.location);
				rc = DCP_ENOTFOUND;
			} else if (rc == 1) {
				rc = DCP_OK;
			}
		}
	}
	s3_id_clear(&id);
	return rc;
}

/* Parses url and opens its backend into params; *id keeps the strings
 * params points to (clear it after the layout copied them). */
static int s3_open_params(s3_plugin *p, const char *url, dcp_layout_params *params, s3_id *id, dcp_msg *msg)
{
	int rc;

	memset(params, 0, sizeof(*params));
	rc = s3_id_parse(url, id, msg);
	if (rc == DCP_OK)
		rc = dcp_s3_backend_open(&id->cfg, id->bucket, id->prefix, &params->backend, msg);
	params->host = p->host;
	params->location = id->location;
	params->options = id->options;
	return rc;
}

static int s3_writer_open_(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                           dcp_storage_writer **out, dcp_msg *msg)
{
	dcp_layout_params params;
	s3_id id;
	int rc;

	*out = NULL;
	rc = s3_open_params((s3_plugin *)self, url, &params, &id, msg);
	if (rc == DCP_OK)
		rc = dcp_layout_writer_open(&params, opts, out, msg);
	s3_id_clear(&id);
	return rc;
}

static int s3_reader_open_(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                           dcp_storage_reader **out, dcp_msg *msg)
{
	dcp_layout_params params;
	s3_id id;
	int rc;

	*out = NULL;
	rc = s3_open_params((s3_plugin *)self, url, &params, &id, msg);
	if (rc == DCP_OK)
		rc = dcp_layout_reader_open(&params, opts, out, msg);
	s3_id_clear(&id);
	return rc;
}

static int s3_remove(dcp_plugin *self, const char *url, dcp_msg *msg)
{
	s3_plugin *p = (s3_plugin *)self;
	dcp_layout_params params;
	s3_id id;
	int rc;

	rc = s3_open_params(p, url, &params, &id, msg);
	if (rc == DCP_OK) {
		rc = dcp_layout_remove(params.backend, p->host, id.location, msg);
		params.backend->ops->destroy(params.backend);
	}
	s3_id_clear(&id);
	return rc;
}

static int s3_gc(dcp_plugin *self, const char *url, const dcp_gc_options *opts, dcp_gc_report *report,
                 dcp_msg *msg)
{
	s3_plugin *p = (s3_plugin *)self;
	dcp_layout_params params;
	s3_id id;
	int rc;

	rc = s3_open_params(p, url, &params, &id, msg);
	if (rc == DCP_OK) {
		rc = dcp_layout_gc(params.backend, p->host, id.location, opts, report, msg);
		params.backend->ops->destroy(params.backend);
	}
	s3_id_clear(&id);
	return rc;
}

static void s3_destroy(dcp_plugin *self)
{
	if (self == NULL)
		return;
	free(self);
	curl_global_cleanup();
}

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	s3_plugin *p;

	*out = NULL;
	if (host == NULL || host->version < 1) {
		dcp_msgf(msg, "the s3 plugin needs host services version 1 or later (got %u)",
		         host != NULL ? host->version : 0u);
		return DCP_EVERSION;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		dcp_msgf(msg, "the s3 plugin could not initialise libcurl (curl_global_init failed)");
		return DCP_EPLUGIN;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		curl_global_cleanup();
		dcp_msgf(msg, "out of memory creating the s3 plugin");
		return DCP_ENOMEM;
	}
	p->host = host;
	p->base.version = DCP_PLUGIN_ABI_VERSION;
	p->base.name = "s3";
	p->base.schemes = s3_schemes;
	p->base.capabilities =
	        DCP_CAP_ATOMIC_COMMIT | DCP_CAP_DURABLE | DCP_CAP_RANGED_READ | DCP_CAP_ASYNC_IO;
	p->base.destroy = s3_destroy;
	p->base.validate_checkpoint_id = s3_validate;
	p->base.writer_open = s3_writer_open_;
	p->base.reader_open = s3_reader_open_;
	p->base.remove = s3_remove;
	p->base.gc = s3_gc;
	*out = &p->base;
	return DCP_OK;
}
