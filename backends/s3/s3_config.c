/*
 * Configuration the way AWS tools find it (see dcp_s3_config_load in
 * s3_backend.h for the order). Values from every source go through the same
 * setters, so a bad value is reported the same way, naming where it came
 * from. Secrets are copied only into the config, never into a message, and
 * file buffers that held them are wiped.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_internal.h"

const char *const dcp_s3_url_keys[] = {
        "endpoint", "region",  "path_style", "part_size",       "multipart_threshold", "concurrency",
        "retries",  "profile", "config",     "upload_checksum", "verify_etag",         NULL};

#define FILE_MAX (1 << 20) /* AWS files and JSON profiles larger than this are refused */

static void wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void dcp_s3_config_init(dcp_s3_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->path_style = -1;
	cfg->part_size = DCP_S3_DEFAULT_PART_SIZE;
	cfg->multipart_threshold = DCP_S3_DEFAULT_THRESHOLD;
	cfg->concurrency = DCP_S3_DEFAULT_CONCURRENCY;
	cfg->max_attempts = DCP_S3_DEFAULT_ATTEMPTS;
	cfg->verify_tls = 1;
	cfg->upload_md5 = 1;
	cfg->verify_etag = 1;
	cfg->connect_timeout_s = 10;
	cfg->low_speed_time_s = 60;
	cfg->backoff_base_ms = 100;
	cfg->backoff_cap_ms = 10000;
}

void dcp_s3_config_clear(dcp_s3_config *cfg)
{
	free(cfg->endpoint);
	free(cfg->region);
	free(cfg->access_key_id);
	wipe_free(cfg->secret_access_key);
	wipe_free(cfg->session_token);
	free(cfg->credentials_from);
	free(cfg->ca_bundle);
	dcp_s3_config_init(cfg);
}

static int dup_field(char **dst, const char *src, int *bad)
{
	*dst = NULL;
	if (src != NULL && (*dst = dcp_strdup(src)) == NULL)
		*bad = 1;
	return 0;
}

int dcp_s3_config_copy(dcp_s3_config *dst, const dcp_s3_config *src, dcp_msg *msg)
{
	int bad = 0;

	*dst = *src;
	dup_field(&dst->endpoint, src->endpoint, &bad);
	dup_field(&dst->region, src->region, &bad);
	dup_field(&dst->access_key_id, src->access_key_id, &bad);
	dup_field(&dst->secret_access_key, src->secret_access_key, &bad);
	dup_field(&dst->session_token, src->session_token, &bad);
	dup_field(&dst->credentials_from, src->credentials_from, &bad);
	dup_field(&dst->ca_bundle, src->ca_bundle, &bad);
	if (bad) {
		dcp_s3_config_clear(dst);
		dcp_msgf(msg, "out of memory copying the S3 configuration");
		return DCP_ENOMEM;
	}
	return DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* Setters: value text, where it came from (for messages), error code.      */
/* ------------------------------------------------------------------------ */
static int set_string(char **slot, const char *v, dcp_msg *msg)
{
	char *c = dcp_strdup(v);

	if (c == NULL) {
		dcp_msgf(msg, "out of memory reading the S3 configuration");
		return DCP_ENOMEM;
	}
	free(*slot);
	*slot = c;
	return DCP_OK;
}

static int set_endpoint(dcp_s3_config *cfg, const char *v, const char *from, int code, dcp_msg *msg)
{
	const char *host;
	size_t n = strlen(v), i;

	while (n > 0 && v[n - 1] == '/')
		n--;
	for (i = 0; i < n; i++) {
		/* '@' would put credentials into the endpoint, and so into messages. */
		if ((unsigned char)v[i] <= ' ' || v[i] == '?' || v[i] == '#' || v[i] == '@' || v[i] == '\\' ||
		    (unsigned char)v[i] >= 0x7f) {
			dcp_msgf(msg,
			         "endpoint from %s has a '%c' at position %zu: write "
			         "scheme://host[:port][/path] "
			         "without credentials, query or fragment",
			         from, v[i] > ' ' && v[i] < 0x7f ? v[i] : '?', i);
			return code;
		}
	}
	if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else {
		dcp_msgf(msg,
		         "endpoint '%.200s' from %s is not an http:// or https:// URL (e.g. "
		         "http://127.0.0.1:9000)",
		         v, from);
		return code;
	}
	if (host >= v + n || *host == '/' || *host == ':') {
		dcp_msgf(msg, "endpoint '%.200s' from %s has no host name", v, from);
		return code;
	}
	free(cfg->endpoint);
	cfg->endpoint = malloc(n + 1);
	if (cfg->endpoint == NULL) {
		dcp_msgf(msg, "out of memory reading the S3 configuration");
		return DCP_ENOMEM;
	}
	memcpy(cfg->endpoint, v, n);
	cfg->endpoint[n] = '\0';
	return DCP_OK;
}

static int set_region(dcp_s3_config *cfg, const char *v, const char *from, int code, dcp_msg *msg)
{
	size_t n = strlen(v), i;

	for (i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '-'))
			break;
	if (n == 0 || n > 40 || i < n) {
		dcp_msgf(msg,
		         "region '%.60s' from %s is not a region name (lowercase letters, digits and '-', "
		         "e.g. "
		         "us-east-1)",
		         v, from);
		return code;
	}
	return set_string(&cfg->region, v, msg);
}

