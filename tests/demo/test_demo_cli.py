"""``python -m edgerules.demo``: ``--help`` shows help instead of running; ``--keep`` keeps
the store and says where it is (and the kept store is a real one the CLI can read)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

from edgerules import demo


def test_help_shows_help_and_runs_nothing() -> None:
    proc = subprocess.run([sys.executable, "-m", "edgerules.demo", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "--keep" in proc.stdout
    assert "demo OK" not in proc.stdout and "store and certificates in" not in proc.stdout


def test_unknown_option_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "edgerules.demo", "--bogus"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unrecognized arguments: --bogus" in proc.stderr


def test_keep_keeps_the_store_and_prints_where() -> None:
    out = io.StringIO()
    assert demo.run(out, keep=True) == 0, out.getvalue()
    match = re.search(r"^kept: (\S+) ", out.getvalue(), re.M)
    assert match, out.getvalue()
    kept = Path(match.group(1))
    try:
        assert (kept / "edgerules.db").is_file()
        listing = subprocess.run(
            [sys.executable, "-m", "edgerules", "cert", "list", "--json",
             "--store", str(kept / "edgerules.db")],
            capture_output=True, text=True, timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        assert "device-001" in listing.stdout and "device-002" in listing.stdout
    finally:
        shutil.rmtree(kept, ignore_errors=True)
