#!/usr/bin/env python3
"""Prints N distinct TCP ports free on 127.0.0.1, for scripts that start the stack on the side
(scripts/check/smoke.sh, scripts/bench/bench.sh). They are picked below the kernel's ephemeral range:
after a load test thousands of ephemeral ports sit in TIME_WAIT or get taken by other
processes' outgoing connections between our pick and the service's bind, while ports
below the range are only ever taken by an explicit bind.

Usage: free_ports.py N
"""
import random
import socket
import sys


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def main():
    n = int(sys.argv[1])
    high = ephemeral_low()
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
            print(*picked)
            return 0
    print(f"free_ports: fewer than {n} free ports in {low}-{high}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
