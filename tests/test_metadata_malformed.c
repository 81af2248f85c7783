/*
 * The checkpoint metadata model (dcp/sys/metadata.h): malformed, truncated,
 * corrupted and too deeply nested documents are refused with precise
 * messages, never a crash.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/sys/metadata.h"
#include "mdtest.h"

/* ------------------------------------------------------------------------ */
/* Malformed documents                                                      */
/* ------------------------------------------------------------------------ */

#define HEAD                                                                                          \
	"{\"format\":{\"major\":1,\"minor\":0},\"save_id\":\"s\",\"checksum\":{\"algo\":\"xxh3-64\"," \
	"\"block\":16},"
#define SUM "\"0123456789abcdef\""
/* A valid u8 tensor item "k" of shape [4] in one chunk; pieces replaceable. */
#define TENSOR(key, dtype, shape, chunks) \
	"{\"key\":" key ",\"type\":\"tensor\",\"dtype\":" dtype ",\"shape\":" shape ",\"chunks\":" chunks "}"
#define CHUNK(offsets, sizes, path, offset, length, sums)                                   \
	"{\"offsets\":" offsets ",\"sizes\":" sizes ",\"path\":" path ",\"offset\":" offset \
	",\"length\":" length ",\"sums\":" sums "}"
#define OK_CHUNK   CHUNK("[0]", "[4]", "\"d/f\"", "0", "4", "[" SUM "]")
#define DOC(items) HEAD "\"items\":[" items "]}"

typedef struct bad_case {
	const char *name;
	const char *json;
	const char *want[3]; /* substrings the message must hold */
} bad_case;

