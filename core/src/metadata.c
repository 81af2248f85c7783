/*
 * The in-memory checkpoint metadata: freeing, lookup, deep copy, and
 * validation (see dcp/sys/metadata.h). The JSON codec is in metadata_json.c.
 * No state; every function is safe to call from any thread on distinct or
 * read-only objects.
 */
#include <stdlib.h>
#include <string.h>

#include "metadata_internal.h"
#include "url.h"

/* ------------------------------------------------------------------------ */
/* Freeing                                                                  */
/* ------------------------------------------------------------------------ */

void dcp_storage_info_clear(dcp_storage_info *s)
{
	if (s == NULL)
		return;
	free(s->path);
	free(s->sums);
	memset(s, 0, sizeof(*s));
}

void dcp_md_item_clear(dcp_md_item *it)
{
	size_t i;

	if (it == NULL)
		return;
	free(it->key);
	if (it->chunks != NULL) {
		for (i = 0; i < it->nchunks; i++)
			dcp_storage_info_clear(&it->chunks[i].storage);
		free(it->chunks);
	}
	memset(it, 0, sizeof(*it));
}

void dcp_metadata_free(dcp_metadata *md)
{
	size_t i;

	if (md == NULL)
		return;
	if (md->items != NULL) {
		for (i = 0; i < md->nitems; i++)
			dcp_md_item_clear(&md->items[i]);
		free(md->items);
	}
	free(md->save_id);
	free(md->storage_meta);
	free(md);
}

/* ------------------------------------------------------------------------ */
/* Lookup and copy                                                          */
/* ------------------------------------------------------------------------ */

