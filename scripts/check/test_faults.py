#!/usr/bin/env python3
"""The verdicts of scripts/check/faults.py (part of `make check`): which figures pass each check.

Run: python3 -m unittest discover -s scripts -p 'test_faults.py'
"""
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faults import Stack, checks, lb_kills  # noqa: E402
import per_payment  # noqa: E402  (scripts/lib, on the path through faults)
from per_payment import Row, Stored  # noqa: E402


def figures(**changes):
    f = {"sent": 300, "accepted": 300, "refused_while_up": 0, "stored_by_both": [], "lost": [],
         "ours": {"default": 200, "fallback": 100}, "processors": {"default": 200, "fallback": 100}}
    f.update(changes)
    return f


def failed(f):
    return [name for name, ok, _ in checks(f) if not ok]


class Verdicts(unittest.TestCase):
    def test_a_clean_run_passes_every_check(self):
        self.assertEqual(failed(figures()), [])

    def test_each_fault_fails_its_own_check(self):
        self.assertEqual(failed(figures(accepted=299, refused_while_up=1)),
                         ["every POST /payments answered 2xx while the lb ran"])
        self.assertEqual(failed(figures(stored_by_both=["a"])), ["no payment stored by both processors"])
        self.assertEqual(failed(figures(lost=["b"])), ["nothing lost: every accepted payment stored by a processor"])
        differ = {"default": 201, "fallback": 100}
        self.assertEqual(failed(figures(processors=differ)), ["our summary equals the processors' per processor"])

    def test_posts_refused_while_the_lb_restarted_are_expected(self):
        self.assertEqual(failed(figures(accepted=270, refused_while_up=0)), [])

    def test_an_unanswered_summary_fails_the_comparison(self):
        self.assertEqual(failed(figures(ours=None)), ["our summary equals the processors' per processor"])

    def test_a_payment_stored_unlike_our_row_fails_the_per_payment_check(self):
        row, stored = Row(1990, "processed", "default", 1000), Stored(1000, 1990)
        good = per_payment.check({"a": row}, {"default": {"a": stored}}, accepted={"a"})
        self.assertEqual(failed(figures(per_payment=good)), [])
        # Another requestedAt, in the same second: no total and no window sees it.
        moved = per_payment.check({"a": row}, {"default": {"a": stored._replace(requested_at=1001)}},
                                  accepted={"a"})
        name = "each payment as the processors stored it, and every window"
        self.assertEqual(failed(figures(per_payment=moved)), [name])
        detail = dict((n, d) for n, _, d in checks(figures(per_payment=moved)))[name]
        self.assertIn("1 ids checked (1 accepted), 0 matched, 0 lag (pending), 1 mismatches", detail)

    def test_the_detail_names_ids_stored_twice(self):
        detail = dict((n, d) for n, _, d in checks(figures(stored_by_both=["x", "y"])))
        self.assertIn("2 stored by both, e.g. x, y", detail["no payment stored by both processors"])


class LbScenario(unittest.TestCase):
    def test_every_worker_is_stopped_and_the_lb_killed_twice(self):
        for workers in (2, 3):
            _, _, events = lb_kills(workers)
            stopped = {arg for _, action, arg in events if action == "stop"}
            resumed = {arg for _, action, arg in events if action == "cont"}
            self.assertEqual(stopped, {f"api{i}" for i in range(1, workers + 1)})
            self.assertEqual(resumed, stopped)
            kills = [at for at, action, arg in events if (action, arg) == ("kill", "lb")]
            self.assertEqual(len(kills), 2)
            stop_at = min(at for at, action, _ in events if action == "stop")
            cont_at = max(at for at, action, _ in events if action == "cont")
            self.assertTrue(stop_at < kills[0] < cont_at, "the first kill while the lb holds payments")


class Storage(unittest.TestCase):
    def stack_env(self, storage):
        with tempfile.TemporaryDirectory() as work:
            return Stack(Path(work), storage).env

    def test_postgres_runs_three_workers_each_on_a_port_of_its_own(self):
        env = self.stack_env("postgres")
        self.assertEqual((env["STORAGE"], env["API_WORKERS"]), ("postgres", "3"))
        listens = {env[f"API{i}_LISTEN"] for i in (1, 2, 3)}
        self.assertEqual(len(listens | {env["LB_LISTEN"], env["SIM_DEFAULT_LISTEN"], env["SIM_FALLBACK_LISTEN"]}), 6)

    def test_sqlite_runs_two_workers_as_before(self):
        env = self.stack_env("sqlite")
        self.assertEqual((env["STORAGE"], env["API_WORKERS"]), ("sqlite", "2"))
        self.assertNotIn("API3_LISTEN", env)

    def test_the_per_payment_check_reads_the_workers_database(self):
        with tempfile.TemporaryDirectory() as work:
            self.assertEqual(Stack(Path(work), "sqlite").database(), f"{work}/data/payments.db")
            url = Stack(Path(work), "postgres").database()
        socket_dir = str((Path(work) / "data" / "run" / "postgres").resolve()).replace("/", "%2F")
        self.assertEqual(url, f"postgresql://postgres@{socket_dir}/payments")


if __name__ == "__main__":
    unittest.main()
