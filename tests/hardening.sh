#!/bin/sh
# hardening.sh - the systemd unit that make generates
# (etc/carechatd.service) is sandboxed: `systemd-analyze security
# --offline=true` rates its exposure 2.5 or lower (1.1 when this test was
# written, 5.8 before), and `systemd-analyze verify` reads every line of
# it without a complaint (a misspelt key is ignored by systemd, with a
# warning, and would silently weaken the unit).  TAP.
#
# No systemd needs to run: both read the file only.  A missing
# systemd-analyze, or one without --offline (before systemd 250), is a
# skip with the reason, a failure with CI=true.
src=${CC_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${CC_BUILDDIR:-$src}
MAX=2.5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$src/tests/tap.sh"

unset MAKEFLAGS MFLAGS MAKELEVEL
make -C "$build" etc/carechatd.service >"$tmp/make.log" 2>&1 ||
    cat "$tmp/make.log"
unit=$build/etc/carechatd.service

if ! command -v systemd-analyze >/dev/null 2>&1; then
    skip "systemd-analyze security rates the unit $MAX or lower" \
         "systemd-analyze not installed (Debian, Fedora: systemd)"
    skip "systemd-analyze verify accepts every line of the unit" \
         "systemd-analyze not installed"
    echo "1..$n"
    exit $fail
fi

# ------------------------------------------------------------ exposure
systemd-analyze security --offline=true --no-pager "$unit" \
    >"$tmp/security" 2>&1
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' \
        "$tmp/security")
if [ -z "$score" ] && grep -q "offline" "$tmp/security"; then
    skip "systemd-analyze security rates the unit $MAX or lower" \
         "this systemd-analyze has no --offline (systemd 250 or later)"
else
    # Over the bound: the settings that cost points, and the rating.
    over=$(awk -v s="$score" -v max="$MAX" \
           'BEGIN { if (s == "" || s + 0 > max + 0) print "over" }')
    report "systemd-analyze security rates the unit $MAX or lower" \
        "${over:+$(grep -v '✓' "$tmp/security")}"
    echo "# exposure: ${score:-?}"
fi

# -------------------------------------------------------------- verify
# verify also checks that the commands exist: point them at the build.
mkdir "$tmp/unit"
sed "s|^\(Exec[A-Za-z]*=\)[^ ]*/carechatd |\1$build/carechatd |" "$unit" \
    > "$tmp/unit/carechatd.service"
report "systemd-analyze verify accepts every line of the unit" \
    "$(systemd-analyze verify --man=no "$tmp/unit/carechatd.service" 2>&1)"

echo "1..$n"
exit $fail
