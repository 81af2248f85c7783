/*
 * The synthetic model state that `dcp save`, `dcp load` and `dcp demo` use.
 *
 * Tensor list: a function of (size, tensors) only. Tensor 0 is an embedding
 * (rows sharded, bf16), tensor 1 the optimizer step (0-D i64, replicated),
 * tensor 2 a final norm (f32, replicated), then layers of ten roles that mix
 * row-, column-, multi-chunk- and grid-sharded tensors of every dtype. Bytes
 * are divided between tensors by fixed weights so the total is about `size`.
 *
 * Values: element i of key k is mix64(seed, fnv1a(k), i) turned into the
 * dtype's bits; floats get a bounded exponent and random mantissa, so every
 * value is finite, normal and exactly representable, and comparisons are
 * bytewise. The host is little-endian, as the checkpoint format is.
 *
 * Sharding over N ranks: splits are uneven by design (weights 2..6 per part),
 * a rank may hold no chunk of a tensor (more parts than rows), or two chunks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dcp_tool.h"

#define GOLDEN 0x9e3779b97f4a7c15ull

static uint64_t mix64(uint64_t z)
{
	z += GOLDEN;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t key_base(uint64_t seed, const char *key)
{
	return mix64(mix64(seed) ^ fnv1a(key));
}

/* Writes n elements starting at global index `first` into dst. */
static void gen_run(dcp_dtype dtype, uint64_t base, uint64_t first, uint64_t n, void *dst)
{
	switch (dtype) {
	case DCP_F64: {
		uint64_t *d = dst;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t h = mix64(base ^ ((first + i) * GOLDEN));
			d[i] = (h & 0x8000000000000000ull) | ((uint64_t)(1008 + ((h >> 52) & 31)) << 52) |
			       (h & 0xfffffffffffffull);
		}
		break;
	}
	case DCP_F32: {
		uint32_t *d = dst;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t h = mix64(base ^ ((first + i) * GOLDEN));
			d[i] = (uint32_t)((h >> 63) << 31) | (uint32_t)((112 + ((h >> 40) & 31)) << 23) |
			       (uint32_t)(h & 0x7fffff);
		}
		break;
	}
	case DCP_F16: {
		uint16_t *d = dst;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t h = mix64(base ^ ((first + i) * GOLDEN));
			d[i] = (uint16_t)(((h >> 63) << 15) | ((8 + ((h >> 32) & 15)) << 10) | (h & 0x3ff));
		}
		break;
	}
	case DCP_BF16: {
		uint16_t *d = dst;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t h = mix64(base ^ ((first + i) * GOLDEN));
			d[i] = (uint16_t)(((h >> 63) << 15) | ((112 + ((h >> 32) & 31)) << 7) | (h & 0x7f));
		}
		break;
	}
	case DCP_I64:
	case DCP_I32:
	case DCP_I16:
	case DCP_I8:
	case DCP_U8: {
		size_t es = dcp_dtype_size(dtype);
		unsigned char *d = dst;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t h = mix64(base ^ ((first + i) * GOLDEN));
			memcpy(d + i * es, &h, es); /* low bytes on a little-endian host */
		}
		break;
	}
	case DCP_BOOL: {
		unsigned char *d = dst;
		for (uint64_t i = 0; i < n; i++)
			d[i] = (unsigned char)((mix64(base ^ ((first + i) * GOLDEN)) >> 17) & 1);
		break;
	}
	default:
		memset(dst, 0, (size_t)n * dcp_dtype_size(dtype));
		break;
	}
}

static void gen_bytes(uint64_t seed, const char *key, unsigned char *dst, size_t n)
{
	uint64_t base = key_base(seed, key);
	for (size_t i = 0; i < n; i++)
		dst[i] = (unsigned char)(mix64(base ^ (i * GOLDEN)) >> 24);
}

/* ------------------------------------------------------------------------ */
/* The tensor list                                                          */
/* ------------------------------------------------------------------------ */
typedef struct role {
	const char *name;
	synth_kind kind;
	dcp_dtype dtype;
	double weight; /* share of the bytes; 0 for the small fixed-size ones */
} role;

