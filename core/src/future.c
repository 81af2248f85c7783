#include "future.h"

#include <stdlib.h>
#include <string.h>

#include "url.h"

dcp_future *dcp_future_new(void)
{
	dcp_future *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	if (pthread_mutex_init(&f->mu, NULL) != 0) {
		free(f);
		return NULL;
	}
	if (pthread_cond_init(&f->cv, NULL) != 0) {
		pthread_mutex_destroy(&f->mu);
		free(f);
		return NULL;
	}
	return f;
}

static void results_free(dcp_owned_result *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].path);
	free(r);
}

void dcp_future_free(dcp_future *f)
{
	if (f == NULL)
		return;
	results_free(f->results, f->nresults);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Marks the future done under its lock; a second completion is recorded but
 * ignored, so that a misbehaving plugin cannot corrupt what the core reads. */
static void complete(dcp_future *f, int status, const char *message, dcp_owned_result *res, size_t n)
{
	pthread_mutex_lock(&f->mu);
	f->completions++;
	if (f->done) {
		pthread_mutex_unlock(&f->mu);
		results_free(res, n);
		return;
	}
	f->status = status;
	snprintf(f->message, sizeof(f->message), "%s", message ? message : "");
	f->results = res;
	f->nresults = n;
	f->done = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

void dcp_future_complete_write(dcp_future *f, int status, const dcp_write_result *results, size_t n,
                               const char *message)
{
	if (f == NULL)
		return;
	dcp_owned_result *res = NULL;
	if (status == DCP_OK && n > 0) {
		if (results == NULL) {
			complete(f, DCP_EPLUGIN, "the plugin completed a write with no results", NULL, 0);
			return;
		}
		res = calloc(n, sizeof(*res));
		if (res == NULL) {
			complete(f, DCP_ENOMEM, "out of memory storing write results", NULL, 0);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			res[i].index = results[i].index;
			res[i].offset = results[i].offset;
			res[i].length = results[i].length;
			res[i].path = dcp_strdup(results[i].path ? results[i].path : "");
			if (res[i].path == NULL) {
				results_free(res, n);
				complete(f, DCP_ENOMEM, "out of memory storing write results", NULL, 0);
				return;
			}
		}
	}
	complete(f, status, message, res, status == DCP_OK ? n : 0);
}

void dcp_future_complete_read(dcp_future *f, int status, const char *message)
{
	if (f != NULL)
		complete(f, status, message, NULL, 0);
}

int dcp_future_wait(dcp_future *f, dcp_msg *msg)
{
	pthread_mutex_lock(&f->mu);
	while (!f->done)
		pthread_cond_wait(&f->cv, &f->mu);
	int status = f->status;
	if (msg != NULL)
		snprintf(msg->text, sizeof(msg->text), "%s", f->message);
	pthread_mutex_unlock(&f->mu);
	return status;
}

void dcp_future_read_request_done(dcp_future *f, size_t index)
{
	/* No lock: the hook and its context are set before the future reaches
	 * the plugin and never change; the hook touches only request `index`. */
	if (f != NULL && f->on_request_done != NULL)
		f->on_request_done(f->on_request_done_ctx, index);
}
