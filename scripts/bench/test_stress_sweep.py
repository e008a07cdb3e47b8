#!/usr/bin/env python3
"""The verdicts of scripts/bench/stress_sweep.py (`make stress`): what counts as a passing run,
and which rate is reported as the highest.

Run: python3 -m unittest discover -s scripts -p 'test_*.py'   (part of `make check`)
"""
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stress_sweep import best_rates, passes  # noqa: E402


def run(rate, p99=1.0, target="lb", tool="open-load", **extra):
    row = {"tool": tool, "target": target, "rate": rate, "p99_ms": p99, "failed": 0, "dropped": 0,
           "lag": 0, "inconsistency": 0}
    row.update(extra)
    row["pass"] = passes(row)
    return row


class Verdicts(unittest.TestCase):
    def test_a_run_passes_only_under_5_ms_with_nothing_failed_dropped_or_unrecorded(self):
        self.assertTrue(run(1000, p99=4.99)["pass"])
        for spoiled in (dict(p99=5.0), dict(failed=1), dict(dropped=1), dict(lag=1), dict(inconsistency=1)):
            self.assertFalse(run(1000, **spoiled)["pass"], spoiled)

    def test_the_floor_has_no_lag_to_check(self):
        row = run(1000, target="floor")
        del row["lag"], row["inconsistency"]
        self.assertTrue(passes(row))

    def test_the_highest_rate_counts_only_when_every_lower_rate_passed(self):
        rows = [run(25000), run(10000), run(20000, p99=5.3), run(15000),
                run(10000, target="floor"), run(30000, target="floor")]
        self.assertEqual(best_rates(rows), {"open-load/lb": 15000, "open-load/floor": 30000})

    def test_a_target_that_fails_its_lowest_rate_reports_zero(self):
        self.assertEqual(best_rates([run(1000, p99=9.0, tool="k6"), run(2000, tool="k6")]), {"k6/lb": 0})


if __name__ == "__main__":
    unittest.main()
