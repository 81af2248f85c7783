/*
 * Files under a directory, as a dcp_backend. Object "a/b" is the file
 * <root>/a/b. Writes go to a new file created with O_EXCL (never over an
 * existing one) and are fsync'd, with their directory, at writer_close;
 * put_atomic writes a temporary file in the same directory and renames it
 * over the target. Errors name the full path and carry strerror(errno).
 */
#ifndef DCP_POSIX_BACKEND_H
#define DCP_POSIX_BACKEND_H

#include "backend.h"

/* A backend rooted at root (an absolute directory path; copied). The
 * directory need not exist yet: slots fail with ENOENT until it does. */
int dcp_posix_backend_open(const char *root, dcp_backend **out, dcp_msg *msg);

/* fsyncs the directory at path (a directory that does not support fsync
 * counts as done). For plugins that create directories. */
int dcp_posix_fsync_dir(const char *path, dcp_msg *msg);

#endif /* DCP_POSIX_BACKEND_H */
