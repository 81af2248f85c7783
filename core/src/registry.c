/*
 * The plugin registry: a table of loaded plugins and their schemes, and the
 * one URL pipeline every save, load and tool goes through.
 *
 * Locking: reg->mu guards the entry table. Plugins are never unloaded before
 * the registry is freed, so a dcp_plugin pointer handed out stays valid for
 * the registry's lifetime.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "error_internal.h"
#include "registry_internal.h"
#include "url.h"

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */
/* ------------------------------------------------------------------------ */

static dcp_registry *registry_alloc(dcp_msg *msg)
{
	dcp_registry *reg = calloc(1, sizeof(*reg));
	if (reg == NULL) {
		dcp_msgf(msg, "out of memory creating a plugin registry");
		return NULL;
	}
	if (pthread_mutex_init(&reg->mu, NULL) != 0) {
		free(reg);
		dcp_msgf(msg, "could not create the registry lock");
		return NULL;
	}
	dcp_host_init(&reg->host);
	if (dcp_registry_configure(reg, msg) != DCP_OK) {
		dcp_registry_free(reg);
		return NULL;
	}
	return reg;
}

int dcp_registry_new(dcp_registry **out, dcp_error **err)
{
	dcp_msg msg = {{0}};
	if (out == NULL) {
		dcp_error_set(err, dcp_error_local(DCP_EINVAL, "registry", "dcp_registry_new: out is NULL"));
		return DCP_EINVAL;
	}
	*out = registry_alloc(&msg);
	if (*out == NULL) {
		dcp_error_set(err, dcp_error_local(DCP_ENOMEM, "registry", "%s", msg.text));
		return DCP_ENOMEM;
	}
	return DCP_OK;
}

void dcp_registry_free(dcp_registry *reg)
{
	if (reg == NULL)
		return;
	/* Destroy plugins in reverse order of loading: a wrapper loaded after its
	 * inner plugin goes first. */
	for (size_t i = reg->nentries; i-- > 0;) {
		dcp_registry_entry *e = &reg->entries[i];
		if (e->plugin != NULL && e->plugin->destroy != NULL)
			e->plugin->destroy(e->plugin);
		if (e->dl != NULL)
			dlclose(e->dl);
		free(e->path);
	}
	free(reg->entries);
	for (size_t i = 0; i < reg->ndirs; i++)
		free(reg->dirs[i]);
	free(reg->dirs);
	for (size_t i = 0; i < reg->nschemes; i++) {
		free(reg->schemes[i].scheme);
		free(reg->schemes[i].plugin);
	}
	free(reg->schemes);
	free(reg->conf_error);
	pthread_mutex_destroy(&reg->mu);
	free(reg);
}

/* The process-wide default registry: the one piece of global state. It lives
 * until the process exits (plugins may have threads; unloading them at exit
 * would race with those). */
static dcp_registry *default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static char default_error[DCP_MSG_MAX];

static void default_init(void)
{
	dcp_msg msg = {{0}};
	default_registry = registry_alloc(&msg);
	if (default_registry == NULL)
		snprintf(default_error, sizeof(default_error), "%s", msg.text);
}

dcp_registry *dcp_registry_or_default(dcp_registry *reg, dcp_msg *msg)
{
	if (reg != NULL)
		return reg;
	pthread_once(&default_once, default_init);
	if (default_registry == NULL)
		dcp_msgf(msg, "the default plugin registry could not be created: %s", default_error);
	return default_registry;
}

/* ------------------------------------------------------------------------ */
/* Registering plugins                                                      */
/* ------------------------------------------------------------------------ */

static const char *slot_missing(const dcp_plugin *p)
{
	if (p->destroy == NULL)
		return "destroy";
	if (p->validate_checkpoint_id == NULL)
		return "validate_checkpoint_id";
	if (p->writer_open == NULL)
		return "writer_open";
	if (p->reader_open == NULL)
		return "reader_open";
	return NULL;
}

static dcp_registry_entry *find_scheme_locked(dcp_registry *reg, const char *scheme)
{
	for (size_t i = 0; i < reg->nentries; i++) {
		const char *const *s = reg->entries[i].plugin->schemes;
		for (; s != NULL && *s != NULL; s++)
			if (strcmp(*s, scheme) == 0)
				return &reg->entries[i];
	}
	return NULL;
}

