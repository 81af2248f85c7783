/*
 * I/O threads of a write or read job: every thread runs the job's worker
 * function (which pulls work from the job until none is left), and the last
 * thread to return runs the job's done function, which completes the future.
 */
#include <stdlib.h>
#include <string.h>

#include "layout_internal.h"

static void finish_one(layout_workers *wk, int count)
{
	/* Whoever takes pending to zero is the last one and completes. */
	if (atomic_fetch_sub(&wk->pending, count) == count)
		wk->done(wk->arg);
}

static void *worker_main(void *p)
{
	layout_workers *wk = p;

	wk->fn(wk->arg);
	finish_one(wk, 1);
	return NULL;
}

int layout_workers_start(layout_workers *wk, int n, void (*fn)(void *), void (*done)(void *), void *arg,
                         dcp_msg *msg)
{
	int i, err = 0;

	wk->fn = fn;
	wk->done = done;
	wk->arg = arg;
	wk->nstarted = 0;
	wk->joined = 0;
	if (n < 1)
		n = 1;
	wk->threads = calloc((size_t)n, sizeof(*wk->threads));
	if (wk->threads == NULL) {
		wk->joined = 1;
		dcp_msgf(msg, "out of memory starting %d I/O threads", n);
		return DCP_ENOMEM;
	}
	/* +1 holds the count above zero until every thread has been started,
	 * so that a fast first thread cannot complete the job early. */
	atomic_init(&wk->pending, n + 1);
	for (i = 0; i < n; i++) {
		err = pthread_create(&wk->threads[wk->nstarted], NULL, worker_main, wk);
		if (err != 0)
			break;
		wk->nstarted++;
	}
	if (wk->nstarted == 0) {
		char buf[128];
		free(wk->threads);
		wk->threads = NULL;
		wk->joined = 1;
		dcp_msgf(msg, "cannot start an I/O thread: %s", strerror_r(err, buf, sizeof(buf)));
		return DCP_ENOMEM; /* EAGAIN: out of threads or memory */
	}
	/* Fewer threads than asked for is fine: the ones running pull all the
	 * work. Drop the threads that never started, and the +1. */
	finish_one(wk, n - wk->nstarted + 1);
	return DCP_OK;
}

void layout_workers_join(layout_workers *wk)
{
	int i;

	if (wk->joined)
		return;
	for (i = 0; i < wk->nstarted; i++)
		pthread_join(wk->threads[i], NULL);
	free(wk->threads);
	wk->threads = NULL;
	wk->joined = 1;
}
