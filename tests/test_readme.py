"""The README's Python examples are doctests: this runs them (from the repository root,
because they load the example rulesets in ``rules/``)."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_examples_run() -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = doctest.testfile(
            str(ROOT / "README.md"),
            module_relative=False,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        )
    finally:
        os.chdir(cwd)
    assert result.attempted >= 20, f"only {result.attempted} README examples found"
    assert result.failed == 0, f"{result.failed} README examples failed (see output above)"
