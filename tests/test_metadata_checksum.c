/*
 * The checkpoint metadata model (dcp/sys/metadata.h): checksums (XXH3-64,
 * per block).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/sys/metadata.h"

/* ------------------------------------------------------------------------ */
/* Checksums                                                                */
/* ------------------------------------------------------------------------ */

Test(metadata, checksum_blocks_match_checksums_of_pieces)
{
	const uint64_t block = 64;
	unsigned char data[64 * 5 + 7];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 131 + 7);
	static const uint64_t lens[] = {0, 1, 63, 64, 65, 128, 64 * 5 + 7};
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		uint64_t len = lens[k], n = (len + block - 1) / block;
		uint64_t sums[8];
		for (size_t i = 0; i < 8; i++)
			sums[i] = 0xdeadbeef;
		dcp_checksum_blocks(data, len, block, sums);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t piece = len - i * block < block ? len - i * block : block;
			cr_expect_eq(sums[i], dcp_checksum(data + i * block, piece), "len %llu block %llu",
			             (unsigned long long)len, (unsigned long long)i);
		}
		cr_expect_eq(sums[n], 0xdeadbeef, "len %llu: nothing written past block %llu",
		             (unsigned long long)len, (unsigned long long)n);
	}
	/* one whole block equals the whole-buffer checksum */
	uint64_t one;
	dcp_checksum_blocks(data, 50, 1u << 20, &one);
	cr_expect_eq(one, dcp_checksum(data, 50));
	/* a change in block 2 changes only sums[2] */
	uint64_t a[6], b[6];
	dcp_checksum_blocks(data, sizeof(data), block, a);
	data[2 * 64 + 10] ^= 0x40;
	dcp_checksum_blocks(data, sizeof(data), block, b);
	for (int i = 0; i < 6; i++)
		cr_expect_eq(a[i] != b[i], i == 2, "block %d", i);
}

Test(metadata, checksum_is_xxh3_64_seed_0)
{
	/* Known answers of XXH3-64 with seed 0 (xxHash's own test vectors). */
	cr_expect_eq(dcp_checksum(NULL, 0), UINT64_C(0x2D06800538D394C2));
	cr_expect_eq(dcp_checksum("", 0), UINT64_C(0x2D06800538D394C2));
	cr_expect_neq(dcp_checksum("a", 1), dcp_checksum("b", 1));
	cr_expect_eq(dcp_checksum("abc", 3), dcp_checksum("abcd", 3));
}
