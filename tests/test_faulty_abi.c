/*
 * The faulty plugin (plugins/faulty) alone: these tests load dcp-faulty.so
 * with dlopen and give it fake host services, to check what the protocol
 * cannot show (which inner slots run, and that an async failure arrives from
 * another thread).
 *
 * dcp-faulty.so is found in $DCP_BINARY_DIR/lib/dcp/plugins (ctest sets it),
 * else in ../lib/dcp/plugins relative to this executable (build/bin/).
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcp/dcp.h"
#include "dcp/sys/storage.h"
#include "faultytest.h"

/* ------------------------------------------------------------------------ */
/* The plugin alone, loaded with dlopen and given a fake host                */
/* ------------------------------------------------------------------------ */
/*
 * These tests drive dcp-faulty.so through the storage ABI with host services
 * of their own, to see what the protocol cannot show: which slots of the
 * inner writer run, and that an async failure completes the future from
 * another thread after write_data returned. The inner plugin ("fake") counts
 * its calls; with minimal=1 in its URL its tables have no optional slot.
 */
enum {
	F_RESET,
	F_SET_UP,
	F_LPLAN,
	F_GPLAN,
	F_WRITE,
	F_FINISH,
	F_META,
	F_ABORT,
	F_CLOSE,
	F_READ_MD,
	F_READ,
	F_N
};

typedef struct fake_env {
	dcp_host host; /* first: the host callbacks find the env from it */
	dcp_plugin inner;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char last_url[512]; /* the last URL the inner plugin was given */
	int calls[F_N];     /* inner slot calls */
	int last_rank;      /* set_up's rank as the inner writer saw it */
	int completions;    /* futures completed */
	int status;         /* of the last completion */
	char message[DCP_MSG_MAX];
	pthread_t completer; /* the thread of the last completion */
} fake_env;

typedef struct fake_io {
	union {
		dcp_storage_writer w;
		dcp_storage_reader r;
	} base;
	fake_env *env;
} fake_io;

#define ENV_OF(x) (((fake_io *)(void *)(x))->env)

static void fake_count(fake_env *env, int slot)
{
	pthread_mutex_lock(&env->mu);
	env->calls[slot]++;
	pthread_mutex_unlock(&env->mu);
}

static void fake_complete(const dcp_host *host, int status, const char *message)
{
	fake_env *env = (fake_env *)(void *)host;
	pthread_mutex_lock(&env->mu);
	env->completions++;
	env->status = status;
	snprintf(env->message, sizeof(env->message), "%s", message ? message : "");
	env->completer = pthread_self();
	pthread_cond_broadcast(&env->cv);
	pthread_mutex_unlock(&env->mu);
}

/* The fake "future" is the env's host table itself: never dereferenced by
 * the plugin, handed back to the completion callbacks. */
static void fake_write_complete(dcp_future *fut, int status, const dcp_write_result *results, size_t n,
                                const char *message)
{
	(void)results;
	(void)n;
	fake_complete((const dcp_host *)(void *)fut, status, message);
}

static void fake_read_complete(dcp_future *fut, int status, const char *message)
{
	fake_complete((const dcp_host *)(void *)fut, status, message);
}

static void fake_wait_completion(fake_env *env, int n)
{
	pthread_mutex_lock(&env->mu);
	while (env->completions < n)
		pthread_cond_wait(&env->cv, &env->mu);
	pthread_mutex_unlock(&env->mu);
}

