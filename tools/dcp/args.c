/*
 * Option parsing and small helpers shared by the commands of `dcp`.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dcp_tool.h"
#include "url.h"

static const arg_spec *find_spec(const arg_spec *specs, const char *name, size_t len)
{
	for (const arg_spec *s = specs; s != NULL && s->name != NULL; s++) {
		if (strlen(s->name) == len && strncmp(s->name, name, len) == 0)
			return s;
	}
	return NULL;
}

int args_parse(const char *cmd, const char *usage, int argc, char **argv, const arg_spec *specs,
               const char **pos, int min_pos, int max_pos, int *npos)
{
	int n = 0;
	int only_pos = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!only_pos && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			fputs(usage, stdout);
			return TOOL_EXIT_OK;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!only_pos && strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (!only_pos && a[0] == '-' && a[1] != '\0') {
			const char *name = a + (a[1] == '-' ? 2 : 1);
			const char *eq = strchr(name, '=');
			size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
			const arg_spec *s = a[1] == '-' ? find_spec(specs, name, len) : NULL;
			if (s == NULL) {
				fprintf(stderr, "dcp %s: unknown option '%s'\nTry 'dcp %s --help'.\n", cmd, a,
				        cmd);
				return TOOL_EXIT_USAGE;
			}
			if (s->value == NULL) {
				if (eq != NULL) {
					fprintf(stderr,
					        "dcp %s: option '--%s' takes no value\nTry 'dcp %s "
					        "--help'.\n",
					        cmd, s->name, cmd);
					return TOOL_EXIT_USAGE;
				}
				*s->flag = 1;
			} else if (eq != NULL) {
				*s->value = eq + 1;
			} else if (i + 1 < argc) {
				*s->value = argv[++i];
			} else {
				fprintf(stderr, "dcp %s: option '--%s' needs a value\nTry 'dcp %s --help'.\n",
				        cmd, s->name, cmd);
				return TOOL_EXIT_USAGE;
			}
			continue;
		}
		if (n >= max_pos) {
			fprintf(stderr, "dcp %s: unexpected argument '%s'\nTry 'dcp %s --help'.\n", cmd, a,
			        cmd);
			return TOOL_EXIT_USAGE;
		}
		pos[n++] = a;
	}
	if (n < min_pos) {
		fprintf(stderr, "dcp %s: missing %s\nTry 'dcp %s --help'.\n", cmd,
		        min_pos - n == 1 ? "argument (a checkpoint URL)" : "arguments", cmd);
		return TOOL_EXIT_USAGE;
	}
	*npos = n;
	return -1;
}

int arg_int(const char *cmd, const char *opt, const char *s, long long min, long long max, long long *out)
{
	if (s == NULL)
		return DCP_OK;
	if (dcp_parse_int(s, min, max, out) != DCP_OK) {
		fprintf(stderr, "dcp %s: --%s: expected an integer from %lld to %lld, got '%s'\n", cmd, opt,
		        min, max, s);
		return TOOL_EXIT_USAGE;
	}
	return DCP_OK;
}

int arg_size(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
	if (s == NULL)
		return DCP_OK;
	if (dcp_parse_size(s, out) != DCP_OK || *out == 0) {
		fprintf(stderr, "dcp %s: --%s: expected a size such as 4096, 64K, 256M or 2G, got '%s'\n",
		        cmd, opt, s);
		return TOOL_EXIT_USAGE;
	}
	return DCP_OK;
}

int tool_exit_code(int code)
{
	switch (code) {
	case DCP_OK:
		return TOOL_EXIT_OK;
	case DCP_EID:
	case DCP_ENOPLUGIN:
	case DCP_EINVAL:
		return TOOL_EXIT_USAGE;
	default:
		return TOOL_EXIT_FAIL;
	}
}

int tool_report_error(const char *what, int code, const dcp_error *err)
{
	if (err != NULL) {
		char *text = dcp_error_format(err);
		if (text != NULL) {
			/* A local (non-collective) error has no rank: say which
			 * command failed instead. */
			if (strcmp(dcp_error_step(err), "local") == 0)
				fprintf(stderr, "%s: ", what);
			fputs(text, stderr);
			size_t len = strlen(text);
			if (len > 0 && text[len - 1] != '\n')
				fputc('\n', stderr);
			free(text);
		} else {
			fprintf(stderr, "%s: %s (out of memory while formatting the error)\n", what,
			        dcp_strerror(dcp_error_code(err)));
		}
		code = dcp_error_code(err);
	} else {
		fprintf(stderr, "%s: %s\n", what, dcp_strerror(code));
	}
	return tool_exit_code(code);
}

char *tool_url_with_threads(const char *url, int threads)
{
	char *base = NULL;

	if (threads <= 0)
		return dcp_strdup(url);
	if (strstr(url, "://") == NULL) {
		/* A bare path: the core would read it as file://; make the URL
		 * explicit (and absolute) so that a query can follow. */
		if (url[0] == '/') {
			base = dcp_asprintf("file://%s", url);
		} else {
			char cwd[PATH_MAX];
			if (getcwd(cwd, sizeof(cwd)) == NULL)
				base = dcp_asprintf("file://./%s", url);
			else
				base = dcp_asprintf("file://%s/%s", cwd, url);
		}
	} else {
		base = dcp_strdup(url);
	}
	if (base == NULL)
		return NULL;

	dcp_url parsed;
	memset(&parsed, 0, sizeof(parsed));
	dcp_msg msg;
	int rc = dcp_url_parse(base, &parsed, &msg);
	int has = rc == DCP_OK && dcp_url_param_get(&parsed, "threads") != NULL;
	dcp_url_clear(&parsed);
	if (rc != DCP_OK || has)
		return base; /* leave a malformed URL for the core to report */
	char *out = dcp_asprintf("%s%cthreads=%d", base, strchr(base, '?') != NULL ? '&' : '?', threads);
	free(base);
	return out;
}

double tool_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *tool_fmt_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}
