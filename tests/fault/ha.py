"""ha - the engines' own high availability, started by a test on
loopback: a pg_auto_failover formation (a monitor, a primary and a
synchronous secondary), a Redis master with a replica and three
sentinels, and HAProxy in front of carechatd nodes.  Each listens on
127.0.0.1 only, on free ports, in a temporary directory that close()
removes; nothing of the host's own services is touched.

A missing package is a skip with the reason (a failure under CI=true).
The failure-detection settings are tuned down so a test case takes
seconds, not minutes; doc/high-availability.md gives the real defaults.
CC_HA_DEFAULTS=1 runs the engines on their own defaults instead (for the
guide's figures): the cases then wait, and allow log lines and CPU,
SCALE times as long.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile

import ccharness as h
import faults as f

PG_BIN = "/usr/lib/postgresql/15/bin"
DEFAULTS = bool(os.environ.get("CC_HA_DEFAULTS"))
SCALE = 6 if DEFAULTS else 1


def _wait(pred, timeout, what):
    return f.wait_until(pred, timeout, what, step=0.2)


def _killpg(proc):
    """SIGKILL proc's process group (it was started in a session of its
    own), then reap it."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


# ------------------------------------------------------------ PostgreSQL
class PgFormation:
    """A pg_auto_failover formation on loopback: a monitor and `nodes`
    PostgreSQL nodes (the first becomes the primary, the others
    synchronous secondaries), each run by its own `pg_autoctl` keeper in
    a session of its own, as the `postgres` user when root (pg_autoctl
    and PostgreSQL refuse root).

    The monitor's health checks are tuned so a node that is gone is seen
    in about 3 s (its defaults take 20 to 50 s: the guide says which);
    the primary checkpoints without spreading, so a standby's
    pg_basebackup does not wait a minute and a half for it."""

    MONITOR_TUNING = {
        "pgautofailover.health_check_period": "1000",
        "pgautofailover.health_check_timeout": "1000",
        "pgautofailover.health_check_max_retries": "1",
        "pgautofailover.health_check_retry_delay": "500",
        "pgautofailover.node_considered_unhealthy_timeout": "3000",
        "pgautofailover.primary_demote_timeout": "5000",
    }

    def __init__(self, nodes=2, dbname="carechat"):
        for tool in ("/usr/bin/pg_autoctl", os.path.join(PG_BIN, "pg_ctl"),
                     "/usr/share/postgresql/15/extension/"
                     "pgautofailover.control"):
            if not os.path.exists(tool):
                h.skip_or_fail(
                    "%s not installed (Debian: apt-get install "
                    "pg-auto-failover-cli postgresql-15-auto-failover)" %
                    tool)
        self.user = None
        self.tmp = tempfile.mkdtemp(prefix="carechat-pgaf-")
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                h.skip_or_fail("running as root and there is no "
                               "`postgres` user to run pg_autoctl as")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            self.user = "postgres"
        self.dbname = dbname
        self.sock = os.path.join(self.tmp, "sock")
        self.env = dict(os.environ,
                        XDG_CONFIG_HOME=os.path.join(self.tmp, "config"),
                        XDG_DATA_HOME=os.path.join(self.tmp, "share"),
                        XDG_RUNTIME_DIR=os.path.join(self.tmp, "run"),
                        PGHOST=self.sock, PGCONNECT_TIMEOUT="5")
        self.pg_ctl = self._bindir()
        self.procs = {}      # name -> the keeper's Popen
        self.ports = {}      # name -> PostgreSQL port
        self.monitor_port = h.free_port()
        try:
            self._monitor()
            for i in range(1, nodes + 1):
                self._node("node%d" % i, first=(i == 1))
            self.wait_states({"node1": "primary"} | {
                "node%d" % i: "secondary" for i in range(2, nodes + 1)},
                timeout=90)
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------- helpers
    def _bindir(self):
        """A bin directory for pg_autoctl (--pgctl): PostgreSQL's own
        programs, but postgres itself puts its socket in our directory,
        not the host's /var/run/postgresql (pg_autoctl gives it no -k,
        and a node killed by a test could not remove it there).  The
        directories pg_autoctl wants (XDG_*) are made here, the
        runtime one private, or it falls back to /tmp/pg_autoctl."""
        bindir = os.path.join(self.tmp, "bin")
        for d in (bindir, self.sock, self.env["XDG_RUNTIME_DIR"]):
            os.mkdir(d, 0o700)
            if self.user:
                pw = pwd.getpwnam(self.user)
                os.chown(d, pw.pw_uid, pw.pw_gid)
        for name in os.listdir(PG_BIN):
            if name != "postgres":
                os.symlink(os.path.join(PG_BIN, name),
                           os.path.join(bindir, name))
        wrapper = os.path.join(bindir, "postgres")
        with open(wrapper, "w") as script:
            script.write('#!/bin/sh\ncase "$1" in --*) exec %s "$@";; esac\n'
                         'exec %s -k %s "$@"\n' % (
                             os.path.join(PG_BIN, "postgres"),
                             os.path.join(PG_BIN, "postgres"), self.sock))
        os.chmod(wrapper, 0o755)
        return os.path.join(bindir, "pg_ctl")

    def _argv(self, argv):
        return (["runuser", "-u", self.user, "--"] if self.user else []) + \
            argv

    def autoctl(self, *args, timeout=90, check=True):
        """Run `pg_autoctl args...` against the monitor; its stdout."""
        r = subprocess.run(self._argv(["pg_autoctl"] + list(args)),
                           env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("pg_autoctl %s failed:\n%s" % (
                " ".join(args), r.stderr.decode(errors="replace")[-3000:]))
        return r.stdout.decode(errors="replace")

    def psql(self, port, sql, dbname="postgres"):
        r = subprocess.run(self._argv(
            [os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-q", "-v",
             "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port), "-U",
             "postgres", "-d", dbname, "-c", sql]), env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql -p %d %r:\n%s" % (port, sql,
                                                       r.stdout.decode()))
        return r.stdout.decode().strip()

    def _spawn(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen(
            self._argv(argv), env=self.env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True)
        log.close()

    def _monitor(self):
        pgdata = os.path.join(self.tmp, "monitor")
        self.autoctl("create", "monitor", "--pgdata", pgdata, "--pgport",
                     str(self.monitor_port), "--pgctl", self.pg_ctl,
                     "--hostname",
                     "127.0.0.1", "--listen", "127.0.0.1", "--auth",
                     "trust", "--no-ssl")
        self._spawn("monitor", ["pg_autoctl", "run", "--pgdata", pgdata])
        _wait(lambda: self._ping(self.monitor_port, "pg_auto_failover"),
              30, "the monitor")
        if DEFAULTS:
            return
        for name, value in self.MONITOR_TUNING.items():
            self.psql(self.monitor_port, "ALTER SYSTEM SET %s = %s" % (
                name, value), "pg_auto_failover")
        self.psql(self.monitor_port, "SELECT pg_reload_conf()",
                  "pg_auto_failover")

    def monitor_uri(self):
        return "postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover" \
               "?sslmode=disable" % self.monitor_port

    def _ping(self, port, dbname):
        r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-q", "-h",
                            "127.0.0.1", "-p", str(port), "-d", dbname],
                           timeout=10)
        return r.returncode == 0

    def _node(self, name, first):
        port = self.ports[name] = h.free_port()
        self._spawn(name, [
            "pg_autoctl", "create", "postgres", "--pgdata",
            os.path.join(self.tmp, name), "--pgport", str(port), "--pgctl",
            self.pg_ctl, "--hostname", "127.0.0.1",
            "--listen", "127.0.0.1", "--auth", "trust", "--no-ssl",
            "--dbname", self.dbname, "--name", name, "--monitor",
            self.monitor_uri(), "--run"])
        if not first:
            return
        self.wait_states({name: "single"}, timeout=60)
        # Tests, not the test cluster's durability: no fsync, and a
        # checkpoint that is not spread (pg_basebackup waits for one).
        for stmt in ("ALTER SYSTEM SET fsync = off",
                     "ALTER SYSTEM SET checkpoint_completion_target = 0",
                     "SELECT pg_reload_conf()", "CHECKPOINT"):
            self.psql(port, stmt)

    # ------------------------------------------------------------ state
    def states(self):
        """{node name: (reported state, assigned state)} from the
        monitor."""
        try:
            out = self.autoctl("show", "state", "--monitor",
                               self.monitor_uri(), "--json", timeout=20)
            rows = json.loads(out)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired):
            return {}
        return {r["nodename"]: (r["current_group_state"],
                                r["assigned_group_state"]) for r in rows}

    def wait_states(self, want, timeout=60):
        """Wait until each named node reports and is assigned its state."""
        def ok():
            got = self.states()
            return all(got.get(n) == (s, s) for n, s in want.items())
        try:
            return _wait(ok, timeout, "the formation")
        except AssertionError as e:
            raise AssertionError("%s to reach %s; now %s" % (
                e, want, self.states())) from None

    def primary(self):
        """The name of the node the monitor holds as primary, or None."""
        for name, (rep, ass) in self.states().items():
            if rep == ass == "primary" or (rep, ass) == ("wait_primary",
                                                          "wait_primary"):
                return name
        return None

    def uri(self, names=None):
        """libpq's multi-host URI for carechat, the order of `names` (all
        nodes by default), target_session_attrs=read-write."""
        names = names or sorted(self.ports)
        return "postgresql://postgres@%s/%s?target_session_attrs=" \
               "read-write&connect_timeout=2" % (
                   ",".join("127.0.0.1:%d" % self.ports[n] for n in names),
                   self.dbname)

    # ----------------------------------------------------------- faults
    def perform_failover(self):
        """`pg_autoctl perform failover`: waits until it is done."""
        return self.autoctl("perform", "failover", "--monitor",
                            self.monitor_uri(), "--wait", "60", timeout=90)

    def kill_node(self, name):
        """The node is lost: SIGKILL to its keeper and every process of
        its PostgreSQL (one session), never restarted."""
        _killpg(self.procs.pop(name, None))
        pid_file = os.path.join(self.tmp, name, "postmaster.pid")
        try:
            with open(pid_file) as f:
                os.kill(int(f.readline()), signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def log_tail(self, name, n=20):
        try:
            with open(os.path.join(self.tmp, name + ".log"), "rb") as f:
                return f.read().decode(errors="replace").splitlines()[-n:]
        except OSError:
            return []

    def close(self):
        for name in list(self.procs):
            if name != "monitor":
                self.autoctl("stop", "--pgdata", os.path.join(self.tmp, name),
                             "--immediate", check=False, timeout=30)
        if "monitor" in self.procs:
            self.autoctl("stop", "--pgdata", os.path.join(self.tmp,
                                                          "monitor"),
                         "--immediate", check=False, timeout=30)
        for name in list(self.procs):
            _killpg(self.procs.pop(name))
        shutil.rmtree(self.tmp, ignore_errors=True)


class PgStandby(h.PgCluster):
    """A streaming standby of a ccharness.PgCluster (pg_basebackup -R) on
    its own loopback port (port, or a free one); promote() makes it a
    primary.  With the primary made read-only first, this is a
    switchover that leaves the old primary up with its sessions open
    (what a client may see of Patroni's demotion for a moment)."""

    def __init__(self, primary, port=None):
        self.primary = primary
        self.bindir, self.user, self.n_db = primary.bindir, primary.user, 0
        self.tmp = tempfile.mkdtemp(prefix="carechat-pgstandby-")
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.tmp, "data")
        self.port = port or h.free_port()
        self._pg(["pg_basebackup", "-h", "127.0.0.1", "-p",
                  str(primary.port), "-U", "postgres", "-D", self.data,
                  "-R", "-X", "stream", "-c", "fast"])
        self.start()

    def caught_up(self):
        """True once the standby replayed all the primary wrote."""
        want = self.primary.psql(self.primary.conninfo(),
                                 "SELECT pg_current_wal_lsn()").strip()
        return self.psql(self.conninfo(), "SELECT pg_last_wal_replay_lsn()"
                         " >= '%s'" % want).strip() == "t"

    def promote(self):
        self._pg(["pg_ctl", "-D", self.data, "-w", "-t", "60", "promote"])


