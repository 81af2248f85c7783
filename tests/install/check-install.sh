#!/usr/bin/env bash
# Checks that an installed libdcp is usable by other projects.
#
#   tests/install/check-install.sh [BUILD_DIR]     (default: build)
#
# Installs BUILD_DIR (already built) into a temporary prefix, checks the files
# that must be there, then builds a tiny consumer program against the install
# in three ways and runs each:
#   1. CMake find_package(dcp), linked with dcp::dcp (libdcp.so) and with
#      dcp::dcp_static (libdcp.a);
#   2. pkg-config dcp, linked with libdcp.so;
#   3. pkg-config --static dcp, linked with libdcp.a (proves Libs.private).
# The consumer saves a tensor sharded over 2 thread-ranks to mem://, loads it
# back on 1 rank, and checks every element; the shared-library builds must
# find the installed mem plugin next to the installed libdcp with no setup.
# Set DCP_INSTALL_CHECK_BASIC=1 to only call dcp_strerror and make a thread
# group (for a tree whose save/load protocol does not work yet).
# Exits non-zero, saying what is wrong, on the first failure.
set -euo pipefail

src_dir=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=${1:-build}
case $build_dir in /*) ;; *) build_dir=$src_dir/$build_dir ;; esac
basic=${DCP_INSTALL_CHECK_BASIC:-0}

fail() {
	echo "check-install: FAIL: $*" >&2
	exit 1
}
step() { echo "check-install: $*"; }

[ -f "$build_dir/CMakeCache.txt" ] || fail "$build_dir is not a configured build folder; build first (cmake -S . -B build && cmake --build build)"

work=$(mktemp -d "${TMPDIR:-/tmp}/dcp-install-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

step "installing $build_dir into $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log" || {
	cat "$work/install.log" >&2
	fail "cmake --install failed"
}

# The library folder is lib/ or lib/<multiarch>/, whatever GNUInstallDirs chose.
so=$(find "$prefix" -name libdcp.so -print -quit)
[ -n "$so" ] || fail "no libdcp.so under $prefix"
libdir=$(dirname "$so")
for f in include/dcp/dcp.h include/dcp/sys/common.h include/dcp/sys/comm.h include/dcp/sys/metadata.h \
	include/dcp/sys/planner.h include/dcp/sys/storage.h etc/dcp/dcp.json; do
	[ -f "$prefix/$f" ] || fail "$f is not installed under $prefix"
done
for f in libdcp.a pkgconfig/dcp.pc cmake/dcp/dcpConfig.cmake cmake/dcp/dcpConfigVersion.cmake \
	cmake/dcp/dcpTargets.cmake dcp/plugins/dcp-mem.so; do
	[ -f "$libdir/$f" ] || fail "$f is not installed under $libdir"
done
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = libdcp.so.0 ] || fail "libdcp.so has soname '$soname', expected libdcp.so.0"
[ -f "$libdir/$soname" ] || fail "$soname (the soname link) is not installed in $libdir"
# Only the public API is exported: the helpers of core/util stay hidden.
if nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^dcp_' | grep -q .; then
	nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^dcp_' | head >&2
	fail "libdcp.so exports symbols without the dcp_ prefix (above)"
fi
if nm -D --defined-only "$so" | grep -Eq ' dcp_(url_|strdup|asprintf|parse_|rank_set_)'; then
	fail "libdcp.so exports the private helpers of core/util (dcp_url_*, dcp_strdup, ...)"
fi
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$prefix/etc/dcp/dcp.json" ||
		fail "etc/dcp/dcp.json is not valid JSON"
fi

# --- the consumer program ---------------------------------------------------
mkdir -p "$work/consumer"
cat >"$work/consumer/consumer.c" <<'C'
/* A program that uses an installed libdcp (written by check-install.sh). */
#include <dcp/dcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEN 6
#define URL "mem://install-check"

static int save_rank(dcp_comm *comm, int rank, void *arg)
{
	int32_t part[LEN / 2];
	uint64_t shape[1] = {LEN}, off[1] = {(uint64_t)rank * (LEN / 2)}, size[1] = {LEN / 2};
	char note[] = "saved by 2 ranks";
	dcp_error *err = NULL;
	(void)arg;
	for (int i = 0; i < LEN / 2; i++)
		part[i] = 10 * (int32_t)(off[0] + (uint64_t)i) + 7;
	dcp_state *st = dcp_state_new();
	if (st == NULL)
		return DCP_ENOMEM;
	int rc = dcp_state_add_shard(st, "v", DCP_I32, 1, shape, off, size, part);
	if (rc == DCP_OK)
		rc = dcp_state_add_bytes(st, "note", note, sizeof note);
	if (rc != DCP_OK)
		fprintf(stderr, "rank %d: state: %s\n", rank, dcp_state_last_error(st));
	if (rc == DCP_OK)
		rc = dcp_save(st, URL, comm, NULL, &err);
	if (rc != DCP_OK && err != NULL && rank == 0) {
		char *text = dcp_error_format(err);
		fprintf(stderr, "save failed: %s\n%s", dcp_strerror(rc), text ? text : "");
		free(text);
	}
	dcp_error_free(err);
	dcp_state_free(st);
	return rc;
}

