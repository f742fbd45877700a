#!/bin/sh
# check.sh - compare the plugin ABI with the recorded baseline (TAP).
#
# tests/abi/baseline.abi is abidw's record of include/carechat/ as of the
# last release.  Any difference fails: an intended change (appending a
# member, a new table) is made by bumping CC_ABI_MINOR and recording a new
# baseline with `tests/abi/check.sh --update`, in the same commit.
src=${CC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
base=$src/tests/abi/baseline.abi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc=${CC:-cc}

if ! command -v abidw >/dev/null 2>&1; then
    echo "1..1"
    echo "ok 1 - plugin ABI matches the baseline # SKIP abidw not installed" \
         "(Debian: abigail-tools)"
    [ "$CI" = true ] && exit 1
    exit 0
fi
$cc -g -O0 -shared -fPIC -fvisibility=hidden -I"$src/include" \
    -o "$tmp/surface.so" "$src/tests/abi/surface.c" || exit 1
abidw --no-corpus-path --no-comp-dir-path --no-show-locs \
    "$tmp/surface.so" > "$tmp/now.abi" || exit 1
if [ "$1" = "--update" ]; then
    cp "$tmp/now.abi" "$base"
    echo "recorded $base"
    exit 0
fi
echo "1..1"
if abidiff "$base" "$tmp/now.abi" > "$tmp/report" 2>&1; then
    echo "ok 1 - plugin ABI matches the baseline"
    exit 0
fi
echo "not ok 1 - plugin ABI matches the baseline"
sed 's/^/# /' "$tmp/report"
echo "# An intended change: bump CC_ABI_MINOR and run tests/abi/check.sh --update"
exit 1
