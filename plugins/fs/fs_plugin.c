/*
 * dcp-fs.so: checkpoints in a directory of a local file system, over the
 * POSIX backend with plugins/layout's layout and commit.
 *
 * Ids: file:///abs/dir or file://localhost/abs/dir (the core turns bare
 * paths, relative ones included, into absolute file:// URLs first). The path
 * is percent-decoded (RFC 8089) and normalized lexically ('//', '.' and '..'
 * components); that canonical path is what every message shows.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "posix/posix_backend.h"

#define FS_DEFAULT_THREADS 4

typedef struct fs_plugin {
	dcp_plugin base; /* first: the registry sees this */
	const dcp_host *host;
} fs_plugin;

static const char *const fs_schemes[] = {"file", NULL};

static const char *errtext(int e, char *buf, size_t len)
{
	return strerror_r(e, buf, len); /* GNU: the project builds with _GNU_SOURCE */
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s into a malloc'd string; DCP_EID for a bad escape or a
 * NUL byte. */
static int decode_path(const char *s, const char *url, char **out, dcp_msg *msg)
{
	size_t n = strlen(s), i, j = 0;
	char *d = malloc(n + 1);

	*out = NULL;
	if (d == NULL) {
		dcp_msgf(msg, "out of memory parsing checkpoint id '%s'", url);
		return DCP_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] != '%') {
			d[j++] = s[i];
			continue;
		}
		hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
		lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			free(d);
			dcp_msgf(msg,
			         "the path of checkpoint id '%s' has a '%%' that is not followed by two hex "
			         "digits: write '%%25' for a literal '%%'",
			         url);
			return DCP_EID;
		}
		if (hi == 0 && lo == 0) {
			free(d);
			dcp_msgf(msg, "the path of checkpoint id '%s' contains a NUL byte ('%%00')", url);
			return DCP_EID;
		}
		d[j++] = (char)(hi * 16 + lo);
		i += 2;
	}
	d[j] = '\0';
	*out = d;
	return DCP_OK;
}

/* Lexical normalization of an absolute path: no '//', '.' or '..'
 * components, no trailing '/'. malloc'd; NULL if out of memory. */
static char *normalize(const char *p)
{
	size_t n = strlen(p), len = 0;
	char *out = malloc(n + 2);
	const char *c = p;

	if (out == NULL)
		return NULL;
	while (*c != '\0') {
		const char *start;
		size_t k;
		while (*c == '/')
			c++;
		start = c;
		while (*c != '\0' && *c != '/')
			c++;
		k = (size_t)(c - start);
		if (k == 0 || (k == 1 && start[0] == '.'))
			continue;
		if (k == 2 && start[0] == '.' && start[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--; /* the '/' before the dropped component */
			continue;
		}
		out[len++] = '/';
		memcpy(out + len, start, k);
		len += k;
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return out;
}

/* The parent directory of a canonical path ("/" for "/x"); malloc'd. */
static char *parent_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, path, n);
		d[n] = '\0';
	}
	return d;
}

/* Parses a file:// id into its canonical path (malloc'd) and options. */
static int fs_parse(const char *url, char **path, dcp_layout_options *opt, dcp_msg *msg)
{
	dcp_url u;
	const char *p = NULL;
	char *decoded = NULL;
	int rc;

	*path = NULL;
	rc = dcp_url_parse(url, &u, msg);
	if (rc == DCP_OK && strcmp(u.scheme, "file") != 0) {
		dcp_msgf(msg, "checkpoint id '%s' is not a file:// id", url);
		rc = DCP_EID;
	}
	if (rc == DCP_OK) {
		const char *rest = u.rest;
		if (rest[0] == '/') {
			p = rest;
		} else if (rest[0] != '\0') {
			const char *slash = strchr(rest, '/');
			size_t hlen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
			if (hlen == 9 && strncasecmp(rest, "localhost", 9) == 0) {
				p = rest + hlen;
			} else {
				dcp_msgf(msg,
				         "checkpoint id '%s' names the host '%.*s': a file:// id must be "
				         "local, "
				         "written file:///abs/dir or file://localhost/abs/dir",
				         url, (int)hlen, rest);
				rc = DCP_EID;
			}
		} else {
			p = rest;
		}
	}
	if (rc == DCP_OK && p[0] == '\0') {
		dcp_msgf(msg, "checkpoint id '%s' has an empty path: write file:///abs/dir", url);
		rc = DCP_EID;
	}
	if (rc == DCP_OK)
		rc = decode_path(p, url, &decoded, msg);
	if (rc == DCP_OK) {
		*path = normalize(decoded);
		if (*path == NULL) {
			dcp_msgf(msg, "out of memory parsing checkpoint id '%s'", url);
			rc = DCP_ENOMEM;
		} else if (strcmp(*path, "/") == 0) {
			dcp_msgf(msg,
			         "checkpoint id '%s' names the root directory '/': choose a directory below "
			         "it",
			         url);
			rc = DCP_EID;
		} else if (strlen(*path) + sizeof("/.metadata.tmp-4294967295-4294967295") >= PATH_MAX) {
			dcp_msgf(msg,
			         "the path of checkpoint id '%s' is too long (%zu bytes; at most about %d)",
			         url, strlen(*path), PATH_MAX - 40);
			rc = DCP_EID;
		}
	}
	if (rc == DCP_OK)
		rc = dcp_layout_options_parse(&u, FS_DEFAULT_THREADS, NULL, url, opt, msg);
	if (rc != DCP_OK) {
		free(*path);
		*path = NULL;
	}
	free(decoded);
	dcp_url_clear(&u);
	return rc;
}

