/*
 * libFuzzer target: the metadata JSON codec (dcp/sys/metadata.h).
 *
 * Input: the bytes of a metadata document, exactly as read from storage (not
 * NUL-terminated). Properties:
 *   - dcp_metadata_decode never crashes, leaks or hangs; on failure it
 *     returns DCP_EMETADATA, DCP_EVERSION or DCP_ENOMEM with a message and
 *     leaves *out NULL;
 *   - what it accepts, dcp_metadata_validate accepts too;
 *   - it re-encodes (dcp_metadata_encode succeeds), and decoding the encoded
 *     text gives the same metadata (every field but the format version, which
 *     the encoder always writes as its own), which encodes to the same bytes;
 *   - dcp_metadata_dup gives an equal copy, and dcp_metadata_find finds
 *     every key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/sys/metadata.h"
#include "fuzz_common.h"

static int str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Equal in every field; the format version only if with_format. */
static int md_equal(const dcp_metadata *a, const dcp_metadata *b, int with_format)
{
	if (with_format && (a->format_major != b->format_major || a->format_minor != b->format_minor))
		return 0;
	if (!str_eq(a->save_id, b->save_id) || a->checksum_block != b->checksum_block ||
	    a->nitems != b->nitems || !str_eq(a->storage_meta, b->storage_meta))
		return 0;
	for (size_t i = 0; i < a->nitems; i++) {
		const dcp_md_item *x = &a->items[i], *y = &b->items[i];
		if (!str_eq(x->key, y->key) || x->type != y->type || x->nchunks != y->nchunks)
			return 0;
		if (x->type == DCP_ITEM_TENSOR) {
			if (x->dtype != y->dtype || x->ndim != y->ndim)
				return 0;
			if (memcmp(x->shape, y->shape, (size_t)x->ndim * sizeof(x->shape[0])) != 0)
				return 0;
		}
		for (size_t j = 0; j < x->nchunks; j++) {
			const dcp_md_chunk *c = &x->chunks[j], *d = &y->chunks[j];
			size_t dims = x->type == DCP_ITEM_TENSOR ? (size_t)x->ndim : 0;
			if (memcmp(c->offsets, d->offsets, dims * sizeof(c->offsets[0])) != 0 ||
			    memcmp(c->sizes, d->sizes, dims * sizeof(c->sizes[0])) != 0)
				return 0;
			if (!str_eq(c->storage.path, d->storage.path) ||
			    c->storage.offset != d->storage.offset ||
			    c->storage.length != d->storage.length || c->storage.nsums != d->storage.nsums)
				return 0;
			if (c->storage.nsums > 0 && memcmp(c->storage.sums, d->storage.sums,
			                                   c->storage.nsums * sizeof(uint64_t)) != 0)
				return 0;
		}
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dcp_metadata *md = NULL, *md2 = NULL, *copy;
	dcp_msg msg = {{0}};
	char *json = NULL, *json2 = NULL;
	size_t len = 0, len2 = 0;
	int rc;

	rc = dcp_metadata_decode((const char *)data, size, &md, &msg);
	if (rc != DCP_OK) {
		FUZZ_CHECK(md == NULL);
		FUZZ_CHECK(rc == DCP_EMETADATA || rc == DCP_EVERSION || rc == DCP_ENOMEM);
		FUZZ_CHECK(msg.text[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(md != NULL);
	rc = dcp_metadata_validate(md, &msg);
	if (rc != DCP_OK)
		fprintf(stderr, "validate refuses what decode accepted: %s\n", msg.text);
	FUZZ_CHECK(rc == DCP_OK);
	for (size_t i = 0; i < md->nitems; i++)
		FUZZ_CHECK(dcp_metadata_find(md, md->items[i].key) == &md->items[i]);

	rc = dcp_metadata_encode(md, &json, &len, &msg);
	if (rc != DCP_OK)
		fprintf(stderr, "encode refuses what decode accepted: %s\n", msg.text);
	FUZZ_CHECK(rc == DCP_OK);
	FUZZ_CHECK(json != NULL && json[len] == '\0' && strlen(json) == len);

	rc = dcp_metadata_decode(json, len, &md2, &msg);
	if (rc != DCP_OK)
		fprintf(stderr, "decode refuses what encode wrote: %s\n%s\n", msg.text, json);
	FUZZ_CHECK(rc == DCP_OK);
	FUZZ_CHECK(md_equal(md, md2, 0));
	rc = dcp_metadata_encode(md2, &json2, &len2, &msg);
	FUZZ_CHECK(rc == DCP_OK);
	FUZZ_CHECK(len2 == len && memcmp(json, json2, len) == 0);
	dcp_metadata_free(md2);
	md2 = NULL;

	/* The terminating NUL that encode writes may be handed to decode too. */
	rc = dcp_metadata_decode(json, len + 1, &md2, &msg);
	FUZZ_CHECK(rc == DCP_OK);
	FUZZ_CHECK(md_equal(md, md2, 0));
	dcp_metadata_free(md2);

	copy = dcp_metadata_dup(md);
	if (copy != NULL) {
		FUZZ_CHECK(md_equal(md, copy, 1));
		dcp_metadata_free(copy);
	}
	free(json);
	free(json2);
	dcp_metadata_free(md);
	return 0;
}
