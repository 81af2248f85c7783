/*
 * POSIX files as a dcp_backend (see posix_backend.h).
 *
 * Durability: a data file is fsync'd before writer_close returns, and so is
 * its directory (the new name); put_atomic is temp file + fsync + rename +
 * fsync of the directory, so that a crash leaves the old file or the new
 * one, never neither and never a partial one.
 *
 * Threads: every slot is safe to call concurrently; the backend keeps no
 * mutable state except an atomic counter for temporary names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "posix/posix_backend.h"
#include "url.h"

/* One write(2) at most this many bytes (Linux caps a call below 2 GiB). */
#define IO_CHUNK ((uint64_t)1 << 30)

typedef struct posix_backend {
	dcp_backend base;
	char *root;          /* no trailing '/', except for "/" itself */
	atomic_uint tmp_seq; /* for unique temporary names */
} posix_backend;

typedef struct posix_writer {
	dcp_backend_writer base;
	int fd;
	char *full; /* owned */
	uint64_t written;
	uint64_t kicked; /* bytes handed to writeback so far (sync_file_range) */
} posix_writer;

/* Writeback is started every this many bytes, so that the fsync at close
 * finds most of the file on its way to the disk already. */
#define WRITEBACK_STEP ((uint64_t)32 << 20)

static const char *errtext(int e, char *buf, size_t len)
{
	/* GNU strerror_r (the project builds with _GNU_SOURCE). */
	return strerror_r(e, buf, len);
}

/* Fills msg with "<what> <path>: <strerror(e)>" and returns the status. */
static int fail_errno(dcp_msg *msg, int e, const char *what, const char *path)
{
	char eb[128];

	dcp_msgf(msg, "%s %s: %s", what, path, errtext(e, eb, sizeof(eb)));
	if (e == ENOMEM)
		return DCP_ENOMEM;
	return DCP_EIO;
}

static char *full_path(const posix_backend *b, const char *path)
{
	if (strcmp(b->root, "/") == 0)
		return dcp_asprintf("/%s", path);
	return dcp_asprintf("%s/%s", b->root, path);
}

static int nomem(dcp_msg *msg, const char *what, const char *path)
{
	dcp_msgf(msg, "out of memory %s %s", what, path);
	return DCP_ENOMEM;
}

/* The directory part of an absolute file path: malloc'd. */
static char *dir_of(const char *full)
{
	const char *slash = strrchr(full, '/');
	size_t n = slash == NULL || slash == full ? 1 : (size_t)(slash - full);
	char *d = malloc(n + 1);

	if (d == NULL)
		return NULL;
	if (slash == NULL || slash == full)
		memcpy(d, "/", 1);
	else
		memcpy(d, full, n);
	d[n] = '\0';
	return d;
}

int dcp_posix_fsync_dir(const char *path, dcp_msg *msg)
{
	int fd, e;

	do
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return fail_errno(msg, errno, "cannot open directory", path);
	if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
		/* EINVAL: this file system does not sync directories. */
		e = errno;
		close(fd);
		return fail_errno(msg, e, "cannot fsync directory", path);
	}
	close(fd);
	return DCP_OK;
}

/* Writes all of data (retrying short writes and EINTR). 0 or an errno. */
static int write_all(int fd, const void *data, uint64_t len)
{
	const char *p = data;

	while (len > 0) {
		size_t n = (size_t)(len < IO_CHUNK ? len : IO_CHUNK);
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (w == 0)
			return ENOSPC;
		p += w;
		len -= (uint64_t)w;
	}
	return 0;
}

