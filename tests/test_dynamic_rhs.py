"""Dynamic right-hand sides (added by Cloudflare on 2026-10-01): a field or a function result after
eq ne lt le gt ge. The semantics are in tests/cases/spec_2026.toml (run through every
path by tests/test_cases.py); this file covers what the case runner does not: the AST,
the canonical form, the trace's children, the fields a filter reads, the ruleset rule
index (which must not assume a literal), lint, and agreement of every evaluation path on
generated requests."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

import edgerules
from edgerules.lang import ast
from edgerules.lang.engine import parse
from edgerules.lang.scheme import default_scheme
from edgerules.rulesets import Ruleset
from reference_interpreter import evaluate


def test_ast_and_canonical_form() -> None:
    tree = parse('len(http.request.uri.path)>len(http.request.uri.query)')
    assert isinstance(tree, ast.Comparison) and isinstance(tree.rhs, ast.FunctionCall)
    assert edgerules.format(tree) == "len(http.request.uri.path) gt len(http.request.uri.query)"
    tree = parse('http.request.uri.args["a"][0]==http.request.uri.args["b"][0]')
    assert isinstance(tree.rhs, ast.Index)  # type: ignore[union-attr]
    text = edgerules.format(tree)
    assert text == 'http.request.uri.args["a"][0] eq http.request.uri.args["b"][0]'
    assert parse(text) == tree


def test_a_hex_looking_name_on_the_right_is_a_field() -> None:
    # After eq a name is read as a field, as wirefilter does (`ab.cd` was a byte string
    # when only literals could follow); `ab:cd` stays a byte string.
    assert parse("http.host eq ab.cd").rhs == ast.FieldRef("ab.cd")  # type: ignore[union-attr]
    assert parse("http.host eq ab:cd").rhs == ast.Literal("string", b"\xab\xcd")  # type: ignore[union-attr]


def test_trace_shows_both_sides() -> None:
    f = edgerules.compile("http.request.uri.path ne raw.http.request.uri.path")
    node = f.trace({"http.request.uri.path": "/a", "raw.http.request.uri.path": "/%61"})
    assert node.value is True
    assert [(c.text, c.value) for c in node.children] == [
        ("http.request.uri.path", b"/a"),
        ("raw.http.request.uri.path", b"/%61"),
    ]


def test_fields_read_include_the_right_side() -> None:
    f = edgerules.compile('http.host eq http.request.headers["x-host"][0]')
    assert sorted(f.fields) == ["http.host", "http.request.headers"]
    # matches() reads only the filter's fields: the right side must be among them
    assert f.matches({"http.host": "a", "http.request.headers": {"x-host": ["a"]}}) is True


def test_two_plain_fields_every_operator() -> None:
    for op, expected in (("eq", False), ("ne", True), ("lt", True), ("le", True), ("gt", False), ("ge", False)):
        f = edgerules.compile(f"cf.bot_management.score {op} cf.waf.score")
        fields = {"cf.bot_management.score": 10, "cf.waf.score": 90}
        ctx = default_scheme().context(fields)
        assert f.execute(ctx) is expected, op
        assert f.matches(fields) is expected, op
        assert evaluate(f._checked, ctx) is expected, op


_TEMPLATES = [
    'http.host eq http.referer',
    'http.host ne http.referer',
    'http.request.uri.path lt raw.http.request.uri.path',
    'len(http.request.uri.path) ge len(http.request.uri.query)',
    'http.request.uri.args["a"][0] eq http.request.uri.args["b"][0]',
    'http.request.uri.args["a"][0] ne http.host',
    'lower(http.host) eq http.request.uri.args["a"][0]',
    'any(http.request.uri.args["a"][*] eq http.referer)',
    'all(http.request.uri.args["a"][*] ne http.request.uri.args["b"][0])',
    'ip.src eq cf.edge.server_ip',
    'ip.src ne cf.edge.server_ip',
    'cf.bot_management.score gt coalesce(lookup_json_integer(http.request.uri.query, "n"), 50)',
]
_words = st.sampled_from(["a", "b", "/a", "/A", "", "a.com"])
_requests = st.fixed_dictionaries(
    {
        "http.host": _words,
        "http.referer": _words,
        "http.request.uri.path": _words,
        "raw.http.request.uri.path": _words,
        "http.request.uri.query": st.sampled_from(['{"n": 3}', '{"n": 99}', "{}", "x"]),
        "http.request.uri.args": st.dictionaries(st.sampled_from(["a", "b"]), st.lists(_words, max_size=3), max_size=2),
        "ip.src": st.sampled_from(["192.0.2.1", "192.0.2.2", "::1"]),
        "cf.edge.server_ip": st.sampled_from(["192.0.2.1", "::1"]),
        "cf.bot_management.score": st.integers(0, 99),
    }
)


@given(_requests)
def test_every_path_agrees_on_generated_requests(fields: dict) -> None:
    scheme = default_scheme()
    ctx = scheme.context(fields)
    for text in _TEMPLATES:
        f = edgerules.compile(text)
        answers = {f.execute(ctx), f.matches(fields), evaluate(f._checked, ctx), f.trace(ctx).value}
        assert len(answers) == 1, (text, fields, answers)


def test_rule_index_does_not_assume_a_literal() -> None:
    """A ruleset large enough for the rule index, mixing literal guards with dynamic
    comparisons (which are no guard): it decides like walking every rule."""
    rnd = random.Random(12)
    hosts = [f"h{i}.example.com" for i in range(8)]
    rules = []
    for i in range(48):
        kind = i % 4
        if kind == 0:
            expr = f'http.host eq "{rnd.choice(hosts)}" and http.referer eq http.host'
        elif kind == 1:
            expr = "http.host eq http.referer"
        elif kind == 2:
            expr = f'http.referer eq "{rnd.choice(hosts)}" or http.host ne http.referer'
        else:
            expr = f'http.host eq "{rnd.choice(hosts)}"'
        rules.append({"ref": f"r{i}", "expression": expr, "action": "log" if i % 3 else "block"})
    indexed = Ruleset.from_dict({"name": "t", "rules": rules})
    plain = Ruleset.from_dict({"name": "t", "rules": rules})
    plain._use_index = False
    plain._build_plan()
    assert indexed._index is not None  # the index is really in use
    for _ in range(300):
        fields = {"http.host": rnd.choice(hosts), "http.referer": rnd.choice([*hosts, "x"])}
        assert indexed.evaluate(fields).to_dict() == plain.evaluate(fields).to_dict(), fields


def test_lint_reports_right_side_fields() -> None:
    r = Ruleset.from_dict(
        {"name": "t", "rules": [{"ref": "a", "expression": "http.host ne http.referer", "action": "block"}]}
    )
    assert {"http.host", "http.referer"} <= set(r.fields)


def test_ruleset_trace_shows_both_sides() -> None:
    r = Ruleset.from_dict(
        {"name": "t", "rules": [{"ref": "m", "expression": "http.request.uri.path ne raw.http.request.uri.path", "action": "block"}]}
    )
    text = r.trace({"http.request.uri.path": "/a", "raw.http.request.uri.path": "/%61"}, explain="all").render()
    assert 'http.request.uri.path  = "/a"' in text
    assert 'raw.http.request.uri.path  = "/%61"' in text
    assert "decision: block by rule 'm'" in text