static int fw_reset(dcp_storage_writer *w, const char *url, dcp_msg *msg)
{
	(void)msg;
	snprintf(ENV_OF(w)->last_url, sizeof(ENV_OF(w)->last_url), "%s", url);
	fake_count(ENV_OF(w), F_RESET);
	return DCP_OK;
}
static int fw_set_up(dcp_storage_writer *w, int is_coordinator, int rank, int world_size, dcp_msg *msg)
{
	(void)is_coordinator, (void)world_size, (void)msg;
	ENV_OF(w)->last_rank = rank;
	fake_count(ENV_OF(w), F_SET_UP);
	return DCP_OK;
}
static int fw_lplan(dcp_storage_writer *w, dcp_save_plan *plan, dcp_msg *msg)
{
	(void)plan, (void)msg;
	fake_count(ENV_OF(w), F_LPLAN);
	return DCP_OK;
}
static int fw_gplan(dcp_storage_writer *w, dcp_save_plan *plans, int nranks, dcp_msg *msg)
{
	(void)plans, (void)nranks, (void)msg;
	fake_count(ENV_OF(w), F_GPLAN);
	return DCP_OK;
}
static int fw_write(dcp_storage_writer *w, const dcp_save_plan *plan, const dcp_write_req *reqs, size_t n,
                    dcp_future *fut, dcp_msg *msg)
{
	(void)plan, (void)reqs, (void)n, (void)msg;
	fake_count(ENV_OF(w), F_WRITE);
	ENV_OF(w)->host.write_future_complete(fut, DCP_OK, NULL, 0, NULL);
	return DCP_OK;
}
static int fw_finish(dcp_storage_writer *w, const dcp_metadata *md, dcp_msg *msg)
{
	(void)md, (void)msg;
	fake_count(ENV_OF(w), F_FINISH);
	return DCP_OK;
}
static int fw_meta(dcp_storage_writer *w, char **json, dcp_msg *msg)
{
	(void)msg;
	*json = NULL;
	fake_count(ENV_OF(w), F_META);
	return DCP_OK;
}
static void fw_abort(dcp_storage_writer *w)
{
	fake_count(ENV_OF(w), F_ABORT);
}
static void fw_close(dcp_storage_writer *w)
{
	fake_count(ENV_OF(w), F_CLOSE);
	free(w);
}
static int fr_read_md(dcp_storage_reader *r, dcp_metadata **out, dcp_msg *msg)
{
	(void)msg;
	*out = NULL;
	fake_count(ENV_OF(r), F_READ_MD);
	return DCP_OK;
}
static int fr_set_up(dcp_storage_reader *r, const dcp_metadata *md, int is_coordinator, int rank,
                     int world_size, dcp_msg *msg)
{
	(void)md, (void)is_coordinator, (void)world_size, (void)msg;
	ENV_OF(r)->last_rank = rank;
	fake_count(ENV_OF(r), F_SET_UP);
	return DCP_OK;
}
static int fr_read(dcp_storage_reader *r, const dcp_load_plan *plan, const dcp_read_req *reqs, size_t n,
                   dcp_future *fut, dcp_msg *msg)
{
	(void)plan, (void)reqs, (void)n, (void)msg;
	fake_count(ENV_OF(r), F_READ);
	ENV_OF(r)->host.read_future_complete(fut, DCP_OK, NULL);
	return DCP_OK;
}
static void fr_close(dcp_storage_reader *r)
{
	fake_count(ENV_OF(r), F_CLOSE);
	free(r);
}

static const dcp_writer_ops fake_writer_full = {DCP_WRITER_OPS_VERSION,
                                                fw_reset,
                                                fw_set_up,
                                                fw_lplan,
                                                fw_gplan,
                                                fw_write,
                                                fw_finish,
                                                fw_meta,
                                                fw_abort,
                                                fw_close};
static const dcp_writer_ops fake_writer_minimal = {
        DCP_WRITER_OPS_VERSION, NULL, fw_set_up, NULL, NULL, fw_write, fw_finish, NULL, NULL, fw_close};
static const dcp_reader_ops fake_reader_full = {
        DCP_READER_OPS_VERSION, NULL, fr_read_md, fr_set_up, NULL, NULL, fr_read, fr_close};

static int fake_writer_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                            dcp_storage_writer **out, dcp_msg *msg)
{
	fake_env *env = (fake_env *)((char *)self - offsetof(fake_env, inner));
	fake_io *io = calloc(1, sizeof(*io));
	(void)opts, (void)msg;
	if (io == NULL)
		return DCP_ENOMEM;
	snprintf(env->last_url, sizeof(env->last_url), "%s", url);
	io->env = env;
	io->base.w.ops = strstr(url, "minimal=1") ? &fake_writer_minimal : &fake_writer_full;
	*out = &io->base.w;
	return DCP_OK;
}

