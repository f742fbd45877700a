#!/bin/sh
# run.sh - reproduce doc/benchmarks.md: start carechatd from the build
# tree on its embedded defaults (SQLite, HS256, local fan-out) with a
# throwaway database, run carechat-bench's scenarios against it, print
# each command and its JSON.  `make bench` runs it.
#   BENCH_QUICK=1  shorter runs (a few seconds each)
set -eu
umask 077 # the configs hold the secret: carechatd refuses them readable
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

# start_server THREADS: a fresh carechatd (empty database in $dbdir) on
# $port.
dbdir=$tmp
start_server() {
    rm -f "$dbdir"/carechat.db*
    cat >"$tmp/carechat.conf" <<CONF
[server]
listen = 127.0.0.1:$port
plugin_dir = $builddir/plugins/.libs
log_level = warn
max_connections = 200000
threads = $1
# A flood from each user: the per-user limit (on by default) is not
# what is measured.
message_rate = 0
$tls_conf
[storage]
plugin = sqlite
path = $dbdir/carechat.db
[auth]
plugin = jwt
secret = $secret
[fanout]
plugin = local
CONF
    "$builddir/carechatd" -c "$tmp/carechat.conf" 2>>"$tmp/carechatd.log" &
    pid=$!
    wait_ready "$port"
}

# wait_ready PORT: until a WebSocket opens there (10 s at most).
wait_ready() {
    i=0
    until "$builddir/carechat-bench" -p "$1" -s "$secret" -c 1 -m 1 \
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

# Two nodes on PostgreSQL and Redis (the last rows) and what they run on.
pid2=
pgdata=
redis_pid=
pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop_all() {
    stop_server
    [ -z "$pid2" ] || { kill "$pid2" 2>/dev/null; wait "$pid2" 2>/dev/null; }
    [ -z "$redis_pid" ] ||
        { kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; }
    [ -z "$pgdata" ] || pg_run "$pgbin/pg_ctl" -D "$pgdata" -m immediate \
        stop >/dev/null 2>&1 || true
    pid2= redis_pid= pgdata=
}

pid=
shm=
trap 'stop_all; rm -rf "$tmp" ${shm:+"$shm"}' EXIT
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

# The latency command again with the database in memory (/dev/shm, a
# tmpfs): the disk's flushes (the WAL checkpoints' fsyncs) left out, as
# fsync = off does for PostgreSQL below.  A fresh server.
if [ -d /dev/shm ] && shm=$(mktemp -d /dev/shm/carechat-bench-XXXXXX); then
    stop_server
    dbdir=$shm
    start_server 1
    echo "# latency at a fixed 5,000 messages/s, the database in memory (/dev/shm)"
    run -c 200 -m 100 -r 5000 -d "$mid"
    stop_server
    rm -rf "$shm"
    shm= dbdir=$tmp
else
    echo "# in-memory latency row skipped: no /dev/shm"
fi

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
    echo "# wss: idle connections and the server's memory per connection"
    run --tls --cafile "$tmp/tls.pem" -p "$tls_port" --idle \
        -c "$((idle_conns / 5))" -m "$((idle_conns / 10))" --pending 256 -d 5
    echo "# TLS 1.3 handshakes per second (ECDSA P-256), each with its WebSocket handshake"
    run --tls --cafile "$tmp/tls.pem" -p "$tls_port" --handshakes -c 2000 \
        -m 1000 --pending 128 -d "$mid"
    echo "# resumed TLS 1.3 handshakes per second (--resume: a reconnecting phone offers its last session)"
    run --tls --cafile "$tmp/tls.pem" -p "$tls_port" --handshakes --resume \
        -c 2000 -m 1000 --pending 128 -d "$mid"
    if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/rsa.key" \
           -out "$tmp/rsa.pem" -days 2 -subj /CN=127.0.0.1 \
           -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1; then
        stop_server
        ecdsa_conf=$tls_conf
        tls_conf="tls_listen = 127.0.0.1:$tls_port
tls_certificate = $tmp/rsa.pem
tls_key = $tmp/rsa.key"
        start_server 1
        echo "# TLS 1.3 handshakes per second (RSA 2048), each with its WebSocket handshake"
        run --tls --cafile "$tmp/rsa.pem" -p "$tls_port" --handshakes \
            -c 2000 -m 1000 --pending 128 -d "$mid"
        tls_conf=$ecdsa_conf
    fi
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

# Two nodes, each chat's patient on node A and its professional on node
# B, one PostgreSQL (throwaway, fsync and synchronous_commit off: this
# measures carechatd, not the disk) and one Redis, on loopback.  One loop
# per node (threads = 1): two nodes, PostgreSQL, Redis and the bench on
# two cores, where a second loop per node only adds hand-offs (38,000-
# 48,000/s against 31,000-37,000 with threads = 2, doc/benchmarks.md).
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$pgbin" ] && command -v redis-server >/dev/null 2>&1 &&
        [ -e "$builddir/plugins/.libs/storage-postgres.so" ] &&
        [ -e "$builddir/plugins/.libs/fanout-redis.so" ]; then
    stop_server
    pgport=$((port + 4)); rport=$((port + 5)); port2=$((port + 6))
    pgdata=$tmp/pg
    mkdir -p "$pgdata"
    [ "$(id -u)" != 0 ] || chown postgres "$tmp" "$pgdata"
    pg_run "$pgbin/initdb" -D "$pgdata" -A trust -U postgres -E UTF8 \
        --locale=C --no-sync >/dev/null
    pg_run "$pgbin/pg_ctl" -D "$pgdata" -l "$tmp/pg.log" -w -o \
        "-p $pgport -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null
    redis-server --port "$rport" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$tmp" >/dev/null 2>&1 &
    redis_pid=$!
    for n in a b; do
        np=$port; [ "$n" = a ] || np=$port2
        cat >"$tmp/$n.conf" <<CONF
[server]
listen = 127.0.0.1:$np
plugin_dir = $builddir/plugins/.libs
log_level = warn
max_connections = 200000
threads = 1
message_rate = 0
[storage]
plugin = postgres
conninfo = host=127.0.0.1 port=$pgport user=postgres dbname=postgres
[auth]
plugin = jwt
secret = $secret
[fanout]
plugin = redis
address = 127.0.0.1:$rport
CONF
    done
    i=0
    until redis-cli -p "$rport" ping >/dev/null 2>&1 || [ $i -gt 50 ]; do
        i=$((i + 1)); sleep 0.1
    done
    "$builddir/carechatd" -c "$tmp/a.conf" 2>>"$tmp/carechatd.log" &
    pid=$!
    "$builddir/carechatd" -c "$tmp/b.conf" 2>>"$tmp/carechatd.log" &
    pid2=$!
    wait_ready "$port"
    wait_ready "$port2"
    nodes="-H 127.0.0.1:$port -H 127.0.0.1:$port2"
    echo "# two nodes (threads = 1), PostgreSQL, Redis; each chat across both: as fast as possible"
    run $nodes --pid "$pid2" -c 400 -m 200 -w 16 -d "$mid"
    echo "# two nodes: latency at a fixed 2,000 messages/s"
    run $nodes --pid "$pid2" -c 400 -m 200 -r 2000 -d "$mid"
    stop_all
else
    echo "# two-node rows skipped: PostgreSQL, redis-server or their plugins missing"
fi
