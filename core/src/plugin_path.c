/*
 * Where the registry looks for plugins, and which plugin serves which scheme.
 *
 * Search path, in order: $DCP_PLUGIN_PATH (':'-separated), "plugin_path" of
 * the conf file ($DCP_CONF, else the installed <sysconfdir>/dcp/dcp.json),
 * <dir of libdcp>/dcp/plugins (the build tree and the install tree both put
 * plugins there), <dir of the program>/../lib/dcp/plugins (a program linked
 * statically, run from the build tree), and the install directory.
 */
#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry_internal.h"
#include "url.h"

#ifndef DCP_PLUGIN_INSTALL_DIR
#define DCP_PLUGIN_INSTALL_DIR "/usr/local/lib/dcp/plugins"
#endif
#ifndef DCP_SYSCONF_FILE
#define DCP_SYSCONF_FILE "/usr/local/etc/dcp/dcp.json"
#endif

/* Schemes whose plugin is known even before it is loaded. */
static const struct {
	const char *scheme;
	const char *plugin;
} builtin_schemes[] = {
        {"file", "fs"},
        {"mem", "mem"},
        {"faulty", "faulty"},
        {"s3", "s3"},
};

static int add_dir(dcp_registry *reg, const char *dir, size_t len)
{
	if (len == 0)
		return DCP_OK;
	for (size_t i = 0; i < reg->ndirs; i++)
		if (strlen(reg->dirs[i]) == len && memcmp(reg->dirs[i], dir, len) == 0)
			return DCP_OK;
	char **d = realloc(reg->dirs, (reg->ndirs + 1) * sizeof(*d));
	if (d == NULL)
		return DCP_ENOMEM;
	reg->dirs = d;
	char *s = malloc(len + 1);
	if (s == NULL)
		return DCP_ENOMEM;
	memcpy(s, dir, len);
	s[len] = '\0';
	reg->dirs[reg->ndirs++] = s;
	return DCP_OK;
}

static int add_dir_list(dcp_registry *reg, const char *list)
{
	const char *p = list;
	while (*p) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		int rc = add_dir(reg, p, n);
		if (rc != DCP_OK)
			return rc;
		p += n;
		if (*p == ':')
			p++;
	}
	return DCP_OK;
}

static int add_scheme(dcp_registry *reg, const char *scheme, const char *plugin)
{
	for (size_t i = 0; i < reg->nschemes; i++) {
		if (strcmp(reg->schemes[i].scheme, scheme) == 0) {
			char *p = dcp_strdup(plugin);
			if (p == NULL)
				return DCP_ENOMEM;
			free(reg->schemes[i].plugin);
			reg->schemes[i].plugin = p;
			return DCP_OK;
		}
	}
	dcp_scheme_map *m = realloc(reg->schemes, (reg->nschemes + 1) * sizeof(*m));
	if (m == NULL)
		return DCP_ENOMEM;
	reg->schemes = m;
	m[reg->nschemes].scheme = dcp_strdup(scheme);
	m[reg->nschemes].plugin = dcp_strdup(plugin);
	if (m[reg->nschemes].scheme == NULL || m[reg->nschemes].plugin == NULL) {
		free(m[reg->nschemes].scheme);
		free(m[reg->nschemes].plugin);
		return DCP_ENOMEM;
	}
	reg->nschemes++;
	return DCP_OK;
}

