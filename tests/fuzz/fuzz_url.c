/*
 * libFuzzer target: the checkpoint-URL and option-value parsers of
 * core/util/url.h, and the core's URL pipeline (dcp_url_canonical).
 *
 * Input: one string (up to the first NUL), handed to every parser.
 * Properties:
 *   - dcp_url_parse: on success, dcp_url_format re-encodes it into a URL
 *     that parses to the same scheme, rest and parameters, and formats to
 *     the same text (a fixed point); with a keep() filter and another scheme,
 *     exactly the kept parameters come back, in order;
 *   - dcp_parse_int agrees with strtoll on strings of the form -?[0-9]+ and
 *     refuses everything else;
 *   - dcp_parse_size: a success is the decimal prefix times its suffix,
 *     without overflow; digits alone read as themselves;
 *   - dcp_parse_bool accepts exactly the eight words, in any case;
 *   - dcp_rank_set_parse: ranks sorted, unique, in 0..65535, found by
 *     dcp_rank_set_has, and the set printed back parses to the same set;
 *   - dcp_url_canonical: a canonical URL is its own canonical form.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "registry_internal.h"
#include "url.h"

static int same_url(const dcp_url *a, const dcp_url *b)
{
	if (strcmp(a->scheme, b->scheme) != 0 || strcmp(a->rest, b->rest) != 0 || a->nparams != b->nparams)
		return 0;
	for (size_t i = 0; i < a->nparams; i++)
		if (strcmp(a->params[i].key, b->params[i].key) != 0 ||
		    strcmp(a->params[i].value, b->params[i].value) != 0)
			return 0;
	return 1;
}

/* keep() for dcp_url_format: drops the keys that start with 'x'. */
static int keep_not_x(const char *key, void *arg)
{
	(void)arg;
	return key[0] != 'x';
}

static void check_url(const char *s)
{
	dcp_url u, v, w;
	dcp_msg msg = {{0}};
	char *f1, *f2, *f3;
	size_t k;
	int rc = dcp_url_parse(s, &u, &msg);

	if (rc != DCP_OK) {
		FUZZ_CHECK(rc == DCP_EID || rc == DCP_ENOMEM);
		FUZZ_CHECK(msg.text[0] != '\0');
		dcp_url_clear(&u);
		return;
	}
	FUZZ_CHECK(u.scheme != NULL && u.rest != NULL && strchr(u.rest, '?') == NULL);
	for (size_t i = 0; i < u.nparams; i++) {
		FUZZ_CHECK(u.params[i].key[0] != '\0' && u.params[i].value != NULL);
		FUZZ_CHECK(dcp_url_param_get(&u, u.params[i].key) != NULL);
	}

	f1 = dcp_url_format(&u, NULL, NULL, NULL);
	FUZZ_CHECK(f1 != NULL);
	rc = dcp_url_parse(f1, &v, &msg);
	if (rc != DCP_OK)
		fprintf(stderr, "'%s' formatted as '%s', which does not parse: %s\n", s, f1, msg.text);
	FUZZ_CHECK(rc == DCP_OK);
	FUZZ_CHECK(same_url(&u, &v));
	f2 = dcp_url_format(&v, NULL, NULL, NULL);
	FUZZ_CHECK(f2 != NULL && strcmp(f1, f2) == 0);

	f3 = dcp_url_format(&u, "other+scheme", keep_not_x, NULL);
	FUZZ_CHECK(f3 != NULL);
	rc = dcp_url_parse(f3, &w, &msg);
	FUZZ_CHECK(rc == DCP_OK);
	FUZZ_CHECK(strcmp(w.scheme, "other+scheme") == 0 && strcmp(w.rest, u.rest) == 0);
	k = 0;
	for (size_t i = 0; i < u.nparams; i++) {
		if (u.params[i].key[0] == 'x')
			continue;
		FUZZ_CHECK(k < w.nparams);
		FUZZ_CHECK(strcmp(u.params[i].key, w.params[k].key) == 0 &&
		           strcmp(u.params[i].value, w.params[k].value) == 0);
		k++;
	}
	FUZZ_CHECK(k == w.nparams);

	free(f1);
	free(f2);
	free(f3);
	dcp_url_clear(&u);
	dcp_url_clear(&v);
	dcp_url_clear(&w);
}

