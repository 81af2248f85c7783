/*
 * Status codes and error objects: dcp_strerror, the dcp_error accessors and
 * format, and the internal builders of error_internal.h (this test needs the
 * core's internal symbols: link it with the static library or the objects).
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/src/error_internal.h"
#include "dcp/dcp.h"

#include "failmalloc.h"

/* ------------------------------------------------------------------------ */

static const int all_codes[] = {
        DCP_OK,       DCP_ENOMEM,    DCP_EINVAL,       DCP_EID,       DCP_ENOPLUGIN, DCP_EPLUGIN,   DCP_EIO,
        DCP_EPLAN,    DCP_EMETADATA, DCP_ECORRUPT,     DCP_ENOTFOUND, DCP_EEXISTS,   DCP_EMISMATCH, DCP_ECOMM,
        DCP_EVERSION, DCP_EINJECTED, DCP_EUNSUPPORTED, DCP_EDIVERGED, DCP_ETIMEOUT,  DCP_EPEER,
};
#define NCODES (sizeof(all_codes) / sizeof(all_codes[0]))

Test(strerror, every_code_has_its_own_text)
{
	size_t i, j;

	/* The list above is complete: codes are 0, -1, ..., -(NCODES - 1). */
	for (i = 0; i < NCODES; i++)
		cr_assert_eq(all_codes[i], -(int)i);
	for (i = 0; i < NCODES; i++) {
		const char *s = dcp_strerror(all_codes[i]);
		cr_assert_not_null(s);
		cr_assert_gt(strlen(s), 0);
		cr_assert_str_neq(s, "unknown error", "code %d has no text", all_codes[i]);
		for (j = 0; j < i; j++)
			cr_assert_str_neq(s, dcp_strerror(all_codes[j]), "codes %d and %d share a text",
			                  all_codes[i], all_codes[j]);
	}
}

Test(strerror, texts_say_what_failed)
{
	cr_assert_str_eq(dcp_strerror(DCP_OK), "success");
	cr_assert_str_eq(dcp_strerror(DCP_ENOMEM), "out of memory");
	cr_assert_not_null(strstr(dcp_strerror(DCP_ECORRUPT), "checksum"));
	cr_assert_not_null(strstr(dcp_strerror(DCP_EDIVERGED), "differ"));
}

Test(strerror, unknown_codes)
{
	const int unknown[] = {1, 2, -(int)NCODES, -100, INT_MIN, INT_MAX};
	size_t i;

	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		cr_assert_str_eq(dcp_strerror(unknown[i]), "unknown error", "code %d", unknown[i]);
}

Test(error, new_is_empty)
{
	dcp_error *err = dcp_error_new("write");
	char *text;

	cr_assert_not_null(err);
	cr_assert_str_eq(dcp_error_step(err), "write");
	cr_assert_eq(dcp_error_count(err), 0);
	cr_assert_eq(dcp_error_code(err), DCP_OK);
	cr_assert_eq(dcp_error_has_rank(err, 0), 0);
	text = dcp_error_format(err);
	cr_assert_str_eq(text, "");
	free(text);
	dcp_error_free(err);

	err = dcp_error_new(NULL);
	cr_assert_not_null(err);
	cr_assert_str_eq(dcp_error_step(err), "local");
	dcp_error_free(err);
}