static const role ROLES[] = {
        {"attn.qkv.weight", SYNTH_COL, DCP_BF16, 3.0}, {"attn.out.weight", SYNTH_ROW, DCP_F32, 2.0},
        {"mlp.up.weight", SYNTH_COL, DCP_F16, 4.0},    {"mlp.down.weight", SYNTH_ROW, DCP_BF16, 4.0},
        {"norm.weight", SYNTH_REPL, DCP_F32, 0.0},     {"experts.weight", SYNTH_GRID, DCP_F16, 3.0},
        {"router.counts", SYNTH_MULTI, DCP_I64, 0.2},  {"attn.bias", SYNTH_MULTI, DCP_F64, 0.05},
        {"quant.scale", SYNTH_COL, DCP_I8, 0.3},       {"mask", SYNTH_ROW, DCP_BOOL, 0.1},
};
#define NROLES (sizeof(ROLES) / sizeof(ROLES[0]))

static uint64_t isqrt64(uint64_t v)
{
	uint64_t r = (uint64_t)sqrt((double)v);
	while (r > 0 && r * r > v)
		r--;
	while ((r + 1) * (r + 1) <= v)
		r++;
	return r;
}

static void describe(size_t i, synth_tensor *t, double *weight)
{
	memset(t, 0, sizeof(*t));
	t->salt = i * 7 + 3;
	if (i == 0) {
		snprintf(t->key, sizeof(t->key), "model.embed.weight");
		t->kind = SYNTH_ROW;
		t->dtype = DCP_BF16;
		*weight = 4.0;
	} else if (i == 1) {
		snprintf(t->key, sizeof(t->key), "optim.step");
		t->kind = SYNTH_SCALAR;
		t->dtype = DCP_I64;
		*weight = 0.0;
	} else if (i == 2) {
		snprintf(t->key, sizeof(t->key), "model.final_norm.weight");
		t->kind = SYNTH_REPL;
		t->dtype = DCP_F32;
		*weight = 0.0;
	} else {
		size_t j = i - 3, layer = j / NROLES;
		const role *r = &ROLES[j % NROLES];
		snprintf(t->key, sizeof(t->key), "model.layers.%zu.%s", layer, r->name);
		t->kind = r->kind;
		t->dtype = r->dtype;
		*weight = r->weight;
		/* Later layers vary the integer widths, so every dtype appears. */
		if (r->dtype == DCP_I64 && layer % 3 == 1)
			t->dtype = DCP_I32;
		else if (r->dtype == DCP_I64 && layer % 3 == 2)
			t->dtype = DCP_I16;
		else if (r->dtype == DCP_I8 && layer % 2 == 1)
			t->dtype = DCP_U8;
	}
}

static void shape_for(synth_tensor *t, uint64_t elements, uint64_t hidden)
{
	if (elements == 0)
		elements = 1;
	switch (t->kind) {
	case SYNTH_SCALAR:
		t->ndim = 0;
		break;
	case SYNTH_REPL:
		t->ndim = 1;
		t->shape[0] = hidden;
		break;
	case SYNTH_MULTI:
		t->ndim = 1;
		t->shape[0] = elements;
		break;
	case SYNTH_ROW:
	case SYNTH_COL: {
		uint64_t cols = isqrt64(elements) + t->salt % 7;
		t->ndim = 2;
		t->shape[1] = cols;
		t->shape[0] = elements / cols > 0 ? elements / cols : 1;
		break;
	}
	case SYNTH_GRID: {
		uint64_t e = 2 + t->salt % 4;
		uint64_t per = elements / e > 0 ? elements / e : 1;
		uint64_t cols = isqrt64(per) + t->salt % 5;
		t->ndim = 3;
		t->shape[0] = e;
		t->shape[2] = cols;
		t->shape[1] = per / cols > 0 ? per / cols : 1;
		break;
	}
	}
}

static uint64_t tensor_elements(const synth_tensor *t)
{
	uint64_t n = 1;
	for (int d = 0; d < t->ndim; d++)
		n *= t->shape[d];
	return n;
}

