/*
 * The faulty plugin's configuration: the stage table, the fail.<stage> and
 * faults= URL parameters, JSON scenario files, and the inner URL.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "faulty.h"

/* Scenario files are a few lines; anything this large is not one. */
#define FAULTY_SCENARIO_MAX_BYTES (1u << 20)

static const char *const stage_names[FAULTY_STAGE_COUNT] = {
        [FAULTY_SET_UP_STORAGE_WRITER] = "set_up_storage_writer",
        [FAULTY_PREPARE_LOCAL_PLAN] = "prepare_local_plan",
        [FAULTY_PREPARE_GLOBAL_PLAN] = "prepare_global_plan",
        [FAULTY_WRITE_DATA] = "write_data",
        [FAULTY_WRITE_DATA_ASYNC] = "write_data_async",
        [FAULTY_FINISH] = "finish",
        [FAULTY_READ_METADATA] = "read_metadata",
        [FAULTY_SET_UP_STORAGE_READER] = "set_up_storage_reader",
        [FAULTY_READ_DATA] = "read_data",
        [FAULTY_READ_DATA_ASYNC] = "read_data_async",
};

/* The valid stage names as "a, b, c", for error messages. */
#define FAULTY_STAGE_LIST                                                                                \
	"set_up_storage_writer, prepare_local_plan, prepare_global_plan, write_data, write_data_async, " \
	"finish, "                                                                                       \
	"read_metadata, set_up_storage_reader, read_data, read_data_async"

const char *faulty_stage_name(faulty_stage stage)
{
	if ((int)stage < 0 || stage >= FAULTY_STAGE_COUNT)
		return "unknown";
	return stage_names[stage];
}

int faulty_stage_from_name(const char *name)
{
	for (int i = 0; i < FAULTY_STAGE_COUNT; i++) {
		if (strcmp(name, stage_names[i]) == 0)
			return i;
	}
	return -1;
}

