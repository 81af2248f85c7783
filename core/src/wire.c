#include "wire.h"

#include <stdlib.h>
#include <string.h>

static int wbuf_reserve(dcp_wbuf *w, size_t n)
{
	if (w->failed)
		return -1;
	if (n > SIZE_MAX - w->len) {
		w->failed = 1;
		return -1;
	}
	if (w->len + n <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 256;
	while (cap < w->len + n) {
		if (cap > SIZE_MAX / 2) {
			cap = w->len + n;
			break;
		}
		cap *= 2;
	}
	unsigned char *p = realloc(w->data, cap);
	if (p == NULL) {
		w->failed = 1;
		return -1;
	}
	w->data = p;
	w->cap = cap;
	return 0;
}

void dcp_wbuf_bytes(dcp_wbuf *w, const void *p, size_t n)
{
	if (n == 0 || wbuf_reserve(w, n) != 0)
		return;
	memcpy(w->data + w->len, p, n);
	w->len += n;
}

void dcp_wbuf_u32(dcp_wbuf *w, uint32_t v)
{
	unsigned char b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	dcp_wbuf_bytes(w, b, sizeof(b));
}

void dcp_wbuf_u64(dcp_wbuf *w, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	dcp_wbuf_bytes(w, b, sizeof(b));
}

void dcp_wbuf_i32(dcp_wbuf *w, int32_t v)
{
	dcp_wbuf_u32(w, (uint32_t)v);
}

void dcp_wbuf_str(dcp_wbuf *w, const char *s)
{
	if (s == NULL) {
		dcp_wbuf_u32(w, UINT32_MAX);
		return;
	}
	size_t n = strlen(s);
	if (n >= UINT32_MAX) {
		w->failed = 1;
		return;
	}
	dcp_wbuf_u32(w, (uint32_t)n);
	dcp_wbuf_bytes(w, s, n);
}

void dcp_wbuf_free(dcp_wbuf *w)
{
	free(w->data);
	memset(w, 0, sizeof(*w));
}

void dcp_rbuf_init(dcp_rbuf *r, const void *data, size_t len)
{
	r->data = data;
	r->len = data ? len : 0;
	r->pos = 0;
	r->failed = 0;
}

size_t dcp_rbuf_left(const dcp_rbuf *r)
{
	return r->len - r->pos;
}

const void *dcp_rbuf_bytes(dcp_rbuf *r, size_t n)
{
	if (r->failed || n > r->len - r->pos) {
		r->failed = 1;
		return NULL;
	}
	const void *p = r->data + r->pos;
	r->pos += n;
	return p;
}

uint32_t dcp_rbuf_u32(dcp_rbuf *r)
{
	const unsigned char *b = dcp_rbuf_bytes(r, 4);
	uint32_t v = 0;
	if (b == NULL)
		return 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

uint64_t dcp_rbuf_u64(dcp_rbuf *r)
{
	const unsigned char *b = dcp_rbuf_bytes(r, 8);
	uint64_t v = 0;
	if (b == NULL)
		return 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

int32_t dcp_rbuf_i32(dcp_rbuf *r)
{
	return (int32_t)dcp_rbuf_u32(r);
}

char *dcp_rbuf_str(dcp_rbuf *r)
{
	uint32_t n = dcp_rbuf_u32(r);
	if (r->failed || n == UINT32_MAX)
		return NULL;
	const char *p = dcp_rbuf_bytes(r, n);
	if (p == NULL)
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (s == NULL) {
		r->failed = 1;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}
