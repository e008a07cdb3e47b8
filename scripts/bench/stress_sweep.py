#!/usr/bin/env python3
"""`make stress`: where the accept path bends. Runs an open-model load of POST /payments
(a constant arrival rate, whatever the answers' speed) at a series of rates against the
whole stack (scripts/stack/run.sh from target/x86_64-unknown-linux-gnu/release: two simulators at delay 0, two api
workers on a fresh SQLite file, the lb) and, at the same rates, against the bare `floor`
responder, and reports the highest rate at which each keeps p99 under 5 ms with no error,
no dropped request and, for the stack, no lag and no inconsistency after the drain.

Two load generators, because the generator shares the two cores with what it measures:
- `k6`: k6/stress.js against the stack (it purges, loads, drains and compares our
  summary with the processors'), scripts/bench/lb/accept.js against the floor. The reference,
  the contest's own tool, but it needs about 130 µs of CPU per request (200 before the
  scenario was trimmed), so here it saturates the machine itself near 5,000/s.
- `open-load`: target/x86_64-unknown-linux-gnu/release/open-load (testkit), a one-thread generator that needs a
  fraction of that, so the stack's own limit shows. It opens STRESS_CONNECTIONS
  keep-alive connections first and rotates its requests over them, as k6 spreads its
  requests over 500 VUs' connections. The drain check is done here.

STRESS_REALTIME=1 (root only) runs the lb, the floor and open-load under SCHED_FIFO, so
they get a core the moment they wake: what is left is the lb's own latency, without the
wait for the api workers' and the simulators' time slices on two shared cores (the
contest gives every service its own CPU quota). k6 is never run that way (it would starve
the stack).

Every run is bounded (STRESS_SECS of load, at most DRAIN_SECS of drain). Each row also
has the CPU seconds of the generator (rusage of the child) and of every stack process
(schedstat), per 1,000 payments. Prints a table and writes
bench/results/runs/<date>-stress.json.

Variables: STRESS_RATES ("1000 2000 4000 6000 8000 10000 12000"), STRESS_SECS (10),
STRESS_TOOLS ("k6 open-load"), STRESS_TARGETS ("lb floor"), STRESS_CONNECTIONS (500),
STRESS_REALTIME (unset),
DRAIN_SECS (30), BIN_DIR (target/x86_64-unknown-linux-gnu/release).
"""
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
from stack import NativeStack, Process, cpu_seconds, http_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / "target" / "x86_64-unknown-linux-gnu" / "release"))
RATES = [int(r) for r in os.environ.get("STRESS_RATES", "1000 2000 4000 6000 8000 10000 12000").split()]
SECS = int(os.environ.get("STRESS_SECS", "10"))
TOOLS = os.environ.get("STRESS_TOOLS", "k6 open-load").split()
TARGETS = os.environ.get("STRESS_TARGETS", "lb floor").split()
DRAIN_SECS = int(os.environ.get("DRAIN_SECS", "30"))
REALTIME = os.environ.get("STRESS_REALTIME") == "1"
CONNECTIONS = int(os.environ.get("STRESS_CONNECTIONS", "500"))
# SCHED_FIFO priorities of STRESS_REALTIME: the generator above the servers it measures.
SERVER_RT, GENERATOR_RT = "10", "20"
P99_LIMIT_MS = 5.0
# The simulators' admin token (sim's default, as the contest's processors boot with).
ADMIN = {"X-Rinha-Token": "123"}
# k6's garbage collector runs less often: a few hundred MB more, a fifth less CPU per request.
K6_ENV = {"GOGC": "800"}