static char *read_small_file(const char *path, int *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		*err = errno;
		return NULL;
	}
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
		if (len + 1 == cap) {
			if (cap >= (1u << 20)) { /* a conf file is small */
				free(buf);
				buf = NULL;
				*err = EFBIG;
				break;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				*err = ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (buf == NULL && *err == 0)
		*err = ENOMEM;
	if (buf != NULL)
		buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Takes ownership of text (NULL if it could not be formatted). */
static void set_conf_error(dcp_registry *reg, char *text)
{
	free(reg->conf_error);
	reg->conf_error = text;
}

/* Reads the conf file; a missing default conf file is normal. A conf file
 * that is named by $DCP_CONF but unreadable, or malformed, is remembered and
 * reported with the next "no plugin" error rather than failing every call. */
static int read_conf(dcp_registry *reg)
{
	const char *env = getenv("DCP_CONF");
	const char *path = (env && *env) ? env : DCP_SYSCONF_FILE;
	int err = 0;
	char *text = read_small_file(path, &err);
	if (text == NULL) {
		if (err == ENOMEM)
			return DCP_ENOMEM;
		if (env && *env)
			set_conf_error(reg,
			               dcp_asprintf("conf file %s (from $DCP_CONF) could not be read: %s",
			                            path, strerror(err)));
		return DCP_OK;
	}
	cJSON *root = cJSON_Parse(text);
	free(text);
	if (root == NULL || !cJSON_IsObject(root)) {
		set_conf_error(reg,
		               dcp_asprintf("conf file %s is not a JSON object: fix or remove it", path));
		cJSON_Delete(root);
		return DCP_OK;
	}
	int rc = DCP_OK;
	const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "plugin_path");
	if (cJSON_IsString(pp)) {
		rc = add_dir_list(reg, pp->valuestring);
	} else if (cJSON_IsArray(pp)) {
		const cJSON *d;
		cJSON_ArrayForEach(d, pp)
		{
			if (rc == DCP_OK && cJSON_IsString(d))
				rc = add_dir(reg, d->valuestring, strlen(d->valuestring));
		}
	} else if (pp != NULL) {
		set_conf_error(reg, dcp_asprintf("conf file %s: \"plugin_path\" must be a string or an array "
		                                 "of strings",
		                                 path));
	}
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(root, "schemes");
	if (rc == DCP_OK && cJSON_IsObject(sc)) {
		const cJSON *m;
		cJSON_ArrayForEach(m, sc)
		{
			if (rc == DCP_OK && cJSON_IsString(m) && m->string != NULL)
				rc = add_scheme(reg, m->string, m->valuestring);
		}
	}
	cJSON_Delete(root);
	return rc;
}

/* <dir of the object holding addr>, or NULL. */
static char *dir_of_address(const void *addr)
{
	Dl_info info;
	if (dladdr(addr, &info) == 0 || info.dli_fname == NULL || info.dli_fname[0] == '\0')
		return NULL;
	char *real = realpath(info.dli_fname, NULL);
	if (real == NULL)
		return NULL;
	char *slash = strrchr(real, '/');
	if (slash == NULL) {
		free(real);
		return NULL;
	}
	*slash = '\0';
	return real;
}

static int add_relative_dir(dcp_registry *reg, const char *base, const char *rel)
{
	char *d = dcp_asprintf("%s/%s", base, rel);
	if (d == NULL)
		return DCP_ENOMEM;
	char *real = realpath(d, NULL);
	int rc = DCP_OK;
	if (real != NULL) {
		rc = add_dir(reg, real, strlen(real));
		free(real);
	}
	free(d);
	return rc;
}

int dcp_registry_configure(dcp_registry *reg, dcp_msg *msg)
{
	int rc = DCP_OK;
	for (size_t i = 0; rc == DCP_OK && i < sizeof(builtin_schemes) / sizeof(builtin_schemes[0]); i++)
		rc = add_scheme(reg, builtin_schemes[i].scheme, builtin_schemes[i].plugin);
	const char *env = getenv("DCP_PLUGIN_PATH");
	if (rc == DCP_OK && env != NULL)
		rc = add_dir_list(reg, env);
	if (rc == DCP_OK)
		rc = read_conf(reg);
	if (rc == DCP_OK) {
		char *libdir = dir_of_address((const void *)&dcp_registry_configure);
		if (libdir != NULL) {
			rc = add_relative_dir(reg, libdir, "dcp/plugins");
			if (rc == DCP_OK)
				rc = add_relative_dir(reg, libdir, "../lib/dcp/plugins");
			free(libdir);
		}
	}
	if (rc == DCP_OK)
		rc = add_dir(reg, DCP_PLUGIN_INSTALL_DIR, strlen(DCP_PLUGIN_INSTALL_DIR));
	if (rc != DCP_OK)
		dcp_msgf(msg, "out of memory setting up the plugin search path");
	return rc;
}