static int set_path_style(dcp_s3_config *cfg, const char *v, const char *from, int code, dcp_msg *msg)
{
	int b;

	if (strcmp(v, "path") == 0)
		cfg->path_style = 1;
	else if (strcmp(v, "virtual") == 0)
		cfg->path_style = 0;
	else if (strcmp(v, "auto") == 0)
		cfg->path_style = -1;
	else if (dcp_parse_bool(v, &b) == DCP_OK)
		cfg->path_style = b;
	else {
		dcp_msgf(msg, "path style '%.60s' from %s is not 1/0, true/false, path, virtual or auto", v,
		         from);
		return code;
	}
	return DCP_OK;
}

static int set_part_size(dcp_s3_config *cfg, const char *v, const char *from, int code, dcp_msg *msg)
{
	uint64_t s;

	if (dcp_parse_size(v, &s) != DCP_OK || s < DCP_S3_MIN_PART_SIZE || s > DCP_S3_MAX_PART_SIZE) {
		dcp_msgf(msg,
		         "part size '%.60s' from %s is not a size between 5M and 5G (S3's limits), e.g. 8M",
		         v, from);
		return code;
	}
	cfg->part_size = s;
	return DCP_OK;
}

static int set_threshold(dcp_s3_config *cfg, const char *v, const char *from, int code, dcp_msg *msg)
{
	uint64_t s;

	if (dcp_parse_size(v, &s) != DCP_OK || s < DCP_S3_MIN_PART_SIZE || s > DCP_S3_MAX_PART_SIZE) {
		dcp_msgf(msg,
		         "multipart threshold '%.60s' from %s is not a size between 5M and 5G (S3's limits "
		         "for "
		         "one PUT), e.g. 64M",
		         v, from);
		return code;
	}
	cfg->multipart_threshold = s;
	return DCP_OK;
}

static int set_int(int *slot, const char *v, long long min, long long max, long long add, const char *what,
                   const char *from, int code, dcp_msg *msg)
{
	long long x;

	if (dcp_parse_int(v, min, max, &x) != DCP_OK) {
		dcp_msgf(msg, "%s '%.60s' from %s is not a whole number from %lld to %lld", what, v, from,
		         min, max);
		return code;
	}
	*slot = (int)(x + add);
	return DCP_OK;
}

static int set_seconds(long *slot, const char *v, const char *what, const char *from, int code, dcp_msg *msg)
{
	int x;
	int rc = set_int(&x, v, 1, 3600, 0, what, from, code, msg);

	if (rc == DCP_OK)
		*slot = x;
	return rc;
}

static int set_bool(int *slot, const char *v, const char *what, const char *from, int code, dcp_msg *msg)
{
	if (dcp_parse_bool(v, slot) != DCP_OK) {
		dcp_msgf(msg, "%s '%.60s' from %s is not 1/0, true/false, yes/no or on/off", what, v, from);
		return code;
	}
	return DCP_OK;
}

