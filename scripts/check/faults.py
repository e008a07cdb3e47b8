#!/usr/bin/env python3
"""Part of `make check`: the fault scenario. Starts the stack (scripts/stack/run.sh from BIN_DIR
on free ports, a fresh database) with both simulators storing a payment after its
client gave up (SIM_STORE_AFTER_DISCONNECT=1, as a real server that ignores the give-up
does) and a production-like api (PROCESSOR_TIMEOUT_MS=800, FALLBACK_AFTER_MS=300,
WORKER_DEAD_AFTER_MS=2000: more than twice the timeout, so a call a worker starts has
ended or timed out before the other worker may claim the payment). It posts 300
payments through the lb at 30/s while it flips the processors every second between
slow beyond our timeout (1.2 s), failing (500) and healthy, SIGKILLs api1 (run.sh starts
it again) and SIGSTOPs api2 for 3.5 s. Then both processors are healthy and it waits
(FAULTS_SETTLE_SECS at most) for the summary to settle, and checks what a user would
notice: every POST /payments answered 2xx, no payment stored by both processors (a
double charge), no accepted payment lost, our GET /payments-summary equal to the
processors' admin summaries per processor, and, payment by payment
(scripts/lib/per_payment.py), each id stored by one processor with our row processed there
with the same requestedAt and amount, and every 1 s and 15 s window of the run equal.

--storage postgres runs it with three workers sharing a PostgreSQL server of their own
(run.sh's STORAGE=postgres, API_WORKERS=3) instead of two on a SQLite file: api1 is
SIGKILLed and api2 SIGSTOPped as above, api3 carries on. Same checks.

--lb runs the lb scenario instead: 600 payments at 60/s with the processors healthy;
every worker is SIGSTOPped from 1 s to 4 s so the lb holds what it accepts, the lb is
SIGKILLed at 2.5 s (with those payments in it) and again at 6 s (in normal flow), and
run.sh starts it again 1 s later each time. Every payment answered 202 must be paid
exactly once: the new lb replays its journal. A POST that fails within LB_DOWN_SECS of a
kill is expected (nothing listens); any other is a failure.

--double-charge runs the scenario that found double charges instead: 200 payments at
100/s with the default slow (1.2 s) until 3.5 s, then failing (500) for 3 s, then healthy;
the fallback healthy throughout. Same checks.

Prints one line per check and `N passed, N failed` (exit 1 on any failure) and writes the
figures (counts, ids stored twice or lost, time to settle) to FAULTS_RESULT.

Usage: faults.py [--double-charge | --lb] [--storage sqlite|postgres]
Variables: BIN_DIR (target/debug), FAULTS_SETTLE_SECS (30), FAULTS_RESULT
(bench/results/latest-faults.json; with --double-charge latest-double-charge.json, with
--lb latest-lb-kills.json; on PostgreSQL latest-<name>-postgres.json).
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
import per_payment  # noqa: E402
from stack import NativeStack, StackError, http_json, tail  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("BIN_DIR", ROOT / "target" / "debug"))
SETTLE_SECS = float(os.environ.get("FAULTS_SETTLE_SECS", "30"))
ADMIN = {"X-Rinha-Token": "123"}  # the simulators' initial admin token
STACK_ENV = {
    "SIM_STORE_AFTER_DISCONNECT": "1",
    "PROCESSOR_TIMEOUT_MS": "800",
    "FALLBACK_AFTER_MS": "300",
    "WORKER_DEAD_AFTER_MS": "2000",
}
SLOW_MS = 1200  # beyond PROCESSOR_TIMEOUT_MS
# Processor states as (delay ms, failing).
STATES = {"slow": (SLOW_MS, False), "500": (0, True), "ok": (0, False)}
# Settled when every accepted payment is in our summary and no summary has moved for this
# long (longer than a call still in flight can take: SLOW_MS).
QUIET_SECS = 2.5

# The workers run.sh starts on each store.
WORKERS = {"sqlite": 2, "postgres": 3}

# (payments, rate per s, events): an event is (second, action, argument); actions are
# "processors" (default state, fallback state), "kill" / "stop" / "cont" (a worker).
FAULTS = (300, 30, [
    (0.0, "processors", ("slow", "ok")),
    (1.0, "processors", ("500", "ok")),
    (2.0, "processors", ("ok", "ok")),
    (2.5, "kill", "api1"),
    (3.0, "processors", ("500", "slow")),
    (4.0, "processors", ("ok", "500")),
    (5.0, "processors", ("slow", "slow")),
    (5.5, "stop", "api2"),
    (6.0, "processors", ("500", "500")),
    (7.0, "processors", ("ok", "ok")),
    (8.0, "processors", ("slow", "ok")),
    (9.0, "cont", "api2"),
    (9.0, "processors", ("500", "ok")),
    (10.0, "processors", ("ok", "ok")),
])
# How long after a SIGKILL of the lb a refused POST is expected: run.sh waits 1 s before
# starting it again, then it replays its journal and opens its port.
LB_DOWN_SECS = 3.0


def lb_kills(workers):
    """The lb scenario for `workers` workers (see the module doc)."""
    names = [f"api{i}" for i in range(1, workers + 1)]
    return (600, 60, [
        (0.0, "processors", ("ok", "ok")),
        *((1.0, "stop", n) for n in names),
        (2.5, "kill", "lb"),
        *((4.0, "cont", n) for n in names),
        (6.0, "kill", "lb"),
    ])


DOUBLE_CHARGE = (200, 100, [
    (0.0, "processors", ("slow", "ok")),
    (3.5, "processors", ("500", "ok")),
    (6.5, "processors", ("ok", "ok")),
])


class Failure(Exception):
    """Something that stops the scenario before its checks, with what to do about it."""


class Stack(NativeStack):
    """The native stack (scripts/lib/stack.py) with STACK_ENV and WORKERS[storage] workers,
    and the processors' admin routes."""

    def __init__(self, work, storage):
        super().__init__(work, BIN_DIR, storage, WORKERS[storage], STACK_ENV)

    def set_processors(self, default, fallback):
        for name, state in (("default", default), ("fallback", fallback)):
            delay, failing = STATES[state]
            http_json("PUT", f"{self.url(name)}/admin/configurations/delay", {"delay": delay}, ADMIN)
            http_json("PUT", f"{self.url(name)}/admin/configurations/failure", {"failure": failing}, ADMIN)

    def stored_ids(self, name):
        try:
            return list(per_payment.processor_payments(self.url(name), ADMIN["X-Rinha-Token"]))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise Failure(f"{BIN_DIR}/sim has no GET /admin/payments: rebuild it "
                              "(cargo build --workspace --bins)") from e
            raise
        except KeyError as e:
            raise Failure(f"{BIN_DIR}/sim lists no payments with their requestedAt and amount: rebuild it "
                          "(cargo build --workspace --bins)") from e

    def counts(self):
        """(ours, the processors') as {"default": n, "fallback": n}; ours None if unanswered."""
        theirs = {n: http_json("GET", f"{self.url(n)}/admin/payments-summary", headers=ADMIN)["totalRequests"]
                  for n in ("default", "fallback")}
        try:
            s = http_json("GET", f"{self.url('lb')}/payments-summary")
            ours = {n: s[n]["totalRequests"] for n in ("default", "fallback")}
        except OSError:
            ours = None  # no worker answered this time (one is stopped or restarting)
        return ours, theirs


