/*
 * Pieces shared by the save and load drivers.
 */
#ifndef DCP_PROTOCOL_H
#define DCP_PROTOCOL_H

#include "dcp/sys/comm.h"
#include "dcp/sys/storage.h"

/* A local failure on this rank: stage (static string), code, message. */
typedef struct dcp_local_failure {
	int code;
	const char *stage;
	dcp_msg msg;
} dcp_local_failure;

/* Records a failure unless one is recorded already (the first one wins). */
void dcp_fail(dcp_local_failure *f, int code, const char *stage, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 4, 5)))
#endif
        ;
/* Records a failure with a message from a callee (empty -> a generic one). */
void dcp_fail_msg(dcp_local_failure *f, int code, const char *stage, const dcp_msg *msg);

/* A unique id for one save: 32 hex digits from the system's random source,
 * falling back to time and address entropy. buf holds at least 33 bytes. */
void dcp_make_save_id(char *buf, size_t len);

/* comm, or a fresh single-rank comm in *owned (freed by the caller). NULL
 * if out of memory. */
dcp_comm *dcp_comm_or_single(dcp_comm *comm, dcp_comm **owned);

#endif /* DCP_PROTOCOL_H */
