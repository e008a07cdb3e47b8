#!/usr/bin/env python3
"""Two rules on the shape of the Rust code, checked by `make check`:

1. A module's leading comment (`//!`, `//` or `/* */`, before its first line of code) is at
   most MAX_DOC_LINES lines: what the module does and which invariant it keeps. The reasoning
   lives in docs/architecture.md, the figures in bench/RESULTS.md.
2. No import circle between the files of a crate: a file that names another (`use` or a
   path through `crate::`, `super::` or a child module) depends on it, and no file may reach
   itself that way. A file's ancestors (the crate root, `super`) are its context, not
   dependencies, and a `tests.rs` child is exempt (it tests its parent).

Usage: python3 scripts/check/code_shape.py [--root DIR]; exits 1 and names each breach.
"""

import argparse
import pathlib
import re
import sys

MAX_DOC_LINES = 10
CRATES = ("api", "lb", "payment", "service", "sim", "storage", "testkit")

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)\{([^;]*)\};", re.S)
MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


def leading_comment_lines(text):
    """Comment lines before the first line of code (blank lines between them not counted)."""
    count, in_block = 0, False
    for line in text.splitlines():
        s = line.strip()
        if in_block:
            count += 1
            in_block = "*/" not in s
        elif s.startswith("//"):
            count += 1
        elif s.startswith("/*"):
            count += 1
            in_block = "*/" not in s
        elif s:
            break
    return count


def module_of(src, file):
    """The module path of a file under a crate's src (or tests/examples) root, as a tuple."""
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def references(text):
    """Each (anchor, [segments]) a file names: `crate::a::b`, `super::x`, and `use` groups."""
    code = strip_comments(text)
    found = [(m.group(1), m.group(2).split("::")[1:]) for m in PATH.finditer(code)]
    for m in USE_GROUP.finditer(code):
        prefix = [p for p in m.group(2).split("::") if p]
        for item in re.split(r",", m.group(3)):
            head = item.strip().split("::")[0].split(" ")[0].strip("{} \n")
            if head and head != "self":
                found.append((m.group(1), prefix + [head]))
    return found


def resolve(modules, current, anchor, segments):
    """The deepest module (a file) the path names, or None."""
    if anchor == "crate":
        base = ()
    elif anchor == "super":
        base = current[:-1]
        while segments and segments[0] == "super":
            base, segments = base[:-1], segments[1:]
    else:
        base = current
    best = base if base in modules else None
    path = base
    for seg in segments:
        path = path + (seg,)
        if path in modules:
            best = path
        else:
            break
    return best


def crate_graph(src):
    files = [f for f in src.rglob("*.rs")]
    modules = {module_of(src, f): f for f in files}
    graph = {m: set() for m in modules}
    for m, f in modules.items():
        if m and m[-1] == "tests":
            continue
        text = f.read_text()
        for anchor, segs in references(text):
            target = resolve(modules, m, anchor, segs)
            if target is not None and target != m[: len(target)]:
                graph[m].add(target)
        # a plain child path (`queue::Held`) names the child module
        for child in MOD_DECL.findall(strip_comments(text)):
            if re.search(rf"(?<![:\w]){child}::", strip_comments(text)):
                graph[m].add(m + (child,))
    for m in graph:
        graph[m] = {t for t in graph[m] if t in modules and t != m}
    return modules, graph


def circles(graph):
    """Each strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) or "(root)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=pathlib.Path(__file__).resolve().parents[2], type=pathlib.Path)
    args = parser.parse_args()
    failures = []
    for crate in CRATES:
        for sub in ("src", "tests", "examples", "benches"):
            root = args.root / crate / sub
            if not root.is_dir():
                continue
            for f in sorted(root.rglob("*.rs")):
                n = leading_comment_lines(f.read_text())
                if n > MAX_DOC_LINES:
                    failures.append(
                        f"{f.relative_to(args.root)}: its leading comment has {n} lines (at most "
                        f"{MAX_DOC_LINES}); keep what it does and its invariant, move the why to "
                        "docs/architecture.md"
                    )
        src = args.root / crate / "src"
        if src.is_dir():
            _, graph = crate_graph(src)
            for group in circles(graph):
                edges = [f"{name(a)} -> {name(b)}" for a in group for b in sorted(graph[a]) if b in group]
                failures.append(f"{crate}: import circle between {', '.join(map(name, group))} ({'; '.join(edges)})")
    for f in failures:
        print(f, file=sys.stderr)
    if failures:
        print(f"code shape: {len(failures)} problem(s)", file=sys.stderr)
        return 1
    print("code shape: every module comment within 10 lines, no import circle within a crate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
