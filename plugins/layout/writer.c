/*
 * The layout's storage writer: set-up (refusing an existing checkpoint when
 * overwrite is off), write_data on the writer's own I/O threads, abort and
 * close. The commit (finish) is in commit.c.
 *
 * Threads: every op runs on the rank's thread. write_data hands a job to I/O
 * threads; they write straight from the request's data pointers (no copy;
 * through the backend's write_iov where it has one) and the last one
 * completes the future. close and abort join them.
 */
#include <stdlib.h>
#include <string.h>

#include "layout_internal.h"

/* One data object of a write job: the requests it holds, in offset order. */
typedef struct write_obj {
	char *name;   /* owned */
	size_t first; /* into write_job.members */
	size_t count;
	uint64_t bytes;
} write_obj;

typedef struct write_src {
	const void *data; /* borrowed from the caller until the future completes */
	uint64_t len;
} write_src;

typedef struct write_job {
	layout_workers workers;
	struct write_job *next;
	dcp_backend *backend;
	const dcp_host *host;
	dcp_future *fut;
	size_t nreqs;
	write_src *src;            /* [nreqs] */
	dcp_write_result *results; /* [nreqs]; path points at objs[].name */
	size_t nobjs;
	write_obj *objs;        /* [nobjs] */
	size_t *members;        /* [nreqs] request ordinals grouped by object */
	size_t *dispatch;       /* [nobjs] object indices, largest first */
	atomic_size_t next_obj; /* next dispatch slot to take */
	atomic_int stop;        /* set on the first failure */
	pthread_mutex_t lock;   /* guards status and msg */
	int status;
	dcp_msg msg;
} write_job;

static void write_job_free(write_job *job)
{
	size_t i;

	for (i = 0; i < job->nobjs && job->objs != NULL; i++)
		free(job->objs[i].name);
	free(job->objs);
	free(job->src);
	free(job->results);
	free(job->members);
	free(job->dispatch);
	pthread_mutex_destroy(&job->lock);
	free(job);
}

static void write_job_fail(write_job *job, int rc, const dcp_msg *msg)
{
	pthread_mutex_lock(&job->lock);
	if (job->status == DCP_OK) {
		job->status = rc;
		job->msg = *msg;
	}
	pthread_mutex_unlock(&job->lock);
	atomic_store(&job->stop, 1);
}

/*
 * Writes one object with the backend's write_iov: the request buffers stay
 * valid until the future completes, so the backend may send them without a
 * copy, knowing the object's size up front (S3: one PUT, or parts in
 * parallel). Returns 0 if the backend has no write_iov.
 */
static int write_one_iov(write_job *job, const write_obj *o)
{
	dcp_backend *b = job->backend;
	dcp_backend_iov *iov;
	dcp_msg msg;
	size_t i, k = 0;
	int rc;

	if (b->ops->write_iov == NULL)
		return 0;
	msg.text[0] = '\0';
	iov = malloc((o->count > 0 ? o->count : 1) * sizeof(*iov));
	if (iov == NULL) {
		dcp_msgf(&msg, "out of memory writing data object %s (%zu items)", o->name, o->count);
		write_job_fail(job, DCP_ENOMEM, &msg);
		return 1;
	}
	for (i = 0; i < o->count; i++) {
		const write_src *s = &job->src[job->members[o->first + i]];
		if (s->len == 0)
			continue;
		iov[k].data = s->data;
		iov[k].len = s->len;
		k++;
	}
	rc = b->ops->write_iov(b, o->name, iov, k, &job->stop, &msg);
	free(iov);
	if (rc != DCP_OK)
		write_job_fail(job, rc, &msg);
	return 1;
}

