/*
 * Two writers creating the same checkpoint at once: exactly one commits.
 *
 * The backends' put_if_absent (file: link(2) of the temporary file; mem:
 * under the store's lock) is checked directly, and through the protocol:
 * pairs of saves with overwrite off race to create the same new checkpoint;
 * in every round exactly one succeeds, the other fails with DCP_EEXISTS,
 * and the checkpoint loads bit-exact as the winner's state.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dcp/dcp.h"
#include "dcptest.h"
#include "mem/mem_backend.h"
#include "posix/posix_backend.h"

#define ROUNDS 20

static void check_slot(dcp_backend *b)
{
	dcp_msg msg = {{0}};
	void *data = NULL;
	uint64_t len = 0;

	cr_assert_geq(b->ops->version, 2u);
	cr_assert_not_null(b->ops->put_if_absent);
	cr_assert_eq(b->ops->put_if_absent(b, "obj", "first", 5, &msg), DCP_OK, "%s", msg.text);
	cr_assert_eq(b->ops->put_if_absent(b, "obj", "second", 6, &msg), DCP_EEXISTS,
	             "a second create of the same object succeeded");
	cr_assert(strstr(msg.text, "obj") != NULL && strstr(msg.text, "already exists") != NULL,
	          "the message does not name the object: %s", msg.text);
	cr_assert_eq(b->ops->get(b, "obj", &data, &len, &msg), DCP_OK, "%s", msg.text);
	cr_assert(len == 5 && memcmp(data, "first", 5) == 0, "the first object was replaced");
	free(data);
	/* put_atomic still replaces. */
	cr_assert_eq(b->ops->put_atomic(b, "obj", "third", 5, &msg), DCP_OK, "%s", msg.text);
}

Test(create_race, file_put_if_absent_refuses_an_existing_object)
{
	char dir[256];
	dcp_backend *b = NULL;
	dcp_msg msg = {{0}};

	dt_mkdtemp(dir, sizeof(dir), "dcp-create");
	cr_assert_eq(dcp_posix_backend_open(dir, &b, &msg), DCP_OK, "%s", msg.text);
	check_slot(b);
	b->ops->destroy(b);
	dt_rmtree(dir);
}

Test(create_race, mem_put_if_absent_refuses_an_existing_object)
{
	dcp_mem_store *s = dcp_mem_store_new();
	dcp_backend *b = NULL;
	dcp_msg msg = {{0}};

	cr_assert_not_null(s);
	cr_assert_eq(dcp_mem_backend_open(s, "ns", &b, &msg), DCP_OK, "%s", msg.text);
	check_slot(b);
	b->ops->destroy(b);
	dcp_mem_store_release(s);
}

typedef struct racer {
	const dt_layout *l;
	const char *url;
	uint64_t seed;
	dt_outcome o;
	pthread_barrier_t *go;
} racer;

static void *race(void *arg)
{
	racer *r = arg;
	dcp_save_options opts = DCP_SAVE_OPTIONS_INIT;

	opts.overwrite = 0;
	pthread_barrier_wait(r->go);
	dt_save(r->l, 2, r->url, &opts, r->seed, &r->o);
	return NULL;
}

static int all_ok(const dt_outcome *o)
{
	for (int i = 0; i < o->n; i++)
		if (o->status[i] != DCP_OK)
			return 0;
	return 1;
}

static void race_rounds(const char *base)
{
	dt_layout *l = dt_layout_new();
	uint64_t shape[] = {64, 256};
	int wins[2] = {0, 0};

	dt_split(dt_add_sharded(l, "w", DCP_F32, 2, shape), 0, 2, NULL);
	dt_add_bytes(l, "step", 8, DT_RANKS(2));
	for (int round = 0; round < ROUNDS; round++) {
		char url[DT_URL_MAX];
		pthread_barrier_t go;
		pthread_t t[2];
		racer r[2];
		int winner = -1;
		dt_outcome o;

		dt_fmt(url, sizeof(url), "%s/round%d", base, round);
		pthread_barrier_init(&go, NULL, 2);
		for (int i = 0; i < 2; i++) {
			r[i].l = l;
			r[i].url = url;
			r[i].seed = 1000 + (uint64_t)i;
			r[i].go = &go;
			cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&go);
		for (int i = 0; i < 2; i++) {
			if (all_ok(&r[i].o)) {
				cr_assert_eq(winner, -1, "round %d: both saves to %s committed", round, url);
				winner = i;
				continue;
			}
			for (int k = 0; k < r[i].o.n; k++)
				cr_assert_eq(r[i].o.status[k], DCP_EEXISTS,
				             "round %d: the losing save failed with %s: %s", round,
				             dcp_strerror(r[i].o.status[k]),
				             r[i].o.err[k] ? dt_error_text(r[i].o.err[k]) : "");
		}
		cr_assert_neq(winner, -1, "round %d: neither save to %s committed", round, url);
		wins[winner]++;
		dt_load(l, 2, url, NULL, r[winner].seed, &o);
		dt_assert_ok(&o, "the winner's checkpoint");
		dt_outcome_clear(&o);
		dt_outcome_clear(&r[0].o);
		dt_outcome_clear(&r[1].o);
	}
	cr_log_info("%s: first save won %d, second %d of %d rounds", base, wins[0], wins[1], ROUNDS);
	dt_layout_free(l);
}

Test(create_race, racing_saves_to_a_new_file_checkpoint_commit_once, .timeout = DT_TIMEOUT)
{
	char dir[256], base[300];

	dt_mkdtemp(dir, sizeof(dir), "dcp-race");
	dt_fmt(base, sizeof(base), "file://%s", dir);
	race_rounds(base);
	dt_rmtree(dir);
}

Test(create_race, racing_saves_to_a_new_mem_checkpoint_commit_once, .timeout = DT_TIMEOUT)
{
	race_rounds("mem://create-race");
}