class Stack(NativeStack):
    """The native stack (scripts/lib/stack.py; STORAGE and API_WORKERS as in our environment)
    plus the floor on a free port; `stop` stops both by PID."""

    def __init__(self, work):
        super().__init__(work, BIN_DIR, os.environ.get("STORAGE", "sqlite"), int(os.environ.get("API_WORKERS", "2")),
                         {"LB_METRICS_LISTEN": "off"}, extra_ports=["floor"])
        self.floor = None

    def start(self):
        super().start()
        listen = f"127.0.0.1:{self.ports['floor']}"
        self.floor = Process([BIN_DIR / "floor"], self.work / "floor.log", {"FLOOR_LISTEN": listen})
        self.floor.wait_port(self.ports["floor"], "the floor")
        if REALTIME:
            for pid in (self.pid("lb"), self.floor.pid):
                subprocess.run(["chrt", "--all-tasks", "--fifo", "--pid", SERVER_RT, str(pid)], check=True)

    def stop(self):
        if self.floor:
            self.floor.stop()
        super().stop()

    def cpu(self):
        out = {}
        for name, pid in [*self.pids().items(), ("floor", self.floor.pid)]:
            try:
                out[name] = cpu_seconds(pid)  # with a PostgreSQL server's child processes
            except OSError:
                pass
        return out

    def purge(self):
        http_json("POST", f"{self.url('lb')}/purge-payments")
        for name in ("default", "fallback"):
            http_json("POST", f"{self.url(name)}/admin/purge-payments", headers=ADMIN)

    def recorded(self, since):
        """(our total, the processors' total) for payments requested since `since`."""
        now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
        q = f"from={iso(since)}&to={iso(now)}"
        ours = http_json("GET", f"{self.url('lb')}/payments-summary?{q}")
        theirs = sum(http_json("GET", f"{self.url(name)}/admin/payments-summary?{q}", headers=ADMIN)["totalRequests"]
                     for name in ("default", "fallback"))
        return ours["default"]["totalRequests"] + ours["fallback"]["totalRequests"], theirs


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_k6(stack, target, rate, work):
    result = work / f"k6-{target}-{rate}.json"
    if target == "lb":
        argv = ["k6", "run", "--quiet", "--no-color", "--address", "127.0.0.1:0",
                "-e", f"RATE={rate}", "-e", f"DURATION_SECS={SECS}", "-e", f"DRAIN_SECS={DRAIN_SECS}",
                "-e", f"BACKEND_URL={stack.url('lb')}",
                "-e", f"PROCESSOR_DEFAULT_URL={stack.url('default')}",
                "-e", f"PROCESSOR_FALLBACK_URL={stack.url('fallback')}",
                "-e", f"RESULT_FILE={result}", str(ROOT / "k6" / "stress.js")]
        subprocess.run(argv, env={**os.environ, **K6_ENV}, stdout=subprocess.DEVNULL, check=True)
        r = json.loads(result.read_text())
        return {"sent": r["payments_sent"] + r["payments_failed"], "ok": r["payments_sent"],
                "failed": r["payments_failed"], "dropped": r["dropped_iterations"],
                "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "p999_ms": r["p999_ms"], "max_ms": r["max_ms"],
                "lag": r["lag"], "inconsistency": r["end_inconsistency"]}
    argv = ["k6", "run", "--quiet", "--no-color", "--address", "127.0.0.1:0",
            "-e", f"RATE={rate}", "-e", f"SECONDS={SECS}", "-e", "ROUNDS=1",
            # The VU pool of k6/stress.js (lib.js openLoad), so both targets get as many connections.
            "-e", f"PRE_VUS={min(rate, 500)}", "-e", "MAX_VUS=2000",
            "-e", f"TARGETS=floor={stack.url('floor')}", "-e", f"SUMMARY_JSON={result}",
            str(ROOT / "scripts" / "bench" / "lb" / "accept.js")]
    subprocess.run(argv, env={**os.environ, **K6_ENV}, stdout=subprocess.DEVNULL, check=True)
    return json.loads(result.read_text())["floor"]


def run_open_load(stack, target, rate, work):
    result = work / f"open-load-{target}-{rate}.json"
    since = datetime.datetime.now(datetime.timezone.utc)
    if target == "lb":
        stack.purge()
    argv = ["chrt", "--fifo", GENERATOR_RT] if REALTIME else []
    argv += [str(BIN_DIR / "open-load"), "--target", stack.url(target), "--rate", str(rate),
            "--secs", str(SECS), "--connections", str(CONNECTIONS), "--out", str(result)]
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    r = json.loads(result.read_text())
    row = {k: r[k] for k in ("sent", "ok", "failed", "dropped", "p50_ms", "p99_ms", "p999_ms", "max_ms")}
    if target == "lb":
        row["lag"], row["inconsistency"] = drain(stack, since, r["ok"])
    return row


