/*
 * Bucket names, key prefixes, and the encoding of keys and query values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_internal.h"

#define PREFIX_MAX 900 /* leaves room for the layout's object names in S3's 1024-byte keys */

static int is_lower_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* "a.b.c.d" with four decimal numbers 0..255. */
static int looks_like_ipv4(const char *s)
{
	int parts = 0;

	for (;;) {
		int digits = 0, v = 0;
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (*s - '0');
			if (++digits > 3)
				return 0;
			s++;
		}
		if (digits == 0 || v > 255)
			return 0;
		parts++;
		if (*s == '\0')
			return parts == 4;
		if (*s != '.')
			return 0;
		s++;
	}
}

int dcp_s3_bucket_check(const char *bucket, const char *shown, dcp_msg *msg)
{
	size_t n, i;
	const char *id = shown != NULL ? shown : "";
	const char *sep = shown != NULL ? " in checkpoint id " : "";

	if (bucket == NULL || bucket[0] == '\0') {
		dcp_msgf(msg, "no bucket name%s'%s': write s3://BUCKET/PREFIX", sep, id);
		return DCP_EID;
	}
	n = strlen(bucket);
	if (n < 3 || n > 63) {
		dcp_msgf(msg,
		         "bucket name '%.80s'%s'%s' is %zu characters long: S3 bucket names have 3 to 63",
		         bucket, sep, id, n);
		return DCP_EID;
	}
	for (i = 0; i < n; i++) {
		char c = bucket[i];
		if (!is_lower_digit(c) && c != '.' && c != '-') {
			if (c >= 'A' && c <= 'Z')
				dcp_msgf(msg,
				         "bucket name '%s'%s'%s' has an uppercase letter '%c' at position "
				         "%zu: S3 bucket "
				         "names are lowercase",
				         bucket, sep, id, c, i);
			else
				dcp_msgf(msg,
				         "bucket name '%s'%s'%s' has a '%c' at position %zu: S3 bucket names "
				         "hold only "
				         "lowercase letters, digits, '.' and '-'",
				         bucket, sep, id, c >= 0x20 && c < 0x7f ? c : '?', i);
			return DCP_EID;
		}
	}
	if (!is_lower_digit(bucket[0]) || !is_lower_digit(bucket[n - 1])) {
		dcp_msgf(msg,
		         "bucket name '%s'%s'%s' %s with '%c': S3 bucket names start and end with a letter "
		         "or digit",
		         bucket, sep, id, is_lower_digit(bucket[0]) ? "ends" : "starts",
		         is_lower_digit(bucket[0]) ? bucket[n - 1] : bucket[0]);
		return DCP_EID;
	}
	if (strstr(bucket, "..") != NULL || strstr(bucket, ".-") != NULL || strstr(bucket, "-.") != NULL) {
		dcp_msgf(msg,
		         "bucket name '%s'%s'%s' has two adjacent periods or a period next to a hyphen, "
		         "which S3 does "
		         "not allow",
		         bucket, sep, id);
		return DCP_EID;
	}
	if (looks_like_ipv4(bucket)) {
		dcp_msgf(msg,
		         "bucket name '%s'%s'%s' is an IP address, which S3 does not allow as a bucket name",
		         bucket, sep, id);
		return DCP_EID;
	}
	return DCP_OK;
}

static int prefix_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!-_.*'()=~", c);
}

int dcp_s3_split_id(const char *rest, const char *shown, char **bucket, char **prefix, dcp_msg *msg)
{
	const char *slash;
	size_t blen, plen, i;
	const char *p;
	int rc;

	*bucket = NULL;
	*prefix = NULL;
	if (shown == NULL)
		shown = rest;
	slash = strchr(rest, '/');
	blen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	*bucket = malloc(blen + 1);
	if (*bucket == NULL) {
		dcp_msgf(msg, "out of memory parsing checkpoint id '%s'", shown);
		return DCP_ENOMEM;
	}
	memcpy(*bucket, rest, blen);
	(*bucket)[blen] = '\0';
	rc = dcp_s3_bucket_check(*bucket, shown, msg);
	if (rc != DCP_OK)
		goto fail;
	p = slash != NULL ? slash + 1 : "";
	plen = strlen(p);
	if (plen > 0 && p[plen - 1] == '/')
		plen--;
	if (plen > PREFIX_MAX) {
		dcp_msgf(msg,
		         "the key prefix in checkpoint id '%.100s...' is %zu bytes long: at most %d are "
		         "allowed",
		         shown, plen, PREFIX_MAX);
		rc = DCP_EID;
		goto fail;
	}
	for (i = 0; i < plen; i++) {
		if (p[i] != '/' && !prefix_char_ok(p[i])) {
			dcp_msgf(msg,
			         "the key prefix '%.*s' in checkpoint id '%s' has a '%c' at position %zu: "
			         "use letters, "
			         "digits, '/' and !-_.*'()=~",
			         (int)plen, p, shown, p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?', i);
			rc = DCP_EID;
			goto fail;
		}
	}
	/* Components: none empty, none "." or "..". */
	for (i = 0; i < plen;) {
		size_t j = i;
		while (j < plen && p[j] != '/')
			j++;
		if (j == i || (j - i == 1 && p[i] == '.') || (j - i == 2 && p[i] == '.' && p[i + 1] == '.')) {
			dcp_msgf(msg,
			         "the key prefix '%.*s' in checkpoint id '%s' has an empty, '.' or '..' "
			         "component "
			         "(e.g. '//' or a leading '/'): write s3://BUCKET/a/b",
			         (int)plen, p, shown);
			rc = DCP_EID;
			goto fail;
		}
		i = j + 1;
	}
	*prefix = malloc(plen + 1);
	if (*prefix == NULL) {
		dcp_msgf(msg, "out of memory parsing checkpoint id '%s'", shown);
		rc = DCP_ENOMEM;
		goto fail;
	}
	memcpy(*prefix, p, plen);
	(*prefix)[plen] = '\0';
	return DCP_OK;
fail:
	free(*bucket);
	*bucket = NULL;
	return rc;
}

char *s3_full_key(const s3_backend *b, const char *path)
{
	if (b->prefix[0] == '\0')
		return dcp_strdup(path);
	if (path[0] == '\0')
		return dcp_strdup(b->prefix);
	return dcp_asprintf("%s/%s", b->prefix, path);
}

int s3_append_encoded(char **dst, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t old = *dst != NULL ? strlen(*dst) : 0, n = strlen(s), k = old, i;
	char *out = realloc(*dst, old + 3 * n + 1);

	if (out == NULL) {
		free(*dst);
		*dst = NULL;
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		/* RFC 3986 unreserved characters stay, as Signature V4 wants. */
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
			out[k++] = (char)c;
		} else {
			out[k++] = '%';
			out[k++] = hex[c >> 4];
			out[k++] = hex[c & 15];
		}
	}
	out[k] = '\0';
	*dst = out;
	return 0;
}

const char *s3_describe_key(const s3_backend *b, const char *key, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	if (key == NULL || key[0] == '\0')
		snprintf(buf, len, "s3://%s", b->bucket);
	else
		snprintf(buf, len, "s3://%s/%s", b->bucket, key);
	return buf;
}
