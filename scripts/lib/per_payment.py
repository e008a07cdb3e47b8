"""The per-payment check: our rows against what each processor stored, id by id, and our
summary against the processors' over every 1 s and 15 s window of the run.

Why: every other check compares totals, and a payment a processor stored with another
`requestedAt` than ours changes no total; it only moves between an audit's windows. Here
each id of the union (our rows, both processors' `GET /admin/payments`, the ids answered
202 where the caller knows them) must be stored by exactly one processor, and our row of it
must be `processed` at that processor with the same `requestedAt` (ms) and amount (cents).
An id still pending in our database and at no processor is lag, counted and listed apart;
anything else is a mismatch. The processors' side of each window is computed from their
lists and ours from our rows, so hundreds of windows cost no HTTP call.

Where our rows cannot be read (PostgreSQL in a container the host cannot reach), the
processors' lists are still checked against each other and against the accepted ids, and
our side of the windows comes from GET /payments-summary (15 s windows every 5 s); the
result says so (`ours_from`).

Used by scripts/check/faults.py (after its settle), scripts/bench/ledger.py (the end of
`make bench`, hence `make compose-test`'s verdict) and tested by
scripts/check/test_per_payment.py.
"""
import calendar
import json
import os
import sqlite3
import subprocess
import time
import urllib.parse
import urllib.request
from collections import namedtuple
from datetime import datetime, timezone
from decimal import Decimal

PROCESSORS = ("default", "fallback")
# Our side, as people read it at the sqlite3 or psql prompt: one read-only SELECT.
OUR_ROWS_SQL = "SELECT correlation_id, amount, status, processor, requested_at FROM payments"
# (width, step) in ms of the windows compared when our rows are read: every 1 s window and
# every 15 s window (the contest's audit width) starting on each second of the run.
WINDOWS = ((1000, 1000), (15000, 1000))
# The same from GET /payments-summary, one call per window, when our rows cannot be read.
SUMMARY_WINDOWS = ((15000, 5000),)
SHOW = 5  # ids listed per kind of finding

# Our row of a payment: amount in cents, 'pending' | 'processed', the processor of its
# last attempt (None before the first) and the requestedAt (ms) sent with it.
Row = namedtuple("Row", "amount status processor requested_at")
# A payment as a processor stored it: requestedAt (ms) and amount (cents).
Stored = namedtuple("Stored", "requested_at amount")

# Mismatch kinds, in the order they are reported.
KINDS = {
    "stored_twice": "stored by both processors",
    "not_ours": "stored by a processor, not in our database",
    "lost": "answered 202, in neither our database nor a processor",
    "not_stored": "processed in our database, stored by no processor",
    "pending_but_stored": "pending in our database, stored by a processor",
    "processor_differs": "processed in our database at the other processor",
    "requested_at_differs": "requestedAt differs",
    "amount_differs": "amount differs",
}


def iso_ms(text):
    """Milliseconds since the epoch of `2025-07-10T12:34:56.789Z` (exact, no float)."""
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


def ms_iso(ms):
    """The inverse of `iso_ms`."""
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def cents(amount):
    """Integer cents of a JSON number (19.9 or 19.90) or a decimal string, exactly."""
    return int((Decimal(repr(amount) if isinstance(amount, float) else str(amount)) * 100)
               .to_integral_value())


def parse_payments(listing):
    """{id: Stored} of one processor's `GET /admin/payments` answer."""
    return {p["correlationId"]: Stored(iso_ms(p["requestedAt"]), cents(p["amount"]))
            for p in listing["payments"]}


def processor_payments(url, token="123", timeout=30):
    """{id: Stored} of the processor at `url` (our simulator's `GET /admin/payments`, one call)."""
    req = urllib.request.Request(f"{url}/admin/payments", headers={"X-Rinha-Token": token})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return parse_payments(json.loads(res.read()))


def _row(id_, amount, status, processor, requested_at):
    none = lambda v: None if v in (None, "") else v  # noqa: E731
    at = none(requested_at)
    return id_, Row(int(amount), status, none(processor), None if at is None else int(at))


def is_postgres(db):
    return str(db).startswith(("postgres://", "postgresql://"))


def our_rows(db):
    """{id: Row} of every payment in our database: a SQLite file (read-only, while the
    workers run) or a PostgreSQL URL (through psql)."""
    if is_postgres(db):
        out = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", str(db),
                              "-c", OUR_ROWS_SQL], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
        if out.returncode != 0:
            raise OSError(f"psql {db}: {out.stderr.strip()}")
        return dict(_row(*line.split("|")) for line in out.stdout.splitlines() if line)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(_row(*r) for r in con.execute(OUR_ROWS_SQL))
    finally:
        con.close()


