/*
 * URL and option-string helpers (core/util/url.h): parsing, re-encoding,
 * sizes, ints, booleans, rank lists.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

/* ------------------------------------------------------------------------ */
/* dcp_url_parse                                                            */
/* ------------------------------------------------------------------------ */

Test(url, parses_scheme_rest_and_params)
{
	dcp_url u;
	dcp_msg msg = {{0}};
	int rc = dcp_url_parse("FILE://tmp/ckpt%20dir?threads=4&name=hello%20world%21&flag&x=a%3Db%26c", &u,
	                       &msg);

	cr_assert_eq(rc, DCP_OK, "%s", msg.text);
	cr_expect_str_eq(u.scheme, "file");
	cr_expect_str_eq(u.rest, "tmp/ckpt%20dir", "rest stays undecoded");
	cr_assert_eq(u.nparams, 4);
	cr_expect_str_eq(u.params[0].key, "threads");
	cr_expect_str_eq(u.params[0].value, "4");
	cr_expect_str_eq(u.params[1].key, "name");
	cr_expect_str_eq(u.params[1].value, "hello world!");
	cr_expect_str_eq(u.params[2].key, "flag");
	cr_expect_str_eq(u.params[2].value, "");
	cr_expect_str_eq(u.params[3].key, "x");
	cr_expect_str_eq(u.params[3].value, "a=b&c");
	cr_expect_str_eq(dcp_url_param_get(&u, "flag"), "");
	cr_expect_null(dcp_url_param_get(&u, "missing"));
	dcp_url_clear(&u);
	cr_expect_null(u.scheme);
	dcp_url_clear(&u); /* twice is harmless */
}

