/*
 * URL and option-string helpers (see url.h). Compiled into the core and into
 * every plugin, so this file uses nothing but libc and dcp/sys/common.h, and
 * keeps no state: every function is safe to call from any thread.
 */
#include "url.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *dcp_strdup(const char *s)
{
	size_t n;
	char *p;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	p = malloc(n);
	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

static char *strndup_local(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *dcp_asprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = malloc((size_t)n + 1);
	if (p == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

/* ------------------------------------------------------------------------ */
/* URLs                                                                     */
/* ------------------------------------------------------------------------ */

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int to_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decodes s[0..n) into a new string. Returns DCP_OK, DCP_ENOMEM, or
 * DCP_EID for a '%' not followed by two hex digits or an escape that decodes
 * to NUL (*why says which).
 */
static int percent_decode(const char *s, size_t n, char **out, const char **why)
{
	char *d = malloc(n + 1);
	size_t i, j = 0;

	*out = NULL;
	if (d == NULL)
		return DCP_ENOMEM;
	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			d[j++] = s[i];
			continue;
		}
		if (n - i < 3 || hex_value((unsigned char)s[i + 1]) < 0 ||
		    hex_value((unsigned char)s[i + 2]) < 0) {
			free(d);
			*why = "'%' must be followed by two hex digits";
			return DCP_EID;
		}
		d[j] = (char)(hex_value((unsigned char)s[i + 1]) * 16 + hex_value((unsigned char)s[i + 2]));
		if (d[j] == '\0') {
			free(d);
			*why = "'%00' (NUL) is not allowed";
			return DCP_EID;
		}
		j++;
		i += 2;
	}
	d[j] = '\0';
	*out = d;
	return DCP_OK;
}

void dcp_url_clear(dcp_url *url)
{
	size_t i;

	if (url == NULL)
		return;
	free(url->scheme);
	free(url->rest);
	for (i = 0; i < url->nparams && url->params != NULL; i++) {
		free(url->params[i].key);
		free(url->params[i].value);
	}
	free(url->params);
	memset(url, 0, sizeof(*url));
}

/* Parses the query (after '?') of `url` into out->params. */
static int parse_query(const char *url, const char *q, dcp_url *out, dcp_msg *msg)
{
	size_t cap = 0;
	const char *seg = q;

	for (;;) {
		const char *end = strchr(seg, '&');
		const char *eq;
		size_t seglen = end != NULL ? (size_t)(end - seg) : strlen(seg);
		const char *why = NULL;
		dcp_url_param p = {NULL, NULL};
		int rc;

		/* Empty segments ("a=1&&b=2", a trailing '&', a bare '?') carry
		 * nothing and are skipped. */
		if (seglen > 0) {
			eq = memchr(seg, '=', seglen);
			if (eq == seg) {
				dcp_msgf(msg, "empty parameter name in query of '%s': write '?name=value'",
				         url);
				return DCP_EID;
			}
			rc = percent_decode(seg, eq != NULL ? (size_t)(eq - seg) : seglen, &p.key, &why);
			if (rc == DCP_OK) {
				if (eq != NULL)
					rc = percent_decode(eq + 1, seglen - (size_t)(eq + 1 - seg), &p.value,
					                    &why);
				else if ((p.value = dcp_strdup("")) == NULL)
					rc = DCP_ENOMEM;
			}
			if (rc == DCP_OK && out->nparams == cap) {
				size_t ncap = cap ? cap * 2 : 4;
				dcp_url_param *np = realloc(out->params, ncap * sizeof(*np));
				if (np == NULL) {
					rc = DCP_ENOMEM;
				} else {
					out->params = np;
					cap = ncap;
				}
			}
			if (rc != DCP_OK) {
				free(p.key);
				free(p.value);
				if (rc == DCP_ENOMEM)
					dcp_msgf(msg, "out of memory parsing the query of '%s'", url);
				else
					dcp_msgf(msg, "bad percent escape in query of '%s': %s", url, why);
				return rc;
			}
			out->params[out->nparams++] = p;
		}
		if (end == NULL)
			return DCP_OK;
		seg = end + 1;
	}
}

int dcp_url_parse(const char *url, dcp_url *out, dcp_msg *msg)
{
	const char *sep, *q, *p;
	size_t slen, i;
	int rc;

	if (out == NULL) {
		dcp_msgf(msg, "dcp_url_parse: out is NULL");
		return DCP_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (url == NULL || url[0] == '\0') {
		dcp_msgf(msg, "checkpoint id is empty");
		return DCP_EID;
	}
	sep = strstr(url, "://");
	/* a "://" after a '/' or '?' is inside a path or query, not after a scheme */
	if (sep == NULL || strcspn(url, "/?") < (size_t)(sep - url)) {
		dcp_msgf(msg, "checkpoint id '%s' has no scheme (expected scheme://...)", url);
		return DCP_EID;
	}
	slen = (size_t)(sep - url);
	if (slen == 0) {
		dcp_msgf(msg, "checkpoint id '%s' has an empty scheme (expected scheme://...)", url);
		return DCP_EID;
	}
	for (p = url; p < sep; p++) {
		int c = (unsigned char)*p;
		if (p == url ? !is_alpha(c)
		             : !(is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.')) {
			dcp_msgf(msg,
			         "checkpoint id '%s' has a bad scheme '%.*s': a scheme starts with a letter "
			         "and "
			         "holds only letters, digits, '+', '-' and '.'",
			         url, (int)slen, url);
			return DCP_EID;
		}
	}
	out->scheme = strndup_local(url, slen);
	if (out->scheme == NULL)
		goto nomem;
	for (i = 0; i < slen; i++)
		out->scheme[i] = (char)to_lower((unsigned char)out->scheme[i]);

	p = sep + 3;
	q = strchr(p, '?');
	out->rest = q != NULL ? strndup_local(p, (size_t)(q - p)) : dcp_strdup(p);
	if (out->rest == NULL)
		goto nomem;
	if (q != NULL) {
		rc = parse_query(url, q + 1, out, msg);
		if (rc != DCP_OK)
			return rc;
	}
	return DCP_OK;
nomem:
	dcp_msgf(msg, "out of memory parsing checkpoint id '%s'", url);
	return DCP_ENOMEM;
}

const char *dcp_url_param_get(const dcp_url *url, const char *key)
{
	size_t i;

	if (url == NULL || key == NULL)
		return NULL;
	for (i = url->nparams; i-- > 0;)
		if (strcmp(url->params[i].key, key) == 0)
			return url->params[i].value;
	return NULL;
}

/* A growable string; `failed` is set after a failed allocation. */
typedef struct strbuf {
	char *s;
	size_t len, cap;
	int failed;
} strbuf;

static void sb_putn(strbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 64;
		char *ns;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		ns = realloc(b->s, ncap);
		if (ns == NULL) {
			b->failed = 1;
			return;
		}
		b->s = ns;
		b->cap = ncap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

/* Characters left as they are in a query component: RFC 3986 unreserved,
 * plus a few sub-delimiters that mean nothing to our query syntax. */
static int query_char_is_plain(int c)
{
	return is_alpha(c) || is_digit(c) || strchr("-._~/:,*@!$'()", c) != NULL;
}

static void sb_put_encoded(strbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		int c = (unsigned char)*s;
		if (query_char_is_plain(c)) {
			sb_putn(b, s, 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			sb_putn(b, e, 3);
		}
	}
}

char *dcp_url_format(const dcp_url *url, const char *scheme, int (*keep)(const char *key, void *arg),
                     void *arg)
{
	strbuf b = {NULL, 0, 0, 0};
	size_t i;
	int first = 1;

	if (url == NULL)
		return NULL;
	if (scheme == NULL)
		scheme = url->scheme != NULL ? url->scheme : "";
	sb_puts(&b, scheme);
	sb_puts(&b, "://");
	sb_puts(&b, url->rest != NULL ? url->rest : "");
	for (i = 0; i < url->nparams; i++) {
		const dcp_url_param *p = &url->params[i];
		if (keep != NULL && !keep(p->key, arg))
			continue;
		sb_puts(&b, first ? "?" : "&");
		first = 0;
		sb_put_encoded(&b, p->key);
		if (p->value != NULL && p->value[0] != '\0') {
			sb_puts(&b, "=");
			sb_put_encoded(&b, p->value);
		}
	}
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* ------------------------------------------------------------------------ */
/* Option values                                                            */
/* ------------------------------------------------------------------------ */

/* Parses the decimal digits at *s (at least one) into *out, advancing *s.
 * Returns 0, or -1 on no digits or overflow. */
static int parse_digits(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;

	if (!is_digit((unsigned char)*p))
		return -1;
	for (; is_digit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*s = p;
	*out = v;
	return 0;
}

int dcp_parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	unsigned shift = 0;

	if (s == NULL || out == NULL || parse_digits(&s, &v) != 0)
		return DCP_EINVAL;
	switch (to_lower((unsigned char)*s)) {
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
		break;
	}
	if (shift != 0) {
		s++;
		/* "KiB": the 'i' only with a prefix, and then the 'B' is needed */
		if (*s == 'i' && (s[1] == 'B' || s[1] == 'b'))
			s++;
	}
	if (*s == 'B' || *s == 'b')
		s++;
	if (*s != '\0' || v > (UINT64_MAX >> shift))
		return DCP_EINVAL;
	*out = v << shift;
	return DCP_OK;
}

int dcp_parse_int(const char *s, long long min, long long max, long long *out)
{
	uint64_t mag;
	int neg = 0;
	long long v;

	if (s == NULL || out == NULL)
		return DCP_EINVAL;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (parse_digits(&s, &mag) != 0 || *s != '\0')
		return DCP_EINVAL;
	if (neg) {
		if (mag > (uint64_t)LLONG_MAX + 1)
			return DCP_EINVAL;
		v = mag == (uint64_t)LLONG_MAX + 1 ? LLONG_MIN : -(long long)mag;
	} else {
		if (mag > (uint64_t)LLONG_MAX)
			return DCP_EINVAL;
		v = (long long)mag;
	}
	if (v < min || v > max)
		return DCP_EINVAL;
	*out = v;
	return DCP_OK;
}

static int eq_nocase(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++)
		if (to_lower((unsigned char)*a) != to_lower((unsigned char)*b))
			return 0;
	return *a == *b;
}

int dcp_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	size_t i;

	if (s == NULL || out == NULL)
		return DCP_EINVAL;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (eq_nocase(s, yes[i])) {
			*out = 1;
			return DCP_OK;
		}
		if (eq_nocase(s, no[i])) {
			*out = 0;
			return DCP_OK;
		}
	}
	return DCP_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Rank sets                                                                */
/* ------------------------------------------------------------------------ */

#define RANK_MAX 65535

/* One item of a rank list: ranks lo..hi. */
typedef struct rank_span {
	int lo, hi;
} rank_span;

static int cmp_span(const void *a, const void *b)
{
	int x = ((const rank_span *)a)->lo, y = ((const rank_span *)b)->lo;
	return (x > y) - (x < y);
}

static void skip_spaces(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* Parses one rank (0..RANK_MAX) at *p, advancing it. */
static int parse_rank(const char **p, int *out)
{
	uint64_t v;

	skip_spaces(p);
	if (parse_digits(p, &v) != 0 || v > RANK_MAX)
		return -1;
	skip_spaces(p);
	*out = (int)v;
	return 0;
}

/*
 * The items are collected as spans and expanded once, after sorting and
 * merging them, so that time and memory stay proportional to the length of
 * the list plus the ranks in the set (at most RANK_MAX + 1), however many
 * items repeat or overlap ("0-65535,0-65535,...").
 */
int dcp_rank_set_parse(const char *s, dcp_rank_set *out, dcp_msg *msg)
{
	const char *p;
	rank_span *spans = NULL;
	size_t cap = 0, nspans = 0, total = 0, i;
	int next, r;

	if (out == NULL) {
		dcp_msgf(msg, "dcp_rank_set_parse: out is NULL");
		return DCP_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (s == NULL) {
		dcp_msgf(msg, "rank list is NULL");
		return DCP_EINVAL;
	}
	p = s;
	skip_spaces(&p);
	if (*p == '\0')
		return DCP_OK;
	if (*p == '*') {
		p++;
		skip_spaces(&p);
		if (*p != '\0') {
			dcp_msgf(msg, "bad rank list '%s': '*' (all ranks) must stand alone", s);
			return DCP_EINVAL;
		}
		out->all = 1;
		return DCP_OK;
	}
	for (;;) {
		int lo, hi;
		const char *item = p;

		if (parse_rank(&p, &lo) != 0)
			goto bad_item;
		hi = lo;
		if (*p == '-') {
			p++;
			if (parse_rank(&p, &hi) != 0)
				goto bad_item;
			if (hi < lo) {
				dcp_msgf(msg, "bad rank list '%s': range %d-%d is reversed (write %d-%d)", s,
				         lo, hi, hi, lo);
				free(spans);
				return DCP_EINVAL;
			}
		}
		if (*p != ',' && *p != '\0')
			goto bad_item;
		if (nspans == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			rank_span *ns = realloc(spans, ncap * sizeof(*ns));
			if (ns == NULL)
				goto nomem;
			spans = ns;
			cap = ncap;
		}
		spans[nspans].lo = lo;
		spans[nspans].hi = hi;
		nspans++;
		if (*p == '\0')
			break;
		p++; /* ',' */
		continue;
	bad_item:
		dcp_msgf(msg,
		         "bad rank list '%s' at '%s': expected ranks (0..%d) or ranges like 0-2, separated "
		         "by ',', or '*' for all",
		         s, item, RANK_MAX);
		free(spans);
		return DCP_EINVAL;
	}
	/* Sorted by start, each span adds its ranks from `next` (the first rank
	 * above those of the spans before it) up. */
	qsort(spans, nspans, sizeof(*spans), cmp_span);
	for (i = 0, next = 0; i < nspans; i++) {
		r = spans[i].lo > next ? spans[i].lo : next;
		if (spans[i].hi >= r) {
			total += (size_t)(spans[i].hi - r) + 1;
			next = spans[i].hi + 1;
		}
	}
	out->ranks = malloc(total * sizeof(int));
	if (out->ranks == NULL)
		goto nomem;
	for (i = 0, next = 0; i < nspans; i++) {
		for (r = spans[i].lo > next ? spans[i].lo : next; r <= spans[i].hi; r++)
			out->ranks[out->n++] = r;
		if (spans[i].hi >= next)
			next = spans[i].hi + 1;
	}
	free(spans);
	return DCP_OK;
nomem:
	dcp_msgf(msg, "out of memory parsing rank list '%s'", s);
	free(spans);
	return DCP_ENOMEM;
}

int dcp_rank_set_has(const dcp_rank_set *set, int rank)
{
	size_t lo = 0, hi;

	if (set == NULL || rank < 0)
		return 0;
	if (set->all)
		return 1;
	hi = set->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (set->ranks[mid] == rank)
			return 1;
		if (set->ranks[mid] < rank)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void dcp_rank_set_clear(dcp_rank_set *set)
{
	if (set == NULL)
		return;
	free(set->ranks);
	memset(set, 0, sizeof(*set));
}
