/*
 * The plugin registry and the URL pipeline: every error it can give (empty
 * id, no scheme, unknown scheme, duplicate scheme, missing entry symbol,
 * incomplete table, newer ABI, failing entry point, missing file), the bare
 * path rule, compiled-in plugins, explicit .so paths, DCP_PLUGIN_PATH, and
 * the listing of every plugin on the search path.
 *
 * The malformed plugins are built by tests/plugins/CMakeLists.txt into
 * <build>/lib/dcp/test-plugins/{bad,good}, found from the test executable's
 * directory (or $DCP_TEST_PLUGIN_DIR).
 *
 * Each Criterion test runs in a process of its own, so tests may set
 * DCP_PLUGIN_PATH freely.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/storage.h"
#include "dcptest.h"

#define PATH_BUF 4096

/* Finds rel (a path inside the build tree) from the executable's directory
 * and up to four levels above it. */
static int find_build_path(const char *rel, char *out, size_t outlen)
{
	char dir[PATH_BUF];
	dt_exe_dir(dir, sizeof(dir));
	for (int up = 0; up <= 4; up++) {
		char *slash;
		int n = snprintf(out, outlen, "%s/%s", dir, rel);
		if (n > 0 && (size_t)n < outlen && access(out, F_OK) == 0)
			return 1;
		slash = strrchr(dir, '/');
		if (slash == NULL || slash == dir)
			break;
		*slash = '\0';
	}
	return 0;
}

/* <build>/lib/dcp/test-plugins/<sub>. */
static char *test_plugin_dir(const char *sub, char *out, size_t outlen)
{
	const char *env = getenv("DCP_TEST_PLUGIN_DIR");
	char rel[256];
	if (env != NULL && env[0] != '\0') {
		dt_fmt(out, outlen, "%s/%s", env, sub);
		return out;
	}
	if (!find_build_path(dt_fmt(rel, sizeof(rel), "lib/dcp/test-plugins/%s", sub), out, outlen))
		cr_assert_fail(
		        "cannot find lib/dcp/test-plugins/%s above %s: build tests/plugins "
		        "(tests/CMakeLists.txt needs add_subdirectory(plugins)) or set DCP_TEST_PLUGIN_DIR",
		        sub, dt_exe_dir(rel, sizeof(rel)));
	return out;
}

static char *test_plugin(const char *sub, const char *name, char *out, size_t outlen)
{
	char dir[PATH_BUF];
	test_plugin_dir(sub, dir, sizeof(dir));
	dt_fmt(out, outlen, "%s/dcp-%s.so", dir, name);
	cr_assert_eq(access(out, R_OK), 0, "test plugin %s is missing: build tests/plugins", out);
	return out;
}

/* The build tree's mem plugin. */
static char *mem_plugin_path(char *out, size_t outlen)
{
	if (!find_build_path("lib/dcp/plugins/dcp-mem.so", out, outlen))
		cr_assert_fail("cannot find lib/dcp/plugins/dcp-mem.so above the test executable");
	return out;
}

static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out;
	char buf[1 << 16];
	size_t n;
	cr_assert_not_null(in, "cannot open %s", from);
	out = fopen(to, "wb");
	cr_assert_not_null(out, "cannot create %s", to);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		cr_assert_eq(fwrite(buf, 1, n, out), n, "short write to %s", to);
	cr_assert_eq(ferror(in), 0, "read error on %s", from);
	fclose(in);
	cr_assert_eq(fclose(out), 0, "cannot write %s", to);
}

static dcp_registry *new_registry(void)
{
	dcp_registry *reg = NULL;
	dcp_error *err = NULL;
	int rc = dcp_registry_new(&reg, &err);
	if (rc != DCP_OK)
		cr_assert_fail("dcp_registry_new returned %d: %s", rc, dt_error_text(err));
	cr_assert_not_null(reg);
	return reg;
}

/* The local error of a failed registry call: step "local", one entry whose
 * code is rc and whose message is not empty. Returns its formatted text. */
