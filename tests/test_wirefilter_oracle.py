"""edgerules accepts exactly what Cloudflare's wirefilter parser accepts, except for the
documented deviations (fuzz/wirefilter_oracle.py, docs/conformance.md).

The oracle is the PyPI package ``octorules-wirefilter`` (wirefilter's own parser and
type checker; a dev dependency). Checked here, derandomised so a run is reproducible:
every expression of tests/cases/*.toml, mutations of them, and expressions generated
from the grammar and the shared scheme. A disagreement that no deviation explains fails
with both messages. The large exploration is ``fuzz/oracle_explore.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

import wirefilter_oracle as oracle

DOCS = Path(__file__).resolve().parents[1] / "docs" / "conformance.md"

GENERATED = 1000
MUTATIONS = 1000


def _unexplained(texts: list[str]) -> list[oracle.Verdict]:
    return [v for v in map(oracle.judge, texts) if not v.explained]


def _fail(bad: list[oracle.Verdict]) -> None:
    if bad:
        shown = "\n".join(v.report() for v in bad[:10])
        pytest.fail(f"{len(bad)} disagreement(s) with wirefilter no deviation explains:\n{shown}")


def test_case_file_expressions() -> None:
    texts = list(oracle.case_expressions())
    assert len(texts) > 1000
    _fail(_unexplained(texts))


def test_mutations_of_the_case_files() -> None:
    _fail(_unexplained(oracle.mutations(MUTATIONS, seed=12)))


@settings(
    max_examples=GENERATED,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(oracle.expressions())
def test_generated_expressions(text: str) -> None:
    v = oracle.judge(text)
    assert v.explained, v.report()


# One expression per deviation: each documented deviation really is one (the list stays
# exact), and is the one that explains it.
EXAMPLES = {
    "tab-whitespace": 'http.host\teq "a"',
    "true-false-constant": "true",
    "empty-expression": "   ",
    "byte-string-separators": "http.host eq 61-62-63",
    "logic-in-arguments": 'any(http.request.headers.names[*] eq "a" or http.request.headers.names[*] eq "b")',
    "glued-keywords": "notssl",
    "ipv4-short-networks": "ip.src in {10.0.0.1 5}",
    "ip-ordering": "ip.src lt 10.0.0.1",
    "function-arguments": 'len(http.request.headers) eq 1',
    "third-party-functions": 'wildcard(http.host, "a*")',
    "wildcard-star-limit": 'http.host wildcard "a*b*c*d*e*f*g*h*i*j*k*"',
    "named-list-kinds": "cf.edge.server_port in $ports",
    "regex-dialect": 'http.host matches "(?u)\\bx"',
    "regex-budget": 'http.host matches "^w{0,1001}ord$"',
    # 127 parentheses + any(…) + [*]: 128 levels for wirefilter, 129 for edgerules
    "nesting-counting": "(" * 127 + 'any(http.request.headers.names[*] eq "a")' + ")" * 127,
    "cloudflare-limits": 'http.host eq "' + "a" * 4090 + '"',
}


@pytest.mark.parametrize("deviation", oracle.DEVIATION_IDS)
def test_each_deviation_has_an_example(deviation: str) -> None:
    v = oracle.judge(EXAMPLES[deviation])
    assert not v.agree, v.report()
    assert v.deviation == deviation, (v.deviation, v.report())


def test_agreements_are_not_explained_away() -> None:
    for text in ('http.host eq "a"', "ssl and not ssl", "http.host eq http.referer", "http.host eq"):
        v = oracle.judge(text)
        assert v.agree and v.deviation is None, v.report()


def test_deviations_are_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for d in oracle.DEVIATIONS:
        assert f"`{d.id}`" in text, f"deviation {d.id} is not in docs/conformance.md"
        assert d.reason and d.summary
