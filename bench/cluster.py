#!/usr/bin/env python3
"""Cluster benchmark (issue 21, section 7): room fan-out across nodes.

    python3 bench/cluster.py            # full run: release builds, 1000 members, a few minutes
    python3 bench/cluster.py --quick    # smoke run: debug builds, 50 members; exits 1 if a column fails

One room, one sender, M members, four columns side by side in one run:

  memory       Switchboard without --cluster (one node)
  cluster-1    Switchboard --cluster redis://…, one node
  cluster-2    Switchboard --cluster, two nodes, M/2 members on each (the sender on the first)
  socketio-2   Socket.IO 4 + @socket.io/redis-adapter, two node processes, M/2 + M/2

Every column gets a fresh redis-server of its own (a free port, no
persistence, a temporary directory; the memory column's is started too and
must see no command). Servers and Redis run pinned to CPU 0, the load
generator to CPU 1 (taskset). Pass 1 measures each column's saturation; the
fixed offered rates are then 25/50/75 % of the slowest column's, and each
round after that measures saturation and the fixed rates in one session
(`loadgen fanout --offered 0,r1,r2,r3`). Server CPU is summed over the
column's server processes, Redis's CPU (from /proc/<pid>/stat) is reported
apart, and Redis commands per kept room message come from INFO commandstats
read between the load generator's marks (after every member joined, after
the last phase), divided by the messages it sent.

Each column is checked to run what its name says before its figures count:
Switchboard's start line (`serving rules=… messages_per_sec=0 …`), its
`; node <id>` and /healthz's `"cluster"` (`"off"` / `"ok"` with the node id);
Socket.IO's `socketio redis adapter on: … adapter RedisAdapter) pid=<pid>`
line from the measured process; Redis's commandstats moved for every
cluster column and did not for memory; every kept message was appended to
the room's stream once (XADD calls = messages sent). See bench/README.md.

The restart scenario (`--scenarios restart`; in the full run after the
fan-out): cluster-2 and socketio-2, each on a Redis of its own without
persistence and with `appendonly yes` (`appendfsync always`); 10 members
alternating over the two processes, one sender on the first sending acked
room messages at a fixed rate (`loadgen outage`); at its mark the driver
kills Redis with SIGKILL and starts it again on the same port, and counts
per column what was sent, acked, refused, lost on the other node (before
and after the members filled gaps from `history`, per epoch), delivered
twice, and how long delivery across nodes stopped. A refused message that
was delivered, and a promise docs/CLUSTER.md makes that did not hold, fail
the run after the table.
Output: target/bench/cluster/ (table.md, summary.json, results.jsonl, logs/).
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import bench  # noqa: E402  (the driver's helpers: Server, Peer, npm_ci, pinned, …)

ROOT = bench.ROOT
OUT = os.path.join(ROOT, "target", "bench", "cluster")
# Below the ephemeral range and above bench.py's 23100-23900.
BASE_PORT = 24100

COLUMNS = ("memory", "cluster-1", "cluster-2", "socketio-2")
log = bench.log


# --------------------------------------------------------------------------- redis


class Redis:
    """Our own redis-server on a free port (never 6379): no persistence, or
    (appendonly=True) an append-only file fsynced at every write."""

    def __init__(self, port, workdir, logpath, pin, appendonly=False):
        self.port = port
        self.logpath = logpath
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=workdir)
        self.logf = open(logpath, "w")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else ["--appendonly", "no"]
        self.cmd = bench.pinned(0, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
                                + persistence + ["--dir", self.dir], pin)
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        if not bench.wait_port(self.port, self.proc, timeout=10):
            self.stop()
            raise RuntimeError(f"redis-server did not start on {self.port} (see {self.logpath})")
        exe = os.path.basename(os.readlink(f"/proc/{self.proc.pid}/exe"))
        if not exe.startswith("redis-"):
            self.stop()
            raise RuntimeError(f"the measured Redis process {self.proc.pid} runs {exe}, not redis-server")

    def kill(self):
        """SIGKILL: no shutdown, no last write (as a crash)."""
        os.kill(self.proc.pid, signal.SIGKILL)

    def restart_after_kill(self):
        """Wait for the killed process, then start Redis again: the same port,
        the same directory and settings (an append-only file is read back)."""
        self.proc.wait()
        self.logf.write("\n--- cluster.py: killed with SIGKILL, started again ---\n")
        self.logf.flush()
        self.start()

    @property
    def pid(self):
        return self.proc.pid

    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def info(self, section):
        """INFO <section> as a dict of its `key:value` lines (RESP by hand:
        one inline command, one bulk string back)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(f"INFO {section}\r\n".encode())
            buf = b""
            while b"\r\n" not in buf:
                buf += s.recv(65536)
            head, _, rest = buf.partition(b"\r\n")
            if not head.startswith(b"$"):
                raise RuntimeError(f"redis INFO: unexpected reply {head!r}")
            n = int(head[1:])
            while len(rest) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
        out = {}
        for line in rest[:n].decode().splitlines():
            k, sep, v = line.partition(":")
            if sep and not k.startswith("#"):
                out[k] = v
        return out

    def commands(self):
        """{command: calls} from INFO commandstats, without INFO itself (our own reads)."""
        out = {}
        for k, v in self.info("commandstats").items():
            if not k.startswith("cmdstat_"):
                continue
            name = k[len("cmdstat_"):]
            if name == "info":
                continue
            fields = dict(f.split("=", 1) for f in v.split(","))
            out[name] = int(fields["calls"])
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def delta(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) != a.get(k, 0)}


