#!/bin/sh
# install.sh - `./configure --prefix=P && make install` by a user who may
# write nothing but P installs everything under P: the daemon, plugins
# (without their libtool .la files), config, state directory and the
# systemd unit.  TAP.
#
# It installs this build with `make install prefix=P` (every directory of
# a default configure follows prefix, so this is what --prefix=P gives,
# without a second configure and build).  As root, make runs as nobody
# with only P writable by it, so a write outside P fails the install; a
# second, staged install (DESTDIR) then shows where every file would go,
# which also catches writes to world-writable places such as /tmp.
set -u
B=${CC_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }

# A build configured with its own directories (--sysconfdir=/etc, a unit
# directory of the system's) is not what this test is about.
eval "set -- $(cd "$B" && ./config.status --config)"
for a in "$@"; do
    case "$a" in
    --srcdir=*) ;;
    --exec-prefix=*|--*dir=*|--without-systemdsystemunitdir)
        echo "1..0 # SKIP configured with $a: its files need not follow prefix"
        exit 0 ;;
    esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/carechat-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
P=$tmp/prefix
D=$tmp/stage
mkdir "$P" "$D"
chmod 755 "$tmp"
as_user=
if [ "$(id -u)" -eq 0 ]; then
    chown nobody "$P" "$D"
    as_user="setpriv --reuid=$(id -u nobody) --regid=$(id -g nobody)"
    as_user="$as_user --clear-groups"
fi
# The parent make's jobserver and flags are not this make's.
unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR
inst() {
    $as_user make -C "$B" "$@" prefix="$P" >>"$tmp/log" 2>&1
}

# Anything out of date is built by us, not by nobody in our tree.
make -C "$B" all >>"$tmp/log" 2>&1
if inst install; then
    ok "make install prefix=P as $(id -un ${as_user:+nobody}) succeeds"
else
    notok "make install prefix=P as $(id -un ${as_user:+nobody}) succeeds"
    sed -n '/rror\|ermission\|cannot/s/^/# /p' "$tmp/log" | head -20
fi
check "carechatd and a plugin are installed under P" \
    '[ -x "$P/sbin/carechatd" ] &&
     [ -f "$P/lib/carechat/plugins/storage-sqlite.so" ]'
las=$(find "$P" -name '*.la' 2>/dev/null)
check "no libtool .la file is installed" '[ -z "$las" ]'
[ -z "$las" ] || echo "$las" | sed 's/^/# /'
check "the systemd unit is installed under P" \
    '[ -f "$P/lib/systemd/system/carechatd.service" ]'
state=$(stat -c %a "$P/var/lib/carechat" 2>/dev/null)
check "the state directory is mode 750 (was ${state:-missing})" \
    '[ "$state" = 750 ]'

if inst install DESTDIR="$D"; then
    outside=$(cd "$D" && find . ! -type d | sed 's|^\.||' |
              while read -r f; do
                  case "$f" in "$P"/*) ;; *) echo "$f" ;; esac
              done)
    check "every file of a staged install is under P" '[ -z "$outside" ]'
    [ -z "$outside" ] || echo "$outside" | sed 's/^/# outside: /'
else
    notok "every file of a staged install is under P (install failed)"
fi

inst uninstall
left=$(find "$P" ! -type d 2>/dev/null)
check "make uninstall removes every file" '[ -z "$left" ]'
[ -z "$left" ] || echo "$left" | sed 's/^/# left: /'
echo "1..$n"
[ "$fails" -eq 0 ]
