/*
 * What the core's load path needs from a state beyond dcp/sys/planner.h.
 * Like every dcp_state_* call, these run on the thread that uses the state.
 */
#ifndef DCP_STATE_INTERNAL_H
#define DCP_STATE_INTERNAL_H

#include "dcp/sys/planner.h"

/*
 * Stores the loaded bytes of the bytes item `entry` (len bytes at data; data
 * may be NULL when len is 0) and marks it loaded with length len.
 * - If the application gave a buffer, the bytes are copied into it when they
 *   fit its capacity; otherwise DCP_EMISMATCH, naming the key and both sizes.
 * - If it gave NULL, the state allocates a buffer (also for 0 bytes: the
 *   loaded data pointer is then non-NULL), owned by the state, freed by
 *   dcp_state_free and replaced by a later load; the entry's chunk then
 *   points at it with nbytes = len.
 * DCP_EINVAL if entry is not a bytes item, DCP_ENOMEM if out of memory. On
 * failure msg (may be NULL) and dcp_state_last_error say why, and the entry
 * is left as it was.
 */
int dcp_state_store_bytes(dcp_state *st, size_t entry, const void *data, uint64_t len, dcp_msg *msg);

/* Forgets which entries were loaded (start of a load). Buffers allocated by
 * earlier loads are kept. */
void dcp_state_reset_loaded(dcp_state *st);

#endif /* DCP_STATE_INTERNAL_H */
