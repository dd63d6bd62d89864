"""The core engine is importable without the proxy, the PKI or the CLI (docs/architecture.md,
"Layers"), and only the parser knows Lark."""

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


# Which part may import which (run-time imports, including imports inside functions;
# imports under ``if TYPE_CHECKING`` are for type checkers only and not counted). The
# architecture, from the bottom: errors → lang → rulesets; tls/pki → store;
# enforcement (shared by the adapters) → proxy, asgi, wsgi, cli. docs/architecture.md
# shows the same table.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "lang": {"errors"},
    "rulesets": {"errors", "lang"},
    "pki": {"errors"},
    "tls": {"errors", "pki.errors"},
    "store": {"errors", "pki", "tls"},
    "enforcement": {"errors", "tls"},
    "asgi": {"errors", "enforcement", "store"},  # store=PATH opens the store
    "wsgi": {"errors", "enforcement", "store"},
    "proxy": {"errors", "enforcement", "tls", "pki"},
    "testing": {"errors", "lang", "rulesets"},
    "demo": {"errors", "enforcement", "pki", "proxy", "rulesets", "store", "lang", "tls"},
    "demo_fleet": {"proxy"},  # the echo origin; everything else goes through the CLI
    "cli": {"errors", "enforcement", "lang", "pki", "proxy", "rulesets", "store", "tls"},
}


def _imports_by_part() -> dict[str, set[str]]:
    import ast

    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("").parts
        part = rel[0]
        if part in ("__init__", "__main__", "_moved"):
            continue  # the package root re-exports lazily; __main__ is the CLI's
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgerules"):
                if node.module == "edgerules":
                    targets = [f"edgerules.{a.name}" for a in node.names]
                else:
                    targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("edgerules")]
            for target in targets:
                bits = target.split(".")[1:]
                if not bits or bits[0] == part:
                    continue
                # tls may use the PKI's error class only, not the PKI itself
                name = "pki.errors" if bits[:2] == ["pki", "errors"] and part == "tls" else bits[0]
                found.setdefault(part, set()).add(name)
    return found


def test_parts_import_only_what_the_architecture_allows() -> None:
    found = _imports_by_part()
    unknown = sorted(set(found) - set(ALLOWED))
    assert unknown == [], f"new top-level parts need a row in ALLOWED: {unknown}"
    offenders = {part: sorted(deps - ALLOWED[part]) for part, deps in found.items()
                 if deps - ALLOWED[part]}
    assert offenders == {}


def test_the_middleware_does_not_depend_on_the_proxy() -> None:
    found = _imports_by_part()
    assert "proxy" not in found.get("asgi", set()) | found.get("wsgi", set())
    assert "proxy" not in found.get("enforcement", set())
