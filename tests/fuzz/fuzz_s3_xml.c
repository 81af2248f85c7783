/*
 * libFuzzer target: the S3 backend's XML answers (backends/s3/s3_xml.c):
 * s3_xml_error, s3_xml_upload_id and s3_xml_list, on the same body, as an
 * S3 server (or anything pretending to be one) could send it.
 *
 * Input: the body, not NUL-terminated. Properties: no crash, leak or hang;
 * the outputs follow their contracts (NUL-terminated buffers within their
 * sizes, even of size 1 or 0; an upload id only with DCP_OK, non-empty; a
 * continuation token only with DCP_OK). Also, s3_xml_append_escaped: a
 * printable-ASCII input escaped into <Error><Code>...</Code></Error> comes
 * back unchanged from s3_xml_error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "s3_internal.h"

typedef struct list_state {
	size_t n;
} list_state;

static int on_entry(const char *key, uint64_t size, int64_t mtime, void *arg)
{
	list_state *st = arg;

	(void)size;
	FUZZ_CHECK(mtime >= -1);
	FUZZ_CHECK(key != NULL);
	(void)strlen(key);
	st->n++;
	/* a nonzero return stops the walk and is returned */
	return st->n == 1000 ? 7 : 0;
}

static void check_escape(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), *doc = NULL, *code;
	size_t len = 0, n = strlen(s);
	char message[8];
	int found;

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
			free(s);
			return;
		}
	FUZZ_CHECK(s3_append(&doc, &len, "<Error><Code>") == 0);
	FUZZ_CHECK(s3_xml_append_escaped(&doc, &len, s) == 0);
	FUZZ_CHECK(s3_append(&doc, &len, "</Code></Error>") == 0);
	FUZZ_CHECK(strlen(doc) == len);
	code = fuzz_xmalloc(n + 1);
	found = s3_xml_error(doc, len, code, n + 1, message, sizeof(message));
	FUZZ_CHECK(found == 1);
	if (strcmp(code, s) != 0)
		fprintf(stderr, "escaped '%s' as '%s', read back '%s'\n", s, doc, code);
	FUZZ_CHECK(strcmp(code, s) == 0);
	FUZZ_CHECK(message[0] == '\0');
	free(code);
	free(doc);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	char code[64], message[256], tiny[1];
	char *upload_id = (char *)"unset", *token = (char *)"unset";
	list_state st = {0};
	int found, rc, truncated = -1;

	/* The error body, with ample, one-byte and zero-byte buffers. */
	memset(code, 'x', sizeof(code));
	memset(message, 'x', sizeof(message));
	found = s3_xml_error(body, size, code, sizeof(code), message, sizeof(message));
	FUZZ_CHECK(found == 0 || found == 1);
	FUZZ_CHECK(memchr(code, '\0', sizeof(code)) != NULL &&
	           memchr(message, '\0', sizeof(message)) != NULL);
	if (!found)
		FUZZ_CHECK(code[0] == '\0' && message[0] == '\0');
	tiny[0] = 'x';
	FUZZ_CHECK(s3_xml_error(body, size, tiny, sizeof(tiny), NULL, 0) == found);
	FUZZ_CHECK(tiny[0] == '\0');

	rc = s3_xml_upload_id(body, size, &upload_id);
	FUZZ_CHECK(rc == DCP_OK || rc == DCP_EIO || rc == DCP_ENOMEM);
	if (rc == DCP_OK)
		FUZZ_CHECK(upload_id != NULL && upload_id[0] != '\0');
	else
		FUZZ_CHECK(upload_id == NULL);
	free(upload_id);

	rc = s3_xml_list(body, size, on_entry, &st, &truncated, &token);
	FUZZ_CHECK(rc == DCP_OK || rc == DCP_EIO || rc == DCP_ENOMEM || rc == 7);
	FUZZ_CHECK(truncated == 0 || truncated == 1);
	if (rc != DCP_OK)
		FUZZ_CHECK(token == NULL);
	free(token);

	check_escape(data, size);
	return 0;
}
