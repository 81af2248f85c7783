/*
 * The `dcp` command-line tool (tools/dcp), run as a separate process: exit
 * statuses (0 success, 1 checkpoint failure, 2 usage error or invalid id),
 * messages, `rank R: STAGE:` lines for exactly the failing ranks, and, when
 * the fs plugin is built, save/load round trips across processes, inspect,
 * verify, corruption detection, cp and rm on file:// checkpoints.
 *
 * The binary is <directory of this test executable>/dcp (both are built into
 * build/bin). mem:// checkpoints live in one process only, so every test that
 * needs a checkpoint across two commands uses file:// under a fresh mkdtemp
 * folder, and is skipped when `dcp plugins` lists no "file" scheme.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CLI_TIMEOUT 240.0

typedef struct run_result {
	int code;  /* exit status, or 128 + signal */
	char *out; /* stdout, NUL-terminated, malloc'd */
	char *err; /* stderr */
} run_result;

static void run_result_free(run_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* The dcp binary next to this test program. */
static void dcp_path(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	cr_assert(n > 0, "readlink(/proc/self/exe) failed");
	self[n] = '\0';
	snprintf(buf, len, "%s/dcp", dirname(self));
	cr_assert(access(buf, X_OK) == 0, "no dcp executable at %s: build the dcp_tool target first", buf);
}

static char *slurp_fd(int fd)
{
	struct stat st;
	cr_assert(fstat(fd, &st) == 0);
	char *buf = malloc((size_t)st.st_size + 1);
	cr_assert(buf != NULL);
	ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
	cr_assert(n == st.st_size, "short read of a captured output");
	buf[n] = '\0';
	return buf;
}

/* Runs `dcp args...` (args NULL-terminated, without "dcp") and captures its
 * stdout and stderr through temporary files. */
static run_result run_dcp(const char *const *args)
{
	char bin[PATH_MAX];
	dcp_path(bin, sizeof(bin));
	char *argv[64];
	size_t n = 0;
	argv[n++] = bin;
	for (size_t i = 0; args[i] != NULL; i++) {
		cr_assert(n + 1 < sizeof(argv) / sizeof(argv[0]));
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;

	char outp[] = "/tmp/dcp-cli-out-XXXXXX", errp[] = "/tmp/dcp-cli-err-XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp);
	cr_assert(ofd >= 0 && efd >= 0, "mkstemp failed");
	unlink(outp);
	unlink(errp);

	posix_spawn_file_actions_t fa;
	cr_assert(posix_spawn_file_actions_init(&fa) == 0);
	posix_spawn_file_actions_adddup2(&fa, ofd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, efd, STDERR_FILENO);
	pid_t pid;
	int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert(rc == 0, "posix_spawn(%s) failed: %s", bin, strerror(rc));
	int status = 0;
	cr_assert(waitpid(pid, &status, 0) == pid);

	run_result r;
	r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	r.out = slurp_fd(ofd);
	r.err = slurp_fd(efd);
	close(ofd);
	close(efd);
	return r;
}

#define RUN(...) run_dcp((const char *const[]){__VA_ARGS__, NULL})

#define assert_exit(r, want)                                                                              \
	cr_assert_eq((r).code, (want), "exit status %d, expected %d\nstdout:\n%s\nstderr:\n%s", (r).code, \
	             (want), (r).out, (r).err)

/* 1 if stderr has a line starting with "rank R: " (followed by a stage). */
static int has_rank_line(const char *text, int rank)
{
	char prefix[32];
	int n = snprintf(prefix, sizeof(prefix), "rank %d: ", rank);
	for (const char *line = text; line != NULL && *line != '\0';) {
		if (strncmp(line, prefix, (size_t)n) == 0 && strchr(line + n, ':') != NULL)
			return 1;
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return 0;
}

/* 1 if `dcp plugins` lists a plugin with the scheme "file" (second column:
 * comma-separated schemes). */
static int has_file_plugin(void)
{
	run_result r = RUN("plugins");
	int yes = 0;
	for (char *line = r.out; !yes && line != NULL && *line != '\0';) {
		char *next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		char schemes[256];
		if (sscanf(line, "%*s %255s", schemes) == 1) {
			char *save = NULL;
			for (char *t = strtok_r(schemes, ",", &save); t != NULL && !yes;
			     t = strtok_r(NULL, ",", &save))
				yes = strcmp(t, "file") == 0;
		}
		line = next;
	}
	run_result_free(&r);
	return yes;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A fresh folder for one test's checkpoints; removed by rm_tree. */
static void make_tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/dcp-cli-XXXXXX");
	cr_assert(mkdtemp(buf) != NULL, "mkdtemp failed");
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The largest regular file in dir other than the metadata. */
static void largest_data_file(const char *dir, char *out, size_t len)
{
	DIR *d = opendir(dir);
	cr_assert(d != NULL, "cannot open %s", dir);
	off_t best = -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char p[PATH_MAX];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > best) {
			best = st.st_size;
			snprintf(out, len, "%s", p);
		}
	}
	closedir(d);
	cr_assert(best > 0, "no data file in %s", dir);
}

/* ------------------------------------------------------------------------ */
/* Usage errors: exit 2 with a message                                      */
/* ------------------------------------------------------------------------ */
Test(cli, no_arguments_is_a_usage_error, .timeout = CLI_TIMEOUT)
{
	run_result r = run_dcp((const char *const[]){NULL});
	assert_exit(r, 2);
	cr_assert(strstr(r.err, "usage: dcp") != NULL, "stderr: %s", r.err);
	run_result_free(&r);
}

Test(cli, unknown_command, .timeout = CLI_TIMEOUT)
{
	run_result r = RUN("frobnicate");
	assert_exit(r, 2);
	cr_assert(strstr(r.err, "unknown command 'frobnicate'") != NULL, "stderr: %s", r.err);
	run_result_free(&r);
}

Test(cli, every_command_has_help, .timeout = CLI_TIMEOUT)
{
	const char *cmds[] = {"save", "load", "inspect", "verify", "cp", "rm", "plugins", "demo"};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		run_result r = RUN(cmds[i], "--help");
		assert_exit(r, 0);
		char want[64];
		snprintf(want, sizeof(want), "usage: dcp %s", cmds[i]);
		cr_assert(strncmp(r.out, want, strlen(want)) == 0, "dcp %s --help printed: %s", cmds[i],
		          r.out);
		cr_assert(r.err[0] == '\0', "dcp %s --help wrote to stderr: %s", cmds[i], r.err);
		run_result_free(&r);
	}
	run_result r = RUN("--help");
	assert_exit(r, 0);
	cr_assert(strstr(r.out, "commands:") != NULL);
	run_result_free(&r);
}

Test(cli, missing_url, .timeout = CLI_TIMEOUT)
{
	const char *cmds[] = {"save", "load", "inspect", "verify", "rm"};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		run_result r = RUN(cmds[i]);
		assert_exit(r, 2);
		cr_assert(strstr(r.err, "missing") != NULL, "dcp %s: %s", cmds[i], r.err);
		run_result_free(&r);
	}
	run_result r = RUN("cp", "mem://a");
	assert_exit(r, 2);
	run_result_free(&r);
}

