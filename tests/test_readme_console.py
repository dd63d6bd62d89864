"""The README's shell sessions run as written: every ```console block preceded by the
line ``<!-- readme: run -->`` is run by bash in a fresh temporary directory (where
``rules/`` is the repository's), with the installed ``edgerules`` command first on
``PATH``, and its output must match the block's non-command lines (``...`` matches
anything, as in doctest).

A command that exits 0 or 1 is fine (1 is the documented "the answer is no"); any
other status fails the test, so a README example that no longer runs cannot stay."""

from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "<!-- readme: run -->"
BLOCK = re.compile(re.escape(MARK) + r"\n```console\n(.*?)\n```", re.S)


def _blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def _script(block: str) -> tuple[str, str]:
    """The bash script of a block and the output it must print. ``$ `` starts a
    command, ``> `` continues it (after a trailing backslash), anything else is output."""
    commands: list[str] = []
    expected: list[str] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            commands.append(line[2:])
        elif line.startswith("> ") and commands and commands[-1].endswith("\\"):
            commands[-1] += "\n" + line[2:]
        else:
            expected.append(line)
    lines = ["set -u"]
    for number, command in enumerate(commands, 1):
        lines.append(command)
        lines.append(
            '__rc=$?; if [ "$__rc" -gt 1 ]; then '
            f'echo "README COMMAND {number} FAILED (status $__rc)"; exit 99; fi'
        )
    return "\n".join(lines) + "\n", "\n".join(expected) + "\n"


def test_the_readme_has_runnable_sessions() -> None:
    assert len(_blocks()) >= 3


@pytest.mark.parametrize("block", _blocks(), ids=lambda b: b.splitlines()[0][:60])
def test_readme_session_runs_as_written(block: str, tmp_path: Path) -> None:
    (tmp_path / "rules").symlink_to(ROOT / "rules")
    script, expected = _script(block)
    bindir = str(Path(sys.executable).parent)
    assert shutil.which("edgerules", path=bindir), "the edgerules command is not installed"
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("EDGERULES_STORE", None)
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stdout
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS
    assert checker.check_output(expected, done.stdout, flags), (
        f"README session output differs.\n--- expected\n{expected}--- got\n{done.stdout}"
    )
