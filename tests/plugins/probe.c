/*
 * A valid plugin for scheme "probe", installed in a folder of its own so that
 * the registry finds it only when DCP_PLUGIN_PATH names that folder.
 */
#include "tiny_plugin.h"

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	(void)host;
	return tiny_make("probe", "probe", out, msg);
}
