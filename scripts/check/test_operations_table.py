#!/usr/bin/env python3
"""The table of docs/operations.md's `## Variables of make, the scripts and k6` against the
code, both ways: every variable the Makefile, scripts/ or k6/ read from the environment has
a row, and every row names a variable one of them reads. The binaries' own variables belong
in the README's configuration table instead (testkit/tests/configuration.rs checks that one
against the binaries' `--help`).

"Read" is what the patterns of `READS` find (the section of docs/operations.md says the
same): `NAME ?=` in the Makefile; `${NAME:-...}` / `${NAME:=...}` (and a name built as
`x_var=PREFIX${n}SUFFIX` for `${!x_var:-...}`, written `PREFIX<n>SUFFIX`) in scripts/*.sh,
the compose files and the Makefile; `os.environ.get("NAME"` / `os.environ["NAME"]` in
scripts/*.py; `__ENV.NAME` / `num("NAME"` in k6/*.js.

Run: python3 -m unittest discover -s scripts -p 'test_*.py'   (part of `make check`)
"""
import re
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Variables of make, the scripts and k6"
# Names the code reads that are nobody's knob: the system's, or set by our own code.
NOT_OURS = {
    "TMPDIR": "the system's temporary directory",
    "STAGE": "set by k6/lib.js on each stage's scenario",
}
NAME = r"[A-Z][A-Z0-9_]*"
SHELL = [re.compile(r"\$\{(" + NAME + r"):?[-=]")]
# `listen_var=API${i}_LISTEN` ... `${!listen_var:-...}`: the family API<n>_LISTEN.
SHELL_FAMILY = re.compile(r"\b\w+_var=(" + NAME + r")\$\{?\w+\}?([A-Z0-9_]*)")
# Each kind of file: (the files, the patterns whose first group is a name read).
READS = {
    "makefile": (["Makefile"], [re.compile(r"^(?:export\s+)?(" + NAME + r")\s*\?=", re.M)] + SHELL),
    "shell": (["scripts/**/*.sh", "compose*.yml"], SHELL),
    "python": (["scripts/**/*.py"], [re.compile(r"environ(?:\.get\(\s*|\[\s*)\"(" + NAME + r")\"")]),
    "k6": (["k6/*.js", "scripts/**/*.js"], [re.compile(r"__ENV\.(" + NAME + r")"),
                         re.compile(r"__ENV\[\s*\"(" + NAME + r")\"\s*\]"),
                         re.compile(r"\bnum\(\s*\"(" + NAME + r")\"")]),
}


def names_read_in(kind, text):
    """The environment variables `text`, a file of `kind`, reads."""
    names = {m.group(1) for pattern in READS[kind][1] for m in pattern.finditer(text)}
    if kind in ("makefile", "shell"):
        names |= {f"{pre}<n>{suf}" for pre, suf in SHELL_FAMILY.findall(text)}
    return names


def names_read(root=ROOT):
    """{name: the files that read it} over the Makefile, scripts/, k6/ and the compose files."""
    read = {}
    for kind, (globs, _) in READS.items():
        for glob in globs:
            for path in sorted(root.glob(glob)):
                if path.name == Path(__file__).name:
                    continue  # its examples of the patterns
                for name in names_read_in(kind, path.read_text()):
                    read.setdefault(name, set()).add(str(path.relative_to(root)))
    return read


def table_names(text, heading):
    """The variables of the table in the section `heading` of a markdown text: the backticked
    names of each row's first cell."""
    start = text.index("\n" + heading + "\n")
    section = text[start + 1:]
    end = section.find("\n## ", 3)
    section = section if end < 0 else section[:end]
    names = set()
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        first = line.strip("|").split("|")[0]
        names |= set(re.findall(r"`(" + NAME + r"(?:<n>[A-Z0-9_]*)?)`", first))
    return names


def documented():
    return table_names((ROOT / "docs" / "operations.md").read_text(), SECTION)


def binaries_variables():
    return table_names((ROOT / "README.md").read_text(), "## Configuration")


class OperationsTable(unittest.TestCase):
    def test_every_variable_read_has_a_row(self):
        read = names_read()
        missing = set(read) - documented() - binaries_variables() - set(NOT_OURS)
        self.assertFalse(missing, "read but not in docs/operations.md's table: "
                         + ", ".join(f"{n} ({', '.join(sorted(read[n]))})" for n in sorted(missing)))

    def test_every_row_is_read(self):
        unread = documented() - set(names_read())
        self.assertFalse(unread, f"in docs/operations.md's table but read nowhere: {sorted(unread)}")

    def test_the_binaries_variables_are_in_the_readme_only(self):
        both = documented() & binaries_variables()
        self.assertFalse(both, f"binaries' variables (README.md's table) in docs/operations.md's: {sorted(both)}")
        self.assertTrue(binaries_variables(), "README.md's configuration table has no row")

    def test_the_patterns(self):
        self.assertEqual(names_read_in("makefile", "export BIN_DIR ?= x\nTARGET := y\nA ?=\n\t@X=${B:-1} cmd"),
                         {"BIN_DIR", "A", "B"})
        self.assertEqual(names_read_in("shell", 'a=${A:-1} b="${B:=2}" c=$C d=${D}\n  e_var=API${i}_LISTEN'),
                         {"A", "B", "API<n>_LISTEN"})
        self.assertEqual(names_read_in("python", 'os.environ.get("A", "1"); os.environ["B"]; x.get("C")'),
                         {"A", "B"})
        self.assertEqual(names_read_in("k6", '__ENV.A || 1; __ENV["B"]; num("C", 1, ok); __ENV[name]'),
                         {"A", "B", "C"})


if __name__ == "__main__":
    unittest.main()
