/*
 * Plans and the planner ABI.
 *
 * A save plan is what one rank will write (write items); a load plan is what
 * one rank will read (read items). Plans are made locally on every rank,
 * gathered to the coordinator, adjusted there (global plan), and scattered
 * back. The default planners implement dedup, validation and resharding; an
 * application may replace any slot with its own function and call the
 * dcp_default_* functions from it.
 *
 * Planner slots run on the rank's own thread (create_global_plan on the
 * coordinator's). `ctx` is the planner's own pointer, passed back unchanged.
 */
#ifndef DCP_SYS_PLANNER_H
#define DCP_SYS_PLANNER_H

#include "dcp/sys/metadata.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Read-only view of a state, for planners                                  */
/* ------------------------------------------------------------------------ */
typedef struct dcp_state_chunk {
	uint64_t offsets[DCP_MAX_DIMS];
	uint64_t sizes[DCP_MAX_DIMS];
	void *data;      /* borrowed from the application (or owned by the state
	                    for bytes items added with data == NULL) */
	uint64_t nbytes; /* bytes items: capacity for a load, length for a save */
} dcp_state_chunk;

typedef struct dcp_state_entry {
	const char *key;
	dcp_item_type type;
	int replicated;  /* whole tensors and bytes items: 1 */
	dcp_dtype dtype; /* tensors */
	int ndim;
	uint64_t shape[DCP_MAX_DIMS];
	size_t nchunks; /* bytes items and whole tensors: 1 */
	const dcp_state_chunk *chunks;
} dcp_state_entry;

DCP_EXTERN size_t dcp_state_count(const dcp_state *state);
/* Entries in the order they were first added. NULL if i is out of range. */
DCP_EXTERN const dcp_state_entry *dcp_state_entry_at(const dcp_state *state, size_t i);
/* Index of key, or -1. */
DCP_EXTERN long dcp_state_find(const dcp_state *state, const char *key);
/* Records the outcome of a load of entry i (used by load planners). */
DCP_EXTERN void dcp_state_mark_loaded(dcp_state *state, size_t i, uint64_t bytes_len);

/* ------------------------------------------------------------------------ */
/* Save plans                                                               */
/* ------------------------------------------------------------------------ */
typedef struct dcp_write_item {
	char *key; /* owned by the plan */
	dcp_item_type type;
	dcp_dtype dtype;
	int ndim;
	uint64_t shape[DCP_MAX_DIMS];
	uint64_t offsets[DCP_MAX_DIMS]; /* chunk box; whole tensor when replicated */
	uint64_t sizes[DCP_MAX_DIMS];
	uint64_t nbytes; /* bytes of this item's data */
	int replicated;  /* other ranks may hold an equal copy */
	uint64_t digest; /* replicated items: checksum of the data, used
	                    to detect copies that differ */
	uint32_t entry;  /* state entry on the planning rank */
	uint32_t chunk;  /* chunk within that entry */
} dcp_write_item;

typedef struct dcp_save_plan {
	size_t nitems;
	dcp_write_item *items; /* owned */
	char *storage_data;    /* the writer's per-rank data (e.g. a file prefix),
	                          set in prepare_*_plan; malloc'd, owned, may be NULL */
	char *save_id;         /* set by the core in the final plan: unique per save,
	                          equal on all ranks; owned */
} dcp_save_plan;

/* Frees everything inside plan (not plan itself) and zeroes it. */
DCP_EXTERN void dcp_save_plan_clear(dcp_save_plan *plan);

/* ------------------------------------------------------------------------ */
/* Load plans                                                               */
/* ------------------------------------------------------------------------ */
typedef struct dcp_read_item {
	uint32_t md_item;                   /* metadata items[md_item] */
	uint32_t md_chunk;                  /* ... .chunks[md_chunk]: the stored chunk */
	uint32_t entry;                     /* state entry on the loading rank */
	uint32_t chunk;                     /* chunk within that entry */
	uint64_t box_offsets[DCP_MAX_DIMS]; /* the overlap, in global coordinates */
	uint64_t box_sizes[DCP_MAX_DIMS];
} dcp_read_item;

typedef struct dcp_load_plan {
	size_t nitems;
	dcp_read_item *items; /* owned */
	char *storage_data;   /* the reader's per-rank data; malloc'd, owned, may be NULL */
} dcp_load_plan;

DCP_EXTERN void dcp_load_plan_clear(dcp_load_plan *plan);