# --------------------------------------------------------------------------- columns


class Ports:
    def __init__(self):
        self.next = BASE_PORT

    def take(self):
        """A port nothing listens on (checked by binding it)."""
        while True:
            self.next += 1
            if self.next > BASE_PORT + 800:
                self.next = BASE_PORT + 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", self.next))
                    return self.next
                except OSError:
                    continue


# Switchboard's per-client limits off, as bench.py's `switchboard` column:
# the peers have no such limits.
NO_LIMITS = {
    "SWITCHBOARD_MESSAGES_PER_SEC": "0",
    "SWITCHBOARD_BROADCASTS_PER_SEC": "0",
    "SWITCHBOARD_MAX_CONNECTIONS_PER_IP": "1000000",
    "SWITCHBOARD_MAX_HANDSHAKES_PER_IP": "1000000",
}
EXPECT = {"rules": '"wasm"', "messages_per_sec": "0", "broadcasts_per_sec": "0", "history_size": "100"}


class Column:
    """One column's processes: its Redis, its server(s); started and checked."""

    def __init__(self, name, ctx, rnd, appendonly=False, tag=None):
        self.name = name
        self.ctx = ctx
        self.servers = []
        self.admins = []  # (node id, admin port) of each Switchboard node
        self.redis = None
        self.checks = []  # what was proved, for the report
        logs = os.path.join(OUT, "logs")
        tag = tag or f"{name}-r{rnd}"
        try:
            self.redis = Redis(ctx.ports.take(), ctx.workdir, os.path.join(logs, f"{tag}-redis.log"), ctx.pin,
                               appendonly)
            nodes = 2 if name.endswith("-2") else 1
            for i in range(nodes):
                node = f"cb-{'ab'[i]}"
                port = ctx.ports.take()
                logpath = os.path.join(logs, f"{tag}-{node}.log")
                if name == "socketio-2":
                    d = os.path.join(BENCH, "peers", "socketio")
                    peer = bench.Peer(name, "socketio", ["node", os.path.join(d, "server.js")], tls_env={},
                                      cwd=d, env={"REDIS_URL": self.redis.url()})
                    srv = self.start(peer, port, logpath)
                    self.check_socketio(srv, logpath)
                else:
                    admin = ctx.ports.take()
                    cmd = [ctx.sb_bin, "--admin-listen", f"127.0.0.1:{admin}",
                           "--admin-token-file", os.path.join(ctx.workdir, f"admin-token-{admin}"),
                           "--log", "warn,switchboard::net::server=info", "--node-id", node]
                    if ctx.quick:
                        # As bench.py's quick run: a busy machine must not
                        # fail a policy call on its 10 ms deadline.
                        cmd += ["--call-deadline-ms", "1000"]
                    if name.startswith("cluster"):
                        cmd += ["--cluster", self.redis.url(), "--cluster-prefix", ctx.prefix]
                    peer = bench.Peer(name, "v1", cmd, env=NO_LIMITS, expect=EXPECT)
                    srv = self.start(peer, port, logpath)
                    self.check_switchboard(srv, logpath, node, admin, name.startswith("cluster"))
        except Exception:
            self.stop()
            raise

    def start(self, peer, port, logpath):
        srv = bench.Server(peer, port, False, logpath, self.ctx.pin)
        self.servers.append(srv)  # stopped with the column even if a check fails
        return srv

    def check_switchboard(self, srv, logpath, node, admin, cluster):
        with open(logpath, errors="replace") as f:
            text = f.read()
        listening = next((l for l in text.splitlines() if " listening on " in l), "")
        if not listening.rstrip().endswith(f"; node {node}"):
            raise RuntimeError(f"{self.name}: no `; node {node}` in the start line {listening.strip()!r}")
        self.admins.append((node, admin))
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=5).read())
        want = "ok" if cluster else "off"
        if health.get("cluster") != want or health.get("node") != node:
            raise RuntimeError(f"{self.name}: /healthz says {health}, expected cluster {want!r}, node {node!r}")
        self.checks.append(f"{node}: start line `; node {node}`, serving {' '.join(f'{k}={v}' for k, v in EXPECT.items())}; "
                           f"/healthz cluster={health['cluster']!r}")

    def check_socketio(self, srv, logpath):
        deadline = time.time() + 10
        line = None
        while time.time() < deadline and line is None:
            with open(logpath, errors="replace") as f:
                line = next((l for l in f if "redis adapter on:" in l), None)
            if line is None:
                time.sleep(0.05)
        fields = set((line or "").split())
        if not line or self.redis.url() not in fields or f"pid={srv.pid}" not in fields \
                or "RedisAdapter)" not in fields:
            raise RuntimeError(f"{self.name}: the Socket.IO process {srv.pid} did not say its redis adapter is on "
                               f"with {self.redis.url()}: {(line or '(no line)').strip()!r} (see {logpath})")
        exe = os.path.basename(os.readlink(f"/proc/{srv.pid}/exe"))
        if exe != "node":
            raise RuntimeError(f"{self.name}: the measured process {srv.pid} runs {exe}, not node")
        self.checks.append(f"node {srv.pid}: {line.strip()}")

    def addrs(self):
        return ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def pids(self):
        return ",".join(str(s.pid) for s in self.servers)

    def stop(self):
        for s in self.servers:
            s.stop()
        if self.redis:
            self.redis.stop()


# --------------------------------------------------------------------------- one run