/*
 * Checks a plugin table and adds it. On failure the plugin is destroyed and
 * dl closed by the caller's cleanup path here, so nothing half-registered
 * remains (the Redis-module rule).
 */
static int register_locked(dcp_registry *reg, dcp_plugin *p, void *dl, const char *path, dcp_msg *msg)
{
	int rc = DCP_EPLUGIN;
	const char *missing;
	if (p == NULL) {
		dcp_msgf(msg, "plugin %s returned no plugin object from its entry point", path);
		goto fail_nodestroy;
	}
	if (p->version < 1 || p->version > DCP_PLUGIN_ABI_VERSION) {
		dcp_msgf(msg,
		         "invalid ABI version %u on plugin %s (this libdcp supports versions 1 to %d): "
		         "rebuild the "
		         "plugin against this libdcp",
		         p->version, path, DCP_PLUGIN_ABI_VERSION);
		rc = DCP_EVERSION;
		goto fail;
	}
	if (p->name == NULL || p->name[0] == '\0') {
		dcp_msgf(msg, "plugin %s has no name", path);
		goto fail;
	}
	if ((missing = slot_missing(p)) != NULL) {
		dcp_msgf(msg, "plugin '%s' (%s) is incomplete: required slot '%s' is NULL", p->name, path,
		         missing);
		goto fail;
	}
	if (p->schemes == NULL || p->schemes[0] == NULL) {
		dcp_msgf(msg, "plugin '%s' (%s) declares no URL scheme", p->name, path);
		goto fail;
	}
	for (const char *const *s = p->schemes; *s != NULL; s++) {
		dcp_registry_entry *other = find_scheme_locked(reg, *s);
		if (other != NULL) {
			dcp_msgf(msg,
			         "scheme '%s' of plugin '%s' (%s) is already registered by plugin '%s' (%s): "
			         "a scheme can have only one plugin",
			         *s, p->name, path, other->plugin->name, other->path);
			goto fail;
		}
	}
	if (reg->nentries == reg->capentries) {
		size_t cap = reg->capentries ? reg->capentries * 2 : 8;
		dcp_registry_entry *e = realloc(reg->entries, cap * sizeof(*e));
		if (e == NULL) {
			rc = DCP_ENOMEM;
			dcp_msgf(msg, "out of memory registering plugin %s", path);
			goto fail;
		}
		reg->entries = e;
		reg->capentries = cap;
	}
	char *pathcopy = dcp_strdup(path);
	if (pathcopy == NULL) {
		rc = DCP_ENOMEM;
		dcp_msgf(msg, "out of memory registering plugin %s", path);
		goto fail;
	}
	reg->entries[reg->nentries].plugin = p;
	reg->entries[reg->nentries].dl = dl;
	reg->entries[reg->nentries].path = pathcopy;
	reg->nentries++;
	return DCP_OK;
fail:
	/* Slots are only appended, so every version >= 1 has destroy where
	 * version 1 has it: a refused plugin can still be freed. */
	if (p->version >= 1 && p->destroy != NULL)
		p->destroy(p);
fail_nodestroy:
	if (dl != NULL)
		dlclose(dl);
	return rc;
}

static int add_entry_locked(dcp_registry *reg, dcp_plugin_entry_fn entry, void *dl, const char *path,
                            dcp_msg *msg)
{
	dcp_plugin *p = NULL;
	dcp_msg pmsg = {{0}};
	int rc = entry(&reg->host, &p, &pmsg);
	if (rc != DCP_OK) {
		dcp_msgf(msg, "plugin %s failed to initialise (%s): %s", path, dcp_strerror(rc),
		         pmsg.text[0] ? pmsg.text : "no detail given");
		if (dl != NULL)
			dlclose(dl);
		return rc < 0 ? rc : DCP_EPLUGIN;
	}
	return register_locked(reg, p, dl, path, msg);
}

static int already_loaded_locked(dcp_registry *reg, const char *path)
{
	for (size_t i = 0; i < reg->nentries; i++)
		if (strcmp(reg->entries[i].path, path) == 0)
			return 1;
	return 0;
}

