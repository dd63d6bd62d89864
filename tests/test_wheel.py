"""The grammar ships in the wheel: build the wheel, install it into a fresh virtualenv and
parse (and compile) an expression there, from outside the source tree.

``src/edgerules/lang/rules.lark`` is a symlink to ``grammar/rules.lark`` (the only copy);
hatchling copies the symlink's target into the wheel as a regular file. This test fails
if that ever stops being true. Everything runs offline: the wheel is built without build
isolation (hatchling comes from the current venv) and installed with ``--no-deps``; the
fresh venv reaches lark and the other dependencies through a ``.pth`` line pointing at the
current environment's site-packages (appended after the venv's own site-packages, so the
installed wheel — not the editable checkout — provides ``edgerules``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        cmd, check=True, capture_output=True, text=True, env=env, timeout=300, **kw
    )  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    if importlib.util.find_spec("build") is not None:
        _run(
            [
                sys.executable,
                "-m",
                "build",
                "--wheel",
                "--no-isolation",
                "--outdir",
                str(out),
                str(ROOT),
            ]
        )
    else:  # pragma: no cover - build is a dev dependency
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(out),
                str(ROOT),
            ]
        )
    wheels = list(out.glob("edgerules-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contains_the_grammar(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        grammar = zf.read("edgerules/lang/rules.lark").decode("utf-8")
    assert grammar == (ROOT / "grammar" / "rules.lark").read_text(encoding="utf-8")


def test_installed_wheel_parses_and_compiles(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    (site / "zz_edgerules_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = textwrap.dedent(
        """
        import pathlib, edgerules, edgerules.lang.parser
        from edgerules.lang.parser import parse_expression
        from edgerules.lang.formatter import format_expr
        here = pathlib.Path(edgerules.lang.parser.__file__).parent
        grammar = here / "rules.lark"
        assert grammar.is_file() and not grammar.is_symlink(), grammar
        print(here)
        print(format_expr(parse_expression('http.host == "a.com" && ip.src in {192.0.2.0/24}')))
        try:
            from edgerules.lang.engine import compile
        except ImportError:
            print("no engine")
        else:
            f = compile('http.host eq "a.com" and not ssl')
            print(f.matches({"http.host": "a.com"}))
        """
    )
    result = _run([str(python), "-c", script], cwd=str(tmp_path))
    lines = result.stdout.splitlines()
    assert Path(lines[0]).resolve().is_relative_to(venv.resolve()), lines[0]
    assert lines[1] == 'http.host eq "a.com" and ip.src in {192.0.2.0/24}'
    assert lines[2] in ("True", "no engine")


def test_wheel_is_typed_and_licensed(wheel: Path) -> None:
    """PEP 561 ``py.typed`` ships in the package; the Apache-2.0 text ships as the
    distribution's licence file, matching ``license = "Apache-2.0"`` in pyproject."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "edgerules/py.typed" in names
        licences = [n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n]
        assert licences, names
        assert "Apache License" in zf.read(licences[0]).decode("utf-8")