/* Writes one object sequentially; on any failure the object is discarded. */
static void write_one(write_job *job, const write_obj *o)
{
	dcp_backend *b = job->backend;
	dcp_backend_writer *bw = NULL;
	dcp_msg msg;
	size_t i;
	int rc;

	if (write_one_iov(job, o))
		return;
	msg.text[0] = '\0';
	rc = b->ops->writer_open(b, o->name, &bw, &msg);
	if (rc != DCP_OK) {
		write_job_fail(job, rc, &msg);
		return;
	}
	for (i = 0; i < o->count; i++) {
		const write_src *s = &job->src[job->members[o->first + i]];
		if (atomic_load(&job->stop)) {
			b->ops->writer_abort(bw);
			return;
		}
		if (s->len == 0)
			continue;
		rc = b->ops->writer_append(bw, s->data, s->len, &msg);
		if (rc != DCP_OK) {
			b->ops->writer_abort(bw);
			write_job_fail(job, rc, &msg);
			return;
		}
	}
	rc = b->ops->writer_close(bw, &msg);
	if (rc != DCP_OK)
		write_job_fail(job, rc, &msg);
}

static void write_worker(void *arg)
{
	write_job *job = arg;

	while (!atomic_load(&job->stop)) {
		size_t k = atomic_fetch_add(&job->next_obj, 1);
		if (k >= job->nobjs)
			break;
		write_one(job, &job->objs[job->dispatch[k]]);
	}
}

/* Runs once, on the last I/O thread: completes the future. */
static void write_done(void *arg)
{
	write_job *job = arg;

	if (job->status == DCP_OK)
		job->host->write_future_complete(job->fut, DCP_OK, job->results, job->nreqs, NULL);
	else
		job->host->write_future_complete(job->fut, job->status, NULL, 0, job->msg.text);
}

/* Sort helpers: (bytes, ordinal) pairs, largest first, then lowest ordinal. */
typedef struct size_ord {
	uint64_t bytes;
	size_t ord;
} size_ord;

