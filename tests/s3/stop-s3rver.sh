#!/bin/sh
# Stops a server started by start-s3rver.sh and deletes its data directory.
#
# Usage: stop-s3rver.sh STATE_DIR
# S3RVER_KEEP=1 keeps the state directory (data, log) for inspection;
# otherwise the whole STATE_DIR is removed. Exits 0 if no server was running.
set -eu

[ $# -eq 1 ] || {
	echo "usage: stop-s3rver.sh STATE_DIR (as printed by start-s3rver.sh)" >&2
	exit 2
}
state=$1
pidfile="$state/s3rver.pid"
if [ -f "$pidfile" ]; then
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		n=0
		while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "stop-s3rver.sh: s3rver (pid $pid) ignored SIGTERM for 5s; sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$pidfile"
fi
if [ "${S3RVER_KEEP:-0}" = 1 ]; then
	echo "stop-s3rver.sh: kept $state" >&2
else
	rm -rf "$state"
fi