static int fake_reader_open(dcp_plugin *self, const char *url, const dcp_open_options *opts,
                            dcp_storage_reader **out, dcp_msg *msg)
{
	fake_env *env = (fake_env *)((char *)self - offsetof(fake_env, inner));
	fake_io *io = calloc(1, sizeof(*io));
	(void)opts, (void)msg;
	if (io == NULL)
		return DCP_ENOMEM;
	snprintf(env->last_url, sizeof(env->last_url), "%s", url);
	io->env = env;
	io->base.r.ops = &fake_reader_full;
	*out = &io->base.r;
	return DCP_OK;
}

static int fake_plugin_for_url(const dcp_host *host, const char *url, dcp_plugin **out, dcp_msg *msg)
{
	fake_env *env = (fake_env *)(void *)host;
	if (strncmp(url, "fake://", 7) != 0) {
		dcp_msgf(msg, "fake host: no plugin for '%s'", url);
		return DCP_ENOPLUGIN;
	}
	*out = &env->inner;
	return DCP_OK;
}

/* dcp-faulty.so from the build tree ($DCP_BINARY_DIR, else next to bin/). */
static dcp_plugin *faulty_from_so(fake_env *env, void **dl)
{
	const char *bin = getenv("DCP_BINARY_DIR");
	char exe[PATH_MAX], path[PATH_MAX + 64];
	dcp_plugin_entry_fn entry;
	dcp_plugin *p = NULL;
	dcp_msg msg = {{0}};

	if (bin != NULL && bin[0] != '\0') {
		FT_FORMAT(path, sizeof(path), "%s/lib/dcp/plugins/dcp-faulty.so", bin);
	} else {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		cr_assert(n > 0);
		exe[n] = '\0';
		FT_FORMAT(path, sizeof(path), "%s/../lib/dcp/plugins/dcp-faulty.so", dirname(exe));
	}
	*dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(*dl, "cannot load %s: %s", path, dlerror());
	*(void **)&entry = dlsym(*dl, DCP_PLUGIN_ENTRY_SYMBOL);
	cr_assert_not_null(entry, "%s has no %s", path, DCP_PLUGIN_ENTRY_SYMBOL);

	memset(env, 0, sizeof(*env));
	pthread_mutex_init(&env->mu, NULL);
	pthread_cond_init(&env->cv, NULL);
	env->host.version = DCP_HOST_VERSION;
	env->host.write_future_complete = fake_write_complete;
	env->host.read_future_complete = fake_read_complete;
	env->host.plugin_for_url = fake_plugin_for_url;
	env->inner.version = DCP_PLUGIN_ABI_VERSION;
	env->inner.name = "fake";
	env->inner.writer_open = fake_writer_open;
	env->inner.reader_open = fake_reader_open;
	cr_assert_eq(entry(&env->host, &p, &msg), DCP_OK, "%s", msg.text);
	return p;
}

static void faulty_unload(fake_env *env, dcp_plugin *p, void *dl)
{
	p->destroy(p);
	dlclose(dl);
	pthread_cond_destroy(&env->cv);
	pthread_mutex_destroy(&env->mu);
}

#define FAKE_FUT(env) ((dcp_future *)(void *)&(env)->host)

