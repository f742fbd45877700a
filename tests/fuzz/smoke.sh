#!/bin/sh
# smoke.sh - run each libFuzzer target for FUZZ_SECONDS (default 10) from
# the seed corpus in tests/fuzz/corpus/<target>; TAP, one line a target.
# A crash, leak, UB report or timeout fails it and leaves the input in
# $FUZZ_ARTIFACTS (default ./fuzz-artifacts).  For a long run:
#   make fuzz-smoke FUZZ_SECONDS=3600
secs=${FUZZ_SECONDS:-10}
src=${CC_SRCDIR:-$(dirname "$0")/../..}
bld=${CC_BUILDDIR:-.}
art=${FUZZ_ARTIFACTS:-$bld/fuzz-artifacts}
mkdir -p "$art"
targets="http ws msg config token"
n=0
fail=0
echo "1..5"
for t in $targets; do
    n=$((n + 1))
    work=$(mktemp -d)
    if "$bld/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 \
         -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
         -artifact_prefix="$art/$t-" "$work" "$src/tests/fuzz/corpus/$t" \
         >"$art/$t.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' \
               "$art/$t.log")
        echo "ok $n - fuzz_$t: ${runs:-?} inputs in ${secs}s, no finding"
    else
        echo "not ok $n - fuzz_$t found a problem (input in $art/$t-*)"
        grep -E "ERROR|runtime error|SUMMARY" "$art/$t.log" | head -5 |
            sed 's/^/# /'
        fail=1
    fi
    rm -rf "$work"
done
exit $fail
