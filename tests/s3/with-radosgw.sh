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
# RADOSGW_KEEP=1 keeps the state directory (logs) afterwards; it is always
# kept when the cluster does not start.
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
# A watchdog outside this process group stops the cluster if this script is
# killed without running its trap (SIGKILL, e.g. a ctest timeout): the
# daemons run detached and would outlive it. It checks every second and ends
# once the state directory is gone (the normal stop); after this script, it
# stops only daemons whose pid files are still there.
if command -v setsid >/dev/null 2>&1; then
	# shellcheck disable=SC2016 # expanded by the watchdog's shell
	setsid sh -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
		for f in "$2"/run/*.pid; do
			[ ! -f "$f" ] || exec "$3/stop-radosgw.sh" "$2"
		done' watchdog $$ "$state" "$here" </dev/null >/dev/null 2>&1 &
fi
if ! "$here/start-radosgw.sh" "$state" >/dev/null; then
	# Keep the logs that start-radosgw.sh's message points to.
	RADOSGW_KEEP=1
	export RADOSGW_KEEP
	echo "with-radosgw.sh: the cluster did not start (its logs stay in $state/log); $* was not run" >&2
	exit 1
fi
# AWS_PROFILE and shared files must not redirect the tests to another store.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_CA_BUNDLE
. "$state/env"
set +e
"$@"
status=$?
set -e
exit $status