Test(faulty, abi_write_data_async_fails_the_future_from_another_thread)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 1, 2, 1};
	dcp_storage_writer *w = NULL;
	dcp_save_plan plan = {0};
	dcp_msg msg = {{0}};

	cr_assert_eq(p->writer_open(p, "faulty+fake://a?fail.write_data_async=1&x=1", &opts, &w, &msg),
	             DCP_OK, "%s", msg.text);
	cr_assert_str_eq(env.last_url, "fake://a?x=1");
	cr_assert_eq(w->ops->set_up_storage_writer(w, 0, 1, 2, &msg), DCP_OK);
	cr_assert_eq(w->ops->write_data(w, &plan, NULL, 0, FAKE_FUT(&env), &msg), DCP_OK);
	fake_wait_completion(&env, 1);
	cr_assert_eq(env.status, DCP_EINJECTED);
	cr_assert_str_eq(env.message, "injected failure at write_data_async on rank 1 "
	                              "(faulty plugin: fail.write_data_async)");
	cr_assert_not(pthread_equal(env.completer, pthread_self()),
	              "the future failed on the caller's thread");
	cr_assert_eq(env.calls[F_WRITE], 0, "the inner writer wrote although the write fails");
	cr_assert_eq(env.calls[F_SET_UP], 1);
	w->ops->close(w); /* joins the failing thread */
	cr_assert_eq(env.calls[F_CLOSE], 1);
	cr_assert_eq(env.completions, 1);
	faulty_unload(&env, p, dl);
}

Test(faulty, abi_read_data_async_fails_the_future_from_another_thread)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 3, 4, 0};
	dcp_storage_reader *r = NULL;
	dcp_metadata *md = NULL;
	dcp_load_plan plan = {0};
	dcp_msg msg = {{0}};

	cr_assert_eq(p->reader_open(p, "faulty+fake://b?fail.read_data_async=3", &opts, &r, &msg), DCP_OK,
	             "%s", msg.text);
	cr_assert_str_eq(env.last_url, "fake://b");
	cr_assert_eq(r->ops->read_metadata(r, &md, &msg), DCP_OK);
	cr_assert_eq(r->ops->set_up_storage_reader(r, md, 1, 3, 4, &msg), DCP_OK);
	cr_assert_eq(r->ops->read_data(r, &plan, NULL, 0, FAKE_FUT(&env), &msg), DCP_OK);
	fake_wait_completion(&env, 1);
	cr_assert_eq(env.status, DCP_EINJECTED);
	cr_assert_str_eq(env.message, "injected failure at read_data_async on rank 3 "
	                              "(faulty plugin: fail.read_data_async)");
	cr_assert_not(pthread_equal(env.completer, pthread_self()));
	cr_assert_eq(env.calls[F_READ], 0);
	r->ops->close(r);
	faulty_unload(&env, p, dl);
}

