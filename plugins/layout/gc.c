/*
 * Garbage collection at a checkpoint's location (dcp_layout_gc): what saves
 * that were killed left behind.
 *
 * Candidates: data objects (__*.distcp) that the committed metadata does not
 * name, temporary files of an interrupted atomic put (".<name>.tmp-*", the
 * file backend's), and unfinished multipart uploads of either. Each is
 * removed only when it is at least min_age_s old by the store's clock, so a
 * save in flight (whose objects are young and not yet named by any
 * metadata) is spared. The committed checkpoint's objects are never
 * candidates; a metadata object that does not decode stops everything,
 * since the objects it uses cannot be known.
 *
 * Threads: one caller; nothing shared.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "layout_internal.h"

typedef struct gc_ctx {
	dcp_backend *b;
	const char *const *named; /* the committed metadata's objects, sorted */
	size_t nnamed;
	const dcp_gc_options *opts;
	dcp_gc_report *report;
	int64_t now;
	int failed; /* the first removal that failed: its code and message */
	int rc;
	dcp_msg fail;
} gc_ctx;

/* A temporary file of put_atomic: ".<name>.tmp-<pid>-<n>" at the root. */
static int is_temp_name(const char *path)
{
	return path[0] == '.' && strchr(path, '/') == NULL && strstr(path, ".tmp-") != NULL;
}

static int is_candidate(const gc_ctx *c, const char *path)
{
	if (is_temp_name(path))
		return 1;
	return layout_is_data_name(path) && strchr(path, '/') == NULL &&
	       !layout_paths_contain(c->named, c->nnamed, path);
}

/* Old enough: min_age_s of 0 takes everything, unknown ages included. */
static int old_enough(const gc_ctx *c, int64_t t)
{
	if (c->opts->min_age_s <= 0)
		return 1;
	return t >= 0 && (double)(c->now - t) >= c->opts->min_age_s;
}

static int on_object(const char *path, uint64_t size, int64_t mtime, void *arg)
{
	gc_ctx *c = arg;
	dcp_msg m = {{0}};
	int rc;

	if (!is_candidate(c, path))
		return 0;
	if (!old_enough(c, mtime)) {
		c->report->objects_too_young++;
		return 0;
	}
	if (!c->opts->dry_run) {
		rc = c->b->ops->remove(c->b, path, &m);
		if (rc != DCP_OK) {
			if (!c->failed) {
				c->failed = 1;
				c->rc = rc;
				c->fail = m;
			}
			return 0; /* go on with the others */
		}
	}
	c->report->objects_removed++;
	c->report->bytes_removed += size;
	return 0;
}

static int on_object_nostat(const char *path, uint64_t size, void *arg)
{
	return on_object(path, size, -1, arg);
}

static int on_upload(const char *path, const char *upload_id, int64_t initiated, void *arg)
{
	gc_ctx *c = arg;
	dcp_msg m = {{0}};
	int rc;

	/* A .metadata is never sent as a multipart upload; anything else the
	 * layout writes under the root is a candidate while unfinished. */
	if (!is_temp_name(path) && !(layout_is_data_name(path) && strchr(path, '/') == NULL))
		return 0;
	if (!old_enough(c, initiated)) {
		c->report->uploads_too_young++;
		return 0;
	}
	if (!c->opts->dry_run) {
		rc = c->b->ops->abort_upload(c->b, path, upload_id, &m);
		if (rc != DCP_OK) {
			if (!c->failed) {
				c->failed = 1;
				c->rc = rc;
				c->fail = m;
			}
			return 0;
		}
	}
	c->report->uploads_aborted++;
	return 0;
}

int dcp_layout_gc(dcp_backend *b, const dcp_host *host, const char *location, const dcp_gc_options *opts,
                  dcp_gc_report *report, dcp_msg *msg)
{
	dcp_metadata *md = NULL;
	const char **named = NULL;
	size_t nnamed = 0;
	int found = 0, rc;
	dcp_msg m = {{0}};
	gc_ctx c;

	rc = layout_read_metadata(b, host, location, &md, &found, &m);
	if (rc != DCP_OK && rc != DCP_ENOTFOUND) {
		dcp_msgf(msg,
		         "gc at %s: the checkpoint's metadata cannot be read (%s), so the objects it uses "
		         "cannot be told from orphans: nothing was removed; repair or remove the checkpoint "
		         "(dcp rm) first",
		         location, m.text);
		return rc;
	}
	if (md != NULL) {
		rc = layout_md_paths(md, &named, &nnamed, msg);
		if (rc != DCP_OK) {
			host->metadata_free(md);
			return rc;
		}
	}
	memset(&c, 0, sizeof(c));
	c.b = b;
	c.named = named;
	c.nnamed = nnamed;
	c.opts = opts;
	c.report = report;
	c.now = (int64_t)time(NULL);
	if (b->ops->version >= 3 && b->ops->list_stat != NULL)
		rc = b->ops->list_stat(b, "", on_object, &c, msg);
	else
		rc = b->ops->list(b, "", on_object_nostat, &c, msg);
	if (rc == DCP_OK && b->ops->version >= 3 && b->ops->list_uploads != NULL &&
	    b->ops->abort_upload != NULL) {
		dcp_msg um = {{0}};
		rc = b->ops->list_uploads(b, "", on_upload, &c, &um);
		if (rc == DCP_EUNSUPPORTED) {
			report->uploads_unlisted = 1;
			rc = DCP_OK;
		} else if (rc != DCP_OK) {
			*msg = um;
		}
	}
	if (rc == DCP_OK && c.failed) {
		rc = c.rc;
		dcp_msgf(msg, "gc at %s: %llu removed, then a removal failed: %s", location,
		         (unsigned long long)(report->objects_removed + report->uploads_aborted),
		         c.fail.text);
	}
	free(named);
	if (md != NULL)
		host->metadata_free(md);
	return rc;
}
