/*
 * dcp plugins: every storage plugin on the search path.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dcp/sys/storage.h"
#include "dcp_tool.h"

static const char USAGE[] =
        "usage: dcp plugins [--json]\n"
        "\n"
        "Loads every plugin on the search path ($DCP_PLUGIN_PATH, the conf file's plugin_path,\n"
        "the build tree's plugins, the install directory) and lists each: name, URL schemes,\n"
        "ABI version, file and capabilities. Plugins that fail to load are reported on stderr.\n"
        "\n"
        "  --json  print one JSON object {\"plugins\": [...]}\n"
        "\n"
        "Exit status: 0 every plugin loaded; 1 some failed to load (the others are listed).\n";

static const struct {
	uint64_t bit;
	const char *name;
} CAPS[] = {
        {DCP_CAP_ATOMIC_COMMIT, "atomic_commit"},
        {DCP_CAP_DURABLE, "durable"},
        {DCP_CAP_RANGED_READ, "ranged_read"},
        {DCP_CAP_ASYNC_IO, "async_io"},
        {DCP_CAP_WRAPPER, "wrapper"},
        {DCP_CAP_PROCESS_LOCAL, "process_local"},
};
#define NCAPS (sizeof(CAPS) / sizeof(CAPS[0]))

/* "atomic_commit,durable" (or "-"), plus unknown bits in hex. */
static void caps_text(uint64_t caps, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < NCAPS; i++) {
		if (caps & CAPS[i].bit) {
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "," : "",
			                      CAPS[i].name);
			caps &= ~CAPS[i].bit;
		}
	}
	if (caps != 0 && n < len)
		n += (size_t)snprintf(buf + n, len - n, "%s0x%llx", n ? "," : "", (unsigned long long)caps);
	if (n == 0)
		snprintf(buf, len, "-");
}

int cmd_plugins(int argc, char **argv)
{
	int json = 0;
	const arg_spec specs[] = {{"json", NULL, &json}, {NULL, NULL, NULL}};
	const char *pos[1];
	int npos = 0;
	int rc = args_parse("plugins", USAGE, argc, argv, specs, pos, 0, 0, &npos);
	if (rc >= 0)
		return rc;

	dcp_registry *reg = NULL;
	dcp_error *err = NULL;
	rc = dcp_registry_new(&reg, &err);
	if (rc != DCP_OK) {
		int ex = tool_report_error("dcp plugins", rc, err);
		dcp_error_free(err);
		return ex;
	}
	int ex = TOOL_EXIT_OK;
	rc = dcp_registry_load_all(reg, &err);
	if (rc != DCP_OK) {
		fprintf(stderr, "dcp plugins: some plugins failed to load:\n");
		tool_report_error("dcp plugins", rc, err);
		dcp_error_free(err);
		err = NULL;
		ex = TOOL_EXIT_FAIL;
	}

	size_t n = dcp_registry_count(reg);
	cJSON *root = json ? cJSON_CreateObject() : NULL;
	cJSON *arr = root != NULL ? cJSON_AddArrayToObject(root, "plugins") : NULL;
	if (json && arr == NULL) {
		fprintf(stderr, "dcp plugins: out of memory\n");
		cJSON_Delete(root);
		dcp_registry_free(reg);
		return TOOL_EXIT_FAIL;
	}
	if (!json)
		printf("%-8s %-16s %-4s %-40s %s\n", "NAME", "SCHEMES", "ABI", "FILE", "CAPABILITIES");
	for (size_t i = 0; i < n; i++) {
		dcp_plugin_info info;
		memset(&info, 0, sizeof(info));
		if (dcp_registry_info(reg, i, &info) != DCP_OK)
			continue;
		char schemes[256], caps[256];
		size_t m = 0;
		schemes[0] = '\0';
		for (size_t s = 0; info.schemes != NULL && info.schemes[s] != NULL && m < sizeof(schemes);
		     s++)
			m += (size_t)snprintf(schemes + m, sizeof(schemes) - m, "%s%s", s ? "," : "",
			                      info.schemes[s]);
		caps_text(info.capabilities, caps, sizeof(caps));
		const char *name = info.name != NULL ? info.name : "?";
		const char *path = info.path != NULL ? info.path : "?";
		if (!json) {
			printf("%-8s %-16s %-4u %-40s %s\n", name, schemes, info.abi_version, path, caps);
			continue;
		}
		cJSON *p = cJSON_CreateObject();
		if (p == NULL)
			break;
		cJSON_AddItemToArray(arr, p);
		cJSON_AddStringToObject(p, "name", name);
		cJSON *sa = cJSON_AddArrayToObject(p, "schemes");
		for (size_t s = 0; sa != NULL && info.schemes != NULL && info.schemes[s] != NULL; s++)
			cJSON_AddItemToArray(sa, cJSON_CreateString(info.schemes[s]));
		cJSON_AddNumberToObject(p, "abi_version", info.abi_version);
		cJSON_AddStringToObject(p, "file", path);
		cJSON *ca = cJSON_AddArrayToObject(p, "capabilities");
		for (size_t c = 0; ca != NULL && c < NCAPS; c++)
			if (info.capabilities & CAPS[c].bit)
				cJSON_AddItemToArray(ca, cJSON_CreateString(CAPS[c].name));
	}
	if (json) {
		char *text = cJSON_Print(root);
		if (text != NULL) {
			puts(text);
			cJSON_free(text);
		} else {
			fprintf(stderr, "dcp plugins: out of memory\n");
			ex = TOOL_EXIT_FAIL;
		}
		cJSON_Delete(root);
	}
	dcp_registry_free(reg);
	return ex;
}
