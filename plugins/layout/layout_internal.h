/*
 * Shared between the layout's source files; not for plugins (they use
 * layout.h).
 */
#ifndef DCP_LAYOUT_INTERNAL_H
#define DCP_LAYOUT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "layout.h"

/* ------------------------------------------------------------------------ */
/* I/O workers (workers.c)                                                  */
/* ------------------------------------------------------------------------ */
/*
 * A set of threads that each run fn(arg) once; when the last of them returns,
 * done(arg) runs once, on that thread (it completes the future). The struct
 * is embedded in a job that stays allocated until layout_workers_join
 * returned, which the owner (a writer or reader) calls from close or abort on
 * the rank's thread.
 */
typedef struct layout_workers {
	void (*fn)(void *arg);
	void (*done)(void *arg);
	void *arg;
	pthread_t *threads;
	int nstarted;
	atomic_int pending; /* threads still running, +1 while starting */
	int joined;
} layout_workers;

/*
 * Starts up to n (>= 1) threads. Returns DCP_OK when at least one started:
 * done(arg) will run exactly once (possibly before this returns). Otherwise an
 * error with msg, and done is never called. Call layout_workers_join in both
 * cases.
 */
int layout_workers_start(layout_workers *wk, int n, void (*fn)(void *), void (*done)(void *), void *arg,
                         dcp_msg *msg);
/* Waits for every started thread; idempotent; frees the thread array. */
void layout_workers_join(layout_workers *wk);

/* ------------------------------------------------------------------------ */
/* Writer and reader objects                                                */
/* ------------------------------------------------------------------------ */
struct write_job;
struct read_job;

typedef struct layout_writer {
	dcp_storage_writer base; /* first: the core sees this */
	dcp_backend *backend;    /* owned */
	const dcp_host *host;
	char *location; /* owned */
	dcp_layout_options options;
	int overwrite; /* effective: the URL's, else dcp_open_options' */
	int rank;
	int world_size;
	int is_coordinator;
	char *save_id;          /* object-name form of the save id of the last
	                           write_data; owned, NULL before */
	uint32_t nobjects;      /* data objects named for save_id so far:
	                           __<rank>_<0..nobjects-1>.<save_id>.distcp */
	int committed;          /* finish replaced .metadata */
	struct write_job *jobs; /* every write_data's job, joined at close */
} layout_writer;

typedef struct layout_reader {
	dcp_storage_reader base; /* first */
	dcp_backend *backend;    /* owned */
	const dcp_host *host;
	char *location; /* owned */
	dcp_layout_options options;
	int rank;
	int world_size;
	const dcp_metadata *md; /* the core's, from set_up_storage_reader */
	struct read_job *jobs;  /* every read_data's job, joined at close */
} layout_reader;

/* writer.c */
extern const dcp_writer_ops layout_writer_ops;
/* Waits for every write job of w; safe to call more than once. */
void layout_writer_join(layout_writer *w);
/* The name of data object n of rank for save_id: malloc'd, NULL if out of
 * memory. */
char *layout_data_name(int rank, uint32_t n, const char *save_id);
/* The save id as used in object names: a malloc'd copy in which every byte
 * outside [A-Za-z0-9._-] is replaced by '-'. NULL if id is NULL, empty or
 * longer than 200 bytes, or out of memory (*nomem set). */
char *layout_name_save_id(const char *id, int *nomem);
/* 1 if name looks like a layout data object ("__...distcp"). */
int layout_is_data_name(const char *name);

/* commit.c */
int layout_writer_finish(dcp_storage_writer *sw, const dcp_metadata *md, dcp_msg *msg);
/*
 * Reads and decodes .metadata. DCP_ENOTFOUND (msg "no checkpoint at
 * <location>") when absent; a decode failure keeps its code with the location
 * prefixed. *raw_found (may be NULL) says whether the object existed.
 */
int layout_read_metadata(dcp_backend *b, const dcp_host *host, const char *location, dcp_metadata **out,
                         int *raw_found, dcp_msg *msg);

/* Sorted, deduplicated list of the data paths md names (strings borrowed
 * from md). DCP_ENOMEM with msg. *out is NULL when n is 0. */
int layout_md_paths(const dcp_metadata *md, const char ***out, size_t *n, dcp_msg *msg);
int layout_paths_contain(const char *const *paths, size_t n, const char *path);

/* reader.c */
extern const dcp_reader_ops layout_reader_ops;

#endif /* DCP_LAYOUT_INTERNAL_H */