void faulty_msg_wrap(dcp_msg *msg, const char *fmt, ...)
{
	char prefix[DCP_MSG_MAX];
	char old[DCP_MSG_MAX];
	va_list ap;

	if (msg == NULL)
		return;
	memcpy(old, msg->text, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	dcp_msgf(msg, "%s: %s", prefix, old);
}

void faulty_config_clear(faulty_config *cfg)
{
	if (cfg == NULL)
		return;
	for (int i = 0; i < FAULTY_STAGE_COUNT; i++)
		dcp_rank_set_clear(&cfg->fail[i]);
	dcp_rank_set_clear(&cfg->torn_write);
	free(cfg->inner_url);
	memset(cfg, 0, sizeof(*cfg));
}

int faulty_should_fail(const faulty_config *cfg, faulty_stage stage, int rank)
{
	return dcp_rank_set_has(&cfg->fail[stage], rank);
}

int faulty_stage_enabled(const faulty_config *cfg, faulty_stage stage)
{
	return cfg->fail[stage].all || cfg->fail[stage].n > 0;
}

int faulty_torn_write(const faulty_config *cfg, int rank)
{
	return dcp_rank_set_has(&cfg->torn_write, rank);
}

int faulty_torn_enabled(const faulty_config *cfg)
{
	return cfg->torn_write.all || cfg->torn_write.n > 0;
}

int faulty_torn_check_host(const dcp_host *host, const char *url, dcp_msg *msg)
{
	if (host != NULL && host->version >= 2 && host->future_new != NULL && host->future_wait != NULL &&
	    host->future_free != NULL)
		return DCP_OK;
	dcp_msgf(msg,
	         "faulty plugin: '%s' asks for a torn write (torn.write_data), which needs the host's "
	         "futures (host version 2); this host has version %u without them: use a newer libdcp",
	         url, host != NULL ? host->version : 0u);
	return DCP_EVERSION;
}

int faulty_inject(dcp_msg *msg, faulty_stage stage, int rank)
{
	const char *name = faulty_stage_name(stage);
	dcp_msgf(msg, "injected failure at %s on rank %d (faulty plugin: fail.%s)", name, rank, name);
	return DCP_EINJECTED;
}

/* Keys that belong to the faulty plugin (never passed to the inner one):
 * "faults", "fail" and "torn" (typos for fail.<stage> and torn.<x>,
 * rejected), "fail.*" and "torn.*". */
static int is_faulty_key(const char *key)
{
	return strcmp(key, FAULTY_PARAM_FAULTS) == 0 || strcmp(key, "fail") == 0 ||
	       strcmp(key, "torn") == 0 ||
	       strncmp(key, FAULTY_PARAM_FAIL_PREFIX, strlen(FAULTY_PARAM_FAIL_PREFIX)) == 0 ||
	       strncmp(key, FAULTY_PARAM_TORN_PREFIX, strlen(FAULTY_PARAM_TORN_PREFIX)) == 0;
}

/* Parses the byte count of torn.bytes: a decimal integer (no sign, no
 * suffix) below 2^64. `where` names the source for messages. */
static int parse_torn_bytes(const char *text, uint64_t *out, const char *where, dcp_msg *msg)
{
	uint64_t v = 0;
	const char *p = text;

	if (*p == '\0')
		goto bad;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			goto bad;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return DCP_OK;
bad:
	dcp_msgf(msg,
	         "faulty plugin: %s: '%s' is not a byte count; give a decimal number of bytes (e.g. "
	         "torn.bytes=4096), below 2^64",
	         where, text);
	return DCP_EID;
}

static int keep_inner_param(const char *key, void *arg)
{
	(void)arg;
	return !is_faulty_key(key);
}

/* Replaces *dst with the set parsed from ranks (see set_stage). */
static int set_ranks(dcp_rank_set *dst, const char *ranks, const char *where, dcp_msg *msg);

/* Replaces cfg->fail[stage] with the set parsed from ranks. `where` names the
 * source for messages ("URL parameter 'fail.x=...'" or a file and stage). */
static int set_stage(faulty_config *cfg, int stage, const char *ranks, const char *where, dcp_msg *msg)
{
	return set_ranks(&cfg->fail[stage], ranks, where, msg);
}

static int set_ranks(dcp_rank_set *dst, const char *ranks, const char *where, dcp_msg *msg)
{
	dcp_rank_set set = {0};
	dcp_msg inner = {{0}};
	int rc = dcp_rank_set_parse(ranks, &set, &inner);

	if (rc != DCP_OK) {
		dcp_rank_set_clear(&set);
		if (rc == DCP_ENOMEM) {
			dcp_msgf(msg, "faulty plugin: out of memory parsing the rank list of %s", where);
			return DCP_ENOMEM;
		}
		if (inner.text[0] != '\0')
			dcp_msgf(msg, "faulty plugin: %s: %s", where, inner.text);
		else
			dcp_msgf(msg,
			         "faulty plugin: %s: bad rank list '%s'; give comma-separated ranks or "
			         "ranges (e.g. \"1,3\" or \"0-2\"), \"*\" for every rank, or \"\" for none",
			         where, ranks);
		return DCP_EID;
	}
	dcp_rank_set_clear(dst);
	*dst = set;
	return DCP_OK;
}

/* Reads the whole file at path (NUL-terminated, malloc'd). */
static int read_file(const char *path, char **out, size_t *len, dcp_msg *msg)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0;

	*out = NULL;
	if (f == NULL) {
		dcp_msgf(msg,
		         "faulty plugin: cannot open the scenario file '%s' (parameter faults=): %s; give "
		         "the path of a readable JSON file (relative paths are from the working directory), "
		         "see conf/faults/README.md",
		         path, strerror(errno));
		return DCP_EID;
	}
	buf = malloc(FAULTY_SCENARIO_MAX_BYTES + 1);
	if (buf == NULL) {
		fclose(f);
		dcp_msgf(msg, "faulty plugin: out of memory reading the scenario file '%s'", path);
		return DCP_ENOMEM;
	}
	n = fread(buf, 1, FAULTY_SCENARIO_MAX_BYTES + 1, f);
	if (ferror(f)) {
		int err = errno;
		fclose(f);
		free(buf);
		dcp_msgf(msg, "faulty plugin: cannot read the scenario file '%s': %s", path, strerror(err));
		return DCP_EID;
	}
	fclose(f);
	if (n > FAULTY_SCENARIO_MAX_BYTES) {
		free(buf);
		dcp_msgf(msg,
		         "faulty plugin: the scenario file '%s' is larger than %u bytes; a scenario is a "
		         "small JSON object, see conf/faults/README.md",
		         path, FAULTY_SCENARIO_MAX_BYTES);
		return DCP_EID;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return DCP_OK;
}

/* Turns a JSON rank list (the string syntax of fail.<stage>, or an array of
 * rank numbers) into the string syntax. *out is malloc'd. group ("fail" or
 * "torn") and stage name the value in messages. */
static int json_ranks_to_string(const cJSON *value, const char *path, const char *group, const char *stage,
                                char **out, dcp_msg *msg)
{
	size_t n, used = 0;
	char *s;

	*out = NULL;
	if (cJSON_IsString(value)) {
		s = dcp_strdup(value->valuestring);
	} else if (cJSON_IsArray(value)) {
		n = (size_t)cJSON_GetArraySize(value);
		s = malloc(n * 6 + 1); /* "65535" plus a comma per rank */
		if (s != NULL)
			s[0] = '\0';
		for (size_t i = 0; s != NULL && i < n; i++) {
			const cJSON *e = cJSON_GetArrayItem(value, (int)i);
			double d = cJSON_IsNumber(e) ? e->valuedouble : -1.0;
			if (d < 0.0 || d > 65535.0 || d != (double)(int)d) {
				free(s);
				dcp_msgf(msg,
				         "faulty plugin: in the scenario file '%s', \"%s\".\"%s\"[%zu] is "
				         "not a rank; ranks are integers from 0 to 65535",
				         path, group, stage, i);
				return DCP_EID;
			}
			used += (size_t)sprintf(s + used, "%s%d", i ? "," : "", (int)d);
		}
	} else {
		dcp_msgf(msg,
		         "faulty plugin: in the scenario file '%s', \"%s\".\"%s\" must be an array of "
		         "ranks (e.g. [1, 3]) or a rank-list string (e.g. \"*\" or \"0-2\")",
		         path, group, stage);
		return DCP_EID;
	}
	if (s == NULL) {
		dcp_msgf(msg, "faulty plugin: out of memory reading the scenario file '%s'", path);
		return DCP_ENOMEM;
	}
	*out = s;
	return DCP_OK;
}

/* Applies the "torn" object of a scenario file: {"write_data": <ranks>,
 * "bytes": <N>}, both optional. */
static int load_torn(const cJSON *torn, const char *path, faulty_config *cfg, dcp_msg *msg)
{
	const cJSON *item;
	char where[DCP_MSG_MAX / 2];
	int rc;

	if (!cJSON_IsObject(torn)) {
		dcp_msgf(msg,
		         "faulty plugin: in the scenario file '%s', \"torn\" must be an object such as "
		         "{\"write_data\": [1], \"bytes\": 4096}",
		         path);
		return DCP_EID;
	}
	cJSON_ArrayForEach(item, torn)
	{
		if (strcmp(item->string, "write_data") == 0) {
			char *ranks = NULL;
			rc = json_ranks_to_string(item, path, "torn", "write_data", &ranks, msg);
			if (rc != DCP_OK)
				return rc;
			snprintf(where, sizeof(where), "the scenario file '%s', \"torn\".\"write_data\"",
			         path);
			rc = set_ranks(&cfg->torn_write, ranks, where, msg);
			free(ranks);
			if (rc != DCP_OK)
				return rc;
		} else if (strcmp(item->string, "bytes") == 0) {
			/* Exact up to 2^53, which is all a JSON number promises. */
			if (!cJSON_IsNumber(item) || item->valuedouble < 0.0 ||
			    item->valuedouble > 9007199254740992.0 ||
			    item->valuedouble != (double)(uint64_t)item->valuedouble) {
				dcp_msgf(msg,
				         "faulty plugin: in the scenario file '%s', \"torn\".\"bytes\" must "
				         "be "
				         "a whole number of bytes from 0 to 2^53",
				         path);
				return DCP_EID;
			}
			cfg->torn_bytes = (uint64_t)item->valuedouble;
		} else {
			dcp_msgf(msg,
			         "faulty plugin: the scenario file '%s' has an unknown key \"%s\" in "
			         "\"torn\"; "
			         "the keys are \"write_data\" and \"bytes\"",
			         path, item->string);
			return DCP_EID;
		}
	}
	return DCP_OK;
}

/* Applies the scenario file at path to cfg. */
static int load_scenario(faulty_plugin *plugin, const char *path, faulty_config *cfg, dcp_msg *msg)
{
	char *text = NULL;
	size_t len = 0;
	const char *end = NULL;
	cJSON *root, *fail, *torn, *item;
	int rc = read_file(path, &text, &len, msg);

	if (rc != DCP_OK)
		return rc;
	pthread_mutex_lock(&plugin->json_lock);
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	pthread_mutex_unlock(&plugin->json_lock);
	if (root == NULL) {
		size_t pos = end != NULL && end >= text ? (size_t)(end - text) : 0, line = 1, col = 1;
		for (size_t i = 0; i < pos && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		free(text);
		dcp_msgf(msg,
		         "faulty plugin: the scenario file '%s' is not valid JSON (line %zu, column %zu); "
		         "see conf/faults/README.md for the format",
		         path, line, col);
		return DCP_EID;
	}
	free(text);

	if (!cJSON_IsObject(root)) {
		dcp_msgf(msg,
		         "faulty plugin: the scenario file '%s' must hold a JSON object {\"fail\": "
		         "{\"<stage>\": [ranks]}, \"description\": \"...\"}",
		         path);
		rc = DCP_EID;
		goto out;
	}
	cJSON_ArrayForEach(item, root)
	{
		if (strcmp(item->string, "fail") != 0 && strcmp(item->string, "torn") != 0 &&
		    strcmp(item->string, "description") != 0) {
			dcp_msgf(msg,
			         "faulty plugin: the scenario file '%s' has an unknown key \"%s\"; the keys "
			         "are \"fail\", \"torn\" and \"description\"",
			         path, item->string);
			rc = DCP_EID;
			goto out;
		}
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "description");
	if (item != NULL && !cJSON_IsString(item)) {
		dcp_msgf(msg, "faulty plugin: in the scenario file '%s', \"description\" must be a string",
		         path);
		rc = DCP_EID;
		goto out;
	}
	torn = cJSON_GetObjectItemCaseSensitive(root, "torn");
	fail = cJSON_GetObjectItemCaseSensitive(root, "fail");
	if (!cJSON_IsObject(fail) && (fail != NULL || torn == NULL)) {
		dcp_msgf(msg,
		         "faulty plugin: the scenario file '%s' needs a \"fail\" object mapping stages to "
		         "ranks, e.g. {\"fail\": {\"write_data\": [1, 3]}} (or only a \"torn\" object)",
		         path);
		rc = DCP_EID;
		goto out;
	}
	if (torn != NULL) {
		rc = load_torn(torn, path, cfg, msg);
		if (rc != DCP_OK)
			goto out;
	}
	cJSON_ArrayForEach(item, fail)
	{
		int stage = faulty_stage_from_name(item->string);
		char *ranks = NULL;
		char where[DCP_MSG_MAX / 2];

		if (stage < 0) {
			dcp_msgf(msg,
			         "faulty plugin: the scenario file '%s' names an unknown stage \"%s\" in "
			         "\"fail\"; valid stages: " FAULTY_STAGE_LIST,
			         path, item->string);
			rc = DCP_EID;
			goto out;
		}
		rc = json_ranks_to_string(item, path, "fail", item->string, &ranks, msg);
		if (rc != DCP_OK)
			goto out;
		snprintf(where, sizeof(where), "the scenario file '%s', \"fail\".\"%s\"", path, item->string);
		rc = set_stage(cfg, stage, ranks, where, msg);
		free(ranks);
		if (rc != DCP_OK)
			goto out;
	}
	rc = DCP_OK;
out:
	cJSON_Delete(root);
	return rc;
}

int faulty_config_parse(faulty_plugin *plugin, const char *url, faulty_config *cfg, dcp_msg *msg)
{
	dcp_url u = {0};
	const char *faults;
	const char *inner_scheme;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	rc = dcp_url_parse(url, &u, msg);
	if (rc != DCP_OK) {
		faulty_msg_wrap(msg, "faulty plugin: cannot parse the URL '%s'", url ? url : "(null)");
		goto out;
	}
	if (strncmp(u.scheme, FAULTY_URL_PREFIX, strlen(FAULTY_URL_PREFIX)) != 0 ||
	    !((u.scheme[strlen(FAULTY_URL_PREFIX)] >= 'a' && u.scheme[strlen(FAULTY_URL_PREFIX)] <= 'z'))) {
		dcp_msgf(msg,
		         "faulty plugin: the URL '%s' names no inner storage; write "
		         "faulty+<scheme>://<location>?fail.<stage>=<ranks>, e.g. "
		         "faulty+mem://x?fail.write_data=1",
		         url);
		rc = DCP_EID;
		goto out;
	}
	inner_scheme = u.scheme + strlen(FAULTY_URL_PREFIX);

	/* The scenario file first, so that fail.<stage> parameters override it. */
	faults = dcp_url_param_get(&u, FAULTY_PARAM_FAULTS);
	if (faults != NULL) {
		if (faults[0] == '\0') {
			dcp_msgf(msg,
			         "faulty plugin: URL parameter 'faults' is empty in '%s'; give the path of a "
			         "JSON scenario file, e.g. faults=conf/faults/write-async-rank1.json",
			         url);
			rc = DCP_EID;
			goto out;
		}
		rc = load_scenario(plugin, faults, cfg, msg);
		if (rc != DCP_OK)
			goto out;
	}

	for (size_t i = 0; i < u.nparams; i++) {
		const char *key = u.params[i].key;
		const char *val = u.params[i].value;
		char where[DCP_MSG_MAX / 2];
		int stage;

		if (strcmp(key, FAULTY_PARAM_FAULTS) == 0 || !is_faulty_key(key))
			continue;
		if (strcmp(key, FAULTY_PARAM_TORN_WRITE) == 0 || strcmp(key, FAULTY_PARAM_TORN_BYTES) == 0) {
			snprintf(where, sizeof(where), "URL parameter '%s=%s'", key, val);
			if (strcmp(key, FAULTY_PARAM_TORN_WRITE) == 0)
				rc = set_ranks(&cfg->torn_write, val, where, msg);
			else
				rc = parse_torn_bytes(val, &cfg->torn_bytes, where, msg);
			if (rc != DCP_OK)
				goto out;
			continue;
		}
		if (strcmp(key, "torn") == 0 ||
		    strncmp(key, FAULTY_PARAM_TORN_PREFIX, strlen(FAULTY_PARAM_TORN_PREFIX)) == 0) {
			dcp_msgf(msg,
			         "faulty plugin: unknown URL parameter '%s' in '%s'; the torn-write "
			         "parameters "
			         "are " FAULTY_PARAM_TORN_WRITE "=<ranks> and " FAULTY_PARAM_TORN_BYTES
			         "=<N>",
			         key, url);
			rc = DCP_EID;
			goto out;
		}
		stage = strcmp(key, "fail") == 0
		                ? -1
		                : faulty_stage_from_name(key + strlen(FAULTY_PARAM_FAIL_PREFIX));
		if (stage < 0) {
			dcp_msgf(msg,
			         "faulty plugin: unknown URL parameter '%s' in '%s'; use "
			         "fail.<stage>=<ranks> with a stage among: " FAULTY_STAGE_LIST,
			         key, url);
			rc = DCP_EID;
			goto out;
		}
		snprintf(where, sizeof(where), "URL parameter '%s=%s'", key, val);
		rc = set_stage(cfg, stage, val, where, msg);
		if (rc != DCP_OK)
			goto out;
	}

	if (faulty_torn_enabled(cfg)) {
		rc = faulty_torn_check_host(plugin->host, url, msg);
		if (rc != DCP_OK)
			goto out;
	}

	cfg->inner_url = dcp_url_format(&u, inner_scheme, keep_inner_param, NULL);
	if (cfg->inner_url == NULL) {
		dcp_msgf(msg, "faulty plugin: out of memory building the inner URL of '%s'", url);
		rc = DCP_ENOMEM;
		goto out;
	}
	rc = DCP_OK;
out:
	dcp_url_clear(&u);
	return rc;
}

int faulty_inner_plugin(faulty_plugin *plugin, const faulty_config *cfg, dcp_plugin **out, dcp_msg *msg)
{
	int rc;

	*out = NULL;
	rc = plugin->host->plugin_for_url(plugin->host, cfg->inner_url, out, msg);
	if (rc != DCP_OK) {
		faulty_msg_wrap(msg, "faulty plugin: no storage for the inner URL '%s'", cfg->inner_url);
		return rc;
	}
	if (*out == NULL) {
		dcp_msgf(msg, "faulty plugin: the host returned no plugin for the inner URL '%s'",
		         cfg->inner_url);
		return DCP_EPLUGIN;
	}
	return DCP_OK;
}
