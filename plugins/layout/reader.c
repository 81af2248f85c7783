/*
 * The layout's storage reader: read_metadata, and read_data on the reader's
 * own I/O threads. Each request is read with backend->read straight into its
 * destination: only the exact ranges asked for, never a whole object, never
 * through a buffer of ours. Requests that are adjacent both in one object and
 * in memory are merged into one read. A backend with read_iov (a request
 * costs more there than a few bytes: S3) gets one read for requests that are
 * adjacent in the object wherever their destinations are, and across gaps of
 * up to MERGE_GAP bytes (read and dropped).
 *
 * Threads: every op runs on the rank's thread; read_data's I/O threads
 * complete the future, and close joins them.
 */
#include <stdlib.h>
#include <string.h>

#include "layout_internal.h"

/* Merged reads stay below this, so that several threads can share a large
 * contiguous range. */
#define MERGE_CAP ((uint64_t)64 << 20)
/* With read_iov: requests at most this far apart in one object are one read. */
#define MERGE_GAP ((uint64_t)1 << 20)

typedef struct read_span {
	char *path;   /* owned */
	uint64_t off; /* in the object */
	uint64_t len;
	char *dst;             /* when ndsts is 0: len bytes go here */
	dcp_backend_dst *dsts; /* owned; when ndsts > 0: read with read_iov into these */
	size_t ndsts, capdsts;
	size_t req;        /* index of the first request this span reads */
	size_t *more_reqs; /* owned: the other requests merged into it */
	size_t nmore, capmore;
} read_span;

typedef struct read_job {
	layout_workers workers;
	struct read_job *next;
	dcp_backend *backend;
	const dcp_host *host;
	dcp_future *fut;
	size_t nspans;
	read_span *spans;        /* in dispatch order: largest first */
	atomic_size_t next_span; /* next span to take */
	atomic_int stop;         /* set on the first failure */
	pthread_mutex_t lock;    /* guards status and msg */
	int status;
	dcp_msg msg;
} read_job;

static void read_job_free(read_job *job)
{
	size_t i;

	for (i = 0; i < job->nspans && job->spans != NULL; i++) {
		free(job->spans[i].path);
		free(job->spans[i].dsts);
		free(job->spans[i].more_reqs);
	}
	free(job->spans);
	pthread_mutex_destroy(&job->lock);
	free(job);
}

static void read_job_fail(read_job *job, int rc, const dcp_msg *msg)
{
	pthread_mutex_lock(&job->lock);
	if (job->status == DCP_OK) {
		job->status = rc;
		job->msg = *msg;
	}
	pthread_mutex_unlock(&job->lock);
	atomic_store(&job->stop, 1);
}

/* Tells the core that the requests of span s have their bytes (host
 * version 3), so that it verifies them here, on this I/O thread. */
static void span_done(const read_job *job, const read_span *s)
{
	const dcp_host *h = job->host;
	size_t i;

	if (h->version < 3 || h->read_request_done == NULL)
		return;
	h->read_request_done(job->fut, s->req);
	for (i = 0; i < s->nmore; i++)
		h->read_request_done(job->fut, s->more_reqs[i]);
}

static void read_worker(void *arg)
{
	read_job *job = arg;
	dcp_backend *b = job->backend;
	dcp_msg msg;
	char where[1024];

	while (!atomic_load(&job->stop)) {
		size_t k = atomic_fetch_add(&job->next_span, 1);
		const read_span *s;
		int rc;
		if (k >= job->nspans)
			break;
		s = &job->spans[k];
		msg.text[0] = '\0';
		if (s->ndsts > 0)
			rc = b->ops->read_iov(b, s->path, s->off, s->dsts, s->ndsts, &msg);
		else
			rc = b->ops->read(b, s->path, s->off, s->len, s->dst, &msg);
		if (rc == DCP_ENOTFOUND) {
			/* The metadata names it, so a missing object is damage,
			 * or a save replaced the checkpoint since the metadata
			 * was read. */
			dcp_msgf(&msg,
			         "data object %s named by the metadata is missing (wanted %llu bytes at "
			         "offset %llu): if a save replaced the checkpoint during this load, load "
			         "again; else the checkpoint is damaged",
			         b->ops->describe(b, s->path, where, sizeof(where)),
			         (unsigned long long)s->len, (unsigned long long)s->off);
			rc = DCP_ECORRUPT;
		}
		if (rc != DCP_OK)
			read_job_fail(job, rc, &msg);
		else
			span_done(job, s);
	}
}

