/*
 * A plugin built for a newer plugin ABI than this core knows: the registry
 * must refuse it (DCP_EVERSION), naming the file and both versions.
 */
#include "tiny_plugin.h"

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	int rc = tiny_make("newabi", "newabi", out, msg);
	(void)host;
	if (rc == DCP_OK)
		(*out)->version = DCP_PLUGIN_ABI_VERSION + 1;
	return rc;
}
