"""Starts, waits for and stops what a Python tool runs: free 127.0.0.1 ports, single
processes (`Process`, each in its own process group with a log file) and the whole native
stack (`NativeStack`, scripts/stack/run.sh), plus the /proc readers of their CPU and memory.

Why one module: every tool then waits for what it starts with a bound and an error that
names what did not come up and where its output is, and stops what it started by PID, also
when it fails (a context manager, or `stop` in a `finally`; a SIGTERM to the tool runs them
too), instead of each script doing it its own way.
"""
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "scripts" / "stack" / "run.sh"


class StackError(RuntimeError):
    """Something did not come up: the message names it and where its output is."""


def tail(log, lines=20):
    """The last `lines` lines of a log file ("" if there is none), to show it before its
    temporary directory goes."""
    log = Path(log)
    return "".join(log.read_text(errors="replace").splitlines(True)[-lines:]) if log.exists() else ""


def free_ports(n):
    """`n` distinct TCP ports free on 127.0.0.1, picked below the kernel's ephemeral range:
    after a load test thousands of ephemeral ports sit in TIME_WAIT or get taken by other
    processes' outgoing connections between our pick and the service's bind, while ports
    below the range are only ever taken by an explicit bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            high = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        high = 32768
    low = max(1024, high - 12000)
    picked = []
    for port in random.sample(range(low, high), high - low):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        picked.append(port)
        if len(picked) == n:
            return picked
    raise StackError(f"free_ports: fewer than {n} free ports in {low}-{high}")


def http_json(method, url, body=None, headers=None, timeout=5):
    """The JSON answer (None if empty) to a request with `body` (a JSON value) sent as JSON.
    Raises OSError when nothing answers, urllib.error.HTTPError (an OSError, with .code)
    on a status other than 2xx."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as res:
        text = res.read()
        return json.loads(text) if text else None


def _exit_on_sigterm():
    """A SIGTERM to the tool raises SystemExit, so that its `finally` and `with` blocks stop
    what it started (the processes are in groups of their own: a signal to the tool's group
    does not reach them)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        except ValueError:
            pass  # not the main thread: leave it as it is


class Process:
    """`argv` in a session and process group of its own (a Ctrl-C to the tool does not reach
    it: the tool stops it), with `env` over ours, its output appended to `log`; `stop` ends
    it by PID."""

    def __init__(self, argv, log, env=None):
        _exit_on_sigterm()
        self.log = Path(log)
        with open(self.log, "a") as out:
            self.popen = subprocess.Popen([str(a) for a in argv], env={**os.environ, **(env or {})},
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid

    def wait_port(self, port, what, timeout=30):
        """Returns once 127.0.0.1:`port` accepts a connection; raises StackError naming `what`
        and this process's log if it does not within `timeout` s or the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                pass
            if self.popen.poll() is not None:
                raise StackError(f"{what} did not come up on 127.0.0.1:{port}: {shlex.join(self.popen.args)} exited "
                                 f"with status {self.popen.returncode} (its output: {self.log})")
            if time.monotonic() >= deadline:
                raise StackError(f"{what} did not come up on 127.0.0.1:{port} within {timeout:g} s "
                                 f"(its output: {self.log})")
            time.sleep(0.05)

    def stop(self, timeout=20):
        """SIGTERM to the process; if it has not exited within `timeout` s, SIGKILL to its
        process group (whatever it started too)."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)  # not reaped yet, so the group is still ours
            self.popen.wait()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


class NativeStack:
    """scripts/stack/run.sh from `bin_dir` on free 127.0.0.1 ports: two simulators, `workers`
    api workers on `storage` (sqlite or postgres), the lb; its data in `work`/data, its output
    in `work`/stack.log, `env` over the rest; `extra_ports`: names of more ports picked with
    the stack's, for a process the caller runs beside it. `start` returns once the processors
    and the lb answer; `stop` stops it by PID (run.sh stops its services). Also a context
    manager."""

    def __init__(self, work, bin_dir, storage="sqlite", workers=2, env=None, extra_ports=()):
        self.work = Path(work)
        lb, default, fallback, *rest = free_ports(3 + workers + len(extra_ports))
        apis = rest[:workers]
        self.ports = {"lb": lb, "default": default, "fallback": fallback,
                      **{f"api{i}": port for i, port in enumerate(apis, 1)},
                      **dict(zip(extra_ports, rest[workers:]))}
        self.env = {"BIN_DIR": str(bin_dir), "DATA_DIR": str(self.work / "data"),
                    "STORAGE": storage, "API_WORKERS": str(workers), "LB_LISTEN": f"127.0.0.1:{lb}",
                    "SIM_DEFAULT_LISTEN": f"127.0.0.1:{default}", "SIM_FALLBACK_LISTEN": f"127.0.0.1:{fallback}",
                    **{f"API{i}_LISTEN": f"127.0.0.1:{port}" for i, port in enumerate(apis, 1)},
                    **(env or {})}
        if storage == "postgres":
            self.work.chmod(0o755)  # PostgreSQL runs as its own user (when we are root) below it
        self.log = self.work / "stack.log"
        self.proc = None
        self.stopped = {}  # name: pid of the processes sent SIGSTOP and not yet SIGCONT

    def url(self, name):
        """http://127.0.0.1:<port> of "lb", "default", "fallback", "apiN" or an extra port."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def database(self):
        """Where the workers keep the payments: the SQLite file's path, or on PostgreSQL the
        URL of run.sh's server (its unix socket in data/run/postgres, database `payments`)."""
        data = self.work / "data"
        if self.env["STORAGE"] == "postgres":
            socket_dir = urllib.parse.quote(str((data / "run" / "postgres").resolve()), safe="")
            return f"postgresql://postgres@{socket_dir}/payments"
        return str(data / "payments.db")

    def start(self, timeout=60):
        """Starts run.sh and waits for the processors, then the lb (PostgreSQL's first start
        creates its cluster: hence the minute)."""
        self.proc = Process(["bash", RUN_SH], self.log, self.env)
        deadline = time.monotonic() + timeout
        for name in ("default", "fallback", "lb"):
            what = "the lb" if name == "lb" else f"the {name} processor"
            self.proc.wait_port(self.ports[name], what, max(deadline - time.monotonic(), 1))

    def pids(self):
        """{name: pid} of the stack's processes (run.sh's pid files; a restarted one's new pid)."""
        return {f.stem: int(f.read_text()) for f in (self.work / "data" / "run").glob("*.pid")}

    def pid(self, name):
        return int((self.work / "data" / "run" / f"{name}.pid").read_text())

    def signal(self, name, sig):
        """Sends `sig` to the stack's process `name` ("lb", "api1", ...); one SIGSTOPped gets
        its SIGCONT in `stop` at the latest."""
        pid = self.stopped.pop(name) if sig == signal.SIGCONT else self.pid(name)
        os.kill(pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped[name] = pid

    def stop(self):
        for pid in self.stopped.values():  # a stopped process could not shut down
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped = {}
        if self.proc:
            self.proc.stop(timeout=30)  # run.sh: 10 s for the services, 10 s for PostgreSQL

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_):
        self.stop()


