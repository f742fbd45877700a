#!/bin/sh
# ci.sh - build the libFuzzer targets with clang in _build-fuzz and run
# each briefly (make fuzz-smoke).  The tree itself may be configured
# in place (gcc), which rules out a VPATH build from it; so the fuzz
# build unpacks the release tarball (made by distcheck, or made now).
set -e
cd "$(dirname "$0")/../.."
tarball=$(ls -t carechat-*.tar.* 2>/dev/null | head -1)
if [ -z "$tarball" ]; then
    make dist >/dev/null
    tarball=$(ls -t carechat-*.tar.* | head -1)
fi
rm -rf _build-fuzz
mkdir _build-fuzz
tar -xf "$tarball" -C _build-fuzz --strip-components=1
cd _build-fuzz
./configure -q CC=clang --enable-fuzzing
make -j2 fuzz-smoke
