/*
 * A one-rank state built from a checkpoint's own metadata, with buffers the
 * tool allocates: used by `dcp verify` (whole keys) and `dcp cp` (one chunk
 * per stored chunk, so the copy keeps the chunking).
 */
#include <stdlib.h>
#include <string.h>

#include "dcp_tool.h"

void md_state_clear(md_state *s)
{
	dcp_state_free(s->state);
	for (size_t i = 0; i < s->nbufs; i++)
		free(s->bufs[i]);
	free(s->bufs);
	memset(s, 0, sizeof(*s));
}

static uint64_t box_bytes(const dcp_md_item *it, const uint64_t *sizes)
{
	uint64_t n = dcp_dtype_size(it->dtype);
	for (int d = 0; d < it->ndim; d++)
		n *= sizes[d];
	return n;
}

uint64_t md_item_bytes(const dcp_md_item *it)
{
	if (it->type == DCP_ITEM_BYTES)
		return it->nchunks > 0 ? it->chunks[0].storage.length : 0;
	return box_bytes(it, it->shape);
}

int md_state_build(const dcp_metadata *md, size_t first, size_t last, int per_chunk, md_state *out, char *err,
                   size_t errlen)
{
	memset(out, 0, sizeof(*out));
	size_t cap = 0;
	for (size_t i = first; i < last; i++)
		cap += per_chunk ? md->items[i].nchunks : 1;
	out->state = dcp_state_new();
	out->bufs = calloc(cap > 0 ? cap : 1, sizeof(*out->bufs));
	if (out->state == NULL || out->bufs == NULL) {
		snprintf(err, errlen, "out of memory");
		md_state_clear(out);
		return DCP_ENOMEM;
	}
	for (size_t i = first; i < last; i++) {
		const dcp_md_item *it = &md->items[i];
		int rc;
		if (it->type == DCP_ITEM_BYTES) {
			uint64_t len = md_item_bytes(it);
			rc = dcp_state_add_bytes(out->state, it->key, NULL, 0); /* the state allocates */
			out->bytes += len;
		} else if (!per_chunk) {
			uint64_t len = md_item_bytes(it);
			void *buf = malloc(len > 0 ? (size_t)len : 1);
			if (buf == NULL) {
				snprintf(err, errlen, "key %s: out of memory for %llu bytes", it->key,
				         (unsigned long long)len);
				md_state_clear(out);
				return DCP_ENOMEM;
			}
			out->bufs[out->nbufs++] = buf;
			out->bytes += len;
			rc = dcp_state_add_tensor(out->state, it->key, it->dtype, it->ndim, it->shape, buf);
		} else {
			rc = DCP_OK;
			for (size_t c = 0; c < it->nchunks && rc == DCP_OK; c++) {
				const dcp_md_chunk *ch = &it->chunks[c];
				uint64_t len = box_bytes(it, ch->sizes);
				void *buf = malloc(len > 0 ? (size_t)len : 1);
				if (buf == NULL) {
					snprintf(err, errlen, "key %s: out of memory for %llu bytes", it->key,
					         (unsigned long long)len);
					md_state_clear(out);
					return DCP_ENOMEM;
				}
				out->bufs[out->nbufs++] = buf;
				out->bytes += len;
				rc = dcp_state_add_shard(out->state, it->key, it->dtype, it->ndim, it->shape,
				                         ch->offsets, ch->sizes, buf);
			}
		}
		if (rc != DCP_OK) {
			snprintf(err, errlen, "key %s: cannot describe it in a state: %s (%s)", it->key,
			         dcp_strerror(rc), dcp_state_last_error(out->state));
			md_state_clear(out);
			return rc;
		}
	}
	return DCP_OK;
}
