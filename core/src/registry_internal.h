/*
 * The plugin registry's internals, shared by registry.c, plugin_path.c,
 * host.c and the protocol (save.c, load.c).
 */
#ifndef DCP_REGISTRY_INTERNAL_H
#define DCP_REGISTRY_INTERNAL_H

#include <pthread.h>

#include "dcp/sys/storage.h"

typedef struct dcp_registry_entry {
	dcp_plugin *plugin;
	void *dl;   /* dlopen handle, NULL for built-in plugins */
	char *path; /* .so path, or "(built in)" */
} dcp_registry_entry;

/* A scheme -> plugin-name mapping from the built-in table or the conf file,
 * so that "known scheme, plugin missing" is told apart from "unknown scheme". */
typedef struct dcp_scheme_map {
	char *scheme;
	char *plugin;
} dcp_scheme_map;

struct dcp_registry {
	dcp_host host; /* first: host callbacks find the registry from it */
	pthread_mutex_t mu;
	size_t nentries, capentries;
	dcp_registry_entry *entries;
	size_t ndirs;
	char **dirs; /* the plugin search path, in order */
	size_t nschemes;
	dcp_scheme_map *schemes;
	char *conf_error; /* a conf file that could not be read, reported on misses */
};

/* Search path and conf file (plugin_path.c): fills dirs and schemes. */
int dcp_registry_configure(dcp_registry *reg, dcp_msg *msg);

/* Fills reg->host (host.c). */
void dcp_host_init(dcp_host *host);

/*
 * The URL pipeline: empty id, bare path -> file://<absolute path>, scheme
 * syntax. *out is a malloc'd canonical URL. DCP_EID with a fixed message.
 */
int dcp_url_canonical(const char *id, char **out, dcp_msg *msg);

/*
 * Canonicalizes url, finds (loading if needed) the plugin for its scheme,
 * and, if validate is set, runs the plugin's validate_checkpoint_id.
 * *canon receives the canonical URL (malloc'd, caller frees) when non-NULL.
 */
int dcp_registry_resolve(dcp_registry *reg, const char *url, int validate, int for_write, dcp_plugin **out,
                         char **canon, dcp_msg *msg);

/* reg itself, or the process-wide default registry for NULL (created on
 * first use). NULL with msg if it could not be created. */
dcp_registry *dcp_registry_or_default(dcp_registry *reg, dcp_msg *msg);

/* Checks an ops table returned by a writer_open / reader_open. */
int dcp_check_writer_ops(const dcp_plugin *p, const dcp_writer_ops *ops, dcp_msg *msg);
int dcp_check_reader_ops(const dcp_plugin *p, const dcp_reader_ops *ops, dcp_msg *msg);

#endif /* DCP_REGISTRY_INTERNAL_H */
