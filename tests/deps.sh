#!/bin/sh
# Install what carechat needs to build and test, from the distribution's
# packages.  Debian/Ubuntu (apt), Fedora (dnf) and Alpine (apk).  Runs as
# root, or through sudo.
set -e
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists once a day at most.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
        $SUDO apt-get update -qq
    fi
    $SUDO apt-get install -y -qq --no-install-recommends \
        build-essential autoconf automake libtool pkg-config \
        libevent-dev libjansson-dev libjwt-dev libsqlite3-dev \
        libinih-dev libssl-dev libpq-dev libhiredis-dev libsystemd-dev \
        libcurl4-openssl-dev \
        python3 python3-websockets ca-certificates abigail-tools \
        postgresql redis-server clang libclang-rt-dev openssl \
        chromium fonts-dejavu-core prometheus mandoc groff-base man-db \
        haproxy redis-sentinel pg-auto-failover-cli \
        postgresql-15-auto-failover \
        >/dev/null
    # The high-availability fault tests (tests/fault/test_ha_*.py) start
    # their own HAProxy, sentinels and pg_auto_failover nodes on loopback
    # and free ports; the services these packages may start where systemd
    # runs are not used (Debian's redis-sentinel listens on every address,
    # on 26379, with protected-mode off).
    # The package may start a Prometheus of its own on every address:
    # the tests start theirs on loopback.
    if command -v systemctl >/dev/null 2>&1 &&
            systemctl is-active --quiet prometheus 2>/dev/null; then
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
    command -v npm >/dev/null 2>&1 ||
        $SUDO apt-get install -y -qq --no-install-recommends nodejs npm \
            >/dev/null
elif command -v dnf >/dev/null 2>&1; then
    $SUDO dnf install -y gcc make autoconf automake libtool pkgconf \
        libevent-devel jansson-devel libjwt-devel sqlite-devel inih-devel \
        openssl-devel libpq-devel hiredis-devel systemd-devel \
        libcurl-devel python3 \
        python3-websockets \
        postgresql-server redis clang compiler-rt openssl chromium nodejs \
        npm golang-github-prometheus mandoc groff-base man-db haproxy
    # redis ships redis-sentinel.  pg_auto_failover is not in Fedora (the
    # PostgreSQL project's own repository has it): without it the
    # pg_auto_failover cases of tests/fault/test_ha_postgres.py skip.
elif command -v apk >/dev/null 2>&1; then
    # Alpine has no systemd: carechatd builds without sd_notify there.
    $SUDO apk add build-base autoconf automake libtool pkgconf \
        libevent-dev jansson-dev libjwt-dev sqlite-dev inih-dev \
        openssl-dev libpq-dev hiredis-dev curl-dev python3 py3-websockets \
        postgresql redis clang compiler-rt openssl chromium nodejs npm \
        prometheus mandoc groff haproxy
    # redis ships redis-sentinel; pg_auto_failover is not packaged for
    # Alpine: the pg_auto_failover cases of test_ha_postgres.py skip.
else
    echo "deps.sh: unknown package manager; install the packages listed" \
         "in README.md by hand" >&2
    exit 1
fi
# The demo page's browser test drives Chromium with playwright-core (npm;
# it never downloads a browser of its own).  The version is the one in
# tests/browser/package.json.
PW=1.57.0
if command -v npm >/dev/null 2>&1; then
    pwdir="$(npm root -g)/playwright-core"
    if ! grep -qs "\"version\": \"$PW\"" "$pwdir/package.json"; then
        $SUDO npm install -g --no-audit --no-fund --loglevel=error \
            "playwright-core@$PW" >/dev/null
    fi
fi
