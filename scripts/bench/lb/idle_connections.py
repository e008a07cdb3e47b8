#!/usr/bin/env python3
"""Holds N client connections open to the lb and reports the lb's memory (called by
lb-idle-connections.sh, which starts and stops the processes).

Modes (how each held connection looks to the lb):
  fresh    connected, nothing sent yet;
  used     one keep-alive request answered (a POST /payments, 202), then idle: a real
           client between two requests;
  head     a request head sent without its end (a slow client, or a slowloris);
  body     a whole head and the first byte of its body: the lb is inside Pingora's
           request handling, waiting for the rest, the most a connection costs.

At LB_MAX_CONNECTIONS the lb closes the connection idle the longest for each new one
(fresh and used connections are idle) and answers 503 only when none is idle (head,
body): `refused` counts both, the connections it closed or answered.

Prints one line of `key=value` figures: connections the lb kept and refused, the lb's
VmHWM/VmRSS (MiB), and the status of a new `POST /payments` while the connections are
held and after they closed. Every loop is bounded in count and time; all traffic is on
127.0.0.1.

Usage: idle_connections.py PORT LB_PID MODE COUNT
"""
import json
import socket
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lib"))  # scripts/lib
from stack import memory_kb  # noqa: E402

CONNECT_DEADLINE = 60.0  # seconds for opening all connections
SETTLE = 3.0  # seconds the connections are held before the memory is read
STEP_TIMEOUT = 5.0


def mib(pid):
    """(VmRSS, VmHWM) of the lb in MiB."""
    rss, hwm = memory_kb(pid)
    return rss / 1024, hwm / 1024


def read_response(sock):
    """(status, body) of one response with a Content-Length, or (None, b'') if the
    connection closed or stayed silent."""
    data = b""
    deadline = time.monotonic() + STEP_TIMEOUT
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, b""
    length = next((int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:")), 0)
    while len(body) < length and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return status, body


def request(port, method, path, body=b""):
    """One request on a fresh connection: (status, body), status None on failure."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT) as sock:
            head = (f"{method} {path} HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            sock.sendall(head.encode() + body)
            return read_response(sock)
    except OSError:
        return None, b""


def pay(port):
    body = json.dumps({"correlationId": str(uuid.uuid4()), "amount": 19.9}).encode()
    return request(port, "POST", "/payments", body)


def open_connections(port, mode, count):
    """Opens `count` connections shaped as `mode`; returns (kept, refused)."""
    kept, refused = [], 0
    deadline = time.monotonic() + CONNECT_DEADLINE
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)
        except OSError:
            refused += 1
            continue
        try:
            if mode == "used":
                body = json.dumps({"correlationId": str(uuid.uuid4()), "amount": 19.9}).encode()
                sock.sendall(b"POST /payments HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status, _ = read_response(sock)
                if status != 202:
                    refused += 1
                    sock.close()
                    continue
            elif mode == "head":
                sock.sendall(b"POST /payments HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n")
            elif mode == "body":
                sock.sendall(b"POST /payments HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 70\r\n\r\n{")
        except OSError:
            refused += 1
            sock.close()
            continue
        kept.append(sock)
    return kept, refused


def still_open(socks):
    """The connections the lb has not answered or closed (a refusal is an answer + close)."""
    alive, closed = [], 0
    for sock in socks:
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            alive.append(sock)
            continue
        except OSError:
            data = b""
        closed += 1
        sock.close()
    return alive, closed


def main():
    port, pid, mode, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    base = mib(pid)[1]
    started = time.monotonic()
    kept, refused = open_connections(port, mode, count)
    opened_in = time.monotonic() - started
    time.sleep(SETTLE)
    kept, closed = still_open(kept)
    refused += closed
    rss, hwm = mib(pid)
    during, answer = pay(port)
    error = ""
    if during != 202 and answer:
        try:
            error = json.loads(answer).get("error", "")
        except ValueError:
            error = "not-json"
    for sock in kept:
        sock.close()
    after, deadline = None, time.monotonic() + 10
    while after != 202 and time.monotonic() < deadline:
        after, _ = pay(port)
        time.sleep(0.1) if after != 202 else None
    print(f"mode={mode} connections={count} kept={len(kept)} refused={refused} opened_in_s={opened_in:.1f} "
          f"lb_VmHWM_MiB={hwm:.1f} lb_VmRSS_MiB={rss:.1f} lb_VmHWM_before_MiB={base:.1f} "
          f"pay_while_held={during}{'/' + error if error else ''} pay_after_close={after}")
    return 0 if after == 202 else 1


if __name__ == "__main__":
    sys.exit(main())
