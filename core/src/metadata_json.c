/*
 * The JSON form of the checkpoint metadata (documented in docs/format.md).
 *
 * Encoding writes the text directly (one pass, no tree), so that a metadata
 * with hundreds of thousands of chunks encodes in milliseconds. Decoding
 * parses with cJSON, converts field by field with a message naming the field
 * and the key on any problem, then runs dcp_metadata_validate.
 *
 * Integers: JSON numbers are read as doubles by most parsers (cJSON too), so
 * values above 2^53 are written as decimal strings; a reader accepts both
 * forms for every integer field.
 *
 * No state; safe from any thread.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "metadata_internal.h"
#include "url.h"

/* Largest integer a double holds exactly (and with every smaller one). */
#define JSON_EXACT_MAX (UINT64_C(1) << 53)
/* Nesting allowed inside storage_meta (cJSON refuses documents deeper than
 * CJSON_NESTING_LIMIT, and the document adds a level around it). */
#define STORAGE_META_DEPTH_MAX 256

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */
/* ------------------------------------------------------------------------ */

/* A growable text buffer; after a failed allocation `failed` is set and
 * later writes do nothing. */
typedef struct jbuf {
	char *s;
	size_t len, cap;
	int failed;
} jbuf;

static int jb_reserve(jbuf *b, size_t n)
{
	size_t ncap;
	char *ns;

	if (b->failed)
		return -1;
	if (n <= b->cap - b->len)
		return 0;
	ncap = b->cap ? b->cap : 4096;
	while (ncap - b->len < n) {
		if (ncap > SIZE_MAX / 2) {
			b->failed = 1;
			return -1;
		}
		ncap *= 2;
	}
	ns = realloc(b->s, ncap);
	if (ns == NULL) {
		b->failed = 1;
		return -1;
	}
	b->s = ns;
	b->cap = ncap;
	return 0;
}

static void jb_putn(jbuf *b, const char *s, size_t n)
{
	if (jb_reserve(b, n) != 0)
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
}

static void jb_puts(jbuf *b, const char *s)
{
	jb_putn(b, s, strlen(s));
}

static void jb_putc(jbuf *b, char c)
{
	if (jb_reserve(b, 1) != 0)
		return;
	b->s[b->len++] = c;
}

static void jb_u64_digits(jbuf *b, uint64_t v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	jb_putn(b, tmp + sizeof(tmp) - n, n);
}

/* An integer: a JSON number up to 2^53, a decimal string above. */
static void jb_u64(jbuf *b, uint64_t v)
{
	if (v <= JSON_EXACT_MAX) {
		jb_u64_digits(b, v);
	} else {
		jb_putc(b, '"');
		jb_u64_digits(b, v);
		jb_putc(b, '"');
	}
}

static void jb_str(jbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	jb_putc(b, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		jb_putn(b, run, (size_t)(s - run));
		run = s + 1;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			jb_putn(b, e, 2);
		} else {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			jb_putn(b, e, 6);
		}
	}
	jb_putn(b, run, (size_t)(s - run));
	jb_putc(b, '"');
}

static void jb_dims(jbuf *b, int ndim, const uint64_t *v)
{
	int d;

	jb_putc(b, '[');
	for (d = 0; d < ndim; d++) {
		if (d)
			jb_putc(b, ',');
		jb_u64(b, v[d]);
	}
	jb_putc(b, ']');
}

static void jb_sums(jbuf *b, const dcp_storage_info *s)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t i;

	jb_putc(b, '[');
	if (jb_reserve(b, (size_t)s->nsums * 19) == 0) {
		for (i = 0; i < s->nsums; i++) {
			char t[19];
			uint64_t v = s->sums[i];
			int k;
			size_t n = 0;
			if (i)
				t[n++] = ',';
			t[n++] = '"';
			for (k = 60; k >= 0; k -= 4)
				t[n++] = hex[(v >> k) & 15];
			t[n++] = '"';
			jb_putn(b, t, n);
		}
	}
	jb_putc(b, ']');
}