static const bad_case bad_cases[] = {
        {"empty", "", {"empty"}},
        {"not json", "{\"format\":", {"not valid JSON"}},
        {"trailing data", DOC("") "x", {"after the JSON document"}},
        {"array root", "[]", {"must be a JSON object"}},
        {"no format", "{\"items\":[]}", {"'format'", "missing"}},
        {"format not object", "{\"format\":1}", {"'format'", "the number 1"}},
        {"major negative", "{\"format\":{\"major\":-1,\"minor\":0}}", {"'format.major'", "-1"}},
        {"major zero", "{\"format\":{\"major\":0,\"minor\":0}}", {"major version is 0"}},
        {"minor missing", "{\"format\":{\"major\":1},\"items\":[]}", {"'format.minor'"}},
        {"no checksum", "{\"format\":{\"major\":1,\"minor\":0},\"items\":[]}", {"'checksum'"}},
        {"unknown algo",
         "{\"format\":{\"major\":1,\"minor\":0},\"checksum\":{\"algo\":\"crc32c\",\"block\":4},\"items\":[]}",
         {"'crc32c'", "xxh3-64"}},
        {"block zero",
         "{\"format\":{\"major\":1,\"minor\":0},\"checksum\":{\"algo\":\"xxh3-64\",\"block\":0},"
         "\"items\":[]}",
         {"'checksum.block'"}},
        {"save_id number",
         "{\"format\":{\"major\":1,\"minor\":0},\"save_id\":5,\"checksum\":{\"algo\":\"xxh3-64\","
         "\"block\":4},\"items\":[]}",
         {"'save_id'"}},
        {"items missing", HEAD "\"x\":1}", {"'items'", "missing"}},
        {"items object", HEAD "\"items\":{}}", {"'items'", "an object"}},
        {"item not object", DOC("3"), {"items[0]", "an object"}},
        {"key missing", DOC("{\"type\":\"bytes\"}"), {"items[0]", "'key'"}},
        {"key empty", DOC(TENSOR("\"\"", "\"u8\"", "[4]", "[" OK_CHUNK "]")), {"items[0]", "'key'"}},
        {"key not printable",
         DOC(TENSOR("\"a\\u0001b\"", "\"u8\"", "[4]", "[" OK_CHUNK "]")),
         {"key", "printable ASCII"}},
        {"unknown type",
         DOC("{\"key\":\"k\",\"type\":\"blob\",\"chunks\":[]}"),
         {"item 'k'", "'type'", "\"blob\""}},
        {"unknown dtype",
         DOC(TENSOR("\"k\"", "\"f128\"", "[4]", "[" OK_CHUNK "]")),
         {"item 'k'", "'dtype'", "f128"}},
        {"dtype number", DOC(TENSOR("\"k\"", "4", "[4]", "[" OK_CHUNK "]")), {"item 'k'", "'dtype'"}},
        {"shape missing",
         DOC("{\"key\":\"k\",\"type\":\"tensor\",\"dtype\":\"u8\",\"chunks\":[]}"),
         {"item 'k'", "'shape'", "missing"}},
        {"ndim 9",
         DOC(TENSOR("\"k\"", "\"u8\"", "[1,1,1,1,1,1,1,1,1]", "[]")),
         {"item 'k'", "'shape'", "9 dimensions"}},
        {"shape element string", DOC(TENSOR("\"k\"", "\"u8\"", "[\"x\"]", "[]")), {"item 'k'", "'shape[0]'"}},
        {"shape overflow",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4294967296,4294967296,2]", "[]")),
         {"'k'", "overflows"}},
        {"shape overflow with a zero",
         DOC(TENSOR("\"k\"", "\"u8\"", "[\"18446744073709551615\",2,0]", "[]")),
         {"'k'", "overflows"}},
        {"shape above u64",
         DOC(TENSOR("\"k\"", "\"u8\"", "[\"18446744073709551616\"]", "[]")),
         {"'k'", "'shape[0]'"}},
        {"shape fraction", DOC(TENSOR("\"k\"", "\"u8\"", "[1.5]", "[]")), {"'k'", "'shape[0]'", "1.5"}},
        {"shape inexact double",
         DOC(TENSOR("\"k\"", "\"u8\"", "[9007199254740994]", "[]")),
         {"'k'", "'shape[0]'", "decimal string"}},
        {"shape negative string", DOC(TENSOR("\"k\"", "\"u8\"", "[\"-4\"]", "[]")), {"'k'", "'shape[0]'"}},
        {"chunks missing",
         DOC("{\"key\":\"k\",\"type\":\"tensor\",\"dtype\":\"u8\",\"shape\":[4]}"),
         {"item 'k'", "'chunks'"}},
        {"chunk not object", DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[[]]")), {"item 'k'", "'chunks[0]'"}},
        {"offsets ndim mismatch",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[0,0]", "[4]", "\"f\"", "0", "4", "[" SUM "]") "]")),
         {"item 'k'", "'chunks[0].offsets'", "2 dimensions"}},
        {"sizes missing",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[{\"offsets\":[0],\"path\":\"f\"}]")),
         {"item 'k'", "'chunks[0].sizes'"}},
        {"path missing",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[{\"offsets\":[0],\"sizes\":[4]}]")),
         {"item 'k'", "'chunks[0].path'"}},
        {"path dotdot",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"a/../../etc\"", "0", "4", "[" SUM "]") "]")),
         {"'k'", "a/../../etc", "not safe"}},
        {"path absolute",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"/etc/passwd\"", "0", "4", "[" SUM "]") "]")),
         {"'k'", "/etc/passwd", "not safe"}},
        {"path empty component",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"a//b\"", "0", "4", "[" SUM "]") "]")),
         {"'k'", "a//b"}},
        {"offset missing",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[{\"offsets\":[0],\"sizes\":[4],\"path\":\"f\"}]")),
         {"item 'k'", "'chunks[0].offset'", "missing"}},
        {"length bool",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"f\"", "0", "true", "[" SUM "]") "]")),
         {"item 'k'", "'chunks[0].length'", "true"}},
        {"length not volume",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[0]", "[4]", "\"f\"", "0", "5", "[" SUM "]") "]")),
         {"'k'", "length 5", "4 bytes"}},
        {"offset+length overflow",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"f\"", "\"18446744073709551614\"", "4", "[" SUM "]") "]")),
         {"'k'", "overflows"}},
        {"sums missing",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[{\"offsets\":[0],\"sizes\":[4],\"path\":\"f\",\"offset\":0,\"length\":4}]")),
         {"item 'k'", "'chunks[0].sums'"}},
        {"sums too few",
         DOC(TENSOR("\"k\"", "\"u8\"", "[40]",
                    "[" CHUNK("[0]", "[40]", "\"f\"", "0", "40", "[" SUM "]") "]")),
         {"'k'", "1 checksums", "expected 3"}},
        {"sums bad hex",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"f\"", "0", "4", "[\"0123456789abcdeg\"]") "]")),
         {"item 'k'", "'chunks[0].sums[0]'", "16 hex digits"}},
        {"sums short",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[0]", "[4]", "\"f\"", "0", "4", "[\"abc\"]") "]")),
         {"item 'k'", "'chunks[0].sums[0]'"}},
        {"sums long",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[4]", "\"f\"", "0", "4", "[\"0123456789abcdef0\"]") "]")),
         {"item 'k'", "'chunks[0].sums[0]'"}},
        {"absurd length",
         DOC(TENSOR("\"k\"", "\"u8\"", "[\"1152921504606846976\"]",
                    "[" CHUNK("[0]", "[\"1152921504606846976\"]", "\"f\"", "0", "\"1152921504606846976\"",
                              "[" SUM "]") "]")),
         {"'k'", "expected 72057594037927936"}},
        {"chunk outside shape",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[2]", "[4]", "\"f\"", "0", "4", "[" SUM "]") "]")),
         {"tensor 'k'", "offsets [2] sizes [4]", "outside the shape [4]"}},
        {"overlap",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]",
                    "[" CHUNK("[0]", "[3]", "\"f\"", "0", "3",
                              "[" SUM "]") "," CHUNK("[2]", "[2]", "\"f\"", "3", "2", "[" SUM "]") "]")),
         {"tensor 'k'", "offsets [0] sizes [3] overlaps chunk at offsets [2] sizes [2]"}},
        {"gap",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" CHUNK("[0]", "[3]", "\"f\"", "0", "3", "[" SUM "]") "]")),
         {"tensor 'k'", "chunks cover 3 of 4 elements"}},
        {"scalar twice",
         DOC(TENSOR("\"k\"", "\"u8\"", "[]",
                    "[" CHUNK("[]", "[]", "\"f\"", "0", "1", "[" SUM "]") "," CHUNK("[]", "[]", "\"f\"", "1",
                                                                                    "1", "[" SUM "]") "]")),
         {"tensor 'k'", "offsets [] sizes [] overlaps"}},
        {"duplicate key",
         DOC(TENSOR("\"k\"", "\"u8\"", "[4]", "[" OK_CHUNK "]") "," TENSOR("\"k\"", "\"u8\"", "[4]",
                                                                           "[" OK_CHUNK "]")),
         {"key 'k'", "more than one item"}},
        {"bytes two chunks",
         DOC("{\"key\":\"b\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"f\",\"offset\":0,\"length\":0,"
             "\"sums\":[]},{\"path\":\"f\",\"offset\":0,\"length\":0,\"sums\":[]}]}"),
         {"bytes item 'b'", "2 chunks"}},
        {"bytes no chunk",
         DOC("{\"key\":\"b\",\"type\":\"bytes\",\"chunks\":[]}"),
         {"bytes item 'b'", "0 chunks"}},
        {"bytes bad path",
         DOC("{\"key\":\"b\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"..\",\"offset\":0,\"length\":0,"
             "\"sums\":[]}]}"),
         {"bytes item 'b'", "'..'"}},
};