/* s is -?[0-9]+ */
static int is_decimal(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static void check_int(const char *s, long long min, long long max)
{
	long long v = 12345, ref;
	int rc = dcp_parse_int(s, min, max, &v);

	if (!is_decimal(s)) {
		FUZZ_CHECK(rc == DCP_EINVAL);
		return;
	}
	errno = 0;
	ref = strtoll(s, NULL, 10);
	if (errno == ERANGE || ref < min || ref > max) {
		FUZZ_CHECK(rc == DCP_EINVAL);
		return;
	}
	FUZZ_CHECK(rc == DCP_OK && v == ref);
}

static void check_size(const char *s)
{
	uint64_t v = 0, prefix;
	const char *p = s;
	char *end;
	unsigned shift = 0;
	int rc = dcp_parse_size(s, &v);

	if (rc != DCP_OK) {
		FUZZ_CHECK(rc == DCP_EINVAL);
		return;
	}
	FUZZ_CHECK(*p >= '0' && *p <= '9');
	errno = 0;
	prefix = strtoull(p, &end, 10);
	FUZZ_CHECK(errno == 0);
	switch (tolower((unsigned char)*end)) {
	case 'k':
		shift = 10;
		break;
	case 'm':
		shift = 20;
		break;
	case 'g':
		shift = 30;
		break;
	case 't':
		shift = 40;
		break;
	default:
		FUZZ_CHECK(*end == '\0' || *end == 'b' || *end == 'B');
	}
	FUZZ_CHECK(prefix <= (UINT64_MAX >> shift) && v == prefix << shift);
	if (*end == '\0')
		FUZZ_CHECK(v == prefix);
}

static void check_bool(const char *s)
{
	static const char *const words[] = {"1", "true", "yes", "on", "0", "false", "no", "off"};
	int v = -1, want = -1;
	int rc = dcp_parse_bool(s, &v);

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(s, words[i]) == 0)
			want = i < 4;
	if (want < 0)
		FUZZ_CHECK(rc == DCP_EINVAL);
	else
		FUZZ_CHECK(rc == DCP_OK && v == want);
}

static void check_ranks(const char *s)
{
	dcp_rank_set set, again;
	dcp_msg msg = {{0}};
	char *text, *p;
	int rc = dcp_rank_set_parse(s, &set, &msg);

	if (rc != DCP_OK) {
		FUZZ_CHECK(rc == DCP_EINVAL || rc == DCP_ENOMEM);
		FUZZ_CHECK(msg.text[0] != '\0');
		FUZZ_CHECK(set.ranks == NULL && set.n == 0);
		return;
	}
	if (set.all) {
		FUZZ_CHECK(dcp_rank_set_has(&set, 0) && dcp_rank_set_has(&set, 65535));
		dcp_rank_set_clear(&set);
		return;
	}
	FUZZ_CHECK(set.n <= 65536);
	FUZZ_CHECK(!dcp_rank_set_has(&set, -1) && !dcp_rank_set_has(&set, 65536));
	text = fuzz_xmalloc(set.n * 7 + 1);
	p = text;
	*p = '\0';
	for (size_t i = 0; i < set.n; i++) {
		FUZZ_CHECK(set.ranks[i] >= 0 && set.ranks[i] <= 65535);
		FUZZ_CHECK(i == 0 || set.ranks[i - 1] < set.ranks[i]);
		FUZZ_CHECK(dcp_rank_set_has(&set, set.ranks[i]));
		if (set.ranks[i] > 0 && (i == 0 || set.ranks[i - 1] != set.ranks[i] - 1))
			FUZZ_CHECK(!dcp_rank_set_has(&set, set.ranks[i] - 1));
		p += sprintf(p, "%s%d", i ? "," : "", set.ranks[i]);
	}
	rc = dcp_rank_set_parse(text, &again, &msg);
	FUZZ_CHECK(rc == DCP_OK && !again.all && again.n == set.n);
	FUZZ_CHECK(set.n == 0 || memcmp(set.ranks, again.ranks, set.n * sizeof(int)) == 0);
	free(text);
	dcp_rank_set_clear(&set);
	dcp_rank_set_clear(&again);
}

static void check_canonical(const char *s)
{
	char *c = NULL, *c2 = NULL;
	dcp_msg msg = {{0}};
	int rc = dcp_url_canonical(s, &c, &msg);

	if (rc != DCP_OK) {
		FUZZ_CHECK(c == NULL && msg.text[0] != '\0');
		FUZZ_CHECK(rc == DCP_EID || rc == DCP_ENOMEM);
		return;
	}
	FUZZ_CHECK(c != NULL && strstr(c, "://") != NULL);
	rc = dcp_url_canonical(c, &c2, &msg);
	FUZZ_CHECK(rc == DCP_OK && strcmp(c, c2) == 0);
	free(c);
	free(c2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	check_url(s);
	check_int(s, LLONG_MIN, LLONG_MAX);
	check_int(s, 0, 65535);
	check_int(s, -7, 3);
	check_size(s);
	check_bool(s);
	check_ranks(s);
	check_canonical(s);
	free(s);
	return 0;
}