static void jb_chunk(jbuf *b, const dcp_md_item *it, const dcp_md_chunk *c)
{
	jb_putc(b, '{');
	if (it->type == DCP_ITEM_TENSOR) {
		jb_puts(b, "\"offsets\":");
		jb_dims(b, it->ndim, c->offsets);
		jb_puts(b, ",\"sizes\":");
		jb_dims(b, it->ndim, c->sizes);
		jb_putc(b, ',');
	}
	jb_puts(b, "\"path\":");
	jb_str(b, c->storage.path);
	jb_puts(b, ",\"offset\":");
	jb_u64(b, c->storage.offset);
	jb_puts(b, ",\"length\":");
	jb_u64(b, c->storage.length);
	jb_puts(b, ",\"sums\":");
	jb_sums(b, &c->storage);
	jb_putc(b, '}');
}

static int json_depth_ok(const cJSON *node, int depth)
{
	const cJSON *child;

	if (depth > STORAGE_META_DEPTH_MAX)
		return 0;
	cJSON_ArrayForEach(child, node)
	{
		if ((cJSON_IsArray(child) || cJSON_IsObject(child)) && !json_depth_ok(child, depth + 1))
			return 0;
	}
	return 1;
}

/* Checks that storage_meta is one JSON value. On success, *start and *n give
 * it without the surrounding whitespace, to embed as it is (so that its
 * integers keep all their digits in the file). */
static int check_storage_meta(const char *text, const char **start, size_t *n, dcp_msg *msg)
{
	const char *end = NULL;
	cJSON *v = cJSON_ParseWithOpts(text, &end, 1);
	size_t len;
	int ok;

	if (v == NULL) {
		dcp_msgf(msg,
		         "cannot encode metadata: storage_meta is not one valid JSON value (error at byte "
		         "%zu of "
		         "'%.80s'): the writer's storage_meta slot must return JSON text",
		         end != NULL && end >= text ? (size_t)(end - text) : (size_t)0, text);
		return DCP_EMETADATA;
	}
	ok = json_depth_ok(v, 1);
	cJSON_Delete(v);
	if (!ok) {
		dcp_msgf(msg, "cannot encode metadata: storage_meta nests deeper than %d levels",
		         STORAGE_META_DEPTH_MAX);
		return DCP_EMETADATA;
	}
	while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
		text++;
	len = strlen(text);
	while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
	                   text[len - 1] == '\r'))
		len--;
	*start = text;
	*n = len;
	return DCP_OK;
}

