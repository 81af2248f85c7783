/*
 * Save and load of the synthetic state on N thread-ranks (dcp_run_ranks).
 *
 * Each rank builds its own share, then all ranks agree (an allgather of their
 * build status, which doubles as the barrier where timing starts) that every
 * one is ready before any enters the collective: a rank that could not build
 * its share must not let the others save an incomplete state. Each rank records its
 * outcome in its own slot of a per-rank array; the calling thread combines
 * the slots after every rank has returned. No state is shared between ranks
 * except the read-only spec and the progress line (which has its own lock).
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dcp/sys/comm.h"
#include "dcp_tool.h"

typedef struct rank_slot {
	int status;
	dcp_error *err;
	char message[768];
	double t0, t1;
	uint64_t bytes, elements, mismatches;
	synth_spec spec; /* load */
} rank_slot;

typedef struct job {
	const synth_spec *spec; /* save */
	const char *url;
	int nranks;
	int overwrite;
	const uint64_t *seed; /* load: NULL for the recorded one */
	progress *prog;
	rank_slot *slots;
} job;

/*
 * Every rank says whether it is ready (status DCP_OK); returns how many ranks
 * are not, or -1 if the collective itself failed. Doubles as the barrier
 * after which the timing starts.
 */
static int agree(dcp_comm *comm, int status)
{
	int32_t mine = status;
	int n = dcp_comm_size(comm), bad = 0;
	dcp_buf *all = calloc((size_t)n, sizeof(*all));
	if (all == NULL)
		return -1;
	if (comm->allgather(comm, &mine, sizeof(mine), all) != DCP_OK) {
		free(all);
		return -1;
	}
	for (int r = 0; r < n; r++) {
		int32_t v = 0;
		if (all[r].len == sizeof(v))
			memcpy(&v, all[r].data, sizeof(v));
		bad += all[r].len != sizeof(v) || v != DCP_OK;
	}
	dcp_bufs_release(all, (size_t)n);
	free(all);
	return bad;
}

static int save_rank(dcp_comm *comm, int rank, void *arg)
{
	job *j = arg;
	rank_slot *s = &j->slots[rank];
	synth_rank r;
	int rc = synth_rank_build(j->spec, rank, j->nranks, 0, &r, s->message, sizeof(s->message));
	progress_step(j->prog, 0);
	/* A rank that could not build its share would make the save store an
	 * incomplete state: every rank learns it first, and none saves. */
	int bad = agree(comm, rc);
	if (bad == 0) {
		s->t0 = tool_now();
		dcp_save_options opts = DCP_SAVE_OPTIONS_INIT;
		opts.overwrite = j->overwrite;
		rc = dcp_save(r.state, j->url, comm, &opts, &s->err);
		s->t1 = tool_now();
		s->bytes = r.bytes;
	} else if (rc == DCP_OK) {
		rc = bad < 0 ? DCP_ECOMM : DCP_EPEER;
		if (bad < 0)
			snprintf(s->message, sizeof(s->message),
			         "the ranks could not agree to start the save");
	}
	progress_step(j->prog, 1);
	synth_rank_clear(&r); /* zeroed by a failed build: clearing is safe */
	s->status = rc;
	return rc;
}

/* Combines the slots: the first failure wins; its error object is kept. */
static int combine(job *j, job_result *out)
{
	double t0 = 0, t1 = 0;
	int status = DCP_OK;
	size_t len = 0;

	for (int r = 0; r < j->nranks; r++) {
		rank_slot *s = &j->slots[r];
		if (r == 0 || s->t0 > t0)
			t0 = s->t0;
		if (r == 0 || s->t1 > t1)
			t1 = s->t1;
		out->bytes += s->bytes;
		out->elements += s->elements;
		out->mismatches += s->mismatches;
		if (s->status != DCP_OK && (status == DCP_OK || status == DCP_EPEER))
			status = s->status;
		if (s->err != NULL && out->err == NULL) {
			out->err = s->err;
			s->err = NULL;
		}
		if (s->message[0] != '\0' && len + 1 < sizeof(out->message)) {
			int n = snprintf(out->message + len, sizeof(out->message) - len, "%srank %d: %s",
			                 len > 0 ? "\n" : "", r, s->message);
			len += n > 0 ? (size_t)n : 0;
			if (len >= sizeof(out->message))
				len = sizeof(out->message) - 1;
		}
	}
	out->seconds = t1 - t0;
	out->status = status;
	return status;
}

static void slots_free(job *j)
{
	for (int r = 0; r < j->nranks; r++) {
		dcp_error_free(j->slots[r].err);
		synth_spec_clear(&j->slots[r].spec);
	}
	free(j->slots);
}

