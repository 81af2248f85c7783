/*
 * Asynchronous injected failures (write_data_async, read_data_async): the
 * slot returns DCP_OK and the future fails later, from a thread of the
 * plugin's own, as a real storage whose I/O thread hits an error would do.
 */
#include <string.h>

#include "faulty.h"

/* The failing thread: completes the future and never touches it again (the
 * core may free it as soon as it is completed). */
static void *async_main(void *arg)
{
	faulty_async *a = arg;

	if (a->is_write)
		a->host->write_future_complete(a->fut, DCP_EINJECTED, NULL, 0, a->message);
	else
		a->host->read_future_complete(a->fut, DCP_EINJECTED, a->message);
	return NULL;
}

void faulty_async_join(faulty_async *a)
{
	if (a->running) {
		pthread_join(a->thread, NULL);
		a->running = 0;
	}
	a->fut = NULL;
}

void faulty_async_fail(faulty_async *a, const dcp_host *host, dcp_future *fut, int is_write,
                       faulty_stage stage, int rank)
{
	dcp_msg msg;

	faulty_async_join(a);
	faulty_inject(&msg, stage, rank);
	memcpy(a->message, msg.text, sizeof(a->message));
	a->host = host;
	a->fut = fut;
	a->is_write = is_write;
	if (pthread_create(&a->thread, NULL, async_main, a) == 0) {
		a->running = 1;
		return;
	}
	/* No thread could be started: completing the future before write_data
	 * or read_data returns is allowed too, and the failure stays the same. */
	async_main(a);
	a->fut = NULL;
}
