#!/usr/bin/env python3
"""Turns one `make bench` work directory into the result file bench/results/runs/<date>-<scenario>.json
and a short table: the contest score and its parts for our stack, the per-stage figures,
CPU seconds and peak RSS of every process, the machine, and our p99 as a ratio to the bare
`floor` responder's.

Usage: report.py --work DIR --out FILE --limits TEXT [--cgroups JSON]
(DIR holds <label>-result.json from the k6 scenario and <label>-samples.json from
sampler.py, for the labels `stack` and, unless the floor was skipped, `floor`, and
stack-ledger.json from ledger.py, whose per-payment check goes into the result and the
table.)
"""
import argparse
import json
import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml

import sys
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
from compose_limits import service_limits  # noqa: E402
import per_payment  # noqa: E402


def machine():
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return {
        "cores": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "memory_gb": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "kernel": platform.release(),
    }


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def ratio(ours, floor):
    return round(ours / floor, 2) if ours and floor else None


# Not ours: the load generator and the processors' stand-ins.
NOT_THE_STACK = ("k6", "sim-default", "sim-fallback")


def cpu_budget(procs, payments):
    """CPU per payment, per process: what each part of the stack spends on one payment
    (idle work such as heartbeats and health checks included, spread over the run)."""
    ours = {n: p["cpu_seconds"] for n, p in procs.items() if n not in NOT_THE_STACK and "cpu_seconds" in p}
    per = lambda seconds: round(seconds / payments * 1e6, 1) if payments else None
    total = round(sum(ours.values()), 3)
    return {"cpu_seconds": total, "us_per_payment": per(total),
            "processes_us_per_payment": {n: per(s) for n, s in sorted(ours.items())}}


def reading_at(series, offset, t):
    """The last sample of a process's series taken by t (seconds from the run's start; the
    first sample if none was), or None for an empty series."""
    before = [s for s in series if s[0] + offset <= t]
    return before[-1] if before else (series[0] if series else None)


def process_figures(samples, offset, start, end):
    """{process: {cpu_ms, wait_ms, throttled_ms, throttled_periods}} of the stack's processes
    between start and end (seconds from the run's start): CPU, run-queue delay (runnable,
    not running) and, under a CPU limit, its cgroup's throttling (None without one)."""
    out = {}
    for proc, series in samples.get("series", {}).items():
        if proc in NOT_THE_STACK or proc == "machine (all)" or not series:
            continue
        a, b = reading_at(series, offset, start), reading_at(series, offset, end)
        if len(a) < 5:  # a series from before run-queue delay was sampled
            continue
        throttled = (b[4][1] - a[4][1], b[4][0] - a[4][0]) if a[4] and b[4] else (None, None)
        out[proc] = {"cpu_ms": round((b[1] - a[1]) * 1000, 1), "wait_ms": round((b[3] - a[3]) * 1000, 1),
                     "throttled_ms": None if throttled[0] is None else round(throttled[0] * 1000, 1),
                     "throttled_periods": throttled[1]}
    return out


def k6_run_cpu(result, samples, payments):
    """CPU of the lb and the workers (or of the floor) over the k6 run alone (from its start
    to the end of its last stage), not over their whole lives: the figure to compare between
    builds."""
    offset = (samples["started_at_ms"] - result["started_at_ms"]) / 1000
    figures = process_figures(samples, offset, 0, result["stages"][-1]["end_ms"] / 1000)
    parts = {n: f["cpu_ms"] / 1000 for n, f in figures.items() if n in ("lb", "api1", "api2", "floor")}
    if not parts:
        return None
    total = round(sum(parts.values()), 3)
    return {"cpu_seconds": total, "us_per_payment": round(total / payments * 1e6, 1) if payments else None,
            "processes_cpu_seconds": {n: round(s, 3) for n, s in sorted(parts.items())},
            "lb_run_queue_wait_ms": figures.get("lb", figures.get("floor", {})).get("wait_ms")}


ANSWER_BUCKET = re.compile(r'^\w+_payment_answer_seconds_bucket\{le="([^"]+)"\}$')


def answer_p99_ms(metrics, offset, start, end):
    """The bound (ms) of the histogram bucket that holds the 99th percentile of the lb's own
    answer times between start and end, from its cumulative bucket counts; None without
    any answer (or without the histogram)."""
    counts = []
    for metric, points in metrics.items():
        m = ANSWER_BUCKET.match(metric)
        if not m or not points:
            continue
        a, b = reading_at(points, offset, start), reading_at(points, offset, end)
        counts.append((float(m.group(1)), b[1] - a[1]))
    counts.sort()
    total = counts[-1][1] if counts else 0  # the +Inf bucket holds them all
    if total <= 0:
        return None
    le = next(le for le, n in counts if n >= 0.99 * total)
    return None if le == float("inf") else round(le * 1000, 3)


