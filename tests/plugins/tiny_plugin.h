/*
 * A minimal storage plugin shared by the test plugins in this folder: it
 * accepts every id and opens no writer or reader (DCP_EUNSUPPORTED). Each
 * plugin source includes this file and exports (or fails to export) its entry
 * point, possibly after spoiling the table, to exercise the registry's checks.
 */
#ifndef DCP_TESTS_PLUGINS_TINY_PLUGIN_H
#define DCP_TESTS_PLUGINS_TINY_PLUGIN_H

#include <stdlib.h>

#include "dcp/sys/storage.h"

typedef struct tiny_plugin {
	dcp_plugin base;
	const char *schemes[2];
} tiny_plugin;

static void tiny_destroy(dcp_plugin *self)
{
	free(self);
}

static int tiny_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	(void)self;
	(void)url;
	(void)for_write;
	(void)msg;
	return DCP_OK;
}

static int tiny_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                            dcp_storage_writer **out, dcp_msg *msg)
{
	(void)opts;
	(void)out;
	dcp_msgf(msg, "%s plugin: cannot save to %s: it is a registry test plugin that stores nothing",
	         self->name, url);
	return DCP_EUNSUPPORTED;
}

static int tiny_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                            dcp_storage_reader **out, dcp_msg *msg)
{
	(void)opts;
	(void)out;
	dcp_msgf(msg, "%s plugin: cannot load from %s: it is a registry test plugin that stores nothing",
	         self->name, url);
	return DCP_EUNSUPPORTED;
}

/* A complete, valid plugin object named `name` for `scheme` (both static
 * strings). */
static int tiny_make(const char *name, const char *scheme, dcp_plugin **out, dcp_msg *msg)
{
	tiny_plugin *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		dcp_msgf(msg, "%s plugin: out of memory", name);
		return DCP_ENOMEM;
	}
	p->schemes[0] = scheme;
	p->schemes[1] = NULL;
	p->base.version = DCP_PLUGIN_ABI_VERSION;
	p->base.name = name;
	p->base.schemes = p->schemes;
	p->base.capabilities = 0;
	p->base.destroy = tiny_destroy;
	p->base.validate_checkpoint_id = tiny_validate;
	p->base.writer_open = tiny_writer_open;
	p->base.reader_open = tiny_reader_open;
	p->base.remove = NULL;
	*out = &p->base;
	return DCP_OK;
}

#endif /* DCP_TESTS_PLUGINS_TINY_PLUGIN_H */