Test(metadata, malformed_documents_are_refused_with_precise_messages)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const bad_case *c = &bad_cases[i];
		dcp_metadata *md = (dcp_metadata *)0x1;
		dcp_msg msg = {{0}};
		int rc = dcp_metadata_decode(c->json, strlen(c->json), &md, &msg);
		cr_expect_eq(rc, DCP_EMETADATA, "[%s] rc %d: %s", c->name, rc, msg.text);
		cr_expect_null(md, "[%s] *out is NULL on failure", c->name);
		for (int k = 0; k < 3 && c->want[k] != NULL; k++)
			cr_expect(strstr(msg.text, c->want[k]) != NULL, "[%s] message lacks \"%s\": %s",
			          c->name, c->want[k], msg.text);
	}
}

Test(metadata, key_too_long_is_refused)
{
	char key[1100];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	size_t cap = 4096;
	char *json = malloc(cap);
	snprintf(json, cap,
	         DOC("{\"key\":\"%s\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"f\",\"offset\":0,\"length\":"
	             "0,"
	             "\"sums\":[]}]}"),
	         key);
	dcp_metadata *md = NULL;
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_decode(json, strlen(json), &md, &msg), DCP_EMETADATA);
	cr_expect(strstr(msg.text, "too long") != NULL, "%s", msg.text);
	/* 1024 bytes is fine */
	key[1024] = '\0';
	snprintf(json, cap,
	         DOC("{\"key\":\"%s\",\"type\":\"bytes\",\"chunks\":[{\"path\":\"f\",\"offset\":0,\"length\":"
	             "0,"
	             "\"sums\":[]}]}"),
	         key);
	cr_expect_eq(dcp_metadata_decode(json, strlen(json), &md, &msg), DCP_OK, "%s", msg.text);
	dcp_metadata_free(md);
	free(json);
}