def run_load(stack, payments, rate, events):
    """Posts `payments` payments at `rate`/s while running `events` on time; returns
    (ids answered 2xx, count sent, the events with the second they ran, how many POSTs
    failed other than within LB_DOWN_SECS after a kill of the lb)."""
    accepted, done, conn, refused_while_up = [], [], None, 0
    lb_killed_at = []
    pending = sorted(events, key=lambda e: e[0])
    start = time.monotonic()

    def run_due(until):
        while pending and pending[0][0] <= until:
            _, action, arg = pending.pop(0)
            if action == "processors":
                stack.set_processors(*arg)
            else:
                stack.signal(arg, {"kill": signal.SIGKILL, "stop": signal.SIGSTOP, "cont": signal.SIGCONT}[action])
                if arg == "lb":
                    lb_killed_at.append(time.monotonic())
            done.append({"at_s": round(time.monotonic() - start, 2), "action": action, "arg": arg})

    for i in range(payments):
        due = i / rate
        run_due(time.monotonic() - start)
        time.sleep(max(0.0, due - (time.monotonic() - start)))
        pid = str(uuid.uuid4())
        body = json.dumps({"correlationId": pid, "amount": 19.90})
        try:
            conn = conn or http.client.HTTPConnection("127.0.0.1", stack.ports["lb"], timeout=5)
            conn.request("POST", "/payments", body, {"Content-Type": "application/json"})
            res = conn.getresponse()
            res.read()
            if 200 <= res.status < 300:
                accepted.append(pid)
                continue
        except (OSError, http.client.HTTPException):
            if conn:
                conn.close()
            conn = None
        if not any(0 <= time.monotonic() - at <= LB_DOWN_SECS for at in lb_killed_at):
            refused_while_up += 1
    while pending:  # the events after the last payment, on time
        time.sleep(max(0.0, pending[0][0] - (time.monotonic() - start)))
        run_due(time.monotonic() - start)
    if conn:
        conn.close()
    return accepted, payments, done, refused_while_up


