/*
 * Helpers shared by the built-in comms (comm.c, comm_threads.c).
 */
#ifndef DCP_COMM_INTERNAL_H
#define DCP_COMM_INTERNAL_H

#include "dcp/sys/comm.h"

/* dst = a malloc'd copy of len bytes at src ({NULL, 0} when len is 0).
 * DCP_ENOMEM leaves dst as {NULL, 0}. */
int dcp_buf_copy(dcp_buf *dst, const void *src, size_t len);

#endif /* DCP_COMM_INTERNAL_H */
