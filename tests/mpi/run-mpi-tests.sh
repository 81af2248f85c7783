#!/usr/bin/env bash
# The MPI tests of libdcp: one process per rank under mpirun --oversubscribe.
#
#   tests/mpi/run-mpi-tests.sh BUILD_DIR [CASE...]
#
# Cases (default: all but big):
#   comm            libdcp_mpi's collectives on 1, 3, 4 and 5 processes
#   timeout         a rank that stops taking part -> DCP_ETIMEOUT, no hang
#   big             messages of 2^31 + 4097 bytes (needs ~8 GiB; exit 77 = skipped)
#   save_load       save with 4 processes, load resharded with 2, 3 and 5
#   failure_matrix  every failing stage through faulty+file://, 4 processes:
#                   every process exits 1 and names exactly the failing ranks;
#                   the previous checkpoint stays loadable
#   lost_rank       a rank hangs in the middle of a save: the others get
#                   DCP_ETIMEOUT ($DCP_MPI_TIMEOUT), nothing is committed
#   killed_rank     a rank is killed with SIGKILL in the middle of a save
#   tool            mpirun -np N dcp save|load (--comm mpi and auto-detected)
#   example         the example application dcp-example-mpi
#
# Every mpirun runs under timeout(1) ($DCP_MPI_TEST_LIMIT seconds, default
# 120), so a hang fails the test instead of blocking CI. As root, Open MPI
# needs OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM), set here. $DCP_MPIRUN names mpirun.
# The mpirun options are Open MPI's (4.x, as in Debian 12): --oversubscribe,
# --output-filename (one stdout/stderr file per rank), --enable-recovery.
set -uo pipefail

[ $# -ge 1 ] || {
	echo "usage: $0 BUILD_DIR [CASE...]" >&2
	exit 2
}
build=$(cd "$1" && pwd) || exit 2
shift
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(comm timeout save_load failure_matrix lost_rank killed_rank tool example)

bin=$build/bin
mpirun=${DCP_MPIRUN:-mpirun}
limit=${DCP_MPI_TEST_LIMIT:-120}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Quiet the "no high-performance network" notice of machines without one.
export OMPI_MCA_btl_base_warn_component_unused=0
unset DCP_MPI_TIMEOUT

