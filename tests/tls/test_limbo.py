"""x509-limbo CLIENT cases through `ClientCertValidator` (part "conformance").

Owns: running every `validation_kind == "CLIENT"` case of the vendored
`tests/tls/data/limbo/limbo-client.json` (provenance in its SOURCE.md, licence in NOTICE) and requiring our verdict to equal limbo's `expected_result`.

Mapping of a limbo case onto the validator:
* `trusted_certs` -> `ClientCertValidator(trusted=...)` (the anchors);
* `peer_certificate` + `untrusted_intermediates` -> the presented chain, leaf first;
* `validation_time` -> `now` (null means "now"; the certificates are valid 1970..2970);
* `expected_peer_names` (unspecified by Cloudflare; our choice): Cloudflare's client validation does not match names, so they
  are not passed anywhere. The cases are about RFC 822 name constraints on the leaf's SAN,
  which path validation enforces by itself, so the verdict must still match.

Invariants: all 10 CLIENT cases run (one pytest param per limbo id); the file is part of
the repository, so its absence is a failure, not a skip.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

LIMBO_DIR = Path(__file__).resolve().parent / "data" / "limbo"
LIMBO_FILE = LIMBO_DIR / "limbo-client.json"
EXPECTED_CLIENT_CASES = 10


def _load_cases() -> list[dict]:
    data = json.loads(LIMBO_FILE.read_text("utf-8"))
    assert data.get("version") == 1, "unexpected limbo schema version"
    return [t for t in data["testcases"] if t["validation_kind"] == "CLIENT"]


CASES = _load_cases()


def _der(pem_text: str) -> bytes:
    return x509.load_pem_x509_certificate(pem_text.encode("ascii")).public_bytes(
        serialization.Encoding.DER
    )


def _now(case: dict) -> dt.datetime:
    t = case.get("validation_time")
    if not t:
        return dt.datetime.now(dt.UTC)
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00"))


def test_limbo_file_present_and_complete() -> None:
    assert len(CASES) == EXPECTED_CLIENT_CASES, [c["id"] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_limbo_client_case(case: dict) -> None:
    from edgerules.tls import ClientCertValidator

    validator = ClientCertValidator(trusted=[_der(p) for p in case["trusted_certs"]])
    chain = [_der(case["peer_certificate"])] + [_der(p) for p in case["untrusted_intermediates"]]
    auth = validator.validate(chain, now=_now(case))

    assert auth.presented is True
    expected_ok = case["expected_result"] == "SUCCESS"
    assert auth.verified is expected_ok, (
        f"{case['id']}: expected {case['expected_result']}, got verified={auth.verified} "
        f"reason={auth.failure_reason!r}\n{case['description']}"
    )
    if expected_ok:
        assert auth.failure_reason == ""
    else:
        assert auth.failure_reason, "a failed verification must carry a reason"