static char *local_error(int rc, dcp_error *err, const char *what)
{
	char *t;
	cr_assert_neq(rc, DCP_OK, "%s: succeeded, expected a failure", what);
	cr_assert_not_null(err, "%s: failed with %d (%s) but gave no error object", what, rc,
	                   dcp_strerror(rc));
	t = dt_error_text(err);
	cr_assert_str_eq(dcp_error_step(err), "local", "%s: step '%s', expected 'local':\n%s", what,
	                 dcp_error_step(err), t);
	cr_assert_geq(dcp_error_count(err), 1, "%s: the error has no entry", what);
	cr_assert_eq(dcp_error_code(err), rc, "%s: returned %d but the error's code is %d:\n%s", what, rc,
	             dcp_error_code(err), t);
	cr_assert(dcp_error_message(err, 0) != NULL && dcp_error_message(err, 0)[0] != '\0',
	          "%s: empty message", what);
	return t;
}

static void expect_mention(const char *text, const char *needle, const char *what)
{
	cr_assert(strstr(text, needle) != NULL, "%s: the error does not mention '%s':\n%s", what, needle,
	          text);
}

/* ------------------------------------------------------------------------ */
/* The URL pipeline                                                         */
/* ------------------------------------------------------------------------ */
Test(registry, empty_id, .timeout = DT_TIMEOUT)
{
	dcp_error *err = NULL;
	dt_layout *l = dt_layout_new();
	dt_outcome o;
	dt_expect e = {0};
	char *t;
	int rc = dcp_validate_checkpoint_id(NULL, "", 1, &err);
	cr_assert_eq(rc, DCP_EID, "validate(\"\") returned %d (%s), expected DCP_EID", rc, dcp_strerror(rc));
	t = local_error(rc, err, "validate of an empty id");
	expect_mention(t, "empty", "validate of an empty id");
	free(t);
	dcp_error_free(err);
	err = NULL;

	rc = dcp_validate_checkpoint_id(NULL, NULL, 0, &err);
	cr_assert(rc == DCP_EID || rc == DCP_EINVAL, "validate(NULL) returned %d (%s)", rc, dcp_strerror(rc));
	dcp_error_free(err);

	/* A save to an empty id fails the same on every rank. */
	dt_add_bytes(l, "x", 1, DT_RANKS(2));
	dt_save(l, 2, "", NULL, 1, &o);
	e.status = DCP_EID;
	e.any_ranks = 1;
	e.mention = "empty";
	dt_assert_failed(&o, &e, "save to an empty id");
	dt_outcome_clear(&o);
	dt_load(l, 2, "", NULL, 1, &o);
	dt_assert_failed(&o, &e, "load from an empty id");
	dt_outcome_clear(&o);
	dt_layout_free(l);
}

Test(registry, no_scheme, .timeout = DT_TIMEOUT)
{
	const char *bad[] = {"://nothing-before", "1mem://starts-with-a-digit", "me m://space-in-scheme"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dcp_error *err = NULL;
		char what[128];
		int rc = dcp_validate_checkpoint_id(NULL, bad[i], 1, &err);
		dt_fmt(what, sizeof(what), "validate(\"%s\")", bad[i]);
		cr_assert_eq(rc, DCP_EID, "%s returned %d (%s), expected DCP_EID", what, rc,
		             dcp_strerror(rc));
		free(local_error(rc, err, what));
		dcp_error_free(err);
	}
}

