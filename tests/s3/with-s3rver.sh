#!/bin/sh
# Runs a command against a fresh s3rver and stops the server afterwards, also
# when the command fails or is interrupted.
#
# Usage: with-s3rver.sh CMD [ARGS...]
# CMD runs with the variables of start-s3rver.sh's env file exported
# (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID=S3RVER, AWS_SECRET_ACCESS_KEY=S3RVER,
# AWS_REGION=us-east-1, DCP_S3_TEST_BUCKET, DCP_S3_TEST_SERVER=s3rver,
# S3RVER_DATA_DIR, S3RVER_LOG, ...).
# Exits with CMD's status (or 1 if the server could not start).
set -eu

[ $# -ge 1 ] || {
	echo "usage: with-s3rver.sh CMD [ARGS...]" >&2
	exit 2
}
here=$(cd "$(dirname "$0")" && pwd)
state=$("$here/start-s3rver.sh" | tail -n 1)
cleanup() {
	"$here/stop-s3rver.sh" "$state" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# AWS_PROFILE and shared files must not redirect the tests to another store.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION
. "$state/env"
set +e
"$@"
status=$?
set -e
exit $status
