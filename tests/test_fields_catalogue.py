"""The field catalogue against Cloudflare's fields reference
(https://developers.cloudflare.com/ruleset-engine/rules-language/fields/reference/),
transcribed into ``tests/data/cloudflare_fields.txt`` (every field name with its type;
the file's header says where it comes from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgerules.lang.fields import CLOUDFLARE_FIELDS, FIELD_ALIASES, FIELD_DOCS
from edgerules.lang.types import BOOL, BYTES, INT, IP, Array, Map

REFERENCE = Path(__file__).resolve().parent / "data" / "cloudflare_fields.txt"
CATALOGUE = dict(CLOUDFLARE_FIELDS)
_SCALARS = {"String": BYTES, "Bytes": BYTES, "Boolean": BOOL, "Number": INT, "Integer": INT, "IP": IP}


def _type(name: str) -> object:
    """The reference's type name (``Map<Array<String>>``) as an edgerules type."""
    if name.startswith("Array<") and name.endswith(">"):
        return Array(_type(name[6:-1]))
    if name.startswith("Map<") and name.endswith(">"):
        return Map(_type(name[4:-1]))
    return _SCALARS[name]


def _reference() -> list[tuple[str, str]]:
    """(field name, reference type name) for every line of the vendored reference."""
    rows = []
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, type_name = line.split("\t")
        rows.append((name, type_name))
    return rows


@pytest.fixture(scope="module")
def reference() -> list[tuple[str, str]]:
    return _reference()


def test_reference_lists_the_shorthands_written_out(reference: list[tuple[str, str]]) -> None:
    names = [name for name, _ in reference]
    for name in (
        "cf.waf.score.xss",
        "http.request.jwt.claims.sub",
        "http.request.jwt.claims.nbf.sec",
        "raw.http.response.headers.values",
        "raw.http.request.uri.args.values",
        "cf.waf.content_scan.has_failed",
        "ip.src.lon",
    ):
        assert name in names
    assert len(names) > 150
    assert len(names) == len(set(names))


def test_every_reference_field_is_in_the_catalogue(reference: list[tuple[str, str]]) -> None:
    missing = [name for name, _ in reference if name not in CATALOGUE]
    assert missing == []


def test_no_duplicates_and_docs_for_all() -> None:
    names = [n for n, _ in CLOUDFLARE_FIELDS]
    assert len(names) == len(set(names))
    assert set(FIELD_DOCS) == set(names)
    assert all(d and "\n" not in d for d in FIELD_DOCS.values())


def test_aliases_point_to_fields() -> None:
    assert FIELD_ALIASES["ip.geoip.country"] == "ip.src.country"
    assert FIELD_ALIASES["ip.geoip.asnum"] == "ip.src.asnum"
    for old, new in FIELD_ALIASES.items():
        assert new in CATALOGUE and old not in CATALOGUE


@pytest.mark.parametrize(
    ("name", "t"),
    [
        ("cf.tls_client_auth.cert_presented", BOOL),
        ("cf.tls_client_auth.cert_verified", BOOL),
        ("cf.tls_client_auth.cert_revoked", BOOL),
        ("cf.tls_client_auth.cert_rfc9440_too_large", BOOL),
        ("cf.tls_client_auth.cert_chain_rfc9440_too_large", BOOL),
        ("cf.tls_client_auth.cert_subject_dn", BYTES),
        ("cf.tls_client_auth.cert_serial", BYTES),
        ("cf.tls_client_auth.cert_fingerprint_sha256", BYTES),
        ("cf.tls_client_auth.cert_not_after", BYTES),
        ("cf.tls_client_auth.cert_chain_rfc9440", BYTES),
        ("ssl", BOOL),
        ("cf.tls_client_hello_length", INT),
        ("cf.edge.server_ip", IP),
        ("cf.edge.server_port", INT),
        ("http.host", BYTES),
        ("http.request.uri.args", Map(Array(BYTES))),
        ("http.request.uri.args.names", Array(BYTES)),
        ("http.request.headers", Map(Array(BYTES))),
        ("http.request.headers.truncated", BOOL),
        ("http.request.cookies", Map(Array(BYTES))),
        ("http.request.body.multipart.names", Array(Array(BYTES))),
        ("http.request.body.multipart.values", Array(BYTES)),
        ("http.request.jwt.claims.iat.sec", Map(Array(INT))),
        ("http.request.jwt.claims.iat.sec.values", Array(INT)),
        ("http.request.timestamp.sec", INT),
        ("ip.src", IP),
        ("ip.src.asnum", INT),
        ("ip.src.lat", BYTES),
        ("ip.src.lon", BYTES),
        ("ip.src.is_in_european_union", BOOL),
        ("cf.random_seed", BYTES),
        ("cf.bot_management.static_resource", BOOL),
        ("cf.bot_management.detection_ids", Array(INT)),
        ("cf.waf.content_scan.obj_sizes", Array(INT)),
        ("cf.llm.prompt.custom_topic_categories", Map(INT)),
        ("http.response.code", INT),
        ("raw.http.response.headers", Map(Array(BYTES))),
        ("cf.response.1xxx_code", INT),
        ("cf.zone.name", BYTES),
    ],
)
def test_sample_types(name: str, t: object) -> None:
    assert CATALOGUE[name] == t


def test_types_match_the_reference(reference: list[tuple[str, str]]) -> None:
    """Every field's type in the catalogue is the reference's (collections included)."""
    wrong = [
        (name, type_name, CATALOGUE.get(name))
        for name, type_name in reference
        if CATALOGUE.get(name) != _type(type_name)
    ]
    assert wrong == []
