/*
 * What the protocol needs from the planners besides the public slots.
 */
#ifndef DCP_PLANNER_INTERNAL_H
#define DCP_PLANNER_INTERNAL_H

#include "dcp/sys/planner.h"

/* The slots of `custom` where set, else the defaults. */
void dcp_save_planner_resolve(const dcp_save_planner *custom, dcp_save_planner *out);
void dcp_load_planner_resolve(const dcp_load_planner *custom, dcp_load_planner *out);

#endif /* DCP_PLANNER_INTERNAL_H */