class Ctx:
    pass


def run_column(ctx, name, rnd, offered):
    """One session of column `name`: start it, run loadgen fanout with the
    offered loads (0 = saturation), read Redis between the marks. Returns
    (results, session) or raises RuntimeError."""
    col = Column(name, ctx, rnd)
    try:
        redis = col.redis
        marks = {}
        cmd = bench.pinned(1, [ctx.loadgen, "fanout", "--rooms", "1", "--members", str(ctx.members),
                               "--senders-per-room", "1", "--offered", bench.fmt_loads(offered),
                               "--mark-pause", str(ctx.mark_pause),
                               "--addr", col.addrs(), "--pid", col.pids(), "--aux-pid", str(redis.pid),
                               "--protocol", "socketio" if name.startswith("socketio") else "v1",
                               "--peer", name] + ctx.timing, ctx.pin)
        log("  $ " + " ".join(cmd))
        cmds0 = redis.commands()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err_lines = []

        def read_stderr():
            for line in p.stderr:
                err_lines.append(line.rstrip("\n"))
                if line.startswith("loadgen: mark "):
                    what = line.split()[2]
                    t = time.time()
                    marks[what] = (t, redis.commands())
                    if what == "set-up-done":
                        # Redis's background traffic while nothing is sent
                        # (heartbeats): a second read before the load starts.
                        time.sleep(ctx.mark_pause * 0.8)
                        marks["idle-end"] = (time.time(), redis.commands())

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        timer = threading.Timer(ctx.job_timeout, p.kill)
        timer.start()
        out = p.stdout.read()
        p.wait()
        timer.cancel()
        reader.join(timeout=5)
        cmds_end = redis.commands()
        for line in err_lines:
            log("    " + line)
        results = []
        for line in out.splitlines():
            if line.startswith("{"):
                try:
                    results.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        problems = [f"{r.get('mode')}: {r.get('problem')}" for r in results if not r.get("ok")]
        if p.returncode != 0 and not problems:
            problems.append(f"loadgen exited {p.returncode}: {' | '.join(err_lines[-3:])}")
        if not results and not problems:
            problems.append("loadgen printed no result")
        for s in col.servers:
            if not s.alive():
                problems.append(f"server {s.peer.name} pid {s.pid} exited with {s.proc.returncode}")
        session = {"checks": col.checks, "commands_whole_run": delta(cmds0, cmds_end)}
        if "set-up-done" in marks and "phases-done" in marks and "idle-end" in marks:
            (t0, c0), (ti, ci), (t1, c1) = marks["set-up-done"], marks["idle-end"], marks["phases-done"]
            msgs = sum(r.get("messages", 0) for r in results)
            load = delta(ci, c1)
            idle = delta(c0, ci)
            idle_per_s = {k: v / max(ti - t0, 1e-9) for k, v in idle.items()}
            total = sum(load.values())
            background = sum(idle_per_s.values()) * (t1 - ti)
            session.update({
                "messages": msgs,
                "commands": load,
                "commands_total": total,
                "idle_commands_per_s": round(sum(idle_per_s.values()), 2),
                "commands_per_message": round(total / msgs, 2) if msgs else None,
                "commands_per_message_less_idle": round((total - background) / msgs, 2) if msgs else None,
                "per_command_per_message": {k: round(v / msgs, 3) for k, v in sorted(load.items())} if msgs else {},
                "xadd": load.get("xadd", 0),
            })
            if name == "memory":
                if delta(cmds0, cmds_end):
                    problems.append(f"memory mode, yet Redis ran commands: {delta(cmds0, cmds_end)}")
            else:
                if total == 0 or msgs == 0:
                    problems.append(f"Redis commandstats did not move under load ({total} commands, {msgs} messages)")
                if name.startswith("cluster") and load.get("xadd", 0) != msgs:
                    problems.append(f"{msgs} messages sent, {load.get('xadd', 0)} appended to the room's stream "
                                    "(XADD): not one kept entry per message")
        elif not problems:
            problems.append(f"loadgen printed no marks (got {sorted(marks)})")
        if problems:
            raise RuntimeError("; ".join(problems))
        return results, session
    finally:
        col.stop()


# --------------------------------------------------------------------------- table


def fmt(x):
    return bench.fmt(x)


# A measured window in which the load generator waited for its core more
# than this fraction of the time: other work shared the machine (the servers'
# own wait is no sign of it: a two-node column's processes share CPU 0).
DISTURBED = 0.1


def disturbed(r):
    return r.get("client_wait_frac", 0) > DISTURBED


