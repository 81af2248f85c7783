/*
 * Commit, existence and removal of a checkpoint: everything that touches
 * .metadata.
 *
 * The invariant kept here: a .metadata that is visible names only objects
 * that exist. So a commit checks the new save's objects before it replaces
 * .metadata, and removes the old save's objects only after; a removal takes
 * .metadata away first.
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

int layout_writer_finish(dcp_storage_writer *sw, const dcp_metadata *md, dcp_msg *msg)
{
	layout_writer *w = (layout_writer *)sw;
	dcp_backend *b = w->backend;
	const char **newp = NULL, **oldp = NULL;
	size_t nnew = 0, nold = 0, i;
	dcp_metadata *old = NULL;
	char *json = NULL;
	size_t len = 0;
	int rc, found = 0;
	dcp_msg m;
	char where[1024];

	if (md == NULL) {
		dcp_msgf(msg, "finish at %s: no metadata to commit", w->location);
		return DCP_EINVAL;
	}
	rc = layout_md_paths(md, &newp, &nnew, msg);
	if (rc != DCP_OK)
		return rc;
	/* Every object the new metadata names must be there before it is. */
	for (i = 0; i < nnew; i++) {
		if (!data_path_ok(newp[i])) {
			dcp_msgf(msg,
			         "the metadata to commit at %s names '%s', which is not a valid data object "
			         "path; nothing was committed",
			         w->location, newp[i]);
			rc = DCP_EMETADATA;
			goto out;
		}
		rc = b->ops->exists(b, newp[i], msg);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			dcp_msgf(msg,
			         "data object %s named by the new metadata is missing; the checkpoint at %s "
			         "was "
			         "not committed",
			         b->ops->describe(b, newp[i], where, sizeof(where)), w->location);
			rc = DCP_EIO;
			goto out;
		}
	}

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
	rc = b->ops->put_atomic(b, DCP_LAYOUT_METADATA, json, len, msg);
	if (rc != DCP_OK)
		goto out;
	w->committed = 1;

	/* Committed. The old save's objects that the new one does not use are
	 * garbage now; failing to remove one does not fail the save (it is
	 * done), so errors here are dropped. */
	for (i = 0; i < nold; i++)
		if (data_path_ok(oldp[i]) && !layout_paths_contain(newp, nnew, oldp[i]))
			(void)b->ops->remove(b, oldp[i], &m);
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
		if (!data_path_ok(paths[i]))
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
