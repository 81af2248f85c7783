#!/bin/bash
# S3 save/load throughput of libdcp against plain curl, on the same server
# (s3rver, or radosgw with --server radosgw), in the same run (see
# bench/s3/README.md). A benchmark, not a test: it prints
# figures and fails only when something does not work.
#
# Usage: bench/s3/run.sh [--dcp PATH[=LABEL[?QUERY]]]... [--reps N] [--warmup N]
#                        [--size SIZE] [--ranks N] [--query Q] [--out FILE]
#                        [--server s3rver|radosgw]
#
#   --dcp PATH[=LABEL[?QUERY]]
#                       a dcp binary to measure (repeatable: several builds or
#                       settings are measured interleaved in the same run, e.g.
#                       before and after a change); QUERY is added to this
#                       one's URL. Default: $DCP, else build/bin/dcp.
#   --reps N            measured repetitions (default 7)
#   --warmup N          unmeasured repetitions first (default 1)
#   --size SIZE         checkpoint size for dcp save --size (default 256M)
#   --ranks N           ranks of dcp save and dcp load (default 4)
#   --query Q           query appended to the dcp URL, e.g. "part_size=16M"
#   --out FILE          also write the table to FILE
#   --server NAME       s3rver (default; checks no signature) or radosgw (Ceph's
#                       S3 gateway, which verifies signatures and MD5s; started
#                       by tests/s3/with-radosgw.sh with a memory store sized
#                       for 1 GiB checkpoints)
#
# It starts s3rver through tests/s3/with-s3rver.sh (node and the npm package
# pinned in tests/s3/package-lock.json), saves a file:// checkpoint of the
# same size with the first dcp to get the bytes curl moves (its data files),
# then runs, in every repetition and in a rotating order:
#   dcp save  --ranks N --size SIZE --json s3://BUCKET/bench/LABEL[?Q]
#   dcp load  --ranks N --json             the same URL
#   curl PUT of each data file, one after the other (one curl, one
#     connection)
#   curl PUT of all data files at once (one curl --parallel)
#   curl GET of each data file, one after the other, to /dev/null
#   curl GET of all data files at once (curl --parallel), to /dev/null
# (after the last repetition, curl fetches both copies into files, untimed,
# and they are compared with the originals; dcp load checks every element).
# The curl requests are signed like the plugin's (--aws-sigv4, the same
# credentials, UNSIGNED-PAYLOAD); the credentials go to curl through a config
# file of mode 600, never on a command line or in the output. Throughput:
# dcp's own "bytes / seconds" from --json (the dcp_save / dcp_load call), and
# for curl the data files' bytes over the wall time of the curl command(s).
# The baseline is the better median of curl single and curl parallel; the
# ratio is median(dcp) / baseline. The issue's aim is at least 0.9.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

if [ -z "${DCP_BENCH_S3_INNER:-}" ]; then
	for a in "$@"; do
		case $a in -h | --help) usage; exit 0 ;; esac
	done
	command -v curl >/dev/null || {
		echo "bench/s3/run.sh: curl is not installed" >&2
		exit 1
	}
	server=s3rver
	prev=
	for a in "$@"; do
		[ "$prev" != --server ] || server=$a
		prev=$a
	done
	case $server in
	s3rver) DCP_BENCH_S3_INNER=1 exec "$root/tests/s3/with-s3rver.sh" "$0" "$@" ;;
	radosgw)
		RADOSGW_MEMSTORE_BYTES=${RADOSGW_MEMSTORE_BYTES:-8589934592} DCP_BENCH_S3_INNER=1 \
			exec "$root/tests/s3/with-radosgw.sh" "$0" "$@"
		;;
	*)
		echo "bench/s3/run.sh: --server is s3rver or radosgw, not '$server'" >&2
		exit 2
		;;
	esac
fi

die() {
	echo "bench/s3/run.sh: $*" >&2
	exit 1
}

dcps=()
labels=()
queries=()
reps=7
warmup=1
size=256M
ranks=4
query=
out=
while [ $# -gt 0 ]; do
	case $1 in
	--dcp)
		[ $# -ge 2 ] || die "--dcp needs a path"
		p=${2%%=*}
		l=${2#*=}
		[ "$l" != "$2" ] || l=
		q=
		case $l in *\?*) q=${l#*\?} l=${l%%\?*} ;; esac
		dcps+=("$p")
		labels+=("$l")
		queries+=("$q")
		shift 2
		;;
	--reps) reps=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--ranks) ranks=$2; shift 2 ;;
	--query) query=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--server) shift 2 ;; # chose the server above
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
if [ ${#dcps[@]} -eq 0 ]; then
	dcps=("${DCP:-$root/build/bin/dcp}")
	labels=("")
	queries=("")
fi
for i in "${!dcps[@]}"; do
	[ -x "${dcps[$i]}" ] || die "${dcps[$i]} is not an executable dcp (build it, or give --dcp PATH)"
	[ -n "${labels[i]}" ] || labels[i]=dcp$((i + 1))
	case ${labels[$i]} in *[!A-Za-z0-9_.-]*) die "label '${labels[$i]}': use letters, digits, '.', '_', '-'" ;; esac
done
case $reps$warmup$ranks in *[!0-9]*) die "--reps, --warmup and --ranks take numbers" ;; esac
[ "$reps" -ge 1 ] || die "--reps must be at least 1"