def build_table(ctx, runs, offered, sat1):
    """Markdown: one row per figure, one column per column, then the ratios."""
    def med(col, key, mode, off=None):
        """The median over rounds, of the windows where the load generator
        did not wait for its core (other work on the machine); of all of
        them, marked †, when none is left."""
        vals, clean = [], []
        for (c, results, _s) in runs:
            if c != col:
                continue
            for r in results:
                if r.get("mode") != mode or not r.get("ok"):
                    continue
                if off is not None and r.get("offered_per_s") != round(off):
                    continue
                v = r.get(key)
                if isinstance(v, (int, float)):
                    vals.append(v)
                    if not disturbed(r):
                        clean.append(v)
        if clean:
            return statistics.median(clean)
        return (statistics.median(vals), "†") if vals else None

    def sess(col, key):
        vals = [s.get(key) for (c, _r, s) in runs if c == col and isinstance(s.get(key), (int, float))]
        return statistics.median(vals) if vals else None

    ratios = [("cluster-1", "memory"), ("cluster-2", "memory"), ("cluster-2", "socketio-2")]
    head = ["figure (median of rounds)"] + list(COLUMNS) + [f"{a}/{b}" for a, b in ratios] + ["better"]
    rows = []

    def row(label, better, vals):
        marks = {c: v[1] for c, v in vals.items() if isinstance(v, tuple)}
        vals = {c: (v[0] if isinstance(v, tuple) else v) for c, v in vals.items()}
        cells = [label] + [fmt(vals.get(c)) + marks.get(c, "") for c in COLUMNS]
        for a, b in ratios:
            x, y = vals.get(a), vals.get(b)
            cells.append(f"{x / y:.2f}" if x is not None and y else "-")
        rows.append(cells + [better])

    def figures(mode, off=None, at=""):
        row(f"{at}deliveries/s", "higher" if mode == "saturation" else "info",
            {c: med(c, "deliveries_per_s", mode, off) for c in COLUMNS})
        for q, label in (("p50_us", "p50"), ("p99_us", "p99")):
            row(f"{at}{label} latency µs", "lower", {c: med(c, q, mode, off) for c in COLUMNS})
        row(f"{at}server CPU s per million deliveries (all server processes)", "lower",
            {c: med(c, "cpu_s_per_m_deliveries", mode, off) for c in COLUMNS})
        row(f"{at}Redis CPU s per million deliveries", "lower",
            {c: med(c, "aux_cpu_s_per_m_deliveries", mode, off) for c in COLUMNS})
        row(f"{at}server CPU use (1.0 = the one core)", "info", {c: med(c, "server_cpu_util", mode, off) for c in COLUMNS})
        row(f"{at}Redis CPU use", "info", {c: med(c, "aux_cpu_util", mode, off) for c in COLUMNS})

    figures("saturation", at="saturation: ")
    for frac, off in zip(ctx.loads, offered):
        figures("latency", off, at=f"@ {fmt(off)}/s offered ({frac:.0%} of slowest): ")
    row("Redis commands per room message (commandstats Δ / messages sent)", "lower",
        {c: sess(c, "commands_per_message") for c in COLUMNS})
    row("… less Redis's idle rate (heartbeats), measured after set-up", "lower",
        {c: sess(c, "commands_per_message_less_idle") for c in COLUMNS})
    row("pass 1 saturation deliveries/s (set the fixed rates)", "info", sat1)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- Redis restarted under load


RESTART_COLUMNS = ("cluster-2", "socketio-2")
RESTART_VARIANTS = ("no-persistence", "appendonly")
# What the sender's ack means, per column (the table says it).
ACK_MEANS = {
    "cluster-2": "kept: numbered, appended to the room's stream in Redis and published there, queued to the "
                 "sender node's members (else `unavailable`: not kept, not delivered)",
    "socketio-2": "the server got it: the ack callback runs right after `socket.to(room).emit` handed it to the "
                  "adapter (a PUBLISH queued on ioredis); nothing is kept",
}


def wait_healthy(admin, node, timeout=10.0):
    """/healthz of a node until it says "cluster":"ok" again: its last answer."""
    deadline = time.time() + timeout
    health = {}
    while time.time() < deadline:
        try:
            health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=2).read())
        except (OSError, ValueError) as e:
            health = {"error": str(e)}
        if health.get("cluster") == "ok" and health.get("node") == node:
            break
        time.sleep(0.1)
    return health