def drain(stack, since, accepted):
    """Waits (DRAIN_SECS at most) until our summary counts every accepted payment and
    agrees with the processors'; returns (lag, inconsistency) as last read."""
    deadline = time.time() + DRAIN_SECS
    while True:
        ours, theirs = stack.recorded(since)
        if (ours == accepted and theirs == ours) or time.time() >= deadline:
            return accepted - ours, abs(theirs - ours)
        time.sleep(0.25)


def passes(row):
    return (row["p99_ms"] < P99_LIMIT_MS and row["failed"] == 0 and row["dropped"] == 0
            and row.get("lag", 0) == 0 and row.get("inconsistency", 0) == 0)


def main():
    for tool in TOOLS:
        exe = "k6" if tool == "k6" else BIN_DIR / "open-load"
        if tool not in ("k6", "open-load") or subprocess.run(["which", str(exe)], capture_output=True).returncode:
            print(f"stress: tool {tool!r} is not available (k6: make deps; open-load: make release)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="rinha-stress."))
    rows = []
    with Stack(work) as stack:
        for tool in TOOLS:
            for rate in RATES:
                for target in TARGETS:
                    cpu0, gen0 = stack.cpu(), child_cpu()
                    row = (run_k6 if tool == "k6" else run_open_load)(stack, target, rate, work)
                    cpu1, gen1 = stack.cpu(), child_cpu()
                    n = max(row["ok"], 1) / 1000
                    row.update(tool=tool, target=target, rate=rate, secs=SECS,
                               generator_cpu_s_per_1k=round((gen1 - gen0) / n, 4),
                               stack_cpu_s_per_1k={k: round((cpu1[k] - cpu0.get(k, 0)) / n, 4)
                                                   for k in cpu1 if k != "sim-fallback"})
                    row["pass"] = passes(row)
                    rows.append(row)
                    print(line(row), flush=True)
    report(rows)
    return 0


def line(r):
    lag = f"lag {r['lag']} incons {r['inconsistency']}" if "lag" in r else ""
    return (f"{r['tool']:9} {r['target']:5} {r['rate']:6}/s  ok {r['ok']:7} failed {r['failed']} dropped {r['dropped']}  "
            f"p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} p99.9 {r['p999_ms']:.3f} ms  {lag:20} "
            f"gen {r['generator_cpu_s_per_1k'] * 1000:.0f} µs/req  {'PASS' if r['pass'] else 'fail'}")


def best_rates(rows):
    """{"tool/target": the highest rate that passed with every lower rate tried passing too}."""
    best, failed = {}, set()
    for r in sorted(rows, key=lambda r: r["rate"]):
        key = f"{r['tool']}/{r['target']}"
        best.setdefault(key, 0)
        if not r["pass"]:
            failed.add(key)
        elif key not in failed:
            best[key] = r["rate"]
    return best


def report(rows):
    best = best_rates(rows)
    print("\nhighest rate (and all below it) with p99 < 5 ms, no error, no drop (and for lb: lag 0, consistent):")
    for key, rate in best.items():
        print(f"  {key:16} {rate}/s")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M%S")  # seconds: a short sweep takes under a minute
    storage = os.environ.get("STORAGE", "sqlite")
    suffix = ("-realtime" if REALTIME else "") + ("-postgres" if storage == "postgres" else "")
    out = ROOT / "bench" / "results" / "runs" / f"{stamp}-stress{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    out.write_text(json.dumps({"commit": commit, "storage": storage, "secs": SECS, "realtime": REALTIME, "connections": CONNECTIONS, "rates": RATES, "best": best, "rows": rows,
                               "cores": os.cpu_count(), "loadavg_end": os.getloadavg()}, indent=2) + "\n")
    print(f"stress: written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