bucket=$DCP_S3_TEST_BUCKET
ep=$AWS_ENDPOINT_URL_S3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dcp-bench-s3.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Credentials for curl, out of sight of ps and of the output.
umask 077
{
	echo "user = \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\""
	echo "aws-sigv4 = \"aws:amz:${AWS_REGION:-us-east-1}:s3\""
	echo 'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"'
	echo "silent"
	echo "show-error"
	echo "fail"
} >"$tmp/curl.conf"
umask 022

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
json_num() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.eE+-]*\).*/\1/p" | head -n 1; }

# The bytes curl moves: the data files of the same checkpoint on file://.
"${dcps[0]}" save --ranks "$ranks" --size "$size" "file://$tmp/ref" >/dev/null ||
	die "dcp save to file://$tmp/ref failed"
files=()
for f in "$tmp/ref"/__*.distcp; do
	files+=("$f")
done
[ -f "${files[0]}" ] || die "no data files in $tmp/ref"
nfiles=${#files[@]}
curl_bytes=$(stat -c %s "${files[@]}" | awk '{ s += $1 } END { printf "%d", s }')

results=$tmp/results # lines: rep name bytes seconds

dcp_url() { # index
	local q=$query
	[ -z "${queries[$1]}" ] || q=${q:+$q&}${queries[$1]}
	echo "s3://$bucket/bench/${labels[$1]}${q:+?$q}"
}

run_dcp() { # rep op index
	local rep=$1 op=$2 i=$3 json bytes secs
	local args=(--ranks "$ranks" --json)
	[ "$op" = load ] || args+=(--size "$size")
	json=$("${dcps[$i]}" "$op" "${args[@]}" "$(dcp_url "$i")") ||
		die "${labels[$i]}: dcp $op failed"
	bytes=$(echo "$json" | json_num bytes)
	secs=$(echo "$json" | json_num seconds)
	if [ -z "$bytes" ] || [ -z "$secs" ]; then
		die "${labels[$i]}: dcp $op --json printed no bytes/seconds"
	fi
	echo "$rep ${labels[$i]}-$op $bytes $secs" >>"$results"
}

# Each curl command is one process: single = its transfers one after the
# other on one connection, parallel = all at once (--parallel). Downloads go
# to /dev/null (the strongest baseline: no destination at all); check_curl
# fetches them once more into files, untimed, and compares the bytes.
# curl 7.88 draws its --parallel progress meter even with -s: keep stderr
# aside, and show it only when curl fails.
curl_parallel() {
	curl -K "$tmp/curl.conf" -s --parallel --parallel-max "$nfiles" "$@" 2>"$tmp/curl.err" || {
		cat "$tmp/curl.err" >&2
		return 1
	}
}

put_single() {
	local f a=()
	for f in "${files[@]}"; do
		a+=(-o /dev/null -T "$f" "$ep/$bucket/bench/curl-single/${f##*/}")
	done
	curl -K "$tmp/curl.conf" -s "${a[@]}"
}

put_parallel() {
	local f a=()
	for f in "${files[@]}"; do
		a+=(-o /dev/null -T "$f" "$ep/$bucket/bench/curl-parallel/${f##*/}")
	done
	curl_parallel "${a[@]}"
}

get_single() {
	local f a=()
	for f in "${files[@]}"; do
		a+=(-o /dev/null "$ep/$bucket/bench/curl-single/${f##*/}")
	done
	curl -K "$tmp/curl.conf" -s "${a[@]}"
}

get_parallel() {
	local f a=()
	for f in "${files[@]}"; do
		a+=(-o /dev/null "$ep/$bucket/bench/curl-parallel/${f##*/}")
	done
	curl_parallel "${a[@]}"
}

run_curl() { # rep name function
	local t0 t1
	t0=$(now)
	"$3" || die "$2 failed"
	t1=$(now)
	echo "$1 $2 $curl_bytes $(elapsed "$t0" "$t1")" >>"$results"
}

# What curl stored is what it was given: both copies, fetched back into files.
check_curl() {
	local f d
	for d in single parallel; do
		mkdir -p "$tmp/dl-$d"
		for f in "${files[@]}"; do
			curl -K "$tmp/curl.conf" -s -o "$tmp/dl-$d/${f##*/}" "$ep/$bucket/bench/curl-$d/${f##*/}" ||
				die "curl could not fetch curl-$d/${f##*/} back"
			cmp -s "$f" "$tmp/dl-$d/${f##*/}" || die "curl-$d/${f##*/} came back with other bytes"
		done
		rm -rf "$tmp/dl-$d"
	done
}

# One repetition: every saver, then every loader, in an order that rotates
# with the repetition so that no contender always goes first or last.
one_rep() { # rep
	local rep=$1 n i k savers=() who what
	for i in "${!dcps[@]}"; do
		savers+=("dcp $i")
	done
	savers+=("curl put-single" "curl put-parallel")
	n=${#savers[@]}
	for ((k = 0; k < n; k++)); do
		read -r who what <<<"${savers[(((k + rep) % n) + n) % n]}"
		if [ "$who" = dcp ]; then run_dcp "$rep" save "$what"; else run_curl "$rep" "curl-$what" "${what/-/_}"; fi
	done
	for ((k = 0; k < n; k++)); do
		read -r who what <<<"${savers[(((k + rep + 1) % n) + n) % n]}"
		case $who:$what in
		dcp:*) run_dcp "$rep" load "$what" ;;
		curl:put-single) run_curl "$rep" curl-get-single get_single ;;
		curl:put-parallel) run_curl "$rep" curl-get-parallel get_parallel ;;
		esac
	done
}

