#!/usr/bin/env python3
"""The CPU and memory limits compose.yml gives each service, read from the file itself so
they are written once: scripts/bench/bench.sh (CONTEST_LIMITS=1) applies them with cgroups and
scripts/check/deploy.py sums them against the contest's budget.

Usage: scripts/lib/compose_limits.py [compose.yml]  ->  one line per limited service:
       `<service> <cpus> <memory bytes>`
"""
import re
import sys

import yaml

# The contest's budget for all services together.
CONTEST_MAX_CPUS = 1.5
CONTEST_MAX_MEMORY_MB = 350


def memory_bytes(text):
    """Docker's byte notation: a number and b, k, m or g (optionally followed by b), powers of 1024."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([bkmg]?)b?\s*", str(text).lower())
    if not m:
        raise ValueError(f"unreadable memory limit {text!r}")
    return int(float(m.group(1)) * {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2)])


def service_limits(compose):
    """{service: (cpus, memory bytes)} for every service with both limits set."""
    out = {}
    for name, svc in (compose.get("services") or {}).items():
        limits = (((svc or {}).get("deploy") or {}).get("resources") or {}).get("limits") or {}
        if "cpus" in limits and "memory" in limits:
            out[name] = (float(limits["cpus"]), memory_bytes(limits["memory"]))
    return out


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "compose.yml"
    with open(path) as f:
        for name, (cpus, mem) in service_limits(yaml.safe_load(f)).items():
            print(name, cpus, mem)
