#!/bin/bash
# bench/fs/run.sh: libdcp's filesystem checkpoints against PyTorch 1.13's
# distributed checkpoint and against the raw file system, measured in the same
# run, interleaved over several repetitions. See bench/fs/README.md.
#
# Not a test: it prints a table and writes a JSON summary; it fails only when
# something could not be run.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/fs/run.sh [options]

  --size SIZE     bytes per checkpoint, K/M/G suffixes (binary) (default 1G)
  --reps N        repetitions; every case runs once per repetition, in an
                  order rotated by one case each time (default 5)
  --dir DIR       scratch directory on the file system under test; it is
                  created and everything below it is removed at the end
                  (default /tmp/dcp-bench-fs)
  --out FILE      JSON summary (default DIR/summary.json, kept)
  --cases LIST    comma-separated subset of:
                    dcp1    dcp save/load --ranks 1 (4 I/O threads per rank)
                    dcp4    dcp save/load --ranks 4
                    torch   torch DCP, FileSystemWriter default (a file per item)
                    torch1f torch DCP, single_file_per_rank=True
                    raw1    dd, 1 stream, conv=fsync
                    raw4    dd, 4 parallel streams (4 files), conv=fsync
                  (default: all)
  --cold MODE     auto: also load after dropping the page cache when
                  /proc/sys/vm/drop_caches is writable; yes: require it; no
                  (default auto)
  --dcp-threads T add threads=T to libdcp's URLs (default: the fs plugin's, 4)

Environment: DCP (the dcp binary; default: build it in build-bench/ if
missing), PYTHON (default /usr/bin/python3, with python3-torch).
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
size=1G reps=5 dir=/tmp/dcp-bench-fs out="" cases="dcp1,dcp4,torch,torch1f,raw1,raw4" cold=auto dcp_threads=""
while [ $# -gt 0 ]; do
	case "$1" in
	--size) size=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--cases) cases=$2; shift 2 ;;
	--cold) cold=$2; shift 2 ;;
	--dcp-threads) dcp_threads=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --reps '$reps' must be a positive number" >&2; exit 2; }
[[ "$size" =~ ^[0-9]+[KMGkmg]?$ ]] || { echo "run.sh: --size '$size' must be a number with an optional K, M or G" >&2; exit 2; }
case "$cold" in auto | yes | no) ;; *) echo "run.sh: --cold must be auto, yes or no (got '$cold')" >&2; exit 2 ;; esac
[ -n "$out" ] || out="$dir/summary.json"
IFS=, read -r -a case_list <<<"$cases"
for c in "${case_list[@]}"; do
	case "$c" in dcp1 | dcp4 | torch | torch1f | raw1 | raw4) ;; *)
		echo "run.sh: unknown case '$c' in --cases (known: dcp1 dcp4 torch torch1f raw1 raw4)" >&2
		exit 2 ;;
	esac
done

PYTHON=${PYTHON:-/usr/bin/python3}
if [ -z "${DCP:-}" ]; then
	DCP="$root/build-bench/bin/dcp"
	if [ ! -x "$DCP" ] || [ ! -e "$root/build-bench/lib/dcp/plugins/dcp-fs.so" ]; then
		echo "building dcp in $root/build-bench (RelWithDebInfo) ..." >&2
		cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDCP_BUILD_TESTS=OFF >/dev/null
		cmake --build "$root/build-bench" -j"$(nproc)" --target dcp_tool dcp_plugin_fs >/dev/null
	fi
fi
[ -x "$DCP" ] || { echo "run.sh: dcp binary '$DCP' is not executable: build tools/dcp or set DCP" >&2; exit 1; }
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
	echo "run.sh: $PYTHON cannot import torch: apt-get install -y python3-torch (Debian's PyTorch 1.13)" >&2
	exit 1
fi
command -v dd >/dev/null || { echo "run.sh: dd not found" >&2; exit 1; }