/* ------------------------------------------------------------------------ */
/* Planner ABI. Any slot may be NULL: the default is used.                  */
/* ------------------------------------------------------------------------ */
#define DCP_SAVE_PLANNER_VERSION 1

struct dcp_save_planner {
	unsigned version; /* DCP_SAVE_PLANNER_VERSION */
	void *ctx;
	/* One write item per chunk this rank holds. */
	int (*create_local_plan)(void *ctx, const dcp_state *state, int rank, dcp_save_plan *out,
	                         dcp_msg *msg);
	/* Coordinator: dedup replicated items, validate, and describe the
	 * checkpoint in md (items, shapes, chunks; storage filled later). plans
	 * may be changed in place. */
	int (*create_global_plan)(void *ctx, dcp_save_plan *plans, int nranks, const dcp_save_options *opts,
	                          dcp_metadata *md, dcp_msg *msg);
	/* Every rank, on its final plan, before writing. */
	int (*finish_plan)(void *ctx, dcp_save_plan *plan, dcp_msg *msg);
	/* The bytes of one item: a pointer into the state, not a copy. */
	int (*resolve_data)(void *ctx, const dcp_state *state, const dcp_write_item *item, const void **data,
	                    uint64_t *len, dcp_msg *msg);
};

#define DCP_LOAD_PLANNER_VERSION 1

struct dcp_load_planner {
	unsigned version; /* DCP_LOAD_PLANNER_VERSION */
	void *ctx;
	/* Which stored chunks overlap the chunks this rank wants. */
	int (*create_local_plan)(void *ctx, const dcp_state *state, const dcp_metadata *md,
	                         const dcp_load_options *opts, dcp_load_plan *out, dcp_msg *msg);
	int (*create_global_plan)(void *ctx, dcp_load_plan *plans, int nranks, dcp_msg *msg);
	/* A bytes item's stored data is available (verified). */
	int (*load_bytes)(void *ctx, dcp_state *state, const dcp_read_item *item, const void *data,
	                  uint64_t len, dcp_msg *msg);
	/* Where the item's box goes: the destination chunk's buffer and layout.
	 * *dst is the start of the destination chunk (row-major, dst_sizes). */
	int (*resolve_tensor)(void *ctx, dcp_state *state, const dcp_read_item *item, void **dst,
	                      uint64_t dst_offsets[DCP_MAX_DIMS], uint64_t dst_sizes[DCP_MAX_DIMS],
	                      dcp_msg *msg);
	/* The item's box has been copied into the destination. */
	int (*commit_tensor)(void *ctx, dcp_state *state, const dcp_read_item *item, dcp_msg *msg);
};

/* The defaults, for planners that wrap them. */
DCP_EXTERN int dcp_default_save_create_local_plan(void *ctx, const dcp_state *state, int rank,
                                                  dcp_save_plan *out, dcp_msg *msg);
DCP_EXTERN int dcp_default_save_create_global_plan(void *ctx, dcp_save_plan *plans, int nranks,
                                                   const dcp_save_options *opts, dcp_metadata *md,
                                                   dcp_msg *msg);
DCP_EXTERN int dcp_default_save_finish_plan(void *ctx, dcp_save_plan *plan, dcp_msg *msg);
DCP_EXTERN int dcp_default_save_resolve_data(void *ctx, const dcp_state *state, const dcp_write_item *item,
                                             const void **data, uint64_t *len, dcp_msg *msg);
DCP_EXTERN int dcp_default_load_create_local_plan(void *ctx, const dcp_state *state, const dcp_metadata *md,
                                                  const dcp_load_options *opts, dcp_load_plan *out,
                                                  dcp_msg *msg);
DCP_EXTERN int dcp_default_load_create_global_plan(void *ctx, dcp_load_plan *plans, int nranks, dcp_msg *msg);
DCP_EXTERN int dcp_default_load_load_bytes(void *ctx, dcp_state *state, const dcp_read_item *item,
                                           const void *data, uint64_t len, dcp_msg *msg);
DCP_EXTERN int dcp_default_load_resolve_tensor(void *ctx, dcp_state *state, const dcp_read_item *item,
                                               void **dst, uint64_t dst_offsets[DCP_MAX_DIMS],
                                               uint64_t dst_sizes[DCP_MAX_DIMS], dcp_msg *msg);
DCP_EXTERN int dcp_default_load_commit_tensor(void *ctx, dcp_state *state, const dcp_read_item *item,
                                              dcp_msg *msg);

#ifdef __cplusplus
}
#endif
#endif /* DCP_SYS_PLANNER_H */
