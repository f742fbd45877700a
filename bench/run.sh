#!/bin/sh
# run.sh - reproduce doc/benchmarks.md: start carechatd from the build
# tree on its embedded defaults (SQLite, HS256, local fan-out) with a
# throwaway database, run carechat-bench's scenarios against it, print
# each command and its JSON.  `make bench` runs it.
#   BENCH_QUICK=1  shorter runs (a few seconds each)
set -eu
builddir=${CC_BUILDDIR:-$(pwd)}
tmp=$(mktemp -d /tmp/carechat-bench-XXXXXX)
secret=bench-secret-0123456789abcdef0123456789
port=${BENCH_PORT:-18123}
quick=${BENCH_QUICK:-}
long=30; mid=10; idle_conns=50000
if [ -n "$quick" ]; then long=3; mid=3; idle_conns=5000; fi

# 50,000 sockets on each side need the descriptors; where the hard
# limit is lower (containers), the idle run uses what there is.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fds=$(ulimit -n)
if [ "$fds" != unlimited ] && [ "$idle_conns" -gt $((fds - 1000)) ]; then
    echo "# open files limited to $fds here: idle run with $((fds - 1000))"
    idle_conns=$((fds - 1000))
fi

# An ECDSA P-256 certificate for 127.0.0.1, for the wss rows (on
# $tls_port, every server); none without the openssl command.
tls_port=$((port + 2))
tls_conf=
if command -v openssl >/dev/null 2>&1 &&
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
       -keyout "$tmp/tls.key" -out "$tmp/tls.pem" -days 2 \
       -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
       >/dev/null 2>&1; then
    tls_conf="tls_listen = 127.0.0.1:$tls_port
tls_certificate = $tmp/tls.pem
tls_key = $tmp/tls.key"
fi

# start_server THREADS: a fresh carechatd (empty database) on $port.
start_server() {
    rm -f "$tmp"/carechat.db*
    cat >"$tmp/carechat.conf" <<CONF
[server]
listen = 127.0.0.1:$port
plugin_dir = $builddir/plugins/.libs
log_level = warn
max_connections = 200000
threads = $1
$tls_conf
[storage]
plugin = sqlite
path = $tmp/carechat.db
[auth]
plugin = jwt
secret = $secret
[fanout]
plugin = local
CONF
    "$builddir/carechatd" -c "$tmp/carechat.conf" 2>>"$tmp/carechatd.log" &
    pid=$!
    i=0
    until "$builddir/carechat-bench" -p "$port" -s "$secret" -c 1 -m 1 \
          -d 0.1 --idle >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/carechatd.log"; exit 1; }
        sleep 0.1
    done
}

stop_server() {
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}

pid=
trap 'stop_server; rm -rf "$tmp"' EXIT
start_server 1

run() {
    echo "\$ carechat-bench $*"
    "$builddir/carechat-bench" -p "$port" -s "$secret" --pid "$pid" \
        --json "$@" || echo "(exit status $?)"
    echo
}

echo "# machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' \
/proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "# throughput: as fast as possible, 200 connections over 100 chats"
run -c 200 -m 100 -w 16 -d "$long"
echo "# latency at a fixed 5,000 messages/s"
run -c 200 -m 100 -r 5000 -d "$mid"
# The harness floor: the same latency command against a peer that only
# hands each message back to its chat (tests/bench/echopeer: no storage,
# no authentication), so the row above stands beside what the bench and
# loopback cost alone.
floor_port=$((port + 1))
"$builddir/tests/bench/echopeer" "$floor_port" &
floor_pid=$!
sleep 0.2
echo "# harness floor: the latency command against tests/bench/echopeer"
echo "\$ carechat-bench -p $floor_port -c 200 -m 100 -r 5000 -d $mid"
"$builddir/carechat-bench" -p "$floor_port" -s unused --json -c 200 \
    -m 100 -r 5000 -d "$mid" || echo "(exit status $?)"
echo
kill "$floor_pid"; wait "$floor_pid" 2>/dev/null || true
echo "# authenticated handshakes per second"
run --handshakes -c 2000 -m 1000 --pending 128 -d "$mid"
echo "# idle connections and the server's memory per connection"
run --idle -c "$idle_conns" -m "$((idle_conns / 2))" \
    --source 127.0.0.1-127.0.0.8 --pending 512 -d 5

# The same two loads over wss (TLS 1.3 here), on a fresh server.
if [ -n "$tls_conf" ]; then
    stop_server
    start_server 1
    echo "# wss: as fast as possible, 200 connections over 100 chats"
    run --tls --cafile "$tmp/tls.pem" -p "$tls_port" -c 200 -m 100 -w 16 \
        -d "$mid"
    echo "# wss: latency at a fixed 5,000 messages/s"
    run --tls --cafile "$tmp/tls.pem" -p "$tls_port" -c 200 -m 100 \
        -r 5000 -d "$mid"
else
    echo "# wss rows skipped: no openssl command for a certificate"
fi

# threads = N: one loop for plugins, REST and handshakes, N-1 for the
# WebSockets.  Two loads on fresh servers: 8 devices per chat (the SQLite
# writer is the limit), and 40 per chat with 100 senders (the loop that
# writes the deliveries is).  This machine's cores bound N.
for t in 1 2; do
    stop_server
    start_server "$t"
    echo "# threads = $t: 400 connections over 50 chats (8 per chat)"
    run -c 400 -m 50 -w 8 -d "$mid"
    stop_server
    start_server "$t"
    echo "# threads = $t: 2000 connections over 50 chats, 100 sending"
    run -c 2000 -m 50 --senders 100 -w 8 --pending 256 -d "$mid"
done
