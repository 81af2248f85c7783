#include "protocol.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void dcp_fail(dcp_local_failure *f, int code, const char *stage, const char *fmt, ...)
{
	if (f->code != DCP_OK)
		return;
	f->code = code;
	f->stage = stage;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg.text, sizeof(f->msg.text), fmt, ap);
	va_end(ap);
}

void dcp_fail_msg(dcp_local_failure *f, int code, const char *stage, const dcp_msg *msg)
{
	if (f->code != DCP_OK)
		return;
	/* Statuses are DCP_OK or negative; a positive one (an errno, say) from a
	 * plugin or planner is a failure too, and must not reach the caller as
	 * a positive "status". */
	f->code = code >= DCP_OK ? DCP_EPLUGIN : code;
	f->stage = stage;
	if (msg != NULL && msg->text[0] != '\0')
		f->msg = *msg;
	else
		snprintf(f->msg.text, sizeof(f->msg.text), "%s failed (%s) without a message", stage,
		         dcp_strerror(f->code));
}

void dcp_make_save_id(char *buf, size_t len)
{
	unsigned char r[16];
	ssize_t got = getrandom(r, sizeof(r), GRND_NONBLOCK);
	if (got != (ssize_t)sizeof(r)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t a = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		uint64_t b = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)buf;
		for (int i = 0; i < 8; i++) {
			r[i] = (unsigned char)(a >> (8 * i));
			r[8 + i] = (unsigned char)(b >> (8 * i));
		}
	}
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (size_t i = 0; i < sizeof(r) && n + 2 < len; i++) {
		buf[n++] = hex[r[i] >> 4];
		buf[n++] = hex[r[i] & 15];
	}
	buf[n] = '\0';
}

dcp_comm *dcp_comm_or_single(dcp_comm *comm, dcp_comm **owned)
{
	*owned = NULL;
	if (comm != NULL)
		return comm;
	*owned = dcp_comm_single_new();
	return *owned;
}