int dcp_metadata_encode(const dcp_metadata *md, char **json, size_t *len, dcp_msg *msg)
{
	jbuf b = {NULL, 0, 0, 0};
	const char *sm = NULL;
	size_t smlen = 0, i, j;
	int rc;

	if (json == NULL || len == NULL) {
		dcp_msgf(msg, "dcp_metadata_encode: json and len must not be NULL");
		return DCP_EINVAL;
	}
	*json = NULL;
	*len = 0;
	rc = dcp_metadata_validate(md, msg);
	if (rc != DCP_OK) {
		if (msg != NULL) {
			dcp_msg why = *msg;
			dcp_msgf(msg, "cannot encode invalid metadata: %s", why.text);
		}
		return rc;
	}
	if (md->storage_meta != NULL) {
		rc = check_storage_meta(md->storage_meta, &sm, &smlen, msg);
		if (rc != DCP_OK)
			return rc;
	}

	/* The document is written in the format this libdcp implements,
	 * whatever version md was read from: unknown fields were not kept. */
	jb_puts(&b, "{\"format\":{\"major\":");
	jb_u64(&b, DCP_FORMAT_MAJOR);
	jb_puts(&b, ",\"minor\":");
	jb_u64(&b, DCP_FORMAT_MINOR);
	jb_putc(&b, '}');
	if (md->save_id != NULL) {
		jb_puts(&b, ",\"save_id\":");
		jb_str(&b, md->save_id);
	}
	jb_puts(&b, ",\"checksum\":{\"algo\":\"" DCP_CHECKSUM_ALGO "\",\"block\":");
	jb_u64(&b, md->checksum_block);
	jb_puts(&b, "},\"items\":[");
	for (i = 0; i < md->nitems && !b.failed; i++) {
		const dcp_md_item *it = &md->items[i];
		if (i)
			jb_putc(&b, ',');
		jb_puts(&b, "{\"key\":");
		jb_str(&b, it->key);
		if (it->type == DCP_ITEM_TENSOR) {
			jb_puts(&b, ",\"type\":\"tensor\",\"dtype\":");
			jb_str(&b, dcp_dtype_name(it->dtype));
			jb_puts(&b, ",\"shape\":");
			jb_dims(&b, it->ndim, it->shape);
		} else {
			jb_puts(&b, ",\"type\":\"bytes\"");
		}
		jb_puts(&b, ",\"chunks\":[");
		for (j = 0; j < it->nchunks; j++) {
			if (j)
				jb_putc(&b, ',');
			jb_chunk(&b, it, &it->chunks[j]);
		}
		jb_puts(&b, "]}");
	}
	jb_putc(&b, ']');
	if (sm != NULL) {
		jb_puts(&b, ",\"storage_meta\":");
		jb_putn(&b, sm, smlen);
	}
	jb_puts(&b, "}\n");
	jb_putc(&b, '\0');
	if (b.failed) {
		free(b.s);
		dcp_msgf(msg, "out of memory encoding metadata of %zu items", md->nitems);
		return DCP_ENOMEM;
	}
	*json = b.s;
	*len = b.len - 1;
	return DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

/* What a JSON node is, for messages: "a string", "the number -1", ... */
static const char *describe(const cJSON *v, char *buf, size_t cap)
{
	if (v == NULL)
		return "nothing (the field is missing)";
	if (cJSON_IsString(v))
		snprintf(buf, cap, "the string \"%.40s%s\"", v->valuestring,
		         strlen(v->valuestring) > 40 ? "..." : "");
	else if (cJSON_IsNumber(v))
		snprintf(buf, cap, "the number %.17g", v->valuedouble);
	else if (cJSON_IsObject(v))
		snprintf(buf, cap, "an object");
	else if (cJSON_IsArray(v))
		snprintf(buf, cap, "an array");
	else if (cJSON_IsBool(v))
		snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
	else if (cJSON_IsNull(v))
		snprintf(buf, cap, "null");
	else
		snprintf(buf, cap, "an unknown value");
	return buf;
}

/* Where a problem is: "item 'k'" once the key is known, else "items[3]",
 * or "" for top-level fields. */
typedef struct where {
	char text[DCP_KEY_MAX + 48];
} where;

static int field_error(dcp_msg *msg, const where *w, const char *field, const char *expected,
                       const cJSON *got)
{
	char d[96];

	dcp_msgf(msg, "malformed checkpoint metadata: %s%sfield '%s' must be %s, got %s",
	         w != NULL ? w->text : "", w != NULL ? ": " : "", field, expected,
	         describe(got, d, sizeof(d)));
	return DCP_EMETADATA;
}

#define U64_EXPECTED "an unsigned integer (a JSON number up to 2^53, or a decimal string)"

/* Reads an unsigned 64-bit integer: a JSON number that is a whole number in
 * 0..2^53, or a string of decimal digits in 0..UINT64_MAX. */
static int get_u64(const cJSON *v, uint64_t *out)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (!(d >= 0.0) || d > (double)JSON_EXACT_MAX)
			return -1;
		if ((double)(uint64_t)d != d)
			return -1;
		*out = (uint64_t)d;
		return 0;
	}
	if (cJSON_IsString(v)) {
		const char *p = v->valuestring;
		uint64_t x = 0;
		if (*p == '\0')
			return -1;
		for (; *p != '\0'; p++) {
			unsigned dgt;
			if (*p < '0' || *p > '9')
				return -1;
			dgt = (unsigned)(*p - '0');
			if (x > (UINT64_MAX - dgt) / 10)
				return -1;
			x = x * 10 + dgt;
		}
		*out = x;
		return 0;
	}
	return -1;
}

static int field_u64(const cJSON *obj, const char *name, const where *w, const char *label, uint64_t *out,
                     dcp_msg *msg)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (get_u64(v, out) != 0)
		return field_error(msg, w, label != NULL ? label : name, U64_EXPECTED, v);
	return DCP_OK;
}

static size_t array_len(const cJSON *a)
{
	const cJSON *c;
	size_t n = 0;

	cJSON_ArrayForEach(c, a)
	{
		n++;
	}
	return n;
}