Test(error, entries_are_sorted_by_rank)
{
	static const int ranks[] = {5, 2, 9, -1, 0, 7};
	static const int sorted[] = {-1, 0, 2, 5, 7, 9};
	dcp_error *err = dcp_error_new("plan");
	char stage[32], msg[64];
	size_t i;

	cr_assert_not_null(err);
	for (i = 0; i < 6; i++) {
		snprintf(stage, sizeof(stage), "stage%d", ranks[i]);
		snprintf(msg, sizeof(msg), "message of rank %d", ranks[i]);
		cr_assert_eq(dcp_error_add(err, ranks[i], stage, -100 - ranks[i], msg), DCP_OK);
	}
	cr_assert_eq(dcp_error_count(err), 6);
	for (i = 0; i < 6; i++) {
		snprintf(stage, sizeof(stage), "stage%d", sorted[i]);
		snprintf(msg, sizeof(msg), "message of rank %d", sorted[i]);
		cr_assert_eq(dcp_error_rank(err, i), sorted[i]);
		cr_assert_eq(dcp_error_entry_code(err, i), -100 - sorted[i]);
		cr_assert_str_eq(dcp_error_stage(err, i), stage);
		cr_assert_str_eq(dcp_error_message(err, i), msg);
		cr_assert_eq(dcp_error_has_rank(err, sorted[i]), 1);
	}
	/* The code of the lowest rank's entry. */
	cr_assert_eq(dcp_error_code(err), -100 - (-1));
	cr_assert_eq(dcp_error_has_rank(err, 3), 0);
	cr_assert_eq(dcp_error_has_rank(err, 10), 0);
	cr_assert_eq(dcp_error_has_rank(err, -2), 0);
	dcp_error_free(err);
}

Test(error, many_ranks_in_scrambled_order)
{
	dcp_error *err = dcp_error_new("read");
	const int n = 1000;
	int i;

	cr_assert_not_null(err);
	/* 7919 is prime, so i * 7919 mod n visits every rank once. */
	for (i = 0; i < n; i++) {
		int r = (int)(((long)i * 7919) % n);
		char msg[32];
		snprintf(msg, sizeof(msg), "r%d", r);
		cr_assert_eq(dcp_error_add(err, r, "read_data", DCP_EIO, msg), DCP_OK);
	}
	cr_assert_eq(dcp_error_count(err), (size_t)n);
	for (i = 0; i < n; i++) {
		char msg[32];
		snprintf(msg, sizeof(msg), "r%d", i);
		cr_assert_eq(dcp_error_rank(err, (size_t)i), i);
		cr_assert_str_eq(dcp_error_message(err, (size_t)i), msg);
	}
	dcp_error_free(err);
}

Test(error, same_rank_replaces)
{
	dcp_error *err = dcp_error_new("write");

	cr_assert_not_null(err);
	cr_assert_eq(dcp_error_add(err, 3, "write_data", DCP_EIO, "disk full"), DCP_OK);
	cr_assert_eq(dcp_error_add(err, 1, "finish", DCP_EPEER, "peer"), DCP_OK);
	cr_assert_eq(dcp_error_add(err, 3, "prepare_local_plan", DCP_EINJECTED, "injected"), DCP_OK);
	cr_assert_eq(dcp_error_count(err), 2);
	cr_assert_eq(dcp_error_rank(err, 1), 3);
	cr_assert_str_eq(dcp_error_stage(err, 1), "prepare_local_plan");
	cr_assert_eq(dcp_error_entry_code(err, 1), DCP_EINJECTED);
	cr_assert_str_eq(dcp_error_message(err, 1), "injected");
	dcp_error_free(err);
}

Test(error, strings_are_copied)
{
	char step[] = "write", stage[] = "finish", msg[] = "commit failed";
	dcp_error *err = dcp_error_new(step);

	cr_assert_not_null(err);
	cr_assert_eq(dcp_error_add(err, 0, stage, DCP_EIO, msg), DCP_OK);
	memset(step, 'x', sizeof(step) - 1);
	memset(stage, 'x', sizeof(stage) - 1);
	memset(msg, 'x', sizeof(msg) - 1);
	cr_assert_str_eq(dcp_error_step(err), "write");
	cr_assert_str_eq(dcp_error_stage(err, 0), "finish");
	cr_assert_str_eq(dcp_error_message(err, 0), "commit failed");
	dcp_error_free(err);
}

Test(error, null_strings_become_empty)
{
	dcp_error *err = dcp_error_new("plan");

	cr_assert_not_null(err);
	cr_assert_eq(dcp_error_add(err, 2, NULL, DCP_EPLAN, NULL), DCP_OK);
	cr_assert_str_eq(dcp_error_stage(err, 0), "");
	cr_assert_str_eq(dcp_error_message(err, 0), "");
	cr_assert_eq(dcp_error_add(NULL, 0, "s", DCP_EIO, "m"), DCP_EINVAL);
	dcp_error_free(err);
}

