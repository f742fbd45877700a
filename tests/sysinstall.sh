#!/bin/sh
# sysinstall.sh - `sudo make install` onto this machine leaves a unit
# that can start: as root, make install to /usr/local creates the
# carechat user (systemd-sysusers, from the installed sysusers.d file),
# gives it the state and log directories (0750) and makes the JWT secret
# root:carechat 0640; then, as the unit runs it (User=carechat, no
# supplementary groups), the installed carechatd accepts the installed
# config (-t, the unit's ExecStartPre) and serves a chat, and what it
# created is the carechat user's and has no bit for others.  TAP.
#
# The host is left alone: the test runs again inside a private mount
# namespace (unshare -m) where /etc and /usr/local are overlays whose
# changes are written to a temporary directory and dropped at the end.
# Not root, or no unshare, setpriv, systemd-sysusers or overlayfs: a
# skip with the reason (a failure with CI=true).  systemd does not run
# here; tests/hardening.sh checks the unit's sandbox offline.
src=${CC_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${CC_BUILDDIR:-$src}
. "$src/tests/tap.sh"
WHAT="sudo make install leaves a unit that can start"

skip_all() {
    skip "$WHAT" "$1"
    echo "1..$n"
    exit $fail
}

if [ "${1:-}" != --inside ]; then
    [ "$(id -u)" -eq 0 ] || skip_all "not root"
    for t in unshare setpriv systemd-sysusers; do
        command -v $t >/dev/null 2>&1 ||
            skip_all "$t not installed (Debian: util-linux, systemd)"
    done
    unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR
    make -C "$build" all >/dev/null 2>&1
    exec unshare -m /bin/sh "$0" --inside
fi

# ------------------------------------------ inside: /etc, /usr/local
tmp=$(mktemp -d)
trap 'umount /usr/local /etc 2>/dev/null; rm -rf "$tmp"' EXIT
for d in /etc /usr/local; do
    mkdir -p "$tmp/ov$d/upper" "$tmp/ov$d/work"
    mount -t overlay overlay -o \
        "lowerdir=$d,upperdir=$tmp/ov$d/upper,workdir=$tmp/ov$d/work" "$d" \
        2>"$tmp/mount.err" ||
        skip_all "cannot overlay $d: $(cat "$tmp/mount.err")"
done

make -C "$build" install prefix=/usr/local >"$tmp/install.log" 2>&1
report "make install prefix=/usr/local as root succeeds" \
    "$([ $? -eq 0 ] || tail -20 "$tmp/install.log")"
report "it creates the carechat user and group" \
    "$(id carechat 2>&1 >/dev/null)"
V=/usr/local/var
secret=/usr/local/etc/carechat/jwt-secret
report "the state and log directories are carechat's, 750; the secret is \
root:carechat 640" \
    "$(stat -c '%a %U:%G %n' $V/lib/carechat $V/log/carechat "$secret" \
       2>&1 | grep -v -e "^750 carechat:carechat $V/" \
                      -e "^640 root:carechat $secret\$")"

# The installed config with a free loopback port, its paths moved from
# the configured prefix to /usr/local, and its [audit] section on.
conf=/usr/local/etc/carechat/carechat.conf
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
built=$(sed -n 's/^prefix = //p' "$build/Makefile")
sed -i -e "s|^listen = .*|listen = 127.0.0.1:$port|" \
    -e "s|^\([#a-z_]* = \)$built/|\1/usr/local/|" \
    -e 's|^#\[audit\]|[audit]|' -e 's|^#file = |file = |' "$conf"
as_carechat="setpriv --reuid=carechat --regid=carechat --clear-groups"
report "carechatd -t as carechat accepts the installed config" \
    "$($as_carechat /usr/local/sbin/carechatd -t -c "$conf" 2>&1 |
       grep -v ' info ' | grep -v 'is valid$')"
$as_carechat /bin/sh -c 'umask 022 && exec "$0" -c "$1"' \
    /usr/local/sbin/carechatd "$conf" >"$tmp/carechatd.log" 2>&1 &
daemon=$!
PYTHONPATH=$src/tests/integration /usr/bin/python3 \
    "$src/tests/install-client.py" "$port" "$secret" >"$tmp/client.log" 2>&1
served=$?
report "as carechat, the installed carechatd serves a chat" \
    "$([ $served -eq 0 ] || cat "$tmp/client.log" "$tmp/carechatd.log")"
sleep 0.3 # the audit writer syncs every 100 ms
report "what it created is carechat's, with no bit for others" \
    "$(find $V/lib/carechat $V/log/carechat -type f \
           \( ! -user carechat -o -perm /o=rwx \) -exec ls -l {} +
       [ -s $V/log/carechat/audit.log ] || echo "no audit.log")"
kill -TERM $daemon
wait $daemon
stopped=$?
report "it stops with status 0 on SIGTERM" \
    "$([ $stopped -eq 0 ] || echo "status $stopped")"
echo "1..$n"
exit $fail