def settle(stack, accepted):
    """Waits (SETTLE_SECS at most) until our summary counts every accepted payment and
    neither it nor the processors' summaries have moved for QUIET_SECS (longer than a call
    still in flight can take). Returns (seconds until that state was first seen, or None,
    ours, theirs) as last read."""
    start = time.monotonic()
    last, since = None, start
    while True:
        now = time.monotonic()
        ours, theirs = stack.counts()
        if (ours, theirs) != last:
            last, since = (ours, theirs), now
        if ours is not None and sum(ours.values()) == accepted and now - since >= QUIET_SECS:
            return round(since - start, 2), ours, theirs
        if now - start >= SETTLE_SECS:
            return None, ours, theirs
        time.sleep(0.25)


def checks(f):
    """[(name, ok, detail)] over the figures `f` (see `main`)."""
    both, lost = f["stored_by_both"], f["lost"]
    ours, theirs = f["ours"] or {"default": "?", "fallback": "?"}, f["processors"]
    return [
        ("every POST /payments answered 2xx while the lb ran", f["refused_while_up"] == 0,
         f"{f['accepted']} of {f['sent']} answered 2xx, {f['refused_while_up']} refused while the lb ran"),
        ("no payment stored by both processors", not both,
         f"{len(both)} stored by both" + (f", e.g. {', '.join(both[:3])}" if both else "")),
        ("nothing lost: every accepted payment stored by a processor", not lost,
         f"{len(lost)} of {f['accepted']} stored by neither" + (f", e.g. {', '.join(lost[:3])}" if lost else "")),
        ("our summary equals the processors' per processor", f["ours"] == theirs,
         f"ours {ours['default']}/{ours['fallback']}, processors {theirs['default']}/{theirs['fallback']}"
         " (default/fallback)"),
    ] + ([("each payment as the processors stored it, and every window", per_payment.ok(f["per_payment"]),
           per_payment.lines(f["per_payment"])[0].removeprefix("per payment: "))]
         if f.get("per_payment") else [])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--double-charge", action="store_true",
                    help="the double-charge scenario (200 payments, default slow then 500)")
    ap.add_argument("--lb", action="store_true",
                    help="the lb scenario (workers stopped, the lb SIGKILLed twice under load)")
    ap.add_argument("--storage", choices=sorted(WORKERS), default="sqlite",
                    help="the workers' database: sqlite (2 workers, the default) or postgres (3 workers)")
    args = ap.parse_args()
    if args.double_charge and args.lb:
        ap.error("--double-charge and --lb are two scenarios: give one")
    name = "double-charge" if args.double_charge else "lb-kills" if args.lb else "faults"
    label = name + ("-postgres" if args.storage == "postgres" else "")
    payments, rate, events = (DOUBLE_CHARGE if args.double_charge else
                              lb_kills(WORKERS[args.storage]) if args.lb else FAULTS)
    out = Path(os.environ.get("FAULTS_RESULT", ROOT / "bench" / "results" / f"latest-{label}.json"))
    for name in ("sim", "api", "lb"):
        if not os.access(BIN_DIR / name, os.X_OK):
            print(f"{label}: {BIN_DIR / name} is missing: build it first (cargo build --workspace --bins; "
                  "make check does)", file=sys.stderr)
            return 2

    work = Path(tempfile.mkdtemp(prefix=f"rinha-{label}."))
    stack = Stack(work, args.storage)
    ok = False
    try:
        stack.start()
        stack.stored_ids("default")  # a sim without the listing fails here, not after the load
        print(f"{label}: {payments} payments at {rate}/s through the lb ({BIN_DIR}), "
              f"{WORKERS[args.storage]} workers on {args.storage}, "
              f"{' '.join(f'{k}={v}' for k, v in STACK_ENV.items())}", flush=True)
        accepted, sent, done, refused_while_up = run_load(stack, payments, rate, events)
        settle_secs, ours, theirs = settle(stack, len(accepted))
        stored = {n: set(stack.stored_ids(n)) for n in ("default", "fallback")}
        # No call is in flight now: every id of the run, our row against the processors'.
        each = per_payment.read_and_check(stack.database(), {n: stack.url(n) for n in ("default", "fallback")},
                                          ADMIN["X-Rinha-Token"], accepted, stack.url("lb"))
        both = sorted(stored["default"] & stored["fallback"])
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
        figures = {
            "scenario": label, "commit": commit, "storage": args.storage, "workers": WORKERS[args.storage], "payments": payments, "rate_per_s": rate, "config": STACK_ENV,
            "slow_ms": SLOW_MS, "events": done, "sent": sent, "accepted": len(accepted),
            "refused_while_up": refused_while_up,
            "stored": {n: len(ids) for n, ids in stored.items()},
            "stored_by_both": both,
            "lost": sorted(set(accepted) - stored["default"] - stored["fallback"]),
            "stored_not_accepted": len((stored["default"] | stored["fallback"]) - set(accepted)),
            "ours": ours, "processors": theirs,
            "settled": settle_secs is not None, "settle_secs": settle_secs, "settle_limit_secs": SETTLE_SECS,
            "per_payment": each,
        }
        results = checks(figures)
        figures["checks"] = [{"check": n, "ok": good, "detail": d} for n, good, d in results]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"{label}: " + (f"settled {settle_secs} s after both processors were healthy" if settle_secs is not None
                              else f"did not settle within {SETTLE_SECS:g} s (FAULTS_SETTLE_SECS)"))
        for name, good, detail in results:
            print(f"{'ok  ' if good else 'FAIL'} {label}: {name} ({detail})")
        for line in per_payment.lines(each)[1:]:
            print(f"{label}: {line}")
        failed = sum(not good for _, good, _ in results)
        print(f"{label}: {len(both)} of {sent} payments stored by both processors; figures in {out}")
        print(f"{label}: {len(results) - failed} passed, {failed} failed")
        ok = failed == 0
        return 0 if ok else 1
    except (Failure, StackError) as e:
        print(f"{label}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{label}: a call to the stack failed: {e} (the stack's output is below)", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"{label}: the stack's output (last 40 lines of {stack.log}):\n{tail(stack.log, 40)}", end="",
                  file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
