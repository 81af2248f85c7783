/*
 * Helpers shared by the S3 tests (tests/test_s3.c, tests/test_s3_*.c),
 * compiled into each of them by tests/s3/CMakeLists.txt, only when the S3
 * backend is built (DCP_TEST_HAVE_S3).
 *
 * The server comes from the environment that tests/s3/with-s3rver.sh or
 * tests/s3/with-radosgw.sh sets: AWS_ENDPOINT_URL_S3, the server's
 * credentials, DCP_S3_TEST_BUCKET and DCP_S3_TEST_SERVER (which server it is:
 * "s3rver" or "radosgw"; see server_is_s3rver). Every
 * helper runs on the test's own thread and fails the test (cr_assert) on
 * what it cannot do, unless it says it returns an error.
 */
#ifndef DCP_TEST_S3TEST_H
#define DCP_TEST_S3TEST_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "dcp/dcp.h"
#include "dcp/sys/metadata.h"
#include "dcptest.h"

#define SEED_A UINT64_C(0x5a3e1)
#define SEED_B UINT64_C(0xb0a7)
/* A secret value that no message may ever show. */
#define SECRET "s3cr3t-V4LUE-never-shown"

/* The server's endpoint (AWS_ENDPOINT_URL_S3), or NULL when none is set. */
const char *endpoint(void);

/* The test bucket (DCP_S3_TEST_BUCKET, default "dcp-test"). Never NULL. */
const char *bucket(void);

/* Skips the calling test when no server is set. */
void need_server(void);

/* The server's name (DCP_S3_TEST_SERVER), "s3rver" when it is not set: the
 * suite was written against s3rver, and with-s3rver.sh sets it anyway. */
const char *server_name(void);

/*
 * 1 when the server is s3rver, whose quirks some tests expect: it checks the
 * access key id but no signature, accepts anonymous requests, answers 405 to
 * AbortMultipartUpload and 501 to ListMultipartUploads. 0 for a server that
 * behaves as S3 does (radosgw, or any other DCP_S3_TEST_SERVER value: MinIO,
 * AWS): it verifies Signature V4, refuses anonymous requests and aborts
 * uploads with 204.
 */
int server_is_s3rver(void);

/* Writes a key prefix unique to this test run and name into buf (n bytes);
 * returns buf. */
char *prefix_for(char *buf, size_t n, const char *name);

/* Seconds on the monotonic clock. */
double now_s(void);

/* A mixed state split over nranks ranks. The caller frees it with
 * dt_layout_free. */
dt_layout *mixed_layout(int nranks);

/* A backend on the test bucket with the environment's configuration and the
 * URL-style overrides in query ("part_size=5M&concurrency=4", may be "", not
 * NULL). The caller destroys it (b->ops->destroy). */
dcp_backend *open_backend(const char *prefix, const char *query);

/* Fills p[0..n) with a pseudo-random pattern determined by seed. */
void fill_pattern(unsigned char *p, size_t n, uint32_t seed);

/* Writes data (n bytes) to path through a writer, with appends of uneven
 * sizes. Returns the backend's status; *msg says why on failure. */
int write_object(dcp_backend *b, const char *path, const unsigned char *data, size_t n, dcp_msg *msg);

/* The first 512 names and sizes that a list call reported. */
typedef struct name_list {
	size_t n;
	char names[512][256];
	uint64_t sizes[512];
} name_list;

/* A dcp_backend list callback that appends to the name_list arg. */
int collect(const char *path, uint64_t size, void *arg);

/* 1 if l holds name, else 0. */
int list_has(const name_list *l, const char *name);

/* 1 if md names path as the storage of some chunk, else 0. */
int md_names(const dcp_metadata *md, const char *path);

#endif /* DCP_TEST_S3TEST_H */
