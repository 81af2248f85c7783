/*
 * Element types: sizes and the short names used in metadata and messages.
 */
#include <string.h>

#include "dcp/dcp.h"

static const struct {
	const char *name;
	size_t size;
} dtype_table[DCP_DTYPE_COUNT_] = {
	[DCP_F64] = {"f64", 8}, [DCP_F32] = {"f32", 4}, [DCP_F16] = {"f16", 2}, [DCP_BF16] = {"bf16", 2},
	[DCP_I64] = {"i64", 8}, [DCP_I32] = {"i32", 4}, [DCP_I16] = {"i16", 2}, [DCP_I8] = {"i8", 1},
	[DCP_U8] = {"u8", 1},   [DCP_BOOL] = {"bool", 1},
};

static int dtype_known(dcp_dtype dtype)
{
	/* Compared as an int: the enum's underlying type may be unsigned. */
	return (int)dtype >= 0 && (int)dtype < DCP_DTYPE_COUNT_;
}

size_t dcp_dtype_size(dcp_dtype dtype)
{
	return dtype_known(dtype) ? dtype_table[dtype].size : 0;
}

const char *dcp_dtype_name(dcp_dtype dtype)
{
	return dtype_known(dtype) ? dtype_table[dtype].name : "unknown";
}

int dcp_dtype_from_name(const char *name, dcp_dtype *out)
{
	int i;

	if (name == NULL || out == NULL)
		return DCP_EINVAL;
	for (i = 0; i < DCP_DTYPE_COUNT_; i++) {
		if (strcmp(name, dtype_table[i].name) == 0) {
			*out = (dcp_dtype)i;
			return DCP_OK;
		}
	}
	return DCP_EINVAL;
}
