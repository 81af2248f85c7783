/*
 * S3's XML answers, parsed with libxml2 (no network access, no entity
 * expansion, errors not printed). Elements are matched by local name, so the
 * S3 namespace may or may not be declared.
 */
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3_internal.h"

#define XML_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS)

static xmlDocPtr parse(const char *body, size_t len)
{
	/* Blanks before the document: a 200 answer kept alive while S3 (or
	 * MinIO) works; libxml2 refuses an XML declaration after them. */
	while (body != NULL && len > 0 && (*body == ' ' || *body == '\t' || *body == '\r' || *body == '\n')) {
		body++;
		len--;
	}
	if (body == NULL || len == 0 || len > INT32_MAX)
		return NULL;
	return xmlReadMemory(body, (int)len, "s3.xml", NULL, XML_OPTIONS);
}

static int named(const xmlNode *n, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *parent, const char *name)
{
	const xmlNode *c;

	for (c = parent != NULL ? parent->children : NULL; c != NULL; c = c->next)
		if (named(c, name))
			return c;
	return NULL;
}

/* The text of element n into buf ("" if none). */
static void text_into(const xmlNode *n, char *buf, size_t len)
{
	xmlChar *t;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (n == NULL)
		return;
	t = xmlNodeGetContent(n);
	if (t != NULL) {
		snprintf(buf, len, "%s", (const char *)t);
		xmlFree(t);
	}
}

static char *text_dup(const xmlNode *n)
{
	xmlChar *t;
	char *r;

	if (n == NULL)
		return NULL;
	t = xmlNodeGetContent(n);
	if (t == NULL)
		return NULL;
	r = dcp_strdup((const char *)t);
	xmlFree(t);
	return r;
}

int s3_xml_error(const char *body, size_t len, char *code, size_t codelen, char *message, size_t msglen)
{
	xmlDocPtr doc;
	const xmlNode *root;
	int found = 0;

	if (codelen > 0)
		code[0] = '\0';
	if (msglen > 0)
		message[0] = '\0';
	doc = parse(body, len);
	if (doc == NULL)
		return 0;
	root = xmlDocGetRootElement(doc);
	if (named(root, "Error")) {
		found = 1;
		text_into(child(root, "Code"), code, codelen);
		text_into(child(root, "Message"), message, msglen);
	}
	xmlFreeDoc(doc);
	return found;
}

int s3_xml_text(const char *body, size_t len, const char *root_name, const char *name, char *out,
                size_t outlen)
{
	xmlDocPtr doc;
	const xmlNode *root, *c;
	int found = 0;

	if (outlen > 0)
		out[0] = '\0';
	doc = parse(body, len);
	if (doc == NULL)
		return 0;
	root = xmlDocGetRootElement(doc);
	if (named(root, root_name) && (c = child(root, name)) != NULL) {
		found = 1;
		text_into(c, out, outlen);
	}
	xmlFreeDoc(doc);
	return found;
}

int s3_xml_upload_id(const char *body, size_t len, char **upload_id)
{
	xmlDocPtr doc = parse(body, len);
	const xmlNode *root;
	int rc = DCP_EIO;

	*upload_id = NULL;
	if (doc == NULL)
		return DCP_EIO;
	root = xmlDocGetRootElement(doc);
	if (named(root, "InitiateMultipartUploadResult")) {
		const xmlNode *id = child(root, "UploadId");
		if (id != NULL) {
			*upload_id = text_dup(id);
			rc = *upload_id != NULL ? (**upload_id != '\0' ? DCP_OK : DCP_EIO) : DCP_ENOMEM;
			if (rc == DCP_EIO) {
				free(*upload_id);
				*upload_id = NULL;
			}
		}
	}
	xmlFreeDoc(doc);
	return rc;
}

