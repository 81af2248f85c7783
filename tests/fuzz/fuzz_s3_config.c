/*
 * libFuzzer target: the S3 configuration (backends/s3/s3_config.c) through
 * its entry point dcp_s3_config_load, which reads the AWS config file, the
 * AWS credentials file, a JSON profile and the checkpoint URL's query.
 *
 * Input: up to five parts separated by NUL bytes (see fuzz_common.h):
 *   0  the checkpoint URL ("s3://bucket/prefix?region=...&profile=..."),
 *      empty for none; a URL with a config= parameter is skipped (it would
 *      name a file outside the harness);
 *   1  the AWS config file ($AWS_CONFIG_FILE); absent part: no such file;
 *   2  the AWS credentials file ($AWS_SHARED_CREDENTIALS_FILE); same;
 *   3  the JSON profile ($DCP_S3_CONFIG); absent part: variable unset;
 *   4  $AWS_PROFILE; absent or empty: unset.
 * Every other AWS_* variable the loader reads is unset once at start.
 *
 * Properties: no crash, leak or hang; a failure returns one of the
 * documented codes with a message; a success gives values inside their
 * documented ranges; a secret (aws_secret_access_key or aws_session_token
 * value of at least 12 bytes that occurs once in the input) never appears
 * in the message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "s3_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const vars[] = {
	        "AWS_REGION",          "AWS_DEFAULT_REGION",         "AWS_ENDPOINT_URL",
	        "AWS_ENDPOINT_URL_S3", "AWS_MAX_ATTEMPTS",           "AWS_CA_BUNDLE",
	        "AWS_ACCESS_KEY_ID",   "AWS_SECRET_ACCESS_KEY",      "AWS_SESSION_TOKEN",
	        "AWS_PROFILE",         "AWS_DEFAULT_PROFILE",        "DCP_S3_CONFIG",
	        "AWS_CONFIG_FILE",     "AWS_SHARED_CREDENTIALS_FILE"};

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	return 0;
}

/* Fails if a secret value of the AWS file `text` shows in msg. */
static void check_no_secret(const char *text, const uint8_t *data, size_t size, const char *msg)
{
	const char *line = text;

	while (line != NULL && *line != '\0') {
		const char *end = strchr(line, '\n');
		size_t n = end != NULL ? (size_t)(end - line) : strlen(line);
		char buf[512];
		char *k, *eq, *v, *e;

		if (n < sizeof(buf)) {
			memcpy(buf, line, n);
			buf[n] = '\0';
			eq = strchr(buf, '=');
			if (eq != NULL) {
				*eq = '\0';
				k = buf + strspn(buf, " \t");
				for (e = eq; e > k && (e[-1] == ' ' || e[-1] == '\t');)
					*--e = '\0';
				v = eq + 1 + strspn(eq + 1, " \t");
				for (e = v + strlen(v);
				     e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r');)
					*--e = '\0';
				if ((strcmp(k, "aws_secret_access_key") == 0 ||
				     strcmp(k, "aws_session_token") == 0) &&
				    strlen(v) >= 12 && fuzz_count(data, size, v) == 1 &&
				    strstr(msg, v) != NULL) {
					fprintf(stderr, "secret '%s' is in the message: %s\n", v, msg);
					FUZZ_CHECK(!"a secret leaked into a message");
				}
			}
		}
		line = end != NULL ? end + 1 : NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_parts p;
	dcp_url url, *up = NULL;
	dcp_s3_config cfg;
	dcp_msg msg = {{0}};
	int rc;

	fuzz_split(data, size, 5, &p);
	memset(&url, 0, sizeof(url));
	if (p.len[0] > 0) {
		if (dcp_url_parse(p.text[0], &url, &msg) != DCP_OK) {
			dcp_url_clear(&url);
			fuzz_parts_free(&p);
			return 0;
		}
		if (dcp_url_param_get(&url, "config") != NULL) {
			dcp_url_clear(&url);
			fuzz_parts_free(&p);
			return -1; /* not added to the corpus */
		}
		up = &url;
	}
	/* An absent file part: the variable names a file that does not exist. */
	fuzz_remove_file("config");
	fuzz_remove_file("credentials");
	setenv("AWS_CONFIG_FILE", fuzz_path("config"), 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", fuzz_path("credentials"), 1);
	if (p.n > 1)
		fuzz_write_file("config", p.text[1], p.len[1]);
	if (p.n > 2)
		fuzz_write_file("credentials", p.text[2], p.len[2]);
	if (p.n > 3)
		setenv("DCP_S3_CONFIG", fuzz_write_file("profile.json", p.text[3], p.len[3]), 1);
	else
		unsetenv("DCP_S3_CONFIG");
	if (p.n > 4 && p.len[4] > 0)
		setenv("AWS_PROFILE", p.text[4], 1);
	else
		unsetenv("AWS_PROFILE");

	memset(msg.text, 0, sizeof(msg.text));
	rc = dcp_s3_config_load(&cfg, up, up != NULL ? p.text[0] : NULL, &msg);
	if (rc == DCP_OK) {
		FUZZ_CHECK(cfg.region != NULL && cfg.region[0] != '\0');
		FUZZ_CHECK(cfg.part_size >= DCP_S3_MIN_PART_SIZE && cfg.part_size <= DCP_S3_MAX_PART_SIZE);
		FUZZ_CHECK(cfg.multipart_threshold >= DCP_S3_MIN_PART_SIZE &&
		           cfg.multipart_threshold <= DCP_S3_MAX_PART_SIZE);
		FUZZ_CHECK(cfg.concurrency >= 1 && cfg.concurrency <= DCP_S3_MAX_CONCURRENCY);
		FUZZ_CHECK(cfg.max_attempts >= 1 && cfg.max_attempts <= DCP_S3_MAX_ATTEMPTS);
		FUZZ_CHECK(cfg.path_style >= -1 && cfg.path_style <= 1);
		FUZZ_CHECK(cfg.verify_tls == 0 || cfg.verify_tls == 1);
		FUZZ_CHECK(cfg.connect_timeout_s >= 1 && cfg.connect_timeout_s <= 3600);
		FUZZ_CHECK(cfg.low_speed_time_s >= 1 && cfg.low_speed_time_s <= 3600);
		if (cfg.endpoint != NULL) {
			size_t n = strlen(cfg.endpoint);
			FUZZ_CHECK(strncmp(cfg.endpoint, "http://", 7) == 0 ||
			           strncmp(cfg.endpoint, "https://", 8) == 0);
			FUZZ_CHECK(n > 0 && cfg.endpoint[n - 1] != '/');
			FUZZ_CHECK(strpbrk(cfg.endpoint, "?#@\\ ") == NULL);
		}
		FUZZ_CHECK((cfg.access_key_id == NULL) == (cfg.secret_access_key == NULL));
		if (cfg.access_key_id != NULL)
			FUZZ_CHECK(cfg.credentials_from != NULL);
	} else {
		FUZZ_CHECK(rc == DCP_EID || rc == DCP_EINVAL || rc == DCP_EIO || rc == DCP_ENOMEM);
		FUZZ_CHECK(msg.text[0] != '\0');
	}
	if (p.n > 1)
		check_no_secret(p.text[1], data, size, msg.text);
	if (p.n > 2)
		check_no_secret(p.text[2], data, size, msg.text);
	dcp_s3_config_clear(&cfg);
	dcp_url_clear(&url);
	fuzz_parts_free(&p);
	return 0;
}