static int open_retry(const char *path, int flags, mode_t mode)
{
	int fd;

	do
		fd = open(path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	return fd;
}

/* ------------------------------------------------------------------------ */
/* Sequential writer                                                        */
/* ------------------------------------------------------------------------ */
static int px_writer_open(dcp_backend *base, const char *path, dcp_backend_writer **out, dcp_msg *msg)
{
	posix_backend *b = (posix_backend *)base;
	posix_writer *w;
	char *full = full_path(b, path);

	*out = NULL;
	if (full == NULL)
		return nomem(msg, "creating", path);
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		free(full);
		return nomem(msg, "creating", path);
	}
	w->fd = open_retry(full, O_WRONLY | O_CREAT | O_EXCL, 0666);
	if (w->fd < 0) {
		int rc = fail_errno(msg, errno, "cannot create", full);
		free(full);
		free(w);
		return rc;
	}
	w->base.backend = base;
	w->full = full;
	*out = &w->base;
	return DCP_OK;
}

static void px_writer_free(posix_writer *w, int unlink_it)
{
	if (w->fd >= 0)
		close(w->fd);
	if (unlink_it)
		(void)unlink(w->full);
	free(w->full);
	free(w);
}

static int px_writer_append(dcp_backend_writer *bw, const void *data, uint64_t len, dcp_msg *msg)
{
	posix_writer *w = (posix_writer *)bw;
	const unsigned char *p = data;

	while (len > 0) {
		/* Pieces end on WRITEBACK_STEP boundaries of the file. */
		uint64_t room = WRITEBACK_STEP - w->written % WRITEBACK_STEP;
		uint64_t n = len < room ? len : room;
		int e = write_all(w->fd, p, n);
		if (e != 0) {
			char eb[128];
			dcp_msgf(msg, "cannot write %llu bytes at offset %llu of %s: %s",
			         (unsigned long long)n, (unsigned long long)w->written, w->full,
			         errtext(e, eb, sizeof(eb)));
			return e == ENOMEM ? DCP_ENOMEM : DCP_EIO;
		}
		w->written += n;
		p += n;
		len -= n;
#ifdef SYNC_FILE_RANGE_WRITE
		/* Start writeback of the finished step without waiting for it: an
		 * optimisation only (durability comes from fsync at close), so
		 * its failure is ignored. */
		if (w->written - w->kicked >= WRITEBACK_STEP) {
			(void)sync_file_range(w->fd, (off_t)w->kicked, (off_t)(w->written - w->kicked),
			                      SYNC_FILE_RANGE_WRITE);
			w->kicked = w->written;
		}
#endif
	}
	return DCP_OK;
}

static void px_writer_abort(dcp_backend_writer *bw)
{
	px_writer_free((posix_writer *)bw, 1);
}

static int px_writer_close(dcp_backend_writer *bw, dcp_msg *msg)
{
	posix_writer *w = (posix_writer *)bw;
	char *dir;
	int rc, fd = w->fd;

	if (fsync(fd) != 0) {
		rc = fail_errno(msg, errno, "cannot fsync", w->full);
		px_writer_free(w, 1);
		return rc;
	}
	w->fd = -1;
	if (close(fd) != 0 && errno != EINTR) {
		rc = fail_errno(msg, errno, "cannot close", w->full);
		px_writer_free(w, 1);
		return rc;
	}
	dir = dir_of(w->full);
	if (dir == NULL) {
		rc = nomem(msg, "syncing the directory of", w->full);
		px_writer_free(w, 1);
		return rc;
	}
	rc = dcp_posix_fsync_dir(dir, msg);
	free(dir);
	px_writer_free(w, rc != DCP_OK);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                    */
/* ------------------------------------------------------------------------ */
static int px_read(dcp_backend *base, const char *path, uint64_t offset, uint64_t len, void *dst,
                   dcp_msg *msg)
{
	posix_backend *b = (posix_backend *)base;
	char *full = full_path(b, path), *p = dst;
	uint64_t done = 0;
	int fd, rc = DCP_OK;

	if (full == NULL)
		return nomem(msg, "reading", path);
	fd = open_retry(full, O_RDONLY, 0);
	if (fd < 0) {
		rc = errno == ENOENT ? DCP_ENOTFOUND : DCP_EIO;
		fail_errno(msg, errno, "cannot open", full);
		free(full);
		return rc;
	}
	if (offset > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - offset) {
		dcp_msgf(msg, "cannot read %llu bytes at offset %llu of %s: beyond the largest file offset",
		         (unsigned long long)len, (unsigned long long)offset, full);
		rc = DCP_ECORRUPT;
		goto out;
	}
	while (done < len) {
		size_t n = (size_t)(len - done < IO_CHUNK ? len - done : IO_CHUNK);
		ssize_t r = pread(fd, p + done, n, (off_t)(offset + done));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			char eb[128];
			dcp_msgf(msg, "cannot read %llu bytes at offset %llu of %s: %s",
			         (unsigned long long)len, (unsigned long long)offset, full,
			         errtext(errno, eb, sizeof(eb)));
			rc = DCP_EIO;
			goto out;
		}
		if (r == 0) {
			struct stat st;
			unsigned long long size =
			        fstat(fd, &st) == 0 ? (unsigned long long)st.st_size : offset + done;
			dcp_msgf(msg,
			         "file %s is %llu bytes, expected at least %llu (reading %llu bytes at "
			         "offset %llu)",
			         full, size, (unsigned long long)(offset + len), (unsigned long long)len,
			         (unsigned long long)offset);
			rc = DCP_ECORRUPT;
			goto out;
		}
		done += (uint64_t)r;
	}
out:
	close(fd);
	free(full);
	return rc;
}