static void read_done(void *arg)
{
	read_job *job = arg;

	job->host->read_future_complete(job->fut, job->status, job->status == DCP_OK ? NULL : job->msg.text);
}

static int cmp_span_pos(const void *a, const void *b)
{
	const read_span *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c != 0)
		return c;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return (uintptr_t)x->dst < (uintptr_t)y->dst ? -1 : (uintptr_t)x->dst > (uintptr_t)y->dst;
}

static int cmp_span_len_desc(const void *a, const void *b)
{
	const read_span *x = a, *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return cmp_span_pos(a, b);
}

/* Checks one request and fills span (path borrowed for now). 0 bytes: *skip. */
static int request_span(const layout_reader *r, const dcp_read_req *q, size_t i, read_span *s, int *skip,
                        dcp_msg *msg)
{
	const dcp_storage_info *st = q->storage;

	*skip = 0;
	if (st == NULL || st->path == NULL || !dcp_layout_path_is_safe(st->path)) {
		dcp_msgf(msg, "read request %zu of rank %d at %s has no valid object path ('%s')", i, r->rank,
		         r->location, st != NULL && st->path != NULL ? st->path : "(null)");
		return DCP_EPLAN;
	}
	if (q->length == 0) {
		*skip = 1;
		return DCP_OK;
	}
	if (q->dst == NULL) {
		dcp_msgf(msg, "read request %zu of rank %d (%s at %s) has no destination buffer", i, r->rank,
		         st->path, r->location);
		return DCP_EINVAL;
	}
	if (q->offset > st->length || q->length > st->length - q->offset) {
		dcp_msgf(msg,
		         "read request %zu of rank %d wants bytes [%llu, +%llu) of a chunk of %llu bytes in "
		         "%s at %s",
		         i, r->rank, (unsigned long long)q->offset, (unsigned long long)q->length,
		         (unsigned long long)st->length, st->path, r->location);
		return DCP_EPLAN;
	}
	if (st->offset > UINT64_MAX - q->offset - q->length) {
		dcp_msgf(msg, "chunk of %s at %s has offset %llu, beyond any object size", st->path,
		         r->location, (unsigned long long)st->offset);
		return DCP_ECORRUPT;
	}
	memset(s, 0, sizeof(*s));
	s->req = i;
	s->path = st->path;
	s->off = st->offset + q->offset;
	s->len = q->length;
	s->dst = q->dst;
	return DCP_OK;
}

/* Appends a destination to span s (turning its single one into the first of
 * a list). -1 if out of memory. */
static int span_push(read_span *s, void *data, uint64_t len)
{
	if (s->ndsts == 0) {
		s->capdsts = 8;
		s->dsts = malloc(s->capdsts * sizeof(*s->dsts));
		if (s->dsts == NULL)
			return -1;
		s->dsts[0].data = s->dst;
		s->dsts[0].len = s->len;
		s->ndsts = 1;
	}
	if (s->ndsts == s->capdsts) {
		dcp_backend_dst *d = realloc(s->dsts, 2 * s->capdsts * sizeof(*d));
		if (d == NULL)
			return -1;
		s->dsts = d;
		s->capdsts *= 2;
	}
	s->dsts[s->ndsts].data = data;
	s->dsts[s->ndsts].len = len;
	s->ndsts++;
	return 0;
}

/* Records that prev also reads x's request. -1 if out of memory. */
static int span_add_req(read_span *prev, const read_span *x)
{
	if (prev->nmore == prev->capmore) {
		size_t cap = prev->capmore ? 2 * prev->capmore : 8;
		size_t *m = realloc(prev->more_reqs, cap * sizeof(*m));
		if (m == NULL)
			return -1;
		prev->more_reqs = m;
		prev->capmore = cap;
	}
	prev->more_reqs[prev->nmore++] = x->req;
	return 0;
}

/*
 * Merges span x into prev when it may (same object, starting at or after
 * prev's end, within MERGE_GAP with scatter, 0 without, the whole within
 * MERGE_CAP). 1 merged, 0 not, -1 out of memory.
 */
