#!/usr/bin/env python3
"""The per-payment check of scripts/lib/per_payment.py (run by faults.py, the bench's ledger and
so make compose-test's verdict): on synthetic rows and processor lists, a clean run passes,
lag is counted apart, and each kind of mismatch, and a window off, is caught; the verdict
fails on a mismatch; then the same through a SQLite file, processors answering over HTTP
and scripts/bench/ledger.py.

Run: python3 -m unittest discover -s scripts/check -p 'test_per_payment.py'
"""
import http.server
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
import per_payment as pp  # noqa: E402
from per_payment import Row, Stored  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import verdict  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

T0 = pp.iso_ms("2025-07-10T12:00:00.000Z")


def run(n=6):
    """`n` payments, each paid: ours processed, the processor's list alike (the even ones at
    the default, the odd at the fallback), one every 400 ms, amounts 19.90 + i cents."""
    ours, theirs = {}, {"default": {}, "fallback": {}}
    for i in range(n):
        id_ = f"id-{i:02d}"
        processor = pp.PROCESSORS[i % 2]
        at, amount = T0 + 400 * i, 1990 + i
        ours[id_] = Row(amount, "processed", processor, at)
        theirs[processor][id_] = Stored(at, amount)
    return ours, theirs


def kinds(result):
    return sorted(result["mismatch_kinds"])


class Conversions(unittest.TestCase):
    def test_times_and_amounts_are_exact(self):
        self.assertEqual(pp.iso_ms("2025-07-10T12:34:56.789Z"), 1_752_150_896_789)
        self.assertEqual(pp.ms_iso(1_752_150_896_789), "2025-07-10T12:34:56.789Z")
        self.assertEqual(pp.ms_iso(1_752_150_896_000), "2025-07-10T12:34:56.000Z")
        self.assertEqual([pp.cents(a) for a in (19.9, 19.90, 0.01, 20.05, "19.90", 1234567.89)],
                         [1990, 1990, 1, 2005, 1990, 123456789])

    def test_a_processor_listing_is_read_as_stored(self):
        listing = json.loads('{"payments":[{"correlationId":"a","requestedAt":"2025-07-10T12:00:00.001Z",'
                             '"amount":19.90}]}')
        self.assertEqual(pp.parse_payments(listing), {"a": Stored(T0 + 1, 1990)})