/* The config bytes item: what `dcp load` needs to rebuild the spec. */
static char *make_config(uint64_t size, size_t ntensors, uint64_t seed)
{
	cJSON *o = cJSON_CreateObject();
	char num[32];
	char *text = NULL;
	if (o == NULL)
		return NULL;
	/* 64-bit values as strings: JSON numbers are doubles. */
	cJSON_AddStringToObject(o, "generator", "dcp-synth");
	cJSON_AddNumberToObject(o, "version", 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)size);
	cJSON_AddStringToObject(o, "size", num);
	cJSON_AddNumberToObject(o, "tensors", (double)ntensors);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)seed);
	if (cJSON_AddStringToObject(o, "seed", num) != NULL)
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

int synth_spec_build(uint64_t size, size_t ntensors, uint64_t seed, synth_spec *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (ntensors < 1 || ntensors > TOOL_MAX_TENSORS) {
		snprintf(err, errlen, "the number of tensors must be from 1 to %d, not %zu", TOOL_MAX_TENSORS,
		         ntensors);
		return DCP_EINVAL;
	}
	if (size < 1 || size > (1ull << 50)) {
		snprintf(err, errlen, "the size must be from 1 byte to 1 PiB, not %llu bytes",
		         (unsigned long long)size);
		return DCP_EINVAL;
	}
	out->size = size;
	out->seed = seed;
	out->ntensors = ntensors;
	out->tensors = calloc(ntensors, sizeof(*out->tensors));
	out->config = make_config(size, ntensors, seed);
	if (out->tensors == NULL || out->config == NULL) {
		synth_spec_clear(out);
		snprintf(err, errlen, "out of memory for a synthetic state of %zu tensors", ntensors);
		return DCP_ENOMEM;
	}
	out->config_len = strlen(out->config);
	out->rng_len = 4096 + (size_t)(size % 1000);

	double *w = calloc(ntensors, sizeof(*w));
	if (w == NULL) {
		synth_spec_clear(out);
		snprintf(err, errlen, "out of memory for a synthetic state of %zu tensors", ntensors);
		return DCP_ENOMEM;
	}
	double wsum = 0;
	for (size_t i = 0; i < ntensors; i++) {
		describe(i, &out->tensors[i], &w[i]);
		wsum += w[i];
	}
	/* Small fixed tensors first: their length is the model's hidden size. */
	uint64_t hidden = isqrt64(size / (ntensors * 4)) + 1;
	uint64_t fixed = 0;
	for (size_t i = 0; i < ntensors; i++) {
		if (w[i] == 0.0) {
			shape_for(&out->tensors[i], 1, hidden);
			fixed += tensor_elements(&out->tensors[i]) * dcp_dtype_size(out->tensors[i].dtype);
		}
	}
	uint64_t budget = size > fixed + out->config_len + out->rng_len
	                          ? size - fixed - out->config_len - out->rng_len
	                          : ntensors;
	for (size_t i = 0; i < ntensors; i++) {
		if (w[i] == 0.0)
			continue;
		size_t es = dcp_dtype_size(out->tensors[i].dtype);
		uint64_t bytes = (uint64_t)((double)budget * w[i] / wsum);
		shape_for(&out->tensors[i], bytes / es, hidden);
	}
	free(w);

	out->total_bytes = out->config_len + out->rng_len;
	for (size_t i = 0; i < ntensors; i++) {
		uint64_t n = tensor_elements(&out->tensors[i]);
		out->elements += n;
		out->total_bytes += n * dcp_dtype_size(out->tensors[i].dtype);
	}
	return DCP_OK;
}

static int parse_u64(const cJSON *o, const char *name, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	char *end = NULL;
	if (!cJSON_IsString(v) || v->valuestring[0] < '0' || v->valuestring[0] > '9')
		return -1;
	unsigned long long x = strtoull(v->valuestring, &end, 10);
	if (*end != '\0')
		return -1;
	*out = x;
	return 0;
}

int synth_spec_from_config(const void *json, size_t len, synth_spec *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	cJSON *o = cJSON_ParseWithLength(json, len);
	uint64_t size = 0, seed = 0;
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(o, "generator");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "version");
	const cJSON *nt = cJSON_GetObjectItemCaseSensitive(o, "tensors");
	int ok = o != NULL && cJSON_IsString(gen) && strcmp(gen->valuestring, "dcp-synth") == 0 &&
	         cJSON_IsNumber(ver) && ver->valuedouble == 1 && cJSON_IsNumber(nt) && nt->valuedouble >= 1 &&
	         nt->valuedouble <= TOOL_MAX_TENSORS && parse_u64(o, "size", &size) == 0 &&
	         parse_u64(o, "seed", &seed) == 0;
	size_t ntensors = ok ? (size_t)nt->valuedouble : 0;
	cJSON_Delete(o);
	if (!ok) {
		snprintf(err, errlen,
		         "item '%s' is not a configuration written by 'dcp save' (generator dcp-synth, "
		         "version 1)",
		         SYNTH_CONFIG_KEY);
		return DCP_EMISMATCH;
	}
	return synth_spec_build(size, ntensors, seed, out, err, errlen);
}

