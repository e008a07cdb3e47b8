"""doc_paths.py fails on a path the docs name that does not exist, and passes the others."""

import pathlib
import subprocess
import sys
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).with_name("doc_paths.py")


def run(readme):
    with tempfile.TemporaryDirectory() as root:
        pathlib.Path(root, "lb/src").mkdir(parents=True)
        pathlib.Path(root, "lb/src/front.rs").write_text("")
        pathlib.Path(root, "lb/src/head.rs").write_text("")
        pathlib.Path(root, "README.md").write_text(readme)
        done = subprocess.run([sys.executable, str(SCRIPT), "--root", root], capture_output=True, text=True)
        return done.returncode, done.stderr


class DocPaths(unittest.TestCase):
    def test_existing_paths_and_alternatives_pass(self):
        code, err = run("see `lb/src/front.rs` and `lb/src/{front,head}.rs`, `lb/src/<part>.rs`, `/tmp/x`\n")
        self.assertEqual(code, 0, err)

    def test_a_moved_file_fails_with_its_line(self):
        code, err = run("intro\nsee `lb/src/{front,idle}.rs`\n")
        self.assertEqual(code, 1)
        self.assertIn("README.md:2: `lb/src/idle.rs` does not exist", err)


if __name__ == "__main__":
    unittest.main()