static int round_trip(void)
{
	int results[2] = {-1, -1};
	int rc = dcp_run_ranks(2, save_rank, NULL, results);
	if (rc != DCP_OK || results[0] != DCP_OK || results[1] != DCP_OK) {
		fprintf(stderr, "save with 2 ranks failed: %d %d %d\n", rc, results[0], results[1]);
		return 1;
	}
	int32_t all[LEN];
	uint64_t shape[1] = {LEN}, off[1] = {0};
	char note[64];
	const void *got = NULL;
	size_t got_len = 0;
	dcp_error *err = NULL;
	dcp_comm *one = dcp_comm_single_new();
	dcp_state *st = dcp_state_new();
	memset(all, 0, sizeof all);
	if (one == NULL || st == NULL)
		return 1;
	rc = dcp_state_add_shard(st, "v", DCP_I32, 1, shape, off, shape, all);
	if (rc == DCP_OK)
		rc = dcp_state_add_bytes(st, "note", note, sizeof note);
	if (rc == DCP_OK)
		rc = dcp_load(st, URL, one, NULL, &err);
	if (rc != DCP_OK) {
		char *text = err ? dcp_error_format(err) : NULL;
		fprintf(stderr, "load with 1 rank failed: %s\n%s", dcp_strerror(rc), text ? text : "");
		free(text);
		return 1;
	}
	for (int i = 0; i < LEN; i++)
		if (all[i] != 10 * i + 7) {
			fprintf(stderr, "v[%d] = %d after load, expected %d\n", i, (int)all[i], 10 * i + 7);
			return 1;
		}
	if (dcp_state_get_bytes(st, "note", &got, &got_len) != DCP_OK || got_len != sizeof "saved by 2 ranks" ||
	    memcmp(got, "saved by 2 ranks", got_len) != 0) {
		fprintf(stderr, "bytes item 'note' differs after load\n");
		return 1;
	}
	dcp_error_free(err);
	dcp_state_free(st);
	dcp_comm_free(one);
	/* Where the plugins came from, for the script to check. */
	for (size_t i = 0; i < dcp_registry_count(NULL); i++) {
		dcp_plugin_info info;
		if (dcp_registry_info(NULL, i, &info) == DCP_OK)
			printf("plugin %s %s\n", info.name, info.path);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (strcmp(dcp_strerror(DCP_OK), dcp_strerror(DCP_ENOMEM)) == 0 || dcp_strerror(-12345) == NULL) {
		fprintf(stderr, "dcp_strerror does not name codes\n");
		return 1;
	}
	dcp_thread_group *g = dcp_thread_group_new(3);
	if (g == NULL) {
		fprintf(stderr, "dcp_thread_group_new(3) failed\n");
		return 1;
	}
	dcp_thread_group_free(g);
	if (argc > 1 && strcmp(argv[1], "--basic") == 0) {
		printf("consumer: basic ok (libdcp %s)\n", DCP_VERSION_STRING);
		return 0;
	}
	if (round_trip() != 0)
		return 1;
	printf("consumer: round trip ok (libdcp %s)\n", DCP_VERSION_STRING);
	return 0;
}
C
cat >"$work/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(dcp_consumer LANGUAGES C)
set(CMAKE_C_STANDARD 11)
find_package(dcp 0.1 REQUIRED)
message(STATUS "dcp ${dcp_VERSION} from ${dcp_DIR}; plugins in ${dcp_PLUGIN_DIR}")
add_executable(consumer consumer.c)
target_compile_options(consumer PRIVATE -Wall -Wextra -Werror)
target_link_libraries(consumer PRIVATE dcp::dcp)
add_executable(consumer_static consumer.c)
target_compile_options(consumer_static PRIVATE -Wall -Wextra -Werror)
target_link_libraries(consumer_static PRIVATE dcp::dcp_static)
CM

mode=()
[ "$basic" = 1 ] && mode=(--basic)

# Runs one consumer binary with a clean environment for plugin lookup; for the
# shared-library builds, checks that the mem plugin came from the install.
run_consumer() { # name binary expect_plugin_from_install [env...]
	local name=$1 bin=$2 check=$3
	shift 3
	step "running $name"
	env -u DCP_PLUGIN_PATH DCP_CONF="$prefix/etc/dcp/dcp.json" "$@" "$bin" "${mode[@]}" >"$work/$name.out" 2>&1 || {
		cat "$work/$name.out" >&2
		fail "$name failed"
	}
	cat "$work/$name.out"
	if [ "$basic" != 1 ] && [ "$check" = 1 ]; then
		local got want
		got=$(sed -n 's/^plugin mem //p' "$work/$name.out" | head -n 1)
		want=$(realpath -e "$libdir/dcp/plugins/dcp-mem.so")
		if [ -z "$got" ] || [ "$(realpath -e "$got" 2>/dev/null)" != "$want" ]; then
			fail "$name loaded the mem plugin from '${got:-nowhere}', expected $want (next to the installed libdcp)"
		fi
	fi
}

step "building the consumer with find_package(dcp)"
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" 2>&1 || {
	cat "$work/cmake.log" >&2
	fail "configuring the consumer with find_package(dcp) failed"
}
cmake --build "$work/consumer/build" >>"$work/cmake.log" 2>&1 || {
	cat "$work/cmake.log" >&2
	fail "building the consumer against dcp::dcp / dcp::dcp_static failed"
}
run_consumer cmake-shared "$work/consumer/build/consumer" 1
# A static program has no libdcp.so to find plugins next to: it is told where.
run_consumer cmake-static "$work/consumer/build/consumer_static" 0 DCP_PLUGIN_PATH="$libdir/dcp/plugins"