class Check(unittest.TestCase):
    def test_a_clean_run_matches_every_payment_and_every_window(self):
        ours, theirs = run()
        r = pp.check(ours, theirs, accepted=set(ours))
        self.assertTrue(pp.ok(r), r)
        self.assertEqual((r["ids_checked"], r["accepted"], r["matched"], r["lag"], r["mismatches"]), (6, 6, 6, 0, 0))
        # 3 s of payments (0.0 to 2.0 s): three 1 s windows and three 15 s windows.
        self.assertEqual((r["windows_checked"], r["windows_off"]), (6, 0))

    def test_pending_at_no_processor_is_lag_not_a_mismatch(self):
        ours, theirs = run()
        ours["late"] = Row(1990, "pending", None, None)
        ours["pinned"] = Row(1990, "pending", "default", T0 + 10)
        r = pp.check(ours, theirs, accepted=set(ours))
        self.assertTrue(pp.ok(r), r)
        self.assertEqual((r["ids_checked"], r["matched"], r["lag"]), (8, 6, 2))
        self.assertEqual(r["lag_ids"], ["late", "pinned"])

    def test_each_kind_of_mismatch_is_caught_and_listed(self):
        cases = {
            "stored_twice": lambda o, t: t["fallback"].__setitem__("id-00", t["default"]["id-00"]),
            "not_ours": lambda o, t: o.pop("id-01"),
            "lost": lambda o, t: (o.pop("id-00"), t["default"].pop("id-00")),
            "not_stored": lambda o, t: t["default"].pop("id-02"),
            "pending_but_stored": lambda o, t: o.__setitem__("id-00", o["id-00"]._replace(status="pending")),
            "processor_differs": lambda o, t: t["fallback"].__setitem__("id-00", t["default"].pop("id-00")),
            # 1 ms later, in the same second: no total and no window changes, only this check sees it.
            "requested_at_differs": lambda o, t: t["default"].__setitem__(
                "id-00", t["default"]["id-00"]._replace(requested_at=T0 + 1)),
            "amount_differs": lambda o, t: o.__setitem__("id-03", o["id-03"]._replace(amount=1)),
        }
        self.assertEqual(sorted(cases), sorted(pp.KINDS))
        for kind, spoil in cases.items():
            with self.subTest(kind):
                ours, theirs = run()
                accepted = set(ours)
                spoil(ours, theirs)
                r = pp.check(ours, theirs, accepted=accepted)
                self.assertFalse(pp.ok(r))
                self.assertEqual(kinds(r), [kind])
                self.assertEqual(r["mismatches"], 1)
                self.assertEqual(r["ids_checked"], 6)
                self.assertEqual(r["matched"], 5)
                self.assertEqual(len(r["mismatch_first"][kind]), 1)
                self.assertIn(pp.KINDS[kind], "\n".join(pp.lines(r)))

    def test_a_time_moved_across_a_second_shows_in_the_windows_too(self):
        ours, theirs = run()
        # id-02 at 0.800 s: stored at 1.000 s, the next second; every total is unchanged.
        theirs["default"]["id-02"] = theirs["default"]["id-02"]._replace(requested_at=T0 + 1000)
        r = pp.check(ours, theirs)
        self.assertEqual(kinds(r), ["requested_at_differs"])
        # The 1 s windows from 0 s and from 1 s, and the 15 s window from 1 s; the one from
        # 0 s holds both times.
        self.assertEqual(r["windows_off"], 3)
        self.assertEqual(len(r["windows_off_first"]), 3)
        self.assertIn("2025-07-10T12:00:00.000Z +1 s", r["windows_off_first"][0])

    def test_ids_not_answered_202_are_checked_and_counted_apart(self):
        ours, theirs = run()
        r = pp.check(ours, theirs, accepted={"id-00", "id-01"})
        self.assertTrue(pp.ok(r), r)
        self.assertEqual((r["ids_checked"], r["accepted"], r["not_accepted"]), (6, 2, 4))
        self.assertIn("6 ids checked (2 accepted, 4 more not answered 2xx)", pp.lines(r)[0])

    def test_without_our_rows_the_lists_meet_our_summary_windows(self):
        ours, theirs = run()
        calls = []

        def summary(from_ms, to_ms, spoil=False):
            calls.append((from_ms, to_ms))
            got = {p: [0, 0] for p in pp.PROCESSORS}
            for row in ours.values():
                if from_ms <= row.requested_at <= to_ms:
                    got[row.processor][0] += 1
                    got[row.processor][1] += row.amount + (1 if spoil else 0)
            return {p: tuple(v) for p, v in got.items()}

        r = pp.check(None, theirs, accepted=set(ours) | {"gone"}, our_windows=summary)
        self.assertEqual(kinds(r), ["lost"])
        self.assertEqual((r["ids_checked"], r["matched"], r["ours_from"]), (7, 6, "summary"))
        self.assertEqual(r["windows_checked"], 1)  # 15 s windows every 5 s: one over 3 s
        self.assertEqual(calls, [(T0, T0 + 14999)])
        r = pp.check(None, theirs, our_windows=lambda f, t: summary(f, t, spoil=True))
        self.assertEqual((r["mismatches"], r["windows_off"]), (0, 1))
        self.assertFalse(pp.ok(r))


class Verdict(unittest.TestCase):
    """make compose-test's verdict on a bench report that carries the check."""

    NAME = "each payment as the processors stored it, and every window"

    def report(self, per_payment):
        base = {"payments_sent": 6, "payments_failed": 0, "audits": 3, "inconsistencies": 0, "lag": 0,
                "default": {"requests": 3}, "fallback": {"requests": 3},
                "processors": {"default": 3, "fallback": 3}, "double_charged": 0, "double_charged_ids": []}
        return {**base, "per_payment": per_payment} if per_payment is not None else base

    def failed(self, per_payment):
        return [name for name, ok, _ in verdict.checks(self.report(per_payment), False, False)
                if not ok]

    def test_a_mismatch_fails_and_the_ids_checked_are_shown(self):
        ours, theirs = run()
        good = pp.check(ours, theirs)
        self.assertEqual(self.failed(good), [])
        details = {name: d for name, _, d in verdict.checks(self.report(good), False, False)}
        self.assertTrue(details[self.NAME].startswith("6 ids checked (6 accepted), 6 matched, 0 lag (pending), 0 mismatches"),
                        details[self.NAME])
        theirs["default"]["id-00"] = theirs["default"]["id-00"]._replace(amount=1)
        self.assertEqual(self.failed(pp.check(ours, theirs)), [self.NAME])

    def test_lag_alone_passes_and_a_result_without_the_check_has_no_such_line(self):
        ours, theirs = run()
        ours["late"] = Row(1990, "pending", None, None)
        self.assertEqual(self.failed(pp.check(ours, theirs)), [])
        self.assertNotIn(self.NAME, [n for n, _, _ in verdict.checks(self.report(None), False, False)])


