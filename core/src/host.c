/*
 * The host services table given to every plugin of a registry.
 */
#include "future.h"
#include "registry_internal.h"

static int host_metadata_encode(const dcp_metadata *md, char **json, size_t *len, dcp_msg *msg)
{
	return dcp_metadata_encode(md, json, len, msg);
}

static int host_metadata_decode(const char *json, size_t len, dcp_metadata **out, dcp_msg *msg)
{
	return dcp_metadata_decode(json, len, out, msg);
}

static int host_plugin_for_url(const dcp_host *host, const char *url, dcp_plugin **out, dcp_msg *msg)
{
	/* The host table is the first member of its registry. Must not be called
	 * from a plugin's entry point (the registry lock is held then). */
	dcp_registry *reg = (dcp_registry *)(void *)host;
	return dcp_registry_resolve(reg, url, 0, 0, out, NULL, msg);
}

void dcp_host_init(dcp_host *host)
{
	host->version = DCP_HOST_VERSION;
	host->metadata_encode = host_metadata_encode;
	host->metadata_decode = host_metadata_decode;
	host->metadata_free = dcp_metadata_free;
	host->write_future_complete = dcp_future_complete_write;
	host->read_future_complete = dcp_future_complete_read;
	host->plugin_for_url = host_plugin_for_url;
	host->checksum = dcp_checksum;
	/* Version 2: the core's own futures, for wrapper plugins. */
	host->future_new = dcp_future_new;
	host->future_wait = dcp_future_wait;
	host->future_free = dcp_future_free;
	host->read_request_done = dcp_future_read_request_done;
}
