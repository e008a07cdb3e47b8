#!/usr/bin/env python3
"""Every repository path the docs name in backticks exists, so a moved file cannot leave
README.md or docs/ pointing at nothing. `{a,b}` alternatives are expanded; `<placeholders>`,
globs and run output (bench/results/runs/) are skipped.

Usage: python3 scripts/check/doc_paths.py [--root DIR]; exits 1 and names each missing path.
"""

import argparse
import itertools
import pathlib
import re
import sys

DOCS = ("README.md", "docs/*.md", "scripts/README.md", "bench/RESULTS.md")
TOP = ("api", "lb", "payment", "service", "sim", "storage", "testkit", "scripts", "docs", "k6", ".ci")
SPAN = re.compile(r"`([^`\s]+)`")


def expand(path):
    parts = re.split(r"(\{[^}]*\})", path)
    choices = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
    return ["".join(c) for c in itertools.product(*choices)]


def named_paths(text):
    for span in SPAN.findall(text):
        path = span.split("::")[0].split(":")[0].rstrip(".,;")
        if "/" not in path or path.split("/")[0] not in TOP or any(c in path for c in "<*$"):
            continue
        yield from expand(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=pathlib.Path(__file__).resolve().parents[2], type=pathlib.Path)
    args = parser.parse_args()
    missing = []
    for pattern in DOCS:
        for doc in sorted(args.root.glob(pattern)):
            for number, line in enumerate(doc.read_text().splitlines(), 1):
                for path in named_paths(line):
                    if not (args.root / path).exists():
                        missing.append(f"{doc.relative_to(args.root)}:{number}: `{path}` does not exist")
    for m in missing:
        print(m, file=sys.stderr)
    if missing:
        print(f"doc paths: {len(missing)} missing; fix the doc or the path", file=sys.stderr)
        return 1
    print("doc paths: every path the docs name exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
