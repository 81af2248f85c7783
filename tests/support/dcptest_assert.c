/*
 * Test support: assertions on the outcome of a run (main thread only).
 * See dcptest.h for the contracts.
 */
#include "dcptest.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Assertions                                                               */
/* ------------------------------------------------------------------------ */
char *dt_error_text(const dcp_error *err)
{
	char *t;
	if (err == NULL) {
		t = dt_xmalloc(32);
		strcpy(t, "(no error object)");
		return t;
	}
	t = dcp_error_format(err);
	if (t == NULL) {
		t = dt_xmalloc(40);
		strcpy(t, "(dcp_error_format returned NULL)");
	}
	return t;
}

int dt_error_mentions(const dcp_error *err, const char *needle)
{
	char *t = dt_error_text(err);
	int found = strstr(t, needle) != NULL;
	free(t);
	return found;
}

void dt_assert_ok(const dt_outcome *o, const char *what)
{
	cr_assert(o->n > 0, "%s: no rank ran", what);
	for (int r = 0; r < o->n; r++) {
		if (o->status[r] != DCP_OK) {
			char *t = dt_error_text(o->err[r]);
			cr_assert_fail("%s: rank %d returned %d (%s); its error object:\n%s", what, r,
			               o->status[r], dcp_strerror(o->status[r]), t);
		}
		cr_assert_null(o->err[r], "%s: rank %d succeeded but was given an error object", what, r);
		cr_assert(!o->bad[r], "%s: %s", what, o->why[r]);
	}
}

static int popcount64(uint64_t m)
{
	int n = 0;
	for (; m; m &= m - 1)
		n++;
	return n;
}

void dt_assert_failed(const dt_outcome *o, const dt_expect *e, const char *what)
{
	const dcp_error *e0;
	char *t0;
	int st;
	cr_assert(o->n > 0, "%s: no rank ran", what);
	st = o->status[0];
	for (int r = 0; r < o->n; r++) {
		cr_assert(!o->bad[r], "%s: %s", what, o->why[r]);
		cr_assert_neq(o->status[r], DCP_OK,
		              "%s: rank %d returned DCP_OK, expected a failure on every rank", what, r);
		cr_assert_eq(o->status[r], st, "%s: rank %d returned %d (%s) but rank 0 returned %d (%s)",
		             what, r, o->status[r], dcp_strerror(o->status[r]), st, dcp_strerror(st));
		cr_assert_not_null(o->err[r], "%s: rank %d failed with %d (%s) but got no error object", what,
		                   r, o->status[r], dcp_strerror(o->status[r]));
	}
	e0 = o->err[0];
	t0 = dt_error_text(e0);
	if (e->status != 0)
		cr_assert_eq(st, e->status, "%s: status %d (%s), expected %d (%s); error:\n%s", what, st,
		             dcp_strerror(st), e->status, dcp_strerror(e->status), t0);
	cr_assert_eq(
	        st, dcp_error_code(e0),
	        "%s: the ranks returned %d (%s) but dcp_error_code of their error is %d (%s); error:\n%s",
	        what, st, dcp_strerror(st), dcp_error_code(e0), dcp_strerror(dcp_error_code(e0)), t0);
	for (int r = 1; r < o->n; r++) {
		char *tr = dt_error_text(o->err[r]);
		cr_assert_str_eq(
		        tr, t0, "%s: rank %d's error differs from rank 0's:\n--- rank 0:\n%s--- rank %d:\n%s",
		        what, r, t0, r, tr);
		cr_assert_str_eq(dcp_error_step(o->err[r]), dcp_error_step(e0),
		                 "%s: rank %d's step '%s' != '%s'", what, r, dcp_error_step(o->err[r]),
		                 dcp_error_step(e0));
		free(tr);
	}
	cr_assert(dcp_error_count(e0) > 0, "%s: the error object has no entries", what);
	if (!e->any_ranks) {
		uint64_t seen = 0;
		cr_assert_eq(dcp_error_count(e0), (size_t)popcount64(e->ranks),
		             "%s: the error names %zu ranks, expected %d; error:\n%s", what,
		             dcp_error_count(e0), popcount64(e->ranks), t0);
		for (size_t i = 0; i < dcp_error_count(e0); i++) {
			int r = dcp_error_rank(e0, i);
			cr_assert(r >= 0 && r < 64 && (e->ranks & DT_RANK(r)),
			          "%s: the error names rank %d, which was not meant to fail; error:\n%s",
			          what, r, t0);
			cr_assert(!(seen & DT_RANK(r)), "%s: the error names rank %d twice; error:\n%s", what,
			          r, t0);
			seen |= DT_RANK(r);
			if (i > 0)
				cr_assert_lt(dcp_error_rank(e0, i - 1), r,
				             "%s: error entries are not ordered by rank; error:\n%s", what,
				             t0);
		}
		for (int r = 0; r < o->n; r++)
			cr_assert_eq(dcp_error_has_rank(e0, r), (e->ranks & DT_RANK(r)) != 0,
			             "%s: dcp_error_has_rank(%d) is %d; error:\n%s", what, r,
			             dcp_error_has_rank(e0, r), t0);
	}
	cr_assert_eq(dcp_error_code(e0), dcp_error_entry_code(e0, 0),
	             "%s: dcp_error_code %d is not the first entry's code %d; error:\n%s", what,
	             dcp_error_code(e0), dcp_error_entry_code(e0, 0), t0);
	if (e->step != NULL)
		cr_assert_str_eq(dcp_error_step(e0), e->step, "%s: step '%s', expected '%s'; error:\n%s",
		                 what, dcp_error_step(e0), e->step, t0);
	for (size_t i = 0; i < dcp_error_count(e0); i++) {
		const char *stage = dcp_error_stage(e0, i);
		const char *msg = dcp_error_message(e0, i);
		cr_assert_not_null(stage, "%s: entry %zu has a NULL stage", what, i);
		cr_assert_not_null(msg, "%s: entry %zu has a NULL message", what, i);
		cr_assert(msg[0] != '\0', "%s: entry %zu (rank %d) has an empty message; error:\n%s", what, i,
		          dcp_error_rank(e0, i), t0);
		if (e->stage != NULL)
			cr_assert(strstr(stage, e->stage) != NULL,
			          "%s: rank %d's stage is '%s', expected it to name '%s'; error:\n%s", what,
			          dcp_error_rank(e0, i), stage, e->stage, t0);
		if (e->entry_code != 0)
			cr_assert_eq(dcp_error_entry_code(e0, i), e->entry_code,
			             "%s: rank %d's code is %d (%s), expected %d (%s); error:\n%s", what,
			             dcp_error_rank(e0, i), dcp_error_entry_code(e0, i),
			             dcp_strerror(dcp_error_entry_code(e0, i)), e->entry_code,
			             dcp_strerror(e->entry_code), t0);
	}
	if (e->mention != NULL)
		cr_assert(strstr(t0, e->mention) != NULL, "%s: the error does not mention '%s':\n%s", what,
		          e->mention, t0);
	if (e->mention2 != NULL)
		cr_assert(strstr(t0, e->mention2) != NULL, "%s: the error does not mention '%s':\n%s", what,
		          e->mention2, t0);
	if (e->mention3 != NULL)
		cr_assert(strstr(t0, e->mention3) != NULL, "%s: the error does not mention '%s':\n%s", what,
		          e->mention3, t0);
	free(t0);
}