/* An array of at most DCP_MAX_DIMS integers; *n receives its length. */
static int field_dims(const cJSON *obj, const char *name, const where *w, const char *label, uint64_t *out,
                      int *n, dcp_msg *msg)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, name);
	const cJSON *c;
	char expected[160];
	size_t len;
	int d = 0;

	snprintf(expected, sizeof(expected), "an array of at most %d unsigned integers", DCP_MAX_DIMS);
	if (!cJSON_IsArray(a))
		return field_error(msg, w, label, expected, a);
	len = array_len(a);
	if (len > DCP_MAX_DIMS) {
		dcp_msgf(msg, "malformed checkpoint metadata: %s: field '%s' has %zu dimensions (at most %d)",
		         w->text, label, len, DCP_MAX_DIMS);
		return DCP_EMETADATA;
	}
	cJSON_ArrayForEach(c, a)
	{
		if (get_u64(c, &out[d]) != 0) {
			char sub[160];
			snprintf(sub, sizeof(sub), "%s[%d]", label, d);
			return field_error(msg, w, sub, U64_EXPECTED, c);
		}
		d++;
	}
	*n = d;
	return DCP_OK;
}

static int parse_hex64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 16; i++) {
		int c = (unsigned char)s[i], h;
		if (c >= '0' && c <= '9')
			h = c - '0';
		else if (c >= 'a' && c <= 'f')
			h = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			h = c - 'A' + 10;
		else
			return -1; /* also stops at a NUL before 16 digits */
		v = v << 4 | (uint64_t)h;
	}
	if (s[16] != '\0')
		return -1;
	*out = v;
	return 0;
}

/* A field of chunk ci: "chunks[ci].name" in messages. */
static int chunk_field_error(dcp_msg *msg, const where *w, size_t ci, const char *name, const char *expected,
                             const cJSON *got)
{
	char label[96];

	snprintf(label, sizeof(label), "chunks[%zu]%s%s", ci, name[0] ? "." : "", name);
	return field_error(msg, w, label, expected, got);
}

static int chunk_dims(const cJSON *jc, const char *name, size_t ci, const dcp_md_item *it, const where *w,
                      uint64_t *out, dcp_msg *msg)
{
	char label[96];
	int nd, rc;

	snprintf(label, sizeof(label), "chunks[%zu].%s", ci, name);
	rc = field_dims(jc, name, w, label, out, &nd, msg);
	if (rc == DCP_OK && nd != it->ndim) {
		dcp_msgf(msg,
		         "malformed checkpoint metadata: %s: field '%s' has %d dimensions but the shape has "
		         "%d",
		         w->text, label, nd, it->ndim);
		rc = DCP_EMETADATA;
	}
	return rc;
}

static int decode_chunk(const cJSON *jc, size_t ci, dcp_md_item *it, dcp_md_chunk *c, const where *w,
                        dcp_msg *msg)
{
	const cJSON *v, *s;
	uint64_t n = 0;
	int rc;

	if (!cJSON_IsObject(jc))
		return chunk_field_error(msg, w, ci, "", "an object", jc);
	if (it->type == DCP_ITEM_TENSOR) {
		rc = chunk_dims(jc, "offsets", ci, it, w, c->offsets, msg);
		if (rc == DCP_OK)
			rc = chunk_dims(jc, "sizes", ci, it, w, c->sizes, msg);
		if (rc != DCP_OK)
			return rc;
	}
	v = cJSON_GetObjectItemCaseSensitive(jc, "path");
	if (!cJSON_IsString(v))
		return chunk_field_error(msg, w, ci, "path", "a string", v);
	c->storage.path = dcp_strdup(v->valuestring);
	if (c->storage.path == NULL)
		goto nomem;
	v = cJSON_GetObjectItemCaseSensitive(jc, "offset");
	if (get_u64(v, &c->storage.offset) != 0)
		return chunk_field_error(msg, w, ci, "offset", U64_EXPECTED, v);
	v = cJSON_GetObjectItemCaseSensitive(jc, "length");
	if (get_u64(v, &c->storage.length) != 0)
		return chunk_field_error(msg, w, ci, "length", U64_EXPECTED, v);
	v = cJSON_GetObjectItemCaseSensitive(jc, "sums");
	if (!cJSON_IsArray(v))
		return chunk_field_error(msg, w, ci, "sums", "an array of 16-hex-digit strings", v);
	n = array_len(v);
	if (n > UINT32_MAX) {
		dcp_msgf(msg,
		         "malformed checkpoint metadata: %s: field 'chunks[%zu].sums' has %llu checksums (at "
		         "most %lu)",
		         w->text, ci, (unsigned long long)n, (unsigned long)UINT32_MAX);
		return DCP_EMETADATA;
	}
	if (n > 0) {
		c->storage.sums = malloc((size_t)n * sizeof(uint64_t));
		if (c->storage.sums == NULL)
			goto nomem;
	}
	c->storage.nsums = (uint32_t)n;
	n = 0;
	cJSON_ArrayForEach(s, v)
	{
		if (!cJSON_IsString(s) || parse_hex64(s->valuestring, &c->storage.sums[n]) != 0) {
			char name[48];
			snprintf(name, sizeof(name), "sums[%llu]", (unsigned long long)n);
			return chunk_field_error(msg, w, ci, name, "a string of 16 hex digits", s);
		}
		n++;
	}
	return DCP_OK;
nomem:
	dcp_msgf(msg, "out of memory decoding metadata %s", w->text);
	return DCP_ENOMEM;
}

