/*
 * dcp-mem.so: checkpoints kept in the memory of the process, for tests and
 * for staging. Ids are mem://NAME; every rank of the process sees the same
 * store, which hangs off the plugin object (one per registry). The checkpoint
 * layout is plugins/layout's, over the mem backend.
 */
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "mem/mem_backend.h"

#define MEM_NAME_MAX        255
#define MEM_DEFAULT_THREADS 2

typedef struct mem_plugin {
	dcp_plugin base; /* first: the registry sees this */
	const dcp_host *host;
	dcp_mem_store *store; /* owned (one reference) */
} mem_plugin;

static const char *const mem_schemes[] = {"mem", NULL};

static int name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-' || c == '/';
}

/* Checks the NAME of mem://NAME; url is shown in messages. */
static int check_name(const char *name, const char *url, dcp_msg *msg)
{
	size_t n = strlen(name), i;

	if (n == 0) {
		dcp_msgf(msg, "checkpoint id '%s' has no name: write mem://NAME", url);
		return DCP_EID;
	}
	if (n > MEM_NAME_MAX) {
		dcp_msgf(
		        msg,
		        "the name in checkpoint id '%.64s...' is %zu characters long: at most %d are allowed",
		        url, n, MEM_NAME_MAX);
		return DCP_EID;
	}
	for (i = 0; i < n; i++) {
		if (!name_char_ok(name[i])) {
			dcp_msgf(msg,
			         "the name '%s' in checkpoint id '%s' has a '%c' at position %zu: a mem:// "
			         "name "
			         "holds only letters, digits, '.', '_', '-' and '/'",
			         name, url, name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?', i);
			return DCP_EID;
		}
	}
	if (name[0] == '/') {
		dcp_msgf(
		        msg,
		        "the name '%s' in checkpoint id '%s' starts with '/': write mem://NAME (two slashes)",
		        name, url);
		return DCP_EID;
	}
	if (strstr(name, "..") != NULL) {
		dcp_msgf(msg, "the name '%s' in checkpoint id '%s' contains '..', which is not allowed", name,
		         url);
		return DCP_EID;
	}
	if (strstr(name, "//") != NULL || name[n - 1] == '/') {
		dcp_msgf(
		        msg,
		        "the name '%s' in checkpoint id '%s' has an empty component ('//' or a trailing '/')",
		        name, url);
		return DCP_EID;
	}
	if (strcmp(name, ".") == 0 || strncmp(name, "./", 2) == 0 || strstr(name, "/./") != NULL ||
	    (n >= 2 && strcmp(name + n - 2, "/.") == 0)) {
		dcp_msgf(msg, "the name '%s' in checkpoint id '%s' has a '.' component, which is not allowed",
		         name, url);
		return DCP_EID;
	}
	return DCP_OK;
}

/* Parses a mem:// id: *location is "mem://NAME" (malloc'd), *name points
 * into it. */
static int mem_parse(const char *url, char **location, const char **name, dcp_layout_options *opt,
                     dcp_msg *msg)
{
	dcp_url u;
	int rc;

	*location = NULL;
	rc = dcp_url_parse(url, &u, msg);
	if (rc == DCP_OK && strcmp(u.scheme, "mem") != 0) {
		dcp_msgf(msg, "checkpoint id '%s' is not a mem:// id", url);
		rc = DCP_EID;
	}
	if (rc == DCP_OK)
		rc = check_name(u.rest, url, msg);
	if (rc == DCP_OK)
		rc = dcp_layout_options_parse(&u, MEM_DEFAULT_THREADS, NULL, url, opt, msg);
	if (rc == DCP_OK) {
		*location = dcp_asprintf("mem://%s", u.rest);
		if (*location == NULL) {
			dcp_msgf(msg, "out of memory parsing checkpoint id '%s'", url);
			rc = DCP_ENOMEM;
		} else {
			*name = *location + strlen("mem://");
		}
	}
	dcp_url_clear(&u);
	return rc;
}

static int mem_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	mem_plugin *p = (mem_plugin *)self;
	dcp_layout_options opt;
	dcp_backend *b;
	char *loc;
	const char *name;
	int rc;

	rc = mem_parse(url, &loc, &name, &opt, msg);
	if (rc != DCP_OK || for_write) {
		free(loc);
		return rc;
	}
	rc = dcp_mem_backend_open(p->store, name, &b, msg);
	if (rc == DCP_OK) {
		rc = dcp_layout_exists(b, msg);
		b->ops->destroy(b);
		if (rc == 0) {
			dcp_msgf(msg, "no checkpoint at %s", loc);
			rc = DCP_ENOTFOUND;
		} else if (rc == 1) {
			rc = DCP_OK;
		}
	}
	free(loc);
	return rc;
}

