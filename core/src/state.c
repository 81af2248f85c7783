/*
 * The state: what one rank saves, or where it wants its data loaded.
 *
 * Entries keep the order in which keys were first added and are found by key
 * through an open-addressing hash table. Each entry is allocated on its own,
 * so the pointers given by dcp_state_entry_at stay valid until the state is
 * freed (its chunks pointer may change when a chunk is added).
 *
 * Every dcp_state_* call that fails writes its reason to last_error; success
 * leaves last_error as it was. A state is used by one thread at a time.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/sys/planner.h"
#include "state_internal.h"

#define KEY_MAX    1024
#define KEY_SHOW   200 /* bytes of a key quoted in a message */
#define SHAPE_TEXT 200

enum entry_kind { KIND_SHARD, KIND_WHOLE, KIND_BYTES };

typedef struct state_entry {
	dcp_state_entry pub; /* first: dcp_state_entry_at hands out &pub */
	enum entry_kind kind;
	char *key;               /* owned; pub.key points here */
	dcp_state_chunk *chunks; /* owned; pub.chunks points here */
	size_t cap;              /* chunks allocated */
	int loaded;              /* filled by the last load */
	uint64_t loaded_len;     /* bytes items: length of the loaded item */
	void *owned;             /* bytes items: buffer allocated by a load, or NULL */
} state_entry;

struct dcp_state {
	state_entry **entries; /* count entries, in order of first add */
	size_t count;
	size_t cap;
	size_t *table;    /* table_cap slots: 0 empty, else entry index + 1 */
	size_t table_cap; /* 0 or a power of two, at least twice count */
	char last_error[DCP_MSG_MAX];
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(dcp_state *st, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->last_error, sizeof(st->last_error), fmt, ap);
	va_end(ap);
	return code;
}

/* The key as quoted in messages: at most KEY_SHOW bytes, non-printable bytes
 * as \xNN, "..." if cut. */
static void show_key(char *out, size_t cap, const char *key)
{
	size_t o = 0, i;

	for (i = 0; key[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)key[i];
		if (i >= KEY_SHOW || o + 8 >= cap) {
			snprintf(out + o, cap - o, "...");
			return;
		}
		if (ch >= 0x20 && ch < 0x7f)
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
	}
	out[o] = '\0';
}

/* "[2, 3]"; "[]" for a scalar. */
static void show_dims(char *out, size_t cap, int ndim, const uint64_t *dims)
{
	size_t o;
	int d;

	o = (size_t)snprintf(out, cap, "[");
	for (d = 0; d < ndim && o < cap; d++)
		o += (size_t)snprintf(out + o, cap - o, "%s%" PRIu64, d > 0 ? ", " : "", dims[d]);
	if (o < cap)
		snprintf(out + o, cap - o, "]");
}

static const char *kind_name(enum entry_kind kind)
{
	switch (kind) {
	case KIND_SHARD:
		return "a tensor shard";
	case KIND_WHOLE:
		return "a whole tensor";
	default:
		return "a bytes item";
	}
}

/* Checks the key rules; on failure writes last_error and returns DCP_EINVAL. */
static int check_key(dcp_state *st, const char *key)
{
	char shown[KEY_SHOW + 16];
	size_t i;

	if (key == NULL)
		return fail(st, DCP_EINVAL,
		            "key is NULL: pass a non-empty dotted name such as \"model.weight\"");
	if (key[0] == '\0')
		return fail(st, DCP_EINVAL,
		            "key is empty: pass a non-empty dotted name such as \"model.weight\"");
	for (i = 0; key[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)key[i];
		if (i >= KEY_MAX) {
			show_key(shown, sizeof(shown), key);
			return fail(st, DCP_EINVAL, "key '%s' is %zu bytes long: keys are at most %d bytes",
			            shown, strlen(key), KEY_MAX);
		}
		if (ch < 0x20 || ch >= 0x7f) {
			show_key(shown, sizeof(shown), key);
			return fail(st, DCP_EINVAL,
			            "key '%s' has the non-printable byte 0x%02x at offset %zu: keys are "
			            "printable "
			            "ASCII (0x20 to 0x7e)",
			            shown, ch, i);
		}
	}
	return DCP_OK;
}