step "building the consumer with pkg-config dcp"
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists dcp || fail "pkg-config does not find dcp.pc in $libdir/pkgconfig"
[ "$(pkg-config --modversion dcp)" = "$(sed -n 's/^#define DCP_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/dcp/dcp.h")" ] ||
	fail "dcp.pc version $(pkg-config --modversion dcp) differs from DCP_VERSION_STRING in dcp/dcp.h"
cc=${CC:-cc}
# shellcheck disable=SC2046 # pkg-config output is a list of words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer-pc" "$work/consumer/consumer.c" \
	$(pkg-config --cflags --libs dcp) -Wl,-rpath,"$libdir" || fail "compiling with \$(pkg-config --cflags --libs dcp) failed"
run_consumer pkg-config-shared "$work/consumer-pc" 1
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror -o "$work/consumer-pc-static" "$work/consumer/consumer.c" \
	$(pkg-config --cflags dcp) $(pkg-config --static --libs dcp | sed 's/-ldcp\b/-l:libdcp.a/') ||
	fail "linking libdcp.a with \$(pkg-config --static --libs dcp) failed: Libs.private is incomplete"
run_consumer pkg-config-static "$work/consumer-pc-static" 0 DCP_PLUGIN_PATH="$libdir/dcp/plugins"

# --- libdcp_mpi, where the build had MPI -------------------------------------
# examples/standalone builds the MPI example against the install with
# find_package(dcp COMPONENTS mpi) and with pkg-config dcp_mpi; each runs on
# 2 processes under mpirun (if there is one) and saves to file://.
if [ -f "$libdir/libdcp_mpi.so" ]; then
	step "libdcp_mpi: files, and the MPI example built with CMake and with make + pkg-config"
	for f in "$prefix/include/dcp/dcp_mpi.h" "$libdir/libdcp_mpi.a" "$libdir/pkgconfig/dcp_mpi.pc" \
		"$libdir/cmake/dcp/dcpMpiTargets.cmake"; do
		[ -f "$f" ] || fail "$f is not installed"
	done
	if readelf -d "$so" | grep -q 'NEEDED.*mpi'; then
		fail "libdcp.so links MPI; only libdcp_mpi.so may"
	fi
	mkdir -p "$work/examples"
	cp -r "$src_dir/examples/standalone" "$src_dir/examples/mpi_save_load.c" "$work/examples/"
	cmake -S "$work/examples/standalone" -B "$work/ex-cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$work/ex.log" 2>&1 &&
		cmake --build "$work/ex-cmake" >>"$work/ex.log" 2>&1 || {
		cat "$work/ex.log" >&2
		fail "building examples/standalone with find_package(dcp COMPONENTS mpi) failed"
	}
	make -C "$work/examples/standalone" PKG_CONFIG_PATH="$libdir/pkgconfig" >>"$work/ex.log" 2>&1 || {
		cat "$work/ex.log" >&2
		fail "building examples/standalone with make and pkg-config dcp_mpi failed"
	}
	if command -v mpirun >/dev/null; then
		for exe in "$work/ex-cmake/dcp-example-mpi" "$work/examples/standalone/dcp-example-mpi"; do
			OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 10 120 \
				mpirun --oversubscribe -np 2 "$exe" "file://$work/mpi-ckpt-$RANDOM" >"$work/ex-run.log" 2>&1 || {
				cat "$work/ex-run.log" >&2
				fail "$exe (built against the install) failed under mpirun -np 2"
			}
		done
	fi
fi

step "ok: the install in a temporary prefix works with find_package(dcp) and pkg-config"
