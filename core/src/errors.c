/*
 * Status codes and error objects.
 *
 * An error object is built by one thread (see error_internal.h) and then only
 * read; reading functions accept NULL and out-of-range indexes and answer with
 * neutral values, so that printing an error never crashes.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcp/dcp.h"
#include "error_internal.h"

const char *dcp_strerror(int code)
{
	switch (code) {
	case DCP_OK:
		return "success";
	case DCP_ENOMEM:
		return "out of memory";
	case DCP_EINVAL:
		return "invalid argument";
	case DCP_EID:
		return "invalid or unsupported checkpoint id";
	case DCP_ENOPLUGIN:
		return "no plugin for the URL's scheme";
	case DCP_EPLUGIN:
		return "plugin could not be loaded or is malformed";
	case DCP_EIO:
		return "storage I/O failed";
	case DCP_EPLAN:
		return "invalid save or load plan";
	case DCP_EMETADATA:
		return "malformed checkpoint metadata";
	case DCP_ECORRUPT:
		return "stored data does not match its checksum or size";
	case DCP_ENOTFOUND:
		return "checkpoint or key not found";
	case DCP_EEXISTS:
		return "checkpoint already exists";
	case DCP_EMISMATCH:
		return "dtype, shape or size differs from the stored one";
	case DCP_ECOMM:
		return "collective operation failed";
	case DCP_EVERSION:
		return "unsupported format or ABI version";
	case DCP_EINJECTED:
		return "injected failure";
	case DCP_EUNSUPPORTED:
		return "operation not supported by the plugin";
	case DCP_EDIVERGED:
		return "replicated copies differ between ranks";
	case DCP_ETIMEOUT:
		return "timed out";
	case DCP_EPEER:
		return "another rank failed";
	}
	return "unknown error";
}

typedef struct dcp_error_entry {
	int rank;
	int code;
	char *stage;   /* owned, never NULL */
	char *message; /* owned, never NULL */
} dcp_error_entry;

struct dcp_error {
	char *step; /* owned, never NULL */
	size_t count;
	size_t cap;
	dcp_error_entry *entries; /* sorted by rank, ranks unique */
};

