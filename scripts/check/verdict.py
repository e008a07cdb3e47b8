#!/usr/bin/env python3
"""Passes or fails one contest run on what the contest punishes, from a contest scenario's
result file (k6/contest.js, k6/final.js) or from a `make bench` report (both carry the same
fields): payments accepted, none refused, audits run, no inconsistency, lag at most
--max-lag (0) and never negative (more recorded than accepted), no correlationId stored by
both processors (a bench report's `double_charged`), no mismatch in a bench report's
per-payment check (`per_payment`, scripts/lib/per_payment.py: each id stored by one
processor, our row processed there with its requestedAt and amount, every 1 s and 15 s
window equal; payments still pending are lag, not mismatches), and, when no lag is allowed,
our summary equal to the processors' at the end (with lag allowed, calls still in flight at
the teardown may be stored there and not yet recorded here).

--all-default adds: every payment went through the default processor (what the contest's
timeline allows and the best entries do). --contest-limits adds, for a container run: each
of lb, api1 and api2 (and any other limited service: postgres) ran under a CPU and a memory
limit, and the limits together stay within the contest's budget (1.5 CPU, 350 MB). One line per check, then `N passed, N failed`; exit 1 on any failure.

Usage: verdict.py RESULT.json [--label NAME] [--max-lag N] [--all-default] [--contest-limits]
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
from compose_limits import CONTEST_MAX_CPUS, CONTEST_MAX_MEMORY_MB  # noqa: E402
import per_payment  # noqa: E402


def checks(r, all_default, limits, max_lag=0):
    ours = (r["default"]["requests"], r["fallback"]["requests"])
    theirs = (r["processors"]["default"], r["processors"]["fallback"])
    out = [
        ("payments were accepted", r["payments_sent"] > 0, f"{r['payments_sent']} sent"),
        ("no POST /payments failed", r["payments_failed"] == 0, f"{r['payments_failed']} not 2xx"),
        ("the audits ran", r["audits"] > 0, f"{r['audits']} audits"),
        ("no inconsistency", r["inconsistencies"] == 0, f"{r['inconsistencies']} inconsistencies"),
        ("no lag" if max_lag == 0 else f"lag at most {max_lag}", 0 <= r["lag"] <= max_lag,
         f"lag {r['lag']}{' (over-recorded)' if r['lag'] < 0 else ''}"),
    ]
    if max_lag == 0:
        out.append(("our summary matches the processors'", ours == theirs,
                    f"ours {ours[0]}/{ours[1]}, processors {theirs[0]}/{theirs[1]}"))
    if r.get("double_charged") is not None:
        out.append(("no payment stored by both processors", r["double_charged"] == 0,
                    f"{r['double_charged']} ids stored twice{': ' + ', '.join(r['double_charged_ids'][:3]) if r['double_charged'] else ''}"))
    if r.get("per_payment"):
        out.append(("each payment as the processors stored it, and every window", per_payment.ok(r["per_payment"]),
                    "; ".join(per_payment.lines(r["per_payment"], accepted=r["payments_sent"]))
                    .removeprefix("per payment: ")))
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
    ap.add_argument("--max-lag", type=int, default=0, help="accepted payments the processors may lack at the end")
    ap.add_argument("--contest-limits", action="store_true")
    args = ap.parse_args()
    with open(args.result) as f:
        result = json.load(f)
    failed = 0
    if args.max_lag < 0:
        ap.error("--max-lag must be 0 or more")
    results = checks(result, args.all_default, args.contest_limits, args.max_lag)
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {args.label}: {name} ({detail})")
        failed += not ok
    print(f"{args.label}: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
