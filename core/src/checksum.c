/*
 * Checksums of stored bytes: XXH3-64 with seed 0, over the whole buffer or
 * over fixed-size blocks (see dcp/sys/metadata.h). Pure functions; any thread.
 */
#include <xxhash.h>

#include "dcp/sys/metadata.h"

uint64_t dcp_checksum(const void *data, uint64_t len)
{
	static const char empty[1] = {0};

	/* XXH3 never reads a 0-byte input, but give it a valid pointer anyway
	 * (data may be NULL when len is 0). */
	if (len == 0)
		return (uint64_t)XXH3_64bits(empty, 0);
	return (uint64_t)XXH3_64bits(data, (size_t)len);
}

void dcp_checksum_blocks(const void *data, uint64_t len, uint64_t block, uint64_t *sums)
{
	const unsigned char *p = data;
	uint64_t off, n, i = 0;

	if (block == 0 || sums == NULL)
		return;
	for (off = 0; off < len; off += n) {
		n = len - off < block ? len - off : block;
		sums[i++] = dcp_checksum(p + off, n);
	}
}