def run_restart(ctx, name, variant, rnd):
    """One session: column `name` on a Redis of its own (`variant`), loadgen
    outage sending; at its mark the driver kills Redis (SIGKILL) and starts it
    again on the same port. Returns (result, session) or raises RuntimeError."""
    appendonly = variant == "appendonly"
    col = Column(name, ctx, rnd, appendonly=appendonly, tag=f"restart-{variant}-{name}-r{rnd}")
    try:
        redis = col.redis
        cmd = bench.pinned(1, [ctx.loadgen, "outage", "--members", str(ctx.r_members), "--rate", str(ctx.r_rate),
                               "--duration", str(ctx.r_duration), "--kill-after", str(ctx.r_kill_after),
                               "--grace", str(ctx.r_grace), "--addr", col.addrs(), "--pid", col.pids(),
                               "--protocol", "socketio" if name.startswith("socketio") else "v1",
                               "--peer", name], ctx.pin)
        log("  $ " + " ".join(cmd))
        run_id0 = redis.info("server").get("run_id")
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err_lines = []
        facts = {}

        def read_stderr():
            for line in p.stderr:
                err_lines.append(line.rstrip("\n"))
                if line.startswith("loadgen: mark kill") and "killed_at" not in facts:
                    try:
                        facts["before"] = redis.commands()
                        redis.kill()
                        facts["killed_at"] = time.time()
                        p.stdin.write("killed\n")
                        p.stdin.flush()
                        redis.restart_after_kill()
                        p.stdin.write("up\n")
                        p.stdin.flush()
                        facts["down_s"] = time.time() - facts["killed_at"]
                    except (OSError, RuntimeError) as e:
                        facts["error"] = str(e)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        timer = threading.Timer(ctx.job_timeout, p.kill)
        timer.start()
        out = p.stdout.read()
        p.wait()
        timer.cancel()
        reader.join(timeout=5)
        for line in err_lines:
            log("    " + line)
        results = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        problems = [f"{r.get('mode')}: {r.get('problem')}" for r in results if not r.get("ok")]
        if not results and not problems:
            problems.append(f"loadgen printed no result (exit {p.returncode}): {' | '.join(err_lines[-3:])}")
        if "error" in facts:
            problems.append(f"restarting Redis: {facts['error']}")
        if "killed_at" not in facts:
            problems.append("loadgen never asked for the restart (no `loadgen: mark kill`)")
        r = results[0] if results else {}
        session = {"checks": list(col.checks)}
        if "killed_at" in facts and "error" not in facts:
            # Proof of the restart and of what came back.
            after = redis.commands()
            persistence = redis.info("persistence")
            run_id1 = redis.info("server").get("run_id")
            with open(redis.logpath, errors="replace") as f:
                restarted_log = f.read().split("--- cluster.py: killed with SIGKILL")[-1]
            loaded = "DB loaded from append only file" in restarted_log
            if run_id1 == run_id0:
                problems.append(f"Redis's run_id did not change ({run_id0}): it did not restart")
            if persistence.get("aof_enabled") != ("1" if appendonly else "0") or loaded != appendonly:
                problems.append(f"Redis after the restart: aof_enabled={persistence.get('aof_enabled')}, "
                                f"log says loaded from the append-only file: {loaded}; wanted {variant}")
            moved = {k: v for k, v in after.items() if k in ("xadd", "publish", "evalsha")}
            if not moved.get("publish") and not moved.get("evalsha"):
                problems.append(f"the restarted Redis saw no PUBLISH or EVALSHA: the column did not use it ({after})")
            before = facts["before"]
            if name.startswith("cluster") and not before.get("xadd"):
                problems.append(f"no XADD on Redis before the kill: {before}")
            if name.startswith("socketio") and not before.get("publish"):
                problems.append(f"no PUBLISH on Redis before the kill: {before}")
            session["checks"].append(
                f"Redis killed with SIGKILL {r.get('kill_at_ms', '?')} ms into sending and started again on the "
                f"same port ({facts['down_s'] * 1000:.0f} ms until it listened): run_id {run_id0[:8]}… → "
                f"{(run_id1 or '?')[:8]}…, aof_enabled={persistence.get('aof_enabled')}, "
                f"{'loaded its append-only file' if loaded else 'started empty'}; before the kill "
                f"{', '.join(f'{k.upper()} {before.get(k, 0)}' for k in ('evalsha', 'xadd', 'publish'))}; "
                f"on the restarted Redis {', '.join(f'{k.upper()} {after.get(k, 0)}' for k in ('evalsha', 'xadd', 'publish'))}")
            session["xadd_after"] = after.get("xadd", 0)
            session["publish_after"] = after.get("publish", 0)
            for node, admin in col.admins:
                health = wait_healthy(admin, node)
                if health.get("cluster") != "ok":
                    problems.append(f"{node}: /healthz says {health} 10 s after the run, not \"cluster\":\"ok\"")
                else:
                    session["checks"].append(f"{node}: /healthz \"cluster\":\"ok\" again after the run")
        for s in col.servers:
            if not s.alive():
                problems.append(f"server {s.peer.name} pid {s.pid} exited with {s.proc.returncode}")
        if problems:
            raise RuntimeError("; ".join(problems))
        return r, session
    finally:
        col.stop()


def promises(name, variant, r, s):
    """What each column promises and did not hold in this session."""
    broken = []
    if r.get("refused_delivered"):
        broken.append(f"{r['refused_delivered']} refused messages were delivered")
    if r.get("unanswered"):
        broken.append(f"{r['unanswered']} messages got no answer")
    if name.startswith("cluster"):
        if r.get("twice_by_offset") or r.get("twice_by_k"):
            broken.append(f"delivered twice: {r.get('twice_by_offset')} by offset, {r.get('twice_by_k')} by message")
        if variant == "appendonly" and r.get("lost_far"):
            broken.append(f"{r['lost_far']} acked messages lost on the other node with appendonly (docs/CLUSTER.md: "
                          "the nodes fill every room's gap from its stream)")
        if r.get("lost_near"):
            broken.append(f"{r['lost_near']} acked messages lost on the sender's own node")
        acked_after = r.get("acked", 0) - r.get("acked_sent_before_kill", 0)
        if "xadd_after" in s and s["xadd_after"] < acked_after:
            broken.append(f"{acked_after} acked messages sent after the kill, {s['xadd_after']} appended (XADD) on "
                          "the restarted Redis")
    return broken


