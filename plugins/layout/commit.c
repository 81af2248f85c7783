/*
 * Commit, existence and removal of a checkpoint: everything that touches
 * .metadata.
 *
 * The invariant kept here: a .metadata that is visible names only objects
 * that exist. So a commit checks the new save's objects before it replaces
 * .metadata, and removes the old save's objects only after; a removal takes
 * .metadata away first. A commit checks and removes objects on up to the
 * writer's `threads` threads at once (one request each on S3).
 */
#include <stdlib.h>
#include <string.h>

#include "layout_internal.h"

int layout_read_metadata(dcp_backend *b, const dcp_host *host, const char *location, dcp_metadata **out,
                         int *raw_found, dcp_msg *msg)
{
	void *data = NULL;
	uint64_t len = 0;
	dcp_msg dm;
	char where[1024];
	int rc;

	*out = NULL;
	if (raw_found != NULL)
		*raw_found = 0;
	rc = b->ops->get(b, DCP_LAYOUT_METADATA, &data, &len, msg);
	if (rc == DCP_ENOTFOUND) {
		dcp_msgf(msg, "no checkpoint at %s", location);
		return rc;
	}
	if (rc != DCP_OK)
		return rc;
	if (raw_found != NULL)
		*raw_found = 1;
	dm.text[0] = '\0';
	rc = host->metadata_decode(data, (size_t)len, out, &dm);
	free(data);
	if (rc != DCP_OK) {
		*out = NULL;
		dcp_msgf(msg, "checkpoint metadata %s cannot be used: %s",
		         b->ops->describe(b, DCP_LAYOUT_METADATA, where, sizeof(where)), dm.text);
	}
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int layout_md_paths(const dcp_metadata *md, const char ***out, size_t *n, dcp_msg *msg)
{
	size_t i, j, cnt = 0, k;
	const char **p;

	*out = NULL;
	*n = 0;
	for (i = 0; i < md->nitems; i++)
		cnt += md->items[i].nchunks;
	if (cnt == 0)
		return DCP_OK;
	p = malloc(cnt * sizeof(*p));
	if (p == NULL) {
		dcp_msgf(msg, "out of memory listing the %zu chunks of a checkpoint", cnt);
		return DCP_ENOMEM;
	}
	cnt = 0;
	for (i = 0; i < md->nitems; i++)
		for (j = 0; j < md->items[i].nchunks; j++)
			if (md->items[i].chunks[j].storage.path != NULL)
				p[cnt++] = md->items[i].chunks[j].storage.path;
	qsort(p, cnt, sizeof(*p), cmp_str);
	for (i = 0, k = 0; i < cnt; i++)
		if (k == 0 || strcmp(p[k - 1], p[i]) != 0)
			p[k++] = p[i];
	if (k == 0) {
		free(p);
		return DCP_OK;
	}
	*out = p;
	*n = k;
	return DCP_OK;
}

int layout_paths_contain(const char *const *paths, size_t n, const char *path)
{
	if (n == 0)
		return 0;
	return bsearch(&path, paths, n, sizeof(*paths), cmp_str) != NULL;
}

int dcp_layout_exists(dcp_backend *backend, dcp_msg *msg)
{
	return backend->ops->exists(backend, DCP_LAYOUT_METADATA, msg);
}

/* A path the layout may create or remove as a data object. */
static int data_path_ok(const char *p)
{
	return dcp_layout_path_is_safe(p) && strcmp(p, DCP_LAYOUT_METADATA) != 0;
}

/*
 * fn(arg, i, msg) for every i in [0, n), on up to nthreads threads (the
 * caller's among them): a commit checks or removes one object per request,
 * and on a store where a request takes a round trip (S3) they should not
 * wait for each other. The first nonzero return stops the others from
 * taking more and is returned, with its msg.
 */
typedef struct each_job {
	size_t n;
	atomic_size_t next;
	atomic_int stop;
	int (*fn)(void *arg, size_t i, dcp_msg *msg);
	void *arg;
	pthread_mutex_t lock; /* guards status and msg */
	int status;
	dcp_msg msg;
} each_job;

static void *each_thread(void *p)
{
	each_job *j = p;
	dcp_msg m;

	while (!atomic_load(&j->stop)) {
		size_t i = atomic_fetch_add(&j->next, 1);
		int rc;
		if (i >= j->n)
			break;
		m.text[0] = '\0';
		rc = j->fn(j->arg, i, &m);
		if (rc != 0) {
			pthread_mutex_lock(&j->lock);
			if (j->status == 0) {
				j->status = rc;
				j->msg = m;
			}
			pthread_mutex_unlock(&j->lock);
			atomic_store(&j->stop, 1);
		}
	}
	return NULL;
}

static int run_each(size_t n, int nthreads, int (*fn)(void *arg, size_t i, dcp_msg *msg), void *arg,
                    dcp_msg *msg)
{
	pthread_t th[DCP_LAYOUT_MAX_THREADS];
	each_job j;
	int started = 0, k;

	memset(&j, 0, sizeof(j));
	j.n = n;
	j.fn = fn;
	j.arg = arg;
	atomic_init(&j.next, 0);
	atomic_init(&j.stop, 0);
	if (pthread_mutex_init(&j.lock, NULL) != 0) {
		/* No lock, no threads: one at a time here. */
		size_t i;
		for (i = 0; i < n; i++) {
			int rc = fn(arg, i, &j.msg);
			if (rc != 0) {
				if (msg != NULL)
					*msg = j.msg;
				return rc;
			}
		}
		return 0;
	}
	if ((size_t)nthreads > n)
		nthreads = (int)n;
	if (nthreads > DCP_LAYOUT_MAX_THREADS)
		nthreads = DCP_LAYOUT_MAX_THREADS;
	for (k = 0; k < nthreads - 1; k++) {
		if (pthread_create(&th[k], NULL, each_thread, &j) != 0)
			break; /* the threads running take all the work */
		started++;
	}
	(void)each_thread(&j);
	for (k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	pthread_mutex_destroy(&j.lock);
	if (j.status != 0 && msg != NULL)
		*msg = j.msg;
	return j.status;
}

typedef struct commit_ctx {
	layout_writer *w;
	const char **newp, **oldp;
	size_t nnew, nold;
	char **listed; /* sorted names of one listing of the root, or NULL */
	size_t nlisted;
} commit_ctx;

typedef struct listing {
	char **names;
	size_t n, cap;
	int nomem;
} listing;

static int listing_add(const char *path, uint64_t size, void *arg)
{
	listing *l = arg;

	(void)size;
	if (!layout_is_data_name(path))
		return 0;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		char **nn = realloc(l->names, ncap * sizeof(*nn));
		if (nn == NULL) {
			l->nomem = 1;
			return 1;
		}
		l->names = nn;
		l->cap = ncap;
	}
	if ((l->names[l->n] = dcp_strdup(path)) == NULL) {
		l->nomem = 1;
		return 1;
	}
	l->n++;
	return 0;
}

static void listing_free(listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

/* One listing of the root instead of one existence check per object (on S3,
 * one ListObjectsV2 page per 1,000 objects instead of a HEAD each). An
 * object missing from the listing is still checked on its own, so a store
 * whose listings lag behind its writes costs requests, never a false
 * "missing". Leaves l empty when the listing fails: every object is then
 * checked on its own. */
static void list_root(dcp_backend *b, listing *l)
{
	dcp_msg m = {{0}};

	memset(l, 0, sizeof(*l));
	if (b->ops->list(b, "", listing_add, l, &m) != DCP_OK || l->nomem) {
		listing_free(l);
		return;
	}
	qsort(l->names, l->n, sizeof(l->names[0]), cmp_str);
}

/* Object i of the new metadata exists; else the reason it cannot commit. */
static int check_new_object(void *arg, size_t i, dcp_msg *msg)
{
	commit_ctx *c = arg;
	dcp_backend *b = c->w->backend;
	char where[1024];
	int rc;

	if (!data_path_ok(c->newp[i])) {
		dcp_msgf(msg,
		         "the metadata to commit at %s names '%s', which is not a valid data object "
		         "path; nothing was committed",
		         c->w->location, c->newp[i]);
		return DCP_EMETADATA;
	}
	if (c->listed != NULL && layout_paths_contain((const char *const *)c->listed, c->nlisted, c->newp[i]))
		return 0; /* in the listing: no request of its own */
	rc = b->ops->exists(b, c->newp[i], msg);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		dcp_msgf(msg,
		         "data object %s named by the new metadata is missing; the checkpoint at %s "
		         "was "
		         "not committed",
		         b->ops->describe(b, c->newp[i], where, sizeof(where)), c->w->location);
		return DCP_EIO;
	}
	return 0;
}

/* Removes object i of the old metadata unless the new one uses it. Errors
 * are dropped: the commit is done. */
static int remove_old_object(void *arg, size_t i, dcp_msg *msg)
{
	commit_ctx *c = arg;
	dcp_backend *b = c->w->backend;

	/* Only names this layout gives its data objects are ever deleted, so
	 * crafted metadata cannot make a commit remove anything else. */
	if (layout_is_data_name(c->oldp[i]) && !layout_paths_contain(c->newp, c->nnew, c->oldp[i]))
		(void)b->ops->remove(b, c->oldp[i], msg);
	return 0;
}

/* The old objects that the new metadata does not use, removed in batches
 * where the backend can (remove_many). 1 if done that way, 0 if the caller
 * removes them one by one. */
static int remove_old_batched(commit_ctx *c)
{
	dcp_backend *b = c->w->backend;
	const char **gone;
	size_t n = 0, i;
	dcp_msg m = {{0}};

	if (b->ops->version < 3 || b->ops->remove_many == NULL || c->nold == 0)
		return 0;
	gone = malloc(c->nold * sizeof(*gone));
	if (gone == NULL)
		return 0;
	for (i = 0; i < c->nold; i++)
		if (layout_is_data_name(c->oldp[i]) && !layout_paths_contain(c->newp, c->nnew, c->oldp[i]))
			gone[n++] = c->oldp[i];
	if (n > 0)
		(void)b->ops->remove_many(b, gone, n, &m); /* the commit is done: errors are dropped */
	free(gone);
	return 1;
}

int layout_writer_finish(dcp_storage_writer *sw, const dcp_metadata *md, dcp_msg *msg)
{
	layout_writer *w = (layout_writer *)sw;
	dcp_backend *b = w->backend;
	const char **newp = NULL, **oldp = NULL;
	size_t nnew = 0, nold = 0;
	dcp_metadata *old = NULL;
	char *json = NULL;
	size_t len = 0;
	int rc, found = 0;
	dcp_msg m;
	commit_ctx ctx;
	listing listed;

	if (md == NULL) {
		dcp_msgf(msg, "finish at %s: no metadata to commit", w->location);
		return DCP_EINVAL;
	}
	rc = layout_md_paths(md, &newp, &nnew, msg);
	if (rc != DCP_OK)
		return rc;
	/* Every object the new metadata names must be there before it is. */
	ctx.w = w;
	ctx.newp = newp;
	ctx.nnew = nnew;
	ctx.oldp = NULL;
	ctx.nold = 0;
	list_root(b, &listed);
	ctx.listed = listed.names;
	ctx.nlisted = listed.n;
	rc = run_each(nnew, w->options.threads, check_new_object, &ctx, msg);
	listing_free(&listed);
	ctx.listed = NULL;
	ctx.nlisted = 0;
	if (rc != DCP_OK)
		goto out;

	/* The checkpoint being replaced, if any: its objects are removed after
	 * the commit. One whose metadata does not decode is replaced too (with
	 * overwrite), but its objects cannot be known and stay. */
	rc = layout_read_metadata(b, w->host, w->location, &old, &found, &m);
	if (rc != DCP_OK && rc != DCP_ENOTFOUND && !found) {
		dcp_msgf(msg, "cannot read the current metadata at %s before committing: %s", w->location,
		         m.text);
		goto out;
	}
	if (found && !w->overwrite) {
		dcp_msgf(msg, "checkpoint already exists at %s: remove it or save with overwrite",
		         w->location);
		rc = DCP_EEXISTS;
		goto out;
	}
	if (old != NULL) {
		rc = layout_md_paths(old, &oldp, &nold, msg);
		if (rc != DCP_OK)
			goto out;
	}

	m.text[0] = '\0';
	rc = w->host->metadata_encode(md, &json, &len, &m);
	if (rc != DCP_OK) {
		dcp_msgf(msg, "cannot encode the metadata for %s: %s", w->location, m.text);
		goto out;
	}
	/* No checkpoint here yet: create the metadata only if it is still
	 * absent, so that of two saves racing to create the checkpoint exactly
	 * one commits (where the store can tell; see put_if_absent). */
	if (!found && b->ops->version >= 2 && b->ops->put_if_absent != NULL)
		rc = b->ops->put_if_absent(b, DCP_LAYOUT_METADATA, json, len, msg);
	else
		rc = b->ops->put_atomic(b, DCP_LAYOUT_METADATA, json, len, msg);
	if (rc == DCP_EEXISTS)
		dcp_msgf(msg,
		         "another save committed a checkpoint at %s while this one was writing; nothing of "
		         "this save was committed: load the checkpoint there, or save again with overwrite",
		         w->location);
	if (rc != DCP_OK)
		goto out;
	w->committed = 1;

	/* Committed. The old save's objects that the new one does not use are
	 * garbage now; failing to remove one does not fail the save (it is
	 * done), so errors here are dropped. */
	ctx.oldp = oldp;
	ctx.nold = nold;
	if (!remove_old_batched(&ctx))
		(void)run_each(nold, w->options.threads, remove_old_object, &ctx, NULL);
	rc = DCP_OK;
out:
	free(json);
	free(newp);
	free(oldp);
	if (old != NULL)
		w->host->metadata_free(old);
	return rc;
}

/* Collects the names of data-looking objects (for a removal whose metadata
 * does not decode). */
typedef struct name_list {
	char **names;
	size_t n, cap;
	int nomem;
} name_list;

static int collect_data_name(const char *path, uint64_t size, void *arg)
{
	name_list *l = arg;

	(void)size;
	if (!layout_is_data_name(path))
		return 0;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		char **nn = realloc(l->names, ncap * sizeof(*nn));
		if (nn == NULL) {
			l->nomem = 1;
			return 1;
		}
		l->names = nn;
		l->cap = ncap;
	}
	l->names[l->n] = dcp_strdup(path);
	if (l->names[l->n] == NULL) {
		l->nomem = 1;
		return 1;
	}
	l->n++;
	return 0;
}

