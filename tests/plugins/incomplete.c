/*
 * A plugin whose table leaves a required slot (writer_open) NULL: the
 * registry must refuse it, naming the file and the slot, and destroy it.
 */
#include "tiny_plugin.h"

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	int rc = tiny_make("incomplete", "incomplete", out, msg);
	(void)host;
	if (rc == DCP_OK)
		(*out)->writer_open = NULL;
	return rc;
}