static uint64_t hash_key(const char *key)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */

	for (; *key != '\0'; key++) {
		h ^= (unsigned char)*key;
		h *= 1099511628211ull;
	}
	return h;
}

long dcp_state_find(const dcp_state *state, const char *key)
{
	size_t mask, i;

	if (state == NULL || key == NULL || state->table_cap == 0)
		return -1;
	mask = state->table_cap - 1;
	for (i = (size_t)hash_key(key) & mask; state->table[i] != 0; i = (i + 1) & mask) {
		size_t idx = state->table[i] - 1;
		if (strcmp(state->entries[idx]->key, key) == 0)
			return (long)idx;
	}
	return -1;
}

static void table_put(size_t *table, size_t cap, const char *key, size_t idx)
{
	size_t mask = cap - 1, i;

	for (i = (size_t)hash_key(key) & mask; table[i] != 0; i = (i + 1) & mask)
		;
	table[i] = idx + 1;
}

/* Makes room for one more entry in entries and table. */
static int reserve_entry(dcp_state *st)
{
	if (st->count == st->cap) {
		size_t ncap = st->cap != 0 ? st->cap * 2 : 16;
		state_entry **ne;
		if (ncap > SIZE_MAX / sizeof(*ne))
			return DCP_ENOMEM;
		ne = realloc(st->entries, ncap * sizeof(*ne));
		if (ne == NULL)
			return DCP_ENOMEM;
		st->entries = ne;
		st->cap = ncap;
	}
	if ((st->count + 1) > st->table_cap / 2) {
		size_t ncap = st->table_cap != 0 ? st->table_cap * 2 : 32, i;
		size_t *nt;
		if (ncap > SIZE_MAX / sizeof(*nt))
			return DCP_ENOMEM;
		nt = calloc(ncap, sizeof(*nt));
		if (nt == NULL)
			return DCP_ENOMEM;
		for (i = 0; i < st->count; i++)
			table_put(nt, ncap, st->entries[i]->key, i);
		free(st->table);
		st->table = nt;
		st->table_cap = ncap;
	}
	return DCP_OK;
}

/* Makes room for one more chunk in e. */
static int reserve_chunk(state_entry *e)
{
	dcp_state_chunk *nc;
	size_t ncap;

	if (e->pub.nchunks < e->cap)
		return DCP_OK;
	ncap = e->cap != 0 ? e->cap * 2 : 1;
	if (ncap > SIZE_MAX / sizeof(*nc))
		return DCP_ENOMEM;
	nc = realloc(e->chunks, ncap * sizeof(*nc));
	if (nc == NULL)
		return DCP_ENOMEM;
	e->chunks = nc;
	e->cap = ncap;
	e->pub.chunks = nc;
	return DCP_OK;
}

static int boxes_overlap(int ndim, const uint64_t *ao, const uint64_t *as, const uint64_t *bo,
                         const uint64_t *bs)
{
	int d;

	for (d = 0; d < ndim; d++) {
		if (as[d] == 0 || bs[d] == 0)
			return 0;
		if (ao[d] + as[d] <= bo[d] || bo[d] + bs[d] <= ao[d])
			return 0;
	}
	return 1; /* a scalar's chunks always hold its one element */
}

/* The new item, as given by the caller. */
typedef struct new_item {
	enum entry_kind kind;
	const char *key;
	dcp_dtype dtype;
	int ndim;
	uint64_t shape[DCP_MAX_DIMS];
	dcp_state_chunk chunk;
} new_item;

