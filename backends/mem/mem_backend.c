/*
 * The in-process object store (see mem_backend.h).
 *
 * Layout: a sorted array of (key, object) under one mutex; keys are
 * "namespace/path". An object is a list of segments, so that appending never
 * moves bytes already written (each byte is copied once, from the caller's
 * buffer into the store). Objects are reference counted: the store's entry
 * holds one reference, and a read holds one while it copies, outside the
 * lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mem/mem_backend.h"
#include "url.h"

#define SEG_MIN ((uint64_t)64 << 10)
#define SEG_MAX ((uint64_t)64 << 20)

typedef struct mem_seg {
	uint64_t off; /* of the segment's first byte in the object */
	uint64_t len; /* bytes used */
	uint64_t cap; /* bytes allocated */
	char *data;
} mem_seg;

typedef struct mem_obj {
	atomic_long refs;
	uint64_t size;
	size_t nseg, capseg;
	mem_seg *segs; /* by offset, contiguous */
} mem_obj;

typedef struct mem_entry {
	char *key; /* owned */
	mem_obj *obj;
} mem_entry;

struct dcp_mem_store {
	atomic_long refs;
	pthread_mutex_t lock; /* guards entries, n, cap, bytes */
	mem_entry *entries;   /* sorted by key (strcmp) */
	size_t n, cap;
	uint64_t bytes;
};

typedef struct mem_backend {
	dcp_backend base;
	dcp_mem_store *store; /* a reference */
	char *ns;             /* "NAME/" */
	size_t nslen;
} mem_backend;

typedef struct mem_writer {
	dcp_backend_writer base;
	char *key;    /* store key */
	mem_obj *obj; /* private until published */
} mem_writer;

/* ------------------------------------------------------------------------ */
/* Objects                                                                  */
/* ------------------------------------------------------------------------ */
static mem_obj *obj_new(void)
{
	mem_obj *o = calloc(1, sizeof(*o));

	if (o != NULL)
		atomic_init(&o->refs, 1);
	return o;
}

static void obj_unref(mem_obj *o)
{
	size_t i;

	if (o == NULL || atomic_fetch_sub(&o->refs, 1) != 1)
		return;
	for (i = 0; i < o->nseg; i++)
		free(o->segs[i].data);
	free(o->segs);
	free(o);
}

/* Appends len bytes; DCP_ENOMEM leaves the object as it was before. */
static int obj_append(mem_obj *o, const void *data, uint64_t len)
{
	const char *p = data;
	mem_seg *last = o->nseg > 0 ? &o->segs[o->nseg - 1] : NULL;
	uint64_t room = last != NULL ? last->cap - last->len : 0, take, cap, rest;

	if (len > UINT64_MAX - o->size || len > SIZE_MAX)
		return DCP_ENOMEM;
	take = room < len ? room : len;
	rest = len - take;
	if (rest > 0) {
		/* Grow geometrically (bounded) without moving what is there. */
		cap = o->size < SEG_MIN ? SEG_MIN : (o->size > SEG_MAX ? SEG_MAX : o->size);
		if (cap < rest)
			cap = rest;
		if (o->nseg == o->capseg) {
			size_t nc = o->capseg ? o->capseg * 2 : 4;
			mem_seg *ns = realloc(o->segs, nc * sizeof(*ns));
			if (ns == NULL)
				return DCP_ENOMEM;
			o->segs = ns;
			o->capseg = nc;
			last = o->nseg > 0 ? &o->segs[o->nseg - 1] : NULL;
		}
		o->segs[o->nseg].data = malloc((size_t)cap);
		if (o->segs[o->nseg].data == NULL)
			return DCP_ENOMEM;
		o->segs[o->nseg].off = o->size + take;
		o->segs[o->nseg].len = 0;
		o->segs[o->nseg].cap = cap;
	}
	if (take > 0) {
		memcpy(last->data + last->len, p, (size_t)take);
		last->len += take;
	}
	if (rest > 0) {
		memcpy(o->segs[o->nseg].data, p + take, (size_t)rest);
		o->segs[o->nseg].len = rest;
		o->nseg++;
	}
	o->size += len;
	return DCP_OK;
}

/* Copies [off, off+len) (within size) into dst. */
static void obj_copy(const mem_obj *o, uint64_t off, uint64_t len, char *dst)
{
	size_t lo = 0, hi = o->nseg;

	/* The last segment whose start is <= off. */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (o->segs[mid].off <= off)
			lo = mid;
		else
			hi = mid;
	}
	while (len > 0) {
		const mem_seg *s = &o->segs[lo++];
		uint64_t in = off - s->off, n = s->len - in < len ? s->len - in : len;
		memcpy(dst, s->data + in, (size_t)n);
		dst += n;
		off += n;
		len -= n;
	}
}