int job_save(const synth_spec *spec, const char *url, int nranks, int overwrite, const char *title,
             job_result *out)
{
	return job_save_on(NULL, spec, url, nranks, overwrite, title, out);
}

int job_save_on(tool_comm *tc, const synth_spec *spec, const char *url, int nranks, int overwrite,
                const char *title, job_result *out)
{
	memset(out, 0, sizeof(*out));
	job j = {spec, url, nranks, overwrite, NULL, NULL, calloc((size_t)nranks, sizeof(rank_slot))};
	if (j.slots == NULL) {
		snprintf(out->message, sizeof(out->message), "out of memory for %d ranks", nranks);
		return out->status = DCP_ENOMEM;
	}
	static const char *const phases[] = {"build", "save"};
	progress prog;
	progress_init(&prog, title, nranks, phases, 2);
	j.prog = &prog;
	int rc = tool_comm_run(tc, nranks, save_rank, &j);
	progress_finish(&prog);
	if (rc != DCP_OK) {
		snprintf(out->message, sizeof(out->message), "could not start %d rank threads: %s", nranks,
		         dcp_strerror(rc));
		slots_free(&j);
		return out->status = rc;
	}
	rc = combine(&j, out);
	slots_free(&j);
	return rc;
}

/* Phase A of a load: every rank reads the config item, then builds the spec. */
static int load_config(dcp_comm *comm, job *j, rank_slot *s)
{
	dcp_state *st = dcp_state_new();
	if (st == NULL) {
		snprintf(s->message, sizeof(s->message), "out of memory");
		return DCP_ENOMEM;
	}
	int rc = dcp_state_add_bytes(st, SYNTH_CONFIG_KEY, NULL, 0);
	if (rc != DCP_OK) {
		snprintf(s->message, sizeof(s->message), "adding %s to the state failed: %s",
		         SYNTH_CONFIG_KEY, dcp_state_last_error(st));
		dcp_state_free(st);
		return rc;
	}
	/* partial: a checkpoint without the config item is not an error of the
	 * load but of the tool's use, said below. */
	dcp_load_options opts = DCP_LOAD_OPTIONS_INIT;
	opts.partial = 1;
	rc = dcp_load(st, j->url, comm, &opts, &s->err);
	if (rc == DCP_OK && !dcp_state_was_loaded(st, SYNTH_CONFIG_KEY)) {
		snprintf(
		        s->message, sizeof(s->message),
		        "%s has no key '%s': it was not written by 'dcp save' (use 'dcp verify' to check any "
		        "checkpoint)",
		        j->url, SYNTH_CONFIG_KEY);
		rc = DCP_EMISMATCH;
	} else if (rc == DCP_OK) {
		const void *data = NULL;
		size_t len = 0;
		rc = dcp_state_get_bytes(st, SYNTH_CONFIG_KEY, &data, &len);
		if (rc != DCP_OK)
			snprintf(s->message, sizeof(s->message), "%s was not loaded: %s", SYNTH_CONFIG_KEY,
			         dcp_strerror(rc));
		else
			rc = synth_spec_from_config(data, len, &s->spec, s->message, sizeof(s->message));
	}
	dcp_state_free(st);
	if (rc == DCP_OK && j->seed != NULL)
		s->spec.seed = *j->seed;
	return rc;
}

static int load_rank(dcp_comm *comm, int rank, void *arg)
{
	job *j = arg;
	rank_slot *s = &j->slots[rank];
	synth_rank r;
	memset(&r, 0, sizeof(r));

	int rc = load_config(comm, j, s);
	/* dcp_load gives every rank the same outcome; only a local failure after
	 * it (config parsing, allocation) can differ, so the ranks agree before
	 * the second load. */
	int loaded = 0;
	if (s->err == NULL) {
		if (rc == DCP_OK)
			rc = synth_rank_build(&s->spec, rank, j->nranks, 1, &r, s->message,
			                      sizeof(s->message));
		int bad = agree(comm, rc);
		if (bad == 0) {
			s->t0 = tool_now();
			rc = dcp_load(r.state, j->url, comm, NULL, &s->err);
			s->t1 = tool_now();
			loaded = rc == DCP_OK;
		} else if (rc == DCP_OK) {
			rc = bad < 0 ? DCP_ECOMM : DCP_EPEER;
			if (bad < 0)
				snprintf(s->message, sizeof(s->message),
				         "the ranks could not agree to start the load");
		}
	}
	progress_step(j->prog, 0);

	if (loaded) {
		s->bytes = r.bytes;
		s->elements = r.elements;
		for (size_t i = 0; i < s->spec.ntensors; i++) {
			const synth_tensor *t = &s->spec.tensors[i];
			int held = 0;
			for (size_t k = 0; k < r.nchunks && !held; k++)
				held = r.chunks[k].tensor == i;
			if (held && !dcp_state_was_loaded(r.state, t->key)) {
				snprintf(s->message, sizeof(s->message), "key %s: not filled by the load",
				         t->key);
				s->mismatches++;
			}
		}
		const void *data = NULL;
		size_t len = 0;
		if (dcp_state_get_bytes(r.state, SYNTH_RNG_KEY, &data, &len) != DCP_OK ||
		    len != s->spec.rng_len) {
			snprintf(s->message, sizeof(s->message), "key %s: loaded %zu bytes, expected %zu",
			         SYNTH_RNG_KEY, len, s->spec.rng_len);
			s->mismatches++;
		}
		if (s->mismatches == 0)
			s->mismatches = synth_rank_check(&s->spec, &r, s->message, sizeof(s->message));
		if (s->mismatches > 0)
			rc = 1;
	}
	progress_step(j->prog, 1);
	synth_rank_clear(&r);
	s->status = rc;
	return rc;
}