Test(cli, bad_options_and_values, .timeout = CLI_TIMEOUT)
{
	run_result r = RUN("save", "--frob", "mem://x");
	assert_exit(r, 2);
	cr_assert(strstr(r.err, "unknown option '--frob'") != NULL, "stderr: %s", r.err);
	run_result_free(&r);

	r = RUN("save", "--ranks", "0", "mem://x");
	assert_exit(r, 2);
	cr_assert(strstr(r.err, "--ranks") != NULL && strstr(r.err, "'0'") != NULL, "stderr: %s", r.err);
	run_result_free(&r);

	r = RUN("save", "--size", "12Q", "mem://x");
	assert_exit(r, 2);
	cr_assert(strstr(r.err, "--size") != NULL && strstr(r.err, "12Q") != NULL, "stderr: %s", r.err);
	run_result_free(&r);

	r = RUN("load", "--ranks=abc", "mem://x");
	assert_exit(r, 2);
	cr_assert(strstr(r.err, "--ranks") != NULL, "stderr: %s", r.err);
	run_result_free(&r);

	r = RUN("save", "--size");
	assert_exit(r, 2);
	cr_assert(strstr(r.err, "needs a value") != NULL, "stderr: %s", r.err);
	run_result_free(&r);

	r = RUN("save", "mem://a", "mem://b");
	assert_exit(r, 2);
	cr_assert(strstr(r.err, "unexpected argument 'mem://b'") != NULL, "stderr: %s", r.err);
	run_result_free(&r);
}