static int mem_open_params(mem_plugin *p, const char *url, dcp_layout_params *params, char **loc,
                           dcp_msg *msg)
{
	const char *name;
	int rc;

	memset(params, 0, sizeof(*params));
	rc = mem_parse(url, loc, &name, &params->options, msg);
	if (rc == DCP_OK)
		rc = dcp_mem_backend_open(p->store, name, &params->backend, msg);
	params->host = p->host;
	params->location = *loc;
	return rc;
}

static int mem_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                           dcp_storage_writer **out, dcp_msg *msg)
{
	dcp_layout_params params;
	char *loc = NULL;
	int rc;

	*out = NULL;
	rc = mem_open_params((mem_plugin *)self, url, &params, &loc, msg);
	if (rc == DCP_OK)
		rc = dcp_layout_writer_open(&params, opts, out, msg);
	free(loc);
	return rc;
}

static int mem_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                           dcp_storage_reader **out, dcp_msg *msg)
{
	dcp_layout_params params;
	char *loc = NULL;
	int rc;

	*out = NULL;
	rc = mem_open_params((mem_plugin *)self, url, &params, &loc, msg);
	if (rc == DCP_OK)
		rc = dcp_layout_reader_open(&params, opts, out, msg);
	free(loc);
	return rc;
}

static int mem_remove(dcp_plugin *self, const char *url, dcp_msg *msg)
{
	mem_plugin *p = (mem_plugin *)self;
	dcp_layout_params params;
	char *loc = NULL;
	int rc;

	rc = mem_open_params(p, url, &params, &loc, msg);
	if (rc == DCP_OK) {
		rc = dcp_layout_remove(params.backend, p->host, loc, msg);
		params.backend->ops->destroy(params.backend);
	}
	free(loc);
	return rc;
}

static int mem_gc(dcp_plugin *self, const char *url, const dcp_gc_options *opts, dcp_gc_report *report,
                  dcp_msg *msg)
{
	mem_plugin *p = (mem_plugin *)self;
	dcp_layout_params params;
	char *loc = NULL;
	int rc;

	rc = mem_open_params(p, url, &params, &loc, msg);
	if (rc == DCP_OK) {
		rc = dcp_layout_gc(params.backend, p->host, loc, opts, report, msg);
		params.backend->ops->destroy(params.backend);
	}
	free(loc);
	return rc;
}

static void mem_destroy(dcp_plugin *self)
{
	mem_plugin *p = (mem_plugin *)self;

	if (p == NULL)
		return;
	dcp_mem_store_release(p->store);
	free(p);
}

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	mem_plugin *p;

	*out = NULL;
	if (host == NULL || host->version < 1) {
		dcp_msgf(msg, "the mem plugin needs host services version 1 or later (got %u)",
		         host != NULL ? host->version : 0u);
		return DCP_EVERSION;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL || (p->store = dcp_mem_store_new()) == NULL) {
		free(p);
		dcp_msgf(msg, "out of memory creating the mem plugin");
		return DCP_ENOMEM;
	}
	p->host = host;
	p->base.version = DCP_PLUGIN_ABI_VERSION;
	p->base.name = "mem";
	p->base.schemes = mem_schemes;
	p->base.capabilities =
	        DCP_CAP_ATOMIC_COMMIT | DCP_CAP_RANGED_READ | DCP_CAP_ASYNC_IO | DCP_CAP_PROCESS_LOCAL;
	p->base.destroy = mem_destroy;
	p->base.validate_checkpoint_id = mem_validate;
	p->base.writer_open = mem_writer_open;
	p->base.reader_open = mem_reader_open;
	p->base.remove = mem_remove;
	p->base.gc = mem_gc;
	*out = &p->base;
	return DCP_OK;
}