void synth_spec_clear(synth_spec *spec)
{
	free(spec->tensors);
	cJSON_free(spec->config);
	memset(spec, 0, sizeof(*spec));
}

static void fmt_shape(char *buf, size_t len, int ndim, const uint64_t *shape)
{
	size_t n = (size_t)snprintf(buf, len, "[");
	for (int d = 0; d < ndim && n < len; d++)
		n += (size_t)snprintf(buf + n, len - n, "%s%llu", d ? ", " : "",
		                      (unsigned long long)shape[d]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
}

int synth_spec_check_metadata(const synth_spec *spec, const dcp_metadata *md, char *err, size_t errlen)
{
	size_t want = spec->ntensors + 2;
	for (size_t i = 0; i < spec->ntensors; i++) {
		const synth_tensor *t = &spec->tensors[i];
		const dcp_md_item *it = dcp_metadata_find(md, t->key);
		if (it == NULL || it->type != DCP_ITEM_TENSOR) {
			snprintf(err, errlen, "key %s: %s in the checkpoint", t->key,
			         it == NULL ? "missing" : "not a tensor");
			return DCP_EMISMATCH;
		}
		int same = it->dtype == t->dtype && it->ndim == t->ndim;
		for (int d = 0; same && d < t->ndim; d++)
			same = it->shape[d] == t->shape[d];
		if (!same) {
			char a[128], b[128];
			fmt_shape(a, sizeof(a), it->ndim, it->shape);
			fmt_shape(b, sizeof(b), t->ndim, t->shape);
			snprintf(err, errlen, "key %s: stored as %s %s, expected %s %s", t->key,
			         dcp_dtype_name(it->dtype), a, dcp_dtype_name(t->dtype), b);
			return DCP_EMISMATCH;
		}
	}
	const char *bytes_keys[] = {SYNTH_CONFIG_KEY, SYNTH_RNG_KEY};
	for (size_t i = 0; i < 2; i++) {
		const dcp_md_item *it = dcp_metadata_find(md, bytes_keys[i]);
		if (it == NULL || it->type != DCP_ITEM_BYTES) {
			snprintf(err, errlen, "key %s: %s in the checkpoint", bytes_keys[i],
			         it == NULL ? "missing" : "not a bytes item");
			return DCP_EMISMATCH;
		}
	}
	if (md->nitems != want) {
		for (size_t i = 0; i < md->nitems; i++) {
			const char *k = md->items[i].key;
			int known = strcmp(k, SYNTH_CONFIG_KEY) == 0 || strcmp(k, SYNTH_RNG_KEY) == 0;
			for (size_t j = 0; !known && j < spec->ntensors; j++)
				known = strcmp(k, spec->tensors[j].key) == 0;
			if (!known) {
				snprintf(err, errlen,
				         "key %s: in the checkpoint but not in the synthetic state", k);
				return DCP_EMISMATCH;
			}
		}
		snprintf(err, errlen, "the checkpoint has %zu items, the synthetic state %zu", md->nitems,
		         want);
		return DCP_EMISMATCH;
	}
	return DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* Sharding                                                                 */
/* ------------------------------------------------------------------------ */

/* Part j of `parts` uneven parts of [0, len): [*lo, *hi). */
static void split(uint64_t len, uint64_t parts, uint64_t salt, uint64_t j, uint64_t *lo, uint64_t *hi)
{
	uint64_t total = 0, before = 0;
	for (uint64_t k = 0; k < parts; k++) {
		uint64_t w = 2 + (k * 7 + salt) % 5;
		if (k < j)
			before += w;
		total += w;
	}
	uint64_t w = 2 + (j * 7 + salt) % 5;
	/* len * weights fits: len < 2^50 and total < 2^13 */
	*lo = len * before / total;
	*hi = len * (before + w) / total;
}

typedef struct box {
	uint64_t offsets[DCP_MAX_DIMS];
	uint64_t sizes[DCP_MAX_DIMS];
} box;

/* The boxes rank r holds of tensor t (at most 2); returns how many. Boxes
 * with no elements are left out: that rank holds no chunk there. */
static int rank_boxes(const synth_tensor *t, int rank, int nranks, box out[2])
{
	int n = 0;
	box b;
	memset(&b, 0, sizeof(b));
	for (int d = 0; d < t->ndim; d++)
		b.sizes[d] = t->shape[d];
	uint64_t lo, hi;
	switch (t->kind) {
	case SYNTH_ROW:
	case SYNTH_COL: {
		int d = t->kind == SYNTH_ROW ? 0 : 1;
		split(t->shape[d], (uint64_t)nranks, t->salt, (uint64_t)rank, &lo, &hi);
		b.offsets[d] = lo;
		b.sizes[d] = hi - lo;
		if (hi > lo)
			out[n++] = b;
		break;
	}
	case SYNTH_MULTI: {
		uint64_t parts = 2 * (uint64_t)nranks;
		uint64_t js[2] = {(uint64_t)rank, parts - 1 - (uint64_t)rank};
		for (int k = 0; k < 2; k++) {
			split(t->shape[0], parts, t->salt, js[k], &lo, &hi);
			b.offsets[0] = lo;
			b.sizes[0] = hi - lo;
			if (hi > lo)
				out[n++] = b;
		}
		break;
	}
	case SYNTH_GRID: {
		int px = 1;
		for (int k = 1; (long)k * k <= nranks; k++)
			if (nranks % k == 0)
				px = k;
		int py = nranks / px;
		split(t->shape[1], (uint64_t)px, t->salt, (uint64_t)(rank / py), &lo, &hi);
		b.offsets[1] = lo;
		b.sizes[1] = hi - lo;
		split(t->shape[2], (uint64_t)py, t->salt + 1, (uint64_t)(rank % py), &lo, &hi);
		b.offsets[2] = lo;
		b.sizes[2] = hi - lo;
		if (b.sizes[1] > 0 && b.sizes[2] > 0)
			out[n++] = b;
		break;
	}
	case SYNTH_REPL:
	case SYNTH_SCALAR:
		out[n++] = b;
		break;
	}
	return n;
}

/*
 * Calls fn for each contiguous run (along the last dimension) of a box:
 * `first` is the global row-major index of the run's first element, `local`
 * the element offset of the run inside the box's own buffer. Returns nonzero
 * as soon as fn does.
 */
typedef int (*run_fn)(uint64_t first, uint64_t local, uint64_t n, void *ctx);

static int for_each_run(int ndim, const uint64_t *shape, const uint64_t *offsets, const uint64_t *sizes,
                        run_fn fn, void *ctx)
{
	if (ndim == 0)
		return fn(0, 0, 1, ctx);
	for (int d = 0; d < ndim; d++)
		if (sizes[d] == 0)
			return 0;
	uint64_t stride[DCP_MAX_DIMS];
	stride[ndim - 1] = 1;
	for (int d = ndim - 2; d >= 0; d--)
		stride[d] = stride[d + 1] * shape[d + 1];
	uint64_t c[DCP_MAX_DIMS] = {0};
	uint64_t inner = sizes[ndim - 1], local = 0;
	for (;;) {
		uint64_t first = offsets[ndim - 1];
		for (int d = 0; d < ndim - 1; d++)
			first += (offsets[d] + c[d]) * stride[d];
		int rc = fn(first, local, inner, ctx);
		if (rc != 0)
			return rc;
		local += inner;
		int d = ndim - 2;
		while (d >= 0 && ++c[d] == sizes[d]) {
			c[d] = 0;
			d--;
		}
		if (d < 0)
			return 0;
	}
}

typedef struct fill_ctx {
	dcp_dtype dtype;
	size_t es;
	uint64_t base;
	unsigned char *data;
} fill_ctx;

static int fill_run(uint64_t first, uint64_t local, uint64_t n, void *arg)
{
	fill_ctx *c = arg;
	gen_run(c->dtype, c->base, first, n, c->data + local * c->es);
	return 0;
}

int synth_rank_build(const synth_spec *spec, int rank, int nranks, int for_load, synth_rank *out, char *err,
                     size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->state = dcp_state_new();
	out->chunks = calloc(2 * spec->ntensors, sizeof(*out->chunks));
	if (out->state == NULL || out->chunks == NULL)
		goto oom;

	for (size_t i = 0; i < spec->ntensors; i++) {
		const synth_tensor *t = &spec->tensors[i];
		box boxes[2];
		int nb = rank_boxes(t, rank, nranks, boxes);
		size_t es = dcp_dtype_size(t->dtype);
		for (int k = 0; k < nb; k++) {
			synth_chunk *ch = &out->chunks[out->nchunks];
			uint64_t n = 1;
			for (int d = 0; d < t->ndim; d++)
				n *= boxes[k].sizes[d];
			ch->tensor = i;
			memcpy(ch->offsets, boxes[k].offsets, sizeof(ch->offsets));
			memcpy(ch->sizes, boxes[k].sizes, sizeof(ch->sizes));
			ch->nbytes = n * es;
			ch->data = malloc(ch->nbytes > 0 ? (size_t)ch->nbytes : 1);
			if (ch->data == NULL) {
				snprintf(err, errlen, "rank %d: out of memory for %llu bytes of key %s", rank,
				         (unsigned long long)ch->nbytes, t->key);
				synth_rank_clear(out);
				return DCP_ENOMEM;
			}
			out->nchunks++;
			out->bytes += ch->nbytes;
			out->elements += n;
			if (for_load) {
				memset(ch->data, 0xff, (size_t)ch->nbytes);
			} else {
				fill_ctx c = {t->dtype, es, key_base(spec->seed, t->key), ch->data};
				for_each_run(t->ndim, t->shape, ch->offsets, ch->sizes, fill_run, &c);
			}
			int rc;
			if (t->kind == SYNTH_REPL || t->kind == SYNTH_SCALAR)
				rc = dcp_state_add_tensor(out->state, t->key, t->dtype, t->ndim, t->shape,
				                          ch->data);
			else
				rc = dcp_state_add_shard(out->state, t->key, t->dtype, t->ndim, t->shape,
				                         ch->offsets, ch->sizes, ch->data);
			if (rc != DCP_OK) {
				snprintf(err, errlen, "rank %d: adding key %s to the state failed: %s (%s)",
				         rank, t->key, dcp_strerror(rc), dcp_state_last_error(out->state));
				synth_rank_clear(out);
				return rc;
			}
		}
	}

	/* Bytes items: the config on every rank; rng.state on rank 0 for a save,
	 * on every rank for a load. */
	int rc = DCP_OK;
	if (for_load) {
		rc = dcp_state_add_bytes(out->state, SYNTH_CONFIG_KEY, NULL, 0);
	} else {
		rc = dcp_state_add_bytes(out->state, SYNTH_CONFIG_KEY, spec->config, spec->config_len);
		out->bytes += spec->config_len;
	}
	if (rc == DCP_OK && (for_load || rank == 0)) {
		out->rng = malloc(spec->rng_len);
		if (out->rng == NULL)
			goto oom;
		if (for_load)
			memset(out->rng, 0xff, spec->rng_len);
		else
			gen_bytes(spec->seed, SYNTH_RNG_KEY, out->rng, spec->rng_len);
		rc = dcp_state_add_bytes(out->state, SYNTH_RNG_KEY, out->rng, spec->rng_len);
		out->bytes += spec->rng_len;
	}
	if (rc != DCP_OK) {
		snprintf(err, errlen, "rank %d: adding a bytes item to the state failed: %s (%s)", rank,
		         dcp_strerror(rc), dcp_state_last_error(out->state));
		synth_rank_clear(out);
		return rc;
	}
	return DCP_OK;
oom:
	snprintf(err, errlen, "rank %d: out of memory while building the synthetic state", rank);
	synth_rank_clear(out);
	return DCP_ENOMEM;
}

void synth_rank_clear(synth_rank *r)
{
	dcp_state_free(r->state);
	for (size_t i = 0; i < r->nchunks; i++)
		free(r->chunks[i].data);
	free(r->chunks);
	free(r->rng);
	memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------------------ */
/* Checking                                                                 */
/* ------------------------------------------------------------------------ */
enum { CHECK_PIECE = 4096 };

typedef struct check_ctx {
	const synth_tensor *t;
	size_t es;
	uint64_t base;
	const unsigned char *data;
	uint64_t bad;       /* differing elements */
	uint64_t first_bad; /* global index of the first */
	unsigned char found[8], expected[8];
	unsigned char tmp[CHECK_PIECE * 8];
} check_ctx;

static int check_run(uint64_t first, uint64_t local, uint64_t n, void *arg)
{
	check_ctx *c = arg;
	for (uint64_t done = 0; done < n;) {
		uint64_t m = n - done < CHECK_PIECE ? n - done : CHECK_PIECE;
		const unsigned char *got = c->data + (local + done) * c->es;
		gen_run(c->t->dtype, c->base, first + done, m, c->tmp);
		if (memcmp(got, c->tmp, (size_t)(m * c->es)) != 0) {
			for (uint64_t i = 0; i < m; i++) {
				if (memcmp(got + i * c->es, c->tmp + i * c->es, c->es) == 0)
					continue;
				if (c->bad == 0) {
					c->first_bad = first + done + i;
					memcpy(c->found, got + i * c->es, c->es);
					memcpy(c->expected, c->tmp + i * c->es, c->es);
				}
				c->bad++;
			}
		}
		done += m;
	}
	return 0;
}

static void fmt_hex(char *buf, size_t len, const unsigned char *v, size_t es)
{
	size_t n = (size_t)snprintf(buf, len, "0x");
	for (size_t i = es; i-- > 0 && n + 2 < len;)
		n += (size_t)snprintf(buf + n, len - n, "%02x", v[i]);
}

uint64_t synth_rank_check(const synth_spec *spec, const synth_rank *r, char *msg, size_t msglen)
{
	uint64_t bad = 0;
	check_ctx *c = malloc(sizeof(*c));
	if (c == NULL) {
		snprintf(msg, msglen, "out of memory while checking");
		return 1;
	}
	for (size_t i = 0; i < r->nchunks; i++) {
		const synth_chunk *ch = &r->chunks[i];
		const synth_tensor *t = &spec->tensors[ch->tensor];
		memset(c, 0, offsetof(check_ctx, tmp));
		c->t = t;
		c->es = dcp_dtype_size(t->dtype);
		c->base = key_base(spec->seed, t->key);
		c->data = ch->data;
		for_each_run(t->ndim, t->shape, ch->offsets, ch->sizes, check_run, c);
		if (c->bad == 0)
			continue;
		if (bad == 0) {
			char coords[256], f[24], e[24];
			uint64_t idx[DCP_MAX_DIMS], rest = c->first_bad;
			for (int d = t->ndim - 1; d >= 0; d--) {
				idx[d] = rest % t->shape[d];
				rest /= t->shape[d];
			}
			fmt_shape(coords, sizeof(coords), t->ndim, idx);
			fmt_hex(f, sizeof(f), c->found, c->es);
			fmt_hex(e, sizeof(e), c->expected, c->es);
			snprintf(msg, msglen,
			         "key %s: element %s (index %llu) is %s, expected %s; %llu of %llu elements "
			         "in this "
			         "chunk differ",
			         t->key, coords, (unsigned long long)c->first_bad, f, e,
			         (unsigned long long)c->bad, (unsigned long long)(ch->nbytes / c->es));
		}
		bad += c->bad;
	}
	free(c);

	if (r->rng != NULL) {
		unsigned char *want = malloc(spec->rng_len);
		if (want == NULL) {
			snprintf(msg, msglen, "out of memory while checking");
			return bad + 1;
		}
		gen_bytes(spec->seed, SYNTH_RNG_KEY, want, spec->rng_len);
		const unsigned char *got = r->rng;
		for (size_t i = 0; i < spec->rng_len; i++) {
			if (got[i] == want[i])
				continue;
			if (bad == 0)
				snprintf(msg, msglen, "key %s: byte %zu is 0x%02x, expected 0x%02x",
				         SYNTH_RNG_KEY, i, got[i], want[i]);
			bad++;
			break;
		}
		free(want);
	}
	return bad;
}
