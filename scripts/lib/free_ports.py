#!/usr/bin/env python3
"""Prints N distinct TCP ports free on 127.0.0.1, for the shell scripts that start the stack
on the side (scripts/check/smoke.sh, scripts/bench/bench.sh, scripts/bench/lb/lib.sh); the
Python tools call stack.free_ports, which says how they are picked.

Usage: free_ports.py N
"""
import sys

from stack import StackError, free_ports  # the same directory


def main():
    try:
        print(*free_ports(int(sys.argv[1])))
    except StackError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
