#!/usr/bin/env python3
"""Switchboard benchmark driver: every peer, every scenario, one table.

    python3 bench/bench.py            # full run (release builds, a few minutes)
    python3 bench/bench.py --quick    # smoke run: tiny sizes, 1 round, exits 1 on any failure

It installs the peers' npm packages (npm ci) when missing (Bun too: the npm
package `bun`, whose real binary the bun peer runs directly), builds loadgen and
switchboard, starts each server pinned to CPU 0 and the load generator pinned
to CPU 1 (taskset), alternates the peers within each round (A B C A B C ...),
and prints one table: the median of the rounds for each scenario x peer, the
ratios Switchboard/peer, and server CPU seconds per million deliveries.
Raw results (one JSON line per loadgen result) go to target/bench/.

Only python3's standard library, node/npm, cargo and taskset are used (and
the Bun binary that npm installs into bench/peers/bun/node_modules).
See bench/README.md.
"""

import argparse
import atexit
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
OUT = os.path.join(ROOT, "target", "bench")

# Below the kernel's ephemeral range (32768-60999 here), so no client
# socket of this or another process can hold a server's port.
BASE_PORT = 23100

# --------------------------------------------------------------------------- helpers


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        hard = soft
    return hard


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return -1.0


def wait_port(port, proc, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)
    return False


def pinned(cpu, cmd, pin):
    return (["taskset", "-c", str(cpu)] + cmd) if pin else cmd


# --------------------------------------------------------------------------- peers


class Peer:
    def __init__(self, name, protocol, cmd, tls_args=None, tls_env=None, env=None, cwd=None, expect=None, exe=None):
        self.name = name
        # Fields the server's start line ("serving rules=… messages_per_sec=…")
        # must show: proof that the column runs what its name says.
        self.expect = expect or {}
        # The binary /proc/<pid>/exe of the measured process must be (the bun
        # peer: Bun itself, not a node.js shim or a wrapper script).
        self.exe = exe
        self.protocol = protocol
        self.cmd = cmd
        self.tls_args = tls_args or []
        self.tls_env = tls_env
        self.env = env or {}
        self.cwd = cwd
        # Switchboard takes --listen and TLS flags; the JavaScript peers
        # (node, Bun), PORT and TLS_CERT/TLS_KEY in the environment.
        self.switchboard = tls_env is None


