#!/bin/sh
# Starts a single-node Ceph cluster with its S3 gateway (radosgw), a server
# that verifies Signature V4 like AWS does, for the S3 plugin's tests: one
# monitor, one OSD keeping its data in memory (memstore), and radosgw with
# the beast frontend on 127.0.0.1, over HTTP and over HTTPS (a private CA and
# server certificate made here by openssl). Cluster auth is "none"; the S3
# user has known keys. Waits until each daemon answers.
#
# Usage: start-radosgw.sh [STATE_DIR]
#   STATE_DIR (created if missing; default: a new mktemp -d folder) receives
#     ceph.conf       the cluster's only configuration (nothing in /etc/ceph)
#     mon/ osd/       the monitor's store; the OSD's (its data lives in RAM)
#     run/            admin sockets and pid files: mon.pid osd.pid rgw.pid
#     log/            mon.log osd.log rgw.log, client.log (the ceph and
#                     radosgw-admin commands), and start.log (what the
#                     commands of the start-up printed)
#     tls/            ca.pem (the private CA), server.pem and server.key
#     env             "export NAME=value" lines: AWS_ENDPOINT_URL_S3,
#                     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
#                     DCP_S3_TEST_BUCKET, DCP_S3_TEST_SERVER=radosgw,
#                     DCP_S3_TEST_HTTPS_ENDPOINT (https://localhost:PORT),
#                     DCP_S3_TEST_CA_BUNDLE (tls/ca.pem),
#                     DCP_S3_TEST_VHOST_DOMAIN (localhost: BUCKET.localhost
#                     names the bucket, virtual-hosted style),
#                     DCP_S3_TEST_VHOST_ENDPOINT (http://localhost:PORT),
#                     RADOSGW_LOG, RADOSGW_STATE_DIR
# Prints STATE_DIR on the last line of stdout; stop the cluster with
# stop-radosgw.sh STATE_DIR.
#
# Environment: RADOSGW_BUCKETS (default "dcp-test dcp-test-2") are created at
# start; the first is DCP_S3_TEST_BUCKET. RADOSGW_START_TIMEOUT (seconds per
# step, default 60). RADOSGW_MEMSTORE_BYTES caps the OSD's memory store
# (default 3.5 GiB). Ports: each daemon gets a free port of 20000-32767
# (below Linux's ephemeral range), chosen at random and checked; a start
# that loses a race for its port to another process tries another one.
set -eu

buckets=${RADOSGW_BUCKETS:-"dcp-test dcp-test-2"}
timeout=${RADOSGW_START_TIMEOUT:-60}
memstore_bytes=${RADOSGW_MEMSTORE_BYTES:-3758096384}
access_key=DCPTESTACCESSKEY0001
secret_key=dcp-test-secret-key-0001-radosgw
rgw_name=client.rgw.dcp

die() {
	echo "start-radosgw.sh: $*" >&2
	[ -z "${state:-}" ] || stop_all
	exit 1
}

for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool openssl curl; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool is not installed: install radosgw, ceph-mon, ceph-osd, openssl and curl (apt-get install -y radosgw ceph-mon ceph-osd openssl curl)"
done

