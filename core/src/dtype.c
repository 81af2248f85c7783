/*
 * Element types: sizes and the short names used in metadata and messages.
 */
#include <string.h>

#include "dcp/dcp.h"

size_t dcp_dtype_size(dcp_dtype dtype)
{
	switch (dtype) {
	case DCP_F64:
	case DCP_I64:
		return 8;
	case DCP_F32:
	case DCP_I32:
		return 4;
	case DCP_F16:
	case DCP_BF16:
	case DCP_I16:
		return 2;
	case DCP_I8:
	case DCP_U8:
	case DCP_BOOL:
		return 1;
	default:
		return 0;
	}
}

const char *dcp_dtype_name(dcp_dtype dtype)
{
	switch (dtype) {
	case DCP_F64:
		return "f64";
	case DCP_F32:
		return "f32";
	case DCP_F16:
		return "f16";
	case DCP_BF16:
		return "bf16";
	case DCP_I64:
		return "i64";
	case DCP_I32:
		return "i32";
	case DCP_I16:
		return "i16";
	case DCP_I8:
		return "i8";
	case DCP_U8:
		return "u8";
	case DCP_BOOL:
		return "bool";
	default:
		return "unknown";
	}
}

int dcp_dtype_from_name(const char *name, dcp_dtype *out)
{
	int i;

	if (name == NULL || out == NULL)
		return DCP_EINVAL;
	for (i = 0; i < DCP_DTYPE_COUNT_; i++) {
		if (strcmp(name, dcp_dtype_name((dcp_dtype)i)) == 0) {
			*out = (dcp_dtype)i;
			return DCP_OK;
		}
	}
	return DCP_EINVAL;
}
