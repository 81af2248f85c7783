#!/bin/sh
# Runs a command against a fresh single-node Ceph cluster with radosgw (see
# start-radosgw.sh) and stops the cluster afterwards, also when the command
# fails or is interrupted. Each run has its own cluster, ports and state
# directory, so several runs may go at once.
#
# Usage: with-radosgw.sh CMD [ARGS...]
# CMD runs with the variables of start-radosgw.sh's env file exported
# (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION=us-east-1, DCP_S3_TEST_BUCKET, DCP_S3_TEST_SERVER=radosgw,
# DCP_S3_TEST_HTTPS_ENDPOINT, DCP_S3_TEST_CA_BUNDLE, DCP_S3_TEST_VHOST_DOMAIN,
# DCP_S3_TEST_VHOST_ENDPOINT, RADOSGW_LOG, ...).
# Exits with CMD's status (or 1 if the cluster could not start).
# RADOSGW_KEEP=1 keeps the state directory (logs) afterwards.
set -eu

[ $# -ge 1 ] || {
	echo "usage: with-radosgw.sh CMD [ARGS...]" >&2
	exit 2
}
here=$(cd "$(dirname "$0")" && pwd)
state=$(mktemp -d "${TMPDIR:-/tmp}/dcp-radosgw.XXXXXX") || {
	echo "with-radosgw.sh: mktemp -d in ${TMPDIR:-/tmp} failed" >&2
	exit 1
}
cleanup() {
	"$here/stop-radosgw.sh" "$state" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$here/start-radosgw.sh" "$state" >/dev/null || {
	echo "with-radosgw.sh: the cluster did not start (logs in $state/log, kept with RADOSGW_KEEP=1); $* was not run" >&2
	exit 1
}
# AWS_PROFILE and shared files must not redirect the tests to another store.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_CA_BUNDLE
. "$state/env"
set +e
"$@"
status=$?
set -e
exit $status
