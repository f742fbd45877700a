#!/bin/sh
# ci.sh - configure a clang libFuzzer build in _build-fuzz beside the
# tree and run every fuzz target briefly (make fuzz-smoke).
set -e
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$src/_build-fuzz"
cd "$src/_build-fuzz"
"$src/configure" -q CC=clang --enable-fuzzing
make -j2 fuzz-smoke