echo "bench/s3: ${labels[*]} vs curl; $reps reps (+$warmup warm-up), --ranks $ranks --size $size," \
	"$nfiles data files of $curl_bytes bytes in all; query '${query}'" >&2
for ((r = 1; r <= warmup; r++)); do
	one_rep "$((-r))"
done
: >"$results"
for ((r = 1; r <= reps; r++)); do
	one_rep "$r"
	echo "  rep $r/$reps done" >&2
done
check_curl

# The table: MiB/s per contender (median, min, max), then the ratios.
report() {
	if [ "${DCP_S3_TEST_SERVER:-s3rver}" = radosgw ]; then
		srv="radosgw $(radosgw --version 2>/dev/null | awk '{print $3}')"
	else
		srv="s3rver $(node -e "console.log(require('$root/tests/s3/node_modules/s3rver/package.json').version)" 2>/dev/null)"
	fi
	echo "S3 throughput against $srv at $ep, $(nproc) CPUs, $(curl --version | head -n 1 | cut -d' ' -f1-2)"
	echo "dcp: --ranks $ranks --size $size${query:+, query $query}; curl: $nfiles files, $curl_bytes bytes; $reps interleaved reps"
	for i in "${!dcps[@]}"; do
		echo "  ${labels[$i]}: ${dcps[$i]} $(dcp_url "$i")"
	done
	awk -v labels="${labels[*]}" '
	{ mibs = $3 / $4 / 1048576; v[$2] = v[$2] " " mibs; n[$2]++; at[$1, $2] = mibs; reps[$1] = 1 }
	# Per repetition: dcp over the better curl of the same repetition.
	function rep_range(label, op, put_or_get,   r, c, x, lo_, hi_, first) {
		first = 1
		for (r in reps) {
			c = at[r, "curl-" put_or_get "-single"]
			if (at[r, "curl-" put_or_get "-parallel"] > c) c = at[r, "curl-" put_or_get "-parallel"]
			x = at[r, label "-" op] / c
			if (first || x < lo_) lo_ = x
			if (first || x > hi_) hi_ = x
			first = 0
		}
		return sprintf("%.2f..%.2f", lo_, hi_)
	}
	function stats(name,   a, k, i, j, t) {
		k = split(substr(v[name], 2), a, " ")
		for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		med[name] = k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
		lo[name] = a[1]; hi[name] = a[k]
		printf "%-24s %10.1f %10.1f %10.1f %5d\n", name, med[name], lo[name], hi[name], k
	}
	END {
		printf "%-24s %10s %10s %10s %5s\n", "MiB/s", "median", "min", "max", "reps"
		nl = split(labels, L, " ")
		for (i = 1; i <= nl; i++) stats(L[i] "-save")
		stats("curl-put-single"); stats("curl-put-parallel")
		for (i = 1; i <= nl; i++) stats(L[i] "-load")
		stats("curl-get-single"); stats("curl-get-parallel")
		bs = med["curl-put-single"] > med["curl-put-parallel"] ? med["curl-put-single"] : med["curl-put-parallel"]
		bl = med["curl-get-single"] > med["curl-get-parallel"] ? med["curl-get-single"] : med["curl-get-parallel"]
		printf "baseline (better curl median): put %.1f MiB/s, get %.1f MiB/s\n", bs, bl
		for (i = 1; i <= nl; i++)
			printf "ratio %s/curl: save %.2f  load %.2f   (aim: at least 0.9; per repetition: save %s, load %s)\n", L[i], med[L[i] "-save"] / bs, med[L[i] "-load"] / bl, rep_range(L[i], "save", "put"), rep_range(L[i], "load", "get")
	}' "$results"
}
if [ -n "$out" ]; then
	report | tee "$out"
	cp "$results" "$out.raw"
else
	report
fi