static int px_get(dcp_backend *base, const char *path, void **data, uint64_t *len, dcp_msg *msg)
{
	posix_backend *b = (posix_backend *)base;
	char *full = full_path(b, path), *buf = NULL;
	size_t cap, used = 0;
	struct stat st;
	int fd, rc = DCP_OK;

	*data = NULL;
	*len = 0;
	if (full == NULL)
		return nomem(msg, "reading", path);
	fd = open_retry(full, O_RDONLY, 0);
	if (fd < 0) {
		rc = errno == ENOENT || errno == ENOTDIR ? DCP_ENOTFOUND : DCP_EIO;
		fail_errno(msg, errno, "cannot open", full);
		free(full);
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = fail_errno(msg, errno, "cannot stat", full);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		dcp_msgf(msg, "%s is not a regular file", full);
		rc = DCP_EIO;
		goto out;
	}
	/* Read to the end, even if the file changed size since fstat. */
	cap = (size_t)st.st_size + 1;
	for (;;) {
		ssize_t r;
		if (buf == NULL || used + 1 >= cap) {
			char *nb;
			if (buf != NULL)
				cap *= 2;
			nb = realloc(buf, cap);
			if (nb == NULL) {
				rc = nomem(msg, "reading", full);
				goto out;
			}
			buf = nb;
		}
		r = read(fd, buf + used, cap - 1 - used);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = fail_errno(msg, errno, "cannot read", full);
			goto out;
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	buf[used] = '\0';
	*data = buf;
	*len = used;
	buf = NULL;
out:
	free(buf);
	close(fd);
	free(full);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Atomic replace, remove, list, exists                                     */
/* ------------------------------------------------------------------------ */
/* put_atomic (replace) and put_if_absent (create only): the new content
 * goes to a temporary file, fsync'd, then takes the name atomically. */
static int px_put(dcp_backend *base, const char *path, const void *data, uint64_t len, int create_only,
                  dcp_msg *msg)
{
	posix_backend *b = (posix_backend *)base;
	char *full = full_path(b, path), *dir = NULL, *tmp = NULL;
	const char *name;
	int fd = -1, rc = DCP_OK, e;

	if (full == NULL)
		return nomem(msg, "writing", path);
	dir = dir_of(full);
	name = strrchr(full, '/') + 1;
	/* A temporary file left by a crashed process with the same pid takes
	 * its name: try the next one. */
	for (e = 0; e < 1000; e++) {
		free(tmp);
		tmp = NULL;
		if (dir != NULL)
			tmp = dcp_asprintf("%s/.%s.tmp-%ld-%u", strcmp(dir, "/") == 0 ? "" : dir, name,
			                   (long)getpid(), atomic_fetch_add(&b->tmp_seq, 1));
		if (dir == NULL || tmp == NULL) {
			rc = nomem(msg, "writing", full);
			goto out;
		}
		fd = open_retry(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		rc = fail_errno(msg, errno, "cannot create temporary file", tmp);
		goto out;
	}
	e = write_all(fd, data, len);
	if (e != 0) {
		rc = fail_errno(msg, e, "cannot write temporary file", tmp);
		goto fail;
	}
	if (fsync(fd) != 0) {
		rc = fail_errno(msg, errno, "cannot fsync temporary file", tmp);
		goto fail;
	}
	e = close(fd);
	fd = -1;
	if (e != 0 && errno != EINTR) {
		rc = fail_errno(msg, errno, "cannot close temporary file", tmp);
		goto fail;
	}
	/* The commit point: rename replaces full atomically; link creates it
	 * atomically or fails if it exists. */
	if (create_only) {
		if (link(tmp, full) != 0) {
			char eb[128];
			e = errno;
			if (e == EEXIST) {
				dcp_msgf(msg, "%s already exists: another writer created it first", full);
				rc = DCP_EEXISTS;
			} else {
				dcp_msgf(msg, "cannot link %s to %s: %s", tmp, full,
				         errtext(e, eb, sizeof(eb)));
				rc = DCP_EIO;
			}
			goto fail;
		}
		(void)unlink(tmp);
	} else if (rename(tmp, full) != 0) {
		char eb[128];
		dcp_msgf(msg, "cannot rename %s to %s: %s", tmp, full, errtext(errno, eb, sizeof(eb)));
		rc = DCP_EIO;
		goto fail;
	}
	rc = dcp_posix_fsync_dir(dir, msg);
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
out:
	free(tmp);
	free(dir);
	free(full);
	return rc;
}

static int px_put_atomic(dcp_backend *base, const char *path, const void *data, uint64_t len, dcp_msg *msg)
{
	return px_put(base, path, data, len, 0, msg);
}

static int px_put_if_absent(dcp_backend *base, const char *path, const void *data, uint64_t len, dcp_msg *msg)
{
	return px_put(base, path, data, len, 1, msg);
}

static int px_remove(dcp_backend *base, const char *path, dcp_msg *msg)
{
	posix_backend *b = (posix_backend *)base;
	char *full = full_path(b, path);
	int rc = DCP_OK;

	if (full == NULL)
		return nomem(msg, "removing", path);
	if (unlink(full) != 0 && errno != ENOENT)
		rc = fail_errno(msg, errno, "cannot remove", full);
	free(full);
	return rc;
}

typedef struct list_ctx {
	const char *prefix;
	size_t plen;
	int (*fn)(const char *path, uint64_t size, void *arg);                     /* or: */
	int (*fn_stat)(const char *path, uint64_t size, int64_t mtime, void *arg); /* one is NULL */
	void *arg;
	dcp_msg *msg;
} list_ctx;

/* Walks dir (full path) whose relative name is rel ("" for the root). */
static int list_dir(list_ctx *c, const char *dir, const char *rel, int depth)
{
	DIR *d;
	struct dirent *de;
	int rc = DCP_OK;

	if (depth > 64)
		return DCP_OK;
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT && depth == 0)
			return DCP_OK; /* no root: no objects */
		return fail_errno(c->msg, errno, "cannot list directory", dir);
	}
	while (rc == DCP_OK) {
		struct stat st;
		char *r, *full;
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				rc = fail_errno(c->msg, errno, "cannot list directory", dir);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue; /* removed meanwhile */
		r = rel[0] != '\0' ? dcp_asprintf("%s/%s", rel, de->d_name) : dcp_strdup(de->d_name);
		full = dcp_asprintf("%s/%s", strcmp(dir, "/") == 0 ? "" : dir, de->d_name);
		if (r == NULL || full == NULL) {
			rc = nomem(c->msg, "listing", dir);
		} else if (S_ISREG(st.st_mode)) {
			if (strncmp(r, c->prefix, c->plen) == 0)
				rc = c->fn != NULL ? c->fn(r, (uint64_t)st.st_size, c->arg)
				                   : c->fn_stat(r, (uint64_t)st.st_size, (int64_t)st.st_mtime,
				                                c->arg);
		} else if (S_ISDIR(st.st_mode)) {
			rc = list_dir(c, full, r, depth + 1);
		}
		free(r);
		free(full);
	}
	closedir(d);
	return rc;
}

static int px_list(dcp_backend *base, const char *prefix,
                   int (*fn)(const char *path, uint64_t size, void *arg), void *arg, dcp_msg *msg)
{
	posix_backend *b = (posix_backend *)base;
	list_ctx c;

	c.prefix = prefix != NULL ? prefix : "";
	c.plen = strlen(c.prefix);
	c.fn = fn;
	c.fn_stat = NULL;
	c.arg = arg;
	c.msg = msg;
	return list_dir(&c, b->root, "", 0);
}

static int px_list_stat(dcp_backend *base, const char *prefix,
                        int (*fn)(const char *path, uint64_t size, int64_t mtime, void *arg), void *arg,
                        dcp_msg *msg)
{
	posix_backend *b = (posix_backend *)base;
	list_ctx c;

	c.prefix = prefix != NULL ? prefix : "";
	c.plen = strlen(c.prefix);
	c.fn = NULL;
	c.fn_stat = fn;
	c.arg = arg;
	c.msg = msg;
	return list_dir(&c, b->root, "", 0);
}

static int px_exists(dcp_backend *base, const char *path, dcp_msg *msg)
{
	posix_backend *b = (posix_backend *)base;
	char *full = full_path(b, path);
	struct stat st;
	int rc;

	if (full == NULL)
		return nomem(msg, "looking up", path);
	if (stat(full, &st) == 0)
		rc = 1;
	else if (errno == ENOENT || errno == ENOTDIR)
		rc = 0;
	else
		rc = fail_errno(msg, errno, "cannot stat", full);
	free(full);
	return rc;
}

static const char *px_describe(dcp_backend *base, const char *path, char *buf, size_t buflen)
{
	posix_backend *b = (posix_backend *)base;

	if (buflen == 0)
		return buf;
	if (strcmp(b->root, "/") == 0)
		snprintf(buf, buflen, "/%s", path);
	else
		snprintf(buf, buflen, "%s/%s", b->root, path);
	return buf;
}

static void px_destroy(dcp_backend *base)
{
	posix_backend *b = (posix_backend *)base;

	free(b->root);
	free(b);
}

static const dcp_backend_ops posix_ops = {
        .version = DCP_BACKEND_VERSION,
        .writer_open = px_writer_open,
        .writer_append = px_writer_append,
        .writer_close = px_writer_close,
        .writer_abort = px_writer_abort,
        .read = px_read,
        .get = px_get,
        .put_atomic = px_put_atomic,
        .put_if_absent = px_put_if_absent,
        .list_stat = px_list_stat,
        .remove = px_remove,
        .list = px_list,
        .exists = px_exists,
        .describe = px_describe,
        .destroy = px_destroy,
};

int dcp_posix_backend_open(const char *root, dcp_backend **out, dcp_msg *msg)
{
	posix_backend *b;
	size_t n;

	*out = NULL;
	if (root == NULL || root[0] != '/') {
		dcp_msgf(msg, "the root of a file backend must be an absolute path (got '%s')",
		         root != NULL ? root : "(null)");
		return DCP_EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL || (b->root = dcp_strdup(root)) == NULL) {
		free(b);
		dcp_msgf(msg, "out of memory opening %s", root);
		return DCP_ENOMEM;
	}
	n = strlen(b->root);
	while (n > 1 && b->root[n - 1] == '/')
		b->root[--n] = '\0';
	atomic_init(&b->tmp_seq, 0);
	b->base.ops = &posix_ops;
	b->base.capabilities = DCP_CAP_ATOMIC_COMMIT | DCP_CAP_DURABLE | DCP_CAP_RANGED_READ;
	*out = &b->base;
	return DCP_OK;
}