static int span_merge(read_span *prev, const read_span *x, int scatter)
{
	uint64_t end = prev->off + prev->len, gap;

	if (strcmp(prev->path, x->path) != 0 || x->off < end)
		return 0;
	gap = x->off - end;
	if (gap > (scatter ? MERGE_GAP : 0) || x->off + x->len - prev->off > MERGE_CAP)
		return 0;
	if (gap == 0 && prev->ndsts == 0 && (uintptr_t)prev->dst + prev->len == (uintptr_t)x->dst) {
		if (span_add_req(prev, x) != 0)
			return -1;
		prev->len += x->len;
		return 1;
	}
	if (!scatter)
		return 0;
	if (gap == 0 && prev->ndsts > 0 && prev->dsts[prev->ndsts - 1].data != NULL &&
	    (uintptr_t)prev->dsts[prev->ndsts - 1].data + prev->dsts[prev->ndsts - 1].len ==
	            (uintptr_t)x->dst) {
		if (span_add_req(prev, x) != 0)
			return -1;
		prev->dsts[prev->ndsts - 1].len += x->len;
		prev->len += x->len;
		return 1;
	}
	if (span_add_req(prev, x) != 0 || (gap > 0 && span_push(prev, NULL, gap) != 0) ||
	    span_push(prev, x->dst, x->len) != 0)
		return -1;
	prev->len = x->off + x->len - prev->off;
	return 1;
}

/* Builds the job's spans: checked, sorted by object and offset, merged
 * (see span_merge), then ordered largest first. Paths are copied. */
static int plan_reads(const layout_reader *r, read_job *job, const dcp_read_req *reqs, size_t n, dcp_msg *msg)
{
	read_span *sp;
	size_t i, k = 0;
	int rc, skip, scatter = r->backend->ops->read_iov != NULL;

	sp = malloc(n * sizeof(*sp));
	if (sp == NULL) {
		dcp_msgf(msg, "out of memory planning %zu reads at %s", n, r->location);
		return DCP_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		rc = request_span(r, &reqs[i], i, &sp[k], &skip, msg);
		if (rc != DCP_OK) {
			free(sp);
			return rc;
		}
		if (!skip)
			k++;
	}
	qsort(sp, k, sizeof(*sp), cmp_span_pos);
	job->nspans = 0;
	for (i = 0; i < k; i++) {
		int m = job->nspans > 0 ? span_merge(&sp[job->nspans - 1], &sp[i], scatter) : 0;
		if (m < 0) {
			for (i = 0; i < job->nspans; i++) {
				free(sp[i].dsts);
				free(sp[i].more_reqs);
			}
			free(sp);
			job->nspans = 0;
			dcp_msgf(msg, "out of memory planning reads at %s", r->location);
			return DCP_ENOMEM;
		}
		if (m == 0)
			sp[job->nspans++] = sp[i];
	}
	qsort(sp, job->nspans, sizeof(*sp), cmp_span_len_desc);
	job->spans = sp;
	for (i = 0; i < job->nspans; i++) {
		const char *p = sp[i].path;
		sp[i].path = dcp_strdup(p);
		if (sp[i].path == NULL) {
			size_t j;
			for (j = i; j < job->nspans; j++) { /* not copied: only the lists to free */
				free(sp[j].dsts);
				free(sp[j].more_reqs);
			}
			job->nspans = i; /* free only the copies made */
			dcp_msgf(msg, "out of memory planning reads at %s", r->location);
			return DCP_ENOMEM;
		}
	}
	return DCP_OK;
}

/* Joins and frees the jobs of earlier read_data calls, so that a load made of
 * many batches holds one job at a time. The core waits for each future before
 * the next call, so their threads are exiting: the join is short. */
static void reap_jobs(layout_reader *r)
{
	read_job *j, *next;

	for (j = r->jobs; j != NULL; j = next) {
		next = j->next;
		layout_workers_join(&j->workers);
		read_job_free(j);
	}
	r->jobs = NULL;
}