if [ $# -ge 1 ]; then
	state=$1
	mkdir -p "$state" || {
		state=
		die "cannot create state directory $1"
	}
else
	state=$(mktemp -d "${TMPDIR:-/tmp}/dcp-radosgw.XXXXXX") || die "mktemp failed"
fi
state=$(cd "$state" && pwd)
for p in mon osd rgw; do
	[ ! -f "$state/run/$p.pid" ] || {
		s=$state
		state=
		die "$s/run/$p.pid exists: a cluster may still run there (stop-radosgw.sh $s)"
	}
done
rm -rf "$state/mon" "$state/osd" "$state/run" "$state/log" "$state/tls" "$state/env"
mkdir -p "$state/mon" "$state/osd" "$state/run" "$state/log" "$state/tls"
conf=$state/ceph.conf
startlog=$state/log/start.log
: >"$startlog"

# Stops whatever this start has started so far (on failure).
stop_all() {
	for p in rgw osd mon; do
		f=$state/run/$p.pid
		[ -f "$f" ] || continue
		pid=$(cat "$f" 2>/dev/null || true)
		if [ -n "$pid" ]; then
			kill -TERM "$pid" 2>/dev/null || true
			n=0
			while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
				sleep 0.1
				n=$((n + 1))
			done
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
}

# tail_of FILE: the last lines of a log, for an error message.
tail_of() {
	if [ -s "$1" ]; then
		tail -n 8 "$1"
	else
		echo "(empty)"
	fi
}

# wait_for WHAT LOG SECONDS CMD...: polls CMD every 0.2 s until it succeeds;
# fails naming WHAT and LOG after SECONDS.
wait_for() {
	what=$1 wlog=$2 secs=$3
	shift 3
	deadline=$(($(date +%s) + secs))
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || die "$what: not ready after ${secs}s; see $wlog, which ends with:
$(tail_of "$wlog")"
		sleep 0.2
	done
}

# port_in_use PORT: 0 if a TCP socket of this machine (listening or
# connected, IPv4 or IPv6) has PORT as its local port.
port_in_use() {
	hex=$(printf '%04X' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk -v p=":$hex" 'substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}

# pick_port VAR: sets VAR to a random port of 20000-32767 that no socket
# uses and that this start has not given out already.
taken=
mon_port='' rgw_port='' rgw_ssl_port=''
pick_port() {
	while :; do
		r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		p=$((20000 + r % 12768))
		case " $taken " in *" $p "*) continue ;; esac
		if ! port_in_use "$p"; then
			taken="$taken $p"
			eval "$1=$p"
			return 0
		fi
	done
}

# ceph_cmd ARGS...: the ceph CLI on this cluster, bounded in time.
ceph_cmd() {
	ceph -c "$conf" --connect-timeout 10 "$@"
}

# --- TLS: a private CA and a server certificate for localhost ------------
tls=$state/tls
san="DNS:localhost,IP:127.0.0.1"
for b in $buckets; do
	san="$san,DNS:$b.localhost"
done
{
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=libdcp test CA" \
		-keyout "$tls/ca.key" -out "$tls/ca.pem" &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
			-keyout "$tls/server.key" -out "$tls/server.csr" &&
		printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
			"$san" >"$tls/server.ext" &&
		openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
			-CAcreateserial -days 2 -extfile "$tls/server.ext" -out "$tls/server.pem"
} >>"$startlog" 2>&1 || die "openssl could not make the test CA and server certificate in $tls; see $startlog:
$(tail_of "$startlog")"

# --- configuration ---------------------------------------------------------
fsid=$(cat /proc/sys/kernel/random/uuid)
write_conf() {
	cat >"$conf" <<EOT
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
keyring = $state/keyring
run dir = $state/run
log file = $state/log/client.log
log to stderr = false
err to stderr = true
mon data = $state/mon/\$id
osd data = $state/osd/\$id
osd objectstore = memstore
memstore device bytes = $memstore_bytes
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon data avail warn = 1
mon data avail crit = 0
# Pools and users are made one map change at a time: propose changes at once
# rather than after the default 1 s.
paxos propose interval = 0.05
paxos min wait = 0.01
osd max object name len = 460
osd max object namespace len = 64
[mon]
admin socket = $state/run/mon.asok
pid file = $state/run/mon.pid
log file = $state/log/mon.log
[osd]
admin socket = $state/run/osd.asok
pid file = $state/run/osd.pid
log file = $state/log/osd.log
[$rgw_name]
admin socket = $state/run/rgw.asok
pid file = $state/run/rgw.pid
log file = $state/log/rgw.log
rgw frontends = beast endpoint=127.0.0.1:$rgw_port ssl_endpoint=127.0.0.1:$rgw_ssl_port ssl_certificate=$tls/server.pem ssl_private_key=$tls/server.key
rgw dns name = localhost
rgw data = $state/rgw
rgw enable usage log = false
rgw enable ops log = false
rgw enable lc threads = false
rgw dynamic resharding = false
EOT
}

ceph-authtool --create-keyring "$state/keyring" --gen-key -n mon. --cap mon 'allow *' >>"$startlog" 2>&1 ||
	die "ceph-authtool could not create $state/keyring; see $startlog:
$(tail_of "$startlog")"

# alive NAME: 0 while the daemon of run/NAME.pid runs.
alive() {
	[ -s "$state/run/$1.pid" ] && kill -0 "$(cat "$state/run/$1.pid")" 2>/dev/null
}

# --- monitor ----------------------------------------------------------------
# A port taken by another process between the check and the bind makes
# ceph-mon exit: then the monitor is made again on another port.
mon_log=$state/log/mon.log
# mon_settled: the monitor leads (a single monitor elects itself), or it
# has exited.
mon_settled() {
	grep -q 'mon\.a@0(leader)' "$mon_log" 2>/dev/null && return 0
	[ -s "$state/run/mon.pid" ] && ! alive mon
}
try=0
while :; do
	try=$((try + 1))
	pick_port mon_port
	pick_port rgw_port
	pick_port rgw_ssl_port
	write_conf
	rm -rf "$state/mon/a" "$state/monmap"
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$state/monmap" >>"$startlog" 2>&1 ||
		die "monmaptool could not create $state/monmap; see $startlog:
$(tail_of "$startlog")"
	ceph-mon -c "$conf" --mkfs -i a --monmap "$state/monmap" --keyring "$state/keyring" >>"$startlog" 2>&1 ||
		die "ceph-mon --mkfs failed in $state/mon/a; see $startlog and $mon_log:
$(tail_of "$startlog")"
	# It forks once bound; the pid file appears when the daemon runs.
	if ceph-mon -c "$conf" -i a >>"$startlog" 2>&1; then
		wait_for "ceph-mon on 127.0.0.1:$mon_port (a leader, in $mon_log)" "$mon_log" "$timeout" mon_settled
		alive mon && break
	fi
	stop_all
	[ $try -lt 5 ] || die "ceph-mon did not start on 127.0.0.1:$mon_port after $try tries (ports taken?); see $mon_log:
$(tail_of "$mon_log")"
	echo "start-radosgw.sh: ceph-mon did not come up on port $mon_port (try $try); trying another port" >&2
	mv "$mon_log" "$mon_log.$try" 2>/dev/null || true
done

# --- OSD --------------------------------------------------------------------
osd_log=$state/log/osd.log
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
osd_id=$(ceph_cmd osd new "$osd_uuid" 2>>"$startlog") ||
	die "'ceph osd new' failed on the monitor at 127.0.0.1:$mon_port; see $startlog and $mon_log:
$(tail_of "$startlog")"
[ "$osd_id" = 0 ] || die "'ceph osd new' gave OSD id '$osd_id', expected 0; see $startlog"
mkdir -p "$state/osd/0"
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$startlog" 2>&1 ||
	die "ceph-osd --mkfs failed in $state/osd/0; see $startlog and $osd_log:
$(tail_of "$osd_log")"
ceph-osd -c "$conf" -i 0 >>"$startlog" 2>&1 ||
	die "ceph-osd did not start; see $osd_log:
$(tail_of "$osd_log")"
# osd_settled: the OSD is active (its log says so once the monitor has
# marked it up), or it has exited.
osd_settled() {
	grep -q 'osd\.0 [0-9]* state: booting -> active' "$osd_log" 2>/dev/null && return 0
	[ -s "$state/run/osd.pid" ] && ! alive osd
}
wait_for "ceph-osd (osd.0 active, in $osd_log)" "$osd_log" "$timeout" osd_settled
alive osd || die "ceph-osd exited during start-up; see $osd_log:
$(tail_of "$osd_log")"

# --- radosgw ------------------------------------------------------------------
# radosgw forks before it listens; it creates its pools first, then starts
# the frontends. When it cannot bind their ports it says so in its log (and
# stays up, serving nothing): then it is stopped and started again on other
# ports.
rgw_log=$state/log/rgw.log
# http_up URL [CURL-ARGS...]: 0 once the URL answers with any HTTP status.
http_up() {
	code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$@") && [ "$code" != 000 ]
}
rgw_failed() {
	grep -q 'failed initializing frontend' "$rgw_log" 2>/dev/null
}
# rgw_settled: both endpoints answer, or radosgw failed or exited.
rgw_settled() {
	rgw_failed && return 0
	if [ -s "$state/run/rgw.pid" ] && ! alive rgw; then
		return 0
	fi
	http_up "http://127.0.0.1:$rgw_port/" && http_up "https://localhost:$rgw_ssl_port/" --cacert "$tls/ca.pem"
}
# stop_rgw: stops radosgw by its pid file and waits until it has exited.
stop_rgw() {
	[ -s "$state/run/rgw.pid" ] || return 0
	pid=$(cat "$state/run/rgw.pid")
	kill -TERM "$pid" 2>/dev/null || true
	n=0
	while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$state/run/rgw.pid"
}
try=0
while :; do
	try=$((try + 1))
	radosgw -c "$conf" -n "$rgw_name" --rgw-data "$state/rgw" >>"$startlog" 2>&1 ||
		die "radosgw did not start (frontends on 127.0.0.1:$rgw_port and :$rgw_ssl_port); see $rgw_log:
$(tail_of "$rgw_log")"
	wait_for "radosgw on http://127.0.0.1:$rgw_port and https://localhost:$rgw_ssl_port (CA $tls/ca.pem)" \
		"$rgw_log" "$timeout" rgw_settled
	if alive rgw && ! rgw_failed; then
		break
	fi
	stop_rgw
	[ $try -lt 5 ] || die "radosgw failed to start its frontends $try times (ports $rgw_port, $rgw_ssl_port taken?); see $rgw_log:
$(tail_of "$rgw_log")"
	echo "start-radosgw.sh: radosgw could not serve on ports $rgw_port, $rgw_ssl_port (try $try): $(grep -m1 'failed to bind' "$rgw_log" || echo exited); trying other ports" >&2
	mv "$rgw_log" "$rgw_log.$try"
	pick_port rgw_port
	pick_port rgw_ssl_port
	write_conf
done

radosgw-admin -c "$conf" user create --uid dcp-test --display-name "libdcp tests" \
	--access-key "$access_key" --secret "$secret_key" >>"$startlog" 2>&1 ||
	die "radosgw-admin user create (uid dcp-test) failed; see $startlog and $rgw_log:
$(tail_of "$startlog")"

# Buckets: PUT /BUCKET signed with the user's keys (a signed request: a
# check of the credentials too).
for b in $buckets; do
	code=$(curl -s -o "$state/log/bucket-$b.xml" --max-time 10 -w '%{http_code}' \
		--user "$access_key:$secret_key" --aws-sigv4 "aws:amz:us-east-1:s3" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "http://127.0.0.1:$rgw_port/$b") || code=000
	[ "$code" = 200 ] || die "creating bucket $b on radosgw at 127.0.0.1:$rgw_port answered HTTP $code; see $state/log/bucket-$b.xml and $rgw_log:
$(cat "$state/log/bucket-$b.xml" 2>/dev/null)"
done

first=$(echo "$buckets" | awk '{ print $1 }')
cat >"$state/env" <<EOT
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$rgw_port
export AWS_ACCESS_KEY_ID=$access_key
export AWS_SECRET_ACCESS_KEY=$secret_key
export AWS_REGION=us-east-1
export DCP_S3_TEST_BUCKET=$first
export DCP_S3_TEST_SERVER=radosgw
export DCP_S3_TEST_HTTPS_ENDPOINT=https://localhost:$rgw_ssl_port
export DCP_S3_TEST_CA_BUNDLE=$tls/ca.pem
export DCP_S3_TEST_VHOST_DOMAIN=localhost
export DCP_S3_TEST_VHOST_ENDPOINT=http://localhost:$rgw_port
export RADOSGW_LOG=$rgw_log
export RADOSGW_STATE_DIR=$state
EOT
echo "radosgw (pid $(cat "$state/run/rgw.pid")) listening on http://127.0.0.1:$rgw_port and https://localhost:$rgw_ssl_port, buckets: $buckets" >&2
echo "$state"