def make_peers(args, sb_bin, cert_dir, bun=None):
    cert = os.path.join(cert_dir, "cert.pem")
    key = os.path.join(cert_dir, "key.pem")
    # The server's start line (INFO) says which rules and limits it runs.
    sb = [sb_bin, "--admin-listen", "off", "--log", "warn,switchboard::net::server=info"]
    if args.quick:
        # The smoke run must not fail because a busy machine (make test runs
        # builds beside it) slowed the server mid-call past the policy's
        # 10 ms deadline (CPU time now, which a preemption no longer eats;
        # kept for older builds given with --extra).
        sb += ["--call-deadline-ms", "1000"]
    sb_tls = ["--tls-cert", cert, "--tls-key", key]
    # The peers have no per-client limits, so Switchboard runs with its own
    # off (a rate of 0 turns one off; one IP's caps raised past what the
    # load generator opens). Environment variables rather than flags: older
    # builds given with --extra ignore what they do not know.
    no_limits = {
        "SWITCHBOARD_MESSAGES_PER_SEC": "0",
        "SWITCHBOARD_BROADCASTS_PER_SEC": "0",
        "SWITCHBOARD_MAX_CONNECTIONS_PER_IP": "1000000",
        "SWITCHBOARD_MAX_HANDSHAKES_PER_IP": "1000000",
    }
    # Every limit on and checked on every frame, set high enough that this
    # load never reaches them: what the checks themselves cost.
    limits_on = {
        "SWITCHBOARD_MESSAGES_PER_SEC": "1000000",
        "SWITCHBOARD_MESSAGES_BURST": "1000000",
        "SWITCHBOARD_BROADCASTS_PER_SEC": "1000000",
        "SWITCHBOARD_BROADCASTS_BURST": "1000000",
        "SWITCHBOARD_MAX_CONNECTIONS_PER_IP": "1000000",
        "SWITCHBOARD_MAX_HANDSHAKES_PER_IP": "1000000",
    }
    peers = {}
    off = {"messages_per_sec": "0", "broadcasts_per_sec": "0"}
    peers["switchboard"] = Peer("switchboard", "v1", sb, sb_tls, env=no_limits,
                                expect={"rules": '"wasm"', "history_size": "100", **off})
    # The same with room history off: what keeping every room message (an
    # offset, a copy in the room's log) costs the fan-out.
    peers["switchboard-nohistory"] = Peer(
        "switchboard-nohistory", "v1", sb, sb_tls, env={**no_limits, "SWITCHBOARD_HISTORY_SIZE": "0"},
        expect={"rules": '"wasm"', "history_size": "0", **off})
    peers["switchboard-limits"] = Peer("switchboard-limits", "v1", sb, sb_tls, env=limits_on,
                                       expect={"rules": '"wasm"', "messages_per_sec": "1000000",
                                               "broadcasts_per_sec": "1000000"})
    help_text = subprocess.run([sb_bin, "--help"], capture_output=True, text=True).stdout
    if "--native-rules" in help_text:
        peers["switchboard-native"] = Peer(
            "switchboard-native", "v1", sb + ["--native-rules"], sb_tls, env=no_limits,
            expect={"rules": '"native"', **off},
        )
    else:
        log("note: switchboard has no --native-rules flag yet: skipping the switchboard-native peer")
    # Other switchboard builds (a baseline before an optimisation, say), so an
    # A/B comparison is measured in the same run, alternating with the rest.
    for spec in args.extra or []:
        name, _, path = spec.partition("=")
        if not name or not path or not os.path.exists(path):
            sys.exit(f"bench: --extra wants NAME=BINARY (an existing file), got {spec!r}")
        binary = os.path.abspath(path)
        peers[name] = Peer(name, "v1", [binary] + sb[1:], sb_tls, env=no_limits)
    tls_env = {"TLS_CERT": cert, "TLS_KEY": key}
    for name, proto in (("node-ws", "v1"), ("socketio", "socketio")):
        d = os.path.join(BENCH, "peers", name)
        peers[name] = Peer(name, proto, ["node", os.path.join(d, "server.js")], tls_env=tls_env, cwd=d)
    if bun:
        # Bun's own binary, started directly (no npx, no node.js shim): the
        # pid the driver measures is Bun's. Its start line must name the
        # pinned version, the binary and the pid (checked with /proc/<pid>/exe).
        d = os.path.join(BENCH, "peers", "bun")
        binary, version = bun
        peers["bun"] = Peer("bun", "v1", [binary, os.path.join(d, "server.js")], tls_env=tls_env, cwd=d,
                            expect={"bun": version, "exe": binary}, exe=binary)
    wanted = wanted_peers(args) or list(peers)
    unknown = [p for p in wanted if p not in peers]
    if unknown:
        known = list(peers) + ([] if "bun" in peers else ["bun"])
        sys.exit(f"bench: unknown peer(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [peers[p] for p in wanted]


def wanted_peers(args):
    return args.peers.split(",") if args.peers else None


# The peers that speak protocol v2 (session resume): the storm runs on these.
V2_PEERS = ("switchboard", "switchboard-nohistory", "switchboard-limits", "switchboard-native")

# The JavaScript peers: their npm packages, installed with `npm ci`.
JS_PEERS = ("node-ws", "socketio", "bun")


def npm_ci(name):
    """`npm ci` in bench/peers/<name> when node_modules is missing or older
    than package-lock.json. A failure stops the run: no peer is skipped."""
    d = os.path.join(BENCH, "peers", name)
    marker = os.path.join(d, "node_modules", ".package-lock.json")
    if os.path.exists(marker) and os.path.getmtime(marker) >= os.path.getmtime(os.path.join(d, "package-lock.json")):
        return
    cmd = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    if name == "bun":
        # The npm package `bun` pulls the real binary in as an optional
        # dependency (@oven/bun-linux-x64, checked against the lock's
        # integrity) and its postinstall only moves it over a placeholder
        # script. The driver runs that binary where npm put it, so the
        # postinstall is not needed (and newer npm may refuse to run it).
        cmd.append("--ignore-scripts")
    try:
        run(cmd, cwd=d)
    except subprocess.CalledProcessError as e:
        sys.exit(f"bench: `{' '.join(cmd)}` failed in {d} (exit {e.returncode}): cannot install the {name} peer. "
                 "Its packages come from the npm registry; leave the peer out with --peers to run without it.")


def elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def bun_version(binary):
    try:
        p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if p.returncode != 0:
        why = (p.stderr or p.stdout).strip()[-300:]
        return None, f"exit {p.returncode}" + (f" (signal {-p.returncode})" if p.returncode < 0 else "") + \
            (f": {why}" if why else "")
    return p.stdout.strip(), None


def bun_binary():
    """The Bun binary npm installed for bench/peers/bun, and its version: a
    real executable (ELF) that runs and says the version package.json pins.
    The build for x86-64 CPUs with AVX2 first; where it cannot run (an older
    CPU), its -baseline build of the same version, installed on demand."""
    d = os.path.join(BENCH, "peers", "bun")
    with open(os.path.join(d, "package.json")) as f:
        want = json.load(f)["dependencies"]["bun"]
    oven = os.path.join(d, "node_modules", "@oven")
    pkgs = sorted(os.listdir(oven)) if os.path.isdir(oven) else []
    # @oven/bun-<os>-<arch>[-musl]/bin/bun, as npm ci --ignore-scripts leaves
    # it; bun/bin/bun.exe where a postinstall has moved it there.
    cands = [os.path.join(oven, p, "bin", "bun") for p in pkgs if not p.endswith("-baseline")]
    cands.append(os.path.join(d, "node_modules", "bun", "bin", "bun.exe"))
    cands += [os.path.join(oven, p, "bin", "bun") for p in pkgs if p.endswith("-baseline")]
    tried = []

    def first_good(paths):
        for c in paths:
            if not elf(c):
                continue
            version, why = bun_version(c)
            if version == want:
                return os.path.realpath(c), version
            tried.append(f"{os.path.relpath(c, d)}: {why or f'says version {version!r}, not {want}'}")
        return None

    found = first_good(cands)
    if found:
        return found
    # x86-64 without AVX2: the -baseline build of the same version.
    base = [p + "-baseline" for p in pkgs if "-x64" in p and not p.endswith("-baseline")]
    for b in base:
        if os.path.exists(os.path.join(oven, b)):
            continue
        log(f"note: no Bun binary of {', '.join(pkgs)} runs here ({'; '.join(tried)}); installing @oven/{b}@{want}")
        try:
            run(["npm", "install", "--no-save", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error",
                 f"@oven/{b}@{want}"], cwd=d)
        except subprocess.CalledProcessError:
            continue
        found = first_good([os.path.join(oven, b, "bin", "bun")])
        if found:
            return found
    sys.exit(f"bench: no runnable Bun {want} binary in {d}/node_modules "
             f"(tried: {'; '.join(tried) or 'none found'}). Reinstall it (rm -rf {d}/node_modules), or leave the "
             "peer out with --peers.")


class Server:
    """One server process, pinned, on its own port."""

    def __init__(self, peer, port, tls, logpath, pin):
        self.peer = peer
        self.port = port
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(peer.env)
        cmd = list(peer.cmd)
        if peer.switchboard:
            cmd += ["--listen", f"127.0.0.1:{port}"]
            if tls:
                cmd += peer.tls_args
        else:
            env["PORT"] = str(port)
            if tls:
                env.update(peer.tls_env)
        self.logf = open(logpath, "w")
        # Switchboard reads ./switchboard.toml when present: run it from OUT.
        self.proc = subprocess.Popen(
            pinned(0, cmd, pin), stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=peer.cwd or OUT
        )
        if not wait_port(port, self.proc):
            self.stop()
            raise RuntimeError(f"{peer.name} did not start listening on {port} (see {logpath})")
        if peer.exe:
            self.check_exe(logpath)
        if peer.expect:
            self.check_start_line(logpath)

    def check_exe(self, logpath):
        """The process whose /proc/<pid> the driver (and loadgen) read must be
        the server itself, not a wrapper that started it."""
        try:
            exe = os.readlink(f"/proc/{self.pid}/exe")
        except OSError as e:
            exe = f"(unreadable: {e})"
        if exe != os.path.realpath(self.peer.exe):
            self.stop()
            raise RuntimeError(
                f"{self.peer.name}: the measured process {self.pid} runs {exe}, not {self.peer.exe}: "
                f"its CPU and memory would not be the server's (see {logpath})")

    def check_start_line(self, logpath):
        """The start line must show what the peer's name claims (which rules,
        which limits), or the column would measure something else."""
        deadline = time.time() + 15
        line = None
        while line is None and time.time() < deadline and self.alive():
            with open(logpath, errors="replace") as f:
                line = next((l for l in f if " serving " in l), None)
            if line is None:
                time.sleep(0.05)
        want = dict(self.peer.expect)
        if self.peer.exe:
            # The line comes from the very process that is measured.
            want["pid"] = str(self.pid)
        # Whole fields: `bun=1.4.4` must not pass for `bun=1.4.40`.
        fields = set((line or "").split())
        wrong = [f"{k}={v}" for k, v in want.items() if f"{k}={v}" not in fields]
        if wrong:
            self.stop()
            raise RuntimeError(
                f"{self.peer.name} does not run what its name says: no {', '.join(wrong)} in its start line "
                f"{(line or '(none)').strip()!r} (see {logpath})")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


# --------------------------------------------------------------------------- plan


def drop_stale_bins(parent):
    """Remove the private binaries of runs that ended without cleaning up
    (killed): `run-<pid>-…` directories whose process is gone."""
    for d in os.listdir(parent):
        parts = d.split("-")
        if len(parts) < 3 or parts[0] != "run" or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(parent, d), ignore_errors=True)
        except PermissionError:
            pass


