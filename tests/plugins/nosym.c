/*
 * A shared object that looks like a plugin but exports no dcp_plugin_entry
 * symbol (its entry point is misspelled): the registry must refuse it,
 * naming the file and the missing symbol.
 */
#include "tiny_plugin.h"

DCP_EXTERN int dcp_plugin_entry_misspelled(const dcp_host *host, dcp_plugin **out, dcp_msg *msg);

DCP_EXTERN int dcp_plugin_entry_misspelled(const dcp_host *host, dcp_plugin **out, dcp_msg *msg)
{
	(void)host;
	return tiny_make("nosym", "nosym", out, msg);
}