Test(registry, unknown_scheme, .timeout = DT_TIMEOUT)
{
	char dir[PATH_BUF];
	dcp_registry *reg;
	dcp_error *err = NULL;
	dcp_plugin *p = NULL;
	dt_layout *l = dt_layout_new();
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dt_outcome o;
	dt_expect e = {0};
	char *t;
	int rc;

	dt_mkdtemp(dir, sizeof(dir), "dcp-empty-plugin-dir");
	cr_assert_eq(setenv("DCP_PLUGIN_PATH", dir, 1), 0);
	reg = new_registry();

	rc = dcp_registry_find(reg, "x://a/b", &p, &err);
	cr_assert_eq(rc, DCP_ENOPLUGIN, "find(x://a/b) returned %d (%s)", rc, dcp_strerror(rc));
	t = local_error(rc, err, "find of an unknown scheme");
	expect_mention(t, "no plugin for scheme 'x'", "find of an unknown scheme");
	expect_mention(t, dir, "find of an unknown scheme (the searched directories)");
	expect_mention(t, "lib/dcp/plugins", "find of an unknown scheme (the build tree's plugin directory)");
	free(t);
	dcp_error_free(err);
	err = NULL;

	rc = dcp_validate_checkpoint_id(reg, "x://a/b", 1, &err);
	cr_assert_eq(rc, DCP_ENOPLUGIN);
	free(local_error(rc, err, "validate of an unknown scheme"));
	dcp_error_free(err);

	/* Through save: the same error on every rank, before anything is written. */
	dt_add_bytes(l, "x", 1, DT_RANKS(3));
	so.registry = reg;
	dt_save(l, 3, "x://a/b", &so, 1, &o);
	e.status = DCP_ENOPLUGIN;
	e.any_ranks = 1;
	e.mention = "no plugin for scheme 'x'";
	dt_assert_failed(&o, &e, "save to x://a/b");
	dt_outcome_clear(&o);

	/* An unknown scheme inside the faulty wrapper. */
	err = NULL;
	rc = dcp_validate_checkpoint_id(reg, "faulty+nosuchscheme://a", 1, &err);
	cr_assert_neq(rc, DCP_OK, "faulty+nosuchscheme://a was accepted");
	t = dt_error_text(err);
	expect_mention(t, "nosuchscheme", "validate of faulty+nosuchscheme://a");
	free(t);
	dcp_error_free(err);

	dcp_registry_free(reg);
	dt_layout_free(l);
	dt_rmtree(dir);
}

Test(registry, bare_path_means_file, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg = new_registry();
	dcp_error *err = NULL;
	dcp_plugin *p = NULL;
	dt_layout *l = dt_layout_new();
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dt_noop_counts c;
	dt_outcome o;
	const char *ids[] = {"/tmp/dcp-bare/abs", "relative/dir", "file:///tmp/dcp-bare/url"};
	int rc;

	/* A compiled-in stand-in for the fs plugin, so that the rule is tested
	 * on its own. */
	rc = dcp_registry_add(reg, dt_fakefile_plugin_entry, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_registry_add(fakefile): %s", dt_error_text(err));
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		p = NULL;
		rc = dcp_registry_find(reg, ids[i], &p, &err);
		cr_assert_eq(rc, DCP_OK, "find(%s): %d: %s", ids[i], rc, dt_error_text(err));
		cr_assert(dt_is_noop_plugin(p) && strcmp(p->schemes[0], "file") == 0,
		          "%s did not resolve to the plugin registered for file://", ids[i]);
	}

	/* A save to a bare path reaches that plugin. */
	dt_add_bytes(l, "x", 3, DT_RANKS(2));
	so.registry = reg;
	dt_save(l, 2, "/tmp/dcp-bare/abs", &so, 1, &o);
	dt_assert_ok(&o, "save to a bare path through the file:// stand-in");
	dt_outcome_clear(&o);
	dt_noop_get_counts(p, &c);
	cr_assert_eq(c.writer_open, 2, "writer_open called %u times", c.writer_open);
	cr_assert_eq(c.finish, 1);
	dcp_registry_free(reg);
	dt_layout_free(l);
}

Test(registry, bare_path_uses_the_fs_plugin, .timeout = DT_TIMEOUT)
{
	dcp_error *err = NULL;
	dcp_plugin *p = NULL;
	int rc, has_file = 0;
	unsetenv("DCP_PLUGIN_PATH");
	rc = dcp_registry_find(NULL, "/tmp/dcp-bare-default", &p, &err);
	cr_assert_eq(rc, DCP_OK, "find of a bare path in the default registry: %d: %s", rc,
	             dt_error_text(err));
	for (const char *const *s = p->schemes; s && *s; s++)
		has_file |= strcmp(*s, "file") == 0;
	cr_assert(has_file, "a bare path resolved to plugin '%s', which does not serve file://", p->name);
}

/* ------------------------------------------------------------------------ */
/* Registration                                                             */
/* ------------------------------------------------------------------------ */
static size_t find_info(dcp_registry *reg, const char *name, dcp_plugin_info *out)
{
	size_t n = dcp_registry_count(reg);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(dcp_registry_info(reg, i, out), DCP_OK, "dcp_registry_info(%zu) of %zu failed",
		             i, n);
		if (out->name != NULL && strcmp(out->name, name) == 0)
			return i;
	}
	return (size_t)-1;
}

