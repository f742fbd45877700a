#!/bin/sh
# install.sh - `./configure --prefix=P && make install` by a user who may
# write nothing but P installs everything under P: the daemon, plugins
# (without their libtool .la files), config, state directory (0750), the
# JWT secret (0600), the systemd unit and the sysusers.d file; and what it
# installed works: the installed carechatd, run from the installed
# config by that user, serves a chat and creates nothing readable by
# others.  TAP.
#
# It installs this build with `make install prefix=P` (every directory of
# a default configure follows prefix, so this is what --prefix=P gives,
# without a second configure and build).  As root, make runs as nobody
# with only P writable by it, so a write outside P fails the install; a
# second, staged install (DESTDIR) then shows where every file would go,
# which also catches writes to world-writable places such as /tmp, and
# holds no JWT secret (a package's postinst makes one per host).
set -u
B=${CC_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
S=${CC_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
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
    --exec-prefix=*|--*dir=*|--without-systemdsystemunitdir|\
    --without-sysusersdir)
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
check "the sysusers.d file (the carechat user) is installed under P" \
    '[ -f "$P/lib/sysusers.d/carechat.conf" ]'
docs=
for f in README.md doc/protocol.md doc/operations.md \
         doc/high-availability.md doc/plugin-guide.md; do
    [ -f "$P/share/doc/carechat/$f" ] || docs="$docs $f"
done
check "the manuals are in share/doc/carechat (missing:${docs:- none})" \
    '[ -z "$docs" ]'
state=$(stat -c %a "$P/var/lib/carechat" 2>/dev/null)
check "the state directory is mode 750 (was ${state:-missing})" \
    '[ "$state" = 750 ]'
secret=$(stat -c %a "$P/etc/carechat/jwt-secret" 2>/dev/null)
check "the generated JWT secret is mode 600 (was ${secret:-missing})" \
    '[ "$secret" = 600 ]'

# ------------------------------------------------- the installed daemon
# The installed carechatd, run as the user who installed it (nobody, as
# root) from the installed config, with its port changed (a free loopback
# one), its paths moved from the configured prefix to P (make install
# prefix=P installs the config built for the first) and its commented
# [audit] section turned on at the path it suggests, started from umask
# 022.  tests/install-client.py mints tokens from the installed secret,
# registers two profiles, opens a chat, sends a message and reads it
# back; no file the daemon created has a bit for others, while it runs
# (-wal, -shm) and after SIGTERM.
conf=$P/etc/carechat/carechat.conf
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
built=$(sed -n 's/^prefix = //p' "$B/Makefile")
$as_user sed -i -e "s|^listen = .*|listen = 127.0.0.1:$port|" \
    -e "s|^\([#a-z_]* = \)$built/|\1$P/|" \
    -e 's|^#\[audit\]|[audit]|' -e 's|^#file = |file = |' "$conf"
touch "$tmp/stamp"
$as_user /bin/sh -c 'umask 022 && exec "$0" -c "$1"' "$P/sbin/carechatd" \
    "$conf" >"$tmp/carechatd.log" 2>&1 &
daemon=$!
PYTHONPATH=$S/tests/integration /usr/bin/python3 "$S/tests/install-client.py" \
    "$port" "$P/etc/carechat/jwt-secret" >"$tmp/client.log" 2>&1
served=$?
check "the installed carechatd serves a chat from the installed config" \
    '[ $served -eq 0 ]'
[ $served -eq 0 ] ||
    sed 's/^/# /' "$tmp/client.log" "$tmp/carechatd.log" | tail -20
sleep 0.3 # the audit writer syncs every 100 ms
# exposed WHEN: the files under P made or changed since the daemon
# started (listed in $tmp/made) that have a bit for others.
exposed() {
    find "$P" -type f -newer "$tmp/stamp" > "$tmp/made"
    while read -r f; do
        case "$(stat -c %a "$f")" in
        *0) ;;
        *) echo "$1: $(stat -c %a "$f") $f" ;;
        esac
    done < "$tmp/made"
}
bad=$(exposed running)
made=$(sed "s|^$P/||" "$tmp/made" | sort | tr '\n' ' ')
check "it made the database, -wal, -shm and audit file ($made)" \
    '(for f in lib/carechat/carechat.db lib/carechat/carechat.db-wal \
               lib/carechat/carechat.db-shm log/carechat/audit.log; do
          grep -qx "$P/var/$f" "$tmp/made" || exit 1; done)'
kill -TERM "$daemon" 2>/dev/null
wait "$daemon"
stopped=$?
check "it stops with status 0 on SIGTERM (status $stopped)" \
    '[ $stopped -eq 0 ]'
bad=$(printf '%s\n%s' "$bad" "$(exposed stopped)" | sed '/^$/d')
check "nothing it created is readable by others" '[ -z "$bad" ]'
[ -z "$bad" ] || echo "$bad" | sed 's/^/# /'
# State is not the installation's: uninstall leaves it, so it goes here.
rm -f "$P"/var/lib/carechat/carechat.db* "$P/var/log/carechat/audit.log"

if inst install DESTDIR="$D"; then
    outside=$(cd "$D" && find . ! -type d | sed 's|^\.||' |
              while read -r f; do
                  case "$f" in "$P"/*) ;; *) echo "$f" ;; esac
              done)
    check "every file of a staged install is under P" '[ -z "$outside" ]'
    [ -z "$outside" ] || echo "$outside" | sed 's/^/# outside: /'
    check "a staged install holds no JWT secret (each host makes its own)" \
        '[ ! -e "$D$P/etc/carechat/jwt-secret" ]'
else
    notok "every file of a staged install is under P (install failed)"
fi

inst uninstall
left=$(find "$P" ! -type d 2>/dev/null)
check "make uninstall removes every file" '[ -z "$left" ]'
[ -z "$left" ] || echo "$left" | sed 's/^/# left: /'
echo "1..$n"
[ "$fails" -eq 0 ]