/* Validates a tensor chunk on its own: dtype, ndim, dims, sizes, data. */
static int check_tensor(dcp_state *st, const char *shown, dcp_dtype dtype, int ndim, const uint64_t *shape,
                        const uint64_t *offsets, const uint64_t *sizes, const void *data)
{
	char t1[SHAPE_TEXT], t2[SHAPE_TEXT], t3[SHAPE_TEXT];
	uint64_t bytes, elems = 1;
	int d;

	if ((int)dtype < 0 || (int)dtype >= DCP_DTYPE_COUNT_)
		return fail(st, DCP_EINVAL, "tensor '%s': unknown dtype %d: use one of DCP_F64 .. DCP_BOOL",
		            shown, (int)dtype);
	if (ndim < 0 || ndim > DCP_MAX_DIMS)
		return fail(st, DCP_EINVAL, "tensor '%s': ndim %d is out of range: use 0 (a scalar) to %d",
		            shown, ndim, DCP_MAX_DIMS);
	if (ndim > 0 && shape == NULL)
		return fail(st, DCP_EINVAL, "tensor '%s': shape is NULL but ndim is %d: pass %d dims", shown,
		            ndim, ndim);
	if (ndim > 0 && (offsets == NULL || sizes == NULL))
		return fail(
		        st, DCP_EINVAL,
		        "tensor '%s': chunk offsets or sizes is NULL but ndim is %d: pass the chunk's box",
		        shown, ndim);

	/* Every partial product of nonzero dims must fit, so that strides and
	 * byte offsets computed anywhere later cannot overflow. */
	bytes = dcp_dtype_size(dtype);
	for (d = 0; d < ndim; d++) {
		uint64_t dim = shape[d] != 0 ? shape[d] : 1;
		if (bytes > UINT64_MAX / dim) {
			show_dims(t1, sizeof(t1), ndim, shape);
			return fail(st, DCP_EINVAL,
			            "tensor '%s': shape %s of %s is more than 2^64 bytes: a tensor's size in "
			            "bytes "
			            "must fit in 64 bits",
			            shown, t1, dcp_dtype_name(dtype));
		}
		bytes *= dim;
	}
#if SIZE_MAX < UINT64_MAX
	if (bytes > SIZE_MAX) {
		show_dims(t1, sizeof(t1), ndim, shape);
		return fail(st, DCP_EINVAL,
		            "tensor '%s': shape %s of %s does not fit in this process's memory", shown, t1,
		            dcp_dtype_name(dtype));
	}
#endif
	for (d = 0; d < ndim; d++) {
		if (offsets[d] > shape[d] || sizes[d] > shape[d] - offsets[d]) {
			show_dims(t1, sizeof(t1), ndim, offsets);
			show_dims(t2, sizeof(t2), ndim, sizes);
			show_dims(t3, sizeof(t3), ndim, shape);
			return fail(st, DCP_EINVAL,
			            "tensor '%s': chunk at offsets %s with sizes %s lies outside shape %s in "
			            "dim %d: "
			            "a chunk must lie inside the tensor",
			            shown, t1, t2, t3, d);
		}
		elems *= sizes[d];
	}
	if (data == NULL && elems > 0)
		return fail(st, DCP_EINVAL,
		            "tensor '%s': data is NULL but the chunk has %" PRIu64
		            " elements: pass the chunk's buffer (NULL is only for an empty chunk)",
		            shown, elems);
	return DCP_OK;
}

