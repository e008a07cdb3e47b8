#!/usr/bin/env python3
"""Samples the processes of a running stack while scripts/bench/bench.sh loads it: CPU seconds
and run-queue delay (the scheduler's own run and wait time of every thread,
/proc/<pid>/task/<tid>/schedstat), memory (VmRSS, and VmHWM, the kernel's own peak, from
/proc/<pid>/status) and, under a CPU limit, the throttling of its cgroup (cpu.stat) of every
process that scripts/stack/run.sh lists in <run dir>/<name>.pid,
the queue gauges (`*_queue_depth`, `*_payments_held`, `*_pending_payments`, `*_in_flight`, `*_pinned_waiting`,
each label set its own series) and the buckets of the lb's answer time
(`lb_payment_answer_seconds_bucket`) of the services' GET /metrics, and, with --processors, the
calls each simulator is serving (`paymentsRunning` + `paymentsWaiting` of its
GET /admin/stats, a route of our simulator only) as `in_flight`.
A restarted process (new PID) is followed; its predecessor's last reading is kept. The
whole machine's busy CPU (/proc/stat) is sampled too: on a shared machine it shows how much
of the load was not ours (k6 itself, or anything else running).

Runs until SIGTERM or SIGINT, then takes a last sample and writes the JSON to --out.

Usage: sampler.py --run-dir DIR [DIR ...] --out FILE [--interval 0.5] [--metrics NAME=URL ...]
                        [--processors NAME=URL ... --token TOKEN]
(TOKEN: the admin token the load test sets on the processors; their start token, 123, is
tried when it is refused, before the test sets it and after it gives it back.)
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
from stack import cgroup_throttling, descendants, memory_kb, thread_schedstats  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
# The queue gauges, and the buckets of the lb's own answer time (cumulative counts).
GAUGE = re.compile(r"^(\w+_(?:queue_depth|payments_held|pending_payments|in_flight|pinned_waiting"
                   r"|payment_answer_seconds_bucket)(?:\{[^}]*\})?)\s+([0-9.eE+-]+)\s*$", re.M)
START_TOKEN = "123"


def read_proc(pid):
    """({tid: (cpu seconds, run-queue wait seconds)}, rss kB, peak rss kB) of a live process,
    or None once it is gone."""
    try:
        return thread_schedstats(pid), *memory_kb(pid)
    except OSError:
        return None


def read_throttling(pid):
    """cgroup_throttling(pid), or None where it cannot be read (no limit, no such process)."""
    try:
        return cgroup_throttling(pid)
    except (OSError, ValueError, KeyError):
        return None


def machine_busy_seconds():
    """CPU seconds all cores have spent not idle since boot (the first line of /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket: the workers of the container deployment listen on one."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def get_text(url, timeout=0.3):
    """GET of an http:// URL, or of /metrics at `unix:/path/to.sock`."""
    if url.startswith("unix:"):
        conn = UnixHTTPConnection(url[len("unix:"):], timeout)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()
        finally:
            conn.close()
    with urllib.request.urlopen(url, timeout=timeout) as res:
        return res.read().decode()


def read_gauges(url):
    try:
        return {name: float(v) for name, v in GAUGE.findall(get_text(url))}
    except (OSError, ValueError, http.client.HTTPException):
        return None


def read_processor(url, tokens):
    """{"in_flight": n} from a simulator's GET /admin/stats (running + waiting payment calls),
    or None; the first of `tokens` it accepts is moved to the front."""
    for token in list(tokens):
        req = urllib.request.Request(f"{url}/admin/stats", headers={"X-Rinha-Token": token})
        try:
            with urllib.request.urlopen(req, timeout=0.3) as res:
                stats = json.loads(res.read())
        except urllib.error.HTTPError as e:
            if e.code == 401:
                continue
            return None
        except (OSError, ValueError, http.client.HTTPException):
            return None
        tokens.remove(token)
        tokens.insert(0, token)
        return {"in_flight": float(stats["paymentsRunning"] + stats["paymentsWaiting"])}
    return None


class Process:
    """One service of the stack across restarts."""

    def __init__(self):
        self.pids = {}  # pid -> last (rss, hwm)
        self.threads = {}  # (pid, tid) -> last (cpu, run-queue wait) seconds (kept once gone)
        # [t, cpu seconds so far, rss kB, run-queue wait seconds so far,
        #  [periods, seconds] throttled so far or None (no CPU limit)]
        self.series = []

    def sample(self, t, pid):
        reading = read_proc(pid)
        if reading is None:
            return
        threads, rss, hwm = reading
        self.pids[pid] = (rss, hwm)
        self.threads.update({(pid, tid): stats for tid, stats in threads.items()})
        # A service's child processes count as its CPU (not as restarts): PostgreSQL's
        # backends, when `make run STORAGE=postgres` runs the database. One that ends
        # between two samples loses at most its last interval.
        for child in descendants(pid):
            try:
                child_threads = thread_schedstats(child)
            except OSError:
                continue
            self.threads.update({(child, tid): stats for tid, stats in child_threads.items()})
        throttled = read_throttling(pid)
        wait = sum(w for _, w in self.threads.values())
        self.series.append([round(t, 3), round(self.cpu_seconds(), 3), rss, round(wait, 4),
                            None if throttled is None else [throttled[0], round(throttled[1], 4)]])

    def cpu_seconds(self):
        return sum(cpu for cpu, _ in self.threads.values())

    def summary(self):
        return {
            "cpu_seconds": round(self.cpu_seconds(), 3),
            "peak_rss_mb": round(max((r[1] for r in self.pids.values()), default=0) / 1024, 1),
            "restarts": max(len(self.pids) - 1, 0),
        }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", required=True, type=Path, nargs="+")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--metrics", nargs="*", default=[], help="NAME=URL of a GET /metrics (URL may be unix:/path/to.sock)")
    ap.add_argument("--processors", nargs="*", default=[], help="NAME=URL of a simulator (its base URL)")
    ap.add_argument("--token", default=START_TOKEN, help="the admin token the load test sets")
    args = ap.parse_args()
    endpoints = dict(m.split("=", 1) for m in args.metrics)
    processors = dict(m.split("=", 1) for m in args.processors)
    tokens = list(dict.fromkeys([args.token, START_TOKEN]))

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    start = time.time()
    procs, gauges = {}, {name: {} for name in [*endpoints, *processors]}
    busy0, machine = machine_busy_seconds(), []
    while True:
        t = time.time() - start
        machine.append([round(t, 3), round(machine_busy_seconds() - busy0, 3), 0])
        for f in sorted(p for d in args.run_dir for p in d.glob("*.pid")):
            try:
                pid = int(f.read_text().strip())
            except (OSError, ValueError):
                continue
            procs.setdefault(f.stem, Process()).sample(t, pid)
        for name, url in endpoints.items():
            for metric, value in (read_gauges(url) or {}).items():
                gauges[name].setdefault(metric, []).append([round(t, 3), value])
        for name, url in processors.items():
            for metric, value in (read_processor(url, tokens) or {}).items():
                gauges[name].setdefault(metric, []).append([round(t, 3), value])
        if stop:
            break
        time.sleep(args.interval)

    args.out.write_text(json.dumps({
        "started_at_ms": int(start * 1000),
        "interval_s": args.interval,
        "processes": {name: p.summary() for name, p in procs.items()},
        "machine_cpu_seconds": round(machine[-1][1], 3),
        "series": {**{name: p.series for name, p in procs.items()}, "machine (all)": machine},
        "gauges": gauges,
    }))


if __name__ == "__main__":
    main()
