"""code_shape.py finds a long module comment and an import circle, and passes a clean crate."""

import pathlib
import subprocess
import sys
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).with_name("code_shape.py")


def run(files):
    with tempfile.TemporaryDirectory() as root:
        for name, text in files.items():
            path = pathlib.Path(root, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--root", root], capture_output=True, text=True
        )
        return done.returncode, done.stderr


CLEAN = {
    "lb/src/lib.rs": "//! The crate.\nmod a;\nmod b;\npub use a::A;\n",
    "lb/src/a.rs": "//! A.\nuse crate::b::B;\npub struct A(B);\n",
    "lb/src/b.rs": "//! B.\nuse super::A;\npub struct B;\nfn f(_: &A) {}\n",
}


class CodeShape(unittest.TestCase):
    def test_a_clean_crate_passes(self):
        code, err = run(CLEAN)
        self.assertEqual(code, 0, err)

    def test_a_module_comment_of_eleven_lines_fails(self):
        files = dict(CLEAN)
        files["lb/src/b.rs"] = "//! line\n" * 11 + "pub struct B;\n"
        code, err = run(files)
        self.assertEqual(code, 1)
        self.assertIn("lb/src/b.rs: its leading comment has 11 lines", err)

    def test_two_files_naming_each_other_fail(self):
        files = dict(CLEAN)
        files["lb/src/b.rs"] = "//! B.\nuse crate::a::A;\npub struct B;\nfn f(_: &A) {}\n"
        code, err = run(files)
        self.assertEqual(code, 1)
        self.assertIn("lb: import circle between a, b", err)

    def test_a_child_naming_its_parent_is_no_circle(self):
        files = dict(CLEAN)
        files["lb/src/a.rs"] = "//! A.\nmod c;\nuse c::C;\npub struct A;\nfn f(_: C) {}\n"
        files["lb/src/a/c.rs"] = "//! C.\nuse super::A;\npub struct C(A);\n"
        code, err = run(files)
        self.assertEqual(code, 0, err)


if __name__ == "__main__":
    unittest.main()