static int cmp_size_desc(const void *a, const void *b)
{
	const size_ord *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/*
 * Bucket layout: spreads the requests over nobjs objects, largest first onto
 * the object with the fewest bytes (then the fewest requests, then the lowest
 * number), so every object gets at least one request and the bytes are
 * balanced within the largest request. Within an object, requests keep their
 * order. Fills objs[].first/count/bytes and members.
 */
static int assign_buckets(write_job *job, dcp_msg *msg)
{
	size_t n = job->nreqs, nb = job->nobjs, i, b;
	size_ord *order = malloc(n * sizeof(*order));
	size_t *bucket_of = malloc(n * sizeof(*bucket_of));
	size_t *fill = calloc(nb, sizeof(*fill));

	if (order == NULL || bucket_of == NULL || fill == NULL) {
		free(order);
		free(bucket_of);
		free(fill);
		dcp_msgf(msg, "out of memory planning %zu data objects for %zu items", nb, n);
		return DCP_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		order[i].bytes = job->src[i].len;
		order[i].ord = i;
	}
	qsort(order, n, sizeof(*order), cmp_size_desc);
	for (i = 0; i < n; i++) {
		size_t best = 0;
		for (b = 1; b < nb; b++) {
			const write_obj *x = &job->objs[b], *y = &job->objs[best];
			if (x->bytes < y->bytes || (x->bytes == y->bytes && x->count < y->count))
				best = b;
		}
		bucket_of[order[i].ord] = best;
		job->objs[best].bytes += order[i].bytes;
		job->objs[best].count++;
	}
	for (b = 0, i = 0; b < nb; b++) {
		job->objs[b].first = i;
		i += job->objs[b].count;
	}
	for (i = 0; i < n; i++) {
		b = bucket_of[i];
		job->members[job->objs[b].first + fill[b]++] = i;
	}
	free(order);
	free(bucket_of);
	free(fill);
	return DCP_OK;
}

/* Lays out a job: objects, members, offsets, results, dispatch order. */
static int plan_job(layout_writer *w, write_job *job, const dcp_write_req *reqs, dcp_msg *msg)
{
	size_t n = job->nreqs, i, k;
	size_ord *order;
	int rc;

	job->objs = calloc(job->nobjs, sizeof(*job->objs));
	job->members = malloc(n * sizeof(*job->members));
	job->dispatch = malloc(job->nobjs * sizeof(*job->dispatch));
	if (job->objs == NULL || job->members == NULL || job->dispatch == NULL)
		goto nomem;
	for (k = 0; k < job->nobjs; k++) {
		job->objs[k].name = layout_data_name(w->rank, w->nobjects + (uint32_t)k, w->save_id);
		if (job->objs[k].name == NULL)
			goto nomem;
	}
	if (w->options.kind == DCP_LAYOUT_ITEM) {
		for (i = 0; i < n; i++) {
			job->objs[i].first = i;
			job->objs[i].count = 1;
			job->objs[i].bytes = job->src[i].len;
			job->members[i] = i;
		}
	} else {
		rc = assign_buckets(job, msg);
		if (rc != DCP_OK)
			return rc;
	}
	for (k = 0; k < job->nobjs; k++) {
		uint64_t off = 0;
		for (i = 0; i < job->objs[k].count; i++) {
			size_t r = job->members[job->objs[k].first + i];
			job->results[r].index = reqs[r].index;
			job->results[r].path = job->objs[k].name;
			job->results[r].offset = off;
			job->results[r].length = job->src[r].len;
			off += job->src[r].len;
		}
	}
	/* Largest objects first, so that the threads finish close together. */
	order = malloc(job->nobjs * sizeof(*order));
	if (order == NULL)
		goto nomem;
	for (k = 0; k < job->nobjs; k++) {
		order[k].bytes = job->objs[k].bytes;
		order[k].ord = k;
	}
	qsort(order, job->nobjs, sizeof(*order), cmp_size_desc);
	for (k = 0; k < job->nobjs; k++)
		job->dispatch[k] = order[k].ord;
	free(order);
	return DCP_OK;
nomem:
	dcp_msgf(msg, "out of memory planning %zu data objects at %s", job->nobjs, w->location);
	return DCP_ENOMEM;
}

/* Joins and frees every write job of w. */
static void reap_jobs(layout_writer *w)
{
	write_job *j, *next;

	for (j = w->jobs; j != NULL; j = next) {
		next = j->next;
		layout_workers_join(&j->workers);
		write_job_free(j);
	}
	w->jobs = NULL;
}

static int writer_write_data(dcp_storage_writer *sw, const dcp_save_plan *plan, const dcp_write_req *reqs,
                             size_t n, dcp_future *fut, dcp_msg *msg)
{
	layout_writer *w = (layout_writer *)sw;
	write_job *job;
	size_t i;
	uint64_t total = 0;
	int rc, nomem;
	char *sid;

	if (plan == NULL || (reqs == NULL && n > 0) || fut == NULL) {
		dcp_msgf(msg, "write_data at %s: plan, requests and future must not be NULL", w->location);
		return DCP_EINVAL;
	}
	sid = layout_name_save_id(plan->save_id, &nomem);
	if (sid == NULL) {
		if (nomem) {
			dcp_msgf(msg, "out of memory in write_data at %s", w->location);
			return DCP_ENOMEM;
		}
		dcp_msgf(msg,
		         "the save plan of rank %d has no usable save id ('%s'): it must be 1 to 200 bytes",
		         w->rank, plan->save_id != NULL ? plan->save_id : "(null)");
		return DCP_EPLAN;
	}
	if (w->save_id != NULL && strcmp(w->save_id, sid) != 0) {
		dcp_msgf(msg, "this writer for %s already wrote save '%s'; open a new writer for save '%s'",
		         w->location, w->save_id, sid);
		free(sid);
		return DCP_EPLAN;
	}
	if (w->save_id == NULL)
		w->save_id = sid;
	else
		free(sid);
	for (i = 0; i < n; i++) {
		if (reqs[i].data == NULL && reqs[i].len > 0) {
			dcp_msgf(
			        msg,
			        "write request %zu (item '%s') of rank %d has %llu bytes but no data pointer",
			        i,
			        reqs[i].item != NULL && reqs[i].item->key != NULL ? reqs[i].item->key : "?",
			        w->rank, (unsigned long long)reqs[i].len);
			return DCP_EINVAL;
		}
		if (reqs[i].len > UINT64_MAX - total) {
			dcp_msgf(msg, "the write requests of rank %d add up to more than 2^64 bytes",
			         w->rank);
			return DCP_EINVAL;
		}
		total += reqs[i].len;
	}
	/* Earlier jobs of this writer have completed their futures: free them. */
	reap_jobs(w);
	if (n == 0) {
		/* Nothing to write: no object, no thread. */
		w->host->write_future_complete(fut, DCP_OK, NULL, 0, NULL);
		return DCP_OK;
	}

	job = calloc(1, sizeof(*job));
	if (job == NULL || pthread_mutex_init(&job->lock, NULL) != 0) {
		free(job);
		dcp_msgf(msg, "out of memory in write_data at %s", w->location);
		return DCP_ENOMEM;
	}
	job->backend = w->backend;
	job->host = w->host;
	job->fut = fut;
	job->nreqs = n;
	job->status = DCP_OK;
	atomic_init(&job->next_obj, 0);
	atomic_init(&job->stop, 0);
	job->workers.joined = 1;
	if (w->options.kind == DCP_LAYOUT_ITEM)
		job->nobjs = n;
	else
		job->nobjs = n < (size_t)w->options.threads ? n : (size_t)w->options.threads;
	if (job->nobjs > UINT32_MAX - w->nobjects) {
		write_job_free(job);
		dcp_msgf(msg, "too many data objects for one save at %s (rank %d)", w->location, w->rank);
		return DCP_EPLAN;
	}
	job->src = malloc(n * sizeof(*job->src));
	job->results = calloc(n, sizeof(*job->results));
	if (job->src == NULL || job->results == NULL) {
		write_job_free(job);
		dcp_msgf(msg, "out of memory in write_data at %s", w->location);
		return DCP_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		job->src[i].data = reqs[i].data;
		job->src[i].len = reqs[i].len;
	}
	rc = plan_job(w, job, reqs, msg);
	if (rc != DCP_OK) {
		write_job_free(job);
		return rc;
	}
	/* From here on abort knows these names, whatever happens below. */
	w->nobjects += (uint32_t)job->nobjs;
	job->next = w->jobs;
	w->jobs = job;
	{
		int nthreads = job->nobjs < (size_t)w->options.threads ? (int)job->nobjs : w->options.threads;
		rc = layout_workers_start(&job->workers, nthreads, write_worker, write_done, job, msg);
	}
	return rc;
}

void layout_writer_join(layout_writer *w)
{
	write_job *j;

	for (j = w->jobs; j != NULL; j = j->next)
		layout_workers_join(&j->workers);
}

static int writer_set_up(dcp_storage_writer *sw, int is_coordinator, int rank, int world_size, dcp_msg *msg)
{
	layout_writer *w = (layout_writer *)sw;
	int rc;

	if (rank < 0 || world_size < 1 || rank >= world_size) {
		dcp_msgf(msg, "set_up_storage_writer at %s: rank %d of %d is out of range", w->location, rank,
		         world_size);
		return DCP_EINVAL;
	}
	w->is_coordinator = is_coordinator;
	w->rank = rank;
	w->world_size = world_size;
	if (!is_coordinator || w->overwrite)
		return DCP_OK;
	/* Refuse before any rank writes anything; finish checks again. */
	rc = dcp_layout_exists(w->backend, msg);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		dcp_msgf(msg, "checkpoint already exists at %s: remove it or save with overwrite",
		         w->location);
		return DCP_EEXISTS;
	}
	return DCP_OK;
}