def sqlite_db(path, rows):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE payments (correlation_id TEXT PRIMARY KEY, amount INTEGER NOT NULL, processor TEXT,"
                " requested_at INTEGER, status TEXT NOT NULL, accepted_at INTEGER NOT NULL)")
    con.executemany("INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?)",
                    [(id_, r.amount, r.processor, r.requested_at, r.status, T0) for id_, r in rows.items()])
    con.commit()
    con.close()


class Processor(http.server.ThreadingHTTPServer):
    """A stand-in for one simulator's GET /admin/payments; `on_call` runs after each answer."""

    def __init__(self, payments, on_call=lambda: None):
        listing = {"payments": [{"correlationId": id_, "requestedAt": pp.ms_iso(s.requested_at),
                                 "amount": s.amount / 100} for id_, s in sorted(payments.items())]}
        body = json.dumps(listing).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                ok = self.path == "/admin/payments" and self.headers.get("X-Rinha-Token") == "123"
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", str(len(body) if ok else 0))
                self.end_headers()
                if ok:
                    self.wfile.write(body)
                on_call()

            def log_message(self, *_):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class ReadAndCheck(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.db = Path(self.dir.name) / "payments.db"

    def tearDown(self):
        self.dir.cleanup()

    def serve(self, theirs, on_default_call=lambda: None):
        servers = {"default": Processor(theirs["default"], on_default_call), "fallback": Processor(theirs["fallback"])}
        for s in servers.values():
            self.addCleanup(s.server_close)
            self.addCleanup(s.shutdown)
        return {p: s.url() for p, s in servers.items()}

    def test_our_rows_are_read_from_the_database_nulls_included(self):
        ours, _ = run()
        ours["late"] = Row(1990, "pending", None, None)
        sqlite_db(self.db, ours)
        self.assertEqual(pp.our_rows(self.db), ours)

    def test_a_call_that_ends_between_the_two_reads_is_read_again(self):
        ours, theirs = run()
        in_flight = ours["id-00"]
        ours["id-00"] = in_flight._replace(status="pending")
        sqlite_db(self.db, ours)

        def paid():  # the worker records the answer just after the processor stored it
            con = sqlite3.connect(self.db)
            con.execute("UPDATE payments SET status = 'processed' WHERE correlation_id = 'id-00'")
            con.commit()
            con.close()

        r = pp.read_and_check(self.db, self.serve(theirs, paid), accepted=set(ours), wait_secs=5)
        self.assertTrue(pp.ok(r), r)
        self.assertEqual((r["reads"], r["ids_checked"], r["matched"]), (2, 6, 6))

    def test_a_real_mismatch_stays_and_fails_once_the_wait_is_over(self):
        ours, theirs = run()
        theirs["default"]["id-00"] = theirs["default"]["id-00"]._replace(requested_at=T0 + 7)
        sqlite_db(self.db, ours)
        r = pp.read_and_check(self.db, self.serve(theirs), wait_secs=0)
        self.assertEqual((r["reads"], kinds(r)), (1, ["requested_at_differs"]))
        self.assertIn("ours 2025-07-10T12:00:00.000Z, default 2025-07-10T12:00:00.007Z",
                      r["mismatch_first"]["requested_at_differs"][0])

    def test_the_bench_ledger_carries_the_check(self):
        ours, theirs = run()
        ours["late"] = Row(1990, "pending", None, None)
        sqlite_db(self.db, ours)
        urls = self.serve(theirs)
        out = Path(self.dir.name) / "ledger.json"
        subprocess.run([sys.executable, ROOT / "scripts" / "bench" / "ledger.py", "--default", urls["default"],
                        "--fallback", urls["fallback"], "--db", self.db, "--out", out], check=True, timeout=60)
        ledger = json.loads(out.read_text())
        each = ledger["per_payment"]
        self.assertTrue(pp.ok(each), each)
        self.assertEqual((each["ids_checked"], each["matched"], each["lag"]), (7, 6, 1))
        self.assertEqual((ledger["stored"], ledger["double_charged"]), ({"default": 3, "fallback": 3}, 0))
        self.assertEqual(sum(row[3] for row in ledger["arrivals_per_second"]), 7)

    def test_unreadable_rows_fall_back_to_the_lists_and_say_so(self):
        ours, theirs = run()
        r = pp.read_and_check(Path(self.dir.name) / "absent.db", self.serve(theirs), wait_secs=0)
        self.assertEqual((r["mismatches"], r["matched"], r["windows_checked"]), (0, 6, 0))
        self.assertTrue(r["ours_from"].startswith("our rows unreadable"), r["ours_from"])
        self.assertIn("ours from our rows unreadable", pp.lines(r)[0])


if __name__ == "__main__":
    unittest.main()
