/*
 * Save and load plans on the wire between ranks (see wire.h).
 */
#ifndef DCP_PLAN_CODEC_H
#define DCP_PLAN_CODEC_H

#include "dcp/sys/planner.h"
#include "wire.h"

void dcp_save_plan_encode(const dcp_save_plan *plan, dcp_wbuf *w);
/* Fills *plan (cleared first). DCP_ECOMM if malformed, DCP_ENOMEM. */
int dcp_save_plan_decode(const void *data, size_t len, dcp_save_plan *plan);

void dcp_load_plan_encode(const dcp_load_plan *plan, dcp_wbuf *w);
int dcp_load_plan_decode(const void *data, size_t len, dcp_load_plan *plan);

#endif /* DCP_PLAN_CODEC_H */