work=$(mktemp -d "${TMPDIR:-/tmp}/dcp-mpi-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0

# Messages go to fd 3, the script's own stderr, even from inside a
# redirected call.
exec 3>&2
fail() {
	echo "FAIL: $*" >&3
	failures=$((failures + 1))
}
step() { echo "== $*" >&3; }

# mpi NP ARGS...: mpirun under the time limit; a hang is a failure. Returns
# mpirun's status (124: it had to be stopped).
mpi() {
	local np=$1
	shift
	local t0=$SECONDS
	timeout -k 10 "$limit" "$mpirun" --oversubscribe --bind-to none -np "$np" "$@"
	local rc=$?
	# 124: stopped by timeout; 137 after the limit: killed by it (mpirun
	# itself exits 137 when a process of the job was killed).
	if [ $rc -eq 124 ] || { [ $rc -eq 137 ] && [ $((SECONDS - t0)) -ge "$limit" ]; }; then
		fail "mpirun -np $np $* did not finish within $limit s (a hang)"
	fi
	return $rc
}

# ranks_named FILE: the sorted, comma-separated R of the "rank R: " lines.
ranks_named() {
	sed -n 's/^rank \([0-9][0-9]*\): .*/\1/p' "$1" | sort -n | uniq | paste -sd, -
}

# per_process OUTDIR NP WANT_EXIT WANT_RANKS [STAGE]: every process's exit
# status line ("process P of NP: exit X" from the driver, "dcp-exit=X" from
# the tool wrapper) and the ranks its error lines name (WANT_RANKS "any": not
# checked).
per_process() {
	local out=$1 np=$2 want_exit=$3 want_ranks=$4 stage=${5:-} p f ex named
	for ((p = 0; p < np; p++)); do
		f=$out/1/rank.$p
		if [ ! -f "$f/stdout" ]; then
			fail "process $p wrote no output ($f)"
			continue
		fi
		ex=$(sed -n -e 's/^process [0-9]* of [0-9]*: exit \([0-9]*\).*/\1/p' -e 's/^dcp-exit=\([0-9]*\)$/\1/p' "$f/stdout" | tail -1)
		[ "$ex" = "$want_exit" ] || fail "process $p exited '${ex:-?}', expected $want_exit ($(head -c 600 "$f/stderr"))"
		[ "$want_ranks" = any ] && continue
		named=$(ranks_named "$f/stderr")
		[ "$named" = "$want_ranks" ] || fail "process $p names ranks '$named', expected '$want_ranks':
$(cat "$f/stderr")"
		if [ -n "$stage" ] && [ -n "$want_ranks" ] &&
			grep '^rank [0-9]*: ' "$f/stderr" | grep -qv "^rank [0-9]*: $stage: "; then
			fail "process $p: a failing rank is not at stage $stage: $(cat "$f/stderr")"
		fi
	done
}

ckpt=$bin/dcp-test-mpi-ckpt
# How a survivor reports a lost peer: its own timeout, or the coordinator's
# reply after the coordinator timed out gathering every rank's outcome.
timeout_said="timed out\|no progress for\|could not gather every rank's outcome"
need() { [ -x "$1" ] || { fail "$1 is not built (cmake --build $build)"; return 1; }; }

case_comm() {
	need "$bin/dcp-test-mpi-comm" || return
	for np in 1 3 4 5; do
		step "collectives, $np processes"
		mpi "$np" "$bin/dcp-test-mpi-comm" basic || fail "collectives on $np processes"
	done
}

case_timeout() {
	need "$bin/dcp-test-mpi-comm" || return
	step "lost peers in every collective, 4 processes, 1 s timeout"
	mpi 4 "$bin/dcp-test-mpi-comm" timeout || fail "timeouts"
}

case_big() {
	need "$bin/dcp-test-mpi-comm" || return
	local avail
	avail=$(awk '/^MemAvailable:/ {print int($2 / 1048576)}' /proc/meminfo 2>/dev/null || echo 0)
	if [ "${avail:-0}" -lt 8 ]; then
		echo "SKIP: 2 GiB messages need about 8 GiB of memory, $avail GiB available"
		exit 77
	fi
	step "messages of 2^31 + 4097 bytes, 2 processes"
	limit=$((limit > 300 ? limit : 300)) mpi 2 "$bin/dcp-test-mpi-comm" big || fail "2 GiB messages"
}

case_save_load() {
	need "$ckpt" || return
	local url=file://$work/sl
	step "save with 4 processes"
	mpi 4 "$ckpt" save "$url" 7 >"$work/sl.out" 2>&1 || fail "save with 4 processes: $(cat "$work/sl.out")"
	for np in 2 3 5; do
		step "load with $np processes (resharded)"
		mpi "$np" "$ckpt" load "$url" 7 >"$work/l$np.out" 2>&1 || fail "load with $np: $(cat "$work/l$np.out")"
		local n
		n=$(grep -c "^process [0-9]* of $np: loaded and checked" "$work/l$np.out")
		[ "$n" -eq "$np" ] || fail "load with $np: $n processes checked their data, expected $np"
	done
	step "load checked against the wrong seed fails"
	if mpi 2 "$ckpt" load "$url" 8 >"$work/bad.out" 2>&1; then
		fail "a load checked against another seed succeeded"
	fi
	grep -q "values differ from seed 8" "$work/bad.out" || fail "the wrong-seed load did not say what differs"
}

# matrix_case save|load STAGE RANKS WANT: the failing ranks' lines name the
# protocol's stage (write_data for write_data_async) and the injected one.
matrix_case() {
	local op=$1 stage=$2 ranks=$3 want=$4 out=$work/mx-$1-$2-${3//[*,]/_}
	local url="faulty+file://$work/mx?fail.$stage=$ranks" seed=3
	[ "$op" = save ] && seed=9
	step "$op, fail.$stage=$ranks: every process exits 1 and names ranks $want"
	mpi 4 --mca orte_abort_on_non_zero_status 0 --output-filename "$out" \
		"$ckpt" "$op" "$url" "$seed" >/dev/null 2>&1
	per_process "$out" 4 1 "$want" "${stage%_async}"
	local p
	for ((p = 0; p < 4; p++)); do
		if grep '^rank [0-9]*: ' "$out/1/rank.$p/stderr" | grep -qv "injected failure at $stage on rank"; then
			fail "process $p: a line is not the injected failure at $stage: $(cat "$out/1/rank.$p/stderr")"
		fi
	done
}

case_failure_matrix() {
	need "$ckpt" || return
	step "a good checkpoint first (seed 3)"
	mpi 4 "$ckpt" save "file://$work/mx" 3 >"$work/mx.out" 2>&1 || fail "the first save: $(cat "$work/mx.out")"
	matrix_case save set_up_storage_writer 1 1
	matrix_case save set_up_storage_writer 0,2,3 0,2,3
	matrix_case save set_up_storage_writer '*' 0,1,2,3
	matrix_case save prepare_local_plan 0 0
	matrix_case save prepare_local_plan 1-2 1,2
	matrix_case save prepare_global_plan 0 0
	matrix_case save prepare_global_plan '*' 0
	matrix_case save write_data 2,3 2,3
	matrix_case save write_data 1 1
	matrix_case save write_data_async 1 1
	matrix_case save write_data_async 0-3 0,1,2,3
	matrix_case save finish '*' 0
	# Only the coordinator (rank 0) reads the metadata; the others get it.
	matrix_case load read_metadata 0 0
	matrix_case load read_metadata '*' 0
	matrix_case load set_up_storage_reader 1 1
	matrix_case load set_up_storage_reader '*' 0,1,2,3
	matrix_case load read_data 1,3 1,3
	matrix_case load read_data_async 2 2
	step "the checkpoint of seed 3 is still there after every failed save"
	mpi 3 "$ckpt" load "file://$work/mx" 3 >"$work/mx-after.out" 2>&1 ||
		fail "the previous checkpoint does not load: $(cat "$work/mx-after.out")"
}

case_lost_rank() {
	need "$ckpt" || return
	local url=file://$work/lost t0 t1 lost
	mpi 4 "$ckpt" save "$url" 1 >"$work/lost0.out" 2>&1 || fail "the first save: $(cat "$work/lost0.out")"
	# Rank 3 hangs at its 3rd collective (after writing its data, before
	# reporting it); then the coordinator itself hangs there.
	for lost in 3 0; do
		step "rank $lost hangs in the middle of a save; DCP_MPI_TIMEOUT=2"
		t0=$(date +%s)
		DCP_MPI_TIMEOUT=2 mpi 4 -x DCP_MPI_TIMEOUT --output-filename "$work/lost$lost" \
			"$ckpt" save "$url" 2 --lose "$lost:3:hang" >/dev/null 2>&1
		t1=$(date +%s)
		[ $((t1 - t0)) -lt 30 ] || fail "the save with a hung rank took $((t1 - t0)) s"
		for p in 0 1 2 3; do
			local f=$work/lost$lost/1/rank.$p
			grep -q "^process $p of 4: exit 1" "$f/stdout" || fail "process $p did not exit 1: $(cat "$f/stdout" "$f/stderr")"
			[ "$p" = "$lost" ] && continue
			grep -q "^dcp_save failed: " "$f/stderr" || fail "process $p: no failed save: $(cat "$f/stderr")"
			grep -q "$timeout_said" "$f/stderr" ||
				fail "process $p: the failure does not say that a peer timed out: $(cat "$f/stderr")"
		done
	done
	step "the previous checkpoint (seed 1) loads on 2 processes"
	mpi 2 "$ckpt" load "$url" 1 >"$work/lost-after.out" 2>&1 ||
		fail "the previous checkpoint does not load: $(cat "$work/lost-after.out")"
}

case_killed_rank() {
	need "$ckpt" || return
	local url=file://$work/killed rc
	mpi 4 "$ckpt" save "$url" 1 >"$work/k0.out" 2>&1 || fail "the first save: $(cat "$work/k0.out")"

	# 1. Plain mpirun: Open MPI ends the whole job when a process dies.
	step "rank 2 killed (SIGKILL) in the middle of a save: mpirun ends the job"
	mpi 4 "$ckpt" save "$url" 2 --lose 2:3:kill >"$work/k1.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] || fail "a save with a killed rank succeeded"
	grep -q "stops at its collective call 3 (SIGKILL)" "$work/k1.out" || fail "rank 2 was not killed: $(cat "$work/k1.out")"

	# 2. A launcher that keeps the job running (Open MPI --enable-recovery):
	# the surviving ranks end by the timeout, each with an error.
	step "rank 2 killed, job kept running (--enable-recovery): the others time out (DCP_MPI_TIMEOUT=2)"
	DCP_MPI_TIMEOUT=2 mpi 4 --enable-recovery --mca orte_abort_on_non_zero_status 0 -x DCP_MPI_TIMEOUT \
		--output-filename "$work/k2" "$ckpt" save "$url" 2 --lose 2:3:kill >/dev/null 2>&1
	for p in 0 1 3; do
		local f=$work/k2/1/rank.$p
		grep -q "^process $p of 4: exit 1" "$f/stdout" || fail "survivor $p did not exit 1: $(cat "$f/stdout" "$f/stderr")"
		grep -q "$timeout_said" "$f/stderr" || fail "survivor $p: no timeout reported: $(cat "$f/stderr")"
	done
	step "the previous checkpoint (seed 1) loads on 3 processes"
	mpi 3 "$ckpt" load "$url" 1 >"$work/k-after.out" 2>&1 ||
		fail "the previous checkpoint does not load: $(cat "$work/k-after.out")"
}

# dcp_each OUTDIR NP ARGS...: the dcp tool on NP processes, each printing
# its exit status as "dcp-exit=X" (mpirun told not to end the job when the
# first process exits non-zero, so that every process gets to say it).
dcp_each() {
	local out=$1 np=$2
	shift 2
	# shellcheck disable=SC2016 # the inner shell expands them
	mpi "$np" --mca orte_abort_on_non_zero_status 0 --output-filename "$out" sh -c '"$@"; rc=$?; echo "dcp-exit=$rc"; exit $rc' sh "$bin/dcp" "$@" >/dev/null 2>&1
}

case_tool() {
	need "$bin/dcp" || return
	if ! "$bin/dcp" save --help | grep -q -- '--comm'; then
		fail "this dcp has no --comm option"
		return
	fi
	local url=file://$work/tool
	step "mpirun -np 4 dcp save --comm mpi"
	mpi 4 "$bin/dcp" save --comm mpi --size 2M --seed 5 "$url" >"$work/t.out" 2>&1 ||
		fail "dcp save on 4 processes: $(cat "$work/t.out")"
	grep -q "from 4 ranks" "$work/t.out" || fail "dcp save did not report 4 ranks: $(cat "$work/t.out")"
	[ "$(grep -c '^saved ' "$work/t.out")" -eq 1 ] || fail "dcp save: not exactly one summary line (rank 0's)"
	for np in 2 3 5; do
		step "mpirun -np $np dcp load (MPI launch detected)"
		mpi "$np" "$bin/dcp" load "$url" >"$work/t$np.out" 2>&1 || fail "dcp load on $np: $(cat "$work/t$np.out")"
		grep -q "into $np ranks" "$work/t$np.out" || fail "dcp load on $np did not use $np ranks: $(cat "$work/t$np.out")"
	done
	step "dcp load --seed 6 (wrong values): every process exits 1"
	dcp_each "$work/tseed" 3 load --seed 6 "$url"
	per_process "$work/tseed" 3 1 any
	step "--ranks 2 with --comm mpi is a usage error on every process"
	dcp_each "$work/tranks" 2 save --comm mpi --ranks 2 "$url"
	per_process "$work/tranks" 2 2 ""
	step "dcp save through faulty+file:// fail.write_data=2,3: every process exits 1 naming ranks 2 and 3"
	dcp_each "$work/tfail" 4 save --comm mpi --size 1M "faulty+$url?fail.write_data=2,3"
	per_process "$work/tfail" 4 1 2,3 write_data
	step "dcp load fail.read_data=1 on 3 processes"
	dcp_each "$work/tfail2" 3 load --comm mpi "faulty+$url?fail.read_data=1"
	per_process "$work/tfail2" 3 1 1 read_data
	step "the checkpoint of seed 5 still loads"
	mpi 2 "$bin/dcp" load --seed 5 "$url" >"$work/t-after.out" 2>&1 || fail "reload: $(cat "$work/t-after.out")"
}

case_example() {
	need "$bin/dcp-example-mpi" || return
	for np in 4 3; do
		step "dcp-example-mpi on $np processes"
		mpi "$np" "$bin/dcp-example-mpi" "file://$work/example$np" >"$work/ex$np.out" 2>&1 ||
			fail "the example on $np processes: $(cat "$work/ex$np.out")"
	done
}

for c in "${cases[@]}"; do
	if ! declare -F "case_$c" >/dev/null; then
		echo "unknown case '$c'" >&2
		exit 2
	fi
	"case_$c"
done
if [ $failures -gt 0 ]; then
	echo "run-mpi-tests: $failures failure(s)" >&2
	exit 1
fi
echo "run-mpi-tests: ${cases[*]}: ok"