/* ------------------------------------------------------------------------ */
/* The store                                                                */
/* ------------------------------------------------------------------------ */
dcp_mem_store *dcp_mem_store_new(void)
{
	dcp_mem_store *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	return s;
}

void dcp_mem_store_release(dcp_mem_store *s)
{
	size_t i;

	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (i = 0; i < s->n; i++) {
		free(s->entries[i].key);
		obj_unref(s->entries[i].obj);
	}
	free(s->entries);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

uint64_t dcp_mem_store_bytes(dcp_mem_store *s)
{
	uint64_t b;

	pthread_mutex_lock(&s->lock);
	b = s->bytes;
	pthread_mutex_unlock(&s->lock);
	return b;
}

/* Index of key, or of where it would go (*found says which). Locked. */
static size_t store_find(const dcp_mem_store *s, const char *key, int *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->entries[mid].key, key);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

/* Inserts (key, obj) at i, taking both. Locked. DCP_ENOMEM leaves all as is. */
static int store_insert(dcp_mem_store *s, size_t i, char *key, mem_obj *obj)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		mem_entry *ne = realloc(s->entries, nc * sizeof(*ne));
		if (ne == NULL)
			return DCP_ENOMEM;
		s->entries = ne;
		s->cap = nc;
	}
	memmove(&s->entries[i + 1], &s->entries[i], (s->n - i) * sizeof(*s->entries));
	s->entries[i].key = key;
	s->entries[i].obj = obj;
	s->n++;
	s->bytes += obj->size;
	return DCP_OK;
}

/* Takes a reference to the object at key, or NULL. */
static mem_obj *store_get(dcp_mem_store *s, const char *key)
{
	mem_obj *o = NULL;
	int found;
	size_t i;

	pthread_mutex_lock(&s->lock);
	i = store_find(s, key, &found);
	if (found) {
		o = s->entries[i].obj;
		atomic_fetch_add(&o->refs, 1);
	}
	pthread_mutex_unlock(&s->lock);
	return o;
}

/* ------------------------------------------------------------------------ */
/* Backend slots                                                            */
/* ------------------------------------------------------------------------ */
static char *make_key(const mem_backend *b, const char *path)
{
	return dcp_asprintf("%s%s", b->ns, path);
}

static const char *mem_describe(dcp_backend *base, const char *path, char *buf, size_t buflen)
{
	const mem_backend *b = (const mem_backend *)base;

	if (buflen == 0)
		return buf;
	snprintf(buf, buflen, "mem://%s%s", b->ns, path);
	return buf;
}

static int nomem(dcp_backend *base, const char *what, const char *path, dcp_msg *msg)
{
	char where[512];

	dcp_msgf(msg, "out of memory %s %s", what, mem_describe(base, path, where, sizeof(where)));
	return DCP_ENOMEM;
}

static int exists_error(dcp_backend *base, const char *path, dcp_msg *msg)
{
	char where[512];

	dcp_msgf(msg, "%s already exists: another writer created it first",
	         mem_describe(base, path, where, sizeof(where)));
	return DCP_EEXISTS;
}

static int mem_writer_open(dcp_backend *base, const char *path, dcp_backend_writer **out, dcp_msg *msg)
{
	mem_backend *b = (mem_backend *)base;
	mem_writer *w;
	mem_obj *existing;
	char where[512];

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return nomem(base, "opening", path, msg);
	w->base.backend = base;
	w->key = make_key(b, path);
	w->obj = obj_new();
	if (w->key == NULL || w->obj == NULL) {
		free(w->key);
		obj_unref(w->obj);
		free(w);
		return nomem(base, "opening", path, msg);
	}
	existing = store_get(b->store, w->key);
	if (existing != NULL) {
		obj_unref(existing);
		free(w->key);
		obj_unref(w->obj);
		free(w);
		dcp_msgf(msg, "object %s already exists: a new object is never written over another",
		         mem_describe(base, path, where, sizeof(where)));
		return DCP_EIO;
	}
	*out = &w->base;
	return DCP_OK;
}

static int mem_writer_append(dcp_backend_writer *bw, const void *data, uint64_t len, dcp_msg *msg)
{
	mem_writer *w = (mem_writer *)bw;

	if (len == 0)
		return DCP_OK;
	if (obj_append(w->obj, data, len) != DCP_OK) {
		dcp_msgf(msg, "out of memory appending %llu bytes to mem://%s (now %llu bytes)",
		         (unsigned long long)len, w->key, (unsigned long long)w->obj->size);
		return DCP_ENOMEM;
	}
	return DCP_OK;
}