/* The writer's checks on a canonical path: an existing directory that can be
 * written, or a missing one whose parent is a writable directory. */
static int check_for_write(const char *path, dcp_msg *msg)
{
	struct stat st;
	char eb[128], *parent;
	int rc = DCP_OK;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			dcp_msgf(msg, "%s exists and is not a directory: a checkpoint is a directory", path);
			return DCP_EID;
		}
		if (access(path, W_OK | X_OK) != 0) {
			dcp_msgf(msg, "checkpoint directory %s is not writable: %s", path,
			         errtext(errno, eb, sizeof(eb)));
			return DCP_EID;
		}
		return DCP_OK;
	}
	if (errno != ENOENT) {
		dcp_msgf(msg, "cannot use %s as a checkpoint directory: %s", path,
		         errtext(errno, eb, sizeof(eb)));
		return DCP_EID;
	}
	parent = parent_of(path);
	if (parent == NULL) {
		dcp_msgf(msg, "out of memory checking %s", path);
		return DCP_ENOMEM;
	}
	if (stat(parent, &st) != 0) {
		if (errno == ENOENT)
			dcp_msgf(msg,
			         "the parent directory %s of checkpoint directory %s does not exist: create "
			         "it "
			         "first",
			         parent, path);
		else
			dcp_msgf(msg, "cannot use the parent directory %s of %s: %s", parent, path,
			         errtext(errno, eb, sizeof(eb)));
		rc = DCP_EID;
	} else if (!S_ISDIR(st.st_mode)) {
		dcp_msgf(msg, "the parent %s of checkpoint directory %s is not a directory", parent, path);
		rc = DCP_EID;
	} else if (access(parent, W_OK | X_OK) != 0) {
		dcp_msgf(msg, "cannot create checkpoint directory %s: its parent %s is not writable: %s",
		         path, parent, errtext(errno, eb, sizeof(eb)));
		rc = DCP_EID;
	}
	free(parent);
	return rc;
}

/* The reader's checks: a directory holding .metadata. */
static int check_for_read(const char *path, dcp_msg *msg)
{
	struct stat st;
	char eb[128], *md;
	int rc = DCP_OK;

	if (stat(path, &st) != 0) {
		if (errno == ENOENT) {
			dcp_msgf(msg, "no checkpoint at %s", path);
			return DCP_ENOTFOUND;
		}
		dcp_msgf(msg, "cannot read checkpoint directory %s: %s", path,
		         errtext(errno, eb, sizeof(eb)));
		return DCP_EID;
	}
	if (!S_ISDIR(st.st_mode)) {
		dcp_msgf(msg, "%s exists and is not a directory: a checkpoint is a directory", path);
		return DCP_EID;
	}
	md = dcp_asprintf("%s/%s", path, DCP_LAYOUT_METADATA);
	if (md == NULL) {
		dcp_msgf(msg, "out of memory checking %s", path);
		return DCP_ENOMEM;
	}
	if (stat(md, &st) != 0) {
		if (errno == ENOENT) {
			dcp_msgf(msg, "no checkpoint at %s", path);
			rc = DCP_ENOTFOUND;
		} else {
			dcp_msgf(msg, "cannot read %s: %s", md, errtext(errno, eb, sizeof(eb)));
			rc = DCP_EIO;
		}
	}
	free(md);
	return rc;
}

static int fs_validate(dcp_plugin *self, const char *url, int for_write, dcp_msg *msg)
{
	dcp_layout_options opt;
	char *path;
	int rc;

	(void)self;
	rc = fs_parse(url, &path, &opt, msg);
	if (rc != DCP_OK)
		return rc;
	rc = for_write ? check_for_write(path, msg) : check_for_read(path, msg);
	free(path);
	return rc;
}

/* Creates the checkpoint directory if it is missing (its parent must exist),
 * durably: the parent is fsync'd after the mkdir. */
static int ensure_dir(const char *path, dcp_msg *msg)
{
	struct stat st;
	char eb[128], *parent;
	int rc;

	if (mkdir(path, 0777) != 0) {
		if (errno == EEXIST) {
			if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
				return DCP_OK;
			dcp_msgf(msg, "%s exists and is not a directory: a checkpoint is a directory", path);
			return DCP_EID;
		}
		if (errno == ENOENT) {
			dcp_msgf(msg,
			         "cannot create checkpoint directory %s: its parent does not exist: create "
			         "it first",
			         path);
			return DCP_EID;
		}
		dcp_msgf(msg, "cannot create checkpoint directory %s: %s", path,
		         errtext(errno, eb, sizeof(eb)));
		return errno == EACCES || errno == EPERM || errno == EROFS || errno == ENOTDIR ? DCP_EID
		                                                                               : DCP_EIO;
	}
	parent = parent_of(path);
	if (parent == NULL) {
		dcp_msgf(msg, "out of memory creating %s", path);
		return DCP_ENOMEM;
	}
	rc = dcp_posix_fsync_dir(parent, msg);
	free(parent);
	return rc;
}

