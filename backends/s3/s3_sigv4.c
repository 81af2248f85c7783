/*
 * AWS Signature Version 4 for S3 requests, and the digests of request bodies
 * (Content-MD5, the SHA-256 payload hash), over libcrypto.
 *
 * libdcp signs its requests itself instead of asking libcurl to: libcurl's
 * signer (CURLOPT_AWS_SIGV4) up to 8.2 lists in SignedHeaders a header that
 * the caller removed ("Expect:"), which every server that checks signatures
 * refuses. Here the headers that are signed are exactly the ones the request
 * carries, because s3_request.c sends the list built from the same array.
 *
 * Threads: every function is reentrant; nothing here keeps state.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_internal.h"

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int s3_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -1;
	to_hex(md, 32, out);
	return 0;
}

static int hmac(const void *key, size_t klen, const char *data, size_t dlen, unsigned char out[32])
{
	unsigned int n = 0;

	return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data, dlen, out, &n) != NULL &&
	                       n == 32
	               ? 0
	               : -1;
}

/* Appends the n bytes of s to the growing string *buf (len, cap); -1 if
 * out of memory (then *buf is freed and NULLed). */
static int put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*buf == NULL && *cap != 0)
		return -1;
	if (*len + n + 1 > *cap) {
		size_t want = *cap ? *cap : 512;
		char *nb;
		while (want < *len + n + 1)
			want *= 2;
		nb = realloc(*buf, want);
		if (nb == NULL) {
			free(*buf);
			*buf = NULL;
			*cap = 1; /* marks the failure for the calls that follow */
			return -1;
		}
		*buf = nb;
		*cap = want;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

static int puts_(char **buf, size_t *len, size_t *cap, const char *s)
{
	return put(buf, len, cap, s, strlen(s));
}

/* Header values as SigV4 wants them: no leading or trailing blanks, inner
 * runs of blanks as one space. */
static int put_trimmed(char **buf, size_t *len, size_t *cap, const char *v)
{
	const char *end;
	int space = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (; v < end; v++) {
		if (*v == ' ' || *v == '\t') {
			space = 1;
			continue;
		}
		if (space && put(buf, len, cap, " ", 1) != 0)
			return -1;
		space = 0;
		if (put(buf, len, cap, v, 1) != 0)
			return -1;
	}
	return 0;
}

static int header_cmp(const void *a, const void *b)
{
	const s3_header *x = *(const s3_header *const *)a, *y = *(const s3_header *const *)b;

	return strcmp(x->name, y->name);
}

int s3_sigv4_sign(const s3_sigv4_request *r, s3_sigv4_result *out)
{
	const s3_header *sorted[S3_MAX_SIGNED_HEADERS];
	char *creq = NULL, *authz = NULL;
	size_t clen = 0, ccap = 0, alen = 0, acap = 0, i;
	char date[9], creq_hash[65], sig_hex[65], *k;
	unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
	int bad = 0, rc = -1;

	memset(out, 0, sizeof(*out));
	if (r->nheaders > S3_MAX_SIGNED_HEADERS || strlen(r->amz_date) != 16)
		return -1;
	memcpy(date, r->amz_date, 8);
	date[8] = '\0';
	for (i = 0; i < r->nheaders; i++)
		sorted[i] = &r->headers[i];
	qsort(sorted, r->nheaders, sizeof(sorted[0]), header_cmp);

	/* The canonical request. */
	bad |= puts_(&creq, &clen, &ccap, r->method);
	bad |= puts_(&creq, &clen, &ccap, "\n");
	bad |= put(&creq, &clen, &ccap, r->canonical_uri, r->canonical_uri_len);
	bad |= puts_(&creq, &clen, &ccap, "\n");
	bad |= puts_(&creq, &clen, &ccap, r->canonical_query != NULL ? r->canonical_query : "");
	bad |= puts_(&creq, &clen, &ccap, "\n");
	for (i = 0; i < r->nheaders; i++) {
		bad |= puts_(&creq, &clen, &ccap, sorted[i]->name);
		bad |= puts_(&creq, &clen, &ccap, ":");
		bad |= put_trimmed(&creq, &clen, &ccap, sorted[i]->value);
		bad |= puts_(&creq, &clen, &ccap, "\n");
	}
	bad |= puts_(&creq, &clen, &ccap, "\n");
	for (i = 0; i < r->nheaders; i++) {
		if (i > 0)
			bad |= puts_(&creq, &clen, &ccap, ";");
		bad |= puts_(&creq, &clen, &ccap, sorted[i]->name);
		if (i > 0)
			bad |= puts_(&authz, &alen, &acap, ";");
		bad |= puts_(&authz, &alen, &acap, sorted[i]->name);
	}
	bad |= puts_(&creq, &clen, &ccap, "\n");
	bad |= puts_(&creq, &clen, &ccap, r->payload_hash);
	if (bad || s3_sha256_hex(creq, clen, creq_hash) != 0)
		goto out;

	/* The string to sign, and the signing key of the day. */
	if (snprintf(out->string_to_sign, sizeof(out->string_to_sign),
	             "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", r->amz_date, date, r->region,
	             r->service, creq_hash) >= (int)sizeof(out->string_to_sign))
		goto out;
	k = dcp_asprintf("AWS4%s", r->secret);
	if (k == NULL)
		goto out;
	bad = hmac(k, strlen(k), date, 8, k1) != 0 || hmac(k1, 32, r->region, strlen(r->region), k2) != 0 ||
	      hmac(k2, 32, r->service, strlen(r->service), k3) != 0 ||
	      hmac(k3, 32, "aws4_request", 12, k4) != 0 ||
	      hmac(k4, 32, out->string_to_sign, strlen(out->string_to_sign), sig) != 0;
	explicit_bzero(k, strlen(k));
	free(k);
	explicit_bzero(k1, sizeof(k1));
	explicit_bzero(k2, sizeof(k2));
	explicit_bzero(k3, sizeof(k3));
	explicit_bzero(k4, sizeof(k4));
	if (bad)
		goto out;
	to_hex(sig, 32, sig_hex);
	out->authorization =
	        dcp_asprintf("Authorization: AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
	                     "SignedHeaders=%s, Signature=%s",
	                     r->access_key_id, date, r->region, r->service, authz, sig_hex);
	if (out->authorization != NULL) {
		out->canonical_request = creq;
		creq = NULL;
		rc = 0;
	}
out:
	free(creq);
	free(authz);
	return rc;
}

void s3_sigv4_result_free(s3_sigv4_result *r)
{
	free(r->authorization);
	free(r->canonical_request);
	r->authorization = r->canonical_request = NULL;
}

int s3_body_md5(const s3_req *q, unsigned char out[16])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok;

	if (c == NULL)
		return -1;
	ok = EVP_DigestInit_ex(c, EVP_md5(), NULL) == 1;
	if (q->segs == NULL) {
		ok = ok && (q->body_len == 0 || EVP_DigestUpdate(c, q->body, (size_t)q->body_len) == 1);
	} else {
		uint64_t skip = q->segs_off, left = q->body_len;
		size_t i;
		for (i = 0; ok && i < q->nsegs && left > 0; i++) {
			uint64_t len = q->segs[i].len, take;
			if (skip >= len) {
				skip -= len;
				continue;
			}
			take = len - skip < left ? len - skip : left;
			ok = EVP_DigestUpdate(c, (const char *)q->segs[i].data + skip, (size_t)take) == 1;
			left -= take;
			skip = 0;
		}
		ok = ok && left == 0;
	}
	ok = ok && EVP_DigestFinal_ex(c, out, &n) == 1 && n == 16;
	EVP_MD_CTX_free(c);
	return ok ? 0 : -1;
}

int s3_md5_of_md5s(const unsigned char (*parts)[16], size_t n, unsigned char out[16])
{
	unsigned int len = 0;

	return EVP_Digest(parts, n * 16, out, &len, EVP_md5(), NULL) == 1 && len == 16 ? 0 : -1;
}

void s3_base64(const unsigned char *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

void s3_hex(const unsigned char *in, size_t n, char *out)
{
	to_hex(in, n, out);
}