static int set_upload_checksum(dcp_s3_config *cfg, const char *v, const char *from, int code, dcp_msg *msg)
{
	if (strcmp(v, "md5") == 0)
		cfg->upload_md5 = 1;
	else if (strcmp(v, "none") == 0)
		cfg->upload_md5 = 0;
	else {
		dcp_msgf(msg,
		         "upload_checksum '%.60s' from %s is not md5 (Content-MD5 on every upload, the "
		         "default) or none",
		         v, from);
		return code;
	}
	return DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */
/* Reads path into a malloc'd NUL-terminated buffer. A missing file is
 * DCP_ENOTFOUND without message when optional. */
static int read_file(const char *path, int optional, const char *what, char **out, size_t *len, dcp_msg *msg)
{
	FILE *f;
	char *buf;
	size_t n;

	*out = NULL;
	f = fopen(path, "rb");
	if (f == NULL) {
		int e = errno;
		if (optional && e == ENOENT)
			return DCP_ENOTFOUND;
		dcp_msgf(msg, "cannot open %s %s: %s", what, path, strerror(e));
		return e == ENOENT ? DCP_ENOTFOUND : DCP_EIO;
	}
	buf = malloc(FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		dcp_msgf(msg, "out of memory reading %s %s", what, path);
		return DCP_ENOMEM;
	}
	n = fread(buf, 1, FILE_MAX + 1, f);
	if (ferror(f) || n > FILE_MAX) {
		int big = n > FILE_MAX;
		fclose(f);
		explicit_bzero(buf, n);
		free(buf);
		dcp_msgf(msg, "cannot read %s %s: %s", what, path, big ? "larger than 1 MiB" : "read error");
		return DCP_EIO;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return DCP_OK;
}

/* What one profile's section of an AWS file says. Strings point into the
 * file buffer (which is wiped after use). */
typedef struct ini_profile {
	int found;
	const char *access_key_id, *secret_access_key, *session_token;
	const char *region, *endpoint_url, *max_attempts, *ca_bundle;
	const char *s3_addressing_style, *s3_endpoint_url, *s3_chunksize, *s3_threshold, *s3_concurrency;
} ini_profile;

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Does section header text (inside the brackets) name the profile? */
static int section_matches(char *sec, const char *profile, int config_file)
{
	sec = trim(sec);
	if (!config_file)
		return strcmp(sec, profile) == 0;
	if (strncmp(sec, "profile", 7) == 0 && (sec[7] == ' ' || sec[7] == '\t'))
		return strcmp(trim(sec + 8), profile) == 0;
	return strcmp(profile, "default") == 0 && strcmp(sec, "default") == 0;
}

/*
 * Parses an AWS INI file in place (buf is modified) and fills p with the
 * section of profile. Lines: "[section]", "key = value", "# comment",
 * "; comment"; a "key =" line with no value opens a block of indented
 * "key = value" lines (e.g. "s3 =" with addressing_style inside). A line
 * that is none of these is DCP_EINVAL naming only the file and line number
 * (the line could hold a secret).
 */
static int ini_parse(char *buf, const char *path, const char *profile, int config_file, ini_profile *p,
                     dcp_msg *msg)
{
	char *line = buf, *next;
	int in_profile = 0, lineno = 0;
	char *block = NULL; /* name of the open "key =" block */

	for (; line != NULL && *line != '\0'; line = next) {
		char *eq, *key, *val;
		int indented;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		indented = line[0] == ' ' || line[0] == '\t';
		line = trim(line);
		if (line[0] == '\0' || line[0] == '#' || line[0] == ';')
			continue;
		if (line[0] == '[') {
			char *close = strchr(line, ']');
			if (close == NULL) {
				dcp_msgf(msg, "line %d of %s opens a section with '[' but has no ']'", lineno,
				         path);
				return DCP_EINVAL;
			}
			*close = '\0';
			in_profile = section_matches(line + 1, profile, config_file);
			if (in_profile)
				p->found = 1;
			block = NULL;
			continue;
		}
		eq = strchr(line, '=');
		if (eq == NULL) {
			dcp_msgf(msg, "line %d of %s is not 'key = value', '[section]' or a comment", lineno,
			         path);
			return DCP_EINVAL;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (!indented)
			block = NULL;
		if (!in_profile)
			continue;
		if (!indented && val[0] == '\0') {
			block = key;
			continue;
		}
		if (block != NULL) {
			if (strcmp(block, "s3") != 0)
				continue;
			if (strcmp(key, "addressing_style") == 0)
				p->s3_addressing_style = val;
			else if (strcmp(key, "endpoint_url") == 0)
				p->s3_endpoint_url = val;
			else if (strcmp(key, "multipart_chunksize") == 0)
				p->s3_chunksize = val;
			else if (strcmp(key, "multipart_threshold") == 0)
				p->s3_threshold = val;
			else if (strcmp(key, "max_concurrent_requests") == 0)
				p->s3_concurrency = val;
			continue;
		}
		if (strcmp(key, "aws_access_key_id") == 0)
			p->access_key_id = val;
		else if (strcmp(key, "aws_secret_access_key") == 0)
			p->secret_access_key = val;
		else if (strcmp(key, "aws_session_token") == 0)
			p->session_token = val;
		else if (config_file && strcmp(key, "region") == 0)
			p->region = val;
		else if (config_file && strcmp(key, "endpoint_url") == 0)
			p->endpoint_url = val;
		else if (config_file && strcmp(key, "max_attempts") == 0)
			p->max_attempts = val;
		else if (config_file && strcmp(key, "ca_bundle") == 0)
			p->ca_bundle = val;
	}
	return DCP_OK;
}

/* $VAR if set and non-empty, else ~/.aws/NAME; malloc'd, NULL if no HOME. */
static char *aws_file_path(const char *var, const char *name, int *oom)
{
	const char *v = getenv(var), *home;
	char *r;

	*oom = 0;
	if (v != NULL && v[0] != '\0')
		r = dcp_strdup(v);
	else if ((home = getenv("HOME")) != NULL && home[0] != '\0')
		r = dcp_asprintf("%s/.aws/%s", home, name);
	else
		return NULL;
	if (r == NULL)
		*oom = 1;
	return r;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Takes the credentials of p (from file path) into cfg. */
static int take_credentials(dcp_s3_config *cfg, const ini_profile *p, const char *profile, const char *path,
                            dcp_msg *msg)
{
	int rc;

	if (p->access_key_id == NULL || p->secret_access_key == NULL)
		return DCP_OK;
	rc = set_string(&cfg->access_key_id, p->access_key_id, msg);
	if (rc == DCP_OK)
		rc = set_string(&cfg->secret_access_key, p->secret_access_key, msg);
	if (rc == DCP_OK) {
		wipe_free(cfg->session_token);
		cfg->session_token = NULL;
		if (p->session_token != NULL && p->session_token[0] != '\0')
			rc = set_string(&cfg->session_token, p->session_token, msg);
	}
	if (rc == DCP_OK) {
		free(cfg->credentials_from);
		cfg->credentials_from = dcp_asprintf("profile '%s' in %s", profile, path);
		if (cfg->credentials_from == NULL) {
			dcp_msgf(msg, "out of memory reading the S3 configuration");
			rc = DCP_ENOMEM;
		}
	}
	return rc;
}

/* Settings (not credentials) of the config file's profile section. */
static int apply_config_profile(dcp_s3_config *cfg, const ini_profile *p, const char *from, dcp_msg *msg)
{
	int rc = DCP_OK;
	const char *ep = p->s3_endpoint_url != NULL ? p->s3_endpoint_url : p->endpoint_url;

	if (p->region != NULL && p->region[0] != '\0')
		rc = set_region(cfg, p->region, from, DCP_EINVAL, msg);
	if (rc == DCP_OK && ep != NULL && ep[0] != '\0')
		rc = set_endpoint(cfg, ep, from, DCP_EINVAL, msg);
	if (rc == DCP_OK && p->max_attempts != NULL)
		rc = set_int(&cfg->max_attempts, p->max_attempts, 1, DCP_S3_MAX_ATTEMPTS, 0, "max_attempts",
		             from, DCP_EINVAL, msg);
	if (rc == DCP_OK && p->ca_bundle != NULL && p->ca_bundle[0] != '\0')
		rc = set_string(&cfg->ca_bundle, p->ca_bundle, msg);
	if (rc == DCP_OK && p->s3_addressing_style != NULL)
		rc = set_path_style(cfg, p->s3_addressing_style, from, DCP_EINVAL, msg);
	if (rc == DCP_OK && p->s3_chunksize != NULL)
		rc = set_part_size(cfg, p->s3_chunksize, from, DCP_EINVAL, msg);
	if (rc == DCP_OK && p->s3_threshold != NULL)
		rc = set_threshold(cfg, p->s3_threshold, from, DCP_EINVAL, msg);
	if (rc == DCP_OK && p->s3_concurrency != NULL)
		rc = set_int(&cfg->concurrency, p->s3_concurrency, 1, DCP_S3_MAX_CONCURRENCY, 0,
		             "max_concurrent_requests", from, DCP_EINVAL, msg);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* JSON profile                                                             */
/* ------------------------------------------------------------------------ */
typedef struct json_settings {
	cJSON *root;
	const char *profile; /* into root */
} json_settings;

/* The text of a JSON value (string, number or bool) into buf. */
static const char *json_text(const cJSON *v, char *buf, size_t len)
{
	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v) ? "1" : "0";
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble < 0 || v->valuedouble > 1e18 ||
		    (double)(long long)v->valuedouble != v->valuedouble)
			return NULL;
		snprintf(buf, len, "%lld", (long long)v->valuedouble);
		return buf;
	}
	return NULL;
}

static int json_load(const char *path, json_settings *js, dcp_msg *msg)
{
	static const char *const known[] = {"endpoint",
	                                    "region",
	                                    "path_style",
	                                    "part_size",
	                                    "multipart_threshold",
	                                    "concurrency",
	                                    "retries",
	                                    "profile",
	                                    "verify_tls",
	                                    "ca_bundle",
	                                    "connect_timeout",
	                                    "low_speed_time",
	                                    "comment",
	                                    "upload_checksum",
	                                    "verify_etag",
	                                    NULL};
	char *buf;
	size_t len, i;
	int rc;
	const cJSON *it;

	rc = read_file(path, 0, "the S3 JSON profile", &buf, &len, msg);
	if (rc != DCP_OK)
		return rc == DCP_ENOTFOUND ? DCP_EINVAL : rc;
	js->root = cJSON_ParseWithLength(buf, len);
	free(buf);
	if (js->root == NULL || !cJSON_IsObject(js->root)) {
		dcp_msgf(msg, "the S3 JSON profile %s is not a JSON object", path);
		return DCP_EINVAL;
	}
	cJSON_ArrayForEach(it, js->root)
	{
		char tmp[32];
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(known[i], it->string) == 0)
				break;
		if (known[i] == NULL) {
			dcp_msgf(msg,
			         "the S3 JSON profile %s has an unknown key '%.60s'; known keys: endpoint, "
			         "region, "
			         "path_style, part_size, multipart_threshold, concurrency, retries, profile, "
			         "verify_tls, "
			         "ca_bundle, "
			         "connect_timeout, low_speed_time, upload_checksum, verify_etag, comment "
			         "(credentials belong in the "
			         "environment or "
			         "~/.aws/credentials)",
			         path, it->string);
			return DCP_EINVAL;
		}
		if (strcmp(it->string, "comment") != 0 && json_text(it, tmp, sizeof(tmp)) == NULL) {
			dcp_msgf(msg,
			         "key '%s' of the S3 JSON profile %s must be a string, a whole number or a "
			         "boolean",
			         it->string, path);
			return DCP_EINVAL;
		}
	}
	it = cJSON_GetObjectItemCaseSensitive(js->root, "profile");
	if (it != NULL && cJSON_IsString(it))
		js->profile = it->valuestring;
	return DCP_OK;
}

/* Applies one setting by its URL / JSON key. */
static int apply_key(dcp_s3_config *cfg, const char *key, const char *v, const char *from, int code,
                     dcp_msg *msg)
{
	if (strcmp(key, "endpoint") == 0)
		return set_endpoint(cfg, v, from, code, msg);
	if (strcmp(key, "region") == 0)
		return set_region(cfg, v, from, code, msg);
	if (strcmp(key, "path_style") == 0)
		return set_path_style(cfg, v, from, code, msg);
	if (strcmp(key, "part_size") == 0)
		return set_part_size(cfg, v, from, code, msg);
	if (strcmp(key, "multipart_threshold") == 0)
		return set_threshold(cfg, v, from, code, msg);
	if (strcmp(key, "concurrency") == 0)
		return set_int(&cfg->concurrency, v, 1, DCP_S3_MAX_CONCURRENCY, 0, "concurrency", from, code,
		               msg);
	if (strcmp(key, "retries") == 0)
		return set_int(&cfg->max_attempts, v, 0, DCP_S3_MAX_ATTEMPTS - 1, 1, "retries", from, code,
		               msg);
	if (strcmp(key, "verify_tls") == 0)
		return set_bool(&cfg->verify_tls, v, "verify_tls", from, code, msg);
	if (strcmp(key, "ca_bundle") == 0)
		return set_string(&cfg->ca_bundle, v, msg);
	if (strcmp(key, "upload_checksum") == 0)
		return set_upload_checksum(cfg, v, from, code, msg);
	if (strcmp(key, "verify_etag") == 0)
		return set_bool(&cfg->verify_etag, v, "verify_etag", from, code, msg);
	if (strcmp(key, "connect_timeout") == 0)
		return set_seconds(&cfg->connect_timeout_s, v, "connect_timeout", from, code, msg);
	if (strcmp(key, "low_speed_time") == 0)
		return set_seconds(&cfg->low_speed_time_s, v, "low_speed_time", from, code, msg);
	return DCP_OK; /* profile, config, comment: handled by the caller */
}

static int json_apply(dcp_s3_config *cfg, const json_settings *js, const char *path, dcp_msg *msg)
{
	const cJSON *it;
	char from[1100];
	int rc;

	snprintf(from, sizeof(from), "the S3 JSON profile %s", path);
	cJSON_ArrayForEach(it, js->root)
	{
		char tmp[32];
		const char *v = json_text(it, tmp, sizeof(tmp));
		if (v == NULL)
			continue;
		rc = apply_key(cfg, it->string, v, from, DCP_EINVAL, msg);
		if (rc != DCP_OK)
			return rc;
	}
	return DCP_OK;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */
/* Reads an AWS file's profile section: *buf (wipe and free it) holds the
 * strings p points to. A missing file leaves p empty. */
static int load_aws_file(const char *path, const char *profile, int config_file, char **buf, ini_profile *p,
                         dcp_msg *msg)
{
	size_t len;
	int rc;

	memset(p, 0, sizeof(*p));
	*buf = NULL;
	if (path == NULL)
		return DCP_OK;
	rc = read_file(path, 1, config_file ? "the AWS config file" : "the AWS credentials file", buf, &len,
	               msg);
	if (rc == DCP_ENOTFOUND)
		return DCP_OK;
	if (rc != DCP_OK)
		return rc;
	return ini_parse(*buf, path, profile, config_file, p, msg);
}

static void wipe_buf(char *buf)
{
	if (buf != NULL) {
		explicit_bzero(buf, strlen(buf));
		free(buf);
	}
}

int dcp_s3_config_load(dcp_s3_config *cfg, const dcp_url *url, const char *shown, dcp_msg *msg)
{
	json_settings js = {NULL, NULL};
	const char *json_path = NULL, *profile = NULL, *v;
	char *cfg_path = NULL, *cred_path = NULL, *cfg_buf = NULL, *cred_buf = NULL;
	ini_profile pc, pk;
	int rc = DCP_OK, oom, named = 0, explicit_profile;
	size_t i;
	char from[1200];

	dcp_s3_config_init(cfg);
	if (shown == NULL)
		shown = "(s3 id)";
	if (url != NULL) {
		json_path = dcp_url_param_get(url, "config");
		profile = dcp_url_param_get(url, "profile");
		if (profile != NULL && profile[0] == '\0') {
			dcp_msgf(msg, "profile= in checkpoint id '%s' is empty: name an AWS profile", shown);
			return DCP_EID;
		}
	}
	if (json_path == NULL)
		json_path = env("DCP_S3_CONFIG");
	if (json_path != NULL) {
		rc = json_load(json_path, &js, msg);
		if (rc != DCP_OK)
			goto out;
		if (profile == NULL)
			profile = js.profile;
	}
	explicit_profile = named = profile != NULL;
	if (profile == NULL)
		profile = env("AWS_PROFILE");
	if (profile == NULL)
		profile = env("AWS_DEFAULT_PROFILE");
	if (profile != NULL && strcmp(profile, "default") != 0)
		named = 1;
	if (profile == NULL)
		profile = "default";

	/* 2. The AWS files. */
	cfg_path = aws_file_path("AWS_CONFIG_FILE", "config", &oom);
	if (oom == 0)
		cred_path = aws_file_path("AWS_SHARED_CREDENTIALS_FILE", "credentials", &oom);
	if (oom) {
		dcp_msgf(msg, "out of memory reading the S3 configuration");
		rc = DCP_ENOMEM;
		goto out;
	}
	rc = load_aws_file(cfg_path, profile, 1, &cfg_buf, &pc, msg);
	if (rc == DCP_OK)
		rc = load_aws_file(cred_path, profile, 0, &cred_buf, &pk, msg);
	if (rc != DCP_OK)
		goto out;
	if (named && !pc.found && !pk.found) {
		dcp_msgf(msg,
		         "AWS profile '%s' (for %s) is in neither %s nor %s: add it, or name another profile",
		         profile, shown, cred_path != NULL ? cred_path : "~/.aws/credentials",
		         cfg_path != NULL ? cfg_path : "~/.aws/config");
		rc = DCP_EINVAL;
		goto out;
	}
	if (pc.found) {
		snprintf(from, sizeof(from), "profile '%s' in %s", profile, cfg_path);
		rc = apply_config_profile(cfg, &pc, from, msg);
		if (rc != DCP_OK)
			goto out;
	}

	/* 3. The environment. */
	if ((v = env("AWS_DEFAULT_REGION")) != NULL &&
	    (rc = set_region(cfg, v, "$AWS_DEFAULT_REGION", DCP_EINVAL, msg)) != DCP_OK)
		goto out;
	if ((v = env("AWS_REGION")) != NULL &&
	    (rc = set_region(cfg, v, "$AWS_REGION", DCP_EINVAL, msg)) != DCP_OK)
		goto out;
	if ((v = env("AWS_ENDPOINT_URL")) != NULL &&
	    (rc = set_endpoint(cfg, v, "$AWS_ENDPOINT_URL", DCP_EINVAL, msg)) != DCP_OK)
		goto out;
	if ((v = env("AWS_ENDPOINT_URL_S3")) != NULL &&
	    (rc = set_endpoint(cfg, v, "$AWS_ENDPOINT_URL_S3", DCP_EINVAL, msg)) != DCP_OK)
		goto out;
	if ((v = env("AWS_MAX_ATTEMPTS")) != NULL &&
	    (rc = set_int(&cfg->max_attempts, v, 1, DCP_S3_MAX_ATTEMPTS, 0, "max attempts",
	                  "$AWS_MAX_ATTEMPTS", DCP_EINVAL, msg)) != DCP_OK)
		goto out;
	if ((v = env("AWS_CA_BUNDLE")) != NULL && (rc = set_string(&cfg->ca_bundle, v, msg)) != DCP_OK)
		goto out;

	/* Credentials: a profile named in the URL or the JSON profile wins over
	 * the environment's keys; $AWS_PROFILE does not (as in botocore). */
	if (!explicit_profile) {
		const char *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
		if (id != NULL && secret != NULL) {
			rc = set_string(&cfg->access_key_id, id, msg);
			if (rc == DCP_OK)
				rc = set_string(&cfg->secret_access_key, secret, msg);
			if (rc == DCP_OK && (v = env("AWS_SESSION_TOKEN")) != NULL)
				rc = set_string(&cfg->session_token, v, msg);
			if (rc == DCP_OK)
				rc = set_string(&cfg->credentials_from, "the environment (AWS_ACCESS_KEY_ID)",
				                msg);
			if (rc != DCP_OK)
				goto out;
		}
	}
	if (cfg->access_key_id == NULL) {
		rc = take_credentials(cfg, &pk, profile, cred_path, msg);
		if (rc == DCP_OK && cfg->access_key_id == NULL)
			rc = take_credentials(cfg, &pc, profile, cfg_path, msg);
		if (rc != DCP_OK)
			goto out;
	}

	/* 4. The JSON profile. */
	if (js.root != NULL && (rc = json_apply(cfg, &js, json_path, msg)) != DCP_OK)
		goto out;

	/* 5. The URL. */
	snprintf(from, sizeof(from), "checkpoint id '%s'", shown);
	for (i = 0; url != NULL && i < url->nparams; i++) {
		rc = apply_key(cfg, url->params[i].key, url->params[i].value, from, DCP_EID, msg);
		if (rc != DCP_OK)
			goto out;
	}
	if (cfg->region == NULL && (rc = set_string(&cfg->region, DCP_S3_DEFAULT_REGION, msg)) != DCP_OK)
		goto out;
out:
	wipe_buf(cfg_buf);
	wipe_buf(cred_buf);
	free(cfg_path);
	free(cred_path);
	cJSON_Delete(js.root);
	return rc;
}
