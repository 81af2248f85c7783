/*
 * A plugin whose entry point fails: the registry must report the plugin's own
 * message and the file.
 */
#include "tiny_plugin.h"

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	(void)host;
	(void)out;
	(void)tiny_make;
	dcp_msgf(msg, "failentry plugin: refusing to start on purpose (registry test)");
	return DCP_EIO;
}
