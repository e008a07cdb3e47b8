#!/usr/bin/env python3
"""The verdicts of scripts/faults.py (part of `make check`): which figures pass each check.

Run: python3 -m unittest discover -s scripts -p 'test_faults.py'
"""
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faults import checks  # noqa: E402


def figures(**changes):
    f = {"sent": 300, "accepted": 300, "stored_by_both": [], "lost": [],
         "ours": {"default": 200, "fallback": 100}, "processors": {"default": 200, "fallback": 100}}
    f.update(changes)
    return f


def failed(f):
    return [name for name, ok, _ in checks(f) if not ok]


class Verdicts(unittest.TestCase):
    def test_a_clean_run_passes_every_check(self):
        self.assertEqual(failed(figures()), [])

    def test_each_fault_fails_its_own_check(self):
        self.assertEqual(failed(figures(accepted=299)), ["every POST /payments answered 2xx"])
        self.assertEqual(failed(figures(stored_by_both=["a"])), ["no payment stored by both processors"])
        self.assertEqual(failed(figures(lost=["b"])), ["nothing lost: every accepted payment stored by a processor"])
        differ = {"default": 201, "fallback": 100}
        self.assertEqual(failed(figures(processors=differ)), ["our summary equals the processors' per processor"])

    def test_an_unanswered_summary_fails_the_comparison(self):
        self.assertEqual(failed(figures(ours=None)), ["our summary equals the processors' per processor"])

    def test_the_detail_names_ids_stored_twice(self):
        detail = dict((n, d) for n, _, d in checks(figures(stored_by_both=["x", "y"])))
        self.assertIn("2 stored by both, e.g. x, y", detail["no payment stored by both processors"])


if __name__ == "__main__":
    unittest.main()
