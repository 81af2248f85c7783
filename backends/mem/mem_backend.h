/*
 * An in-process object store, and backends that view one namespace of it.
 *
 * The store is created by the mem plugin and hangs off the plugin object, so
 * that every rank of a process (one thread each) sees the same objects; it is
 * never a global. A backend is a view of one namespace (the NAME of
 * mem://NAME): its object "p" is the store's object "NAME/p".
 *
 * Objects are immutable once published: a writer builds its object privately
 * and publishes it at writer_close; put_atomic swaps in a new object; readers
 * hold a reference to the object they read, so a concurrent swap or removal
 * never changes bytes under them. All slots are thread-safe.
 */
#ifndef DCP_MEM_BACKEND_H
#define DCP_MEM_BACKEND_H

#include "backend.h"

typedef struct dcp_mem_store dcp_mem_store;

/* A new, empty store with one reference (the caller's). NULL if out of memory. */
dcp_mem_store *dcp_mem_store_new(void);
/* Drops the caller's reference; the store is freed with its objects when the
 * last backend viewing it is destroyed too. NULL is ignored. */
void dcp_mem_store_release(dcp_mem_store *store);

/* A backend viewing namespace ns (non-empty, no trailing '/'; copied). It
 * holds its own reference to the store. */
int dcp_mem_backend_open(dcp_mem_store *store, const char *ns, dcp_backend **out, dcp_msg *msg);

/* Bytes held by the published objects of the store (for tests and tools). */
uint64_t dcp_mem_store_bytes(dcp_mem_store *store);

#endif /* DCP_MEM_BACKEND_H */
