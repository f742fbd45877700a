#!/bin/sh
# deps.sh [--test] - install what carechat needs from the distribution's
# packages: Debian/Ubuntu (apt), Fedora (dnf) or Alpine (apk), as root or
# through sudo.
#
#   tests/deps.sh         what building and running need: a C compiler,
#                         autotools, pkg-config and the -dev libraries
#                         (README's first command; seconds, not minutes)
#   tests/deps.sh --test  that, and what the test suite needs: Python's
#                         websockets, PostgreSQL, Redis and Prometheus
#                         servers, clang, Chromium, playwright-core and
#                         axe-core, abigail-tools, the manual page tools,
#                         systemd-analyze (README's test command)
#
# It changes no service of the host: the tests start their own servers on
# free loopback ports, and on Debian the servers it installs are not
# started either (policy-rc.d below).  Fedora and Alpine packages do not
# start services when installed.
set -e
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
TEST=
case "${1:-}" in
--test) TEST=yes ;;
"") ;;
*) echo "usage: tests/deps.sh [--test]" >&2; exit 2 ;;
esac

# Debian's maintainer scripts start a service they install (postgresql,
# redis-server, prometheus) through invoke-rc.d or deb-systemd-invoke,
# and restart one they upgrade as a dependency; both ask
# /usr/sbin/policy-rc.d first, and its exit status 101 means "do not"
# (Debian Policy, /usr/share/doc/init-system-helpers/README.policy-rc.d).
# So while our apt-get runs, a policy-rc.d that answers 101 keeps every
# service as it was: none started, stopped or restarted.  It is ours only
# when there was none (a container image may have its own: left as is),
# and removed when apt-get is done, however it ends.  (tests/setup.sh
# checks this with a stand-in apt-get and another path.)
POLICY=${CC_POLICY_RC_D:-/usr/sbin/policy-rc.d}
MARK="# carechat tests/deps.sh: no service starts while it installs"
policy_on() {
    [ -e "$POLICY" ] && return 0
    printf '#!/bin/sh\n%s\nexit 101\n' "$MARK" |
        $SUDO sh -c "cat > $POLICY && chmod 755 $POLICY"
    trap policy_off EXIT
    trap 'exit 1' INT TERM HUP
}
policy_off() {
    if grep -qs "^$MARK\$" "$POLICY"; then
        $SUDO rm -f "$POLICY"
    fi
}

apt_get() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >/dev/null
}

if command -v apt-get >/dev/null 2>&1; then
    # Refresh the package lists once a day at most.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' \
               -mmin -1440 2>/dev/null | head -1)" ]; then
        $SUDO apt-get update -qq
    fi
    policy_on
    # libcurl4-openssl-dev: the webhook notifier's HTTPS client.
    apt_get build-essential autoconf automake libtool pkg-config \
        libevent-dev libjansson-dev libjwt-dev libsqlite3-dev \
        libinih-dev libssl-dev libpq-dev libhiredis-dev libsystemd-dev \
        libcurl4-openssl-dev python3
    if [ -n "$TEST" ]; then
        # haproxy, redis-sentinel, pg_auto_failover: the high-availability
        # fault tests (tests/fault/test_ha_*.py) start their own on
        # loopback and free ports.
        apt_get python3-websockets ca-certificates abigail-tools \
            postgresql redis-server clang libclang-rt-dev openssl \
            chromium fonts-dejavu-core prometheus mandoc groff-base man-db \
            systemd util-linux haproxy redis-sentinel pg-auto-failover-cli \
            postgresql-15-auto-failover
        command -v npm >/dev/null 2>&1 || apt_get nodejs npm
    fi
    policy_off
elif command -v dnf >/dev/null 2>&1; then
    $SUDO dnf install -y gcc make autoconf automake libtool pkgconf \
        libevent-devel jansson-devel libjwt-devel sqlite-devel inih-devel \
        openssl-devel libpq-devel hiredis-devel systemd-devel \
        libcurl-devel python3
    # redis ships redis-sentinel.  pg_auto_failover is not in Fedora (the
    # PostgreSQL project's own repository has it): without it the
    # pg_auto_failover cases of tests/fault/test_ha_postgres.py skip.
    [ -z "$TEST" ] ||
        $SUDO dnf install -y python3-websockets postgresql-server redis \
            clang compiler-rt openssl chromium nodejs npm \
            golang-github-prometheus mandoc groff-base man-db systemd \
            util-linux haproxy
elif command -v apk >/dev/null 2>&1; then
    # Alpine has no systemd: carechatd builds without sd_notify there.
    $SUDO apk add build-base autoconf automake libtool pkgconf \
        libevent-dev jansson-dev libjwt-dev sqlite-dev inih-dev \
        openssl-dev libpq-dev hiredis-dev curl-dev python3
    # redis ships redis-sentinel; pg_auto_failover is not packaged for
    # Alpine: the pg_auto_failover cases of test_ha_postgres.py skip.
    [ -z "$TEST" ] ||
        $SUDO apk add py3-websockets postgresql redis clang compiler-rt \
            openssl chromium nodejs npm prometheus mandoc groff haproxy
else
    echo "deps.sh: unknown package manager; install the packages listed" \
         "in doc/development.md by hand" >&2
    exit 1
fi

# The demo page's browser tests drive Chromium with playwright-core (npm;
# it never downloads a browser of its own) and check the page with
# axe-core.  The versions are the ones in tests/browser/package.json.
if [ -n "$TEST" ] && command -v npm >/dev/null 2>&1; then
    for mod in playwright-core@1.57.0 axe-core@4.14.1; do
        dir="$(npm root -g)/${mod%@*}"
        if ! grep -qs "\"version\": \"${mod#*@}\"" "$dir/package.json"; then
            $SUDO npm install -g --no-audit --no-fund --loglevel=error \
                "$mod" >/dev/null
        fi
    done
fi
