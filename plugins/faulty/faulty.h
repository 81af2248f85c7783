/*
 * The faulty plugin: wraps any other storage plugin and injects failures at
 * chosen stages on chosen ranks, so that tests can exercise every failure
 * path of the save and load protocol by changing only the checkpoint URL.
 *
 * URL: "faulty+<inner-scheme>://<rest>?<params>". The registry routes every
 * scheme "faulty+..." here. The faulty plugin's own parameters are
 *   fail.<stage>=<ranks>  a rank list for dcp_rank_set_parse ("1,3", "0-2",
 *                         "*" for every rank, "" for none);
 *   faults=<path>         a JSON scenario file (see conf/faults/README.md);
 *   torn.write_data=<ranks>  these ranks' write_data hands only the first
 *                         torn.bytes bytes of the rank's data (in request
 *                         order) to the inner plugin, waits for the inner
 *                         write, then fails the save (a torn data object);
 *   torn.bytes=<N>        the bytes that a torn write keeps (default 0).
 * They are removed before the rest is handed to the inner plugin as
 * "<inner-scheme>://<rest>?<the other params>", unchanged otherwise.
 *
 * Internal header of the plugin; nothing here is part of any ABI.
 */
#ifndef DCP_FAULTY_H
#define DCP_FAULTY_H

#include <pthread.h>

#include "dcp/sys/storage.h"
#include "url.h"

/* The stages at which a failure can be injected, in protocol order. */
typedef enum faulty_stage {
	FAULTY_SET_UP_STORAGE_WRITER = 0,
	FAULTY_PREPARE_LOCAL_PLAN,
	FAULTY_PREPARE_GLOBAL_PLAN,
	FAULTY_WRITE_DATA,
	FAULTY_WRITE_DATA_ASYNC,
	FAULTY_FINISH,
	FAULTY_READ_METADATA,
	FAULTY_SET_UP_STORAGE_READER,
	FAULTY_READ_DATA,
	FAULTY_READ_DATA_ASYNC,
	FAULTY_STAGE_COUNT
} faulty_stage;

/* "write_data", ...: the name used in fail.<stage> and in scenario files. */
const char *faulty_stage_name(faulty_stage stage);
/* The stage called name, or -1. */
int faulty_stage_from_name(const char *name);

#define FAULTY_URL_PREFIX        "faulty+"
#define FAULTY_PARAM_FAIL_PREFIX "fail."
#define FAULTY_PARAM_FAULTS      "faults"
#define FAULTY_PARAM_TORN_PREFIX "torn."
#define FAULTY_PARAM_TORN_WRITE  "torn.write_data"
#define FAULTY_PARAM_TORN_BYTES  "torn.bytes"

/*
 * What one URL asks for: the failing ranks of every stage and the inner URL.
 * Owned by whoever filled it; freed with faulty_config_clear.
 */
typedef struct faulty_config {
	dcp_rank_set fail[FAULTY_STAGE_COUNT]; /* empty set: never fails */
	dcp_rank_set torn_write;               /* torn.write_data; empty: no torn write */
	uint64_t torn_bytes;                   /* torn.bytes */
	char *inner_url;                       /* malloc'd */
} faulty_config;

/*
 * The plugin object. Shared by every rank of the process; its slots may be
 * called from several threads at once, so it holds nothing mutable but the
 * lock that serialises cJSON parsing (cJSON records parse errors in a global).
 */
typedef struct faulty_plugin {
	dcp_plugin base; /* first: the registry sees a dcp_plugin */
	const dcp_host *host;
	pthread_mutex_t json_lock;
} faulty_plugin;

/*
 * Parses url (a "faulty+..." URL) into cfg: every fail.<stage> parameter, the
 * scenario file named by faults= (read now), and the inner URL. A fail.<stage>
 * parameter replaces the scenario file's entry for the same stage. Returns
 * DCP_OK, DCP_EID with a message naming the bad parameter (or file) and what
 * is accepted, or DCP_ENOMEM. cfg is always safe to clear afterwards.
 */
int faulty_config_parse(faulty_plugin *plugin, const char *url, faulty_config *cfg, dcp_msg *msg);
void faulty_config_clear(faulty_config *cfg);

/* 1 if cfg makes stage fail on rank. */
int faulty_should_fail(const faulty_config *cfg, faulty_stage stage, int rank);
/* 1 if stage fails on at least one rank (used to decide whether an optional
 * slot that the inner plugin lacks must still exist to fail). */
int faulty_stage_enabled(const faulty_config *cfg, faulty_stage stage);
/* 1 if cfg makes write_data on rank a torn write. */
int faulty_torn_write(const faulty_config *cfg, int rank);
/* 1 if some rank has a torn write (the host must then offer futures). */
int faulty_torn_enabled(const faulty_config *cfg);
/* DCP_OK if host has the version-2 future slots that torn writes need; else
 * DCP_EVERSION with a message naming url. */
int faulty_torn_check_host(const dcp_host *host, const char *url, dcp_msg *msg);
/* Writes the injected failure's message and returns DCP_EINJECTED. */
int faulty_inject(dcp_msg *msg, faulty_stage stage, int rank);

/*
 * The inner plugin for cfg->inner_url, through host->plugin_for_url. On
 * failure, msg says which inner URL could not be served and why.
 */
int faulty_inner_plugin(faulty_plugin *plugin, const faulty_config *cfg, dcp_plugin **out, dcp_msg *msg);

/*
 * A future failed from a thread of its own (write_data_async and
 * read_data_async). One per writer or reader; at most one thread at a time.
 * faulty_async_join waits for the thread, if any; writers and readers call it
 * before starting another, in abort, reset and close.
 */
typedef struct faulty_async {
	pthread_t thread;
	int running;
	const dcp_host *host;
	dcp_future *fut;
	int is_write;
	char message[DCP_MSG_MAX];
} faulty_async;

/* Completes fut with DCP_EINJECTED and the message of stage on rank, from a
 * new thread (or inline, if no thread can be started: the future contract
 * allows completion before write_data / read_data returns). */
void faulty_async_fail(faulty_async *a, const dcp_host *host, dcp_future *fut, int is_write,
                       faulty_stage stage, int rank);
void faulty_async_join(faulty_async *a);

/* Writer and reader wrappers (faulty_writer.c, faulty_reader.c): the
 * plugin's writer_open and reader_open slots. */
int faulty_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                       dcp_storage_writer **out, dcp_msg *msg);
int faulty_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                       dcp_storage_reader **out, dcp_msg *msg);

/* Rewrites msg as "<formatted prefix>: <msg's previous text>", to say in
 * which context (e.g. which inner URL) a callee failed. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void faulty_msg_wrap(dcp_msg *msg, const char *fmt, ...);

#endif /* DCP_FAULTY_H */