static int reader_read_data(dcp_storage_reader *sr, const dcp_load_plan *plan, const dcp_read_req *reqs,
                            size_t n, dcp_future *fut, dcp_msg *msg)
{
	layout_reader *r = (layout_reader *)sr;
	read_job *job;
	int rc, nthreads;

	(void)plan;
	if ((reqs == NULL && n > 0) || fut == NULL) {
		dcp_msgf(msg, "read_data at %s: requests and future must not be NULL", r->location);
		return DCP_EINVAL;
	}
	reap_jobs(r);
	job = calloc(1, sizeof(*job));
	if (job == NULL || pthread_mutex_init(&job->lock, NULL) != 0) {
		free(job);
		dcp_msgf(msg, "out of memory in read_data at %s", r->location);
		return DCP_ENOMEM;
	}
	job->backend = r->backend;
	job->host = r->host;
	job->fut = fut;
	job->status = DCP_OK;
	job->workers.joined = 1;
	atomic_init(&job->next_span, 0);
	atomic_init(&job->stop, 0);
	rc = n > 0 ? plan_reads(r, job, reqs, n, msg) : DCP_OK;
	if (rc != DCP_OK) {
		read_job_free(job);
		return rc;
	}
	if (job->nspans == 0) {
		read_job_free(job);
		r->host->read_future_complete(fut, DCP_OK, NULL);
		return DCP_OK;
	}
	job->next = r->jobs;
	r->jobs = job;
	nthreads = job->nspans < (size_t)r->options.threads ? (int)job->nspans : r->options.threads;
	return layout_workers_start(&job->workers, nthreads, read_worker, read_done, job, msg);
}

static int reader_read_metadata(dcp_storage_reader *sr, dcp_metadata **out, dcp_msg *msg)
{
	layout_reader *r = (layout_reader *)sr;

	return layout_read_metadata(r->backend, r->host, r->location, out, NULL, msg);
}

static int reader_set_up(dcp_storage_reader *sr, const dcp_metadata *md, int is_coordinator, int rank,
                         int world_size, dcp_msg *msg)
{
	layout_reader *r = (layout_reader *)sr;

	(void)is_coordinator;
	if (rank < 0 || world_size < 1 || rank >= world_size) {
		dcp_msgf(msg, "set_up_storage_reader at %s: rank %d of %d is out of range", r->location, rank,
		         world_size);
		return DCP_EINVAL;
	}
	r->md = md;
	r->rank = rank;
	r->world_size = world_size;
	return DCP_OK;
}

static void reader_close(dcp_storage_reader *sr)
{
	layout_reader *r = (layout_reader *)sr;

	if (r == NULL)
		return;
	reap_jobs(r);
	r->backend->ops->destroy(r->backend);
	free(r->location);
	free(r);
}

const dcp_reader_ops layout_reader_ops = {
        .version = DCP_READER_OPS_VERSION,
        .reset = NULL,
        .read_metadata = reader_read_metadata,
        .set_up_storage_reader = reader_set_up,
        .prepare_local_plan = NULL,
        .prepare_global_plan = NULL,
        .read_data = reader_read_data,
        .close = reader_close,
};

int dcp_layout_reader_open(const dcp_layout_params *params, const dcp_open_options *opts,
                           dcp_storage_reader **out, dcp_msg *msg)
{
	layout_reader *r;
	const dcp_host *h;

	*out = NULL;
	if (params == NULL || params->backend == NULL) {
		dcp_msgf(msg, "dcp_layout_reader_open: no backend");
		return DCP_EINVAL;
	}
	h = params->host;
	if (h == NULL || h->version < 1 || h->metadata_decode == NULL || h->metadata_free == NULL ||
	    h->read_future_complete == NULL) {
		dcp_msgf(msg, "the host table given to the storage layout is missing or incomplete");
		params->backend->ops->destroy(params->backend);
		return DCP_EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (r != NULL)
		r->location = dcp_strdup(params->location != NULL ? params->location : "(unknown location)");
	if (r == NULL || r->location == NULL) {
		free(r);
		params->backend->ops->destroy(params->backend);
		dcp_msgf(msg, "out of memory opening a reader for %s",
		         params->location != NULL ? params->location : "a checkpoint");
		return DCP_ENOMEM;
	}
	r->base.ops = &layout_reader_ops;
	r->backend = params->backend;
	r->host = h;
	r->options = params->options;
	if (r->options.threads < 1 || r->options.threads > DCP_LAYOUT_MAX_THREADS)
		r->options.threads = 1;
	r->rank = opts != NULL ? opts->rank : 0;
	r->world_size = opts != NULL ? opts->world_size : 1;
	*out = &r->base;
	return DCP_OK;
}