static void mem_writer_abort(dcp_backend_writer *bw)
{
	mem_writer *w = (mem_writer *)bw;

	obj_unref(w->obj);
	free(w->key);
	free(w);
}

static int mem_writer_close(dcp_backend_writer *bw, dcp_msg *msg)
{
	mem_writer *w = (mem_writer *)bw;
	dcp_mem_store *s = ((mem_backend *)bw->backend)->store;
	int found, rc;
	size_t i;

	pthread_mutex_lock(&s->lock);
	i = store_find(s, w->key, &found);
	if (found) {
		rc = DCP_EIO;
		dcp_msgf(msg, "object mem://%s appeared while it was being written; the new one was dropped",
		         w->key);
	} else {
		rc = store_insert(s, i, w->key, w->obj);
		if (rc != DCP_OK)
			dcp_msgf(msg, "out of memory publishing mem://%s", w->key);
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == DCP_OK) {
		free(w); /* key and object now belong to the store */
		return DCP_OK;
	}
	mem_writer_abort(bw);
	return rc;
}

static int mem_read(dcp_backend *base, const char *path, uint64_t offset, uint64_t len, void *dst,
                    dcp_msg *msg)
{
	mem_backend *b = (mem_backend *)base;
	char *key = make_key(b, path);
	char where[512];
	mem_obj *o;

	if (key == NULL)
		return nomem(base, "reading", path, msg);
	o = store_get(b->store, key);
	free(key);
	if (o == NULL) {
		dcp_msgf(msg, "object %s does not exist", mem_describe(base, path, where, sizeof(where)));
		return DCP_ENOTFOUND;
	}
	if (offset > o->size || len > o->size - offset) {
		dcp_msgf(
		        msg,
		        "object %s is %llu bytes, expected at least %llu (reading %llu bytes at offset %llu)",
		        mem_describe(base, path, where, sizeof(where)), (unsigned long long)o->size,
		        (unsigned long long)(offset + len), (unsigned long long)len,
		        (unsigned long long)offset);
		obj_unref(o);
		return DCP_ECORRUPT;
	}
	obj_copy(o, offset, len, dst);
	obj_unref(o);
	return DCP_OK;
}

static int mem_get(dcp_backend *base, const char *path, void **data, uint64_t *len, dcp_msg *msg)
{
	mem_backend *b = (mem_backend *)base;
	char *key = make_key(b, path), *buf;
	char where[512];
	mem_obj *o;

	*data = NULL;
	*len = 0;
	if (key == NULL)
		return nomem(base, "reading", path, msg);
	o = store_get(b->store, key);
	free(key);
	if (o == NULL) {
		dcp_msgf(msg, "object %s does not exist", mem_describe(base, path, where, sizeof(where)));
		return DCP_ENOTFOUND;
	}
	buf = o->size < SIZE_MAX ? malloc((size_t)o->size + 1) : NULL;
	if (buf == NULL) {
		obj_unref(o);
		return nomem(base, "reading", path, msg);
	}
	obj_copy(o, 0, o->size, buf);
	buf[o->size] = '\0';
	*data = buf;
	*len = o->size;
	obj_unref(o);
	return DCP_OK;
}

static int mem_put(dcp_backend *base, const char *path, const void *data, uint64_t len, int create_only,
                   dcp_msg *msg)
{
	mem_backend *b = (mem_backend *)base;
	dcp_mem_store *s = b->store;
	char *key = make_key(b, path);
	mem_obj *o = obj_new(), *old = NULL;
	size_t i;
	int found, rc = DCP_OK;

	if (key == NULL || o == NULL || obj_append(o, data, len) != DCP_OK) {
		free(key);
		obj_unref(o);
		return nomem(base, "writing", path, msg);
	}
	pthread_mutex_lock(&s->lock);
	i = store_find(s, key, &found);
	if (found && create_only) {
		pthread_mutex_unlock(&s->lock);
		free(key);
		obj_unref(o);
		return exists_error(base, path, msg);
	}
	if (found) {
		/* The swap: readers see the old object or the new one. */
		old = s->entries[i].obj;
		s->entries[i].obj = o;
		s->bytes = s->bytes - old->size + o->size;
		free(key);
	} else {
		rc = store_insert(s, i, key, o);
	}
	pthread_mutex_unlock(&s->lock);
	obj_unref(old);
	if (rc != DCP_OK) {
		free(key);
		obj_unref(o);
		return nomem(base, "writing", path, msg);
	}
	return DCP_OK;
}

static int mem_put_atomic(dcp_backend *base, const char *path, const void *data, uint64_t len, dcp_msg *msg)
{
	return mem_put(base, path, data, len, 0, msg);
}

static int mem_put_if_absent(dcp_backend *base, const char *path, const void *data, uint64_t len,
                             dcp_msg *msg)
{
	return mem_put(base, path, data, len, 1, msg);
}