/* Checks the new item against the entry already under its key. */
static int check_existing(dcp_state *st, const char *shown, const state_entry *e, const new_item *it)
{
	char t1[SHAPE_TEXT], t2[SHAPE_TEXT], t3[SHAPE_TEXT], t4[SHAPE_TEXT];
	size_t i;

	if (e->kind != it->kind)
		return fail(st, DCP_EINVAL,
		            "key '%s' was added as %s and now as %s: a key is either one tensor or one "
		            "bytes item",
		            shown, kind_name(e->kind), kind_name(it->kind));
	if (it->kind == KIND_BYTES)
		return fail(st, DCP_EINVAL, "bytes item '%s' was already added: add a bytes item once",
		            shown);
	if (e->pub.dtype != it->dtype)
		return fail(st, DCP_EINVAL,
		            "tensor '%s' was added with dtype %s and now with dtype %s: every chunk of a "
		            "tensor has "
		            "the same dtype",
		            shown, dcp_dtype_name(e->pub.dtype), dcp_dtype_name(it->dtype));
	if (e->pub.ndim != it->ndim ||
	    memcmp(e->pub.shape, it->shape, (size_t)it->ndim * sizeof(it->shape[0])) != 0) {
		show_dims(t1, sizeof(t1), e->pub.ndim, e->pub.shape);
		show_dims(t2, sizeof(t2), it->ndim, it->shape);
		return fail(st, DCP_EINVAL,
		            "tensor '%s' was added with shape %s and now with shape %s: every chunk of a "
		            "tensor has "
		            "the same global shape",
		            shown, t1, t2);
	}
	if (it->kind == KIND_WHOLE)
		return fail(st, DCP_EINVAL, "tensor '%s' was already added as a whole tensor: add it once",
		            shown);
	for (i = 0; i < e->pub.nchunks; i++) {
		const dcp_state_chunk *c = &e->chunks[i];
		if (boxes_overlap(it->ndim, c->offsets, c->sizes, it->chunk.offsets, it->chunk.sizes)) {
			show_dims(t1, sizeof(t1), it->ndim, it->chunk.offsets);
			show_dims(t2, sizeof(t2), it->ndim, it->chunk.sizes);
			show_dims(t3, sizeof(t3), it->ndim, c->offsets);
			show_dims(t4, sizeof(t4), it->ndim, c->sizes);
			return fail(st, DCP_EINVAL,
			            "tensor '%s': the chunk at offsets %s with sizes %s overlaps the chunk "
			            "at offsets "
			            "%s with sizes %s added before on this rank: chunks of a tensor must not "
			            "overlap",
			            shown, t1, t2, t3, t4);
		}
	}
	if (e->pub.nchunks >= UINT32_MAX)
		return fail(st, DCP_EINVAL, "tensor '%s' has too many chunks on this rank (%zu): merge some",
		            shown, e->pub.nchunks);
	return DCP_OK;
}

static int add_item(dcp_state *st, const new_item *it)
{
	char shown[KEY_SHOW + 16];
	state_entry *e;
	long idx;
	int rc;

	show_key(shown, sizeof(shown), it->key);
	idx = dcp_state_find(st, it->key);
	if (idx >= 0) {
		e = st->entries[idx];
		rc = check_existing(st, shown, e, it);
		if (rc != DCP_OK)
			return rc;
		if (reserve_chunk(e) != DCP_OK)
			return fail(st, DCP_ENOMEM, "out of memory adding a chunk of tensor '%s'", shown);
		e->chunks[e->pub.nchunks++] = it->chunk;
		return DCP_OK;
	}

	if (st->count >= UINT32_MAX)
		return fail(st, DCP_EINVAL,
		            "cannot add key '%s': the state already holds %zu keys, the most a plan "
		            "can address",
		            shown, st->count);
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		goto nomem;
	e->key = malloc(strlen(it->key) + 1);
	if (e->key == NULL)
		goto nomem;
	strcpy(e->key, it->key);
	if (reserve_chunk(e) != DCP_OK || reserve_entry(st) != DCP_OK)
		goto nomem;
	e->kind = it->kind;
	e->pub.key = e->key;
	e->pub.type = it->kind == KIND_BYTES ? DCP_ITEM_BYTES : DCP_ITEM_TENSOR;
	e->pub.replicated = it->kind != KIND_SHARD;
	e->pub.dtype = it->dtype;
	e->pub.ndim = it->ndim;
	memcpy(e->pub.shape, it->shape, sizeof(e->pub.shape));
	e->chunks[0] = it->chunk;
	e->pub.nchunks = 1;
	e->pub.chunks = e->chunks;
	st->entries[st->count] = e;
	table_put(st->table, st->table_cap, e->key, st->count);
	st->count++;
	return DCP_OK;

nomem:
	if (e != NULL) {
		free(e->chunks);
		free(e->key);
		free(e);
	}
	return fail(st, DCP_ENOMEM, "out of memory adding key '%s'", shown);
}