static int writer_storage_meta(dcp_storage_writer *sw, char **json, dcp_msg *msg)
{
	layout_writer *w = (layout_writer *)sw;

	*json = dcp_asprintf("{\"layout\":\"%s\",\"threads\":%d}",
	                     w->options.kind == DCP_LAYOUT_ITEM ? "item" : "bucket", w->options.threads);
	if (*json == NULL) {
		dcp_msgf(msg, "out of memory in storage_meta at %s", w->location);
		return DCP_ENOMEM;
	}
	return DCP_OK;
}

/*
 * The save failed somewhere. Removes the objects this rank created for it,
 * except any that a committed .metadata names (if finish succeeded and a
 * later step failed, they are the checkpoint). When .metadata cannot be read
 * for another reason than its absence, nothing is removed: leftover objects
 * are better than a checkpoint with missing data.
 */
static void writer_abort(dcp_storage_writer *sw)
{
	layout_writer *w = (layout_writer *)sw;
	dcp_metadata *md = NULL;
	const char **paths = NULL;
	size_t npaths = 0;
	uint32_t k;
	dcp_msg msg;
	int rc;

	layout_writer_join(w);
	if (w->committed || w->save_id == NULL || w->nobjects == 0)
		return;
	rc = layout_read_metadata(w->backend, w->host, w->location, &md, NULL, &msg);
	if (rc == DCP_OK) {
		if (layout_md_paths(md, &paths, &npaths, &msg) != DCP_OK) {
			w->host->metadata_free(md);
			return;
		}
	} else if (rc != DCP_ENOTFOUND) {
		return;
	}
	for (k = 0; k < w->nobjects; k++) {
		char *name = layout_data_name(w->rank, k, w->save_id);
		if (name == NULL)
			break;
		if (!layout_paths_contain(paths, npaths, name))
			(void)w->backend->ops->remove(w->backend, name, &msg);
		free(name);
	}
	free(paths);
	if (md != NULL)
		w->host->metadata_free(md);
	/* Removed: a second abort has nothing left to do. */
	w->nobjects = 0;
}

