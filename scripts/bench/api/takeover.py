#!/usr/bin/env python3
"""How long a SIGKILLed worker's payments take to be paid by the other worker.

Starts the stack with scripts/stack/run.sh from BIN_DIR on free ports (two simulators, two
workers, the lb; run.sh restarts the killed worker a second later, under a new owner id),
slows the default processor so that the workers have calls in flight, posts PAYMENTS
payments through the lb, SIGKILLs api1 once they are all accepted, puts the default back to
no delay, and times from the kill until our summary counts every payment. Checks that the
summary then equals the processors' (nothing lost, nothing paid twice). Repeats RUNS times
and prints each run and the median; writes the figures to bench/results/takeover.txt.

A killed worker's payments wait for WORKER_DEAD_AFTER_MS (3 s) before they can be claimed;
those it had already sent (an attempt on record) then wait until its calls could have
ended: its last heartbeat + WORKER_DEAD_AFTER_MS/2 + PROCESSOR_TIMEOUT_MS (6 s).

Usage: scripts/bench/api/takeover.py   Variables: BIN_DIR (target/x86_64-unknown-linux-gnu/release),
PAYMENTS (400), RUNS (3), DELAY_MS (800: the default processor's delay while payments go in).
"""
import http.client
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))  # scripts/lib
from stack import NativeStack, StackError, http_json, tail  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
BIN_DIR = os.environ.get("BIN_DIR", str(ROOT / "target" / "x86_64-unknown-linux-gnu" / "release"))
PAYMENTS = int(os.environ.get("PAYMENTS", "400"))
RUNS = int(os.environ.get("RUNS", "3"))
DELAY_MS = int(os.environ.get("DELAY_MS", "800"))
ADMIN = {"X-Rinha-Token": "123"}


def our_totals(stack):
    """(default, fallback) of our summary through the lb, or None if it did not answer 2xx
    (the lb may just have picked the killed worker)."""
    try:
        doc = http_json("GET", f"{stack.url('lb')}/payments-summary")
    except urllib.error.HTTPError:
        return None
    return doc["default"]["totalRequests"], doc["fallback"]["totalRequests"]


def wait(what, seconds, check):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"takeover: {what} not within {seconds} s")


def one_run(work):
    with NativeStack(work, BIN_DIR) as stack:
        delay = f"{stack.url('default')}/admin/configurations/delay"
        http_json("PUT", delay, {"delay": DELAY_MS}, ADMIN)
        body = lambda: json.dumps({"correlationId": str(uuid.uuid4()), "amount": 19.90})
        conn = http.client.HTTPConnection("127.0.0.1", stack.ports["lb"], timeout=5)
        for _ in range(PAYMENTS):
            conn.request("POST", "/payments", body=body(), headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            res.read()
            if res.status // 100 != 2:
                raise SystemExit(f"takeover: POST /payments answered {res.status}")
        conn.close()
        time.sleep(0.3)  # the workers take the batches and start their calls
        stack.signal("api1", signal.SIGKILL)
        killed = time.monotonic()
        http_json("PUT", delay, {"delay": 0}, ADMIN)
        wait("every payment paid", 60, lambda: sum(our_totals(stack) or (0,)) >= PAYMENTS)
        took = time.monotonic() - killed
        ours = our_totals(stack)
        theirs = tuple(http_json("GET", f"{stack.url(n)}/admin/payments-summary", headers=ADMIN)["totalRequests"]
                       for n in ("default", "fallback"))
        if ours != theirs or sum(ours) != PAYMENTS:
            raise SystemExit(f"takeover: ours {ours}, processors {theirs}, sent {PAYMENTS}")
        return took


def main():
    for bin_name in ("api", "lb", "sim"):
        if not (Path(BIN_DIR) / bin_name).exists():
            raise SystemExit(f"takeover: {BIN_DIR}/{bin_name} is missing; build it first (make release)")
    runs = []
    for i in range(RUNS):
        with tempfile.TemporaryDirectory(prefix="rinha-takeover-") as work:
            try:
                took = one_run(Path(work))
            except StackError as e:
                raise SystemExit(f"takeover: {e}; its last lines:\n{tail(Path(work) / 'stack.log')}") from e
        runs.append(took)
        print(f"takeover: run {i + 1}: every payment paid {took:.2f} s after the SIGKILL")
    line = (f"takeover ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {BIN_DIR}): {PAYMENTS} payments, "
            f"default delay {DELAY_MS} ms until the kill: all paid {statistics.median(runs):.2f} s after the "
            f"SIGKILL (median of {RUNS}; runs {', '.join(f'{r:.2f}' for r in runs)})")
    print(line)
    out = ROOT / "bench" / "results" / "takeover.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
