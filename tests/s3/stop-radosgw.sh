#!/bin/sh
# Stops a cluster started by start-radosgw.sh (radosgw, then the OSD, then
# the monitor, each by its pid file, waiting for each to exit) and deletes its
# state directory.
#
# Usage: stop-radosgw.sh STATE_DIR
# RADOSGW_KEEP=1 keeps the state directory (logs, configuration, monitor
# store) for inspection; otherwise the whole STATE_DIR is removed. Exits 0 if
# nothing was running; 1 if a daemon outlived SIGKILL (the directory is then
# kept).
set -eu

[ $# -eq 1 ] || {
	echo "usage: stop-radosgw.sh STATE_DIR (as printed by start-radosgw.sh)" >&2
	exit 2
}
state=$1
status=0
for p in rgw osd mon; do
	pidfile=$state/run/$p.pid
	[ -f "$pidfile" ] || continue
	pid=$(cat "$pidfile" 2>/dev/null || true)
	case $pid in
	'' | *[!0-9]*)
		echo "stop-radosgw.sh: $pidfile does not hold a process id ('$pid'); skipping it" >&2
		rm -f "$pidfile"
		continue
		;;
	esac
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		n=0
		while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "stop-radosgw.sh: $p (pid $pid) ignored SIGTERM for 10s; sending SIGKILL (its log: $state/log/$p.log)" >&2
			kill -KILL "$pid" 2>/dev/null || true
			n=0
			while kill -0 "$pid" 2>/dev/null && [ $n -lt 50 ]; do
				sleep 0.1
				n=$((n + 1))
			done
			if kill -0 "$pid" 2>/dev/null; then
				echo "stop-radosgw.sh: $p (pid $pid) is still running after SIGKILL; keeping $state" >&2
				status=1
				continue
			fi
		fi
	fi
	rm -f "$pidfile"
done
if [ "${RADOSGW_KEEP:-0}" = 1 ] || [ $status -ne 0 ]; then
	echo "stop-radosgw.sh: kept $state" >&2
else
	rm -rf "$state"
fi
exit $status