static void writer_close(dcp_storage_writer *sw)
{
	layout_writer *w = (layout_writer *)sw;

	if (w == NULL)
		return;
	reap_jobs(w);
	w->backend->ops->destroy(w->backend);
	free(w->location);
	free(w->save_id);
	free(w);
}

const dcp_writer_ops layout_writer_ops = {
        .version = DCP_WRITER_OPS_VERSION,
        .reset = NULL,
        .set_up_storage_writer = writer_set_up,
        .prepare_local_plan = NULL,
        .prepare_global_plan = NULL,
        .write_data = writer_write_data,
        .finish = layout_writer_finish,
        .storage_meta = writer_storage_meta,
        .abort = writer_abort,
        .close = writer_close,
};

/* Checks the host slots the layout calls. */
static int check_host(const dcp_host *host, dcp_msg *msg)
{
	if (host == NULL || host->version < 1 || host->metadata_encode == NULL ||
	    host->metadata_decode == NULL || host->metadata_free == NULL ||
	    host->write_future_complete == NULL || host->read_future_complete == NULL) {
		dcp_msgf(msg,
		         "the host table given to the storage layout is missing or incomplete (version %u)",
		         host != NULL ? host->version : 0u);
		return DCP_EINVAL;
	}
	return DCP_OK;
}

int dcp_layout_writer_open(const dcp_layout_params *params, const dcp_open_options *opts,
                           dcp_storage_writer **out, dcp_msg *msg)
{
	layout_writer *w;
	int rc;

	*out = NULL;
	if (params == NULL || params->backend == NULL) {
		dcp_msgf(msg, "dcp_layout_writer_open: no backend");
		return DCP_EINVAL;
	}
	rc = check_host(params->host, msg);
	if (rc == DCP_OK && opts != NULL && opts->version < 1) {
		dcp_msgf(msg, "open options for %s have version %u; expected %d",
		         params->location != NULL ? params->location : "a checkpoint", opts->version,
		         DCP_OPEN_OPTIONS_VERSION);
		rc = DCP_EVERSION;
	}
	w = rc == DCP_OK ? calloc(1, sizeof(*w)) : NULL;
	if (w != NULL)
		w->location = dcp_strdup(params->location != NULL ? params->location : "(unknown location)");
	if (rc == DCP_OK && (w == NULL || w->location == NULL)) {
		dcp_msgf(msg, "out of memory opening a writer for %s",
		         params->location != NULL ? params->location : "a checkpoint");
		rc = DCP_ENOMEM;
	}
	if (rc != DCP_OK) {
		if (w != NULL)
			free(w->location);
		free(w);
		params->backend->ops->destroy(params->backend);
		return rc;
	}
	w->base.ops = &layout_writer_ops;
	w->backend = params->backend;
	w->host = params->host;
	w->options = params->options;
	if (w->options.threads < 1 || w->options.threads > DCP_LAYOUT_MAX_THREADS)
		w->options.threads = 1;
	w->rank = opts != NULL ? opts->rank : 0;
	w->world_size = opts != NULL ? opts->world_size : 1;
	if (w->options.overwrite >= 0)
		w->overwrite = w->options.overwrite;
	else
		w->overwrite = opts != NULL ? opts->overwrite != 0 : 1;
	*out = &w->base;
	return DCP_OK;
}
