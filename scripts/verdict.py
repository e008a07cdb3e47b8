#!/usr/bin/env python3
"""Passes or fails one contest run on what the contest punishes, from k6/contest.js's result
file or from a `make bench` report (both carry the same fields): payments accepted, none
refused, audits run, no inconsistency, no lag, our summary equal to the processors'.

--all-default adds: every payment went through the default processor (what the contest's
timeline allows and the best entries do). --contest-limits adds, for a container run: each
of lb, api1 and api2 (and any other limited service: postgres) ran under a CPU and a memory
limit, and the limits together stay within the contest's budget (1.5 CPU, 350 MB). One line per check, then `N passed, N failed`; exit 1 on any failure.

Usage: verdict.py RESULT.json [--label NAME] [--all-default] [--contest-limits]
"""
import argparse
import json
import sys

from compose_limits import CONTEST_MAX_CPUS, CONTEST_MAX_MEMORY_MB


def checks(r, all_default, limits):
    ours = (r["default"]["requests"], r["fallback"]["requests"])
    theirs = (r["processors"]["default"], r["processors"]["fallback"])
    out = [
        ("payments were accepted", r["payments_sent"] > 0, f"{r['payments_sent']} sent"),
        ("no POST /payments failed", r["payments_failed"] == 0, f"{r['payments_failed']} not 2xx"),
        ("the audits ran", r["audits"] > 0, f"{r['audits']} audits"),
        ("no inconsistency", r["inconsistencies"] == 0, f"{r['inconsistencies']} inconsistencies"),
        ("no lag", r["lag"] == 0, f"lag {r['lag']}"),
        ("our summary matches the processors'", ours == theirs,
         f"ours {ours[0]}/{ours[1]}, processors {theirs[0]}/{theirs[1]}"),
    ]
    if all_default:
        out.append(("every payment through the default", ours[1] == 0 and ours[0] == r["payments_sent"],
                    f"{ours[0]} default, {ours[1]} fallback of {r['payments_sent']}"))
    if limits:
        max_cpus, max_mb = CONTEST_MAX_CPUS, CONTEST_MAX_MEMORY_MB
        procs = r.get("processes", {})
        cgroups = {s: p["cgroup"] for s, p in procs.items() if p.get("cgroup")}
        cgroups.update({s: procs.get(s, {}).get("cgroup") or {} for s in ("lb", "api1", "api2")})
        limited = all(c.get("cpus", 0) > 0 and c.get("memory_limit_mb", 0) > 0 for c in cgroups.values())
        cpus = sum(c.get("cpus", 0) for c in cgroups.values())
        mb = sum(c.get("memory_limit_mb", 0) for c in cgroups.values())
        out.append(("every container ran limited", limited,
                    ", ".join(f"{s} {c.get('cpus')} CPU / {c.get('memory_limit_mb')} MiB" for s, c in cgroups.items())))
        # The contest's MB are docker's (MiB); a small epsilon absorbs the rounding above.
        out.append((f"limits together within {max_cpus:g} CPU / {max_mb:g} MB", cpus <= max_cpus + 1e-9
                    and mb <= max_mb + 0.1, f"{cpus:g} CPU, {mb:g} MiB"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("result")
    ap.add_argument("--label", default="verdict")
    ap.add_argument("--all-default", action="store_true")
    ap.add_argument("--contest-limits", action="store_true")
    args = ap.parse_args()
    with open(args.result) as f:
        result = json.load(f)
    failed = 0
    results = checks(result, args.all_default, args.contest_limits)
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {args.label}: {name} ({detail})")
        failed += not ok
    print(f"{args.label}: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
