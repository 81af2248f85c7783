#!/usr/bin/env bash
# Runs every test of libdcp, from a fresh checkout on Debian 12:
#   1. installs the missing packages (tools/deps.sh test);
#   2. builds in build/ with warnings as errors and runs ctest;
#   3. builds again in build-asan/ with AddressSanitizer and
#      UndefinedBehaviorSanitizer and runs ctest there;
#   4. builds the libFuzzer targets with clang (build-fuzz/) and runs each for
#      20 s on its corpus (tests/fuzz/run-fuzzers.sh);
#   5. checks that libdcp.so depends on neither curl nor MPI;
#   6. installs into a temporary prefix and builds and runs a program against
#      the install, with find_package(dcp) and with pkg-config
#      (tests/install/check-install.sh).
# Stops at the first failing step and exits non-zero. Environment:
#   DCP_JOBS        parallel build and test jobs (default: all cores)
#   DCP_SKIP_ASAN=1 skips step 3 (for a quick local run; CI never sets it)
set -euo pipefail

cd "$(dirname "$0")/.."
jobs=${DCP_JOBS:-$(nproc 2>/dev/null || echo 2)}
t0=$SECONDS
summary=()

step() { printf '\n=== %s\n' "$*"; }
done_step() { summary+=("$(printf '%-44s %4ds' "$1" $((SECONDS - $2)))"); }

step "packages"
tools/deps.sh test

step "formatting (one .clang-format for all C code)"
t=$SECONDS
git ls-files '*.c' '*.h' 2>/dev/null | xargs -r clang-format --dry-run -Werror
done_step "clang-format" "$t"

# configure_build_test DIR LABEL CMAKE-ARGS...
configure_build_test() {
	local dir=$1 label=$2 t=$SECONDS
	shift 2
	step "$label: configure $dir"
	cmake -S . -B "$dir" -DDCP_WERROR=ON -DDCP_BUILD_TESTS=ON "$@"
	step "$label: build ($jobs jobs)"
	cmake --build "$dir" --parallel "$jobs"
	step "$label: ctest"
	(cd "$dir" && ctest --output-on-failure --no-tests=error --parallel "$jobs")
	done_step "$label build and tests ($dir)" "$t"
}

configure_build_test build "default" -DDCP_SANITIZE=OFF

if [ "${DCP_SKIP_ASAN:-0}" != 1 ]; then
	configure_build_test build-asan "ASan+UBSan" -DDCP_SANITIZE=ON
else
	echo "DCP_SKIP_ASAN=1: sanitizer build skipped"
fi

step "fuzzers: each libFuzzer target 20 s (clang)"
t=$SECONDS
DCP_JOBS=$jobs tests/fuzz/run-fuzzers.sh 20
done_step "fuzzers (build-fuzz, 20 s each)" "$t"

step "libdcp.so links neither curl nor MPI"
t=$SECONDS
ldd build/lib/libdcp.so
if ldd build/lib/libdcp.so | grep -Ei 'libcurl|libmpi|libopen-(pal|rte)|mpich'; then
	echo "FAIL: build/lib/libdcp.so depends on curl or MPI (above); those belong in plugins or adapters" >&2
	exit 1
fi
done_step "no curl or MPI in libdcp.so" "$t"

step "install check"
t=$SECONDS
tests/install/check-install.sh build
done_step "install check" "$t"

printf '\n=== all tests passed\n'
printf '%s\n' "${summary[@]}"
printf '%-44s %4ds\n' "total" $((SECONDS - t0))