static int decode_item(const cJSON *ji, size_t index, dcp_md_item *it, dcp_msg *msg)
{
	const cJSON *v, *jc;
	where w;
	size_t n, ci;
	int rc;

	snprintf(w.text, sizeof(w.text), "items[%zu]", index);
	if (!cJSON_IsObject(ji))
		return field_error(msg, NULL, w.text, "an object", ji);
	v = cJSON_GetObjectItemCaseSensitive(ji, "key");
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return field_error(msg, &w, "key", "a non-empty string", v);
	it->key = dcp_strdup(v->valuestring);
	if (it->key == NULL)
		goto nomem;
	snprintf(w.text, sizeof(w.text), "item '%s'", it->key);

	v = cJSON_GetObjectItemCaseSensitive(ji, "type");
	if (cJSON_IsString(v) && strcmp(v->valuestring, "tensor") == 0)
		it->type = DCP_ITEM_TENSOR;
	else if (cJSON_IsString(v) && strcmp(v->valuestring, "bytes") == 0)
		it->type = DCP_ITEM_BYTES;
	else
		return field_error(msg, &w, "type", "\"tensor\" or \"bytes\"", v);

	if (it->type == DCP_ITEM_TENSOR) {
		v = cJSON_GetObjectItemCaseSensitive(ji, "dtype");
		if (!cJSON_IsString(v))
			return field_error(msg, &w, "dtype", "a dtype name string", v);
		if (dcp_dtype_from_name(v->valuestring, &it->dtype) != DCP_OK) {
			char names[256];
			size_t len = 0;
			int d;
			names[0] = '\0';
			for (d = 0; d < DCP_DTYPE_COUNT_ && len < sizeof(names); d++)
				len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
				                        d ? ", " : "", dcp_dtype_name((dcp_dtype)d));
			dcp_msgf(msg,
			         "malformed checkpoint metadata: %s: field 'dtype' is '%.40s', which this "
			         "libdcp does "
			         "not know (known: %s)",
			         w.text, v->valuestring, names);
			return DCP_EMETADATA;
		}
		rc = field_dims(ji, "shape", &w, "shape", it->shape, &it->ndim, msg);
		if (rc != DCP_OK)
			return rc;
	}

	v = cJSON_GetObjectItemCaseSensitive(ji, "chunks");
	if (!cJSON_IsArray(v))
		return field_error(msg, &w, "chunks", "an array of chunk objects", v);
	n = array_len(v);
	if (n > 0) {
		it->chunks = calloc(n, sizeof(*it->chunks));
		if (it->chunks == NULL)
			goto nomem;
		it->nchunks = n;
	}
	ci = 0;
	cJSON_ArrayForEach(jc, v)
	{
		rc = decode_chunk(jc, ci, it, &it->chunks[ci], &w, msg);
		if (rc != DCP_OK)
			return rc;
		ci++;
	}
	return DCP_OK;
nomem:
	dcp_msgf(msg, "out of memory decoding metadata %s", w.text);
	return DCP_ENOMEM;
}