int dcp_layout_remove(dcp_backend *backend, const dcp_host *host, const char *location, dcp_msg *msg)
{
	dcp_backend *b = backend;
	dcp_metadata *md = NULL;
	const char **paths = NULL;
	size_t npaths = 0, i;
	name_list l = {NULL, 0, 0, 0};
	int rc, found = 0, first = DCP_OK;
	dcp_msg m;

	rc = layout_read_metadata(b, host, location, &md, &found, msg);
	if (rc != DCP_OK && !found)
		return rc; /* DCP_ENOTFOUND: "no checkpoint at ..." */
	if (md != NULL) {
		rc = layout_md_paths(md, &paths, &npaths, msg);
		if (rc != DCP_OK) {
			host->metadata_free(md);
			return rc;
		}
	} else {
		/* Undecodable metadata: find this layout's data objects by name
		 * before the metadata goes. */
		rc = b->ops->list(b, "", collect_data_name, &l, msg);
		if (l.nomem) {
			dcp_msgf(msg, "out of memory listing the objects at %s", location);
			rc = DCP_ENOMEM;
		}
		if (rc != DCP_OK)
			goto out;
	}
	rc = b->ops->remove(b, DCP_LAYOUT_METADATA, msg);
	if (rc != DCP_OK)
		goto out;
	/* No checkpoint from here on; the objects are only garbage. Remove all
	 * that can be, and report the first failure. */
	for (i = 0; i < npaths; i++) {
		if (!layout_is_data_name(paths[i])) /* see remove_old_object */
			continue;
		rc = b->ops->remove(b, paths[i], &m);
		if (rc != DCP_OK && first == DCP_OK) {
			first = rc;
			if (msg != NULL)
				*msg = m;
		}
	}
	for (i = 0; i < l.n; i++) {
		rc = b->ops->remove(b, l.names[i], &m);
		if (rc != DCP_OK && first == DCP_OK) {
			first = rc;
			if (msg != NULL)
				*msg = m;
		}
	}
	rc = first;
out:
	for (i = 0; i < l.n; i++)
		free(l.names[i]);
	free(l.names);
	free(paths);
	if (md != NULL)
		host->metadata_free(md);
	return rc;
}