# Page cache: "cold" loads drop it first (root only).
can_drop=0
if [ "$cold" != no ] && (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	can_drop=1
fi
if [ "$cold" = yes ] && [ $can_drop = 0 ]; then
	echo "run.sh: --cold yes, but /proc/sys/vm/drop_caches is not writable here (run as root)" >&2
	exit 1
fi
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work="$dir/run.$$"
src="/dev/shm/dcp-bench-fs-src.$$"
rm -rf "$work"
mkdir -p "$work"
cleanup() { rm -rf "$work" "$src"; }
trap cleanup EXIT
results="$dir/results.jsonl"
: >"$results"

now() { date +%s.%N; }
elapsed() { printf '%.6f' "$(echo "$2 - $1" | bc -l)"; }
# record CASE OP REP BYTES SECONDS [EXTRA JSON FIELDS]
record() {
	printf '{"case":"%s","op":"%s","rep":%d,"bytes":%s,"seconds":%s%s}\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" >>"$results"
	printf '  rep %d %-8s %-10s %8.3f s %9.1f MB/s\n' "$3" "$1" "$2" "$5" "$(echo "$4 / $5 / 1000000" | bc -l)" >&2
}
jget() { "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }

dcp_url() {
	if [ -n "$dcp_threads" ]; then echo "file://$1?threads=$dcp_threads"; else echo "file://$1"; fi
}

# The tensor list: one dcp save whose metadata torch_dcp.py mirrors (also a
# warm-up of the binaries and of the file system).
echo "preparing: dcp save --size $size for the tensor list, random source for dd ..." >&2
"$DCP" save --ranks 1 --size "$size" "$(dcp_url "$work/spec")" >/dev/null
"$DCP" inspect --json "$(dcp_url "$work/spec")" >"$work/spec.json"
nbytes=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["stored_bytes"])' "$work/spec.json")
rm -rf "$work/spec"
# dd copies from a random file in tmpfs (memory), so that its writes are not
# of zeros; reading it costs one memory copy that libdcp does not make.
"$PYTHON" -c 'import os,sys
n=int(sys.argv[2]); f=open(sys.argv[1],"wb"); b=os.urandom(1<<24)
while n>0: k=min(n,len(b)); f.write(b[:k]); n-=k' "$src" "$nbytes"
# What that extra copy costs: one pass over the source, as dd reads it.
dd if="$src" of=/dev/null bs=4M status=none
t0=$(now)
dd if="$src" of=/dev/null bs=4M status=none
src_copy_s=$(elapsed "$t0" "$(now)")

run_dcp() { # RANKS REP CASE
	local ranks=$1 rep=$2 c=$3 d="$work/$3" j
	j=$("$DCP" save --ranks "$ranks" --size "$size" --json "$(dcp_url "$d")")
	record "$c" save "$rep" "$(jget checkpoint_bytes <<<"$j")" "$(jget seconds <<<"$j")"
	j=$("$DCP" load --ranks "$ranks" --json "$(dcp_url "$d")")
	record "$c" load_warm "$rep" "$(jget checkpoint_bytes <<<"$j")" "$(jget seconds <<<"$j")"
	if [ $can_drop = 1 ]; then
		drop_caches
		j=$("$DCP" load --ranks "$ranks" --json "$(dcp_url "$d")")
		record "$c" load_cold "$rep" "$(jget checkpoint_bytes <<<"$j")" "$(jget seconds <<<"$j")"
	fi
	rm -rf "$d"
}

run_torch() { # REP CASE [--single-file]
	local rep=$1 c=$2 d="$work/$2" j
	shift 2
	j=$("$PYTHON" "$here/torch_dcp.py" save --dir "$d" --spec "$work/spec.json" "$@")
	record "$c" save "$rep" "$(jget bytes <<<"$j")" "$(jget seconds <<<"$j")" ",\"files\":$(jget files <<<"$j")"
	# Every byte is checked on the warm load (untimed).
	j=$("$PYTHON" "$here/torch_dcp.py" load --dir "$d" --spec "$work/spec.json" --check)
	record "$c" load_warm "$rep" "$(jget bytes <<<"$j")" "$(jget seconds <<<"$j")"
	if [ $can_drop = 1 ]; then
		drop_caches
		j=$("$PYTHON" "$here/torch_dcp.py" load --dir "$d" --spec "$work/spec.json")
		record "$c" load_cold "$rep" "$(jget bytes <<<"$j")" "$(jget seconds <<<"$j")"
	fi
	rm -rf "$d"
}

# dd in J parallel streams, each over its own file: J slices of nbytes.
dd_streams() { # J MODE(write|read) DIR
	local n=$1 mode=$2 d=$3 k per off cnt pids=()
	per=$((nbytes / n))
	for ((k = 0; k < n; k++)); do
		off=$((k * per))
		cnt=$per
		[ $k -eq $((n - 1)) ] && cnt=$((nbytes - off))
		if [ "$mode" = write ]; then
			dd if="$src" of="$d/raw.$k" bs=4M skip="$off" count="$cnt" iflag=skip_bytes,count_bytes \
				conv=fsync status=none &
		else
			dd if="$d/raw.$k" of=/dev/null bs=4M status=none &
		fi
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
}

run_raw() { # J REP CASE
	local n=$1 rep=$2 c=$3 d="$work/$3" t0 t1
	mkdir -p "$d"
	t0=$(now)
	dd_streams "$n" write "$d"
	t1=$(now)
	record "$c" save "$rep" "$nbytes" "$(elapsed "$t0" "$t1")"
	t0=$(now)
	dd_streams "$n" read "$d"
	t1=$(now)
	record "$c" load_warm "$rep" "$nbytes" "$(elapsed "$t0" "$t1")"
	if [ $can_drop = 1 ]; then
		drop_caches
		t0=$(now)
		dd_streams "$n" read "$d"
		t1=$(now)
		record "$c" load_cold "$rep" "$nbytes" "$(elapsed "$t0" "$t1")"
	fi
	rm -rf "$d"
}

run_case() { # CASE REP
	case "$1" in
	dcp1) run_dcp 1 "$2" dcp1 ;;
	dcp4) run_dcp 4 "$2" dcp4 ;;
	torch) run_torch "$2" torch ;;
	torch1f) run_torch "$2" torch1f --single-file ;;
	raw1) run_raw 1 "$2" raw1 ;;
	raw4) run_raw 4 "$2" raw4 ;;
	esac
	# Nothing dirty or half-deleted left for the next case.
	sync
}

