"""Regressions of the generated ``execute``/``matches`` code (``lang/execgen.py``,
``lang/matchgen.py``): a test that is constant for one operand must still run the read
of its field, because the generators bind a field's value to a temporary the first time
it is read and later tests of the same field reuse that temporary.

Found by hand: ``ip.src in {} or ip.src == 1.2.3.4`` raised ``NameError`` from the
generated code (the empty set compiled to a bare ``False`` that skipped the read)."""

from __future__ import annotations

from typing import Any

import pytest

from edgerules import compile, parse
from edgerules.lang.checker import check
from reference_interpreter import evaluate, small_scheme

SCHEME = small_scheme()

# (empty-ish test, a later test of the same field, a value of the field)
EMPTY_FIRST = [
    ("ip in {}", "ip == 10.0.0.1", "10.0.0.1"),
    ("ip in {}", "ip in {10.0.0.0/8}", "10.0.0.1"),
    ("ip in {}", "ip in {10.0.0.0/8 2001:db8::/32}", "2001:db8::1"),
    ("ip in {}", "ip != 10.0.0.2", "10.0.0.1"),
    ("i in {}", "i == 5", 5),
    ("i in {}", "i in {1..9}", 5),
    ('s in {}', 's == "a"', "a"),
    ('s in {}', 's contains "a"', "a"),
    ("any(as[*] in {})", 'any(as[*] == "a")', ["a"]),
]
SHAPES = [
    "{a} or {b}",
    "{b} or {a}",
    "{a} and {b}",
    "not ({a}) and {b}",
    "({a} or {a}) or {b}",
    "{a} xor {b}",
    "not ({a} or not {b})",
]


def _field(test: str) -> str:
    head = test.split()[0]
    return head.removeprefix("any(").split("[")[0]


CASES = [
    pytest.param(shape.format(a=a, b=b), {_field(a): value}, id=shape.format(a=a, b=b))
    for a, b, value in EMPTY_FIRST
    for shape in SHAPES
]


@pytest.mark.parametrize(("text", "fields"), CASES)
def test_generated_code_agrees_with_the_reference(text: str, fields: dict[str, Any]) -> None:
    expected = evaluate(check(parse(text), SCHEME, text), SCHEME.context(fields))
    f = compile(text, SCHEME)
    assert f.execute(SCHEME.context(fields)) is expected
    assert f.execute(SCHEME.context(fields, lazy=True)) is expected
    assert f.matches(fields) is expected


def test_the_ip_case_that_raised_matches_on_the_default_scheme() -> None:
    f = compile("ip.src in {} or ip.src == 1.2.3.4")
    assert f.matches({"ip.src": "1.2.3.4"}) is True
    assert f.matches({"ip.src": "1.2.3.5"}) is False