Test(cli, unknown_scheme_exits_2_naming_it, .timeout = CLI_TIMEOUT)
{
	const char *const cases[][4] = {
	        {"save", "--size", "64K", "nosuchscheme://x"}, {"load", "nosuchscheme://x", NULL, NULL},
	        {"inspect", "nosuchscheme://x", NULL, NULL},   {"verify", "nosuchscheme://x", NULL, NULL},
	        {"rm", "nosuchscheme://x", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_result r = run_dcp(
		        (const char *const[]){cases[i][0], cases[i][1], cases[i][2], cases[i][3], NULL});
		assert_exit(r, 2);
		cr_assert(strstr(r.err, "nosuchscheme") != NULL, "dcp %s: stderr: %s", cases[i][0], r.err);
		run_result_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* In one process: demo and save on mem://                                  */
/* ------------------------------------------------------------------------ */
Test(cli, demo_on_mem, .timeout = CLI_TIMEOUT)
{
	run_result r = RUN("demo", "mem://x");
	assert_exit(r, 0);
	cr_assert(strstr(r.out, "elements match") != NULL, "stdout: %s", r.out);
	cr_assert(strstr(r.out, "files") != NULL && strstr(r.out, "save id") != NULL, "stdout: %s", r.out);
	cr_assert(strstr(r.out, "4 ranks") != NULL && strstr(r.out, "3 ranks") != NULL, "stdout: %s", r.out);
	/* stderr is not a terminal here: no progress line. */
	cr_assert(strchr(r.err, '\r') == NULL, "progress drawn on a non-terminal: %s", r.err);
	run_result_free(&r);
}

Test(cli, save_json_on_mem, .timeout = CLI_TIMEOUT)
{
	run_result r = RUN("save", "--json", "--ranks", "3", "--size", "1M", "--tensors", "12", "mem://x");
	assert_exit(r, 0);
	const char *keys[] = {"\"bytes\"", "\"seconds\"", "\"bytes_per_second\"", "\"ranks\":", "\"url\":"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert(strstr(r.out, keys[i]) != NULL, "no %s in: %s", keys[i], r.out);
	cr_assert(strstr(r.out, "mem://x") != NULL);
	cr_assert(r.out[0] == '{', "stdout is not one JSON object: %s", r.out);
	run_result_free(&r);
}

Test(cli, plugins_lists_mem_and_faulty, .timeout = CLI_TIMEOUT)
{
	run_result r = RUN("plugins");
	assert_exit(r, 0);
	cr_assert(strstr(r.out, "mem") != NULL && strstr(r.out, "faulty") != NULL, "stdout: %s", r.out);
	cr_assert(strstr(r.out, "process_local") != NULL, "no capability names: %s", r.out);
	run_result_free(&r);

	r = RUN("plugins", "--json");
	assert_exit(r, 0);
	cr_assert(strstr(r.out, "\"abi_version\"") != NULL && strstr(r.out, "\"capabilities\"") != NULL,
	          "stdout: %s", r.out);
	run_result_free(&r);
}

/* A faulty URL: exit 1, and `rank R: STAGE:` lines for exactly those ranks. */
Test(cli, faulty_save_names_exactly_the_failing_ranks, .timeout = CLI_TIMEOUT)
{
	run_result r = RUN("save", "--ranks", "4", "--size", "256K", "faulty+mem://x?fail.write_data=1,3");
	assert_exit(r, 1);
	cr_assert(strstr(r.err, "rank 1: write_data:") != NULL, "stderr: %s", r.err);
	cr_assert(strstr(r.err, "rank 3: write_data:") != NULL, "stderr: %s", r.err);
	cr_assert(!has_rank_line(r.err, 0) && !has_rank_line(r.err, 2), "stderr names other ranks: %s",
	          r.err);
	run_result_free(&r);

	r = RUN("save", "--ranks", "3", "--size", "256K", "faulty+mem://x?fail.prepare_local_plan=2");
	assert_exit(r, 1);
	cr_assert(strstr(r.err, "rank 2: prepare_local_plan:") != NULL, "stderr: %s", r.err);
	cr_assert(!has_rank_line(r.err, 0) && !has_rank_line(r.err, 1), "stderr names other ranks: %s",
	          r.err);
	run_result_free(&r);

	r = RUN("save", "--ranks", "2", "--size", "256K", "faulty+mem://x?fail.finish=0");
	assert_exit(r, 1);
	cr_assert(strstr(r.err, "rank 0: finish:") != NULL, "stderr: %s", r.err);
	cr_assert(!has_rank_line(r.err, 1), "stderr names rank 1: %s", r.err);
	run_result_free(&r);
}

Test(cli, load_without_checkpoint_fails, .timeout = CLI_TIMEOUT)
{
	run_result r = RUN("load", "--ranks", "2", "mem://nothing-here");
	assert_exit(r, 1);
	cr_assert(strstr(r.err, "mem://nothing-here") != NULL, "stderr: %s", r.err);
	/* Only the coordinator looks for the checkpoint: one line, rank 0's. */
	cr_assert(has_rank_line(r.err, 0) && !has_rank_line(r.err, 1), "stderr: %s", r.err);
	run_result_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Across processes: file:// (skipped without the fs plugin)                */
/* ------------------------------------------------------------------------ */
#define NEED_FILE_PLUGIN()                                                                                \
	do {                                                                                              \
		if (!has_file_plugin())                                                                   \
			cr_skip_test(                                                                     \
			        "the fs plugin (scheme file) is not built: `dcp plugins` lists no file"); \
	} while (0)

Test(cli_file, save_then_load_with_other_rank_counts, .timeout = CLI_TIMEOUT)
{
	NEED_FILE_PLUGIN();
	char dir[64], url[128];
	make_tmpdir(dir, sizeof(dir));
	snprintf(url, sizeof(url), "file://%s/ck", dir);

	run_result r = RUN("save", "--ranks", "4", "--size", "2M", "--seed", "7", url);
	assert_exit(r, 0);
	run_result_free(&r);
	const char *ranks[] = {"3", "1", "4", "7"};
	for (size_t i = 0; i < sizeof(ranks) / sizeof(ranks[0]); i++) {
		r = RUN("load", "--ranks", ranks[i], url);
		assert_exit(r, 0);
		cr_assert(strstr(r.out, "match") != NULL, "stdout: %s", r.out);
		run_result_free(&r);
	}
	r = RUN("load", "--json", "--ranks", "2", "--seed", "7", url);
	assert_exit(r, 0);
	cr_assert(strstr(r.out, "\"bytes_per_second\"") != NULL &&
	                  strstr(r.out, "\"mismatches\":\t0") != NULL,
	          "stdout: %s", r.out);
	run_result_free(&r);

	/* One rank saves, seven load: a rank may hold nothing of a tensor. */
	r = RUN("save", "--ranks", "1", "--size", "64K", "--tensors", "30", url);
	assert_exit(r, 0);
	run_result_free(&r);
	r = RUN("load", "--ranks", "7", url);
	assert_exit(r, 0);
	run_result_free(&r);
	rm_tree(dir);
}

Test(cli_file, wrong_seed_names_key_rank_and_index, .timeout = CLI_TIMEOUT)
{
	NEED_FILE_PLUGIN();
	char dir[64], url[128];
	make_tmpdir(dir, sizeof(dir));
	snprintf(url, sizeof(url), "file://%s/ck", dir);
	run_result r = RUN("save", "--ranks", "2", "--size", "256K", url);
	assert_exit(r, 0);
	run_result_free(&r);

	r = RUN("load", "--ranks", "3", "--seed", "2", url);
	assert_exit(r, 1);
	for (int k = 0; k < 3; k++)
		cr_assert(has_rank_line(r.err, k), "no line for rank %d: %s", k, r.err);
	cr_assert(strstr(r.err, "key ") != NULL && strstr(r.err, "index ") != NULL, "stderr: %s", r.err);
	run_result_free(&r);
	rm_tree(dir);
}

Test(cli_file, inspect_and_verify, .timeout = CLI_TIMEOUT)
{
	NEED_FILE_PLUGIN();
	char dir[64], url[128];
	make_tmpdir(dir, sizeof(dir));
	snprintf(url, sizeof(url), "file://%s/ck", dir);
	run_result r = RUN("save", "--ranks", "3", "--size", "1M", url);
	assert_exit(r, 0);
	run_result_free(&r);

	r = RUN("inspect", url);
	assert_exit(r, 0);
	const char *want[] = {"format",  "save id", "model.embed.weight", "bf16", "optim.step", "rng.state",
	                      "xxh3-64", "files:"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(strstr(r.out, want[i]) != NULL, "no '%s' in: %s", want[i], r.out);
	run_result_free(&r);

	r = RUN("inspect", "--json", url);
	assert_exit(r, 0);
	cr_assert(strstr(r.out, "\"save_id\"") != NULL && strstr(r.out, "\"checksums\"") != NULL &&
	                  strstr(r.out, "\"format_version\"") != NULL,
	          "stdout: %s", r.out);
	run_result_free(&r);

	r = RUN("verify", url);
	assert_exit(r, 0);
	cr_assert(strstr(r.out, "every checksum matches") != NULL, "stdout: %s", r.out);
	run_result_free(&r);
	rm_tree(dir);
}

Test(cli_file, corruption_is_detected, .timeout = CLI_TIMEOUT)
{
	NEED_FILE_PLUGIN();
	char dir[64], url[128], ckdir[96], data[PATH_MAX];
	make_tmpdir(dir, sizeof(dir));
	snprintf(ckdir, sizeof(ckdir), "%s/ck", dir);
	snprintf(url, sizeof(url), "file://%s", ckdir);
	run_result r = RUN("save", "--ranks", "2", "--size", "1M", url);
	assert_exit(r, 0);
	run_result_free(&r);

	largest_data_file(ckdir, data, sizeof(data));
	int fd = open(data, O_RDWR);
	cr_assert(fd >= 0);
	unsigned char c;
	cr_assert(pread(fd, &c, 1, 1000) == 1);
	c ^= 0x10;
	cr_assert(pwrite(fd, &c, 1, 1000) == 1);
	close(fd);

	r = RUN("verify", url);
	assert_exit(r, 1);
	cr_assert(has_rank_line(r.err, 0), "stderr: %s", r.err);
	cr_assert(strstr(r.err, basename(data)) != NULL, "the message does not name %s: %s", data, r.err);
	run_result_free(&r);

	r = RUN("load", "--ranks", "3", url);
	assert_exit(r, 1);
	run_result_free(&r);
	rm_tree(dir);
}

Test(cli_file, faulty_load_names_exactly_the_failing_ranks, .timeout = CLI_TIMEOUT)
{
	NEED_FILE_PLUGIN();
	char dir[64], url[128], furl[192];
	make_tmpdir(dir, sizeof(dir));
	snprintf(url, sizeof(url), "file://%s/ck", dir);
	snprintf(furl, sizeof(furl), "faulty+%s?fail.read_data=0,2", url);
	run_result r = RUN("save", "--ranks", "2", "--size", "256K", url);
	assert_exit(r, 0);
	run_result_free(&r);

	r = RUN("load", "--ranks", "3", furl);
	assert_exit(r, 1);
	cr_assert(strstr(r.err, "rank 0: read_data:") != NULL && strstr(r.err, "rank 2: read_data:") != NULL,
	          "stderr: %s", r.err);
	cr_assert(!has_rank_line(r.err, 1), "stderr names rank 1: %s", r.err);
	run_result_free(&r);

	/* The checkpoint itself is fine. */
	r = RUN("load", "--ranks", "3", url);
	assert_exit(r, 0);
	run_result_free(&r);
	rm_tree(dir);
}

Test(cli_file, cp_and_rm, .timeout = CLI_TIMEOUT)
{
	NEED_FILE_PLUGIN();
	char dir[64], src[128], dst[128];
	make_tmpdir(dir, sizeof(dir));
	snprintf(src, sizeof(src), "file://%s/a", dir);
	snprintf(dst, sizeof(dst), "file://%s/b", dir);
	run_result r = RUN("save", "--ranks", "3", "--size", "1M", "--seed", "5", src);
	assert_exit(r, 0);
	run_result_free(&r);

	r = RUN("cp", src, dst);
	assert_exit(r, 0);
	run_result_free(&r);
	r = RUN("load", "--ranks", "2", dst);
	assert_exit(r, 0);
	run_result_free(&r);
	r = RUN("verify", dst);
	assert_exit(r, 0);
	run_result_free(&r);

	/* An existing destination needs --force. */
	r = RUN("cp", src, dst);
	assert_exit(r, 1);
	cr_assert(strstr(r.err, "--force") != NULL, "stderr: %s", r.err);
	run_result_free(&r);
	r = RUN("cp", "--force", src, dst);
	assert_exit(r, 0);
	run_result_free(&r);

	r = RUN("rm", dst);
	assert_exit(r, 0);
	run_result_free(&r);
	r = RUN("inspect", dst);
	assert_exit(r, 1);
	run_result_free(&r);
	r = RUN("load", dst);
	cr_assert_neq(r.code, 0, "loading a removed checkpoint succeeded");
	run_result_free(&r);
	/* The source is untouched. */
	r = RUN("load", src);
	assert_exit(r, 0);
	run_result_free(&r);
	rm_tree(dir);
}

Test(cli_file, bare_path_with_threads, .timeout = CLI_TIMEOUT)
{
	NEED_FILE_PLUGIN();
	char dir[64], path[128];
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/ck", dir);
	run_result r = RUN("save", "--ranks", "2", "--size", "512K", "--threads", "3", path);
	assert_exit(r, 0);
	run_result_free(&r);
	r = RUN("load", "--ranks", "3", "--threads", "2", path);
	assert_exit(r, 0);
	run_result_free(&r);
	rm_tree(dir);
}
