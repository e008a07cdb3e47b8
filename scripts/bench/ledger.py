#!/usr/bin/env python3
"""What the processors and our database hold at the end of one `make bench` run, read
while the stack is still up (scripts/bench/bench.sh), for scripts/bench/report.py:

- double charges: the correlationIds both processors stored (GET /admin/payments of each, a
  route of our simulator only; the token is their start token, 123, which the k6 scenario
  gives back at its end);
- the per-payment check (scripts/lib/per_payment.py): with --db, every row of our database
  against what each processor stored, id by id (the one processor, requestedAt, amount),
  pending rows apart as lag, and our totals against the processors' over every 1 s and 15 s
  window; without --db (or when it cannot be read), the processors' lists against our
  GET /payments-summary at --lb, 15 s windows every 5 s;
- with --db on a SQLite stack, our payments per second of arrival (accepted_at, when the lb
  took them), by status and processor: what became of each stage's arrivals.

Usage: ledger.py --default URL --fallback URL --out FILE [--db PATH|postgres://URL] [--lb URL]
"""
import argparse
import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
import per_payment  # noqa: E402

START_TOKEN = "123"
# The longest wait for calls still in flight at the end of the run (the final's slow
# default answers in 2 s; our timeout is 6 s) before a mismatch is reported as one.
SETTLE_SECS = 15


def stored_ids(url):
    return set(per_payment.processor_payments(url, START_TOKEN))


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
    ap.add_argument("--db", help="our database: the SQLite file, or a postgres:// URL")
    ap.add_argument("--lb", help="our GET /payments-summary, for the windows when --db cannot be read")
    args = ap.parse_args()
    each = per_payment.read_and_check(args.db, {"default": args.default, "fallback": args.fallback},
                                      START_TOKEN, lb_url=args.lb, wait_secs=SETTLE_SECS)
    default, fallback = stored_ids(args.default), stored_ids(args.fallback)
    both = sorted(default & fallback)
    out = {"stored": {"default": len(default), "fallback": len(fallback)},
           "double_charged": len(both), "double_charged_ids": both[:20], "per_payment": each}
    if args.db and not per_payment.is_postgres(args.db):
        out["arrivals_per_second"] = arrivals(args.db)
    args.out.write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