dcp_state *dcp_state_new(void)
{
	return calloc(1, sizeof(dcp_state));
}

void dcp_state_free(dcp_state *state)
{
	size_t i;

	if (state == NULL)
		return;
	for (i = 0; i < state->count; i++) {
		state_entry *e = state->entries[i];
		free(e->owned);
		free(e->chunks);
		free(e->key);
		free(e);
	}
	free(state->entries);
	free(state->table);
	free(state);
}

static int add_tensor_common(dcp_state *st, enum entry_kind kind, const char *key, dcp_dtype dtype, int ndim,
                             const uint64_t *shape, const uint64_t *offsets, const uint64_t *sizes,
                             void *data)
{
	char shown[KEY_SHOW + 16];
	new_item it;
	int rc, d;

	if (st == NULL)
		return DCP_EINVAL;
	rc = check_key(st, key);
	if (rc != DCP_OK)
		return rc;
	show_key(shown, sizeof(shown), key);
	rc = check_tensor(st, shown, dtype, ndim, shape, offsets, sizes, data);
	if (rc != DCP_OK)
		return rc;
	memset(&it, 0, sizeof(it));
	it.kind = kind;
	it.key = key;
	it.dtype = dtype;
	it.ndim = ndim;
	it.chunk.data = data;
	it.chunk.nbytes = dcp_dtype_size(dtype);
	for (d = 0; d < ndim; d++) {
		it.shape[d] = shape[d];
		it.chunk.offsets[d] = offsets[d];
		it.chunk.sizes[d] = sizes[d];
		it.chunk.nbytes *= sizes[d];
	}
	return add_item(st, &it);
}

int dcp_state_add_shard(dcp_state *state, const char *key, dcp_dtype dtype, int ndim, const uint64_t *shape,
                        const uint64_t *offsets, const uint64_t *sizes, void *data)
{
	return add_tensor_common(state, KIND_SHARD, key, dtype, ndim, shape, offsets, sizes, data);
}

int dcp_state_add_tensor(dcp_state *state, const char *key, dcp_dtype dtype, int ndim, const uint64_t *shape,
                         void *data)
{
	static const uint64_t zeros[DCP_MAX_DIMS];

	return add_tensor_common(state, KIND_WHOLE, key, dtype, ndim, shape, zeros, shape, data);
}

/* data NULL is allowed only with len 0: the load then allocates the buffer. */
int dcp_state_add_bytes(dcp_state *state, const char *key, void *data, size_t len)
{
	char shown[KEY_SHOW + 16];
	new_item it;
	int rc;

	if (state == NULL)
		return DCP_EINVAL;
	rc = check_key(state, key);
	if (rc != DCP_OK)
		return rc;
	show_key(shown, sizeof(shown), key);
	if (data == NULL && len > 0)
		return fail(state, DCP_EINVAL,
		            "bytes item '%s': data is NULL but len is %zu: pass the buffer, or NULL with len "
		            "0 to "
		            "let a load allocate it",
		            shown, len);
	memset(&it, 0, sizeof(it));
	it.kind = KIND_BYTES;
	it.key = key;
	it.dtype = DCP_U8;
	it.chunk.data = data;
	it.chunk.nbytes = len;
	return add_item(state, &it);
}

int dcp_state_get_bytes(const dcp_state *state, const char *key, const void **data, size_t *len)
{
	const state_entry *e;
	long idx;

	if (state == NULL || key == NULL)
		return DCP_EINVAL;
	idx = dcp_state_find(state, key);
	if (idx < 0)
		return DCP_ENOTFOUND;
	e = state->entries[idx];
	if (e->kind != KIND_BYTES)
		return DCP_EINVAL;
	if (data != NULL)
		*data = e->chunks[0].data;
	if (len != NULL)
		*len = (size_t)(e->loaded ? e->loaded_len : e->chunks[0].nbytes);
	return DCP_OK;
}

