#!/usr/bin/env python3
"""What the processors and our database hold at the end of one `make bench` run, read
while the stack is still up (scripts/bench/bench.sh), for scripts/bench/report.py:

- double charges: the correlationIds both processors stored (GET /admin/payments of each, a
  route of our simulator only; the token is their start token, 123, which the k6 scenario
  gives back at its end);
- with --db (a SQLite stack), our payments per second of arrival (accepted_at, when the lb
  took them), by status and processor: what became of each stage's arrivals.

Usage: ledger.py --default URL --fallback URL --out FILE [--db PATH]
"""
import argparse
import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
from stack import http_json  # noqa: E402

START_TOKEN = "123"


def stored_ids(url):
    return set(http_json("GET", f"{url}/admin/payments", headers={"X-Rinha-Token": START_TOKEN},
                         timeout=30)["correlationIds"])


def arrivals(db):
    """[[second, status, processor or None, count]] from our database, read-only."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [list(row) for row in con.execute(
            "SELECT accepted_at / 1000, status, processor, count(*) FROM payments GROUP BY 1, 2, 3 ORDER BY 1")]
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--default", required=True)
    ap.add_argument("--fallback", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--db", type=Path)
    args = ap.parse_args()
    default, fallback = stored_ids(args.default), stored_ids(args.fallback)
    both = sorted(default & fallback)
    out = {"stored": {"default": len(default), "fallback": len(fallback)},
           "double_charged": len(both), "double_charged_ids": both[:20]}
    if args.db:
        out["arrivals_per_second"] = arrivals(args.db)
    args.out.write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
