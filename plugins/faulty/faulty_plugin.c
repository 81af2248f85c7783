/*
 * The faulty plugin object: entry point, validate_checkpoint_id, remove, gc.
 *
 * The plugin declares the scheme "faulty"; the registry sends it every URL
 * whose scheme is "faulty+<inner>". It finds the inner plugin through
 * host->plugin_for_url on every call, so it holds no per-checkpoint state.
 */
#include <stdlib.h>
#include <string.h>

#include "faulty.h"

static const char *const faulty_schemes[] = {"faulty", NULL};

static void faulty_destroy(dcp_plugin *self)
{
	faulty_plugin *plugin = (faulty_plugin *)self;

	pthread_mutex_destroy(&plugin->json_lock);
	free(plugin);
}

/* Checks the faulty plugin's own parameters (and reads the scenario file),
 * then lets the inner plugin judge the inner URL. */
static int faulty_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	faulty_plugin *plugin = (faulty_plugin *)self;
	faulty_config cfg;
	dcp_plugin *inner = NULL;
	int rc = faulty_config_parse(plugin, url, &cfg, msg);

	if (rc == DCP_OK)
		rc = faulty_inner_plugin(plugin, &cfg, &inner, msg);
	if (rc == DCP_OK)
		rc = inner->validate_checkpoint_id(inner, cfg.inner_url, for_write, msg);
	faulty_config_clear(&cfg);
	return rc;
}

static int faulty_remove(dcp_plugin *self, const char *url, dcp_msg *msg)
{
	faulty_plugin *plugin = (faulty_plugin *)self;
	faulty_config cfg;
	dcp_plugin *inner = NULL;
	int rc = faulty_config_parse(plugin, url, &cfg, msg);

	if (rc == DCP_OK)
		rc = faulty_inner_plugin(plugin, &cfg, &inner, msg);
	if (rc == DCP_OK && inner->remove == NULL) {
		dcp_msgf(msg,
		         "faulty plugin: the inner plugin '%s' cannot remove checkpoints, so '%s' cannot be "
		         "removed through it; remove it with that storage's own tools",
		         inner->name, cfg.inner_url);
		rc = DCP_EUNSUPPORTED;
	} else if (rc == DCP_OK) {
		rc = inner->remove(inner, cfg.inner_url, msg);
	}
	faulty_config_clear(&cfg);
	return rc;
}

/* gc passes through: faults are injected into saves and loads only. */
static int faulty_gc(dcp_plugin *self, const char *url, const dcp_gc_options *opts, dcp_gc_report *report,
                     dcp_msg *msg)
{
	faulty_plugin *plugin = (faulty_plugin *)self;
	faulty_config cfg;
	dcp_plugin *inner = NULL;
	int rc = faulty_config_parse(plugin, url, &cfg, msg);

	if (rc == DCP_OK)
		rc = faulty_inner_plugin(plugin, &cfg, &inner, msg);
	if (rc == DCP_OK && (inner->version < 2 || inner->gc == NULL)) {
		dcp_msgf(msg,
		         "faulty plugin: the inner plugin '%s' cannot collect what killed saves left at '%s'",
		         inner->name, cfg.inner_url);
		rc = DCP_EUNSUPPORTED;
	} else if (rc == DCP_OK) {
		rc = inner->gc(inner, cfg.inner_url, opts, report, msg);
	}
	faulty_config_clear(&cfg);
	return rc;
}

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	faulty_plugin *plugin;

	*out = NULL;
	if (host == NULL || host->version < 1 || host->plugin_for_url == NULL ||
	    host->write_future_complete == NULL || host->read_future_complete == NULL) {
		dcp_msgf(msg,
		         "faulty plugin: the host services (version %u) lack plugin_for_url or the future "
		         "callbacks; this plugin needs host version %d or later",
		         host ? host->version : 0u, DCP_HOST_VERSION);
		return DCP_EVERSION;
	}
	plugin = calloc(1, sizeof(*plugin));
	if (plugin == NULL) {
		dcp_msgf(msg, "faulty plugin: out of memory creating the plugin object");
		return DCP_ENOMEM;
	}
	if (pthread_mutex_init(&plugin->json_lock, NULL) != 0) {
		free(plugin);
		dcp_msgf(msg, "faulty plugin: cannot create a mutex");
		return DCP_ENOMEM;
	}
	plugin->host = host;
	plugin->base.version = DCP_PLUGIN_ABI_VERSION;
	plugin->base.name = "faulty";
	plugin->base.schemes = faulty_schemes;
	/* The inner plugin's capabilities are known only per URL. */
	plugin->base.capabilities = DCP_CAP_WRAPPER;
	plugin->base.destroy = faulty_destroy;
	plugin->base.validate_checkpoint_id = faulty_validate;
	plugin->base.writer_open = faulty_writer_open;
	plugin->base.reader_open = faulty_reader_open;
	plugin->base.remove = faulty_remove;
	plugin->base.gc = faulty_gc;
	*out = &plugin->base;
	return DCP_OK;
}
