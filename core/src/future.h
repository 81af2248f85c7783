/*
 * Futures that plugins complete (dcp_host.write_future_complete and
 * read_future_complete) and the core waits on. A future is created and freed
 * by the core, on the rank's thread; the plugin completes it exactly once,
 * from any thread, and must not touch it afterwards.
 */
#ifndef DCP_FUTURE_H
#define DCP_FUTURE_H

#include <pthread.h>

#include "dcp/sys/storage.h"

/* A write result as the core keeps it: path is owned. */
typedef struct dcp_owned_result {
	uint32_t index;
	char *path;
	uint64_t offset;
	uint64_t length;
} dcp_owned_result;

struct dcp_future {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int completions; /* > 1 means a plugin broke the contract */
	int status;
	char message[DCP_MSG_MAX];
	size_t nresults;
	dcp_owned_result *results;
	/* Set by the core before a read future is handed to a plugin: called by
	 * host->read_request_done, on the plugin's thread. NULL: ignored. */
	void (*on_request_done)(void *ctx, size_t index);
	void *on_request_done_ctx;
};

/* NULL if out of memory. */
dcp_future *dcp_future_new(void);
/* Waits until completed; returns the status and copies the message. */
int dcp_future_wait(dcp_future *fut, dcp_msg *msg);
void dcp_future_free(dcp_future *fut);

/* The host slots. */
void dcp_future_complete_write(dcp_future *fut, int status, const dcp_write_result *results, size_t n,
                               const char *message);
void dcp_future_complete_read(dcp_future *fut, int status, const char *message);
void dcp_future_read_request_done(dcp_future *fut, size_t index);

#endif /* DCP_FUTURE_H */
