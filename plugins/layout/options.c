/*
 * The layout's options (URL query), object names and path rules.
 */
#include <string.h>

#include "layout_internal.h"

static const char *const layout_keys[] = {"threads", "layout", "overwrite", NULL};

static int key_in(const char *const *keys, const char *key)
{
	size_t i;

	if (keys == NULL)
		return 0;
	for (i = 0; keys[i] != NULL; i++)
		if (strcmp(keys[i], key) == 0)
			return 1;
	return 0;
}

/* "threads, layout, overwrite[, plugin keys]" into buf. */
static const char *known_keys(const char *const *plugin_keys, char *buf, size_t len)
{
	size_t i, used = 0;
	const char *const *lists[2] = {layout_keys, plugin_keys};
	int l;

	buf[0] = '\0';
	for (l = 0; l < 2; l++) {
		for (i = 0; lists[l] != NULL && lists[l][i] != NULL; i++) {
			int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", lists[l][i]);
			if (n < 0 || (size_t)n >= len - used)
				return buf;
			used += (size_t)n;
		}
	}
	return buf;
}

int dcp_layout_options_parse(const dcp_url *url, int default_threads, const char *const *plugin_keys,
                             const char *shown, dcp_layout_options *out, dcp_msg *msg)
{
	const char *v;
	size_t i;
	char keys[256];

	if (default_threads < 1)
		default_threads = 1;
	if (default_threads > DCP_LAYOUT_MAX_THREADS)
		default_threads = DCP_LAYOUT_MAX_THREADS;
	out->threads = default_threads;
	out->kind = DCP_LAYOUT_BUCKET;
	out->overwrite = -1;
	if (shown == NULL)
		shown = url->rest;

	for (i = 0; i < url->nparams; i++) {
		const char *k = url->params[i].key;
		if (!key_in(layout_keys, k) && !key_in(plugin_keys, k)) {
			dcp_msgf(msg, "unknown option '%s' in checkpoint id '%s': known options are %s", k,
			         shown, known_keys(plugin_keys, keys, sizeof(keys)));
			return DCP_EID;
		}
	}
	v = dcp_url_param_get(url, "threads");
	if (v != NULL) {
		long long t;
		if (dcp_parse_int(v, 1, DCP_LAYOUT_MAX_THREADS, &t) != DCP_OK) {
			dcp_msgf(
			        msg,
			        "bad option threads='%s' in checkpoint id '%s': give a number of I/O threads "
			        "per rank from 1 to %d",
			        v, shown, DCP_LAYOUT_MAX_THREADS);
			return DCP_EID;
		}
		out->threads = (int)t;
	}
	v = dcp_url_param_get(url, "layout");
	if (v != NULL) {
		if (strcmp(v, "bucket") == 0) {
			out->kind = DCP_LAYOUT_BUCKET;
		} else if (strcmp(v, "item") == 0) {
			out->kind = DCP_LAYOUT_ITEM;
		} else {
			dcp_msgf(msg,
			         "bad option layout='%s' in checkpoint id '%s': use layout=bucket (a few "
			         "objects "
			         "per rank, balanced by bytes) or layout=item (one object per item)",
			         v, shown);
			return DCP_EID;
		}
	}
	v = dcp_url_param_get(url, "overwrite");
	if (v != NULL) {
		int b;
		/* "?overwrite" alone means yes. */
		if (v[0] == '\0')
			b = 1;
		else if (dcp_parse_bool(v, &b) != DCP_OK) {
			dcp_msgf(msg,
			         "bad option overwrite='%s' in checkpoint id '%s': use overwrite=1 or "
			         "overwrite=0",
			         v, shown);
			return DCP_EID;
		}
		out->overwrite = b;
	}
	return DCP_OK;
}

int dcp_layout_path_is_safe(const char *path)
{
	const char *p = path, *comp;

	if (path == NULL || path[0] == '\0' || path[0] == '/')
		return 0;
	for (;;) {
		size_t n;
		comp = p;
		while (*p != '\0' && *p != '/') {
			if (*p == '\\')
				return 0;
			p++;
		}
		n = (size_t)(p - comp);
		if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
			return 0;
		if (*p == '\0')
			return 1;
		p++; /* past '/' */
	}
}

char *layout_name_save_id(const char *id, int *nomem)
{
	size_t i, n;
	char *s;

	*nomem = 0;
	if (id == NULL)
		return NULL;
	n = strlen(id);
	if (n == 0 || n > 200)
		return NULL;
	s = dcp_strdup(id);
	if (s == NULL) {
		*nomem = 1;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			s[i] = '-';
	}
	return s;
}

char *layout_data_name(int rank, uint32_t n, const char *save_id)
{
	return dcp_asprintf("__%d_%u.%s%s", rank, (unsigned)n, save_id, DCP_LAYOUT_DATA_SUFFIX);
}

int layout_is_data_name(const char *name)
{
	size_t n = strlen(name), s = strlen(DCP_LAYOUT_DATA_SUFFIX);

	return n > 2 + s && name[0] == '_' && name[1] == '_' && strchr(name, '/') == NULL &&
	       strcmp(name + n - s, DCP_LAYOUT_DATA_SUFFIX) == 0;
}