static int cmp_items(const void *a, const void *b)
{
	return strcmp(((const dcp_md_item *)a)->key, ((const dcp_md_item *)b)->key);
}

/* Checks "format" first, so that a newer major is refused as such whatever
 * else changed in its layout. */
static int decode_format(const cJSON *root, dcp_metadata *md, dcp_msg *msg)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
	uint64_t major, minor;
	int minor_ok;

	if (!cJSON_IsObject(f))
		return field_error(msg, NULL, "format", "an object {\"major\": M, \"minor\": N}", f);
	if (get_u64(cJSON_GetObjectItemCaseSensitive(f, "major"), &major) != 0)
		return field_error(msg, NULL, "format.major", U64_EXPECTED,
		                   cJSON_GetObjectItemCaseSensitive(f, "major"));
	minor_ok = get_u64(cJSON_GetObjectItemCaseSensitive(f, "minor"), &minor) == 0;
	if (major > DCP_FORMAT_MAJOR) {
		if (minor_ok)
			dcp_msgf(msg,
			         "checkpoint format %llu.%llu is newer than this libdcp supports (%d.x): "
			         "upgrade libdcp",
			         (unsigned long long)major, (unsigned long long)minor, DCP_FORMAT_MAJOR);
		else
			dcp_msgf(msg,
			         "checkpoint format %llu is newer than this libdcp supports (%d.x): upgrade "
			         "libdcp",
			         (unsigned long long)major, DCP_FORMAT_MAJOR);
		return DCP_EVERSION;
	}
	if (major < 1) {
		dcp_msgf(msg,
		         "malformed checkpoint metadata: format major version is 0 (this libdcp reads %d.x)",
		         DCP_FORMAT_MAJOR);
		return DCP_EMETADATA;
	}
	if (!minor_ok || minor > UINT32_MAX)
		return field_error(msg, NULL, "format.minor", U64_EXPECTED,
		                   cJSON_GetObjectItemCaseSensitive(f, "minor"));
	md->format_major = (unsigned)major;
	md->format_minor = (unsigned)minor;
	return DCP_OK;
}

static int decode_root(const cJSON *root, dcp_metadata *md, dcp_msg *msg)
{
	const cJSON *v, *ck, *items, *ji;
	size_t n, i;
	int rc;

	if (!cJSON_IsObject(root)) {
		char d[96];
		dcp_msgf(msg, "malformed checkpoint metadata: the document must be a JSON object, got %s",
		         describe(root, d, sizeof(d)));
		return DCP_EMETADATA;
	}
	rc = decode_format(root, md, msg);
	if (rc != DCP_OK)
		return rc;

	v = cJSON_GetObjectItemCaseSensitive(root, "save_id");
	if (v != NULL && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v))
			return field_error(msg, NULL, "save_id", "a string", v);
		if ((md->save_id = dcp_strdup(v->valuestring)) == NULL)
			goto nomem;
	}

	ck = cJSON_GetObjectItemCaseSensitive(root, "checksum");
	if (!cJSON_IsObject(ck))
		return field_error(msg, NULL, "checksum",
		                   "an object {\"algo\": \"" DCP_CHECKSUM_ALGO "\", \"block\": N}", ck);
	v = cJSON_GetObjectItemCaseSensitive(ck, "algo");
	if (!cJSON_IsString(v))
		return field_error(msg, NULL, "checksum.algo", "a string", v);
	if (strcmp(v->valuestring, DCP_CHECKSUM_ALGO) != 0) {
		dcp_msgf(msg,
		         "checkpoint metadata uses checksum algorithm '%.40s', which this libdcp does not "
		         "know "
		         "(it knows '" DCP_CHECKSUM_ALGO "'): upgrade libdcp",
		         v->valuestring);
		return DCP_EMETADATA;
	}
	rc = field_u64(ck, "block", NULL, "checksum.block", &md->checksum_block, msg);
	if (rc != DCP_OK)
		return rc;
	if (md->checksum_block == 0)
		return field_error(msg, NULL, "checksum.block", "at least 1",
		                   cJSON_GetObjectItemCaseSensitive(ck, "block"));

	items = cJSON_GetObjectItemCaseSensitive(root, "items");
	if (!cJSON_IsArray(items))
		return field_error(msg, NULL, "items", "an array of item objects", items);
	n = array_len(items);
	if (n > 0) {
		md->items = calloc(n, sizeof(*md->items));
		if (md->items == NULL)
			goto nomem;
		md->nitems = n;
	}
	i = 0;
	cJSON_ArrayForEach(ji, items)
	{
		rc = decode_item(ji, i, &md->items[i], msg);
		if (rc != DCP_OK)
			return rc;
		i++;
	}

	v = cJSON_GetObjectItemCaseSensitive(root, "storage_meta");
	if (v != NULL && !cJSON_IsNull(v)) {
		char *text;
		/* what a writer refuses to write (check_storage_meta) is no
		 * checkpoint's, and could not be written again */
		if (!json_depth_ok(v, 1)) {
			dcp_msgf(msg,
			         "malformed checkpoint metadata: storage_meta nests deeper than %d levels",
			         STORAGE_META_DEPTH_MAX);
			return DCP_EMETADATA;
		}
		text = cJSON_PrintUnformatted(v);
		if (text == NULL)
			goto nomem;
		/* copied so that dcp_metadata_free can free() it whatever
		 * allocator cJSON was given; a number beyond a double's range
		 * prints as null, which means none, as a null does */
		if (strcmp(text, "null") != 0 && (md->storage_meta = dcp_strdup(text)) == NULL) {
			cJSON_free(text);
			goto nomem;
		}
		cJSON_free(text);
	}

	if (md->nitems > 1)
		qsort(md->items, md->nitems, sizeof(*md->items), cmp_items);
	for (i = 1; i < md->nitems; i++) {
		if (strcmp(md->items[i - 1].key, md->items[i].key) == 0) {
			dcp_msgf(msg, "malformed checkpoint metadata: key '%s' appears in more than one item",
			         md->items[i].key);
			return DCP_EMETADATA;
		}
	}
	for (i = 0; i < md->nitems; i++)
		if (md->items[i].type == DCP_ITEM_TENSOR)
			dcp_md_item_sort_chunks(&md->items[i]);
	return DCP_OK;
