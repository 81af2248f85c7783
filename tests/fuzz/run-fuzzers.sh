#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang in build-fuzz/ and runs
# each one for SECONDS (default 20) on one job, starting from a temporary copy
# of its seed corpus (tests/fuzz/corpus/<target>/, which is never written).
# Exits 1 (after running them all) if any target finds a crash, a failed
# property, a leak, a timeout (an input taking over 5 s) or a memory blow-up
# (over 2048 MB); its log is shown and its input kept (see below).
#
# usage: tests/fuzz/run-fuzzers.sh [SECONDS] [TARGET...]
#   TARGET  run only these (default: every fuzz_* target that was built)
# Environment:
#   DCP_FUZZ_BUILD  build folder (default build-fuzz, relative to the top)
#   DCP_JOBS        parallel build jobs (default: all cores)
#   DCP_FUZZ_KEEP=1 keep the temporary corpora (grown by the run) and print
#                   where they are
# A crash leaves its input in build-fuzz/fuzz/artifacts/<target>/; reproduce
# it with build-fuzz/fuzz/<target> <that file>, minimise it with
# -minimize_crash=1 -runs=10000, and add it to the corpus as a regression seed.
set -euo pipefail

cd "$(dirname "$0")/../.."
seconds=${1:-20}
shift || true
case $seconds in
'' | *[!0-9]* | 0)
	# (libFuzzer reads -max_total_time=0 as "no limit")
	echo "usage: $0 [SECONDS] [TARGET...] (SECONDS is a whole number above 0, not '$seconds')" >&2
	exit 2
	;;
esac
build=${DCP_FUZZ_BUILD:-build-fuzz}
jobs=${DCP_JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v clang >/dev/null 2>&1; then
	echo "run-fuzzers: clang is not installed (Debian: apt-get install clang libclang-rt-14-dev)" >&2
	exit 1
fi

echo "=== configure $build (clang, DCP_FUZZ=ON)"
# tests/fuzz/CMakeLists.txt writes the list of its targets here.
list=$build/tests/fuzz/fuzz-targets.txt
log=$build/configure-fuzz.log
rm -f "$list"
mkdir -p "$build"
CC=clang cmake -S . -B "$build" -DDCP_FUZZ=ON -DDCP_BUILD_TESTS=ON -DDCP_SANITIZE=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >"$log" 2>&1 || {
	cat "$log" >&2
	exit 1
}
if [ ! -s "$list" ]; then
	echo "run-fuzzers: $build has no fuzz targets: tests/CMakeLists.txt must add_subdirectory(fuzz)" \
		"when DCP_FUZZ is on, and the build must use clang (remove $build if it was configured with" \
		"another compiler); see $log" >&2
	exit 1
fi
echo "=== build the fuzz targets ($jobs jobs)"
cmake --build "$build" --target dcp_fuzzers --parallel "$jobs"

if [ $# -gt 0 ]; then
	targets=("$@")
else
	read -r -a targets <"$list"
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "run-fuzzers: no fuzz target was built in $build/fuzz" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dcp-fuzz-run.XXXXXX")
if [ "${DCP_FUZZ_KEEP:-0}" = 1 ]; then
	trap 'echo "corpora kept in $tmp"' EXIT
else
	trap 'rm -rf "$tmp"' EXIT
fi

failed=()
for t in "${targets[@]}"; do
	exe=$build/fuzz/$t
	if [ ! -x "$exe" ]; then
		echo "run-fuzzers: no target $t in $build/fuzz" >&2
		exit 2
	fi
	corpus=$tmp/$t
	artifacts=$build/fuzz/artifacts/$t
	mkdir -p "$corpus" "$artifacts"
	if [ -d "tests/fuzz/corpus/$t" ]; then
		cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
	fi
	echo "=== $t: ${seconds}s"
	if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
		"$exe" "$corpus" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$artifacts/" \
		>"$tmp/$t.log" 2>&1; then
		grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^Done ' "$tmp/$t.log" || true
		echo "=== $t: ok"
	else
		tail -n 60 "$tmp/$t.log"
		echo "=== $t: FAILED (input in $artifacts/)" >&2
		failed+=("$t")
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "run-fuzzers: failed: ${failed[*]}" >&2
	exit 1
fi
echo "=== all fuzz targets ran ${seconds}s without a finding: ${targets[*]}"