def settings(args, nofile):
    if args.quick:
        s = dict(
            idle_ns=sizes(args.idle_connections) or [200],
            settle="0.3",
            timing=["--warmup", "0.2", "--duration", "0.5", "--grace", "3"],
            big=(1, 50, 2),
            small=(10, 5, 1),
            pairs=10,
            storm=(200, 10, 20),
            loads=[0.5],
            rounds=args.rounds or 1,
            idle_rounds=1,
        )
    else:
        s = dict(
            # 10k and 50k asked; 50k cannot run under a 20k open-file limit.
            idle_ns=sizes(args.idle_connections) or [10000, 19000],
            settle="1",
            timing=["--warmup", str(args.warmup), "--duration", str(args.duration), "--grace", "3"],
            big=(1, 1000, 10),
            small=(100, 10, 1),
            pairs=50,
            # Issue 11: 10,000 clients drop at once and resume with 50
            # missed messages each.
            storm=(10000, 100, 50),
            loads=[0.25, 0.5, 0.75],
            rounds=args.rounds or 3,
            idle_rounds=args.idle_rounds,
        )
    s["only"] = set(args.only.split(",")) if args.only else None
    if s["only"]:
        # Scenario names as jobs_for makes them; a prefix (`idle`, `fanout`)
        # selects all of its kind.
        known = {j for (j, _, _) in jobs_for(dict(s, only=None), 1)}
        known |= {j.split("-")[0] for j in known}
        unknown = sorted(s["only"] - known)
        if unknown:
            sys.exit(f"bench: unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    # One fd per connection in the server and in loadgen, plus some spare.
    cap = max(100, nofile - 1000)
    if s["storm"][0] > cap:
        log(f"note: storm clients capped at {cap} by the open-file limit ({nofile})")
        s["storm"] = (cap,) + s["storm"][1:]
    if max(s["idle_ns"]) > cap:
        log(f"note: idle connections capped at {cap} by the open-file limit ({nofile})")
        s["idle_ns"] = sorted({min(n, cap) for n in s["idle_ns"]})
    return s


def sizes(text):
    """`--idle-connections 10000,19000` as a list of ints (None if not given)."""
    if not text:
        return None
    try:
        ns = [int(x) for x in text.split(",")]
    except ValueError:
        ns = []
    if not ns or min(ns) < 1:
        sys.exit(f"bench: --idle-connections wants positive whole numbers, comma-separated; got {text!r}")
    return ns


def fmt_loads(loads):
    return ",".join(str(round(x)) for x in loads)


def jobs_for(s, rnd, offered=None, saturation=True):
    """The runs of round `rnd`: (name, tls, loadgen args). With `offered`
    (fixed loads from earlier rounds) the connect, fanout and notice runs add
    their fixed-load phases after the saturation phase, in the same session
    (for connect: the same server process); with saturation=False they run
    only those."""
    t = s["timing"]
    jobs = []
    if saturation and rnd <= s["idle_rounds"]:
        for n in s["idle_ns"]:
            jobs.append((f"idle-{n}", False, ["idle", "--connections", str(n), "--settle", s["settle"]]))
    for name, tls in (("connect-ws", False), ("connect-wss", True)):
        loads = ([0] if saturation else []) + list((offered or {}).get(name, []))
        if loads:
            jobs.append((name, tls, ["connect"] + (["--tls"] if tls else []) + ["--offered", fmt_loads(loads)] + t))
    for (r, m, snd) in (s["big"], s["small"]):
        name = f"fanout-{r}x{m}"
        loads = ([0] if saturation else []) + list((offered or {}).get(name, []))
        if loads:
            jobs.append((name, False, ["fanout", "--rooms", str(r), "--members", str(m),
                                       "--senders-per-room", str(snd), "--offered", fmt_loads(loads)] + t))
    loads = ([0] if saturation else []) + list((offered or {}).get("notice", []))
    if loads:
        jobs.append(("notice", False, ["notice", "--pairs", str(s["pairs"]), "--offered", fmt_loads(loads)] + t))
    if saturation:
        # Protocol v2 (resume): Switchboard's peers only (see Runner.round).
        c, r, m = s["storm"]
        jobs.append(("storm", False, ["storm", "--clients", str(c), "--rooms", str(r),
                                      "--missed", str(m), "--settle", "2"]))
    if s.get("only"):
        # `idle` selects every idle size.
        jobs = [j for j in jobs if j[0] in s["only"] or j[0].split("-")[0] in s["only"]]
    return jobs


def fixed_loads(runner, s):
    """25/50/75% of the slowest peer's median fan-out and handshake
    saturation; 50% of node-ws's notice saturation (of the slowest when
    node-ws is not run)."""
    offered = {}
    by_job = [(f"fanout-{r}x{m}", "deliveries_per_s") for (r, m, _) in (s["big"], s["small"])]
    by_job += [("connect-ws", "handshakes_per_s"), ("connect-wss", "handshakes_per_s")]
    for job, key in by_job:
        sats = [runner.median(p.name, job, mode="saturation", key=key) for p in runner.peers]
        sats = [x for x in sats if x]
        if sats:
            offered[job] = [round(f * min(sats)) for f in s["loads"]]
    nsats = {p.name: runner.median(p.name, "notice", mode="saturation", key="round_trips_per_s")
             for p in runner.peers}
    if nsats.get("node-ws"):
        offered["notice"] = [round(0.5 * nsats["node-ws"])]
        offered["notice_basis"] = "50% of node-ws saturation"
    elif any(nsats.values()):
        offered["notice"] = [round(0.5 * min(x for x in nsats.values() if x))]
        offered["notice_basis"] = "50% of slowest saturation"
    return offered


# --------------------------------------------------------------------------- running


class Runner:
    def __init__(self, args, loadgen, peers, pin):
        self.args = args
        self.loadgen = loadgen
        self.peers = peers
        self.pin = pin
        self.results = []  # (round, peer, job, result dict)
        self.failures = []
        os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
        # Written as it goes under a name of this run's own, then moved to
        # results.jsonl at the end: a run started meanwhile cannot cut it.
        self.raw_path = os.path.join(OUT, f"results.jsonl.run-{os.getpid()}")
        self.raw = open(self.raw_path, "w")
        self.port = BASE_PORT

    def one(self, rnd, peer, job):
        name, tls, lg_args = job
        self.port += 1
        if self.port > BASE_PORT + 800:
            self.port = BASE_PORT + 1
        logpath = os.path.join(OUT, "logs", f"{peer.name}-{name}-r{rnd}.log")
        t0 = time.time()
        server = None
        for attempt in range(3):
            try:
                server = Server(peer, self.port, tls, logpath, self.pin)
                break
            except RuntimeError as e:
                with open(logpath) as f:
                    text = f.read()
                in_use = "EADDRINUSE" in text or "Address already in use" in text
                if not in_use or attempt == 2:
                    self.fail(rnd, peer, name, str(e))
                    return
                self.port += 1
        t_started = time.time()
        try:
            cmd = pinned(1, [self.loadgen] + lg_args + [
                "--addr", f"127.0.0.1:{self.port}", "--protocol", peer.protocol,
                "--pid", str(server.pid), "--peer", peer.name], self.pin)
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=self.args.job_timeout)
            except subprocess.TimeoutExpired:
                self.fail(rnd, peer, name, f"loadgen timed out after {self.args.job_timeout} s")
                return
            got = []
            for line in p.stdout.splitlines():
                line = line.strip()
                if line.startswith("{"):
                    try:
                        got.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
            for r in got:
                r["round"] = rnd
                r["job"] = name
                self.raw.write(json.dumps(r) + "\n")
                self.results.append((rnd, peer.name, name, r))
                if not r.get("ok"):
                    self.fail(rnd, peer, name, r.get("problem", "not ok"), quiet=True)
            self.raw.flush()
            for line in p.stderr.splitlines():
                log("    " + line)
            if p.returncode != 0 and not any(not r.get("ok") for r in got):
                self.fail(rnd, peer, name, f"loadgen exited {p.returncode}: {p.stderr.strip()[-500:]}")
            if not got and p.returncode == 0:
                self.fail(rnd, peer, name, "loadgen printed no result")
            if not server.alive():
                self.fail(rnd, peer, name, f"server exited with {server.proc.returncode} (see {logpath})")
        finally:
            server.stop()
        log(f"  ({time.time() - t0:.1f} s, server start {t_started - t0:.1f} s)")

    def fail(self, rnd, peer, job, why, quiet=False):
        self.failures.append((rnd, peer.name, job, why))
        if not quiet:
            log(f"    FAILED [{peer.name}] {job} round {rnd}: {why}")

    def round(self, rnd, rounds, jobs):
        for job in jobs:
            for peer in self.peers:
                # The storm resumes sessions: protocol v2, which only this
                # build of Switchboard speaks (not the JavaScript peers, nor
                # older builds given with --extra).
                if job[0] == "storm" and peer.name not in V2_PEERS:
                    continue
                log(f"[round {rnd}/{rounds}] {peer.name}: {job[0]}")
                self.one(rnd, peer, job)

    def median(self, peer, job, mode=None, offered=None, key=None):
        vals = []
        for (_, p, j, r) in self.results:
            if p != peer or j != job or not r.get("ok"):
                continue
            if mode and r.get("mode") != mode:
                continue
            if offered is not None and r.get("offered_per_s") != offered:
                continue
            if key in r and isinstance(r[key], (int, float)):
                vals.append(r[key])
        return statistics.median(vals) if vals else None


