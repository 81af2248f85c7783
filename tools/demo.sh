#!/usr/bin/env bash
# The main job of libdcp, from a fresh checkout on Debian 12: installs the
# missing packages, builds in build/, and runs
#   build/bin/dcp demo              once the command-line tool exists, else
#   build/bin/dcp-example-mem       save from 4 ranks, load resharded on 3,
#                                   check every element.
# Arguments are passed to the program (e.g. a checkpoint URL for the example).
set -euo pipefail

cd "$(dirname "$0")/.."
jobs=${DCP_JOBS:-$(nproc 2>/dev/null || echo 2)}

tools/deps.sh build
if [ ! -f build/CMakeCache.txt ]; then
	cmake -S . -B build
fi
cmake --build build --parallel "$jobs"

if [ -x build/bin/dcp ]; then
	# 'dcp demo' saves to file://./dcp-demo by default; without the file
	# plugin in this build, keep the checkpoint in memory instead.
	if [ $# -eq 0 ] && [ ! -e build/lib/dcp/plugins/dcp-fs.so ]; then
		set -- mem://demo
	fi
	exec build/bin/dcp demo "$@"
fi
exec build/bin/dcp-example-mem "$@"