static int load_so_locked(dcp_registry *reg, const char *path, dcp_msg *msg)
{
	if (already_loaded_locked(reg, path))
		return DCP_OK;
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		const char *e = dlerror();
		dcp_msgf(msg, "plugin %s could not be loaded: %s", path, e ? e : "unknown dlopen error");
		return DCP_EPLUGIN;
	}
	dlerror();
	void *sym = dlsym(dl, DCP_PLUGIN_ENTRY_SYMBOL);
	if (sym == NULL) {
		dcp_msgf(msg, "plugin %s has no entry symbol '%s': is it a libdcp plugin?", path,
		         DCP_PLUGIN_ENTRY_SYMBOL);
		dlclose(dl);
		return DCP_EPLUGIN;
	}
	dcp_plugin_entry_fn entry;
	/* POSIX guarantees data and function pointers convert via dlsym. */
	memcpy(&entry, &sym, sizeof(entry));
	return add_entry_locked(reg, entry, dl, path, msg);
}

int dcp_registry_load(dcp_registry *reg, const char *so_path, dcp_error **err)
{
	dcp_msg msg = {{0}};
	if (reg == NULL || so_path == NULL || so_path[0] == '\0') {
		dcp_error_set(err,
		              dcp_error_local(DCP_EINVAL, "registry",
		                              "dcp_registry_load: registry and plugin path are required"));
		return DCP_EINVAL;
	}
	pthread_mutex_lock(&reg->mu);
	int rc = load_so_locked(reg, so_path, &msg);
	pthread_mutex_unlock(&reg->mu);
	if (rc != DCP_OK)
		dcp_error_set(err, dcp_error_local(rc, "registry", "%s", msg.text));
	return rc;
}

int dcp_registry_add(dcp_registry *reg, dcp_plugin_entry_fn entry, dcp_error **err)
{
	dcp_msg msg = {{0}};
	if (reg == NULL || entry == NULL) {
		dcp_error_set(err,
		              dcp_error_local(DCP_EINVAL, "registry",
		                              "dcp_registry_add: registry and entry function are required"));
		return DCP_EINVAL;
	}
	pthread_mutex_lock(&reg->mu);
	int rc = add_entry_locked(reg, entry, NULL, "(built in)", &msg);
	pthread_mutex_unlock(&reg->mu);
	if (rc != DCP_OK)
		dcp_error_set(err, dcp_error_local(rc, "registry", "%s", msg.text));
	return rc;
}

/* True for "dcp-<name>.so". */
static int is_plugin_file(const char *name)
{
	size_t n = strlen(name);
	return n > 7 && strncmp(name, "dcp-", 4) == 0 && strcmp(name + n - 3, ".so") == 0;
}

/* 1 if a file of this basename was loaded already (from an earlier directory
 * of the search path, which wins). */
static int basename_loaded_locked(dcp_registry *reg, const char *base)
{
	for (size_t i = 0; i < reg->nentries; i++) {
		const char *slash = strrchr(reg->entries[i].path, '/');
		const char *b = slash ? slash + 1 : reg->entries[i].path;
		if (strcmp(b, base) == 0)
			return 1;
	}
	return 0;
}

/* Loads every plugin file on the search path. A file that fails is skipped
 * and its reason appended to msg; the first failure's code is returned. */
static int load_all_locked(dcp_registry *reg, dcp_msg *msg)
{
	int first = DCP_OK;
	for (size_t d = 0; d < reg->ndirs; d++) {
		DIR *dir = opendir(reg->dirs[d]);
		if (dir == NULL)
			continue;
		struct dirent *de;
		while ((de = readdir(dir)) != NULL) {
			if (!is_plugin_file(de->d_name) || basename_loaded_locked(reg, de->d_name))
				continue;
			char *path = dcp_asprintf("%s/%s", reg->dirs[d], de->d_name);
			if (path == NULL) {
				closedir(dir);
				dcp_msgf(msg, "out of memory scanning %s", reg->dirs[d]);
				return DCP_ENOMEM;
			}
			dcp_msg one = {{0}};
			int rc = load_so_locked(reg, path, &one);
			if (rc != DCP_OK) {
				/* Report every refused file, joined with "; ". */
				size_t used = strlen(msg->text);
				if (first == DCP_OK)
					used = 0;
				snprintf(msg->text + used, sizeof(msg->text) - used, "%s%s", used ? "; " : "",
				         one.text);
				if (first == DCP_OK)
					first = rc;
			}
			free(path);
		}
		closedir(dir);
	}
	return first;
}

