/*
 * Child processes of the crash trials: spawn, collect output, kill by a plan,
 * reap. The parent waits on one ppoll over the child's pidfd, its two output
 * pipes and the inotify watch, with the kill deadline as the timeout: the
 * child's end is learnt from its pidfd, never by sleeping.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"

extern char **environ;

int64_t crash_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void crash_buf_clear(crash_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static void buf_add(crash_buf *b, const char *p, size_t n)
{
	if (b->len + n > CRASH_BUF_MAX) {
		size_t keep = CRASH_BUF_MAX - b->len;
		b->dropped += n - keep;
		n = keep;
	}
	if (n == 0)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (d == NULL) {
			b->nomem = 1;
			b->dropped += n;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* Reads what fd has; closes it at EOF (sets *fd = -1). */
static void pump(int *fd, crash_buf *b)
{
	char tmp[8192];
	ssize_t n;

	do
		n = read(*fd, tmp, sizeof(tmp));
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		buf_add(b, tmp, (size_t)n);
		return;
	}
	if (n < 0 && errno == EAGAIN)
		return;
	close(*fd);
	*fd = -1;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

const char *crash_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "wait status 0x%x", (unsigned)status);
	return buf;
}

void crash_child_clear(crash_child *c)
{
	crash_buf_clear(&c->out);
	crash_buf_clear(&c->err);
	memset(c, 0, sizeof(*c));
}

static int hook_reached(const crash_kill_plan *plan, const crash_watch *w)
{
	return plan != NULL && plan->hook_step >= 0 && w != NULL && w->fd >= 0 &&
	       w->count[plan->hook_step] >= plan->hook_count;
}

static void kill_now(crash_child *c)
{
	if (!c->killed) {
		(void)kill(c->pid, SIGKILL); /* not reaped yet: the pid is still ours */
		c->killed = 1;
		c->kill_us = crash_now_us();
	}
}

int crash_run(char *const argv[], const crash_kill_plan *plan, crash_watch *watch, crash_child *c, char *err,
              size_t errlen)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, pidfd = -1, rc = -1, exited = 0;
	posix_spawn_file_actions_t fa;
	int fa_ok = 0;

	memset(c, 0, sizeof(*c));
	c->pid = -1;
	if (pipe2(outp, O_CLOEXEC | O_NONBLOCK) != 0 || pipe2(errp, O_CLOEXEC | O_NONBLOCK) != 0) {
		snprintf(err, errlen, "cannot create pipes for %s: %s (too many open files?)", argv[0],
		         strerror(errno));
		goto out;
	}
	if (posix_spawn_file_actions_init(&fa) != 0) {
		snprintf(err, errlen, "cannot set up the spawn of %s: out of memory", argv[0]);
		goto out;
	}
	fa_ok = 1;
	if (posix_spawn_file_actions_adddup2(&fa, outp[1], 1) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, errp[1], 2) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0) {
		snprintf(err, errlen, "cannot set up the spawn of %s: out of memory", argv[0]);
		goto out;
	}
	c->start_us = crash_now_us();
	if (watch != NULL)
		watch->t0_us = c->start_us;
	int e = posix_spawn(&c->pid, argv[0], &fa, NULL, argv, environ);
	if (e != 0) {
		c->pid = -1;
		snprintf(err, errlen, "cannot run %s: %s (check the path given with --dcp)", argv[0],
		         strerror(e));
		goto out;
	}
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	pidfd = pidfd_open_(c->pid);
	if (pidfd < 0) {
		snprintf(err, errlen,
		         "pidfd_open of child %ld (%s) failed: %s (Linux 5.3 or later is needed)",
		         (long)c->pid, argv[0], strerror(errno));
		kill_now(c);
		goto reap;
	}

	while (!exited || outp[0] >= 0 || errp[0] >= 0) {
		struct pollfd fds[4];
		int nfds = 0, ipid = -1, iout = -1, ierr = -1, iw = -1;
		if (!exited) {
			ipid = nfds;
			fds[nfds++] = (struct pollfd){pidfd, POLLIN, 0};
		}
		if (outp[0] >= 0) {
			iout = nfds;
			fds[nfds++] = (struct pollfd){outp[0], POLLIN, 0};
		}
		if (errp[0] >= 0) {
			ierr = nfds;
			fds[nfds++] = (struct pollfd){errp[0], POLLIN, 0};
		}
		if (watch != NULL && watch->fd >= 0 && !exited) {
			iw = nfds;
			fds[nfds++] = (struct pollfd){watch->fd, POLLIN, 0};
		}
		struct timespec ts, *tsp = NULL;
		if (plan != NULL && plan->deadline_us >= 0 && !c->killed && !exited) {
			int64_t left = plan->deadline_us - crash_now_us();
			if (left <= 0) {
				kill_now(c);
				continue;
			}
			ts.tv_sec = (time_t)(left / 1000000);
			ts.tv_nsec = (long)(left % 1000000) * 1000;
			tsp = &ts;
		}
		int n = ppoll(fds, (nfds_t)nfds, tsp, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "ppoll while running %s failed: %s", argv[0], strerror(errno));
			kill_now(c);
			goto reap;
		}
		if (n == 0)
			continue; /* the deadline: killed at the top of the loop */
		if (iw >= 0 && fds[iw].revents != 0) {
			if (crash_watch_drain(watch, err, errlen) != 0) {
				kill_now(c);
				goto reap;
			}
			if (hook_reached(plan, watch))
				kill_now(c);
		}
		if (iout >= 0 && fds[iout].revents != 0)
			pump(&outp[0], &c->out);
		if (ierr >= 0 && fds[ierr].revents != 0)
			pump(&errp[0], &c->err);
		if (ipid >= 0 && fds[ipid].revents != 0)
			exited = 1;
	}
	rc = 0;
reap:
	if (c->pid > 0) {
		pid_t p;
		do
			p = waitpid(c->pid, &c->status, 0);
		while (p < 0 && errno == EINTR);
		c->end_us = crash_now_us();
		if (p < 0 && rc == 0) {
			snprintf(err, errlen, "waitpid for %s (pid %ld) failed: %s", argv[0], (long)c->pid,
			         strerror(errno));
			rc = -1;
		}
	}
	/* Every event of the child is queued by now: it is dead. */
	if (rc == 0 && watch != NULL && watch->fd >= 0 && crash_watch_drain(watch, err, errlen) != 0)
		rc = -1;
out:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (rc == 0 && (c->out.nomem || c->err.nomem)) {
		snprintf(err, errlen, "out of memory collecting the output of %s", argv[0]);
		rc = -1;
	}
	return rc;
}
