"""The field catalogue against a Markdown transcription of Cloudflare's fields reference
(https://developers.cloudflare.com/ruleset-engine/rules-language/fields/reference/), kept
outside this repository; the tests that need it skip without it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgerules.lang.fields import CLOUDFLARE_FIELDS, FIELD_ALIASES, FIELD_DOCS
from edgerules.lang.types import BOOL, BYTES, INT, IP, Array, Map

SPEC = Path("/work/shared/spec/fields.md")
CATALOGUE = dict(CLOUDFLARE_FIELDS)


def _spec_field_names(text: str) -> list[str]:
    """Field names in backticks in the first column of every table whose header's first
    column is "Field". Shorthand continuations (`a.b.c` / `.d`) replace the last segments
    of the previous full name, except `.names`/`.values` after a map (🅼), which append."""
    names: list[str] = []
    in_field_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_field_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "Field":
            in_field_table = True
            continue
        if not in_field_table or set(cells[0]) <= set("- "):
            continue
        first = cells[0]
        base: str | None = None
        base_is_map = False
        for m in re.finditer(r"`([^`]+)`\s*(🅼)?", first):
            name = m.group(1)
            if not name.startswith("."):
                base, base_is_map = name, bool(m.group(2))
                names.append(name)
                continue
            assert base is not None, line
            suffix = name[1:]
            if base_is_map and suffix in ("names", "values"):
                names.append(f"{base}.{suffix}")
            else:
                k = suffix.count(".") + 1
                names.append(".".join([*base.split(".")[:-k], suffix]))
    return names


@pytest.fixture(scope="module")
def spec_names() -> list[str]:
    if not SPEC.exists():
        pytest.skip("spec not available")
    return _spec_field_names(SPEC.read_text(encoding="utf-8"))


def test_parser_sees_the_shorthands(spec_names: list[str]) -> None:
    for name in (
        "cf.waf.score.xss",
        "http.request.jwt.claims.sub",
        "http.request.jwt.claims.nbf.sec",
        "raw.http.response.headers.values",
        "raw.http.request.uri.args.values",
        "cf.waf.content_scan.has_failed",
        "ip.src.lon",
    ):
        assert name in spec_names
    assert len(spec_names) > 150


def test_every_spec_field_is_in_the_catalogue(spec_names: list[str]) -> None:
    missing = [n for n in spec_names if n not in CATALOGUE]
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


def test_types_match_spec_type_column(spec_names: list[str]) -> None:
    """Rows with a single field: the type column agrees with the catalogue."""
    words = {"String": BYTES, "Bytes": BYTES, "Boolean": BOOL, "Number": INT,
             "Integer": INT, "IP": IP}
    checked = 0
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"`[a-z0-9_.]+`", cells[0]):
            continue
        name = cells[0].strip("`")
        expected = words.get(cells[1])
        if name in CATALOGUE and expected is not None:
            assert CATALOGUE[name] == expected, name
            checked += 1
    assert checked > 80
