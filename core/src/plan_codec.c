#include "plan_codec.h"

#include <stdlib.h>
#include <string.h>

void dcp_save_plan_encode(const dcp_save_plan *plan, dcp_wbuf *w)
{
	dcp_wbuf_str(w, plan->storage_data);
	dcp_wbuf_str(w, plan->save_id);
	dcp_wbuf_u64(w, plan->nitems);
	for (size_t i = 0; i < plan->nitems; i++) {
		const dcp_write_item *it = &plan->items[i];
		dcp_wbuf_str(w, it->key);
		dcp_wbuf_u32(w, (uint32_t)it->type);
		dcp_wbuf_u32(w, (uint32_t)it->dtype);
		dcp_wbuf_i32(w, it->ndim);
		for (int d = 0; d < it->ndim && d < DCP_MAX_DIMS; d++) {
			dcp_wbuf_u64(w, it->shape[d]);
			dcp_wbuf_u64(w, it->offsets[d]);
			dcp_wbuf_u64(w, it->sizes[d]);
		}
		dcp_wbuf_u64(w, it->nbytes);
		dcp_wbuf_i32(w, it->replicated);
		dcp_wbuf_u64(w, it->digest);
		dcp_wbuf_u32(w, it->entry);
		dcp_wbuf_u32(w, it->chunk);
	}
}

int dcp_save_plan_decode(const void *data, size_t len, dcp_save_plan *plan)
{
	dcp_rbuf r;
	memset(plan, 0, sizeof(*plan));
	dcp_rbuf_init(&r, data, len);
	plan->storage_data = dcp_rbuf_str(&r);
	plan->save_id = dcp_rbuf_str(&r);
	uint64_t n = dcp_rbuf_u64(&r);
	/* Each item takes at least 40 bytes: refuse counts the buffer cannot hold. */
	if (r.failed || n > dcp_rbuf_left(&r) / 40)
		goto bad;
	if (n > 0) {
		plan->items = calloc((size_t)n, sizeof(*plan->items));
		if (plan->items == NULL) {
			dcp_save_plan_clear(plan);
			return DCP_ENOMEM;
		}
	}
	for (uint64_t i = 0; i < n && !r.failed; i++) {
		dcp_write_item *it = &plan->items[i];
		plan->nitems++;
		it->key = dcp_rbuf_str(&r);
		it->type = (dcp_item_type)dcp_rbuf_u32(&r);
		it->dtype = (dcp_dtype)dcp_rbuf_u32(&r);
		it->ndim = dcp_rbuf_i32(&r);
		if (it->ndim < 0 || it->ndim > DCP_MAX_DIMS || it->key == NULL)
			goto bad;
		for (int d = 0; d < it->ndim; d++) {
			it->shape[d] = dcp_rbuf_u64(&r);
			it->offsets[d] = dcp_rbuf_u64(&r);
			it->sizes[d] = dcp_rbuf_u64(&r);
		}
		it->nbytes = dcp_rbuf_u64(&r);
		it->replicated = dcp_rbuf_i32(&r);
		it->digest = dcp_rbuf_u64(&r);
		it->entry = dcp_rbuf_u32(&r);
		it->chunk = dcp_rbuf_u32(&r);
	}
	if (r.failed)
		goto bad;
	return DCP_OK;
bad:
	dcp_save_plan_clear(plan);
	return DCP_ECOMM;
}

void dcp_load_plan_encode(const dcp_load_plan *plan, dcp_wbuf *w)
{
	dcp_wbuf_str(w, plan->storage_data);
	dcp_wbuf_u64(w, plan->nitems);
	for (size_t i = 0; i < plan->nitems; i++) {
		const dcp_read_item *it = &plan->items[i];
		dcp_wbuf_u32(w, it->md_item);
		dcp_wbuf_u32(w, it->md_chunk);
		dcp_wbuf_u32(w, it->entry);
		dcp_wbuf_u32(w, it->chunk);
		for (int d = 0; d < DCP_MAX_DIMS; d++) {
			dcp_wbuf_u64(w, it->box_offsets[d]);
			dcp_wbuf_u64(w, it->box_sizes[d]);
		}
	}
}

int dcp_load_plan_decode(const void *data, size_t len, dcp_load_plan *plan)
{
	dcp_rbuf r;
	memset(plan, 0, sizeof(*plan));
	dcp_rbuf_init(&r, data, len);
	plan->storage_data = dcp_rbuf_str(&r);
	uint64_t n = dcp_rbuf_u64(&r);
	const size_t item_size = 16 + 16 * DCP_MAX_DIMS;
	if (r.failed || n > dcp_rbuf_left(&r) / item_size)
		goto bad;
	if (n > 0) {
		plan->items = calloc((size_t)n, sizeof(*plan->items));
		if (plan->items == NULL) {
			dcp_load_plan_clear(plan);
			return DCP_ENOMEM;
		}
	}
	plan->nitems = (size_t)n;
	for (uint64_t i = 0; i < n; i++) {
		dcp_read_item *it = &plan->items[i];
		it->md_item = dcp_rbuf_u32(&r);
		it->md_chunk = dcp_rbuf_u32(&r);
		it->entry = dcp_rbuf_u32(&r);
		it->chunk = dcp_rbuf_u32(&r);
		for (int d = 0; d < DCP_MAX_DIMS; d++) {
			it->box_offsets[d] = dcp_rbuf_u64(&r);
			it->box_sizes[d] = dcp_rbuf_u64(&r);
		}
	}
	if (r.failed)
		goto bad;
	return DCP_OK;
bad:
	dcp_load_plan_clear(plan);
	return DCP_ECOMM;
}
