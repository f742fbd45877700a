# tap.sh - TAP helpers for the shell tests, sourced (". tests/tap.sh").
# The caller prints "1..$n" at the end and exits with $fail.
n=0
fail=0

# report DESCRIPTION OFFENDING-LINES: ok when the second is empty, else
# not ok with (the first 20 of) the lines as diagnostics.
report() {
    n=$((n + 1))
    if [ -z "$2" ]; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1"
        printf '%s\n' "$2" | head -20 | sed 's/^/# /'
        fail=1
    fi
}

# skip DESCRIPTION REASON: a tool is missing.  A skip locally, a failure
# with CI=true (CI must have every tool).
skip() {
    n=$((n + 1))
    if [ "$CI" = true ]; then
        echo "not ok $n - $1 # $2 (required with CI=true)"
        fail=1
    else
        echo "ok $n - $1 # SKIP $2"
    fi
}
