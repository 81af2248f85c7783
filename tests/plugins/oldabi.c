/*
 * A plugin built against version 1 of the plugin table, before the gc slot
 * was appended: the object it returns is exactly as large as a version-1
 * table (the struct below repeats that layout), so a core that read a slot
 * beyond version 1 would read past it (AddressSanitizer reports that). The
 * registry must load it, serve its scheme, and answer dcp_gc with
 * DCP_EUNSUPPORTED instead of calling the missing slot.
 */
#include <stdlib.h>

#include "dcp/sys/storage.h"

/* struct dcp_plugin as version 1 laid it out. */
typedef struct plugin_v1 {
	unsigned version;
	const char *name;
	const char *const *schemes;
	uint64_t capabilities;
	void (*destroy)(dcp_plugin *self);
	int (*validate_checkpoint_id)(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg);
	int (*writer_open)(dcp_plugin *self, const char *url, const dcp_open_options *opts,
	                   dcp_storage_writer **out, dcp_msg *msg);
	int (*reader_open)(dcp_plugin *self, const char *url, const dcp_open_options *opts,
	                   dcp_storage_reader **out, dcp_msg *msg);
	int (*remove)(dcp_plugin *self, const char *url, dcp_msg *msg);
} plugin_v1;

static const char *const schemes[] = {"oldabi", NULL};

static void v1_destroy(dcp_plugin *self)
{
	free(self);
}

static int v1_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	(void)self;
	(void)url;
	(void)for_write;
	(void)msg;
	return DCP_OK;
}

static int v1_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                          dcp_storage_writer **out, dcp_msg *msg)
{
	(void)self;
	(void)opts;
	(void)out;
	dcp_msgf(msg, "oldabi plugin: cannot save to %s: it stores nothing", url);
	return DCP_EUNSUPPORTED;
}

static int v1_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                          dcp_storage_reader **out, dcp_msg *msg)
{
	(void)self;
	(void)opts;
	(void)out;
	dcp_msgf(msg, "oldabi plugin: cannot load from %s: it stores nothing", url);
	return DCP_EUNSUPPORTED;
}

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	plugin_v1 *p = malloc(sizeof(*p));

	(void)host;
	if (p == NULL) {
		dcp_msgf(msg, "oldabi plugin: out of memory");
		return DCP_ENOMEM;
	}
	p->version = 1;
	p->name = "oldabi";
	p->schemes = schemes;
	p->capabilities = 0;
	p->destroy = v1_destroy;
	p->validate_checkpoint_id = v1_validate;
	p->writer_open = v1_writer_open;
	p->reader_open = v1_reader_open;
	p->remove = NULL;
	*out = (dcp_plugin *)p;
	return DCP_OK;
}