int job_load(const char *url, int nranks, const uint64_t *seed, const char *title, job_result *out)
{
	return job_load_on(NULL, url, nranks, seed, title, out);
}

int job_load_on(tool_comm *tc, const char *url, int nranks, const uint64_t *seed, const char *title,
                job_result *out)
{
	memset(out, 0, sizeof(*out));
	job j = {NULL, url, nranks, 0, seed, NULL, calloc((size_t)nranks, sizeof(rank_slot))};
	if (j.slots == NULL) {
		snprintf(out->message, sizeof(out->message), "out of memory for %d ranks", nranks);
		return out->status = DCP_ENOMEM;
	}
	static const char *const phases[] = {"load", "check"};
	progress prog;
	progress_init(&prog, title, nranks, phases, 2);
	j.prog = &prog;
	int rc = tool_comm_run(tc, nranks, load_rank, &j);
	progress_finish(&prog);
	if (rc != DCP_OK) {
		snprintf(out->message, sizeof(out->message), "could not start %d rank threads: %s", nranks,
		         dcp_strerror(rc));
		slots_free(&j);
		return out->status = rc;
	}
	rc = combine(&j, out);
	/* Keep the spec of this process's first rank for the caller. */
	int first = tool_comm_first_rank(tc);
	out->spec = j.slots[first].spec;
	memset(&j.slots[first].spec, 0, sizeof(j.slots[first].spec));
	slots_free(&j);
	return rc;
}

int job_report(const char *what, const job_result *res)
{
	if (res->status == DCP_OK)
		return TOOL_EXIT_OK;
	if (res->err != NULL) {
		int ex = tool_report_error(what, res->status, res->err);
		if (res->message[0] != '\0')
			fprintf(stderr, "%s\n", res->message);
		return ex;
	}
	if (res->message[0] != '\0')
		fprintf(stderr, "%s\n", res->message);
	else
		fprintf(stderr, "%s: %s\n", what, dcp_strerror(res->status));
	return res->status == 1 ? TOOL_EXIT_FAIL : tool_exit_code(res->status);
}

void job_result_clear(job_result *res)
{
	dcp_error_free(res->err);
	synth_spec_clear(&res->spec);
	memset(res, 0, sizeof(*res));
}

int job_print_json(const char *command, const char *url, int nranks, const job_result *res)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o != NULL) {
		double bps = res->seconds > 0 ? (double)res->bytes / res->seconds : 0.0;
		cJSON_AddStringToObject(o, "command", command);
		cJSON_AddStringToObject(o, "url", url);
		cJSON_AddNumberToObject(o, "ranks", nranks);
		cJSON_AddNumberToObject(o, "tensors", (double)res->spec.ntensors);
		cJSON_AddNumberToObject(o, "bytes_items", 2);
		cJSON_AddNumberToObject(o, "checkpoint_bytes", (double)res->spec.total_bytes);
		cJSON_AddNumberToObject(o, "bytes", (double)res->bytes);
		cJSON_AddNumberToObject(o, "seconds", res->seconds);
		cJSON_AddNumberToObject(o, "bytes_per_second", bps);
		if (strcmp(command, "load") == 0) {
			cJSON_AddNumberToObject(o, "elements_checked", (double)res->elements);
			cJSON_AddNumberToObject(o, "mismatches", (double)res->mismatches);
		}
		char seed[32];
		snprintf(seed, sizeof(seed), "%llu", (unsigned long long)res->spec.seed);
		cJSON_AddStringToObject(o, "seed", seed);
		text = cJSON_Print(o);
		cJSON_Delete(o);
	}
	if (text == NULL) {
		fprintf(stderr, "dcp %s: out of memory while printing JSON\n", command);
		return TOOL_EXIT_FAIL;
	}
	puts(text);
	cJSON_free(text);
	return TOOL_EXIT_OK;
}
