#!/usr/bin/env python3
"""Draws where the time goes in one `make bench` run, as a hand-written SVG (stdlib only):
latency percentiles of POST /payments per second (log scale), the queues (lb queue, each
worker's dispatch queue, pending payments in the database), the calls in flight at each
processor, and CPU use per process and of the whole machine, on one time axis with the
scenario's processor stages marked; under them, the per-stage table of the report.

Usage: plot.py --work DIR --label stack --out FILE.svg [--report RESULT.json]
(reads DIR/<label>-points.csv from k6 --out csv, DIR/<label>-result.json from the k6
scenario and DIR/<label>-samples.json from sampler.py; the table comes from the
report report.py wrote)
"""
import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path

WIDTH, PANEL_H, LEFT, RIGHT, TOP, GAP = 1000, 210, 70, 190, 56, 50
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


def latency_series(points_csv, t0_ms):
    """{label: [(t s, ms)]}: p50, p99, max of POST /payments and p99 of every successful request, per second."""
    payments, everything = defaultdict(list), defaultdict(list)
    with open(points_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["metric_name"] != "http_req_duration":
                continue
            second = int((int(row["timestamp"]) - t0_ms) // 1000)
            value = float(row["metric_value"])
            if row.get("expected_response") == "true":
                everything[second].append(value)
            if row.get("name") == "payments":
                payments[second].append(value)
    out = {"p50 payments": [], "p99 payments": [], "max payments": [], "p99 all ok requests": []}
    for s in sorted(payments):
        v = sorted(payments[s])
        out["p50 payments"].append((s + 0.5, percentile(v, 0.50)))
        out["p99 payments"].append((s + 0.5, percentile(v, 0.99)))
        out["max payments"].append((s + 0.5, v[-1]))
    for s in sorted(everything):
        out["p99 all ok requests"].append((s + 0.5, percentile(sorted(everything[s]), 0.99)))
    return out


def queue_series(samples, t0_ms):
    offset = (samples["started_at_ms"] - t0_ms) / 1000
    out = {}
    for proc, metrics in samples["gauges"].items():
        for metric, points in metrics.items():
            if not metric.endswith(("queue_depth", "payments_held", "pending_payments")):
                continue
            if metric.endswith("pending_payments") and proc != "api1":
                continue  # the database is shared: one worker's view is everybody's
            label = "database pending (shared)" if metric.endswith("pending_payments") else f"{proc} queue"
            out[label] = [(t + offset, v) for t, v in points]
    return out


def in_flight_series(samples, t0_ms):
    """Calls each processor is serving (our simulators' running + waiting), and any worker
    gauge of calls in flight."""
    offset = (samples["started_at_ms"] - t0_ms) / 1000
    return {f"{proc} {metric}".replace("sim-", "").replace(" in_flight", ""): [(t + offset, v) for t, v in points]
            for proc, metrics in samples["gauges"].items() for metric, points in metrics.items()
            if "in_flight" in metric}


def rate_series(samples, t0_ms, pick, scale):
    """{label: [(t, rate)]}: the rate of a cumulative reading of each process's samples,
    times `scale`; `pick(sample)` gives {label: reading} (empty where there is none)."""
    offset = (samples["started_at_ms"] - t0_ms) / 1000
    out = {}
    for proc, series in samples["series"].items():
        for a, b in zip(series, series[1:]):
            (t1, t2), ra, rb = (a[0], b[0]), pick(proc, a), pick(proc, b)
            for label in ra.keys() & rb.keys():
                if t2 > t1:
                    rate = max(0.0, (rb[label] - ra[label]) / (t2 - t1) * scale)
                    out.setdefault(label, []).append(((t1 + t2) / 2 + offset, rate))
    return out


def cpu_series(samples, t0_ms):
    """CPU use of each process in % of one core, from consecutive cumulative readings."""
    return rate_series(samples, t0_ms, lambda proc, s: {proc: s[1]}, 100)


def waiting_series(samples, t0_ms):
    """Time each process of the stack waited for a CPU, in ms per second: its threads'
    run-queue delay, and its cgroup's throttled time where a CPU limit holds it back."""
    def pick(proc, s):
        if proc in ("k6", "machine (all)") or proc.startswith("sim-") or len(s) < 5:
            return {}
        out = {f"{proc} run queue": s[3]}
        if s[4]:
            out[f"{proc} throttled"] = s[4][1]
        return out
    return rate_series(samples, t0_ms, pick, 1000)


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Plot:
    def __init__(self, t_max, stages, title):
        self.t_max, self.stages = t_max, stages
        self.parts = [f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{esc(title)}</text>']
        self.y0 = TOP

    def x(self, t):
        return LEFT + (WIDTH - LEFT - RIGHT) * max(0.0, min(t, self.t_max)) / self.t_max

    def panel(self, title, series, unit, log=False):
        y0, h = self.y0, PANEL_H
        values = [v for pts in series.values() for _, v in pts if v is not None]
        vmax = max(values, default=1) or 1
        vmin = max(min((v for v in values if v > 0), default=0.1), 0.01) if log else 0

        if log:
            lo, hi = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
            hi = max(hi, lo + 1)
            y = lambda v: y0 + h - h * (math.log10(max(v, 10**lo)) - lo) / (hi - lo)
            ticks = [10**e for e in range(lo, hi + 1)]
        else:
            top = nice(vmax)
            y = lambda v: y0 + h - h * v / top
            ticks = [top * i / 4 for i in range(5)]
        p = self.parts
        p.append(f'<text x="{LEFT}" y="{y0 - 8}" font-size="13">{esc(title)}</text>')
        p.append(f'<rect x="{LEFT}" y="{y0}" width="{WIDTH - LEFT - RIGHT}" height="{h}" fill="none" stroke="#999"/>')
        for tv in ticks:
            ty = y(tv)
            p.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#eee"/>')
            p.append(f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" font-size="11" text-anchor="end">{fmt(tv)}{unit}</text>')
        for at, label in self.stages:
            sx = self.x(at)
            p.append(f'<line x1="{sx:.1f}" x2="{sx:.1f}" y1="{y0}" y2="{y0 + h}" stroke="#888" stroke-dasharray="4,3"/>')
        if y0 == TOP:  # stage names inside the first panel, on alternating rows so they do not collide
            for i, (at, label) in enumerate(self.stages):
                p.append(f'<text x="{self.x(at) + 2:.1f}" y="{y0 + 11 + 11 * (i % 2)}" font-size="9" fill="#555">{esc(label)}</text>')
        for i, (label, pts) in enumerate(series.items()):
            color = COLORS[i % len(COLORS)]
            coords = " ".join(f"{self.x(t):.1f},{y(v):.1f}" for t, v in pts if v is not None and (v > 0 or not log))
            if coords:
                p.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.4" points="{coords}"/>')
            ly = y0 + 14 + 15 * i
            p.append(f'<line x1="{WIDTH - RIGHT + 10}" x2="{WIDTH - RIGHT + 28}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
            p.append(f'<text x="{WIDTH - RIGHT + 32}" y="{ly}" font-size="11">{esc(label)}</text>')
        self.y0 += h + GAP

    def text_lines(self, title, lines):
        """A block of monospaced text (the per-stage table) under the panels."""
        p, y = self.parts, self.y0 - GAP + 40
        p.append(f'<text x="{LEFT}" y="{y}" font-size="13">{esc(title)}</text>')
        for i, line in enumerate(lines):
            p.append(f'<text x="{LEFT - 40}" y="{y + 16 + 13 * i}" font-size="10.5" font-family="monospace" '
                     f'xml:space="preserve">{esc(line)}</text>')
        self.extra_h = 40 + 16 + 13 * len(lines)

    def svg(self):
        axis_y = self.y0 - GAP + 16
        step = 10 if self.t_max <= 100 else 30  # labels that do not collide
        for t in range(0, int(self.t_max) + 1, step):
            self.parts.append(f'<text x="{self.x(t):.1f}" y="{axis_y}" font-size="11" text-anchor="middle">{t} s</text>')
        height = axis_y + 14 + getattr(self, "extra_h", 0)
        body = "\n".join(self.parts)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
                f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')


def nice(v):
    """The smallest 1, 2 or 5 x 10^n at or above v."""
    e = 10 ** math.floor(math.log10(v))
    return next(m * e for m in (1, 2, 5, 10) if m * e >= v)


def fmt(v):
    return f"{v:g}" if v < 10000 else f"{v / 1000:g}k"


def stage_label(s):
    d, f = s["default"], s["fallback"]
    state = lambda x: f"{x[0]}ms{' FAIL' if x[1] else ''}"
    return f"D {state(d)} / F {state(f)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--label", default="stack")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--report", type=Path, help="report.py's result file: its per-stage table goes under the plot")
    args = ap.parse_args()
    result = json.loads((args.work / f"{args.label}-result.json").read_text())
    samples = json.loads((args.work / f"{args.label}-samples.json").read_text())
    t0 = result["started_at_ms"]
    stages = [(s["at"] * result["time_scale"], stage_label(s)) for s in result["stages"]]
    t_max = result["run_secs"] * result["time_scale"] + 5

    title = (f"make bench: {result['scenario']}, {result['max_requests']} VUs, score {result['score']:.0f}, "
             f"p99 {result['p99_raw_ms']:.2f} ms, lag {result['lag']}, {result['inconsistencies']} inconsistencies")
    plot = Plot(t_max, stages, title)
    points = args.work / f"{args.label}-points.csv"
    if points.exists():  # not with BENCH_POINTS=0
        plot.panel("latency per second (log scale)", latency_series(points, t0), " ms", log=True)
    plot.panel("queues (payments)", queue_series(samples, t0), "")
    plot.panel("calls in flight at each processor (running + waiting there)", in_flight_series(samples, t0), "")
    plot.panel("CPU per process, % of one core (log scale; `machine (all)` includes everything else running)",
               cpu_series(samples, t0), "%", log=True)
    waiting = waiting_series(samples, t0)
    if waiting:
        plot.panel("waiting for a CPU, ms per s: run-queue delay (ready, not running) and cgroup throttling",
                   waiting, " ms")
    if args.report:
        from report import stage_table
        plot.text_lines("per stage", stage_table(json.loads(args.report.read_text())["stages"]))
    args.out.write_text(plot.svg())


if __name__ == "__main__":
    main()