def max_between(points, offset, start, end):
    """The largest value of [t, v] samples with start <= t + offset < end (seconds), or None."""
    return max((v for t, v in points if start <= t + offset < end), default=None)


def stage_figures(result, samples, ledger):
    """Per stage of the scenario (by arrival: the time k6 sent, from the run's start), the
    k6 figures with, from the samples, the largest queue of each service, pending payments
    in the database and calls in flight at each processor, and, from our database, what
    became of the stage's arrivals (paid at default / fallback, or still pending). The last
    stage runs on to the end of the samples (the teardown's drain included)."""
    t0 = result["started_at_ms"]
    offset = (samples["started_at_ms"] - t0) / 1000
    by_second = (ledger or {}).get("arrivals_per_second")
    out = []
    stages = result["stages"]
    for i, st in enumerate(stages):
        start = st["start_ms"] / 1000
        end = st["end_ms"] / 1000 if i + 1 < len(stages) else float("inf")
        row = {k: st[k] for k in ("at", "default", "fallback", "start_ms", "end_ms", "arrivals", "refused",
                                  "p99_payments_ms", "stored", "audit_diffs")}
        queues, in_flight, pending = {}, {}, None
        for proc, metrics in samples.get("gauges", {}).items():
            for metric, points in metrics.items():
                peak = max_between(points, offset, start, end)
                if peak is None:
                    continue
                if metric.endswith(("queue_depth", "payments_held")):
                    queues[proc] = peak
                elif metric.endswith("pending_payments") and proc == "api1":  # shared: one view is all
                    pending = peak
                elif metric == "in_flight" and proc.startswith("sim-"):
                    in_flight[proc[len("sim-"):]] = peak
                elif "in_flight" in metric:  # a worker's own gauge, if it has one
                    in_flight[f"{proc} {metric}"] = peak
        row.update(max_queue=queues, max_db_pending=pending, max_in_flight=in_flight,
                   processes=process_figures(samples, offset, start, end),
                   lb_answer_p99_ms=answer_p99_ms(samples.get("gauges", {}).get("lb", {}), offset, start, end))
        if by_second is not None:
            fate = {"default": 0, "fallback": 0, "pending": 0}
            for second, status, processor, count in by_second:
                if start <= (second * 1000 - t0) / 1000 + 0.5 < end:  # the middle of that second
                    fate[processor if status == "processed" else "pending"] += count
            row["paid_by_arrival"] = fate
        out.append(row)
    return out


def floor_report(floor, samples):
    if floor is None:
        return None
    procs = samples["processes"]
    return {
        "p99_ms": floor["p99_raw_ms"],
        "p99_payments_ms": floor["p99_payments_ms"],
        "payments_sent": floor["payments_sent"],
        "processes": procs,
        "other_cpu_seconds": round(samples["machine_cpu_seconds"] - sum(p.get("cpu_seconds", 0) for p in procs.values()), 2),
        "stages": [{"start_ms": st["start_ms"], "arrivals": st["arrivals"], "p99_payments_ms": st["p99_payments_ms"]}
                   for st in floor["stages"]],
    }


