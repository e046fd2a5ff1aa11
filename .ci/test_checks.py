#!/usr/bin/env python3
"""Tests of the structure checks: each must fail on the flaw it exists to
catch, planted in a copy of the tree, and pass on the tree as it is.

    python3 -m unittest discover -s .ci -p 'test_*.py'
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

CI = pathlib.Path(__file__).resolve().parent
ROOT = CI.parent


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CI / script), *args], capture_output=True, text=True)


class ModuleCycles(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp())
        self.src = self.tmp / "src"
        shutil.copytree(ROOT / "src", self.src)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def plant(self, file: str, line: str):
        path = self.src / file
        path.write_text(line + "\n" + path.read_text())

    def test_the_tree_has_no_cycle(self):
        result = run("check-module-cycles.py", str(self.src))
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("file-level", result.stdout)

    def test_a_cycle_between_sibling_files_of_one_module(self):
        # Within one top-level module, so only the file-level graph sees it.
        self.plant("recommender/idle.rs", "use super::evaluate::one as _planted;")
        self.plant("recommender/evaluate.rs", "#[allow(unused)] fn planted() { let _ = super::idle::idle; }")
        result = run("check-module-cycles.py", str(self.src))
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("file-level module cycle", result.stdout)
        self.assertIn("recommender::evaluate", result.stdout)
        self.assertIn("recommender::idle", result.stdout)
        self.assertNotIn("top-level module cycle", result.stdout)

    def test_a_cycle_through_a_braced_use_of_crate_paths(self):
        self.plant("chart.rs", "use crate::{report::{self}, cli::status as _planted};")
        self.plant("cli/status.rs", "use crate::chart::Figure as _Planted;")
        result = run("check-module-cycles.py", str(self.src))
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("chart -> cli::status -> chart", result.stdout)

    def test_a_child_reading_its_parent_is_not_a_cycle(self):
        self.plant("recommender/idle.rs", "use super::{Loop as _A, super::cache as _B};")
        result = run("check-module-cycles.py", str(self.src))
        self.assertEqual(result.returncode, 0, result.stdout)

    def test_paths_in_comments_and_strings_are_not_imports(self):
        self.plant("recommender/idle.rs", '// use super::evaluate::one;\nconst _P: &str = "super::evaluate::one";')
        self.plant("recommender/evaluate.rs", "/// [`super::idle::idle`]\nconst _Q: () = ();")
        result = run("check-module-cycles.py", str(self.src))
        self.assertEqual(result.returncode, 0, result.stdout)


class FunctionLength(unittest.TestCase):
    def test_a_long_function_fails_and_a_short_one_passes(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = pathlib.Path(tmp)
            body = "\n".join(f"    let _x{i} = \"}}{{\"; // {{" for i in range(119))
            (src / "a.rs").write_text(f"fn long() {{\n{body}\n}}\n\nfn short() {{}}\n")
            result = run("check-function-length.py", "--max", "120", str(src))
            self.assertEqual(result.returncode, 1, result.stdout)
            self.assertIn("fn long is 121 lines", result.stdout)
            self.assertNotIn("short", result.stdout)
            result = run("check-function-length.py", "--max", "121", str(src))
            self.assertEqual(result.returncode, 0, result.stdout)

    def test_signatures_without_a_body_are_skipped(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = pathlib.Path(tmp)
            (src / "a.rs").write_text("trait T {\n    fn f(&self) -> Vec<u8>;\n}\nfn g<'a>(x: &'a str) -> char {\n    '{'\n}\n")
            result = run("check-function-length.py", "--top", "5", str(src))
            self.assertEqual(result.returncode, 0, result.stdout)
            self.assertIn("    3 ", result.stdout)
            self.assertNotIn(" f\n", result.stdout)


if __name__ == "__main__":
    unittest.main()
