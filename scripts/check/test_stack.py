#!/usr/bin/env python3
"""scripts/lib/stack.py: free ports, bounded waits that name what did not come up, and a
stop that leaves nothing running (part of `make check`; small shell processes only).

Run: python3 -m unittest discover -s scripts/check -p 'test_stack.py'
"""
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # scripts/lib
from stack import Process, StackError, free_ports  # noqa: E402


def alive(pid):
    """Running or stopped; a zombie (killed, waiting for whoever reaps orphans) is not."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Stack(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.log = Path(self.dir.name) / "out.log"

    def tearDown(self):
        self.dir.cleanup()

    def test_free_ports_are_distinct(self):
        ports = free_ports(5)
        self.assertEqual(len(set(ports)), 5)

    def test_a_process_that_exits_is_named_with_its_log(self):
        proc = Process(["sh", "-c", "echo no config; exit 3"], self.log)
        with self.assertRaisesRegex(StackError, f"the thing did not come up .*status 3 .*{self.log}"):
            proc.wait_port(free_ports(1)[0], "the thing", timeout=10)
        self.assertIn("no config", self.log.read_text())

    def test_the_wait_is_bounded(self):
        with Process(["sleep", "30"], self.log) as proc:
            start = time.monotonic()
            with self.assertRaisesRegex(StackError, "within 0.5 s"):
                proc.wait_port(free_ports(1)[0], "the sleeper", timeout=0.5)
            self.assertLess(time.monotonic() - start, 5)
        self.assertFalse(alive(proc.pid))

    def test_stop_kills_what_ignores_sigterm_and_its_children(self):
        proc = Process(["sh", "-c", "trap '' TERM; sleep 30 & echo $!; wait"], self.log)
        deadline = time.monotonic() + 5
        while not self.log.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(self.log.read_text())
        proc.stop(timeout=0.5)
        self.assertFalse(alive(proc.pid))
        # SIGKILL is queued at once and taken when the child next runs: allow it a moment.
        deadline = time.monotonic() + 2
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertFalse(alive(child))


if __name__ == "__main__":
    unittest.main()