static char *copy_str(const char *s)
{
	size_t n;
	char *p;

	if (s == NULL)
		s = "";
	n = strlen(s) + 1;
	p = malloc(n);
	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

dcp_error *dcp_error_new(const char *step)
{
	dcp_error *err = calloc(1, sizeof(*err));

	if (err == NULL)
		return NULL;
	err->step = copy_str(step != NULL ? step : "local");
	if (err->step == NULL) {
		free(err);
		return NULL;
	}
	return err;
}

void dcp_error_free(dcp_error *err)
{
	size_t i;

	if (err == NULL)
		return;
	for (i = 0; i < err->count; i++) {
		free(err->entries[i].stage);
		free(err->entries[i].message);
	}
	free(err->entries);
	free(err->step);
	free(err);
}

/* Index of the first entry whose rank is >= rank. */
static size_t lower_bound(const dcp_error *err, int rank)
{
	size_t lo = 0, hi = err->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (err->entries[mid].rank < rank)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int dcp_error_add(dcp_error *err, int rank, const char *stage, int code, const char *message)
{
	char *st, *msg;
	size_t pos;

	if (err == NULL)
		return DCP_EINVAL;
	st = copy_str(stage);
	msg = copy_str(message);
	if (st == NULL || msg == NULL)
		goto nomem;

	pos = lower_bound(err, rank);
	if (pos < err->count && err->entries[pos].rank == rank) {
		free(err->entries[pos].stage);
		free(err->entries[pos].message);
	} else {
		if (err->count == err->cap) {
			size_t ncap = err->cap != 0 ? err->cap * 2 : 4;
			dcp_error_entry *ne;
			if (ncap > SIZE_MAX / sizeof(*ne))
				goto nomem;
			ne = realloc(err->entries, ncap * sizeof(*ne));
			if (ne == NULL)
				goto nomem;
			err->entries = ne;
			err->cap = ncap;
		}
		memmove(&err->entries[pos + 1], &err->entries[pos],
		        (err->count - pos) * sizeof(err->entries[0]));
		err->count++;
	}
	err->entries[pos].rank = rank;
	err->entries[pos].code = code;
	err->entries[pos].stage = st;
	err->entries[pos].message = msg;
	return DCP_OK;

nomem:
	free(st);
	free(msg);
	return DCP_ENOMEM;
}

dcp_error *dcp_error_local(int code, const char *stage, const char *fmt, ...)
{
	dcp_error *err;
	char *msg = NULL;
	va_list ap;
	int n;

	if (fmt == NULL)
		fmt = "";
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	msg = malloc((size_t)n + 1);
	if (msg == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	va_end(ap);

	err = dcp_error_new("local");
	if (err != NULL && dcp_error_add(err, -1, stage, code, msg) != DCP_OK) {
		dcp_error_free(err);
		err = NULL;
	}
	free(msg);
	return err;
}

void dcp_error_set(dcp_error **out, dcp_error *err)
{
	if (out != NULL)
		*out = err;
	else
		dcp_error_free(err);
}

const char *dcp_error_step(const dcp_error *err)
{
	return err != NULL ? err->step : "";
}

int dcp_error_code(const dcp_error *err)
{
	if (err == NULL || err->count == 0)
		return DCP_OK;
	return err->entries[0].code;
}

size_t dcp_error_count(const dcp_error *err)
{
	return err != NULL ? err->count : 0;
}

/* Out-of-range indexes give rank -1, code DCP_EINVAL and empty strings. */
int dcp_error_rank(const dcp_error *err, size_t i)
{
	if (err == NULL || i >= err->count)
		return -1;
	return err->entries[i].rank;
}

const char *dcp_error_stage(const dcp_error *err, size_t i)
{
	if (err == NULL || i >= err->count)
		return "";
	return err->entries[i].stage;
}

int dcp_error_entry_code(const dcp_error *err, size_t i)
{
	if (err == NULL || i >= err->count)
		return DCP_EINVAL;
	return err->entries[i].code;
}

const char *dcp_error_message(const dcp_error *err, size_t i)
{
	if (err == NULL || i >= err->count)
		return "";
	return err->entries[i].message;
}

int dcp_error_has_rank(const dcp_error *err, int rank)
{
	size_t pos;

	if (err == NULL)
		return 0;
	pos = lower_bound(err, rank);
	return pos < err->count && err->entries[pos].rank == rank;
}

/*
 * One line per entry: "rank R: STAGE: message\n"; "rank R: " is left out for
 * rank -1 and "STAGE: " for an empty stage. An error with no entries gives "".
 */
char *dcp_error_format(const dcp_error *err)
{
	char rankbuf[32];
	size_t total = 1, i, pos = 0;
	char *out;

	if (err == NULL)
		return NULL;
	for (i = 0; i < err->count; i++) {
		const dcp_error_entry *e = &err->entries[i];
		size_t line = sizeof(rankbuf) + strlen(e->stage) + 2 + strlen(e->message) + 1;
		if (line > SIZE_MAX - total)
			return NULL;
		total += line;
	}
	out = malloc(total);
	if (out == NULL)
		return NULL;
	out[0] = '\0';
	for (i = 0; i < err->count; i++) {
		const dcp_error_entry *e = &err->entries[i];
		size_t n;

		rankbuf[0] = '\0';
		if (e->rank != -1)
			snprintf(rankbuf, sizeof(rankbuf), "rank %d: ", e->rank);
		n = strlen(rankbuf);
		memcpy(out + pos, rankbuf, n);
		pos += n;
		if (e->stage[0] != '\0') {
			n = strlen(e->stage);
			memcpy(out + pos, e->stage, n);
			pos += n;
			memcpy(out + pos, ": ", 2);
			pos += 2;
		}
		n = strlen(e->message);
		memcpy(out + pos, e->message, n);
		pos += n;
		out[pos++] = '\n';
	}
	out[pos] = '\0';
	return out;
}
