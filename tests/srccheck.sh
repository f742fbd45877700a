#!/bin/sh
# srccheck.sh - the source rules a reviewer forgets (TAP output):
#   - lines at most 80 columns in C sources and headers;
#   - no banned functions: sprintf, vsprintf, strcpy, strcat, atoi, atol,
#     strtok, gets (use snprintf, memcpy with a length, strtoll with an end
#     check, strtok_r);
#   - no // comments in the public headers (C89 integrators).
cd "${CC_SRCDIR:-$(dirname "$0")/..}" || exit 1
files=$(ls core/*.[ch] include/carechat/*.h plugins/*/*.[ch] \
        bench/*.[ch] doc/examples/*/*.[ch] tests/unit/*.[ch] tests/abi/*.c \
        tests/fuzz/*.c tests/fault/*.c \
        2>/dev/null | tr '\n' ' ')
. ./tests/tap.sh

# shellcheck disable=SC2086
report "lines fit in 80 columns" "$(awk 'length > 80 {
    print FILENAME ":" FNR ": " length " columns" }' $files)"
for fn in sprintf vsprintf strcpy strcat atoi atol strtok gets; do
    # shellcheck disable=SC2086
    report "no $fn()" "$(grep -nE "(^|[^_a-zA-Z0-9])$fn[[:space:]]*\\(" \
        $files | grep -vE '^[^:]*:[0-9]+:[[:space:]]*(\*|/\*)')"
done
report "no // comments in public headers" \
    "$(grep -n '//' include/carechat/*.h | grep -v 'https*://')"
echo "1..$n"
exit $fail
