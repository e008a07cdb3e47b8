#!/usr/bin/env python3
"""Turns one `make bench` work directory into the result file bench/results/<date>-contest.json
and a short table: the contest score and its parts for our stack, CPU seconds and peak RSS of
every process, the machine, and our p99 as a ratio to the bare `floor` responder's.

Usage: bench_report.py --work DIR --out FILE --limits TEXT [--cgroups JSON]
(DIR holds <label>-result.json from k6/contest.js and <label>-samples.json from
bench_sampler.py, for the labels `stack` and `floor`.)
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

from compose_limits import service_limits


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--limits", required=True)
    ap.add_argument("--cgroups", default="{}")
    args = ap.parse_args()

    load = lambda name: json.loads((args.work / name).read_text())
    ours, floor = load("stack-result.json"), load("floor-result.json")
    samples, floor_samples = load("stack-samples.json"), load("floor-samples.json")
    our_procs, floor_procs = samples["processes"], floor_samples["processes"]
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
        "scenario": "k6/contest.js",
        "max_requests": ours["max_requests"],
        "limits": args.limits,
        "machine": machine(),
        "score": round(ours["score"], 2),
        "profit": round(ours["profit"], 2),
        "p99_ms": ours["p99_raw_ms"],
        "p99_bonus": ours["p99_bonus"],
        "p99_payments_ms": ours["p99_payments_ms"],
        "p50_payments_ms": ours["p50_payments_ms"],
        "lag": ours["lag"],
        "over_recorded": ours["over_recorded"],
        "inconsistencies": ours["inconsistencies"],
        "audits": ours["audits"],
        "payments_sent": ours["payments_sent"],
        "payments_failed": ours["payments_failed"],
        "default": ours["default"],
        "fallback": ours["fallback"],
        "processors": ours["processors"],
        "processes": our_procs,
        # Everything the machine did during the run that was neither the stack nor k6:
        # large means the figures were taken on a busy machine.
        "machine_busy_cpu_seconds": samples["machine_cpu_seconds"],
        "other_cpu_seconds": round(samples["machine_cpu_seconds"]
                                   - sum(p.get("cpu_seconds", 0) for p in our_procs.values()), 2),
        "floor": {
            "p99_ms": floor["p99_raw_ms"],
            "p99_payments_ms": floor["p99_payments_ms"],
            "payments_sent": floor["payments_sent"],
            "processes": floor_procs,
            "other_cpu_seconds": round(floor_samples["machine_cpu_seconds"]
                                       - sum(p.get("cpu_seconds", 0) for p in floor_procs.values()), 2),
        },
        # CPU per payment of the stack (lb, workers, a database server) and of the floor,
        # which does only the answering part of the lb's work.
        "cpu_budget": {
            "stack": cpu_budget(our_procs, ours["payments_sent"]),
            "floor": cpu_budget(floor_procs, floor["payments_sent"]),
        },
        "p99_ratio_to_floor": ratio(ours["p99_raw_ms"], floor["p99_raw_ms"]),
        "p99_payments_ratio_to_floor": ratio(ours["p99_payments_ms"], floor["p99_payments_ms"]),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    m = report["machine"]
    print(f"\nbench: {report['max_requests']} VUs, {report['limits']}, {m['cores']} cores {m['cpu_model']}")
    print(f"  score {report['score']:.2f}  (p99 {report['p99_ms']:.3f} ms, bonus {report['p99_bonus'] * 100:.0f} %, "
          f"{report['inconsistencies']} inconsistencies, lag {report['lag']})")
    print(f"  payments {report['payments_sent']} sent, {report['default']['requests']} default / "
          f"{report['fallback']['requests']} fallback")
    print(f"  p99 vs floor: {report['p99_ms']:.3f} / {report['floor']['p99_ms']:.3f} ms = "
          f"{report['p99_ratio_to_floor']}x  (POST /payments only: {report['p99_payments_ratio_to_floor']}x)")
    print(f"  {'process':<14}{'cpu s':>8}{'peak rss MB':>13}{'restarts':>10}")
    for name, p in sorted(our_procs.items()):
        cg = p.get("cgroup")
        extra = (f"  limit {cg['cpus']} CPU / {cg['memory_limit_mb']} MB: cgroup peak {cg['peak_memory_mb']} MB, "
                 f"throttled {cg['cpu_throttled_periods']} periods") if cg else ""
        print(f"  {name:<14}{p.get('cpu_seconds', 0):>8.2f}{p.get('peak_rss_mb', 0):>13.1f}{p.get('restarts', 0):>10}{extra}")
    stack, floor_budget = report["cpu_budget"]["stack"], report["cpu_budget"]["floor"]
    parts = ", ".join(f"{n} {us}" for n, us in stack["processes_us_per_payment"].items())
    print(f"  cpu per payment: {stack['us_per_payment']} us ({parts}; {stack['cpu_seconds']} s in all), "
          f"floor {floor_budget['us_per_payment']} us ({floor_budget['cpu_seconds']} s)")
    print(f"  other load on the machine meanwhile: {report['other_cpu_seconds']} cpu s "
          f"(floor run: {report['floor']['other_cpu_seconds']})")
    print()


if __name__ == "__main__":
    main()