# --------------------------------------------------------------------------- table


def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def table(runner, s, offered):
    peers = [p.name for p in runner.peers]
    rows = []  # (label, better, {peer: value})

    def row(label, better, job, key, mode=None, off=None):
        vals = {p: runner.median(p, job, mode=mode, offered=off, key=key) for p in peers}
        rows.append((label, better, vals))

    rb, mb, _ = s["big"]
    rs, ms, _ = s["small"]
    for n in s["idle_ns"]:
        row(f"idle: server RSS per connection, KiB (N={n})", "lower", f"idle-{n}", "rss_per_conn_kib")
    for job, scheme in (("connect-ws", "ws://"), ("connect-wss", "wss://")):
        row(f"connect {scheme}: handshakes/s (64 in flight)", "higher", job, "handshakes_per_s", "saturation")
        row(f"connect {scheme}: server CPU s per million handshakes", "lower", job, "cpu_ms_per_k_handshakes",
            "saturation")
    for job, scheme in (("connect-ws", "ws://"), ("connect-wss", "wss://")):
        for frac, load in zip(s["loads"], offered.get(job, [])):
            off = round(load)
            at = f"connect {scheme} @ {fmt(off)}/s ({frac:.0%} of slowest)"
            for q, label in (("p50_us", "p50"), ("p99_us", "p99")):
                row(f"{at}: {label} handshake µs", "lower", job, q, "latency", off)
            # The same load for every peer, as for the fan-out below.
            row(f"{at}: server CPU s per million handshakes", "lower", job, "cpu_ms_per_k_handshakes",
                "latency", off)
    for (r, m) in ((rb, mb), (rs, ms)):
        job = f"fanout-{r}x{m}"
        row(f"fanout {r}x{m}: deliveries/s at saturation", "higher", job, "deliveries_per_s", "saturation")
        row(f"fanout {r}x{m}: server CPU s per million deliveries", "lower", job, "cpu_s_per_m_deliveries", "saturation")
        row(f"fanout {r}x{m}: server CPU use at saturation (1.0 = one core)", "info", job, "server_cpu_util",
            "saturation")
    for (r, m) in ((rb, mb), (rs, ms)):
        job = f"fanout-{r}x{m}"
        for frac, load in zip(s["loads"], offered.get(job, [])):
            off = round(load)
            for q, label in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
                row(f"fanout {r}x{m} @ {fmt(off)}/s ({frac:.0%} of slowest): {label} latency µs", "lower",
                    job, q, "latency", off)
            # The same load for every peer: its cost does not depend on
            # which side of the benchmark was the bottleneck.
            row(f"fanout {r}x{m} @ {fmt(off)}/s ({frac:.0%} of slowest): server CPU s per million deliveries",
                "lower", job, "cpu_s_per_m_deliveries", "latency", off)
    row("notice: round trips/s at saturation", "higher", "notice", "round_trips_per_s", "saturation")
    c, r, m = s["storm"]
    row(f"storm ({c} clients drop, {m} missed each): seconds until all caught up", "lower", "storm",
        "catch_up_s")
    row("storm: server RSS at its peak, MiB", "lower", "storm", "rss_peak_mib")
    row("storm: messages lost, duplicated or out of order", "lower", "storm", "lost")
    row("notice: server CPU s per million notices", "lower", "notice", "cpu_s_per_m_notices", "saturation")
    if offered.get("notice"):
        off = round(offered["notice"][0])
        for q, label in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
            row(f"notice @ {fmt(off)}/s round trips ({offered['notice_basis']}): {label} µs", "lower",
                "notice", q, "latency", off)
        row(f"notice @ {fmt(off)}/s round trips ({offered['notice_basis']}): server CPU s per million notices",
            "lower", "notice", "cpu_s_per_m_notices", "latency", off)

    base = "switchboard"
    others = [p for p in peers if p != base]
    ratio_cols = [f"sb/{p}" for p in others] if base in peers else []
    head = ["scenario (median of rounds)"] + peers + ratio_cols
    lines = []
    body = []
    for (label, better, vals) in rows:
        cells = [label] + [fmt(vals[p]) for p in peers]
        if base in peers:
            for p in others:
                a, b = vals.get(base), vals.get(p)
                cells.append(f"{a / b:.2f}" if a is not None and b else "-")
        body.append((cells, better))
    widths = [max(len(head[i]), *(len(c[0][i]) for c in body)) for i in range(len(head))]
    sep = "  "
    lines.append(sep.join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)) + "  better")
    lines.append("-" * (sum(widths) + len(sep) * (len(widths) - 1) + 8))
    for cells, better in body:
        lines.append(sep.join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))
                     + f"  {better}")
    return "\n".join(lines), rows


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 round; exit 1 on any failure")
    ap.add_argument("--rounds", type=int, help="rounds (default: 3, quick: 1)")
    ap.add_argument("--duration", type=float, default=1.5, help="seconds measured per phase (full run)")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up before each phase (full run)")
    ap.add_argument("--fixed-rounds", type=int, default=1,
                    help="rounds at the end that also run the fixed loads (default: 1, the last; at most rounds - 1)")
    ap.add_argument("--idle-rounds", type=int, default=1, help="rounds of the idle scenario (full run; slow for Socket.IO)")
    ap.add_argument("--idle-connections", help="connections for idle, comma-separated sizes (default: 10000,19000; "
                    "capped by the fd limit)")
    ap.add_argument("--peers", help="comma-separated subset of: switchboard,switchboard-nohistory,switchboard-limits,switchboard-native,"
                    "node-ws,socketio,bun (and --extra names)")
    ap.add_argument("--release", action="store_true", help="quick mode: use release builds (default: debug)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--switchboard", help="switchboard binary to use (implies nothing about building)")
    ap.add_argument("--loadgen", help="loadgen binary to use")
    ap.add_argument("--extra", action="append", metavar="NAME=BINARY",
                    help="also measure this switchboard binary as peer NAME (repeatable; for A/B of a change)")
    ap.add_argument("--only", help="comma-separated subset of the scenarios: idle,connect-ws,connect-wss,"
                    "fanout-1x1000,fanout-100x10,notice (quick: fanout-1x50,fanout-10x5)")
    ap.add_argument("--no-native", action="store_true", help="build without the native-rules feature")
    ap.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    ap.add_argument("--job-timeout", type=float, default=180.0, help="seconds one loadgen run may take")
    args = ap.parse_args()
    if args.fixed_rounds < 1:
        sys.exit("bench: --fixed-rounds wants 1 or more")

    started = time.time()
    load_before = loadavg()
    os.makedirs(OUT, exist_ok=True)
    nofile = raise_nofile()

    for tool in ("node", "npm", "cargo"):
        if not shutil.which(tool):
            sys.exit(f"bench: `{tool}` is needed and not on PATH")
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if not pin:
        log("note: not pinning (no taskset, fewer than 2 CPUs, or --no-pin)")

    # npm packages of the JavaScript peers that will run (all by default)
    wanted = wanted_peers(args)
    for name in JS_PEERS:
        if wanted is None or name in wanted:
            npm_ci(name)
    bun = bun_binary() if wanted is None or "bun" in wanted else None
    if bun:
        log(f"bun: {bun[0]} (Bun {bun[1]})")

    release = args.release or not args.quick
    profile_dir = "release" if release else "debug"
    if not args.no_build:
        cmd = ["cargo", "build", "-p", "switchboard", "-p", "loadgen"] + (["--release"] if release else [])
        # The rules compiled natively into the host (the switchboard-native
        # peer) sit behind a cargo feature; the default (wasm) path of that
        # binary is the same code as without it.
        with open(os.path.join(ROOT, "host", "Cargo.toml")) as f:
            if "native-rules" in f.read() and not args.no_native:
                cmd += ["--features", "switchboard/native-rules"]
        run(cmd, cwd=ROOT)
    sb_bin = os.path.abspath(args.switchboard) if args.switchboard else os.path.join(ROOT, "target", profile_dir, "switchboard")
    loadgen = os.path.abspath(args.loadgen) if args.loadgen else os.path.join(ROOT, "target", profile_dir, "loadgen")
    for b in (sb_bin, loadgen):
        if not os.path.exists(b):
            sys.exit(f"bench: {b} not built")
    # Run private copies: the shared target/ directory may be rebuilt (with
    # other features) by someone else while the benchmark runs. One
    # directory per run: another run started meanwhile (`make test`'s quick
    # one, with debug builds) must not swap the binary under this one.
    os.makedirs(os.path.join(OUT, "bin"), exist_ok=True)
    drop_stale_bins(os.path.join(OUT, "bin"))
    bindir = tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=os.path.join(OUT, "bin"))
    atexit.register(shutil.rmtree, bindir, True)
    for name in ("switchboard", "loadgen"):
        src = sb_bin if name == "switchboard" else loadgen
        shutil.copy2(src, os.path.join(bindir, name))
    sb_bin = os.path.join(bindir, "switchboard")
    loadgen = os.path.join(bindir, "loadgen")

    cert_dir = os.path.join(OUT, "cert")
    if not os.path.exists(os.path.join(cert_dir, "key.pem")):
        run([loadgen, "gencert", "--out-dir", cert_dir])

    if loadavg() > 1.5:
        log(f"WARNING: load average is {loadavg():.1f} on {os.cpu_count()} CPUs: other work shares the pinned "
            "cores, so the figures will be noisy")
    peers = make_peers(args, sb_bin, cert_dir, bun)
    s = settings(args, nofile)
    runner = Runner(args, loadgen, peers, pin)
    log(f"peers: {', '.join(p.name for p in peers)}; rounds: {s['rounds']}; "
        f"{'release' if release else 'debug'} builds; pinned: {pin}")

    # Rounds 1..R-1 measure saturation (and idle); the fixed loads of the
    # latency phases come from their medians, and round R measures
    # saturation and then the fixed loads in the same sessions (one set-up
    # each; for connect, one server process).
    # With a single round, the latency phases get sessions of their own.
    # With --fixed-rounds N the last N rounds all add the fixed loads (the
    # same rates, from the rounds before them), for medians of those too.
    rounds = s["rounds"]
    fixed_n = min(args.fixed_rounds, rounds - 1)
    if fixed_n < args.fixed_rounds and rounds >= 2:
        log(f"note: --fixed-rounds {args.fixed_rounds} needs more rounds; the last {fixed_n} of {rounds} have them")
    first_fixed = rounds - fixed_n + 1
    for rnd in range(1, max(first_fixed, 2)):
        runner.round(rnd, rounds, jobs_for(s, rnd))
    offered = fixed_loads(runner, s)
    log(f"fixed loads for the latency phases: {offered}")
    if rounds >= 2:
        for rnd in range(first_fixed, rounds + 1):
            runner.round(rnd, rounds, jobs_for(s, rnd, offered))
    else:
        runner.round(1, 1, jobs_for(s, 1, offered, saturation=False))

    text, rows = table(runner, s, offered)
    elapsed = time.time() - started
    header = (f"Switchboard benchmark ({'quick' if args.quick else 'full'}; {s['rounds']} round(s); "
              f"{'release' if release else 'debug'} builds; servers on CPU 0, loadgen on CPU 1: {pin}; "
              f"{elapsed:.0f} s; load average {load_before:.1f} before, {loadavg():.1f} after)")
    print()
    print(header)
    print(text)
    runner.raw.close()
    os.replace(runner.raw_path, os.path.join(OUT, "results.jsonl"))
    with open(os.path.join(OUT, "table.txt"), "w") as f:
        f.write(header + "\n" + text + "\n")
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump({"header": header, "rows": [{"scenario": l, "better": b, "values": v} for (l, b, v) in rows],
                   "failures": runner.failures}, f, indent=1)
    # loadgen is one thread: its run-queue wait is other work taking its core.
    windows = [r for (_, _, _, r) in runner.results if "client_wait_frac" in r]
    disturbed = [r for r in windows if r["client_wait_frac"] > 0.1]
    if disturbed:
        print(f"\nnote: in {len(disturbed)} of {len(windows)} measured windows the load generator waited for "
              f"its core more than 10% of the time (other work on the machine; median wait "
              f"{statistics.median(r['client_wait_frac'] for r in windows):.0%}): figures are noisy. "
              "server_wait_frac / client_wait_frac in results.jsonl tell per run.")
    if runner.failures:
        print(f"\n{len(runner.failures)} failure(s):")
        for (rnd, p, j, why) in runner.failures:
            print(f"  round {rnd} [{p}] {j}: {why}")
        sys.exit(1)
    print(f"\nall scenarios ok; raw results in {os.path.relpath(OUT, os.getcwd())}/results.jsonl")


if __name__ == "__main__":
    main()
