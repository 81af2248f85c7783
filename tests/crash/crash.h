/*
 * Crash trials (tests/crash): the pieces of dcp-crash-trials that run child
 * processes and watch what they do to the storage.
 *
 * crash_run.c: spawning a child (the dcp tool), collecting its stdout and
 * stderr, killing it with SIGKILL at a deadline or when the storage shows a
 * chosen step of the save, and reaping it. crash_watch.c: an inotify watch on
 * the directory that holds the checkpoint's objects (the checkpoint folder of
 * file://, or s3rver's folder for the S3 prefix), which turns file events into
 * the steps of a save: data objects created and closed, the metadata's
 * temporary file, the commit of .metadata, the removal of the old save's
 * objects.
 */
#ifndef DCP_CRASH_H
#define DCP_CRASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic clock, microseconds. */
int64_t crash_now_us(void);

/* A growing byte buffer (NUL-terminated). At most CRASH_BUF_MAX bytes are
 * kept; more output is counted as dropped. */
#define CRASH_BUF_MAX (256u << 10)
typedef struct crash_buf {
	char *data;
	size_t len, cap;
	size_t dropped;
	int nomem;
} crash_buf;
void crash_buf_clear(crash_buf *b);

/* The steps of a save that the watch can see, in the order a save takes. */
typedef enum crash_step {
	CRASH_DATA_CREATED = 0, /* a data object of the new save appeared */
	CRASH_DATA_CLOSED,      /* a data object of the new save was closed after writing */
	CRASH_META_TEMP,        /* the metadata's temporary file appeared (file:// only) */
	CRASH_COMMIT,           /* .metadata took its new content */
	CRASH_OLD_REMOVED,      /* an object of the replaced save was removed */
	CRASH_STEP_COUNT
} crash_step;
const char *crash_step_name(crash_step s);

typedef struct crash_watch {
	int fd;       /* inotify; -1 when not watching */
	int s3rver;   /* objects are s3rver files: "<key>._S3rver_object" */
	char *dir;    /* the watched directory (owned) */
	char *old_id; /* save id of the checkpoint being replaced, or NULL (owned) */
	int count[CRASH_STEP_COUNT];
	int64_t first_us[CRASH_STEP_COUNT]; /* time of the first event of each step, from t0_us; -1: none */
	int64_t last_us[CRASH_STEP_COUNT];
	int64_t t0_us;
	int overflow; /* the kernel dropped events */
} crash_watch;

/*
 * Starts watching dir (which must exist). old_id: the save id of the
 * checkpoint in dir, whose objects are "old" (NULL if none). Returns 0, or -1
 * with a message in err.
 */
int crash_watch_open(crash_watch *w, const char *dir, int s3rver, const char *old_id, char *err,
                     size_t errlen);
/* Reads every queued event (non-blocking) and counts the steps. 0 or -1 with err. */
int crash_watch_drain(crash_watch *w, char *err, size_t errlen);
void crash_watch_close(crash_watch *w);

/*
 * If name (a file name in the watched directory) is a data object, writes its
 * save id into id and returns 1; else 0. s3rver: name must be
 * "<key>._S3rver_object", and key is what is checked.
 */
int crash_data_object_id(const char *name, int s3rver, char *id, size_t idlen);

/* What ends a run early: SIGKILL at deadline_us (absolute, crash_now_us), or
 * when the watch has counted `count` events of `step`. */
typedef struct crash_kill_plan {
	int64_t deadline_us; /* -1: none */
	int hook_step;       /* a crash_step, or -1: none */
	int hook_count;
} crash_kill_plan;

typedef struct crash_child {
	pid_t pid;
	int status; /* from waitpid */
	int killed; /* SIGKILL was sent */
	int64_t start_us, kill_us, end_us;
	crash_buf out, err;
} crash_child;

/*
 * Runs argv (argv[0] a path) to its end, its stdout and stderr collected in
 * c->out and c->err; if plan is not NULL, kills it by the plan (watch may be
 * NULL for a deadline only). The watch is drained while the child runs and
 * once more after it is reaped. Returns 0 once the child is reaped, or -1
 * with a message in err (the child, if started, is killed and reaped).
 */
int crash_run(char *const argv[], const crash_kill_plan *plan, crash_watch *watch, crash_child *c, char *err,
              size_t errlen);
void crash_child_clear(crash_child *c);

/* "exit 0", "exit 1", "killed by signal 9". */
const char *crash_describe_status(int status, char *buf, size_t len);

#endif /* DCP_CRASH_H */
