/*
 * One step of the two-phase protocol: every rank contributes its outcome
 * (success with a payload, or a failure with stage, code and message); the
 * coordinator gathers them; if every rank succeeded it runs the global
 * function, which makes one reply per rank; else, or if the global function
 * fails, every rank receives the same error table. Every rank takes part in
 * every collective whatever happened before, so no rank waits forever for a
 * rank that failed.
 */
#ifndef DCP_OUTCOME_H
#define DCP_OUTCOME_H

#include "dcp/sys/comm.h"

typedef struct dcp_step_local {
	int status;          /* DCP_OK or the failure's code */
	const char *stage;   /* the function that failed; NULL on success */
	const char *message; /* NULL on success */
	const void *payload; /* on success; borrowed */
	size_t payload_len;
} dcp_step_local;

/*
 * Runs on the coordinator when every rank succeeded. payloads[r] is rank r's
 * payload. Fills replies[r] (malloc'd data; the step frees them) or returns a
 * failure with *stage (a static string) and msg, which is attributed to the
 * coordinator's rank.
 */
typedef int (*dcp_global_fn)(void *ctx, const dcp_buf *payloads, int nranks, dcp_buf *replies,
                             const char **stage, dcp_msg *msg);

/*
 * Returns DCP_OK and this rank's reply (malloc'd; caller frees reply->data),
 * or the error's code with *err set to an error object equal on every rank
 * (step = `step`). fn may be NULL: replies are then empty.
 */
int dcp_step_exchange(dcp_comm *comm, int coordinator, const char *step, const dcp_step_local *mine,
                      dcp_global_fn fn, void *ctx, dcp_buf *reply, dcp_error **err);

#endif /* DCP_OUTCOME_H */