# ----------------------------------------------------------------- Redis
def resp(port, *args, password=None, timeout=5):
    """One command to the Redis (or sentinel) on 127.0.0.1:port: its
    reply as Python (str, int, None, list; an error reply raises)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        for cmd in ([("AUTH", password)] if password else []) + [args]:
            s.sendall(b"*%d\r\n" % len(cmd) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode())
                for a in map(str, cmd)))
            got = _read_reply(f)
        return got


def _read_reply(f):
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if rest == "-1":
            return None
        data = f.read(int(rest) + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        if rest == "-1":
            return None
        return [_read_reply(f) for _ in range(int(rest))]
    raise ValueError("not RESP: %r" % line)


class RedisSentinels:
    """A Redis master, one replica and three sentinels (quorum 2) on
    loopback, the sentinels behind `password`.  The sentinels call the
    master down after 1 s without an answer (down-after-milliseconds;
    30 s by default) and give a failover 3 s (failover-timeout; 3 min by
    default)."""

    NAME = "carechat"

    def __init__(self, password="sentinel-secret-1234"):
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(self.binary):
            h.skip_or_fail("redis-server not installed (Debian: apt-get "
                           "install redis-server)")
        if not (shutil.which("redis-sentinel") or
                os.path.exists("/usr/bin/redis-sentinel")):
            h.skip_or_fail("redis-sentinel not installed (Debian: apt-get "
                           "install redis-sentinel)")
        self.password = password
        self.tmp = tempfile.mkdtemp(prefix="carechat-sentinel-")
        self.procs = {}
        self.ports = {}
        try:
            self._redis("master")
            self._redis("replica", "--replicaof", "127.0.0.1",
                        str(self.ports["master"]))
            _wait(lambda: self._replicated(), 20, "the replica to sync")
            for i in range(1, 4):
                self._sentinel("sentinel%d" % i)
            _wait(self._sentinels_ready, 30, "the sentinels to find the "
                  "replica and each other")
        except BaseException:
            self.close()
            raise

    def _spawn(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".out"), "ab")
        self.procs[name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        log.close()

    def _redis(self, name, *extra):
        port = self.ports[name] = h.free_port()
        self._spawn(name, [self.binary, "--port", str(port), "--bind",
                           "127.0.0.1", "--save", "", "--appendonly", "no",
                           "--dir", self.tmp, "--dbfilename", name + ".rdb",
                           "--logfile", os.path.join(self.tmp,
                                                     name + ".log")]
                    + list(extra))
        _wait(lambda: self._ping(port), 15, "redis %s" % name)

    def _ping(self, port, password=None):
        try:
            return resp(port, "PING", password=password) == "PONG"
        except (OSError, EOFError, RuntimeError):
            return False

    def _replicated(self):
        info = resp(self.ports["master"], "INFO", "replication")
        return "connected_slaves:1" in info

    def _sentinel(self, name):
        port = self.ports[name] = h.free_port()
        conf = os.path.join(self.tmp, name + ".conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"
                    "requirepass %s\nsentinel sentinel-pass %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n" % (
                        port, self.tmp,
                        os.path.join(self.tmp, name + ".log"),
                        self.password, self.password, self.NAME,
                        self.ports["master"]))
            if not DEFAULTS:
                f.write("sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 3000\n" % (
                            self.NAME, self.NAME))
        self._spawn(name, [self.binary, conf, "--sentinel"])
        _wait(lambda: self._ping(port, self.password), 15,
              "sentinel %s" % name)

    def sentinel_ports(self):
        return [self.ports["sentinel%d" % i] for i in range(1, 4)]

    def _sentinels_ready(self):
        for port in self.sentinel_ports():
            m = resp(port, "SENTINEL", "master", self.NAME,
                     password=self.password)
            fields = dict(zip(m[::2], m[1::2]))
            if fields.get("num-slaves") != "1" or \
                    fields.get("num-other-sentinels") != "2":
                return False
        return True

    def sentinels(self):
        """The `sentinels` value for carechat.conf."""
        return ",".join("127.0.0.1:%d" % p for p in self.sentinel_ports())

    def master_says(self, port=None):
        """The master's port as a sentinel says (the first by default)."""
        got = resp(port or self.sentinel_ports()[0], "SENTINEL",
                   "get-master-addr-by-name", self.NAME,
                   password=self.password)
        return int(got[1]) if got else None

    def kill(self, name):
        """SIGKILL one of the servers, for good."""
        _killpg(self.procs.pop(name, None))

    def close(self):
        for name in list(self.procs):
            _killpg(self.procs.pop(name))
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------- HAProxy
class HAProxy:
    """HAProxy on a free loopback port in front of carechatd nodes, in
    doc/high-availability.md's configuration: TCP mode (HTTP and
    WebSocket alike); the nodes that answer GET /readyz (checked every
    500 ms) take the connections, and only when none does (the database
    or Redis failing over for all of them) those that answer GET
    /healthz; a connection a dead node refuses goes to another
    (`option redispatch`)."""

    def __init__(self, servers):
        self.binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(self.binary):
            h.skip_or_fail("haproxy not installed (Debian: apt-get install "
                           "haproxy)")
        self.tmp = tempfile.mkdtemp(prefix="carechat-haproxy-")
        self.port = h.free_port()
        self.conf = os.path.join(self.tmp, "haproxy.cfg")
        with open(self.conf, "w") as f:
            f.write(self.config(servers))
        r = subprocess.run([self.binary, "-c", "-q", "-f", self.conf],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise RuntimeError("haproxy -c:\n" + r.stdout.decode())
        log = open(os.path.join(self.tmp, "haproxy.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-db", "-f", self.conf], stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        _wait(self._up, 15, "haproxy")

    def config(self, servers):
        lines = ["global", "    maxconn 4000", "",
                 "defaults", "    mode tcp", "    timeout connect 2s",
                 "    timeout client 60s", "    timeout server 60s",
                 "    timeout tunnel 1h", "    retries 3",
                 "    option redispatch", "",
                 "frontend chat", "    bind 127.0.0.1:%d" % self.port,
                 "    use_backend ready if { nbsrv(ready) gt 0 }",
                 "    default_backend alive"]
        for name, path in (("ready", "/readyz"), ("alive", "/healthz")):
            lines += ["", "backend " + name, "    balance roundrobin",
                      "    option httpchk GET " + path,
                      "    http-check expect status 200",
                      "    default-server inter 500ms fall 2 rise 2"]
            lines += ["    server node%d 127.0.0.1:%d check" % (i + 1, s.port)
                      for i, s in enumerate(servers)]
        return "\n".join(lines) + "\n"

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def close(self):
        _killpg(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)