Test(url, scheme_characters_and_case)
{
	static const struct {
		const char *url, *scheme;
	} ok[] = {
	        {"faulty+mem://x", "faulty+mem"},
	        {"S3://bucket/key", "s3"},
	        {"My.Scheme-2+x://", "my.scheme-2+x"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		dcp_url u;
		dcp_msg msg = {{0}};
		cr_assert_eq(dcp_url_parse(ok[i].url, &u, &msg), DCP_OK, "%s: %s", ok[i].url, msg.text);
		cr_expect_str_eq(u.scheme, ok[i].scheme);
		dcp_url_clear(&u);
	}
}

Test(url, rest_may_be_empty_and_only_first_question_mark_splits)
{
	dcp_url u;
	dcp_msg msg = {{0}};

	cr_assert_eq(dcp_url_parse("mem://", &u, &msg), DCP_OK, "%s", msg.text);
	cr_expect_str_eq(u.rest, "");
	cr_expect_eq(u.nparams, 0);
	dcp_url_clear(&u);

	cr_assert_eq(dcp_url_parse("mem://a?b=c?d", &u, &msg), DCP_OK, "%s", msg.text);
	cr_expect_str_eq(u.rest, "a");
	cr_assert_eq(u.nparams, 1);
	cr_expect_str_eq(u.params[0].value, "c?d");
	dcp_url_clear(&u);
}

Test(url, empty_query_segments_are_skipped_and_last_value_wins)
{
	dcp_url u;
	dcp_msg msg = {{0}};

	cr_assert_eq(dcp_url_parse("mem://r?&a=1&&a=2&", &u, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(u.nparams, 2);
	cr_expect_str_eq(dcp_url_param_get(&u, "a"), "2");
	dcp_url_clear(&u);

	cr_assert_eq(dcp_url_parse("mem://r?", &u, &msg), DCP_OK, "%s", msg.text);
	cr_expect_eq(u.nparams, 0);
	dcp_url_clear(&u);
}

Test(url, empty_id_is_refused)
{
	dcp_url u;
	dcp_msg msg = {{0}};

	cr_expect_eq(dcp_url_parse("", &u, &msg), DCP_EID);
	cr_expect_str_eq(msg.text, "checkpoint id is empty");
	dcp_url_clear(&u);
	msg.text[0] = '\0';
	cr_expect_eq(dcp_url_parse(NULL, &u, &msg), DCP_EID);
	cr_expect_str_eq(msg.text, "checkpoint id is empty");
	dcp_url_clear(&u);
}

Test(url, missing_scheme_is_refused)
{
	dcp_url u;
	dcp_msg msg = {{0}};

	cr_expect_eq(dcp_url_parse("foo", &u, &msg), DCP_EID);
	cr_expect_str_eq(msg.text, "checkpoint id 'foo' has no scheme (expected scheme://...)");
	dcp_url_clear(&u);
	cr_expect_eq(dcp_url_parse("/tmp/x:/y", &u, &msg), DCP_EID);
	cr_expect(strstr(msg.text, "'/tmp/x:/y' has no scheme") != NULL, "%s", msg.text);
	dcp_url_clear(&u);
	cr_expect_eq(dcp_url_parse("/ckpt/x?from=s3://b", &u, &msg), DCP_EID);
	cr_expect_str_eq(msg.text,
	                 "checkpoint id '/ckpt/x?from=s3://b' has no scheme (expected scheme://...)");
	dcp_url_clear(&u);
	cr_expect_eq(dcp_url_parse("://x", &u, &msg), DCP_EID);
	cr_expect(strstr(msg.text, "empty scheme") != NULL, "%s", msg.text);
	dcp_url_clear(&u);
}

Test(url, bad_scheme_is_refused)
{
	static const char *bad[] = {"1abc://x", "a_b://x", "+a://x", "a b://x", "é://x", "-x://y"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dcp_url u;
		dcp_msg msg = {{0}};
		cr_expect_eq(dcp_url_parse(bad[i], &u, &msg), DCP_EID, "%s", bad[i]);
		cr_expect(strstr(msg.text, "bad scheme") != NULL, "%s", msg.text);
		cr_expect(strstr(msg.text, bad[i]) != NULL, "message names the id: %s", msg.text);
		dcp_url_clear(&u);
	}
}

Test(url, bad_percent_escapes_are_refused)
{
	static const char *bad[] = {"mem://r?a=%zz", "mem://r?a=%4",  "mem://r?a=%",
	                            "mem://r?a=%00", "mem://r?%g1=x", "mem://r?a=1&b=%2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dcp_url u;
		dcp_msg msg = {{0}};
		char want[256];
		snprintf(want, sizeof(want), "bad percent escape in query of '%s'", bad[i]);
		cr_expect_eq(dcp_url_parse(bad[i], &u, &msg), DCP_EID, "%s", bad[i]);
		cr_expect(strncmp(msg.text, want, strlen(want)) == 0, "got '%s', want '%s...'", msg.text,
		          want);
		dcp_url_clear(&u);
	}
}

Test(url, empty_param_name_is_refused)
{
	dcp_url u;
	dcp_msg msg = {{0}};

	cr_expect_eq(dcp_url_parse("mem://r?a=1&=2", &u, &msg), DCP_EID);
	cr_expect(strstr(msg.text, "empty parameter name") != NULL, "%s", msg.text);
	cr_expect(strstr(msg.text, "mem://r?a=1&=2") != NULL, "%s", msg.text);
	dcp_url_clear(&u);
}

/* ------------------------------------------------------------------------ */
/* dcp_url_format                                                           */
/* ------------------------------------------------------------------------ */

static int drop_threads(const char *key, void *arg)
{
	(void)arg;
	return strcmp(key, "threads") != 0;
}

Test(url, format_reencodes_and_round_trips)
{
	dcp_url u, v;
	dcp_msg msg = {{0}};
	const char *src = "Faulty+S3://bucket/pre%20fix?threads=4&name=a%26b%3Dc%20d%2B&flag&p=/x:y,z";
	char *s;

	cr_assert_eq(dcp_url_parse(src, &u, &msg), DCP_OK, "%s", msg.text);
	s = dcp_url_format(&u, NULL, NULL, NULL);
	cr_assert_not_null(s);
	cr_assert_eq(dcp_url_parse(s, &v, &msg), DCP_OK, "%s: %s", s, msg.text);
	cr_expect_str_eq(v.scheme, u.scheme);
	cr_expect_str_eq(v.rest, u.rest);
	cr_assert_eq(v.nparams, u.nparams);
	for (size_t i = 0; i < u.nparams; i++) {
		cr_expect_str_eq(v.params[i].key, u.params[i].key);
		cr_expect_str_eq(v.params[i].value, u.params[i].value);
	}
	cr_expect(strstr(s, "a%26b%3Dc%20d%2B") != NULL, "special characters are escaped: %s", s);
	cr_expect(strstr(s, "&flag") != NULL, "an empty value prints as a bare name: %s", s);
	dcp_url_clear(&v);
	free(s);

	s = dcp_url_format(&u, "s3", drop_threads, NULL);
	cr_assert_not_null(s);
	cr_expect_str_eq(s, "s3://bucket/pre%20fix?name=a%26b%3Dc%20d%2B&flag&p=/x:y,z");
	free(s);

	dcp_url_clear(&u);
	cr_assert_eq(dcp_url_parse("mem://x?threads=1", &u, &msg), DCP_OK);
	s = dcp_url_format(&u, NULL, drop_threads, NULL);
	cr_expect_str_eq(s, "mem://x", "no '?' when every param is dropped");
	free(s);
	dcp_url_clear(&u);
}

/* ------------------------------------------------------------------------ */
/* Sizes, ints, booleans                                                    */
/* ------------------------------------------------------------------------ */

Test(url, parse_size_accepts_suffixes)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
	        {"0", 0},
	        {"123", 123},
	        {"123B", 123},
	        {"4K", 4ull << 10},
	        {"4k", 4ull << 10},
	        {"4KB", 4ull << 10},
	        {"4KiB", 4ull << 10},
	        {"8M", 8ull << 20},
	        {"8MiB", 8ull << 20},
	        {"2G", 2ull << 30},
	        {"2gb", 2ull << 30},
	        {"1T", 1ull << 40},
	        {"16777215T", 16777215ull << 40},
	        {"18446744073709551615", UINT64_MAX},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 7;
		cr_expect_eq(dcp_parse_size(ok[i].s, &v), DCP_OK, "%s", ok[i].s);
		cr_expect_eq(v, ok[i].v, "%s gave %llu", ok[i].s, (unsigned long long)v);
	}
}

Test(url, parse_size_refuses_junk_and_overflow)
{
	static const char *bad[] = {"",
	                            "K",
	                            "-1",
	                            " 1",
	                            "1 ",
	                            "1.5G",
	                            "4KiBB",
	                            "4iB",
	                            "4Ki",
	                            "4X",
	                            "0x10",
	                            "+1",
	                            "4KK",
	                            "1P",
	                            "18446744073709551616",
	                            "16777216T",
	                            "17179869184G",
	                            "4B4"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		cr_expect_eq(dcp_parse_size(bad[i], &v), DCP_EINVAL, "'%s' was accepted", bad[i]);
		cr_expect_eq(v, 7, "out untouched on failure");
	}
	cr_expect_eq(dcp_parse_size(NULL, NULL), DCP_EINVAL);
}

Test(url, parse_int_checks_syntax_and_range)
{
	long long v = 7;

	cr_expect_eq(dcp_parse_int("42", 0, 100, &v), DCP_OK);
	cr_expect_eq(v, 42);
	cr_expect_eq(dcp_parse_int("0", 0, 100, &v), DCP_OK);
	cr_expect_eq(v, 0);
	cr_expect_eq(dcp_parse_int("100", 0, 100, &v), DCP_OK);
	cr_expect_eq(v, 100);
	cr_expect_eq(dcp_parse_int("9223372036854775807", 0, 9223372036854775807LL, &v), DCP_OK);
	cr_expect_eq(v, 9223372036854775807LL);
	v = 7;
	static const char *bad[] = {"101", "-1", "", " 1", "1 ", "1a", "0x1", "+1", "9223372036854775808",
	                            "1.0"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(dcp_parse_int(bad[i], 0, 100, &v), DCP_EINVAL, "'%s' was accepted", bad[i]);
		cr_expect_eq(v, 7);
	}
	cr_expect_eq(dcp_parse_int("5", 10, 20, &v), DCP_EINVAL, "below min");
}

Test(url, parse_bool_words)
{
	static const struct {
		const char *s;
		int v;
	} ok[] = {{"1", 1},  {"0", 0},  {"true", 1}, {"false", 0}, {"yes", 1},
	          {"no", 0}, {"on", 1}, {"off", 0},  {"TRUE", 1},  {"Off", 0}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int v = 7;
		cr_expect_eq(dcp_parse_bool(ok[i].s, &v), DCP_OK, "%s", ok[i].s);
		cr_expect_eq(v, ok[i].v, "%s", ok[i].s);
	}
	static const char *bad[] = {"", "2", "y", "tru", "truee", " on", "-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int v = 7;
		cr_expect_eq(dcp_parse_bool(bad[i], &v), DCP_EINVAL, "'%s' was accepted", bad[i]);
		cr_expect_eq(v, 7);
	}
}

/* ------------------------------------------------------------------------ */
/* Rank sets                                                                */
/* ------------------------------------------------------------------------ */

Test(url, rank_set_lists_and_ranges)
{
	dcp_rank_set s;
	dcp_msg msg = {{0}};

	cr_assert_eq(dcp_rank_set_parse("1,3", &s, &msg), DCP_OK, "%s", msg.text);
	cr_expect(!dcp_rank_set_has(&s, 0));
	cr_expect(dcp_rank_set_has(&s, 1));
	cr_expect(!dcp_rank_set_has(&s, 2));
	cr_expect(dcp_rank_set_has(&s, 3));
	cr_expect(!dcp_rank_set_has(&s, -1));
	dcp_rank_set_clear(&s);

	cr_assert_eq(dcp_rank_set_parse("0-2,5", &s, &msg), DCP_OK, "%s", msg.text);
	for (int r = 0; r < 8; r++)
		cr_expect_eq(dcp_rank_set_has(&s, r), r <= 2 || r == 5, "rank %d", r);
	dcp_rank_set_clear(&s);

	cr_assert_eq(dcp_rank_set_parse(" 7 , 3-4,3,7 ", &s, &msg), DCP_OK, "%s", msg.text);
	cr_expect_eq(s.n, 3, "duplicates merged");
	cr_expect(dcp_rank_set_has(&s, 3) && dcp_rank_set_has(&s, 4) && dcp_rank_set_has(&s, 7));
	dcp_rank_set_clear(&s);

	cr_assert_eq(dcp_rank_set_parse("65535,0-0", &s, &msg), DCP_OK, "%s", msg.text);
	cr_expect(dcp_rank_set_has(&s, 65535) && dcp_rank_set_has(&s, 0) && !dcp_rank_set_has(&s, 1));
	dcp_rank_set_clear(&s);
}

Test(url, rank_set_all_and_none)
{
	dcp_rank_set s;
	dcp_msg msg = {{0}};

	cr_assert_eq(dcp_rank_set_parse("*", &s, &msg), DCP_OK, "%s", msg.text);
	cr_expect(dcp_rank_set_has(&s, 0) && dcp_rank_set_has(&s, 65535) && dcp_rank_set_has(&s, 12));
	dcp_rank_set_clear(&s);

	cr_assert_eq(dcp_rank_set_parse("", &s, &msg), DCP_OK, "%s", msg.text);
	cr_expect(!dcp_rank_set_has(&s, 0) && !dcp_rank_set_has(&s, 1));
	dcp_rank_set_clear(&s);
	cr_expect(!dcp_rank_set_has(NULL, 0));
}

Test(url, rank_set_refuses_bad_lists)
{
	static const struct {
		const char *s, *why;
	} bad[] = {
	        {"2-1", "reversed"},   {"1,,2", "at ',2'"}, {"1,", "at ''"},         {",1", "at ',1'"},
	        {"a", "at 'a'"},       {"*,1", "'*'"},      {"1-", "at '1-'"},       {"-1", "at '-1'"},
	        {"65536", "0..65535"}, {"1 2", "at '1 2'"}, {"1-2-3", "at '1-2-3'"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dcp_rank_set s;
		dcp_msg msg = {{0}};
		cr_expect_eq(dcp_rank_set_parse(bad[i].s, &s, &msg), DCP_EINVAL, "'%s' was accepted",
		             bad[i].s);
		cr_expect(strstr(msg.text, bad[i].s) != NULL, "message names the list: %s", msg.text);
		cr_expect(strstr(msg.text, bad[i].why) != NULL, "'%s': %s", bad[i].s, msg.text);
		cr_expect_null(s.ranks, "nothing left to free after a failure");
		dcp_rank_set_clear(&s);
	}
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                  */
/* ------------------------------------------------------------------------ */

Test(url, strdup_and_asprintf)
{
	char *s = dcp_strdup("abc");
	cr_expect_str_eq(s, "abc");
	free(s);
	cr_expect_null(dcp_strdup(NULL));
	s = dcp_asprintf("%s-%d-%05.1f", "x", 42, 2.5);
	cr_expect_str_eq(s, "x-42-002.5");
	free(s);
	char big[3000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = dcp_asprintf("<%s>", big);
	cr_assert_not_null(s);
	cr_expect_eq(strlen(s), sizeof(big) + 1);
	free(s);
}

/* Found by fuzzing: every range used to be expanded before duplicates were
 * dropped, so 500 copies of "0-65535" (4 KB of text) took seconds and a long
 * list could allocate gigabytes. */
Test(url, rank_set_many_full_ranges_are_cheap, .timeout = 10)
{
	const char *range = "0-65535,";
	size_t n = 500, len = strlen(range);
	char *s = malloc(n * len + 1);
	dcp_rank_set set;
	dcp_msg msg = {{0}};
	cr_assert_not_null(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * len, range, len);
	s[n * len - 1] = '\0'; /* drop the last comma */
	cr_assert_eq(dcp_rank_set_parse(s, &set, &msg), DCP_OK, "%s", msg.text);
	cr_expect_eq(set.n, (size_t)65536, "a rank set holds each rank once, got %zu", set.n);
	cr_expect(dcp_rank_set_has(&set, 0));
	cr_expect(dcp_rank_set_has(&set, 65535));
	dcp_rank_set_clear(&set);
	free(s);
}