int64_t s3_xml_time(const char *t)
{
	struct tm tm;
	int y, mo, d, h, mi, sec;

	if (t == NULL || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6 || mo < 1 ||
	    mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (int64_t)timegm(&tm);
}

int s3_xml_list(const char *body, size_t len,
                int (*fn)(const char *key, uint64_t size, int64_t mtime, void *arg), void *arg,
                int *truncated, char **next_token)
{
	xmlDocPtr doc = parse(body, len);
	const xmlNode *root, *c;
	char tmp[32];
	int rc = DCP_OK;

	*truncated = 0;
	*next_token = NULL;
	if (doc == NULL)
		return DCP_EIO;
	root = xmlDocGetRootElement(doc);
	if (!named(root, "ListBucketResult")) {
		xmlFreeDoc(doc);
		return DCP_EIO;
	}
	for (c = root->children; c != NULL && rc == DCP_OK; c = c->next) {
		if (named(c, "Contents")) {
			char *key = text_dup(child(c, "Key"));
			uint64_t size;
			if (key == NULL) {
				rc = DCP_EIO;
				break;
			}
			text_into(child(c, "Size"), tmp, sizeof(tmp));
			size = strtoull(tmp, NULL, 10);
			text_into(child(c, "LastModified"), tmp, sizeof(tmp));
			rc = fn(key, size, s3_xml_time(tmp), arg);
			free(key);
		} else if (named(c, "IsTruncated")) {
			text_into(c, tmp, sizeof(tmp));
			*truncated = strcmp(tmp, "true") == 0;
		} else if (named(c, "NextContinuationToken")) {
			free(*next_token);
			*next_token = text_dup(c);
			if (*next_token == NULL)
				rc = DCP_ENOMEM;
		}
	}
	xmlFreeDoc(doc);
	if (rc != DCP_OK) {
		free(*next_token);
		*next_token = NULL;
	}
	return rc;
}

int s3_append(char **dst, size_t *len, const char *s)
{
	size_t n = strlen(s);
	char *p = realloc(*dst, *len + n + 1);

	if (p == NULL) {
		free(*dst);
		*dst = NULL;
		return -1;
	}
	memcpy(p + *len, s, n + 1);
	*dst = p;
	*len += n;
	return 0;
}

int s3_xml_append_escaped(char **dst, size_t *len, const char *s)
{
	char one[2] = {0, 0};

	for (; *s != '\0'; s++) {
		const char *piece;
		switch (*s) {
		case '&':
			piece = "&amp;";
			break;
		case '<':
			piece = "&lt;";
			break;
		case '>':
			piece = "&gt;";
			break;
		case '"':
			piece = "&quot;";
			break;
		default:
			one[0] = *s;
			piece = one;
		}
		if (s3_append(dst, len, piece) != 0)
			return -1;
	}
	return 0;
}

int s3_xml_uploads(const char *body, size_t len,
                   int (*fn)(const char *key, const char *upload_id, int64_t initiated, void *arg), void *arg,
                   int *truncated, char **next_key, char **next_upload)
{
	xmlDocPtr doc = parse(body, len);
	const xmlNode *root, *c;
	char tmp[40];
	int rc = DCP_OK;

	*truncated = 0;
	*next_key = *next_upload = NULL;
	if (doc == NULL)
		return DCP_EIO;
	root = xmlDocGetRootElement(doc);
	if (!named(root, "ListMultipartUploadsResult")) {
		xmlFreeDoc(doc);
		return DCP_EIO;
	}
	for (c = root->children; c != NULL && rc == DCP_OK; c = c->next) {
		if (named(c, "Upload")) {
			char *key = text_dup(child(c, "Key")), *id = text_dup(child(c, "UploadId"));
			if (key == NULL || id == NULL || key[0] == '\0' || id[0] == '\0')
				rc = key == NULL || id == NULL ? DCP_ENOMEM : DCP_EIO;
			if (rc == DCP_OK) {
				text_into(child(c, "Initiated"), tmp, sizeof(tmp));
				rc = fn(key, id, s3_xml_time(tmp), arg);
			}
			free(key);
			free(id);
		} else if (named(c, "IsTruncated")) {
			text_into(c, tmp, sizeof(tmp));
			*truncated = strcmp(tmp, "true") == 0;
		} else if (named(c, "NextKeyMarker") || named(c, "NextUploadIdMarker")) {
			char **slot = named(c, "NextKeyMarker") ? next_key : next_upload;
			free(*slot);
			*slot = text_dup(c);
			if (*slot == NULL)
				rc = DCP_ENOMEM;
		}
	}
	xmlFreeDoc(doc);
	if (rc != DCP_OK) {
		free(*next_key);
		free(*next_upload);
		*next_key = *next_upload = NULL;
	}
	return rc;
}