def restart_table(sessions):
    """Markdown: one column per (variant, column), the rounds' values joined by ` · `."""
    cols = [(v, c) for v in RESTART_VARIANTS for c in RESTART_COLUMNS if any(
        (v, c) == (sv, sc) for (sv, sc, _r, _s) in sessions)]

    def vals(v, c, f):
        out = [f(r, s) for (sv, sc, r, s) in sessions if (sv, sc) == (v, c)]
        return " · ".join("-" if x is None else (f"{x:,}" if isinstance(x, int) else fmt(x) if isinstance(x, float)
                                                 else str(x)) for x in out)

    def epochs(d):
        if not d:
            return "0"
        return " + ".join(f"{n} (epoch {int(e) + 1})" if e.isdigit() else f"{n} ({e})" for e, n in sorted(d.items()))

    sb = lambda f: (lambda r, s: f(r, s) if r.get("peer", "").startswith("cluster") else None)
    rows = [
        ("the sender's ack means", lambda r, s: None),
        ("messages sent (1 sender, fixed rate)", lambda r, s: r.get("sent")),
        ("acked", lambda r, s: r.get("acked")),
        ("refused (error code)", lambda r, s: f"{r.get('refused', 0)}" + (
            f" ({', '.join(f'{k} {n}' for k, n in r.get('refused_codes', {}).items())})" if r.get("refused") else "")),
        ("no answer", lambda r, s: r.get("unanswered")),
        ("refused, yet delivered to a member (must be 0)", lambda r, s: r.get("refused_delivered")),
        ("**acked, lost on the other node** (messages; member deliveries)",
         lambda r, s: f"**{r.get('lost_far')}** ({r.get('lost_far_deliveries')})"),
        ("… by epoch (as the sender's node numbered them)", sb(lambda r, s: epochs(r.get("lost_far_by_epoch")))),
        ("… after the members filled their gaps from `history`", sb(
            lambda r, s: f"{r.get('lost_far_after_fill')} ({r.get('lost_far_after_fill_deliveries')})")),
        ("… by epoch", sb(lambda r, s: epochs(r.get("lost_far_after_fill_by_epoch")))),
        ("acked, lost on the sender's own node", lambda r, s: r.get("lost_near")),
        ("gaps seen by members (offsets) / `history` fills asked / messages filled",
         sb(lambda r, s: f"{r.get('gap_offsets_seen')} / {r.get('history_fills')} / {r.get('filled')}")),
        ("delivered twice, by offset (per epoch) / by message", sb(
            lambda r, s: f"{r.get('twice_by_offset')} / {r.get('twice_by_k')}")),
        ("delivered twice, by message", lambda r, s: None if r.get("peer", "").startswith("cluster")
         else r.get("twice_by_k")),
        ("epochs seen by the members", sb(lambda r, s: r.get("epochs_seen"))),
        ("new messages a client dropping offsets ≤ its last would drop (JS client rule)",
         sb(lambda r, s: r.get("js_rule_dropped"))),
        ("Redis killed at (ms into sending) / down until listening (ms)",
         lambda r, s: f"{fmt(r.get('kill_at_ms'))} / {fmt(r.get('redis_down_ms'))}"),
        ("**delivery across nodes interrupted, ms** (kill → first delivery on the other node of a message sent after it)",
         lambda r, s: r.get("interrupted_ms")),
        ("… on the sender's own node, ms", lambda r, s: r.get("interrupted_near_ms")),
        ("first acked message sent after the kill, ms after it", lambda r, s: r.get("first_acked_send_after_kill_ms")),
        ("on the restarted Redis: XADD / PUBLISH", lambda r, s: f"{s.get('xadd_after')} / {s.get('publish_after')}"),
    ]
    head = ["figure (one value per round, · between rounds)"] + [f"{c}, {v}" for (v, c) in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for label, f in rows:
        if label == "the sender's ack means":
            cells = [ACK_MEANS[c] for (_v, c) in cols]
        else:
            cells = [vals(v, c, f) for (v, c) in cols]
        if all(not x or set(x) <= set("- /") for x in cells):
            continue
        lines.append("| " + " | ".join([label] + cells) + " |")
    return "\n".join(lines)


def restart_scenario(ctx, columns, rounds, raw):
    """Every (variant, column) `rounds` times: the table's lines, failures,
    broken promises."""
    cols = [c for c in RESTART_COLUMNS if c in columns]
    sessions, failures, broken = [], [], []
    for rnd in range(1, rounds + 1):
        for variant in RESTART_VARIANTS:
            for name in cols:
                log(f"[restart round {rnd}] {name}, Redis {variant}: {ctx.r_rate:g} messages/s for "
                    f"{ctx.r_duration:g} s, killed {ctx.r_kill_after:g} s in")
                t0 = time.time()
                try:
                    r, s = run_restart(ctx, name, variant, rnd)
                except (RuntimeError, OSError, ValueError) as e:
                    log(f"    FAILED [{name}, {variant}] round {rnd}: {e}")
                    failures.append((rnd, f"restart {name} {variant}", str(e)))
                    continue
                raw.write(json.dumps({**r, "round": rnd, "column": name, "redis": variant, "session": s}) + "\n")
                raw.flush()
                sessions.append((variant, name, r, s))
                for b in promises(name, variant, r, s):
                    broken.append(f"{name}, {variant}, round {rnd}: {b}")
                log(f"    {name}, {variant}: sent {r.get('sent')}, acked {r.get('acked')}, refused {r.get('refused')}, "
                    f"lost on the other node {r.get('lost_far')} (after fill {r.get('lost_far_after_fill')}), "
                    f"interrupted {r.get('interrupted_ms')} ms ({time.time() - t0:.1f} s)")
    return sessions, failures, broken


# --------------------------------------------------------------------------- main


def source_of(bin_dir):
    """The commit the binaries were built from: the git checkout holding
    `bin_dir`, with `+uncommitted changes` when its tracked files differ
    from that commit (a shared work tree: the figures are then not the
    commit's alone)."""
    git = lambda *a: subprocess.run(["git", "-C", bin_dir, *a], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    top = git("rev-parse", "--show-toplevel")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{commit} ({top}{', + uncommitted changes' if dirty else ''})"



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: debug builds, 50 members, 1 round; exit 1 on any failure")
    ap.add_argument("--members", type=int, help="room members (default 1000; quick: 50), split evenly over 2-node columns")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of saturation + fixed rates after pass 1 (full run)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds measured per phase (full run)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per phase (full run)")
    ap.add_argument("--columns", help=f"comma-separated subset of {','.join(COLUMNS)}")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--bin-dir", help="take switchboard and loadgen from this directory (e.g. a clean clone's "
                    "target/release, so others' uncommitted edits are not measured); implies --no-build")
    ap.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    ap.add_argument("--job-timeout", type=float, default=240.0, help="seconds one loadgen run may take")
    ap.add_argument("--scenarios", default=None,
                    help="comma-separated: fanout (the fan-out table), restart (Redis restarted under load, "
                         "cluster-2 and socketio-2) [default: fanout,restart; quick: fanout]")
    ap.add_argument("--restart-rounds", type=int, help="rounds of the restart scenario (default 2; quick 1)")
    ap.add_argument("--restart-members", type=int, default=10,
                    help="restart: room members, the sender included, alternating over the two processes")
    ap.add_argument("--restart-rate", type=float, default=100.0, help="restart: room messages sent per second")
    ap.add_argument("--restart-duration", type=float, help="restart: seconds of sending (default 8; quick 3)")
    ap.add_argument("--restart-kill-after", type=float, help="restart: seconds into sending when Redis is killed "
                    "(default 3; quick 1)")
    args = ap.parse_args()
    scenarios = (args.scenarios or ("fanout" if args.quick else "fanout,restart")).split(",")
    if set(scenarios) - {"fanout", "restart"}:
        sys.exit(f"cluster bench: unknown scenario(s) in {args.scenarios}; known: fanout, restart")

    started = time.time()
    load_before = bench.loadavg()
    os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
    bench.raise_nofile()
    for tool in ("node", "npm", "cargo", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"cluster bench: `{tool}` is needed and not on PATH (redis-server: `make redis-server`)")
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    columns = args.columns.split(",") if args.columns else list(COLUMNS)
    bad = [c for c in columns if c not in COLUMNS]
    if bad:
        sys.exit(f"cluster bench: unknown column(s) {', '.join(bad)}; known: {', '.join(COLUMNS)}")
    if "socketio-2" in columns:
        bench.npm_ci("socketio")

    profile = "debug" if args.quick else "release"
    bin_dir = os.path.abspath(args.bin_dir) if args.bin_dir else os.path.join(ROOT, "target", profile)
    if not args.no_build and not args.bin_dir:
        bench.run(["cargo", "build", "-p", "switchboard", "-p", "loadgen", "--features", "switchboard/native-rules"]
                  + ([] if args.quick else ["--release"]), cwd=ROOT)
    ctx = Ctx()
    ctx.quick = args.quick
    ctx.pin = pin
    ctx.ports = Ports()
    ctx.job_timeout = args.job_timeout
    ctx.prefix = f"cb{os.getpid()}"
    ctx.members = args.members or (50 if args.quick else 1000)
    if ctx.members < 4 or ctx.members % 2:
        sys.exit("cluster bench: --members wants an even number, at least 4")
    ctx.mark_pause = 0.5 if args.quick else 2.0
    ctx.timing = (["--warmup", "0.2", "--duration", "0.5", "--grace", "3"] if args.quick else
                  ["--warmup", str(args.warmup), "--duration", str(args.duration), "--grace", "3"])
    ctx.loads = [0.5] if args.quick else [0.25, 0.5, 0.75]
    ctx.r_members = args.restart_members
    ctx.r_rate = args.restart_rate
    ctx.r_duration = args.restart_duration or (3.0 if args.quick else 8.0)
    ctx.r_kill_after = args.restart_kill_after or (1.0 if args.quick else 3.0)
    ctx.r_grace = 3.0 if args.quick else 5.0
    if ctx.r_kill_after >= ctx.r_duration or ctx.r_members < 4:
        sys.exit("cluster bench: --restart-kill-after must be below --restart-duration, --restart-members at least 4")
    # Private copies of the binaries (a rebuild of target/ meanwhile must not
    # change what is measured), removed at exit.
    ctx.workdir = tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=OUT)
    atexit.register(shutil.rmtree, ctx.workdir, True)
    for name in ("switchboard", "loadgen"):
        src = os.path.join(bin_dir, name)
        if not os.path.exists(src):
            sys.exit(f"cluster bench: {src} not built")
        shutil.copy2(src, os.path.join(ctx.workdir, name))
    ctx.sb_bin = os.path.join(ctx.workdir, "switchboard")
    ctx.loadgen = os.path.join(ctx.workdir, "loadgen")
    if load_before > 1.5:
        log(f"WARNING: load average is {load_before:.1f} on {os.cpu_count()} CPUs: other work shares the pinned cores")
    log(f"columns: {', '.join(columns)}; {ctx.members} members; {profile} builds; pinned: {pin}")

    runs = []  # (column, results, session)
    failures = []
    raw = open(os.path.join(OUT, f"results.jsonl.run-{os.getpid()}"), "w")

    def session(name, rnd, offered):
        log(f"[round {rnd}] {name}: offered {bench.fmt_loads(offered)}")
        t0 = time.time()
        try:
            results, s = run_column(ctx, name, rnd, offered)
        except (RuntimeError, OSError, ValueError) as e:
            log(f"    FAILED [{name}] round {rnd}: {e}")
            failures.append((rnd, name, str(e)))
            return None
        for r in results:
            r.update(round=rnd, column=name)
            raw.write(json.dumps(r) + "\n")
        raw.write(json.dumps({"round": rnd, "column": name, "session": s}) + "\n")
        raw.flush()
        log(f"    {name}: {s.get('commands_per_message')} Redis commands per message "
            f"({s.get('messages')} messages; {s.get('commands')}) ({time.time() - t0:.1f} s)")
        return results, s

    sat1, offered = {}, []
    if "fanout" in scenarios:
        if args.quick:
            # Fixed, small rates: no pass 1 (a debug build's saturation is no guide).
            offered = [round(2000 * ctx.members / 50)]
            rounds = [1]
        else:
            for name in columns:
                got = session(name, 0, [0])
                if got:
                    sat1[name] = got[0][0].get("deliveries_per_s")
            sats = [v for v in sat1.values() if v]
            if not sats:
                sys.exit("cluster bench: no column saturated in pass 1")
            offered = [round(f * min(sats)) for f in ctx.loads]
            log(f"fixed offered rates: {offered} deliveries/s ({', '.join(f'{f:.0%}' for f in ctx.loads)} of {min(sats):,.0f})")
            rounds = range(1, args.rounds + 1)
        for rnd in rounds:
            for name in columns:
                got = session(name, rnd, [0] + offered)
                if got:
                    runs.append((name, got[0], got[1]))
    restart, broken = [], []
    if "restart" in scenarios:
        t_restart = time.time()
        load_restart = bench.loadavg()
        restart, r_failures, broken = restart_scenario(
            ctx, columns, args.restart_rounds or (1 if args.quick else 2), raw)
        failures += r_failures
        restart_s = time.time() - t_restart
    raw.close()
    os.replace(raw.name, os.path.join(OUT, "results.jsonl"))

    commit = source_of(bin_dir)
    lines = []
    if "fanout" in scenarios:
        table = build_table(ctx, runs, offered, sat1)
        header = (f"Cluster fan-out, 1 room × {ctx.members} members, 1 sender ({'quick' if args.quick else 'full'}; "
                  f"{profile} builds; commit {commit}; {time.strftime('%Y-%m-%d %H:%M %Z')}; servers and Redis on CPU 0, "
                  f"loadgen on CPU 1: {pin}; {time.time() - started:.0f} s; load average {load_before:.2f} before, "
                  f"{bench.loadavg():.2f} after)")
        checks = {}
        breakdown = {}
        for (c, _r, s) in runs:
            checks.setdefault(c, s["checks"])
            breakdown.setdefault(c, s.get("per_command_per_message"))
        waits = [r["client_wait_frac"] for (_c, rs, _s) in runs for r in rs if "client_wait_frac" in r]
        left_out = [f"{c} round {r['round']} {r['mode']} {r.get('offered_per_s', '')}".strip()
                    for (c, rs, _s) in runs for r in rs if disturbed(r)]
        lines += [header, "", table, ""]
        lines.append("Redis commands per room message, by command (first round; commandstats Δ between the marks / messages):")
        for c in columns:
            if breakdown.get(c) is not None:
                lines.append(f"- {c}: " + (", ".join(f"{k} {v:g}" for k, v in breakdown[c].items()) or "none"))
        lines.append("")
        lines.append("What each column ran (checked at its start):")
        for c in columns:
            for chk in checks.get(c, []):
                lines.append(f"- {c}: {chk}")
        if waits:
            lines.append(f"\nloadgen run-queue wait per window: median {statistics.median(waits):.0%}, max {max(waits):.0%}; "
                         f"{len(left_out)} of {len(waits)} windows waited more than {DISTURBED:.0%} and are left out of the "
                         f"medians († where no other round was left){': ' + '; '.join(left_out) if left_out else ''}")
    else:
        header = None
    if "restart" in scenarios:
        r_header = (f"Redis restarted under load: 1 room × {ctx.r_members} members alternating over 2 processes, "
                    f"1 sender on the first sending acked room messages at {ctx.r_rate:g}/s for {ctx.r_duration:g} s; "
                    f"Redis killed with SIGKILL {ctx.r_kill_after:g} s in and started again on the same port "
                    f"({'quick' if args.quick else 'full'}; {profile} builds; commit {commit}; "
                    f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {restart_s:.0f} s; load average {load_restart:.2f} before, "
                    f"{bench.loadavg():.2f} after)")
        lines += ([""] if lines else []) + [r_header, "", restart_table(restart), ""]
        lines.append("What each session ran (checked at its start and after the restart):")
        for (v, c, _r, s) in restart:
            for chk in s["checks"]:
                lines.append(f"- {c}, {v}: {chk}")
        lines.append("")
        lines.append("Promises not held: " + ("none" if not broken else ""))
        lines += [f"- {b}" for b in broken]
    text = "\n".join(lines)
    print()
    print(text)
    with open(os.path.join(OUT, "table.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump({"header": header, "offered": offered, "sat_pass1": sat1, "failures": failures,
                   "sessions": [{"column": c, **s} for (c, _r, s) in runs],
                   "restart": [{"redis": v, "column": c, "result": r, "session": s} for (v, c, r, s) in restart],
                   "promises_not_held": broken}, f, indent=1)
    if failures or broken:
        print(f"\n{len(failures)} failure(s), {len(broken)} promise(s) not held:")
        for (rnd, c, why) in failures:
            print(f"  round {rnd} [{c}]: {why}")
        for b in broken:
            print(f"  {b}")
        sys.exit(1)
    print(f"\nall columns ok; raw results in {os.path.relpath(OUT, os.getcwd())}/results.jsonl")


if __name__ == "__main__":
    main()