int dcp_registry_load_all(dcp_registry *reg, dcp_error **err)
{
	dcp_msg msg = {{0}};
	reg = dcp_registry_or_default(reg, &msg);
	if (reg == NULL) {
		dcp_error_set(err, dcp_error_local(DCP_ENOMEM, "registry", "%s", msg.text));
		return DCP_ENOMEM;
	}
	pthread_mutex_lock(&reg->mu);
	int rc = load_all_locked(reg, &msg);
	pthread_mutex_unlock(&reg->mu);
	if (rc != DCP_OK)
		dcp_error_set(err, dcp_error_local(rc, "registry", "%s", msg.text));
	return rc;
}

size_t dcp_registry_count(dcp_registry *reg)
{
	reg = dcp_registry_or_default(reg, NULL);
	if (reg == NULL)
		return 0;
	pthread_mutex_lock(&reg->mu);
	size_t n = reg->nentries;
	pthread_mutex_unlock(&reg->mu);
	return n;
}

int dcp_registry_info(dcp_registry *reg, size_t i, dcp_plugin_info *out)
{
	reg = dcp_registry_or_default(reg, NULL);
	if (reg == NULL || out == NULL)
		return DCP_EINVAL;
	pthread_mutex_lock(&reg->mu);
	int rc = DCP_EINVAL;
	if (i < reg->nentries) {
		const dcp_registry_entry *e = &reg->entries[i];
		out->name = e->plugin->name;
		out->schemes = e->plugin->schemes;
		out->abi_version = e->plugin->version;
		out->path = e->path;
		out->capabilities = e->plugin->capabilities;
		rc = DCP_OK;
	}
	pthread_mutex_unlock(&reg->mu);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* The URL pipeline                                                         */
/* ------------------------------------------------------------------------ */

/* id with every '%' written as "%25" (malloc'd), or NULL. */
static char *escape_percent(const char *id)
{
	size_t n = 0;
	for (const char *p = id; *p; p++)
		n += *p == '%' ? 3 : 1;
	char *e = malloc(n + 1), *q = e;
	if (e == NULL)
		return NULL;
	for (const char *p = id; *p; p++) {
		if (*p == '%') {
			memcpy(q, "%25", 3);
			q += 3;
		} else {
			*q++ = *p;
		}
	}
	*q = '\0';
	return e;
}

int dcp_url_canonical(const char *id, char **out, dcp_msg *msg)
{
	*out = NULL;
	if (id == NULL || id[0] == '\0') {
		dcp_msgf(msg,
		         "checkpoint id is empty: give a URL such as file:///path/to/ckpt or mem://name");
		return DCP_EID;
	}
	const char *sep = strstr(id, "://");
	if (sep == NULL) {
		/* A bare path means file://, made absolute now so that every rank
		 * and the plugin agree on where it is. '%' is escaped (file URLs
		 * are percent-decoded); a '?' still starts the options, as in
		 * "./ckpt?threads=8". */
		char *path = escape_percent(id);
		if (path == NULL) {
			dcp_msgf(msg, "out of memory");
			return DCP_ENOMEM;
		}
		if (path[0] == '/') {
			*out = dcp_asprintf("file://%s", path);
		} else {
			char cwd[PATH_MAX];
			if (getcwd(cwd, sizeof(cwd)) == NULL) {
				dcp_msgf(msg,
				         "checkpoint id '%s' is a relative path but the current directory is "
				         "unknown (%s): give an absolute path",
				         id, strerror(errno));
				free(path);
				return DCP_EID;
			}
			const char *rel = path;
			while (rel[0] == '.' && rel[1] == '/')
				rel += 2;
			if (strcmp(rel, ".") == 0)
				rel = "";
			*out = strcmp(cwd, "/") == 0
			               ? dcp_asprintf("file:///%s", rel)
			               : dcp_asprintf("file://%s%s%s", cwd, rel[0] ? "/" : "", rel);
		}
		free(path);
	} else if (sep == id) {
		dcp_msgf(msg, "checkpoint id '%s' has no scheme before '://' (e.g. file://, mem://, s3://)",
		         id);
		return DCP_EID;
	} else if ((size_t)(sep - id) == 4 && strncasecmp(id, "file", 4) == 0 &&
	           (strncmp(sep + 3, "./", 2) == 0 || strncmp(sep + 3, "../", 3) == 0 ||
	            strcmp(sep + 3, ".") == 0)) {
		/* file://./relative: the same as the bare relative path. */
		return dcp_url_canonical(sep + 3, out, msg);
	} else {
		for (const char *p = id; p < sep; p++) {
			char c = *p;
			int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			         (p > id && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
			if (!ok) {
				dcp_msgf(msg,
				         "checkpoint id '%s' has an invalid scheme '%.*s': a scheme is a "
				         "letter "
				         "followed by letters, digits, '+', '-' or '.'",
				         id, (int)(sep - id), id);
				return DCP_EID;
			}
		}
		*out = dcp_strdup(id);
	}
	if (*out == NULL) {
		dcp_msgf(msg, "out of memory");
		return DCP_ENOMEM;
	}
	return DCP_OK;
}

static const char *mapped_plugin_locked(dcp_registry *reg, const char *scheme)
{
	for (size_t i = 0; i < reg->nschemes; i++)
		if (strcmp(reg->schemes[i].scheme, scheme) == 0)
			return reg->schemes[i].plugin;
	return NULL;
}

/* Tries dcp-<name>.so in each directory of the search path, first hit wins. */
static int load_named_locked(dcp_registry *reg, const char *name, dcp_msg *msg)
{
	for (size_t d = 0; d < reg->ndirs; d++) {
		char *path = dcp_asprintf("%s/dcp-%s.so", reg->dirs[d], name);
		if (path == NULL)
			return DCP_ENOMEM;
		if (access(path, F_OK) == 0) {
			int rc = load_so_locked(reg, path, msg);
			free(path);
			return rc;
		}
		free(path);
	}
	return DCP_ENOTFOUND;
}

static void describe_search(dcp_registry *reg, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t d = 0; d < reg->ndirs && used + 1 < len; d++) {
		int n = snprintf(buf + used, len - used, "%s%s", d ? ", " : "", reg->dirs[d]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	if (reg->ndirs == 0)
		snprintf(buf, len, "(no directories)");
}

/* Finds the plugin for scheme, loading it if needed. */
static int plugin_for_scheme_locked(dcp_registry *reg, const char *scheme, dcp_plugin **out, dcp_msg *msg)
{
	dcp_registry_entry *e = find_scheme_locked(reg, scheme);
	if (e != NULL) {
		*out = e->plugin;
		return DCP_OK;
	}
	const char *mapped = mapped_plugin_locked(reg, scheme);
	dcp_msg loadmsg = {{0}};
	int rc = DCP_ENOTFOUND;
	if (mapped != NULL)
		rc = load_named_locked(reg, mapped, &loadmsg);
	if (rc == DCP_ENOTFOUND)
		rc = load_named_locked(reg, scheme, &loadmsg);
	if (rc != DCP_OK && rc != DCP_ENOTFOUND) {
		dcp_msgf(msg, "the plugin for scheme '%s' could not be loaded: %s", scheme, loadmsg.text);
		return rc;
	}
	e = find_scheme_locked(reg, scheme);
	if (e == NULL) {
		/* Last resort: a plugin file whose name differs from its scheme. */
		dcp_msg allmsg = {{0}};
		(void)load_all_locked(reg, &allmsg);
		e = find_scheme_locked(reg, scheme);
	}
	if (e != NULL) {
		*out = e->plugin;
		return DCP_OK;
	}
	char dirs[600];
	describe_search(reg, dirs, sizeof(dirs));
	if (mapped != NULL)
		dcp_msgf(msg,
		         "no plugin for scheme '%s': it is served by plugin '%s' (dcp-%s.so), which was not "
		         "found in: %s; build or install it, or set DCP_PLUGIN_PATH%s%s",
		         scheme, mapped, mapped, dirs, reg->conf_error ? "; note: " : "",
		         reg->conf_error ? reg->conf_error : "");
	else
		dcp_msgf(msg,
		         "no plugin for scheme '%s' (searched: %s); known schemes: file, mem, s3, "
		         "faulty+<scheme>%s%s",
		         scheme, dirs, reg->conf_error ? "; note: " : "",
		         reg->conf_error ? reg->conf_error : "");
	return DCP_ENOPLUGIN;
}

int dcp_registry_resolve(dcp_registry *reg, const char *url, int validate, int for_write, dcp_plugin **out,
                         char **canon, dcp_msg *msg)
{
	*out = NULL;
	if (canon)
		*canon = NULL;
	reg = dcp_registry_or_default(reg, msg);
	if (reg == NULL)
		return DCP_ENOMEM;
	char *c = NULL;
	int rc = dcp_url_canonical(url, &c, msg);
	if (rc != DCP_OK)
		return rc;
	const char *sep = strstr(c, "://");
	size_t slen = (size_t)(sep - c);
	char *scheme = malloc(slen + 1);
	if (scheme == NULL) {
		free(c);
		dcp_msgf(msg, "out of memory");
		return DCP_ENOMEM;
	}
	for (size_t i = 0; i < slen; i++) {
		char ch = c[i];
		scheme[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
	}
	scheme[slen] = '\0';
	pthread_mutex_lock(&reg->mu);
	dcp_plugin *p = NULL;
	dcp_registry_entry *exact = find_scheme_locked(reg, scheme);
	char *plus = strchr(scheme, '+');
	if (exact != NULL) {
		p = exact->plugin;
		rc = DCP_OK;
	} else if (plus != NULL && plus != scheme) {
		/* "wrapper+inner": the wrapper's plugin serves every inner scheme
		 * (faulty+file, faulty+s3, ...) and resolves the inner one itself. */
		*plus = '\0';
		rc = plugin_for_scheme_locked(reg, scheme, &p, msg);
		*plus = '+';
	} else {
		rc = plugin_for_scheme_locked(reg, scheme, &p, msg);
	}
	pthread_mutex_unlock(&reg->mu);
	free(scheme);
	if (rc != DCP_OK) {
		free(c);
		return rc;
	}
	if (validate) {
		dcp_msg vmsg = {{0}};
		rc = p->validate_checkpoint_id(p, c, for_write, &vmsg);
		if (rc != DCP_OK) {
			dcp_msgf(msg, "%s",
			         vmsg.text[0] ? vmsg.text : "the plugin rejected the checkpoint id");
			if (rc > 0)
				rc = DCP_EID;
			free(c);
			return rc;
		}
	}
	*out = p;
	if (canon)
		*canon = c;
	else
		free(c);
	return DCP_OK;
}

int dcp_registry_find(dcp_registry *reg, const char *url, dcp_plugin **out, dcp_error **err)
{
	dcp_msg msg = {{0}};
	if (out == NULL) {
		dcp_error_set(err, dcp_error_local(DCP_EINVAL, "registry", "dcp_registry_find: out is NULL"));
		return DCP_EINVAL;
	}
	int rc = dcp_registry_resolve(reg, url, 0, 0, out, NULL, &msg);
	if (rc != DCP_OK)
		dcp_error_set(err, dcp_error_local(rc, "registry", "%s", msg.text));
	return rc;
}

int dcp_validate_checkpoint_id(dcp_registry *reg, const char *url, int for_write, dcp_error **err)
{
	dcp_msg msg = {{0}};
	dcp_plugin *p = NULL;
	int rc = dcp_registry_resolve(reg, url, 1, for_write, &p, NULL, &msg);
	if (rc != DCP_OK)
		dcp_error_set(err, dcp_error_local(rc, "validate_checkpoint_id", "%s", msg.text));
	return rc;
}

int dcp_remove(const char *url, dcp_registry *reg, dcp_error **err)
{
	dcp_msg msg = {{0}};
	dcp_plugin *p = NULL;
	char *canon = NULL;
	int rc = dcp_registry_resolve(reg, url, 1, 0, &p, &canon, &msg);
	if (rc != DCP_OK) {
		dcp_error_set(err, dcp_error_local(rc, "validate_checkpoint_id", "%s", msg.text));
		return rc;
	}
	if (p->remove == NULL) {
		dcp_error_set(err,
		              dcp_error_local(DCP_EUNSUPPORTED, "remove",
		                              "plugin '%s' cannot remove checkpoints (%s)", p->name, canon));
		free(canon);
		return DCP_EUNSUPPORTED;
	}
	rc = p->remove(p, canon, &msg);
	if (rc > 0) /* statuses are negative: a positive one is a broken plugin */
		rc = DCP_EPLUGIN;
	if (rc != DCP_OK)
		dcp_error_set(err, dcp_error_local(rc, "remove", "%s", msg.text));
	free(canon);
	return rc;
}

int dcp_gc(const char *url, const dcp_gc_options *opts, dcp_registry *reg, dcp_gc_report *report,
           dcp_error **err)
{
	static const dcp_gc_options defaults = DCP_GC_OPTIONS_INIT;
	dcp_gc_report local;
	dcp_msg msg = {{0}};
	dcp_plugin *p = NULL;
	char *canon = NULL;
	int rc;

	if (report == NULL)
		report = &local;
	memset(report, 0, sizeof(*report));
	if (opts == NULL)
		opts = &defaults;
	if (opts->version < 1 || !(opts->min_age_s >= 0)) {
		dcp_error_set(err,
		              dcp_error_local(DCP_EINVAL, "gc",
		                              "gc options for %s: version %u, min_age_s %g: start from "
		                              "DCP_GC_OPTIONS_INIT and give an age of 0 or more seconds",
		                              url != NULL ? url : "(null)", opts->version, opts->min_age_s));
		return DCP_EINVAL;
	}
	/* Validated as for a save: gc writes (removes), and a folder that a
	 * killed first save left holds no checkpoint yet. */
	rc = dcp_registry_resolve(reg, url, 1, 1, &p, &canon, &msg);
	if (rc != DCP_OK) {
		dcp_error_set(err, dcp_error_local(rc, "validate_checkpoint_id", "%s", msg.text));
		return rc;
	}
	if (p->version < 2 || p->gc == NULL) {
		dcp_error_set(err, dcp_error_local(DCP_EUNSUPPORTED, "gc",
		                                   "plugin '%s' cannot collect what killed saves left (%s)",
		                                   p->name, canon));
		free(canon);
		return DCP_EUNSUPPORTED;
	}
	rc = p->gc(p, canon, opts, report, &msg);
	if (rc > 0)
		rc = DCP_EPLUGIN;
	if (rc != DCP_OK)
		dcp_error_set(err, dcp_error_local(rc, "gc", "%s", msg.text));
	free(canon);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Ops tables returned at open time                                         */
/* ------------------------------------------------------------------------ */

int dcp_check_writer_ops(const dcp_plugin *p, const dcp_writer_ops *ops, dcp_msg *msg)
{
	const char *missing = NULL;
	if (ops == NULL) {
		dcp_msgf(msg, "plugin '%s' returned a writer without an ops table", p->name);
		return DCP_EPLUGIN;
	}
	if (ops->version != DCP_WRITER_OPS_VERSION) {
		dcp_msgf(msg, "invalid version %u on writer ops of plugin '%s' (this libdcp supports %d)",
		         ops->version, p->name, DCP_WRITER_OPS_VERSION);
		return DCP_EVERSION;
	}
	if (ops->set_up_storage_writer == NULL)
		missing = "set_up_storage_writer";
	else if (ops->write_data == NULL)
		missing = "write_data";
	else if (ops->finish == NULL)
		missing = "finish";
	else if (ops->close == NULL)
		missing = "close";
	if (missing != NULL) {
		dcp_msgf(msg, "plugin '%s' is incomplete: required writer slot '%s' is NULL", p->name,
		         missing);
		return DCP_EPLUGIN;
	}
	return DCP_OK;
}

int dcp_check_reader_ops(const dcp_plugin *p, const dcp_reader_ops *ops, dcp_msg *msg)
{
	const char *missing = NULL;
	if (ops == NULL) {
		dcp_msgf(msg, "plugin '%s' returned a reader without an ops table", p->name);
		return DCP_EPLUGIN;
	}
	if (ops->version != DCP_READER_OPS_VERSION) {
		dcp_msgf(msg, "invalid version %u on reader ops of plugin '%s' (this libdcp supports %d)",
		         ops->version, p->name, DCP_READER_OPS_VERSION);
		return DCP_EVERSION;
	}
	if (ops->read_metadata == NULL)
		missing = "read_metadata";
	else if (ops->set_up_storage_reader == NULL)
		missing = "set_up_storage_reader";
	else if (ops->read_data == NULL)
		missing = "read_data";
	else if (ops->close == NULL)
		missing = "close";
	if (missing != NULL) {
		dcp_msgf(msg, "plugin '%s' is incomplete: required reader slot '%s' is NULL", p->name,
		         missing);
		return DCP_EPLUGIN;
	}
	return DCP_OK;
}