static int has_scheme(const dcp_plugin_info *info, const char *scheme)
{
	for (const char *const *s = info->schemes; s && *s; s++)
		if (strcmp(*s, scheme) == 0)
			return 1;
	return 0;
}

Test(registry, compiled_in_plugin, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg = new_registry();
	dcp_error *err = NULL;
	dcp_plugin *p = NULL, *p2 = NULL;
	dcp_plugin_info info;
	size_t before = dcp_registry_count(reg), i;
	int rc = dcp_registry_add(reg, dt_noop_plugin_entry, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_registry_add: %s", dt_error_text(err));
	cr_assert_eq(dcp_registry_count(reg), before + 1);
	i = find_info(reg, "noop", &info);
	cr_assert_neq(i, (size_t)-1, "the registry does not list the compiled-in plugin");
	cr_assert(has_scheme(&info, "noop"));
	cr_assert_null(info.schemes[1], "schemes are not NULL-terminated after 'noop'");
	cr_assert_eq(info.abi_version, DCP_PLUGIN_ABI_VERSION);
	cr_assert_str_eq(info.path, "(built in)");
	cr_assert_eq(info.capabilities, DCP_CAP_PROCESS_LOCAL);
	cr_assert_neq(dcp_registry_info(reg, dcp_registry_count(reg), &info), DCP_OK,
	              "dcp_registry_info accepted an index past the end");

	rc = dcp_registry_find(reg, "noop://some/where", &p, &err);
	cr_assert_eq(rc, DCP_OK, "find(noop://...): %s", dt_error_text(err));
	cr_assert(dt_is_noop_plugin(p));
	rc = dcp_registry_find(reg, "NOOP://upper/case/scheme", &p2, &err);
	cr_assert_eq(rc, DCP_OK, "schemes compare without case: find(NOOP://...): %s", dt_error_text(err));
	cr_assert_eq(p2, p);
	cr_assert_eq(dcp_validate_checkpoint_id(reg, "noop://x", 1, &err), DCP_OK);
	dcp_registry_free(reg);
}

Test(registry, duplicate_scheme, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg = new_registry();
	dcp_error *err = NULL;
	char mem[PATH_BUF], dir[PATH_BUF], copy[PATH_BUF + 32];
	size_t n;
	char *t;
	int rc = dcp_registry_add(reg, dt_noop_plugin_entry, &err);
	cr_assert_eq(rc, DCP_OK, "first registration: %s", dt_error_text(err));
	n = dcp_registry_count(reg);
	rc = dcp_registry_add(reg, dt_noop_plugin_entry, &err);
	t = local_error(rc, err, "second registration of scheme noop");
	expect_mention(t, "noop", "second registration of scheme noop");
	free(t);
	dcp_error_free(err);
	err = NULL;
	cr_assert_eq(dcp_registry_count(reg), n, "a refused plugin was registered anyway");

	/* The same .so file again registers nothing new (whether or not that
	 * is reported). */
	mem_plugin_path(mem, sizeof(mem));
	rc = dcp_registry_load(reg, mem, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_registry_load(%s): %s", mem, dt_error_text(err));
	n = dcp_registry_count(reg);
	rc = dcp_registry_load(reg, mem, &err);
	dcp_error_free(err);
	err = NULL;
	cr_assert_eq(dcp_registry_count(reg), n, "loading %s twice registered it twice", mem);

	/* A second file serving the same scheme: a copy of the mem plugin. */
	dt_mkdtemp(dir, sizeof(dir), "dcp-dup-plugin");
	copy_file(mem, dt_fmt(copy, sizeof(copy), "%s/dcp-mem.so", dir));
	rc = dcp_registry_load(reg, copy, &err);
	t = local_error(rc, err, "load of a second plugin for scheme mem");
	expect_mention(t, "'mem'", "load of a second plugin for scheme mem");
	expect_mention(t, copy, "load of a second plugin for scheme mem");
	free(t);
	dcp_error_free(err);
	cr_assert_eq(dcp_registry_count(reg), n, "a second plugin for scheme mem was registered");
	dcp_registry_free(reg);
	dt_rmtree(dir);
}

Test(registry, explicit_so_path, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg = new_registry();
	dcp_error *err = NULL;
	dcp_plugin *p = NULL;
	dcp_plugin_info info;
	dcp_save_options so = DCP_SAVE_OPTIONS_INIT;
	dcp_load_options lo = DCP_LOAD_OPTIONS_INIT;
	char mem[PATH_BUF], real_mem[PATH_MAX], real_info[PATH_MAX];
	dt_layout *l = dt_layout_new();
	uint64_t s[] = {6, 6};
	dt_outcome o;
	int rc;

	mem_plugin_path(mem, sizeof(mem));
	rc = dcp_registry_load(reg, mem, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_registry_load(%s): %s", mem, dt_error_text(err));
	cr_assert_neq(find_info(reg, "mem", &info), (size_t)-1, "mem is not listed after loading %s", mem);
	cr_assert(has_scheme(&info, "mem"));
	cr_assert_eq(info.abi_version, DCP_PLUGIN_ABI_VERSION);
	cr_assert_not_null(realpath(mem, real_mem));
	cr_assert_not_null(realpath(info.path, real_info), "info.path '%s' is not a file", info.path);
	cr_assert_str_eq(real_info, real_mem);
	cr_assert_eq(dcp_registry_find(reg, "mem://explicit", &p, &err), DCP_OK);

	/* And it works through the registry it was loaded into. */
	dt_split(dt_add_sharded(l, "w", DCP_F32, 2, s), 0, 3, NULL);
	so.registry = reg;
	lo.registry = reg;
	dt_save(l, 3, "mem://explicit", &so, 7, &o);
	dt_assert_ok(&o, "save through an explicitly loaded mem plugin");
	dt_outcome_clear(&o);
	dt_load(l, 3, "mem://explicit", &lo, 7, &o);
	dt_assert_ok(&o, "load through it");
	dt_outcome_clear(&o);
	dcp_registry_free(reg);
	dt_layout_free(l);
}

Test(registry, missing_so_file, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg = new_registry();
	dcp_error *err = NULL;
	const char *path = "/nonexistent/dcp-test/dcp-nothing.so";
	int rc = dcp_registry_load(reg, path, &err);
	char *t;
	cr_assert_eq(rc, DCP_EPLUGIN, "load of a missing file returned %d (%s)", rc, dcp_strerror(rc));
	t = local_error(rc, err, "load of a missing .so");
	expect_mention(t, path, "load of a missing .so");
	free(t);
	dcp_error_free(err);
	dcp_registry_free(reg);
}

/* Loads a bad test plugin and checks the refusal. */
static void refused(const char *name, int want, const char *m1, const char *m2)
{
	dcp_registry *reg = new_registry();
	dcp_error *err = NULL;
	char path[PATH_BUF], what[128], url[64];
	dcp_plugin *p = NULL;
	size_t n = dcp_registry_count(reg);
	char *t;
	int rc;
	test_plugin("bad", name, path, sizeof(path));
	rc = dcp_registry_load(reg, path, &err);
	dt_fmt(what, sizeof(what), "load of dcp-%s.so", name);
	t = local_error(rc, err, what);
	cr_assert_eq(rc, want, "%s returned %d (%s), expected %d (%s):\n%s", what, rc, dcp_strerror(rc), want,
	             dcp_strerror(want), t);
	expect_mention(t, path, what);
	if (m1)
		expect_mention(t, m1, what);
	if (m2)
		expect_mention(t, m2, what);
	free(t);
	dcp_error_free(err);
	err = NULL;
	cr_assert_eq(dcp_registry_count(reg), n, "%s: the refused plugin was registered", what);
	/* Its scheme is not served. */
	rc = dcp_registry_find(reg, dt_fmt(url, sizeof(url), "%s://x", name), &p, &err);
	cr_assert_eq(rc, DCP_ENOPLUGIN, "%s: find(%s) returned %d after the refusal", what, url, rc);
	dcp_error_free(err);
	dcp_registry_free(reg);
}

Test(registry, so_without_entry_symbol, .timeout = DT_TIMEOUT)
{
	refused("nosym", DCP_EPLUGIN, DCP_PLUGIN_ENTRY_SYMBOL, NULL);
}

Test(registry, incomplete_ops_table, .timeout = DT_TIMEOUT)
{
	refused("incomplete", DCP_EPLUGIN, "writer_open", NULL);
}

Test(registry, newer_abi_version, .timeout = DT_TIMEOUT)
{
	char v[16];
	refused("newabi", DCP_EVERSION, dt_fmt(v, sizeof(v), "%d", DCP_PLUGIN_ABI_VERSION + 1), NULL);
}

Test(registry, previous_abi_version_loads_and_its_missing_slots_are_not_called, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg = new_registry();
	dcp_error *err = NULL;
	dcp_plugin *p = NULL;
	dcp_gc_report report;
	char path[PATH_BUF];
	char *t;
	int rc;

	test_plugin("good", "oldabi", path, sizeof(path));
	rc = dcp_registry_load(reg, path, &err);
	cr_assert_eq(rc, DCP_OK, "a plugin of the previous table version was refused:\n%s",
	             err != NULL ? dt_error_text(err) : "");
	rc = dcp_registry_find(reg, "oldabi://x", &p, &err);
	cr_assert_eq(rc, DCP_OK);
	cr_assert_eq(p->version, 1u);
	/* gc is a version-2 slot: answered by the core, never read from the
	 * (shorter) version-1 object. */
	rc = dcp_gc("oldabi://x", NULL, reg, &report, &err);
	cr_assert_eq(rc, DCP_EUNSUPPORTED, "dcp_gc on a version-1 plugin returned %s", dcp_strerror(rc));
	t = dt_error_text(err);
	cr_assert(strstr(t, "oldabi") != NULL, "the error does not name the plugin: %s", t);
	free(t);
	dcp_error_free(err);
	dcp_registry_free(reg);
}

Test(registry, entry_point_fails, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg = new_registry();
	dcp_error *err = NULL;
	char path[PATH_BUF];
	char *t;
	int rc;
	test_plugin("bad", "failentry", path, sizeof(path));
	rc = dcp_registry_load(reg, path, &err);
	t = local_error(rc, err, "load of dcp-failentry.so");
	expect_mention(t, "refusing to start on purpose", "load of dcp-failentry.so (the plugin's message)");
	expect_mention(t, path, "load of dcp-failentry.so");
	free(t);
	dcp_error_free(err);
	dcp_registry_free(reg);
}

/* ------------------------------------------------------------------------ */
/* Search path                                                              */
/* ------------------------------------------------------------------------ */
Test(registry, plugin_path_honoured, .timeout = DT_TIMEOUT)
{
	char good[PATH_BUF], env[2 * PATH_BUF], real_good[PATH_MAX], real_info[PATH_MAX];
	dcp_registry *reg;
	dcp_error *err = NULL;
	dcp_plugin *p = NULL;
	dcp_plugin_info info;
	int rc;

	test_plugin_dir("good", good, sizeof(good));
	unsetenv("DCP_PLUGIN_PATH");
	reg = new_registry();
	rc = dcp_registry_find(reg, "probe://x", &p, &err);
	cr_assert_eq(rc, DCP_ENOPLUGIN, "probe:// was found without DCP_PLUGIN_PATH (%d)", rc);
	dcp_error_free(err);
	err = NULL;
	dcp_registry_free(reg);

	/* A ':'-separated list whose first entry does not exist. */
	dt_fmt(env, sizeof(env), "/nonexistent/dcp-plugins:%s", good);
	cr_assert_eq(setenv("DCP_PLUGIN_PATH", env, 1), 0);
	reg = new_registry();
	rc = dcp_registry_find(reg, "probe://x", &p, &err);
	cr_assert_eq(rc, DCP_OK, "probe:// not found with DCP_PLUGIN_PATH=%s: %s", env, dt_error_text(err));
	cr_assert_str_eq(p->name, "probe");
	cr_assert_neq(find_info(reg, "probe", &info), (size_t)-1);
	cr_assert_not_null(realpath(good, real_good));
	cr_assert_not_null(realpath(info.path, real_info), "info.path '%s' is not a file", info.path);
	cr_assert(strncmp(real_info, real_good, strlen(real_good)) == 0, "probe loaded from %s, not from %s",
	          real_info, real_good);
	/* The build tree's plugins are still found after DCP_PLUGIN_PATH. */
	rc = dcp_registry_find(reg, "mem://x", &p, &err);
	cr_assert_eq(rc, DCP_OK, "mem:// not found with DCP_PLUGIN_PATH set: %s", dt_error_text(err));
	dcp_registry_free(reg);
}

Test(registry, load_all_lists_mem_and_faulty, .timeout = DT_TIMEOUT)
{
	dcp_registry *reg;
	dcp_error *err = NULL;
	dcp_plugin_info info;
	int rc;
	unsetenv("DCP_PLUGIN_PATH");
	reg = new_registry();
	rc = dcp_registry_load_all(reg, &err);
	cr_assert_eq(rc, DCP_OK, "dcp_registry_load_all: %d:\n%s", rc, dt_error_text(err));
	cr_assert_geq(dcp_registry_count(reg), 2);

	cr_assert_neq(find_info(reg, "mem", &info), (size_t)-1, "load_all did not list mem");
	cr_assert(has_scheme(&info, "mem"));
	cr_assert_eq(info.abi_version, DCP_PLUGIN_ABI_VERSION);
	cr_assert(info.path != NULL && strstr(info.path, "dcp-mem.so") != NULL, "mem's path is '%s'",
	          info.path ? info.path : "(null)");
	cr_assert(info.capabilities & DCP_CAP_PROCESS_LOCAL, "mem does not say it is process-local");

	cr_assert_neq(find_info(reg, "faulty", &info), (size_t)-1, "load_all did not list faulty");
	cr_assert_eq(info.abi_version, DCP_PLUGIN_ABI_VERSION);
	cr_assert(info.path != NULL && strstr(info.path, "dcp-faulty.so") != NULL, "faulty's path is '%s'",
	          info.path ? info.path : "(null)");
	cr_assert(info.capabilities & DCP_CAP_WRAPPER, "faulty does not say it is a wrapper");

	/* Idempotent: a second call loads nothing twice. */
	{
		size_t n = dcp_registry_count(reg);
		rc = dcp_registry_load_all(reg, &err);
		cr_assert_eq(rc, DCP_OK, "second dcp_registry_load_all: %s", dt_error_text(err));
		cr_assert_eq(dcp_registry_count(reg), n);
	}
	dcp_registry_free(reg);
}

Test(registry, load_all_reports_bad_plugins_and_loads_the_rest, .timeout = DT_TIMEOUT)
{
	char bad[PATH_BUF];
	dcp_registry *reg;
	dcp_error *err = NULL;
	dcp_plugin_info info;
	char *t;
	int rc;
	test_plugin_dir("bad", bad, sizeof(bad));
	cr_assert_eq(setenv("DCP_PLUGIN_PATH", bad, 1), 0);
	reg = new_registry();
	rc = dcp_registry_load_all(reg, &err);
	cr_assert_neq(rc, DCP_OK, "load_all over a folder of malformed plugins succeeded");
	cr_assert_not_null(err);
	cr_assert_neq(find_info(reg, "mem", &info), (size_t)-1, "mem was not loaded after the bad plugins");
	cr_assert_neq(find_info(reg, "faulty", &info), (size_t)-1,
	              "faulty was not loaded after the bad plugins");
	/* Every refused file is reported, not only the first. */
	t = dt_error_text(err);
	expect_mention(t, "dcp-nosym.so", "load_all");
	expect_mention(t, "dcp-incomplete.so", "load_all");
	expect_mention(t, "dcp-newabi.so", "load_all");
	expect_mention(t, "dcp-failentry.so", "load_all");
	free(t);
	dcp_error_free(err);
	cr_assert_neq(find_info(reg, "mem", &info), (size_t)-1, "mem was not loaded after the bad plugins");
	cr_assert_neq(find_info(reg, "faulty", &info), (size_t)-1,
	              "faulty was not loaded after the bad plugins");
	cr_assert_eq(find_info(reg, "incomplete", &info), (size_t)-1, "a refused plugin is listed");
	dcp_registry_free(reg);
}
