"""The core engine is importable without the proxy, the PKI or the CLI (DEVELOPERS.md:
"core engine importable without proxy, PKI or CLI"), and only the parser knows Lark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "edgerules"

_PROBE = """
import sys
import edgerules
f = edgerules.compile('http.host eq "a" and not cf.tls_client_auth.cert_verified')
assert f.matches({"http.host": "a"})
edgerules.Ruleset.from_dict({"name": "t", "rules": [{"expression": "ssl", "action": "block"}]})
from edgerules.tls import ClientCertValidator
ClientCertValidator().validate([b"garbage"])
loaded = sorted(m for m in sys.modules if m.startswith(
    ("edgerules.proxy", "edgerules.pki", "edgerules.store", "edgerules.cli", "OpenSSL", "h11")))
# The validator raises PKIError for bad trust material; that error module (and the lazy
# package that holds it) is all of the PKI it may load.
loaded = [m for m in loaded if m not in ("edgerules.pki", "edgerules.pki.errors")]
print(",".join(loaded))
"""


def test_core_does_not_import_adapters_or_pki() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"the core pulled in: {out}"


def test_only_the_parser_imports_lark() -> None:
    importers = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if any(
            line.startswith(("import lark", "from lark"))
            for line in (s.strip() for s in p.read_text(encoding="utf-8").splitlines())
        )
    )
    assert importers == ["lang/parser.py"]


def test_only_tls_and_pki_use_cryptography_at_run_time() -> None:
    """Other modules may name cryptography's types for type checking only."""
    offenders = []
    for p in SRC.rglob("*.py"):
        rel = str(p.relative_to(SRC))
        if rel.startswith(("tls/", "pki/")):
            continue
        in_type_checking = False
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.startswith("if TYPE_CHECKING"):
                in_type_checking = True
                continue
            if in_type_checking and line and not line.startswith((" ", "\t")):
                in_type_checking = False
            stripped = line.strip()
            if stripped.startswith(("from cryptography", "import cryptography")) and not in_type_checking:
                offenders.append(f"{rel}: {stripped}")
    assert offenders == []