const dcp_md_item *dcp_metadata_find(const dcp_metadata *md, const char *key)
{
	size_t lo = 0, hi;

	if (md == NULL || key == NULL || md->items == NULL)
		return NULL;
	hi = md->nitems;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(md->items[mid].key, key);
		if (c == 0)
			return &md->items[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int storage_info_copy(dcp_storage_info *dst, const dcp_storage_info *src)
{
	*dst = *src;
	dst->path = NULL;
	dst->sums = NULL;
	if (src->path != NULL && (dst->path = dcp_strdup(src->path)) == NULL)
		return -1;
	if (src->sums != NULL && src->nsums > 0) {
		dst->sums = malloc((size_t)src->nsums * sizeof(uint64_t));
		if (dst->sums == NULL)
			return -1;
		memcpy(dst->sums, src->sums, (size_t)src->nsums * sizeof(uint64_t));
	}
	return 0;
}

static int item_copy(dcp_md_item *dst, const dcp_md_item *src)
{
	size_t i;

	*dst = *src;
	dst->key = NULL;
	dst->chunks = NULL;
	dst->nchunks = 0;
	if (src->key != NULL && (dst->key = dcp_strdup(src->key)) == NULL)
		return -1;
	if (src->chunks == NULL || src->nchunks == 0)
		return 0;
	dst->chunks = calloc(src->nchunks, sizeof(*dst->chunks));
	if (dst->chunks == NULL)
		return -1;
	dst->nchunks = src->nchunks;
	for (i = 0; i < src->nchunks; i++) {
		memcpy(dst->chunks[i].offsets, src->chunks[i].offsets, sizeof(dst->chunks[i].offsets));
		memcpy(dst->chunks[i].sizes, src->chunks[i].sizes, sizeof(dst->chunks[i].sizes));
		if (storage_info_copy(&dst->chunks[i].storage, &src->chunks[i].storage) != 0)
			return -1;
	}
	return 0;
}

dcp_metadata *dcp_metadata_dup(const dcp_metadata *md)
{
	dcp_metadata *c;
	size_t i;

	if (md == NULL)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->format_major = md->format_major;
	c->format_minor = md->format_minor;
	c->checksum_block = md->checksum_block;
	if ((md->save_id != NULL && (c->save_id = dcp_strdup(md->save_id)) == NULL) ||
	    (md->storage_meta != NULL && (c->storage_meta = dcp_strdup(md->storage_meta)) == NULL))
		goto fail;
	if (md->items != NULL && md->nitems > 0) {
		c->items = calloc(md->nitems, sizeof(*c->items));
		if (c->items == NULL)
			goto fail;
		c->nitems = md->nitems;
		for (i = 0; i < md->nitems; i++)
			if (item_copy(&c->items[i], &md->items[i]) != 0)
				goto fail;
	}
	return c;
fail:
	dcp_metadata_free(c);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Paths                                                                    */
/* ------------------------------------------------------------------------ */

/* Longest storage path accepted, in bytes. */
#define DCP_PATH_MAX 4096

int dcp_storage_path_is_safe(const char *path)
{
	const char *p, *comp;
	size_t n;

	if (path == NULL || path[0] == '\0')
		return 0;
	n = strlen(path);
	if (n > DCP_PATH_MAX)
		return 0;
	for (p = path; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		/* control characters and '\\' (a separator on some systems) */
		if (c < 0x20 || c == 0x7f || c == '\\')
			return 0;
	}
	/* Every '/'-separated component is non-empty and neither "." nor "..";
	 * this also rules out a leading or trailing '/' and "//". */
	comp = path;
	for (;;) {
		const char *end = strchr(comp, '/');
		size_t len = end != NULL ? (size_t)(end - comp) : strlen(comp);
		if (len == 0 || (len == 1 && comp[0] == '.') ||
		    (len == 2 && comp[0] == '.' && comp[1] == '.'))
			return 0;
		if (end == NULL)
			return 1;
		comp = end + 1;
	}
}

/* ------------------------------------------------------------------------ */
/* Chunk geometry                                                           */
/* ------------------------------------------------------------------------ */

/* "[1, 2, 3]" into buf (always NUL-terminated). */
static const char *fmt_dims(char *buf, size_t cap, int ndim, const uint64_t *v)
{
	size_t len = 0;
	int d;

	buf[0] = '\0';
	len += (size_t)snprintf(buf, cap, "[");
	for (d = 0; d < ndim && len < cap; d++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%llu", d ? ", " : "",
		                        (unsigned long long)v[d]);
	if (len < cap)
		snprintf(buf + len, cap - len, "]");
	return buf;
}

/* Enough for DCP_MAX_DIMS 20-digit numbers with separators. */
#define DIMS_BUF 200

/* Product of v[0..n) into *out; -1 if it overflows 64 bits. */
static int product_u64(const uint64_t *v, int n, uint64_t *out)
{
	uint64_t p = 1;
	int d;

	for (d = 0; d < n; d++) {
		if (v[d] != 0 && p > UINT64_MAX / v[d])
			return -1;
		p *= v[d];
	}
	*out = p;
	return 0;
}

/* Product of the non-zero entries; -1 if that overflows. A shape whose
 * non-zero dims overflow is refused even if another dim is 0, so that
 * strides and byte offsets computed from it never overflow either. */
static int shape_is_sane(const uint64_t *shape, int ndim)
{
	uint64_t p = 1;
	int d;

	for (d = 0; d < ndim; d++) {
		if (shape[d] == 0)
			continue;
		if (p > UINT64_MAX / shape[d])
			return 0;
		p *= shape[d];
	}
	return 1;
}

static int chunk_is_empty(const dcp_md_chunk *c, int ndim)
{
	int d;

	for (d = 0; d < ndim; d++)
		if (c->sizes[d] == 0)
			return 1;
	return 0;
}

static int boxes_overlap(const dcp_md_chunk *a, const dcp_md_chunk *b, int ndim)
{
	int d;

	/* Both boxes are non-empty and inside the shape, so ends never wrap. */
	for (d = 0; d < ndim; d++)
		if (!(a->offsets[d] < b->offsets[d] + b->sizes[d] &&
		      b->offsets[d] < a->offsets[d] + a->sizes[d]))
			return 0;
	return 1;
}

static int overlap_error(const dcp_md_item *item, const dcp_md_chunk *a, const dcp_md_chunk *b, dcp_msg *msg)
{
	char ao[DIMS_BUF], as[DIMS_BUF], bo[DIMS_BUF], bs[DIMS_BUF];

	dcp_msgf(msg,
	         "tensor '%s': chunk at offsets %s sizes %s overlaps chunk at offsets %s sizes %s: every "
	         "element must be stored exactly once",
	         item->key != NULL ? item->key : "(null)", fmt_dims(ao, sizeof(ao), item->ndim, a->offsets),
	         fmt_dims(as, sizeof(as), item->ndim, a->sizes),
	         fmt_dims(bo, sizeof(bo), item->ndim, b->offsets),
	         fmt_dims(bs, sizeof(bs), item->ndim, b->sizes));
	return DCP_EMETADATA;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* A chunk's extent along the sweep dimension. */
typedef struct sweep_entry {
	uint64_t start, end;
	size_t idx;
} sweep_entry;

static int cmp_sweep(const void *a, const void *b)
{
	const sweep_entry *x = a, *y = b;
	if (x->start != y->start)
		return (x->start > y->start) - (x->start < y->start);
	return (x->idx > y->idx) - (x->idx < y->idx);
}

/*
 * Finds two overlapping non-empty chunks. Sweep along the dimension with the
 * most distinct chunk starts: sorted by start there, chunk i can only overlap
 * later chunks that start before it ends in that dimension.
 */
static int check_overlaps(const dcp_md_item *item, dcp_msg *msg)
{
	const int ndim = item->ndim;
	size_t n = item->nchunks, m = 0, i, j, best_distinct = 0;
	sweep_entry *e = NULL;
	uint64_t *starts = NULL;
	int d, best = 0, rc = DCP_OK;

	if (ndim == 0) {
		/* every non-empty scalar chunk is the one element */
		if (n > 1)
			return overlap_error(item, &item->chunks[0], &item->chunks[1], msg);
		return DCP_OK;
	}
	if (n < 2)
		return DCP_OK;
	e = malloc(n * sizeof(*e));
	starts = malloc(n * sizeof(*starts));
	if (e == NULL || starts == NULL) {
		dcp_msgf(msg, "tensor '%s': out of memory checking %zu chunks for overlaps", item->key, n);
		rc = DCP_ENOMEM;
		goto out;
	}
	for (d = 0; d < ndim; d++) {
		size_t k = 0, distinct = 0;
		for (i = 0; i < n; i++)
			if (!chunk_is_empty(&item->chunks[i], ndim))
				starts[k++] = item->chunks[i].offsets[d];
		qsort(starts, k, sizeof(*starts), cmp_u64);
		for (i = 0; i < k; i++)
			if (i == 0 || starts[i] != starts[i - 1])
				distinct++;
		if (distinct > best_distinct) {
			best_distinct = distinct;
			best = d;
		}
	}
	for (i = 0; i < n; i++) {
		const dcp_md_chunk *c = &item->chunks[i];
		if (chunk_is_empty(c, ndim))
			continue;
		e[m].start = c->offsets[best];
		e[m].end = c->offsets[best] + c->sizes[best];
		e[m].idx = i;
		m++;
	}
	qsort(e, m, sizeof(*e), cmp_sweep);
	for (i = 0; i < m; i++) {
		for (j = i + 1; j < m && e[j].start < e[i].end; j++) {
			const dcp_md_chunk *a = &item->chunks[e[i].idx], *b = &item->chunks[e[j].idx];
			if (boxes_overlap(a, b, ndim)) {
				rc = overlap_error(item, a, b, msg);
				goto out;
			}
		}
	}
out:
	free(e);
	free(starts);
	return rc;
}

int dcp_md_item_validate_chunks(const dcp_md_item *item, dcp_msg *msg)
{
	char b1[DIMS_BUF], b2[DIMS_BUF], b3[DIMS_BUF];
	const char *key;
	uint64_t total, covered = 0;
	size_t i;
	int d, rc;

	if (item == NULL) {
		dcp_msgf(msg, "dcp_md_item_validate_chunks: item is NULL");
		return DCP_EINVAL;
	}
	key = item->key != NULL ? item->key : "(null)";
	if (item->ndim < 0 || item->ndim > DCP_MAX_DIMS) {
		dcp_msgf(msg, "tensor '%s': ndim %d is out of range (0..%d)", key, item->ndim, DCP_MAX_DIMS);
		return DCP_EMETADATA;
	}
	if (!shape_is_sane(item->shape, item->ndim) || product_u64(item->shape, item->ndim, &total) != 0) {
		dcp_msgf(msg, "tensor '%s': shape %s is too large: its element count overflows 64 bits", key,
		         fmt_dims(b1, sizeof(b1), item->ndim, item->shape));
		return DCP_EMETADATA;
	}
	if (item->nchunks > 0 && item->chunks == NULL) {
		dcp_msgf(msg, "tensor '%s': %zu chunks but no chunk array", key, item->nchunks);
		return DCP_EMETADATA;
	}
	for (i = 0; i < item->nchunks; i++) {
		const dcp_md_chunk *c = &item->chunks[i];
		for (d = 0; d < item->ndim; d++) {
			if (c->offsets[d] > item->shape[d] || c->sizes[d] > item->shape[d] - c->offsets[d]) {
				dcp_msgf(
				        msg,
				        "tensor '%s': chunk at offsets %s sizes %s lies outside the shape %s",
				        key, fmt_dims(b1, sizeof(b1), item->ndim, c->offsets),
				        fmt_dims(b2, sizeof(b2), item->ndim, c->sizes),
				        fmt_dims(b3, sizeof(b3), item->ndim, item->shape));
				return DCP_EMETADATA;
			}
		}
	}
	rc = check_overlaps(item, msg);
	if (rc != DCP_OK)
		return rc;
	for (i = 0; i < item->nchunks; i++) {
		uint64_t v = 0;
		/* inside the shape, so the volume cannot overflow */
		(void)product_u64(item->chunks[i].sizes, item->ndim, &v);
		if (covered > UINT64_MAX - v) {
			covered = UINT64_MAX;
			break;
		}
		covered += v;
	}
	if (covered != total) {
		dcp_msgf(msg,
		         "tensor '%s': chunks cover %llu of %llu elements: the save must include every part "
		         "of "
		         "the tensor",
		         key, (unsigned long long)covered, (unsigned long long)total);
		return DCP_EMETADATA;
	}
	return DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* Chunk order                                                              */
/* ------------------------------------------------------------------------ */

static int cmp_offsets(const dcp_md_chunk *a, const dcp_md_chunk *b, int ndim)
{
	int d;

	for (d = 0; d < ndim; d++)
		if (a->offsets[d] != b->offsets[d])
			return a->offsets[d] < b->offsets[d] ? -1 : 1;
	return 0;
}

/* An entry of the index sort: carries ndim so that qsort needs no context. */
typedef struct chunk_ref {
	const dcp_md_chunk *c;
	int ndim;
} chunk_ref;

static int cmp_chunk_ref(const void *a, const void *b)
{
	const chunk_ref *x = a, *y = b;
	int c = cmp_offsets(x->c, y->c, x->ndim);
	if (c != 0)
		return c;
	return (x->c > y->c) - (x->c < y->c); /* stable */
}

static void swap_chunks(dcp_md_chunk *a, dcp_md_chunk *b)
{
	dcp_md_chunk t = *a;
	*a = *b;
	*b = t;
}

static void sift_down(dcp_md_chunk *c, size_t root, size_t n, int ndim)
{
	for (;;) {
		size_t child = 2 * root + 1, top = root;
		if (child < n && cmp_offsets(&c[child], &c[top], ndim) > 0)
			top = child;
		if (child + 1 < n && cmp_offsets(&c[child + 1], &c[top], ndim) > 0)
			top = child + 1;
		if (top == root)
			return;
		swap_chunks(&c[root], &c[top]);
		root = top;
	}
}

/* In-place fallback when memory for the index sort is short. */
static void heapsort_chunks(dcp_md_chunk *c, size_t n, int ndim)
{
	size_t i;

	for (i = n / 2; i-- > 0;)
		sift_down(c, i, n, ndim);
	for (i = n; i-- > 1;) {
		swap_chunks(&c[0], &c[i]);
		sift_down(c, 0, i, ndim);
	}
}

void dcp_md_item_sort_chunks(dcp_md_item *item)
{
	size_t n, i;
	int ndim;
	chunk_ref *refs;
	dcp_md_chunk *sorted;

	if (item == NULL || item->chunks == NULL || item->nchunks < 2)
		return;
	n = item->nchunks;
	ndim = item->ndim < 0 ? 0 : item->ndim > DCP_MAX_DIMS ? DCP_MAX_DIMS : item->ndim;
	for (i = 1; i < n; i++)
		if (cmp_offsets(&item->chunks[i - 1], &item->chunks[i], ndim) > 0)
			break;
	if (i == n)
		return; /* already in order: the common case */
	refs = malloc(n * sizeof(*refs));
	sorted = malloc(n * sizeof(*sorted));
	if (refs == NULL || sorted == NULL) {
		free(refs);
		free(sorted);
		heapsort_chunks(item->chunks, n, ndim);
		return;
	}
	for (i = 0; i < n; i++) {
		refs[i].c = &item->chunks[i];
		refs[i].ndim = ndim;
	}
	qsort(refs, n, sizeof(*refs), cmp_chunk_ref);
	for (i = 0; i < n; i++)
		sorted[i] = *refs[i].c;
	memcpy(item->chunks, sorted, n * sizeof(*sorted));
	free(sorted);
	free(refs);
}

/* ------------------------------------------------------------------------ */
/* Whole-metadata validation                                                */
/* ------------------------------------------------------------------------ */

/* Non-empty printable ASCII of at most max bytes; returns a reason or NULL. */
static const char *check_text(const char *s, size_t max)
{
	size_t n = 0;

	if (s == NULL)
		return "it is missing";
	if (s[0] == '\0')
		return "it is empty";
	for (; s[n] != '\0'; n++) {
		if (n >= max)
			return "it is too long";
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
			return "it has a character that is not printable ASCII";
	}
	return NULL;
}

/* Names a chunk in messages: "tensor 'k' chunk at offsets [..] sizes [..]"
 * or "bytes item 'k'". */
static const char *chunk_label(char *buf, size_t cap, const dcp_md_item *it, const dcp_md_chunk *c)
{
	char o[DIMS_BUF], s[DIMS_BUF];

	if (it->type == DCP_ITEM_BYTES)
		snprintf(buf, cap, "bytes item '%s'", it->key);
	else
		snprintf(buf, cap, "tensor '%s' chunk at offsets %s sizes %s", it->key,
		         fmt_dims(o, sizeof(o), it->ndim, c->offsets),
		         fmt_dims(s, sizeof(s), it->ndim, c->sizes));
	return buf;
}

static int check_storage(const dcp_metadata *md, const dcp_md_item *it, const dcp_md_chunk *c,
                         uint64_t expect_len, int check_len, dcp_msg *msg)
{
	const dcp_storage_info *s = &c->storage;
	char label[DCP_KEY_MAX + 2 * DIMS_BUF + 64];
	uint64_t nsums;

	if (!dcp_storage_path_is_safe(s->path)) {
		dcp_msgf(
		        msg,
		        "%s: storage path '%s' is not safe: it must be relative, '/'-separated, with no '.', "
		        "'..' or empty component, no control character or '\\\\', at most 4096 bytes",
		        chunk_label(label, sizeof(label), it, c), s->path != NULL ? s->path : "(null)");
		return DCP_EMETADATA;
	}
	if (s->offset > UINT64_MAX - s->length) {
		dcp_msgf(msg, "%s: storage offset %llu + length %llu in '%s' overflows 64 bits",
		         chunk_label(label, sizeof(label), it, c), (unsigned long long)s->offset,
		         (unsigned long long)s->length, s->path);
		return DCP_EMETADATA;
	}
	if (check_len && s->length != expect_len) {
		dcp_msgf(msg,
		         "%s: stored length %llu bytes in '%s' differs from the %llu bytes its elements take",
		         chunk_label(label, sizeof(label), it, c), (unsigned long long)s->length, s->path,
		         (unsigned long long)expect_len);
		return DCP_EMETADATA;
	}
	nsums = s->length / md->checksum_block + (s->length % md->checksum_block != 0);
	if ((uint64_t)s->nsums != nsums) {
		dcp_msgf(msg, "%s: %lu checksums for %llu bytes in blocks of %llu bytes (expected %llu)",
		         chunk_label(label, sizeof(label), it, c), (unsigned long)s->nsums,
		         (unsigned long long)s->length, (unsigned long long)md->checksum_block,
		         (unsigned long long)nsums);
		return DCP_EMETADATA;
	}
	if (s->nsums > 0 && s->sums == NULL) {
		dcp_msgf(msg, "%s: %lu checksums announced but the checksum array is missing",
		         chunk_label(label, sizeof(label), it, c), (unsigned long)s->nsums);
		return DCP_EMETADATA;
	}
	return DCP_OK;
}

static int validate_tensor(const dcp_metadata *md, const dcp_md_item *it, dcp_msg *msg)
{
	size_t esize, i;
	int rc;

	if ((int)it->dtype < 0 || (int)it->dtype >= DCP_DTYPE_COUNT_ ||
	    (esize = dcp_dtype_size(it->dtype)) == 0) {
		dcp_msgf(msg, "tensor '%s': unknown dtype %d", it->key, (int)it->dtype);
		return DCP_EMETADATA;
	}
	rc = dcp_md_item_validate_chunks(it, msg);
	if (rc != DCP_OK)
		return rc;
	for (i = 0; i < it->nchunks; i++) {
		const dcp_md_chunk *c = &it->chunks[i];
		uint64_t vol, bytes = 0;
		int ok = product_u64(c->sizes, it->ndim, &vol) == 0 && vol <= UINT64_MAX / esize;
		if (ok)
			bytes = vol * esize;
		if (!ok) {
			char label[DCP_KEY_MAX + 2 * DIMS_BUF + 64];
			dcp_msgf(msg, "%s: its byte size overflows 64 bits",
			         chunk_label(label, sizeof(label), it, c));
			return DCP_EMETADATA;
		}
		rc = check_storage(md, it, c, bytes, 1, msg);
		if (rc != DCP_OK)
			return rc;
	}
	return DCP_OK;
}

int dcp_metadata_validate(const dcp_metadata *md, dcp_msg *msg)
{
	const char *why;
	size_t i;
	int rc;

	if (md == NULL) {
		dcp_msgf(msg, "dcp_metadata_validate: metadata is NULL");
		return DCP_EINVAL;
	}
	if (md->format_major > DCP_FORMAT_MAJOR) {
		dcp_msgf(msg,
		         "checkpoint format %u.%u is newer than this libdcp supports (%d.x): upgrade libdcp",
		         md->format_major, md->format_minor, DCP_FORMAT_MAJOR);
		return DCP_EVERSION;
	}
	if (md->format_major < 1) {
		dcp_msgf(msg, "metadata format %u.%u is not a libdcp format (expected %d.x)",
		         md->format_major, md->format_minor, DCP_FORMAT_MAJOR);
		return DCP_EMETADATA;
	}
	if (md->checksum_block == 0) {
		dcp_msgf(msg, "metadata checksum block size is 0: it must be at least 1 byte");
		return DCP_EMETADATA;
	}
	if (md->save_id != NULL && (why = check_text(md->save_id, DCP_KEY_MAX)) != NULL) {
		dcp_msgf(msg, "metadata save_id is not valid: %s (printable ASCII, 1 to %d bytes)", why,
		         DCP_KEY_MAX);
		return DCP_EMETADATA;
	}
	if (md->nitems > 0 && md->items == NULL) {
		dcp_msgf(msg, "metadata has %zu items but no item array", md->nitems);
		return DCP_EMETADATA;
	}
	for (i = 0; i < md->nitems; i++) {
		const dcp_md_item *it = &md->items[i];
		if ((why = check_text(it->key, DCP_KEY_MAX)) != NULL) {
			dcp_msgf(msg,
			         "item %zu: key '%.64s%s' is not valid: %s (keys are printable ASCII, 1 to "
			         "%d bytes)",
			         i, it->key != NULL ? it->key : "(null)",
			         it->key != NULL && strlen(it->key) > 64 ? "..." : "", why, DCP_KEY_MAX);
			return DCP_EMETADATA;
		}
		if (i > 0) {
			int c = strcmp(md->items[i - 1].key, it->key);
			if (c == 0) {
				dcp_msgf(msg, "key '%s' appears twice in the metadata: keys must be unique",
				         it->key);
				return DCP_EMETADATA;
			}
			if (c > 0) {
				dcp_msgf(msg, "metadata items are not sorted by key: '%s' comes before '%s'",
				         md->items[i - 1].key, it->key);
				return DCP_EMETADATA;
			}
		}
		switch (it->type) {
		case DCP_ITEM_TENSOR:
			rc = validate_tensor(md, it, msg);
			break;
		case DCP_ITEM_BYTES:
			if (it->ndim != 0 || it->nchunks != 1 || it->chunks == NULL) {
				dcp_msgf(msg,
				         "bytes item '%s' has ndim %d and %zu chunks (expected ndim 0 and 1 "
				         "chunk)",
				         it->key, it->ndim, it->chunks == NULL ? (size_t)0 : it->nchunks);
				return DCP_EMETADATA;
			}
			rc = check_storage(md, it, &it->chunks[0], 0, 0, msg);
			break;
		default:
			dcp_msgf(msg, "item '%s' has unknown type %d (expected tensor or bytes)", it->key,
			         (int)it->type);
			return DCP_EMETADATA;
		}
		if (rc != DCP_OK)
			return rc;
	}
	return DCP_OK;
}