ncases=${#case_list[@]}
echo "running ${case_list[*]} x $reps repetitions of $nbytes bytes in $work (cold loads: $([ $can_drop = 1 ] && echo yes || echo no))" >&2
t_start=$(now)
for ((r = 0; r < reps; r++)); do
	for ((i = 0; i < ncases; i++)); do
		run_case "${case_list[$(((i + r) % ncases))]}" "$r"
	done
done
t_end=$(now)

dev=$(df --output=source "$dir" | tail -1)
fstype=$(df --output=fstype "$dir" | tail -1)
"$PYTHON" "$here/summarize.py" "$results" --out "$out" \
	--meta size="$size" --meta bytes="$nbytes" --meta reps="$reps" --meta dir="$dir" \
	--meta device="$dev" --meta fstype="$fstype" --meta cold_loads="$can_drop" \
	--meta dcp="$DCP" --meta dcp_threads="${dcp_threads:-default (4)}" \
	--meta commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--meta kernel="$(uname -r)" --meta cpus="$(nproc)" \
	--meta cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
	--meta mem_gib="$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)" \
	--meta torch="$("$PYTHON" -c 'import torch; print(torch.__version__)')" \
	--meta wall_seconds="$(elapsed "$t_start" "$t_end")" --meta dd_source_read_seconds="$src_copy_s"