/* Every prefix and many one-byte corruptions of a valid document: decode
 * must fail cleanly or succeed, never crash or leak (run under ASan). */
Test(metadata, truncated_and_corrupted_documents_never_crash, .timeout = 120)
{
	dcp_metadata *md = mt_sample_md();
	size_t len;
	char *json = mt_encode_ok(md, &len);
	char *buf = malloc(len + 1);

	for (size_t cut = 0; cut + 1 < len; cut++) {
		dcp_metadata *out = NULL;
		dcp_msg msg = {{0}};
		memcpy(buf, json, cut);
		int rc = dcp_metadata_decode(buf, cut, &out, &msg);
		cr_expect_eq(rc, DCP_EMETADATA, "prefix of %zu bytes: rc %d", cut, rc);
		cr_expect_null(out);
		cr_expect_neq(msg.text[0], '\0', "prefix of %zu bytes: no message", cut);
	}
	static const char repl[] = "\"{}[],:0-9e.\\ x\x01\x80";
	uint64_t seed = 12345;
	for (size_t pos = 0; pos < len; pos++) {
		for (size_t r = 0; r < 3; r++) {
			dcp_metadata *out = NULL;
			dcp_msg msg = {{0}};
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			memcpy(buf, json, len);
			buf[pos] = repl[(seed >> 33) % (sizeof(repl) - 1)];
			int rc = dcp_metadata_decode(buf, len, &out, &msg);
			if (rc == DCP_OK) {
				cr_expect_not_null(out);
				cr_expect_eq(dcp_metadata_validate(out, &msg), DCP_OK, "%s", msg.text);
				dcp_metadata_free(out);
			} else {
				cr_expect(rc == DCP_EMETADATA || rc == DCP_EVERSION, "pos %zu: rc %d", pos,
				          rc);
				cr_expect_null(out);
			}
		}
	}
	free(buf);
	free(json);
	dcp_metadata_free(md);
}

Test(metadata, deeply_nested_document_is_refused)
{
	size_t depth = 5000;
	char *json = malloc(2 * depth + 1);
	for (size_t i = 0; i < depth; i++) {
		json[i] = '[';
		json[2 * depth - 1 - i] = ']';
	}
	json[2 * depth] = '\0';
	dcp_metadata *md = NULL;
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_decode(json, 2 * depth, &md, &msg), DCP_EMETADATA);
	free(json);
}

/* Found by fuzzing: a reader must not accept what no writer can write back. */
Test(metadata, storage_meta_deeper_than_a_writer_allows_is_refused)
{
	const char *head =
	        "{\"format\":{\"major\":1,\"minor\":0},\"checksum\":{\"algo\":\"xxh3-64\",\"block\":8},"
	        "\"items\":[],\"storage_meta\":";
	size_t depth = 300, hl = strlen(head);
	char *json = malloc(hl + 2 * depth + 2);
	cr_assert_not_null(json);
	memcpy(json, head, hl);
	for (size_t i = 0; i < depth; i++) {
		json[hl + i] = '[';
		json[hl + 2 * depth - 1 - i] = ']';
	}
	json[hl + 2 * depth] = '}';
	json[hl + 2 * depth + 1] = '\0';
	dcp_metadata *md = NULL;
	dcp_msg msg = {{0}};
	cr_expect_eq(dcp_metadata_decode(json, strlen(json), &md, &msg), DCP_EMETADATA, "%s", msg.text);
	cr_expect_null(md);
	free(json);
}

/* Found by fuzzing: 1e400 does not fit a double and used to come back as the
 * text "null"; it is now no storage_meta at all, and round-trips as such. */
Test(metadata, storage_meta_number_out_of_range_round_trips)
{
	const char *json =
	        "{\"format\":{\"major\":1,\"minor\":0},\"checksum\":{\"algo\":\"xxh3-64\",\"block\":8},"
	        "\"items\":[],\"storage_meta\":1e400}";
	dcp_metadata *md = NULL, *again = NULL;
	dcp_msg msg = {{0}};
	char *text = NULL;
	size_t len = 0;
	cr_assert_eq(dcp_metadata_decode(json, strlen(json), &md, &msg), DCP_OK, "%s", msg.text);
	cr_expect_null(md->storage_meta);
	cr_assert_eq(dcp_metadata_encode(md, &text, &len, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(dcp_metadata_decode(text, len, &again, &msg), DCP_OK, "%s", msg.text);
	cr_expect_null(again->storage_meta);
	free(text);
	dcp_metadata_free(md);
	dcp_metadata_free(again);
}
