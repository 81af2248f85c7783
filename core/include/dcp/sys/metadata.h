/*
 * The checkpoint metadata model, shared by the core, planners and plugins.
 *
 * A checkpoint is one metadata document plus data objects. The metadata lists
 * every key: a tensor (dtype, global shape, the stored chunks) or a bytes item
 * (one stored chunk), and for each stored chunk where its bytes live (a path
 * relative to the checkpoint root, an offset and a length) and its checksums.
 *
 * Tensor bytes are stored raw: little-endian, row-major, contiguous, with no
 * framing, so any tool that has the metadata can read a data file.
 *
 * Checksums: the stored bytes of each chunk are cut into blocks of
 * `checksum_block` bytes (the last may be shorter); sums[i] is the XXH3-64 of
 * block i (seed 0). Per-block sums let a resharded load verify the sub-range
 * it reads without reading the whole chunk.
 *
 * Ownership: every pointer inside a dcp_metadata is owned by it and freed by
 * dcp_metadata_free (from the core, or host->metadata_free in a plugin).
 */
#ifndef DCP_SYS_METADATA_H
#define DCP_SYS_METADATA_H

#include "dcp/sys/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Format of the metadata document. A reader refuses a newer major. */
#define DCP_FORMAT_MAJOR           1
#define DCP_FORMAT_MINOR           0
#define DCP_CHECKSUM_ALGO          "xxh3-64"
#define DCP_CHECKSUM_BLOCK_DEFAULT (1u << 20)

typedef enum dcp_item_type { DCP_ITEM_TENSOR = 1, DCP_ITEM_BYTES = 2 } dcp_item_type;

typedef struct dcp_storage_info {
	char *path;      /* relative to the checkpoint root, '/'-separated, no "..",
	                    no leading '/', no empty component */
	uint64_t offset; /* of the chunk's first byte in that object */
	uint64_t length; /* bytes of the chunk */
	uint32_t nsums;  /* ceil(length / checksum_block); 0 if length == 0 */
	uint64_t *sums;  /* nsums block checksums */
} dcp_storage_info;

typedef struct dcp_md_chunk {
	uint64_t offsets[DCP_MAX_DIMS]; /* tensors: first ndim used */
	uint64_t sizes[DCP_MAX_DIMS];
	dcp_storage_info storage;
} dcp_md_chunk;

typedef struct dcp_md_item {
	char *key;
	dcp_item_type type;
	dcp_dtype dtype;              /* tensors only */
	int ndim;                     /* tensors only; 0 = scalar */
	uint64_t shape[DCP_MAX_DIMS]; /* tensors only */
	size_t nchunks;               /* bytes items: exactly 1 */
	dcp_md_chunk *chunks;         /* tensors: sorted by offsets, row-major order */
} dcp_md_item;

struct dcp_metadata {
	unsigned format_major;
	unsigned format_minor;
	char *save_id;           /* unique per save; plugins may use it in object names */
	uint64_t checksum_block; /* bytes per checksum block, > 0 */
	size_t nitems;
	dcp_md_item *items; /* sorted by key (strcmp), keys unique */
	char *storage_meta; /* JSON text of the writer's own data, or NULL */
};

/* Binary search by key; NULL if absent. */
DCP_EXTERN const dcp_md_item *dcp_metadata_find(const dcp_metadata *md, const char *key);

/*
 * JSON codec. encode: *json is malloc'd text (caller frees) of *len bytes, not
 * counting a terminating NUL that is also written. decode: parses and fully
 * validates (types, sizes, chunk bounds and overlaps, paths) and returns
 * DCP_EMETADATA or DCP_EVERSION with a message in msg on any problem; it
 * never crashes on any input.
 */
DCP_EXTERN int dcp_metadata_encode(const dcp_metadata *md, char **json, size_t *len, dcp_msg *msg);
DCP_EXTERN int dcp_metadata_decode(const char *json, size_t len, dcp_metadata **out, dcp_msg *msg);

/* Validates an in-memory metadata (what decode checks after parsing). */
DCP_EXTERN int dcp_metadata_validate(const dcp_metadata *md, dcp_msg *msg);

/* A deep copy; NULL if out of memory. */
DCP_EXTERN dcp_metadata *dcp_metadata_dup(const dcp_metadata *md);

/* True if a relative storage path is acceptable (see dcp_storage_info.path). */
DCP_EXTERN int dcp_storage_path_is_safe(const char *path);

/* XXH3-64 block checksums of `len` bytes: fills sums[0..ceil(len/block)-1]. */
DCP_EXTERN void dcp_checksum_blocks(const void *data, uint64_t len, uint64_t block, uint64_t *sums);
DCP_EXTERN uint64_t dcp_checksum(const void *data, uint64_t len);

#ifdef __cplusplus
}
#endif
#endif /* DCP_SYS_METADATA_H */
