#!/bin/sh
# Runs dcp-crash-trials on s3:// against a fresh s3rver.
#
# Usage: crash-s3.sh PROGRAM [OPTIONS...]
#   PROGRAM  the dcp-crash-trials executable (build/bin/dcp-crash-trials)
#   OPTIONS  its options (not the URL), e.g. --trials 1000, --seed S --trial N
# Starts s3rver with tests/s3/with-s3rver.sh (which stops it afterwards), then
# runs PROGRAM [OPTIONS] --observe $S3RVER_DATA_DIR/BUCKET/crash
# s3://BUCKET/crash: s3rver keeps object KEY as the file KEY._S3rver_object
# under its data folder, which is where the trials watch the save's steps.
# Exits with PROGRAM's status.
set -eu

[ $# -ge 1 ] || {
	echo "usage: crash-s3.sh PROGRAM [OPTIONS...] (PROGRAM: build/bin/dcp-crash-trials)" >&2
	exit 2
}
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${DCP_CRASH_S3_INNER:-}" ]; then
	DCP_CRASH_S3_INNER=1 exec "$here/../s3/with-s3rver.sh" "$0" "$@"
fi
program=$1
shift
bucket=${DCP_S3_TEST_BUCKET:?with-s3rver.sh did not export DCP_S3_TEST_BUCKET}
data=${S3RVER_DATA_DIR:?with-s3rver.sh did not export S3RVER_DATA_DIR}
exec "$program" "$@" --observe "$data/$bucket/crash" "s3://$bucket/crash"
