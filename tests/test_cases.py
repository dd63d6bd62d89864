"""The one runner for the data-driven case files ``tests/cases/*.toml``.

Every ``result`` case checks, in one helper: the compiled result through a ``Context``
and through ``matches(dict)``; the reference interpreter's result; the trace's root
value; ``parse(format(e))`` gives the same AST and the same result; ``not (e)`` gives
the opposite result. Every ``error`` case checks the exception class, the span and
(optionally) a substring of the rendered message (which includes the hint).

Extensions to the format (all optional): a group may say ``scheme = "small"`` to use
the small test scheme of ``reference_interpreter.small_scheme`` instead of Cloudflare's;
a case may carry its own ``fields`` table, which replaces the group's; a case may say
``negate = false`` to skip the ``not (e)`` check (for expressions at the length or
nesting limit, whose negation is over the limit).
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import Any

import pytest

import edgerules.errors as errors_module
from edgerules.lang import ast
from edgerules.lang.engine import compile as compile_filter
from edgerules.lang.engine import parse
from edgerules.lang.scheme import Scheme, default_scheme
from reference_interpreter import evaluate, small_scheme

CASES_DIR = Path(__file__).parent / "cases"
_HAS_FORMATTER = importlib.util.find_spec("edgerules.lang.formatter") is not None
_SMALL: Scheme | None = None


def _scheme(name: str | None) -> Scheme:
    global _SMALL
    if name in (None, "cloudflare", "default"):
        return default_scheme()
    if name == "small":
        if _SMALL is None:
            _SMALL = small_scheme()
        return _SMALL
    raise ValueError(f"unknown scheme {name!r} in a case file")


def _make_lists(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    from edgerules.rulesets.lists import make_list

    return {name: make_list(name, d["kind"], d.get("items", [])) for name, d in spec.items()}


def _load() -> list[Any]:
    """One param per case. A malformed file or case becomes a failing param of its own
    (instead of a collection error that would hide every other file's cases)."""
    params = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            params.append(pytest.param(path.stem, {}, {"malformed": str(exc)}, id=f"{path.stem}:load"))
            continue
        seen: set[str] = set()
        for group in data.get("group", []):
            for case in group.get("case", []):
                cid = str(case.get("id", "?"))
                problem = None
                if cid in seen:
                    problem = f"duplicate case id {cid!r}"
                elif ("result" in case) == ("error" in case):
                    problem = "a case needs exactly one of result/error"
                elif "expr" not in case:
                    problem = "a case needs an expr"
                seen.add(cid)
                pid = f"{path.stem}:{group.get('name', '?')}:{cid}"
                if problem is not None:
                    params.append(pytest.param(path.stem, group, {"malformed": problem}, id=pid + ":bad"))
                else:
                    params.append(pytest.param(path.stem, group, case, id=pid))
    return params


def _describe(expr: str, fields: Any, f: Any = None) -> str:
    text = f"\n  expr:   {expr}\n  fields: {fields!r}"
    if f is not None:
        text += f"\n  ast:    {f.ast!r}"
    return text


@pytest.mark.parametrize(("file", "group", "case"), _load())
def test_case(file: str, group: dict[str, Any], case: dict[str, Any]) -> None:
    if "malformed" in case:
        pytest.fail(f"{file}.toml: {case['malformed']}")
    scheme = _scheme(group.get("scheme"))
    lists = _make_lists(group.get("lists"))
    fields = case.get("fields", group.get("fields", {}))
    expr = case["expr"]
    if "error" in case:
        _check_error(expr, scheme, lists, case["error"])
    else:
        _check_result(expr, scheme, lists, fields, case["result"], case.get("negate", True))


def _check_error(expr: str, scheme: Scheme, lists: Any, want: dict[str, Any]) -> None:
    cls = getattr(errors_module, want["class"])
    with pytest.raises(errors_module.RuleError) as info:
        compile_filter(expr, scheme, lists=lists)
    err = info.value
    where = f"\n  expr: {expr}\n  got:  {err!r}\n{err}"
    assert isinstance(err, cls), f"expected {cls.__name__}{where}"
    if "span" in want:
        assert [err.span.start, err.span.end] == list(want["span"]), f"wrong span{where}"
    if "contains" in want:
        assert want["contains"] in str(err), f"message lacks {want['contains']!r}{where}"


def _check_result(
    expr: str,
    scheme: Scheme,
    lists: Any,
    fields: dict[str, Any],
    expected: bool,
    negate: bool = True,
) -> None:
    f = compile_filter(expr, scheme, lists=lists)
    ctx = scheme.context(fields)
    where = _describe(expr, fields, f)
    assert f.execute(ctx) is expected, f"execute(Context) != {expected}{where}"
    assert f.matches(fields) is expected, f"matches(dict) != {expected}{where}"
    assert evaluate(f._checked, ctx) is expected, f"reference interpreter != {expected}{where}"
    assert f.trace(ctx).value is expected, f"trace root != {expected}{where}"
    if _HAS_FORMATTER:
        text = str(f)
        assert parse(text) == f.ast, f"parse(format(e)) changed the AST: {text!r}{where}"
        again = compile_filter(text, scheme, lists=lists)
        assert again.execute(ctx) is expected, f"formatted {text!r} != {expected}{where}"
    if negate and not isinstance(f.ast, ast.BoolConst):
        negated = compile_filter(f"not ({expr})", scheme, lists=lists)
        assert negated.execute(ctx) is (not expected), f"not (e) is not the negation{where}"