nomem:
	dcp_msgf(msg, "out of memory decoding checkpoint metadata");
	return DCP_ENOMEM;
}

static int is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int dcp_metadata_decode(const char *json, size_t len, dcp_metadata **out, dcp_msg *msg)
{
	const char *end = NULL;
	dcp_metadata *md;
	cJSON *root;
	size_t pos;
	int rc;

	if (out == NULL) {
		dcp_msgf(msg, "dcp_metadata_decode: out is NULL");
		return DCP_EINVAL;
	}
	*out = NULL;
	if (json == NULL || len == 0) {
		dcp_msgf(msg, "malformed checkpoint metadata: the document is empty");
		return DCP_EMETADATA;
	}
	root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (root == NULL) {
		pos = end != NULL && end >= json && end <= json + len ? (size_t)(end - json) : 0;
		dcp_msgf(msg,
		         "malformed checkpoint metadata: not valid JSON (syntax error near byte %zu of %zu)",
		         pos, len);
		return DCP_EMETADATA;
	}
	/* Only whitespace (or a terminating NUL) may follow the document. */
	for (pos = (size_t)(end - json); pos < len && is_json_space(json[pos]); pos++)
		;
	if (pos < len && !(json[pos] == '\0' && pos + 1 == len)) {
		cJSON_Delete(root);
		dcp_msgf(msg,
		         "malformed checkpoint metadata: unexpected data after the JSON document at byte %zu "
		         "of %zu",
		         pos, len);
		return DCP_EMETADATA;
	}
	md = calloc(1, sizeof(*md));
	if (md == NULL) {
		cJSON_Delete(root);
		dcp_msgf(msg, "out of memory decoding checkpoint metadata");
		return DCP_ENOMEM;
	}
	rc = decode_root(root, md, msg);
	cJSON_Delete(root);
	if (rc == DCP_OK) {
		rc = dcp_metadata_validate(md, msg);
		if (rc == DCP_EMETADATA && msg != NULL) {
			dcp_msg why = *msg;
			dcp_msgf(msg, "malformed checkpoint metadata: %s", why.text);
		}
	}
	if (rc != DCP_OK) {
		dcp_metadata_free(md);
		return rc;
	}
	*out = md;
	return DCP_OK;
}