Test(error, null_and_out_of_range_are_safe)
{
	dcp_error *err = dcp_error_new("plan");

	cr_assert_str_eq(dcp_error_step(NULL), "");
	cr_assert_eq(dcp_error_code(NULL), DCP_OK);
	cr_assert_eq(dcp_error_count(NULL), 0);
	cr_assert_eq(dcp_error_rank(NULL, 0), -1);
	cr_assert_str_eq(dcp_error_stage(NULL, 0), "");
	cr_assert_str_eq(dcp_error_message(NULL, 0), "");
	cr_assert_eq(dcp_error_entry_code(NULL, 0), DCP_EINVAL);
	cr_assert_eq(dcp_error_has_rank(NULL, 0), 0);
	cr_assert_null(dcp_error_format(NULL));
	dcp_error_free(NULL);

	cr_assert_eq(dcp_error_add(err, 4, "s", DCP_EIO, "m"), DCP_OK);
	cr_assert_eq(dcp_error_rank(err, 1), -1);
	cr_assert_str_eq(dcp_error_stage(err, 1), "");
	cr_assert_str_eq(dcp_error_message(err, (size_t)-1), "");
	cr_assert_eq(dcp_error_entry_code(err, 7), DCP_EINVAL);
	dcp_error_free(err);
}

Test(error, format_one_line_per_rank)
{
	dcp_error *err = dcp_error_new("write");
	char *text;

	cr_assert_not_null(err);
	cr_assert_eq(dcp_error_add(err, 12, "finish", DCP_EIO, "rename of /ckpt/.metadata failed: No space"),
	             DCP_OK);
	cr_assert_eq(dcp_error_add(err, 3, "write_data", DCP_EINJECTED, "injected failure at write_data"),
	             DCP_OK);
	cr_assert_eq(dcp_error_add(err, -1, "registry", DCP_ENOPLUGIN, "no plugin for s3://"), DCP_OK);
	cr_assert_eq(dcp_error_add(err, 0, "", DCP_EPEER, "another rank failed"), DCP_OK);
	text = dcp_error_format(err);
	cr_assert_not_null(text);
	cr_assert_str_eq(text, "registry: no plugin for s3://\n"
	                       "rank 0: another rank failed\n"
	                       "rank 3: write_data: injected failure at write_data\n"
	                       "rank 12: finish: rename of /ckpt/.metadata failed: No space\n");
	free(text);
	dcp_error_free(err);
}

Test(error, format_long_messages)
{
	dcp_error *err = dcp_error_new("read");
	size_t big = 100000, i;
	char *msg = malloc(big + 1), *text, *expect;

	cr_assert_not_null(err);
	cr_assert_not_null(msg);
	for (i = 0; i < big; i++)
		msg[i] = (char)('a' + i % 26);
	msg[big] = '\0';
	cr_assert_eq(dcp_error_add(err, INT_MAX, "read_data", DCP_ECORRUPT, msg), DCP_OK);
	cr_assert_eq(dcp_error_add(err, INT_MIN, "read_metadata", DCP_EMETADATA, msg), DCP_OK);
	text = dcp_error_format(err);
	cr_assert_not_null(text);
	expect = malloc(2 * big + 200);
	cr_assert_not_null(expect);
	snprintf(expect, 2 * big + 200, "rank %d: read_metadata: %s\nrank %d: read_data: %s\n", INT_MIN, msg,
	         INT_MAX, msg);
	cr_assert_str_eq(text, expect);
	cr_assert_eq(dcp_error_code(err), DCP_EMETADATA);
	free(expect);
	free(text);
	free(msg);
	dcp_error_free(err);
}

