/*
 * libFuzzer target: the faulty plugin's configuration
 * (plugins/faulty/faulty_config.c): its URL parameters (fail.<stage>,
 * torn.write_data, torn.bytes) and its JSON scenario file (faults=), through
 * faulty_config_parse, the function that writer_open and reader_open call.
 * faulty_config.c is compiled into this program (the plugin exports nothing
 * but its entry point).
 *
 * Input: up to two parts separated by a NUL byte (see fuzz_common.h):
 *   0  the URL, e.g. "faulty+mem://x?fail.write_data=1,3";
 *   1  if present, the scenario file: the harness writes it to a scratch
 *      file and appends faults=<that file> to the URL. A URL that then names
 *      another scenario file (or one without part 1 that names any) is
 *      skipped, so that no file outside the harness is read.
 * The host has futures (version 2) when the input's size is even, and is
 * absent when it is odd, so that torn writes are both accepted and refused.
 *
 * Properties: no crash, leak or hang; a failure returns DCP_EID,
 * DCP_EVERSION or DCP_ENOMEM with a message; a success gives an inner URL
 * that parses, has the inner scheme, and carries none of the faulty
 * plugin's parameters.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "faulty.h"
#include "fuzz_common.h"

/* Never called while parsing: present only so that the host looks like a
 * version-2 host. */
static dcp_future *no_future_new(void)
{
	abort();
}

static int no_future_wait(dcp_future *fut, dcp_msg *msg)
{
	(void)fut;
	(void)msg;
	abort();
}

static void no_future_free(dcp_future *fut)
{
	(void)fut;
	abort();
}

static int is_faulty_param(const char *key)
{
	return strcmp(key, "faults") == 0 || strcmp(key, "fail") == 0 || strcmp(key, "torn") == 0 ||
	       strncmp(key, "fail.", 5) == 0 || strncmp(key, "torn.", 5) == 0;
}

static void check_set(const dcp_rank_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		FUZZ_CHECK(s->ranks[i] >= 0 && s->ranks[i] <= 65535);
		FUZZ_CHECK(i == 0 || s->ranks[i - 1] < s->ranks[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static dcp_host host = {.version = 2,
	                        .future_new = no_future_new,
	                        .future_wait = no_future_wait,
	                        .future_free = no_future_free};
	faulty_plugin plugin;
	faulty_config cfg;
	fuzz_parts p;
	dcp_url u, inner;
	dcp_msg msg = {{0}};
	char *url;
	size_t nfaults = 0;
	int rc;

	fuzz_split(data, size, 2, &p);
	if (p.n > 1) {
		const char *path = fuzz_write_file("scenario.json", p.text[1], p.len[1]);
		url = fuzz_xmalloc(p.len[0] + strlen(path) + 16);
		sprintf(url, "%s%sfaults=%s", p.text[0], strchr(p.text[0], '?') != NULL ? "&" : "?", path);
	} else {
		url = fuzz_xmalloc(p.len[0] + 1);
		memcpy(url, p.text[0], p.len[0] + 1);
	}
	/* Only the harness's scenario file may be read. */
	if (dcp_url_parse(url, &u, &msg) == DCP_OK)
		for (size_t i = 0; i < u.nparams; i++)
			nfaults += strcmp(u.params[i].key, "faults") == 0;
	if (nfaults > (p.n > 1 ? 1u : 0u)) {
		dcp_url_clear(&u);
		free(url);
		fuzz_parts_free(&p);
		return -1; /* not added to the corpus */
	}

	memset(&plugin, 0, sizeof(plugin));
	plugin.host = size % 2 == 0 ? &host : NULL;
	pthread_mutex_init(&plugin.json_lock, NULL);
	memset(msg.text, 0, sizeof(msg.text));
	rc = faulty_config_parse(&plugin, url, &cfg, &msg);
	if (rc == DCP_OK) {
		FUZZ_CHECK(cfg.inner_url != NULL);
		FUZZ_CHECK(dcp_url_parse(cfg.inner_url, &inner, &msg) == DCP_OK);
		FUZZ_CHECK(u.scheme != NULL && strncmp(u.scheme, "faulty+", 7) == 0);
		FUZZ_CHECK(strcmp(inner.scheme, u.scheme + 7) == 0 && strcmp(inner.rest, u.rest) == 0);
		for (size_t i = 0; i < inner.nparams; i++)
			FUZZ_CHECK(!is_faulty_param(inner.params[i].key));
		dcp_url_clear(&inner);
		for (int s = 0; s < FAULTY_STAGE_COUNT; s++) {
			check_set(&cfg.fail[s]);
			FUZZ_CHECK(faulty_stage_enabled(&cfg, (faulty_stage)s) ==
			           (cfg.fail[s].all || cfg.fail[s].n > 0));
			FUZZ_CHECK(faulty_stage_from_name(faulty_stage_name((faulty_stage)s)) == s);
		}
		check_set(&cfg.torn_write);
		if (faulty_torn_enabled(&cfg))
			FUZZ_CHECK(plugin.host != NULL);
	} else {
		FUZZ_CHECK(rc == DCP_EID || rc == DCP_EVERSION || rc == DCP_ENOMEM);
		FUZZ_CHECK(msg.text[0] != '\0');
	}
	faulty_config_clear(&cfg);
	dcp_url_clear(&u);
	pthread_mutex_destroy(&plugin.json_lock);
	free(url);
	fuzz_parts_free(&p);
	return 0;
}