def stage_table(rows):
    """The per-stage table bench prints (and plot.py draws)."""
    state = lambda x: f"{x[0]}{'F' if x[1] else ''}"
    num = lambda v: "-" if v is None else f"{v:.0f}"
    head = ["from s", "D", "F", "arrivals", "p99 ms", "lb ≤ ms", "paid D", "paid F", "unpaid", "stored D", "stored F",
            "queue api1/api2/lb", "db pend", "in flight D/F", "lb cpu/wait ms", "throttled ms lb/api1/api2",
            "audit diffs"]
    lines = []
    for r in rows:
        fate = r.get("paid_by_arrival") or {}
        q = r["max_queue"]
        procs = r.get("processes") or {}
        lb = procs.get("lb") or {}
        throttled = "/".join(num((procs.get(n) or {}).get("throttled_ms")) for n in ("lb", "api1", "api2"))
        lines.append([f"{r['start_ms'] / 1000:.0f}", state(r["default"]), state(r["fallback"]), str(r["arrivals"]),
                      "-" if r["p99_payments_ms"] is None else f"{r['p99_payments_ms']:.2f}",
                      "-" if r.get("lb_answer_p99_ms") is None else f"{r['lb_answer_p99_ms']:g}",
                      num(fate.get("default")), num(fate.get("fallback")), num(fate.get("pending")),
                      str(r["stored"]["default"]), str(r["stored"]["fallback"]),
                      "/".join(num(q.get(n)) for n in ("api1", "api2", "lb")), num(r["max_db_pending"]),
                      f"{num(r['max_in_flight'].get('default'))}/{num(r['max_in_flight'].get('fallback'))}",
                      f"{num(lb.get('cpu_ms'))}/{num(lb.get('wait_ms'))}", throttled,
                      " ".join(map(str, r["audit_diffs"])) or "-"])
    w = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    fmt_line = lambda l: "  " + "  ".join(x.rjust(w[i]) if i < len(l) - 1 else x for i, x in enumerate(l))
    return [fmt_line(head), *map(fmt_line, lines),
            "  (by arrival: D/F delay ms, F = failing; p99: k6's, of POST /payments; lb ≤: the bucket of the lb's",
            "   own answer time (body read to answer written) that holds its p99; paid D/F and unpaid: what became of the stage's arrivals,",
            "   from our database at the end; stored D/F: what each processor holds with a requestedAt in the",
            "   stage; queue, db pend(ing), in flight: the largest sample in the stage; lb cpu/wait: the lb's",
            "   CPU and run-queue delay (ready, not running) in the stage; throttled: time each container's",
            "   cgroup was held back by its CPU limit in the stage, - without a limit)"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--limits", required=True)
    ap.add_argument("--cgroups", default="{}")
    args = ap.parse_args()

    load = lambda name: json.loads((args.work / name).read_text())
    ours, samples = load("stack-result.json"), load("stack-samples.json")
    has_floor = (args.work / "floor-result.json").exists()
    floor = load("floor-result.json") if has_floor else None
    floor_samples = load("floor-samples.json") if has_floor else None
    ledger = load("stack-ledger.json") if (args.work / "stack-ledger.json").exists() else None
    our_procs = samples["processes"]
    cgroups = json.loads(args.cgroups)
    limits = service_limits(yaml.safe_load(Path("compose.yml").read_text())) if cgroups else {}
    for name, stats in cgroups.items():
        cpus, mem = limits.get(name, (None, 0))
        our_procs.setdefault(name, {})["cgroup"] = {"cpus": cpus, "memory_limit_mb": round(mem / 2**20, 1), **stats}
        # A container of many processes (postgres) has no pid file for the sampler: its
        # cgroup's CPU, over the container's life (its start included), stands in.
        if "cpu_seconds" not in our_procs[name] and "cgroup_cpu_seconds" in stats:
            our_procs[name]["cpu_seconds"] = stats["cgroup_cpu_seconds"]

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "scenario": ours["scenario"],
        "max_requests": ours["max_requests"],
        "time_scale": ours["time_scale"],
        "limits": args.limits,
        "machine": machine(),
        "score": round(ours["score"], 2),
        "profit": round(ours["profit"], 2),
        "p99_ms": ours["p99_raw_ms"],
        "p99_bonus": ours["p99_bonus"],
        "p99_payments_ms": ours["p99_payments_ms"],
        "p50_payments_ms": ours["p50_payments_ms"],
        "scored_from": ours["scored_from"],
        "gross": round(ours["gross"], 2),
        "fees": round(ours["fees"], 2),
        "fine": ours["fine"],
        "lag": ours["lag"],
        "over_recorded": ours["over_recorded"],
        "inconsistencies": ours["inconsistencies"],
        "audits": ours["audits"],
        "payments_sent": ours["payments_sent"],
        "payments_failed": ours["payments_failed"],
        "default": ours["default"],
        "fallback": ours["fallback"],
        "processors": ours["processors"],
        "processors_amount": ours["processors_amount"],
        "double_charged": ledger["double_charged"] if ledger else None,
        "double_charged_ids": ledger["double_charged_ids"] if ledger else None,
        # Id by id, our rows against the processors' lists, and every 1 s and 15 s window
        # (scripts/lib/per_payment.py, read by ledger.py at the end of the run).
        "per_payment": ledger.get("per_payment") if ledger else None,
        "stages": stage_figures(ours, samples, ledger),
        "audit_log": ours["audit_log"],
        "processes": our_procs,
        # Everything the machine did during the run that was neither the stack nor k6:
        # large means the figures were taken on a busy machine.
        "machine_busy_cpu_seconds": samples["machine_cpu_seconds"],
        "other_cpu_seconds": round(samples["machine_cpu_seconds"]
                                   - sum(p.get("cpu_seconds", 0) for p in our_procs.values()), 2),
        "floor": floor_report(floor, floor_samples),
        # CPU per payment of the stack (lb, workers, a database server) and of the floor,
        # which does only the answering part of the lb's work.
        "cpu_budget": {
            "stack": cpu_budget(our_procs, ours["payments_sent"]),
            "k6_run": k6_run_cpu(ours, samples, ours["payments_sent"]),
            "floor_k6_run": k6_run_cpu(floor, floor_samples, floor["payments_sent"]) if floor else None,
            "floor": cpu_budget(floor_samples["processes"], floor["payments_sent"]) if floor else None,
        },
        "p99_ratio_to_floor": ratio(ours["p99_raw_ms"], floor and floor["p99_raw_ms"]),
        "p99_payments_ratio_to_floor": ratio(ours["p99_payments_ms"], floor and floor["p99_payments_ms"]),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    m, r = report["machine"], report
    print(f"\nbench: {r['scenario']}, {r['max_requests']} VUs, {r['limits']}, {m['cores']} cores {m['cpu_model']}")
    sent = r["payments_sent"]
    print(f"  score {r['score']:.2f} from {'the processors' if r['scored_from'] == 'processors' else 'our'} summaries: "
          f"gross {r['gross']:.2f} - fees {r['fees']:.2f}, p99 {r['p99_ms']:.3f} ms (bonus {r['p99_bonus'] * 100:.0f} %), "
          f"fine {r['fine'] * 100:.0f} % ({r['inconsistencies']} inconsistencies in {r['audits']} audits)")
    print(f"  payments {sent} accepted, {r['default']['requests']} default / {r['fallback']['requests']} fallback "
          f"recorded, processors {r['processors']['default']} / {r['processors']['fallback']}; "
          f"lag {r['lag']} ({100 * r['lag'] / sent if sent else 0:.1f} %); double charges {r['double_charged']}")
    if r["per_payment"]:
        each = per_payment.lines(r["per_payment"], accepted=sent)
        print(f"  {each[0]}{'' if per_payment.ok(r['per_payment']) else '  MISMATCH'}")
        for line in each[1:]:
            print(f"  {line}")
    if r["floor"]:
        print(f"  p99 vs floor: {r['p99_ms']:.3f} / {r['floor']['p99_ms']:.3f} ms = "
              f"{r['p99_ratio_to_floor']}x  (POST /payments only: {r['p99_payments_ratio_to_floor']}x)")
    print("\n".join(stage_table(r["stages"])))
    print(f"  {'process':<14}{'cpu s':>8}{'peak rss MB':>13}{'restarts':>10}")
    for name, p in sorted(our_procs.items()):
        cg = p.get("cgroup")
        extra = (f"  limit {cg['cpus']} CPU / {cg['memory_limit_mb']} MB: cgroup peak {cg['peak_memory_mb']} MB, "
                 f"throttled {cg['cpu_throttled_periods']} periods") if cg else ""
        print(f"  {name:<14}{p.get('cpu_seconds', 0):>8.2f}{p.get('peak_rss_mb', 0):>13.1f}{p.get('restarts', 0):>10}{extra}")
    stack, floor_budget = report["cpu_budget"]["stack"], report["cpu_budget"]["floor"]
    parts = ", ".join(f"{n} {us}" for n, us in stack["processes_us_per_payment"].items())
    floor_part = f", floor {floor_budget['us_per_payment']} us ({floor_budget['cpu_seconds']} s)" if floor_budget else ""
    print(f"  cpu per payment: {stack['us_per_payment']} us ({parts}; {stack['cpu_seconds']} s in all){floor_part}")
    run, floor_run = report["cpu_budget"]["k6_run"], report["cpu_budget"]["floor_k6_run"]
    if run:
        each = ", ".join(f"{n} {s}" for n, s in run["processes_cpu_seconds"].items())
        vs_floor = (f"; floor {floor_run['cpu_seconds']} s ({ratio(run['cpu_seconds'], floor_run['cpu_seconds'])}x)"
                    if floor_run else "")
        print(f"  over the k6 run alone: lb + workers {run['cpu_seconds']} cpu s ({each}), {run['us_per_payment']} us "
              f"a payment{vs_floor}; the lb waited {run['lb_run_queue_wait_ms']} ms runnable, not running")
    print(f"  other load on the machine meanwhile: {report['other_cpu_seconds']} cpu s"
          + (f" (floor run: {report['floor']['other_cpu_seconds']})" if report["floor"] else ""))
    print()


if __name__ == "__main__":
    main()