Test(error, local_error)
{
	dcp_error *err =
	        dcp_error_local(DCP_EID, "validate_checkpoint_id", "bad URL '%s': %d problems", "x:/y", 2);
	char *text;

	cr_assert_not_null(err);
	cr_assert_str_eq(dcp_error_step(err), "local");
	cr_assert_eq(dcp_error_count(err), 1);
	cr_assert_eq(dcp_error_rank(err, 0), -1);
	cr_assert_eq(dcp_error_code(err), DCP_EID);
	cr_assert_str_eq(dcp_error_stage(err, 0), "validate_checkpoint_id");
	cr_assert_str_eq(dcp_error_message(err, 0), "bad URL 'x:/y': 2 problems");
	cr_assert_eq(dcp_error_has_rank(err, -1), 1);
	text = dcp_error_format(err);
	cr_assert_str_eq(text, "validate_checkpoint_id: bad URL 'x:/y': 2 problems\n");
	free(text);
	dcp_error_free(err);
}

Test(error, set_stores_or_frees)
{
	dcp_error *out = NULL;
	dcp_error *err = dcp_error_local(DCP_EIO, "s", "m");

	cr_assert_not_null(err);
	dcp_error_set(&out, err);
	cr_assert_eq(out, err);
	dcp_error_free(out);

	/* No destination: freed (a leak would fail the sanitizer build). */
	dcp_error_set(NULL, dcp_error_local(DCP_EIO, "s", "m"));
	dcp_error_set(NULL, NULL);
	out = (dcp_error *)&out;
	dcp_error_set(&out, NULL);
	cr_assert_null(out);
}

#if DCP_ALLOC_FAILURES
Test(error_oom, new_fails_cleanly)
{
	long k;

	for (k = 0;; k++) {
		dcp_error *err;
		int hit;
		fail_after(k);
		err = dcp_error_new("write");
		hit = fail_done();
		if (!hit) {
			cr_assert_not_null(err);
			dcp_error_free(err);
			break;
		}
		cr_assert_null(err, "allocation %ld failed but dcp_error_new returned an object", k);
	}
	cr_assert_gt(k, 0);
}

Test(error_oom, add_leaves_error_unchanged)
{
	long k;
	int added = 0, failed = 0;

	for (k = 0; k < 1000; k++) {
		dcp_error *err = dcp_error_new("write");
		char *before, *after;
		int rc, hit, r;

		cr_assert_not_null(err);
		/* Fill so that some adds have to grow the entry array. */
		for (r = 0; r < 4 + (int)(k % 5); r++)
			cr_assert_eq(dcp_error_add(err, 2 * r, "st", DCP_EIO, "msg"), DCP_OK);
		before = dcp_error_format(err);
		cr_assert_not_null(before);
		fail_after(k % 3);
		/* Odd rank: a new entry; k % 7 == 0: replaces rank 0. */
		rc = dcp_error_add(err, k % 7 == 0 ? 0 : 3, "new stage", DCP_EPEER, "new message");
		hit = fail_done();
		if (hit) {
			cr_assert_eq(rc, DCP_ENOMEM);
			failed++;
			after = dcp_error_format(err);
			cr_assert_str_eq(after, before);
			free(after);
		} else {
			cr_assert_eq(rc, DCP_OK);
			added++;
		}
		free(before);
		dcp_error_free(err);
	}
	cr_assert_gt(added, 0);
	cr_assert_gt(failed, 0);
}

Test(error_oom, local_and_format)
{
	long k;

	for (k = 0;; k++) {
		dcp_error *err;
		int hit;
		fail_after(k);
		err = dcp_error_local(DCP_EIO, "stage", "message %d", 42);
		hit = fail_done();
		if (!hit) {
			cr_assert_not_null(err);
			dcp_error_free(err);
			break;
		}
		cr_assert_null(err);
	}
	{
		dcp_error *err = dcp_error_local(DCP_EIO, "stage", "message");
		char *text;
		cr_assert_not_null(err);
		fail_after(0);
		text = dcp_error_format(err);
		cr_assert_eq(fail_done(), 1);
		cr_assert_null(text);
		dcp_error_free(err);
	}
}
#endif
