#!/usr/bin/env bash
# The Debian 12 packages that libdcp needs, and installing the missing ones.
#
#   tools/deps.sh build        packages to build libdcp, its examples and tests
#   tools/deps.sh test         those plus the tools the full test run uses
#   tools/deps.sh --list SET   prints the packages of SET, one a line
#
# Installs only what is missing (dpkg-query decides): with apt-get when run as
# root, else it prints the apt-get line to run and exits 1. Used by
# tools/demo.sh, tools/test-all.sh and .ci/run.
set -euo pipefail

# libcurl, libxml2 and libssl-dev (libcrypto: SigV4 and Content-MD5): the S3 plugin (built only when they are found; libdcp
# itself never links them). libs3: an independent S3 client for the tests.
# libopenmpi-dev and openmpi-bin (mpirun): libdcp_mpi, the MPI example and the
# MPI tests (built only when MPI is found; libdcp itself never links MPI).
build_pkgs=(cmake make gcc libc6-dev pkg-config libcjson-dev libcriterion-dev libisal-dev libxxhash-dev
	libcurl4-openssl-dev libxml2-dev libssl-dev libopenmpi-dev openmpi-bin)
# clang and its runtime: sanitizer and fuzzing builds with clang.
# radosgw, ceph-mon, ceph-osd (with openssl and curl): a one-node Ceph cluster
# whose S3 gateway verifies signatures, for the rgw_server tests
# (tests/s3/start-radosgw.sh); awscli: the second client of rgw_second_client.
test_pkgs=("${build_pkgs[@]}" clang clang-format libclang-rt-14-dev binutils libs3-dev
	radosgw ceph-mon ceph-osd openssl curl awscli)

usage() {
	echo "usage: $0 build|test  or  $0 --list build|test" >&2
	exit 2
}

pkgs_of() {
	case $1 in
	build) printf '%s\n' "${build_pkgs[@]}" ;;
	test) printf '%s\n' "${test_pkgs[@]}" ;;
	*) usage ;;
	esac
}

[ $# -ge 1 ] || usage
if [ "$1" = --list ]; then
	[ $# -eq 2 ] || usage
	pkgs_of "$2"
	exit 0
fi
[ $# -eq 1 ] || usage
mapfile -t wanted < <(pkgs_of "$1")

if ! command -v dpkg-query >/dev/null; then
	# Not Debian: trust what is there, and say what is needed if the build fails.
	echo "deps: no dpkg-query here; make sure these (Debian names) are installed: ${wanted[*]}" >&2
	exit 0
fi

missing=()
for p in "${wanted[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: install them as root, then run this again:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
