/*
 * The inotify watch of the crash trials: file events in the checkpoint's
 * directory, read as the steps of a save (see crash.h).
 *
 * file:// (the posix backend): a data object is created under its final
 * name and closed once written and fsync'd; .metadata is written to
 * "..metadata.tmp-<pid>-<n>" and then renamed over .metadata (IN_MOVED_TO),
 * or linked to it when there is no checkpoint yet (IN_CREATE): either is the
 * commit. s3rver: object KEY is the file "KEY._S3rver_object", written in
 * place as the PUT's body arrives, so a step is the file's IN_CLOSE_WRITE
 * (the commit is the close of ".metadata._S3rver_object").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "crash.h"

#define S3RVER_OBJECT_SUFFIX "._S3rver_object"
#define META_NAME            ".metadata"
#define META_TEMP_PREFIX     "..metadata.tmp-"

const char *crash_step_name(crash_step s)
{
	static const char *const names[CRASH_STEP_COUNT] = {"data_created", "data_closed", "meta_temp",
	                                                    "commit", "old_removed"};
	return (unsigned)s < CRASH_STEP_COUNT ? names[s] : "?";
}

/* The object key of a file name, into key; 0 if the file is not an object. */
static int object_key(const char *name, int s3rver, char *key, size_t keylen)
{
	size_t n = strlen(name);
	if (s3rver) {
		size_t sl = strlen(S3RVER_OBJECT_SUFFIX);
		if (n <= sl || strcmp(name + n - sl, S3RVER_OBJECT_SUFFIX) != 0)
			return 0;
		n -= sl;
	}
	if (n + 1 > keylen)
		return 0;
	memcpy(key, name, n);
	key[n] = '\0';
	return 1;
}

int crash_data_object_id(const char *name, int s3rver, char *id, size_t idlen)
{
	char key[512];
	if (!object_key(name, s3rver, key, sizeof(key)))
		return 0;
	/* __<rank>_<n>.<save_id>.distcp */
	size_t n = strlen(key), sl = strlen(".distcp");
	if (strncmp(key, "__", 2) != 0 || n <= sl || strcmp(key + n - sl, ".distcp") != 0)
		return 0;
	key[n - sl] = '\0';
	const char *dot = strchr(key, '.');
	if (dot == NULL || dot[1] == '\0' || strlen(dot + 1) + 1 > idlen)
		return 0;
	strcpy(id, dot + 1);
	return 1;
}

int crash_watch_open(crash_watch *w, const char *dir, int s3rver, const char *old_id, char *err,
                     size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	for (int s = 0; s < CRASH_STEP_COUNT; s++)
		w->first_us[s] = w->last_us[s] = -1;
	w->s3rver = s3rver;
	w->dir = strdup(dir);
	w->old_id = old_id != NULL ? strdup(old_id) : NULL;
	if (w->dir == NULL || (old_id != NULL && w->old_id == NULL)) {
		snprintf(err, errlen, "out of memory watching %s", dir);
		crash_watch_close(w);
		return -1;
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		snprintf(err, errlen, "inotify_init1 failed: %s (raise fs.inotify.max_user_instances?)",
		         strerror(errno));
		crash_watch_close(w);
		return -1;
	}
	if (inotify_add_watch(w->fd, dir,
	                      IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) < 0) {
		snprintf(err, errlen,
		         "cannot watch directory %s: %s (it must exist; raise "
		         "fs.inotify.max_user_watches?)",
		         dir, strerror(errno));
		crash_watch_close(w);
		return -1;
	}
	return 0;
}

static void count(crash_watch *w, crash_step s, int64_t now)
{
	w->count[s]++;
	if (w->first_us[s] < 0)
		w->first_us[s] = now - w->t0_us;
	w->last_us[s] = now - w->t0_us;
}

static void on_event(crash_watch *w, const struct inotify_event *ev, int64_t now)
{
	char id[256], key[512];
	if (ev->mask & IN_Q_OVERFLOW) {
		w->overflow = 1;
		return;
	}
	if (ev->len == 0 || (ev->mask & IN_ISDIR))
		return;
	const char *name = ev->name;
	if (crash_data_object_id(name, w->s3rver, id, sizeof(id))) {
		int old = w->old_id != NULL && strcmp(id, w->old_id) == 0;
		if (old) {
			if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
				count(w, CRASH_OLD_REMOVED, now);
		} else if (ev->mask & IN_CREATE) {
			count(w, CRASH_DATA_CREATED, now);
		} else if (ev->mask & IN_CLOSE_WRITE) {
			count(w, CRASH_DATA_CLOSED, now);
		}
		return;
	}
	if (!w->s3rver && strncmp(name, META_TEMP_PREFIX, strlen(META_TEMP_PREFIX)) == 0) {
		if (ev->mask & IN_CREATE)
			count(w, CRASH_META_TEMP, now);
		return;
	}
	if (object_key(name, w->s3rver, key, sizeof(key)) && strcmp(key, META_NAME) == 0) {
		unsigned commit_mask = w->s3rver ? IN_CLOSE_WRITE : (IN_MOVED_TO | IN_CREATE);
		if (ev->mask & commit_mask)
			count(w, CRASH_COMMIT, now);
	}
}

int crash_watch_drain(crash_watch *w, char *err, size_t errlen)
{
	/* Aligned as the kernel's records are. */
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	if (w->fd < 0)
		return 0;
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			snprintf(err, errlen, "reading the inotify events of %s failed: %s", w->dir,
			         n < 0 ? strerror(errno) : "end of file");
			return -1;
		}
		int64_t now = crash_now_us();
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			on_event(w, ev, now);
			p += sizeof(struct inotify_event) + ev->len;
		}
	}
}

void crash_watch_close(crash_watch *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->dir);
	free(w->old_id);
	w->fd = -1;
	w->dir = NULL;
	w->old_id = NULL;
}