static int fs_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                          dcp_storage_writer **out, dcp_msg *msg)
{
	fs_plugin *p = (fs_plugin *)self;
	dcp_layout_params params;
	char *path;
	int rc;

	*out = NULL;
	memset(&params, 0, sizeof(params));
	rc = fs_parse(url, &path, &params.options, msg);
	if (rc != DCP_OK)
		return rc;
	rc = ensure_dir(path, msg);
	if (rc == DCP_OK)
		rc = dcp_posix_backend_open(path, &params.backend, msg);
	if (rc == DCP_OK) {
		params.host = p->host;
		params.location = path;
		rc = dcp_layout_writer_open(&params, opts, out, msg);
	}
	free(path);
	return rc;
}

static int fs_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                          dcp_storage_reader **out, dcp_msg *msg)
{
	fs_plugin *p = (fs_plugin *)self;
	dcp_layout_params params;
	char *path;
	int rc;

	*out = NULL;
	memset(&params, 0, sizeof(params));
	rc = fs_parse(url, &path, &params.options, msg);
	if (rc != DCP_OK)
		return rc;
	rc = dcp_posix_backend_open(path, &params.backend, msg);
	if (rc == DCP_OK) {
		params.host = p->host;
		params.location = path;
		rc = dcp_layout_reader_open(&params, opts, out, msg);
	}
	free(path);
	return rc;
}

/* Metadata first, then the data files it names, then the directory if it
 * is empty. */
static int fs_remove(dcp_plugin *self, const char *url, dcp_msg *msg)
{
	fs_plugin *p = (fs_plugin *)self;
	dcp_layout_options opt;
	dcp_backend *b;
	char *path;
	int rc;

	rc = fs_parse(url, &path, &opt, msg);
	if (rc != DCP_OK)
		return rc;
	rc = check_for_read(path, msg);
	if (rc == DCP_OK)
		rc = dcp_posix_backend_open(path, &b, msg);
	if (rc == DCP_OK) {
		rc = dcp_layout_remove(b, p->host, path, msg);
		b->ops->destroy(b);
		/* Other files (the user's) keep the directory: not an error. */
		if (rc == DCP_OK)
			(void)rmdir(path);
	}
	free(path);
	return rc;
}

static int fs_gc(dcp_plugin *self, const char *url, const dcp_gc_options *opts, dcp_gc_report *report,
                 dcp_msg *msg)
{
	fs_plugin *p = (fs_plugin *)self;
	dcp_layout_options opt;
	dcp_backend *b;
	char *path;
	int rc;

	rc = fs_parse(url, &path, &opt, msg);
	if (rc != DCP_OK)
		return rc;
	/* A folder without .metadata is fine: a killed first save leaves one. */
	{
		struct stat st;
		char eb[128];
		if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
			int e = errno;
			if (stat(path, &st) == 0)
				dcp_msgf(msg, "%s is not a directory: a checkpoint is a directory", path);
			else
				dcp_msgf(msg, "nothing to collect at %s: %s", path,
				         errtext(e, eb, sizeof(eb)));
			rc = e == ENOENT ? DCP_ENOTFOUND : DCP_EID;
		}
	}
	if (rc == DCP_OK)
		rc = dcp_posix_backend_open(path, &b, msg);
	if (rc == DCP_OK) {
		rc = dcp_layout_gc(b, p->host, path, opts, report, msg);
		b->ops->destroy(b);
	}
	free(path);
	return rc;
}

static void fs_destroy(dcp_plugin *self)
{
	free(self);
}

DCP_DECLARE_PLUGIN_ENTRY;

DCP_DECLARE_PLUGIN_ENTRY
{
	fs_plugin *p;

	*out = NULL;
	if (host == NULL || host->version < 1) {
		dcp_msgf(msg, "the fs plugin needs host services version 1 or later (got %u)",
		         host != NULL ? host->version : 0u);
		return DCP_EVERSION;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		dcp_msgf(msg, "out of memory creating the fs plugin");
		return DCP_ENOMEM;
	}
	p->host = host;
	p->base.version = DCP_PLUGIN_ABI_VERSION;
	p->base.name = "fs";
	p->base.schemes = fs_schemes;
	p->base.capabilities =
	        DCP_CAP_ATOMIC_COMMIT | DCP_CAP_DURABLE | DCP_CAP_RANGED_READ | DCP_CAP_ASYNC_IO;
	p->base.destroy = fs_destroy;
	p->base.validate_checkpoint_id = fs_validate;
	p->base.writer_open = fs_writer_open;
	p->base.reader_open = fs_reader_open;
	p->base.remove = fs_remove;
	p->base.gc = fs_gc;
	*out = &p->base;
	return DCP_OK;
}