int dcp_state_was_loaded(const dcp_state *state, const char *key)
{
	long idx = dcp_state_find(state, key);

	return idx >= 0 && state->entries[idx]->loaded;
}

const char *dcp_state_last_error(const dcp_state *state)
{
	return state != NULL ? state->last_error : "";
}

size_t dcp_state_count(const dcp_state *state)
{
	return state != NULL ? state->count : 0;
}

const dcp_state_entry *dcp_state_entry_at(const dcp_state *state, size_t i)
{
	if (state == NULL || i >= state->count)
		return NULL;
	return &state->entries[i]->pub;
}

void dcp_state_mark_loaded(dcp_state *state, size_t i, uint64_t bytes_len)
{
	if (state == NULL || i >= state->count)
		return;
	state->entries[i]->loaded = 1;
	state->entries[i]->loaded_len = bytes_len;
}

void dcp_state_reset_loaded(dcp_state *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->count; i++) {
		st->entries[i]->loaded = 0;
		st->entries[i]->loaded_len = 0;
	}
}

int dcp_state_store_bytes(dcp_state *st, size_t entry, const void *data, uint64_t len, dcp_msg *msg)
{
	char shown[KEY_SHOW + 16];
	dcp_state_chunk *chunk;
	state_entry *e;
	int rc;

	if (st == NULL) {
		dcp_msgf(msg, "dcp_state_store_bytes: state is NULL");
		return DCP_EINVAL;
	}
	if (entry >= st->count) {
		rc = fail(st, DCP_EINVAL, "no entry %zu in the state: it has %zu entries", entry, st->count);
		dcp_msgf(msg, "%s", st->last_error);
		return rc;
	}
	e = st->entries[entry];
	chunk = &e->chunks[0];
	show_key(shown, sizeof(shown), e->key);
	if (e->kind != KIND_BYTES) {
		rc = fail(st, DCP_EINVAL,
		          "'%s' is a tensor in the state, not a bytes item: load it as a tensor", shown);
	} else if (data == NULL && len > 0) {
		rc = fail(st, DCP_EINVAL, "bytes item '%s': %" PRIu64 " loaded bytes given without data",
		          shown, len);
	} else if (e->owned == NULL && chunk->data != NULL) {
		/* The application's buffer: chunk->nbytes is its capacity. */
		if (len > chunk->nbytes) {
			rc = fail(st, DCP_EMISMATCH,
			          "bytes item '%s' is %" PRIu64
			          " bytes in the checkpoint but the buffer holds %" PRIu64
			          ": pass a larger buffer or NULL to let libdcp allocate",
			          shown, len, chunk->nbytes);
		} else {
			if (len > 0)
				memcpy(chunk->data, data, (size_t)len);
			rc = DCP_OK;
		}
	} else {
		/* A buffer of the state's own, replacing an earlier load's. */
		void *p = NULL;
#if SIZE_MAX < UINT64_MAX
		if (len < SIZE_MAX)
#endif
			p = malloc(len > 0 ? (size_t)len : 1);
		if (p == NULL) {
			rc = fail(st, DCP_ENOMEM,
			          "out of memory allocating %" PRIu64 " bytes for bytes item '%s'", len,
			          shown);
		} else {
			if (len > 0)
				memcpy(p, data, (size_t)len);
			free(e->owned);
			e->owned = p;
			chunk->data = p;
			chunk->nbytes = len;
			rc = DCP_OK;
		}
	}
	if (rc != DCP_OK) {
		dcp_msgf(msg, "%s", st->last_error);
		return rc;
	}
	e->loaded = 1;
	e->loaded_len = len;
	return DCP_OK;
}
