/*
 * A small bounds-checked binary codec for messages between ranks (plans,
 * outcomes, write results). Messages travel between ranks of one job running
 * the same libdcp, so the format is private and may change between versions.
 * Integers are little-endian fixed width; strings are a u32 length (0xffffffff
 * for NULL) and bytes without NUL.
 */
#ifndef DCP_WIRE_H
#define DCP_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* A growable output buffer. After any failed allocation, `failed` is set and
 * later writes do nothing; the owner checks it once at the end. */
typedef struct dcp_wbuf {
	unsigned char *data; /* malloc'd; the owner frees it (or takes it) */
	size_t len;
	size_t cap;
	int failed;
} dcp_wbuf;

void dcp_wbuf_u32(dcp_wbuf *w, uint32_t v);
void dcp_wbuf_u64(dcp_wbuf *w, uint64_t v);
void dcp_wbuf_i32(dcp_wbuf *w, int32_t v);
void dcp_wbuf_str(dcp_wbuf *w, const char *s);
void dcp_wbuf_bytes(dcp_wbuf *w, const void *p, size_t n);
void dcp_wbuf_free(dcp_wbuf *w);

/* A reader over borrowed bytes. Reading past the end sets `failed` and
 * returns zeros / NULL; the owner checks `failed` once at the end. */
typedef struct dcp_rbuf {
	const unsigned char *data;
	size_t len;
	size_t pos;
	int failed;
} dcp_rbuf;

void dcp_rbuf_init(dcp_rbuf *r, const void *data, size_t len);
uint32_t dcp_rbuf_u32(dcp_rbuf *r);
uint64_t dcp_rbuf_u64(dcp_rbuf *r);
int32_t dcp_rbuf_i32(dcp_rbuf *r);
/* malloc'd copy, NULL for a NULL string or on failure (then `failed` is set
 * unless the string was NULL). nomem is set separately when malloc failed. */
char *dcp_rbuf_str(dcp_rbuf *r);
/* Borrowed pointer to n bytes inside the buffer, or NULL (failed). */
const void *dcp_rbuf_bytes(dcp_rbuf *r, size_t n);
/* Bytes left unread. */
size_t dcp_rbuf_left(const dcp_rbuf *r);

#endif /* DCP_WIRE_H */