static int mem_remove(dcp_backend *base, const char *path, dcp_msg *msg)
{
	mem_backend *b = (mem_backend *)base;
	dcp_mem_store *s = b->store;
	char *key = make_key(b, path), *oldkey = NULL;
	mem_obj *old = NULL;
	size_t i;
	int found;

	if (key == NULL)
		return nomem(base, "removing", path, msg);
	pthread_mutex_lock(&s->lock);
	i = store_find(s, key, &found);
	if (found) {
		oldkey = s->entries[i].key;
		old = s->entries[i].obj;
		s->bytes -= old->size;
		memmove(&s->entries[i], &s->entries[i + 1], (s->n - i - 1) * sizeof(*s->entries));
		s->n--;
	}
	pthread_mutex_unlock(&s->lock);
	free(key);
	free(oldkey);
	obj_unref(old);
	return DCP_OK;
}

typedef struct listed {
	char *path;
	uint64_t size;
} listed;

static int mem_list(dcp_backend *base, const char *prefix,
                    int (*fn)(const char *path, uint64_t size, void *arg), void *arg, dcp_msg *msg)
{
	mem_backend *b = (mem_backend *)base;
	dcp_mem_store *s = b->store;
	char *start = make_key(b, prefix != NULL ? prefix : "");
	listed *l = NULL;
	size_t i, n = 0, cnt, slen;
	int found, rc = DCP_OK;

	if (start == NULL)
		return nomem(base, "listing", prefix, msg);
	slen = strlen(start);
	/* Copy the matching names under the lock, call fn without it, so that
	 * fn may use this backend. */
	pthread_mutex_lock(&s->lock);
	i = store_find(s, start, &found);
	for (cnt = i; cnt < s->n && strncmp(s->entries[cnt].key, start, slen) == 0; cnt++)
		;
	cnt -= i;
	if (cnt > 0) {
		l = calloc(cnt, sizeof(*l));
		for (n = 0; l != NULL && n < cnt; n++) {
			l[n].path = dcp_strdup(s->entries[i + n].key + b->nslen);
			l[n].size = s->entries[i + n].obj->size;
			if (l[n].path == NULL)
				break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (cnt > 0 && (l == NULL || n < cnt))
		rc = nomem(base, "listing", prefix, msg);
	for (i = 0; rc == DCP_OK && i < n; i++)
		rc = fn(l[i].path, l[i].size, arg);
	for (i = 0; i < n && l != NULL; i++)
		free(l[i].path);
	free(l);
	free(start);
	return rc;
}

static int mem_exists(dcp_backend *base, const char *path, dcp_msg *msg)
{
	mem_backend *b = (mem_backend *)base;
	char *key = make_key(b, path);
	mem_obj *o;
	int found;

	if (key == NULL)
		return nomem(base, "looking up", path, msg);
	o = store_get(b->store, key);
	free(key);
	found = o != NULL;
	obj_unref(o);
	return found;
}

static void mem_destroy(dcp_backend *base)
{
	mem_backend *b = (mem_backend *)base;

	dcp_mem_store_release(b->store);
	free(b->ns);
	free(b);
}

static const dcp_backend_ops mem_ops = {
        .version = DCP_BACKEND_VERSION,
        .writer_open = mem_writer_open,
        .writer_append = mem_writer_append,
        .writer_close = mem_writer_close,
        .writer_abort = mem_writer_abort,
        .read = mem_read,
        .get = mem_get,
        .put_atomic = mem_put_atomic,
        .put_if_absent = mem_put_if_absent,
        .remove = mem_remove,
        .list = mem_list,
        .exists = mem_exists,
        .describe = mem_describe,
        .destroy = mem_destroy,
};

int dcp_mem_backend_open(dcp_mem_store *store, const char *ns, dcp_backend **out, dcp_msg *msg)
{
	mem_backend *b;

	*out = NULL;
	if (store == NULL || ns == NULL || ns[0] == '\0') {
		dcp_msgf(msg, "dcp_mem_backend_open: a store and a non-empty namespace are required");
		return DCP_EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL || (b->ns = dcp_asprintf("%s/", ns)) == NULL) {
		free(b);
		dcp_msgf(msg, "out of memory opening mem://%s", ns);
		return DCP_ENOMEM;
	}
	b->nslen = strlen(b->ns);
	b->base.ops = &mem_ops;
	b->base.capabilities = DCP_CAP_ATOMIC_COMMIT | DCP_CAP_RANGED_READ | DCP_CAP_PROCESS_LOCAL;
	b->store = store;
	atomic_fetch_add(&store->refs, 1);
	*out = &b->base;
	return DCP_OK;
}
