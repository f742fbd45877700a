#!/bin/sh
# Generate ./configure from a git checkout.  Needs autoconf, automake,
# libtool and pkg-config (Debian: autoconf automake libtool pkg-config).
set -e
cd "$(dirname "$0")"
autoreconf --install --force --warnings=all
