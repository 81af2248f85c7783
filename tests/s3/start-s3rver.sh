#!/bin/sh
# Starts s3rver (the S3-compatible server of the S3 plugin's tests) on
# 127.0.0.1 on a free port, with a fresh data directory, and waits until it
# answers.
#
# Usage: start-s3rver.sh [STATE_DIR]
#   STATE_DIR (created if missing; default: a new mktemp -d folder) receives
#     data/        the server's objects (deleted by stop-s3rver.sh)
#     s3rver.log   its request log (one line per request)
#     s3rver.pid   its process id
#     env          "export NAME=value" lines: AWS_ENDPOINT_URL_S3,
#                  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
#                  DCP_S3_TEST_BUCKET, DCP_S3_TEST_SERVER=s3rver (which
#                  server it is, for the tests that expect its quirks),
#                  S3RVER_DATA_DIR, S3RVER_LOG, S3RVER_STATE_DIR
# Prints STATE_DIR on the last line of stdout; stop the server with
# stop-s3rver.sh STATE_DIR.
#
# Environment: S3RVER_BUCKETS (default "dcp-test dcp-test-2") are created at
# start; the first is DCP_S3_TEST_BUCKET. S3RVER_START_TIMEOUT (seconds,
# default 30). s3rver is the version pinned in package.json, installed from
# package-lock.json into node_modules (npm ci) if it is not there yet.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
buckets=${S3RVER_BUCKETS:-"dcp-test dcp-test-2"}
timeout=${S3RVER_START_TIMEOUT:-30}

die() {
	echo "start-s3rver.sh: $*" >&2
	exit 1
}

command -v node >/dev/null 2>&1 || die "node is not installed: install nodejs and npm (apt-get install -y nodejs npm)"
bin="$here/node_modules/s3rver/bin/s3rver.js"
if [ ! -f "$bin" ]; then
	command -v npm >/dev/null 2>&1 || die "s3rver is not installed in $here/node_modules and npm is missing"
	(cd "$here" && npm ci --no-audit --no-fund >&2) ||
		die "npm ci in $here failed: s3rver (pinned in package-lock.json) could not be installed"
fi

if [ $# -ge 1 ]; then
	state=$1
	mkdir -p "$state" || die "cannot create state directory $state"
else
	state=$(mktemp -d "${TMPDIR:-/tmp}/dcp-s3rver.XXXXXX") || die "mktemp failed"
fi
state=$(cd "$state" && pwd)
[ ! -f "$state/s3rver.pid" ] || die "$state/s3rver.pid exists: a server may still run there (stop-s3rver.sh $state)"
rm -rf "$state/data"
mkdir "$state/data"
log="$state/s3rver.log"
: >"$log"

set --
for b in $buckets; do
	set -- "$@" --configure-bucket "$b"
done
# s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 only
# has in its legacy provider: enable it where node knows the flag.
nodeflags=
if node --openssl-legacy-provider -e 0 >/dev/null 2>&1; then
	nodeflags=--openssl-legacy-provider
fi
# Port 0: the kernel picks a free port, which s3rver prints when it listens.
node $nodeflags "$bin" -d "$state/data" -a 127.0.0.1 -p 0 --no-vhost-buckets "$@" >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$state/s3rver.pid"

port=
waited=0
while :; do
	if ! kill -0 "$pid" 2>/dev/null; then
		rm -f "$state/s3rver.pid"
		die "s3rver exited during start-up; its log ($log) says: $(tail -n 5 "$log")"
	fi
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
	if [ -n "$port" ] &&
		curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$port/" | grep -q '^[1-5]'; then
		break
	fi
	if [ "$waited" -ge $((timeout * 10)) ]; then
		kill "$pid" 2>/dev/null || true
		rm -f "$state/s3rver.pid"
		die "s3rver did not answer within ${timeout}s; its log ($log) says: $(tail -n 5 "$log")"
	fi
	sleep 0.1
	waited=$((waited + 1))
done

# --configure-bucket created the buckets; check that each answers.
for b in $buckets; do
	code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' --user S3RVER:S3RVER \
		--aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		-I "http://127.0.0.1:$port/$b")
	[ "$code" = 200 ] || {
		kill "$pid" 2>/dev/null || true
		rm -f "$state/s3rver.pid"
		die "bucket $b does not answer HEAD with 200 (got $code) on s3rver at 127.0.0.1:$port"
	}
done

first=$(echo $buckets | cut -d' ' -f1)
cat >"$state/env" <<EOT
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=S3RVER
export AWS_SECRET_ACCESS_KEY=S3RVER
export AWS_REGION=us-east-1
export DCP_S3_TEST_BUCKET=$first
export DCP_S3_TEST_SERVER=s3rver
export S3RVER_DATA_DIR=$state/data
export S3RVER_LOG=$log
export S3RVER_STATE_DIR=$state
EOT
echo "s3rver (pid $pid) listening on http://127.0.0.1:$port, buckets: $buckets" >&2
echo "$state"