Test(faulty, abi_every_writer_slot_forwards_on_a_rank_that_does_not_fail)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 0, 4, 1};
	dcp_storage_writer *w = NULL;
	dcp_save_plan plan = {0};
	dcp_metadata md = {0};
	char *json = NULL;
	dcp_msg msg = {{0}};
	const char *all = "faulty+fake://c?fail.set_up_storage_writer=1-3&fail.prepare_local_plan=1-3&"
	                  "fail.prepare_global_plan=1-3&fail.write_data=1-3&fail.write_data_async=1-3&"
	                  "fail.finish=1-3";

	cr_assert_eq(p->writer_open(p, all, &opts, &w, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(w->ops->reset(w, all, &msg), DCP_OK);
	cr_assert_str_eq(env.last_url, "fake://c");
	cr_assert_eq(w->ops->set_up_storage_writer(w, 1, 0, 4, &msg), DCP_OK);
	cr_assert_eq(w->ops->prepare_local_plan(w, &plan, &msg), DCP_OK);
	cr_assert_eq(w->ops->prepare_global_plan(w, &plan, 1, &msg), DCP_OK);
	cr_assert_eq(w->ops->write_data(w, &plan, NULL, 0, FAKE_FUT(&env), &msg), DCP_OK);
	cr_assert_eq(env.completions, 1);
	cr_assert_eq(env.status, DCP_OK);
	cr_assert_eq(w->ops->storage_meta(w, &json, &msg), DCP_OK);
	cr_assert_eq(w->ops->finish(w, &md, &msg), DCP_OK);
	w->ops->abort(w);
	w->ops->close(w);
	for (int s = F_RESET; s <= F_CLOSE; s++)
		cr_assert_eq(env.calls[s], 1, "inner writer slot %d called %d times", s, env.calls[s]);
	faulty_unload(&env, p, dl);
}

Test(faulty, abi_the_rank_that_counts_is_set_up_s_and_reset_takes_new_faults)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 0, 4, 1};
	dcp_storage_writer *w = NULL;
	dcp_storage_reader *r = NULL;
	dcp_metadata *md = NULL;
	dcp_metadata empty = {0};
	dcp_save_plan plan = {0};
	dcp_msg msg = {{0}};

	/* opts say rank 0; set-up says rank 2, which fails at finish. */
	cr_assert_eq(p->writer_open(p, "faulty+fake://d?fail.finish=2", &opts, &w, &msg), DCP_OK, "%s",
	             msg.text);
	cr_assert_eq(w->ops->set_up_storage_writer(w, 1, 2, 4, &msg), DCP_OK);
	cr_assert_eq(env.last_rank, 2);
	cr_assert_eq(w->ops->finish(w, &empty, &msg), DCP_EINJECTED);
	cr_assert_str_eq(msg.text, "injected failure at finish on rank 2 (faulty plugin: fail.finish)");
	cr_assert_eq(env.calls[F_FINISH], 0);
	/* A reset brings new faults and new inner parameters. */
	cr_assert_eq(w->ops->reset(w, "faulty+fake://e?k=v&fail.prepare_local_plan=2", &msg), DCP_OK, "%s",
	             msg.text);
	cr_assert_str_eq(env.last_url, "fake://e?k=v");
	cr_assert_eq(w->ops->finish(w, &empty, &msg), DCP_OK);
	cr_assert_eq(w->ops->prepare_local_plan(w, &plan, &msg), DCP_EINJECTED);
	cr_assert_eq(w->ops->reset(w, "faulty+fake://e?fail.nope=2", &msg), DCP_EID);
	cr_assert_not_null(strstr(msg.text, "fail.nope"), "%s", msg.text);
	w->ops->close(w);

	/* read_metadata runs before set-up: opts' rank counts there. */
	const dcp_open_options ropts = {DCP_OPEN_OPTIONS_VERSION, 3, 4, 0};
	cr_assert_eq(p->reader_open(p, "faulty+fake://f?fail.read_metadata=3", &ropts, &r, &msg), DCP_OK);
	cr_assert_eq(r->ops->read_metadata(r, &md, &msg), DCP_EINJECTED);
	cr_assert_null(md);
	cr_assert_str_eq(msg.text,
	                 "injected failure at read_metadata on rank 3 (faulty plugin: fail.read_metadata)");
	cr_assert_eq(env.calls[F_READ_MD], 0);
	r->ops->close(r);
	faulty_unload(&env, p, dl);
}

Test(faulty, abi_an_inner_writer_without_optional_slots)
{
	fake_env env;
	void *dl;
	dcp_plugin *p = faulty_from_so(&env, &dl);
	const dcp_open_options opts = {DCP_OPEN_OPTIONS_VERSION, 1, 2, 1};
	dcp_storage_writer *w = NULL;
	dcp_save_plan plan = {0};
	dcp_msg msg = {{0}};

	cr_assert_eq(
	        p->writer_open(p, "faulty+fake://g?minimal=1&fail.prepare_global_plan=0", &opts, &w, &msg),
	        DCP_OK, "%s", msg.text);
	cr_assert_null(w->ops->reset);
	cr_assert_null(w->ops->prepare_local_plan);
	cr_assert_null(w->ops->storage_meta);
	cr_assert_null(w->ops->abort);
	cr_assert_not_null(w->ops->prepare_global_plan); /* a failure may be injected there */
	cr_assert_eq(w->ops->set_up_storage_writer(w, 1, 1, 2, &msg), DCP_OK);
	cr_assert_eq(w->ops->prepare_global_plan(w, &plan, 1, &msg), DCP_OK); /* rank 1 does not fail */
	w->ops->close(w);
	cr_assert_eq(env.calls[F_GPLAN], 0);
	cr_assert_eq(env.calls[F_CLOSE], 1);
	faulty_unload(&env, p, dl);
}
