"""Module paths that moved in the restructuring still import, as the new module, with a
DeprecationWarning naming the new place."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from edgerules._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module_with_a_warning(old: str) -> None:
    # A fresh interpreter: in this one the module may already be cached under its old name.
    probe = (
        "import importlib, warnings\n"
        "warnings.simplefilter('error')\n"
        f"new = importlib.import_module({MOVED[old]!r})\n"
        "try:\n"
        f"    importlib.import_module({old!r})\n"
        "except DeprecationWarning as w:\n"
        "    print('warned:', w)\n"
        "warnings.simplefilter('ignore')\n"
        f"assert importlib.import_module({old!r}) is new\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert f"warned: {old} moved to {MOVED[old]}" in out


def test_from_import_of_a_moved_name_works() -> None:
    probe = (
        "import warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from edgerules.ruleset import Ruleset\n"
        "from edgerules.engine import compile\n"
        "import edgerules\n"
        "assert Ruleset is edgerules.Ruleset and compile is edgerules.compile\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_unknown_old_paths_are_not_invented() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("edgerules.no_such_module")
