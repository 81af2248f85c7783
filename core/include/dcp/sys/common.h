/*
 * Small types shared by every interface under dcp/sys/.
 */
#ifndef DCP_SYS_COMMON_H
#define DCP_SYS_COMMON_H

#include <stdarg.h>
#include <stdio.h>

#include "dcp/dcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A message buffer that a callee fills when it fails: what was wrong, with
 * which input, and what to do. The caller owns it; callees write it with
 * dcp_msgf (inline, so plugins need not link the core). Text is always
 * NUL-terminated; longer messages are truncated.
 */
#define DCP_MSG_MAX 1024
typedef struct dcp_msg {
	char text[DCP_MSG_MAX];
} dcp_msg;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline void
dcp_msgf(dcp_msg *msg, const char *fmt, ...)
{
	va_list ap;
	if (msg == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg->text, sizeof(msg->text), fmt, ap);
	va_end(ap);
}

#ifdef __cplusplus
}
#endif
#endif /* DCP_SYS_COMMON_H */
