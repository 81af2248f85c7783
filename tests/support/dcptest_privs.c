/*
 * Test support: making permission bits apply to a test run as root.
 *
 * Root ignores permission bits through three capabilities: CAP_DAC_OVERRIDE
 * (write and read anything), CAP_DAC_READ_SEARCH (read and search any
 * directory) and CAP_FOWNER (act as the owner of any file). With those three
 * dropped from its effective and permitted sets, a process running as uid 0
 * is held to the mode bits like any other owner: a directory of mode 0555
 * owned by root is not writable to it. That is what a CI container running
 * as root needs for the permission tests, with no user account to create and
 * no file of the build tree to hand to another uid. See dcptest.h.
 */
#include "dcptest.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void dt_drop_file_privileges(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	const int caps[] = {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER};

	if (geteuid() != 0)
		return; /* permission bits already apply */
	memset(data, 0, sizeof(data));
	cr_assert_eq(syscall(SYS_capget, &hdr, data), 0, "capget: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		unsigned idx = (unsigned)caps[i] / 32u;
		__u32 bit = (__u32)1u << ((unsigned)caps[i] % 32u);
		data[idx].effective &= ~bit;
		data[idx].permitted &= ~bit;
		data[idx].inheritable &= ~bit;
	}
	cr_assert_eq(syscall(SYS_capset, &hdr, data), 0,
	             "capset: dropping CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER failed: %s",
	             strerror(errno));
}