def lb_summary(lb_url, timeout=10):
    """A function (from_ms, to_ms) -> {processor: (count, cents)} reading GET /payments-summary
    at `lb_url`, for `check`'s `our_windows` when our rows cannot be read."""
    def fetch(from_ms, to_ms):
        query = urllib.parse.urlencode({"from": ms_iso(from_ms), "to": ms_iso(to_ms)})
        with urllib.request.urlopen(f"{lb_url}/payments-summary?{query}", timeout=timeout) as res:
            s = json.loads(res.read())
        return {p: (s[p]["totalRequests"], cents(s[p]["totalAmount"])) for p in PROCESSORS}
    return fetch


def _per_second(payments):
    """{processor: {second: [count, cents]}} of (processor, requested_at, amount) triples."""
    out = {p: {} for p in PROCESSORS}
    for processor, at, amount in payments:
        slot = out[processor].setdefault(at // 1000, [0, 0])
        slot[0] += 1
        slot[1] += amount
    return out


def _window_totals(buckets, first, last, width_s, step_s):
    """[(start second, {processor: (count, cents)})] of every window of `width_s` seconds
    starting every `step_s` seconds from `first` to `last`."""
    out = []
    for start in range(first, last + 1, step_s):
        totals = {}
        for p in PROCESSORS:
            n = c = 0
            for s in range(start, start + width_s):
                slot = buckets[p].get(s)
                if slot:
                    n, c = n + slot[0], c + slot[1]
            totals[p] = (n, c)
        out.append((start, totals))
    return out


def check(ours, processors, accepted=None, our_windows=None):
    """The per-payment check. `ours`: {id: Row}, or None when our rows cannot be read (then
    `our_windows`, a function (from_ms, to_ms) -> {processor: (count, cents)}, gives our side
    of the windows); `processors`: {"default": {id: Stored}, "fallback": {...}};
    `accepted`: the ids answered 202, where the caller knows them. Returns a dict: ids
    checked, accepted, matched, lag (and its first ids), mismatches (count, per kind, the
    first few with what differs), windows checked and off, where our side came from."""
    accepted = None if accepted is None else set(accepted)
    stored = {p: processors.get(p, {}) for p in PROCESSORS}
    ids = set(stored["default"]) | set(stored["fallback"]) | set(ours or ()) | (accepted or set())
    by_kind = {k: [] for k in KINDS}
    matched, lag = 0, []

    def found(kind, id_, detail=""):
        by_kind[kind].append(f"{id_}{': ' + detail if detail else ''}")

    for id_ in sorted(ids):
        at = [(p, stored[p][id_]) for p in PROCESSORS if id_ in stored[p]]
        if len(at) > 1:
            found("stored_twice", id_)
            continue
        if ours is None:  # only the processors' side is known
            if not at and accepted is not None and id_ in accepted:
                found("lost", id_)
            elif at:
                matched += 1
            continue
        row = ours.get(id_)
        if not at:
            if row is None:
                found("lost", id_)
            elif row.status == "pending":
                lag.append(id_)
            else:
                found("not_stored", id_, f"ours at {row.processor}")
            continue
        processor, theirs = at[0]
        if row is None:
            found("not_ours", id_, f"stored by {processor}")
            continue
        ok = True
        if row.status != "processed":
            found("pending_but_stored", id_, f"stored by {processor}")
            ok = False
        elif row.processor != processor:
            found("processor_differs", id_, f"ours {row.processor}, stored by {processor}")
            ok = False
        if row.requested_at != theirs.requested_at:
            ours_at = "none" if row.requested_at is None else ms_iso(row.requested_at)
            found("requested_at_differs", id_, f"ours {ours_at}, {processor} {ms_iso(theirs.requested_at)}")
            ok = False
        if row.amount != theirs.amount:
            found("amount_differs", id_, f"ours {row.amount / 100:.2f}, {processor} {theirs.amount / 100:.2f}")
            ok = False
        matched += ok

    mismatched_ids = {f.split(":")[0] for kind in by_kind.values() for f in kind}
    result = {
        "ids_checked": len(ids),
        "accepted": None if accepted is None else len(accepted),
        "not_accepted": None if accepted is None else len(ids - accepted),
        "ours_from": "database" if ours is not None else "summary",
        "matched": matched,
        "lag": len(lag),
        "lag_ids": lag[:SHOW],
        "mismatches": len(mismatched_ids),
        "mismatch_kinds": {k: len(v) for k, v in by_kind.items() if v},
        "mismatch_first": {k: v[:SHOW] for k, v in by_kind.items() if v},
    }
    result.update(_windows(ours, stored, our_windows))
    return result


def _windows(ours, stored, our_windows):
    """Our totals against the processors' over sliding windows (see WINDOWS)."""
    theirs = _per_second((p, s.requested_at, s.amount) for p in PROCESSORS for s in stored[p].values())
    if ours is not None:
        mine = _per_second((r.processor, r.requested_at, r.amount) for r in ours.values()
                           if r.status == "processed" and r.processor in PROCESSORS and r.requested_at is not None)
    seconds = [s for side in ([theirs] + ([mine] if ours is not None else [])) for p in PROCESSORS for s in side[p]]
    if not seconds or (ours is None and our_windows is None):
        return {"windows_checked": 0, "windows_off": 0, "windows_off_first": []}
    first, last = min(seconds), max(seconds)
    checked, off = 0, []
    for width, step in (WINDOWS if ours is not None else SUMMARY_WINDOWS):
        w, st = width // 1000, step // 1000
        expected = _window_totals(theirs, first, last, w, st)
        got = (_window_totals(mine, first, last, w, st) if ours is not None else
               [(start, our_windows(start * 1000, (start + w) * 1000 - 1)) for start, _ in expected])
        for (start, t), (_, o) in zip(expected, got):
            checked += 1
            if o != t:
                off.append(f"{ms_iso(start * 1000)} +{w} s: ours "
                           + ", ".join(f"{p} {o[p][0]} / {o[p][1] / 100:.2f}" for p in PROCESSORS)
                           + "; processors "
                           + ", ".join(f"{p} {t[p][0]} / {t[p][1] / 100:.2f}" for p in PROCESSORS))
    return {"windows_checked": checked, "windows_off": len(off), "windows_off_first": off[:SHOW]}


def read_and_check(db, processor_urls, token="123", accepted=None, lb_url=None, wait_secs=10.0):
    """Reads our rows (from `db`: a SQLite path or a PostgreSQL URL; None: unreadable), then
    each processor's list ({"default": url, "fallback": url}), and checks them. Our side is
    read first, so a call still in flight can only show as `pending_but_stored`; while any
    mismatch is found the read is repeated, once a second for `wait_secs` at most (a real
    mismatch stays). Where our rows cannot be read, the check runs on the processors' lists
    against our summary at `lb_url` (`ours_from` says why)."""
    deadline = time.monotonic() + wait_secs
    reads, why = 0, None
    while True:
        ours = None
        if db is not None:
            try:
                ours = our_rows(db)
            except (OSError, sqlite3.Error, subprocess.SubprocessError) as e:
                why = f"our rows unreadable ({e})"
        elif why is None:
            why = "our rows not reachable from here"
        processors = {p: processor_payments(processor_urls[p], token) for p in PROCESSORS}
        reads += 1
        result = check(ours, processors, accepted,
                       None if ours is not None or lb_url is None else lb_summary(lb_url))
        if result["mismatches"] == 0 and result["windows_off"] == 0 or time.monotonic() >= deadline:
            break
        time.sleep(1)
    result["reads"] = reads
    if ours is None:
        result["ours_from"] = (f"{why}: the processors' lists against our GET /payments-summary" if lb_url
                               else f"{why}: the processors' lists only")
    return result


def ok(result):
    """Whether the check passed: no mismatch and no window off."""
    return result["mismatches"] == 0 and result["windows_off"] == 0


def lines(result, accepted=None):
    """The report of `result`: a summary line, then the first findings. `accepted`: how
    many payments were answered 202, where only that count is known (k6's)."""
    r = result
    checked = f"{r['ids_checked']} ids checked"
    if r.get("accepted") is not None:
        checked += f" ({r['accepted']} accepted" + (f", {r['not_accepted']} more not answered 2xx"
                                                    if r["not_accepted"] else "") + ")"
    elif accepted is not None:
        checked += f" ({accepted} accepted)"
    kinds = ", ".join(f"{n} {KINDS[k]}" for k, n in r["mismatch_kinds"].items())
    out = [f"per payment: {checked}, {r['matched']} matched, {r['lag']} lag (pending), "
           f"{r['mismatches']} mismatches{' (' + kinds + ')' if kinds else ''}; "
           f"{r['windows_checked']} windows checked, {r['windows_off']} off"
           + ("" if r["ours_from"] == "database" else f"; ours from {r['ours_from']}")]
    for kind, first in r["mismatch_first"].items():
        out += [f"  {KINDS[kind]}: {f}" for f in first]
    if r["lag"]:
        out.append(f"  lag: {', '.join(r['lag_ids'])}{' ...' if r['lag'] > len(r['lag_ids']) else ''}")
    out += [f"  window off: {w}" for w in r["windows_off_first"]]
    return out