def thread_schedstats(pid):
    """{tid: (seconds on a CPU, seconds runnable but waiting for one)} of every live thread
    of a process: the first two fields of its schedstat.

    Not utime + stime from /proc/<pid>/stat: those are sampled at the timer tick (250 Hz
    here, tickless when idle), and a thread that wakes for a few microseconds per request
    is almost never running when the tick comes. Measured on this machine: the lb's HTTP
    thread ran 0.69 s serving 10,000 requests and was charged 0 ticks, while its
    timer-driven forwarder was charged in full. schedstat is the scheduler's exact sum.
    The wait is the run-queue delay: time a request's thread was ready and not running."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            run, wait = (task / "schedstat").read_text().split()[:2]
            out[int(task.name)] = (int(run) / 1e9, int(wait) / 1e9)
        except (OSError, ValueError):
            continue
    return out


def thread_run_seconds(pid):
    """{tid: seconds on a CPU} of every live thread of a process (see `thread_schedstats`)."""
    return {tid: run for tid, (run, _) in thread_schedstats(pid).items()}


def cgroup_throttling(pid):
    """(periods throttled, seconds throttled) of the CPU cgroup a process runs in, if that
    cgroup has a CPU limit (a container's, or one of scripts/stack/cgroup.sh); else None.
    cgroup v1: cpu.stat's nr_throttled and throttled_time (ns); v2: throttled_usec."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):  # v1
            base = next((d for d in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct") if Path(d).is_dir()), None)
            if base is None or int(Path(f"{base}{path}/cpu.cfs_quota_us").read_text()) < 0:
                return None
            stat = dict(l.split() for l in Path(f"{base}{path}/cpu.stat").read_text().splitlines())
            return int(stat["nr_throttled"]), int(stat["throttled_time"]) / 1e9
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2
            root = "/sys/fs/cgroup/unified" if Path("/sys/fs/cgroup/unified/cgroup.controllers").exists() else "/sys/fs/cgroup"
            if Path(f"{root}{path}/cpu.max").read_text().startswith("max"):
                return None
            stat = dict(l.split() for l in Path(f"{root}{path}/cpu.stat").read_text().splitlines())
            return int(stat["nr_throttled"]), int(stat["throttled_usec"]) / 1e6
    return None


def _children(pid):
    """The pids of a process's live child processes (/proc/<pid>/task/<tid>/children)."""
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return out


def descendants(pid):
    """Every live process below `pid`: a PostgreSQL server does its work in them."""
    found, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += _children(child)
    return found


def cpu_seconds(pid):
    """Seconds on a CPU of a live process's live threads and of its descendants' (see
    `thread_run_seconds`). Raises OSError once the process is gone."""
    total = sum(thread_run_seconds(pid).values())
    for child in descendants(pid):
        try:
            total += sum(thread_run_seconds(child).values())
        except OSError:
            pass  # ended meanwhile
    return total


def memory_kb(pid):
    """(VmRSS, VmHWM: the kernel's own peak) of a live process in kB; raises OSError once it
    is gone."""
    kb = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M))
    return int(kb.get("VmRSS", 0)), int(kb.get("VmHWM", 0))
