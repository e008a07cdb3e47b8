#!/usr/bin/env python3
"""CPU cost of one api worker per payment: intake, attempt, processor call, mark processed.

Starts two `sim` processors (delay 0) and one `api` worker on a fresh database in a temp
dir, all on free 127.0.0.1 ports; posts N payments to `POST /intake` over one keep-alive
connection (as the lb does) in batches of BATCH at RATE payments/s (0 = as fast as the
answers come); waits until every payment is processed; reads the time the worker's threads
ran (their schedstat: scripts/lib/stack.py cpu_seconds) before the first and after the last
payment. Repeats each configuration REPEAT times and reports the median. Processes are
stopped by PID.

    python3 scripts/bench/api/cpu.py                      # CONFIGS=1:300:6000,0:300:6000,32:0:20000
    CONFIGS=1:300:20000 REPEAT=5 python3 scripts/bench/api/cpu.py

CONFIGS is a comma list of BATCH:RATE:N. BATCH 0 sends like the lb's forwarder: once a
payment has arrived it waits LB_BATCH_LINGER_MS (default 100, as the lb), then the request
carries whatever arrived meanwhile (up to 256), one request at a time. At the contest's
rates that is about one payment per request (~300 intake requests/s per worker); batch 32
unpaced is a backlog.
API_WRAPPER (e.g. "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out") runs the
worker under a profiler; its CPU figure then means nothing. Appends a line per
configuration to bench/results/api-cpu.txt (RESULT_FILE).
"""

import contextlib
import http.client
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))  # scripts/lib
from stack import Process, StackError, cpu_seconds, free_ports, memory_kb, tail  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN_DIR = os.environ.get("BIN_DIR", os.path.join(ROOT, "target", "release"))
CONFIGS = os.environ.get("CONFIGS", "1:300:6000,0:300:6000,32:0:20000")
REPEAT = int(os.environ.get("REPEAT", "3"))
RESULT_FILE = os.environ.get("RESULT_FILE", os.path.join(ROOT, "bench", "results", "api-cpu.txt"))
# Batch 0 waits like the lb's forwarder: its linger after the first payment (lb default 100 ms).
LB_LINGER_S = int(os.environ.get("LB_BATCH_LINGER_MS", "100")) / 1000
API_WRAPPER = shlex.split(os.environ.get("API_WRAPPER", ""))
# Every wait is bounded.
SETTLE_TIMEOUT_S = 120


def get(addr, path):
    conn = http.client.HTTPConnection(addr, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def metric(addr, sample):
    _, text = get(addr, "/metrics")
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[1])
    return 0.0


def processed(addr):
    return metric(addr, 'api_processed_total{processor="default"}') + metric(
        addr, 'api_processed_total{processor="fallback"}'
    )


def post_all(addr, n, batch, rate):
    """Posts n payments arriving at `rate`/s (0: all at once) over one keep-alive
    connection, one request at a time. batch > 0: fixed batches of that size; batch 0:
    like the lb's forwarder, each request takes whatever has arrived by the end of its
    linger (up to 256)."""
    conn = http.client.HTTPConnection(addr, timeout=10)
    now_ms = int(time.time() * 1000)
    start = time.monotonic()
    sent = 0
    while sent < n:
        arrived = n if rate <= 0 else min(n, int((time.monotonic() - start) * rate))
        if arrived <= sent:
            time.sleep(max(0.0, start + (sent + 1) / rate - time.monotonic()))
            continue
        if batch == 0 and LB_LINGER_S > 0:
            # The lb's forwarder takes the first payment, waits its linger, then takes the rest.
            time.sleep(LB_LINGER_S)
            arrived = n if rate <= 0 else min(n, int((time.monotonic() - start) * rate))
        size = min(batch, n - sent) if batch > 0 else min(256, arrived - sent)
        body = "".join("%s 1990 %d\n" % (uuid.uuid4(), now_ms) for _ in range(size)).encode()
        conn.request("POST", "/intake", body)
        answer = conn.getresponse()
        text = answer.read()
        if answer.status != 200:
            raise SystemExit("intake answered %d: %s" % (answer.status, text))
        sent += size
    conn.close()


def wait_processed(addr, n):
    end = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < end:
        if processed(addr) >= n:
            return
        time.sleep(0.2)
    raise SystemExit("only %d of %d payments processed after %ss" % (processed(addr), n, SETTLE_TIMEOUT_S))


def one_run(batch, rate, n, workdir):
    log = os.path.join(workdir, "log.txt")
    default, fallback, port = free_ports(3)
    with contextlib.ExitStack() as running:  # stops the processes by PID, last started first
        for sim, fee in ((default, "0.05"), (fallback, "0.15")):
            env = {"SIM_LISTEN": "127.0.0.1:%d" % sim, "SIM_FEE": fee}
            running.enter_context(Process([os.path.join(BIN_DIR, "sim")], log, env)).wait_port(sim, "sim")
        addr = "127.0.0.1:%d" % port
        env = {
            "API_LISTEN": addr,
            "DATABASE_PATH": os.path.join(tempfile.mkdtemp(dir=workdir), "payments.db"),
            "PROCESSOR_DEFAULT_URL": "http://127.0.0.1:%d" % default,
            "PROCESSOR_FALLBACK_URL": "http://127.0.0.1:%d" % fallback,
        }
        api = running.enter_context(Process(API_WRAPPER + [os.path.join(BIN_DIR, "api")], log, env))
        api.wait_port(port, "the api worker", timeout=120)
        # Warm-up: connections, prepared statements, page cache.
        post_all(addr, 200, batch, 0)
        wait_processed(addr, 200)
        before, t0 = cpu_seconds(api.pid), time.monotonic()
        post_all(addr, n, batch, rate)
        wait_processed(addr, 200 + n)
        after, wall = cpu_seconds(api.pid), time.monotonic() - t0
        return (after - before) / n * 1e6, wall, memory_kb(api.pid)[1] / 1024


def main():
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "api", "storage"], capture_output=True, text=True).stdout.strip()
    lines = []
    with tempfile.TemporaryDirectory(prefix="api-cpu-") as workdir:
        for config in CONFIGS.split(","):
            batch, rate, n = (int(x) for x in config.split(":"))
            try:
                runs = [one_run(batch, rate, n, workdir) for _ in range(REPEAT)]
            except StackError as e:
                raise SystemExit("%s; its last lines:\n%s" % (e, tail(os.path.join(workdir, "log.txt")))) from e
            per = [r[0] for r in runs]
            line = "%s%s WRITE_LINGER_US=%s batch=%s%s rate=%s n=%d: median %.1f us CPU/payment (runs %s), wall %.1f s, peak RSS %.1f MB" % (
                commit,
                "+dirty" if dirty else "",
                os.environ.get("WRITE_LINGER_US", "default"),
                batch or "lb-like",
                "" if batch else "(%d ms)" % (LB_LINGER_S * 1000),
                rate or "max",
                n,
                statistics.median(per),
                " ".join("%.1f" % p for p in per),
                statistics.median(r[1] for r in runs),
                max(r[2] for r in runs),
            )
            print(line, flush=True)
            lines.append(line)
    os.makedirs(os.path.dirname(RESULT_FILE), exist_ok=True)
    with open(RESULT_FILE, "a") as f:
        stamp = time.strftime("%Y-%m-%d %H:%M")
        f.writelines("%s %s\n" % (stamp, line) for line in lines)

if __name__ == "__main__":
    sys.exit(main())
