"""Testing helpers for users' own test suites: one-line decision assertions and a pytest
plugin.

Owns ``assert_decision`` (usable with or without pytest), the pytest fixtures
``edgerules_ruleset`` / ``edgerules_request`` and the optional collection of policy-test
files (``*.tests.toml``) as pytest items. Enable the plugin in a ``conftest.py`` with::

    pytest_plugins = ["edgerules.testing"]

then::

    def test_mtls(edgerules_ruleset):
        rs = edgerules_ruleset("rules/mtls-required.json")
        assert_decision(rs, {"http.host": "api.localhost"}, "block", rule="mtls_enforce")
        assert_decision(rs, {"http.host": "api.localhost"}, "allow", client_cert="valid")

With the ini option ``edgerules_policy_tests = true`` every ``*.tests.toml`` file under
the test paths becomes a test module whose cases are test items.

This module imports pytest only inside the hooks and fixtures, so ``assert_decision``
works from any test runner.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgerules.errors import RuleError

__all__ = ["assert_decision", "decide", "load_ruleset"]

_CACHE: dict[tuple[str, str | None], Any] = {}


def load_ruleset(path: str | os.PathLike[str], *, lists: Any = None,
                 limits: Any = None) -> Any:
    """Load (and cache, per path and plan, when no lists are given) a ruleset file."""
    from edgerules.rulesets import Ruleset

    key = (str(Path(path).resolve()), limits if isinstance(limits, str) else None)
    if lists is None and (limits is None or isinstance(limits, str)):
        if key not in _CACHE:
            _CACHE[key] = Ruleset.load(path, limits=limits)
        return _CACHE[key]
    return Ruleset.load(path, lists=lists, limits=limits)


def decide(target: Any, request: Mapping[str, object] | None = None, *,
           client_cert: str | None = None, cert: Mapping[str, object] | None = None) -> Any:
    """Evaluate ``request`` (field values) with an optional certificate profile (see
    ``edgerules.rulesets.policytest.PROFILES``) against a Ruleset, Policy or ruleset path."""
    from edgerules.rulesets.policytest import _request_context

    if isinstance(target, str | os.PathLike):
        target = load_ruleset(target)
    return target.evaluate(_request_context(target, _values(request, client_cert, cert)))


def _values(request: object, client_cert: str | None, cert: object) -> dict[str, object]:
    """The request's field values with the certificate profile's under them."""
    from edgerules.rulesets.policytest import profile_fields

    if request is not None and not isinstance(request, Mapping):
        raise RuleError(f"the request must be a mapping of field values, not "
                        f"{type(request).__name__}")
    values: dict[str, object] = {}
    if client_cert is not None or cert:
        values.update(profile_fields(client_cert or "valid", cert))  # type: ignore[arg-type]
    values.update(request or {})
    return values


def assert_decision(target: Any, request: Mapping[str, object] | None = None,
                    outcome: str | None = None, *, rule: str | None = ...,  # type: ignore[assignment]
                    action: str | None = None, status: int | None = None,
                    logged: list[str] | None = None, skipped: list[str] | None = None,
                    client_cert: str | None = None,
                    cert: Mapping[str, object] | None = None) -> Any:
    """Assert what a request gets, in one line; return the ``Decision``.

    ``outcome``: ``"block"``/``"allow"``/``"challenge"``; ``rule``: the deciding rule's
    ref (``None`` = no rule decided); the other keywords as in policy-test ``expect``
    tables. On mismatch raises ``AssertionError`` whose message holds the expected and
    actual decision and the full trace.
    """
    __tracebackhide__ = True
    from edgerules.rulesets.policytest import _request_context, check_decision

    if isinstance(target, str | os.PathLike):
        target = load_ruleset(target)
    values = _values(request, client_cert, cert)
    try:
        ctx = _request_context(target, values)
    except RuleError as exc:
        raise AssertionError(f"bad request for {target!r}: {exc}") from None
    decision = target.evaluate(ctx)
    expect: dict[str, object] = {}
    if outcome is not None:
        expect["outcome"] = outcome
    if rule is not ...:
        expect["rule"] = rule or ""
    for key, value in (("action", action), ("status", status), ("logged", logged),
                       ("skipped", skipped)):
        if value is not None:
            expect[key] = value
    problems = check_decision(decision, expect)
    if problems:
        trace = target.trace(ctx).render()
        indented = "\n".join("    " + line for line in trace.splitlines())
        raise AssertionError(
            "decision mismatch:\n  " + "\n  ".join(problems) + f"\n  actual: {decision}\n"
            f"  trace:\n{indented}"
        )
    return decision


# --- pytest plugin -----------------------------------------------------------------------


def pytest_addoption(parser: Any) -> None:
    parser.addini("edgerules_policy_tests", type="bool", default=False,
                  help="collect *.tests.toml policy-test files as tests (edgerules)")


def pytest_collect_file(file_path: Path, parent: Any) -> Any:
    if not file_path.name.endswith(".tests.toml"):
        return None
    if not parent.config.getini("edgerules_policy_tests"):
        return None
    return PolicyTestFile.from_parent(parent, path=file_path)


def _case_id(name: str, seen: set[str]) -> str:
    """A pytest id for a case: no spaces (so ``-k`` and copied node ids work), no ``::``
    (the node-id separator), unique within the file (``_2``, ``_3``… appended)."""
    base = re.sub(r"\s+", "_", name.strip()).replace("::", ":") or "case"
    ident, n = base, 1
    while ident in seen:
        n += 1
        ident = f"{base}_{n}"
    seen.add(ident)
    return ident


@functools.cache
def _pytest_classes() -> tuple[type, type]:
    import pytest

    class _PolicyTestFile(pytest.File):  # type: ignore[misc]
        def collect(self) -> Any:
            from edgerules.rulesets.policytest import load_cases

            try:
                # paths inside (ruleset, rulesets, lists) are relative to the cases file
                cf = load_cases(self.path)
                target = cf.load_target()
            except RuleError as exc:
                # one clean collection error: the message, no internal frames
                raise self.CollectError(str(exc)) from None
            seen: set[str] = set()
            for case in cf.cases:
                yield _PolicyCase.from_parent(self, name=_case_id(case.name, seen),
                                              target=target, case=case)

    class _PolicyCase(pytest.Item):  # type: ignore[misc]
        def __init__(self, *, target: Any, case: Any, **kw: Any) -> None:
            super().__init__(**kw)
            self.target = target
            self.case = case

        def runtest(self) -> None:
            from edgerules.rulesets.policytest import run_case

            result = run_case(self.target, self.case)
            if not result.passed:
                lines = list(result.problems)
                if result.trace is not None:
                    lines += ["trace:", *("  " + x for x in result.trace.render().splitlines())]
                raise AssertionError("\n".join(lines))

        def repr_failure(self, excinfo: Any, style: Any = None) -> str:
            if isinstance(excinfo.value, AssertionError | RuleError):
                return f"policy case {self.case.name!r} failed:\n{excinfo.value}"
            return str(super().repr_failure(excinfo))

        def reportinfo(self) -> tuple[Any, int, str]:
            return self.path, 0, f"policy case: {self.case.name}"

    return _PolicyTestFile, _PolicyCase


class _Lazy:
    """``PolicyTestFile`` without importing pytest at module import time."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_pytest_classes()[0], name)


PolicyTestFile: Any = _Lazy()


def _fixture(fn: Callable[..., Any]) -> Any:
    try:
        import pytest
    except ImportError:  # pragma: no cover - not running under pytest
        return fn
    return pytest.fixture(fn)


@_fixture
def edgerules_ruleset() -> Callable[..., Any]:
    """A loader: ``edgerules_ruleset(path, lists=None, limits=None) -> Ruleset``
    (cached per path)."""
    return load_ruleset


@_fixture
def edgerules_request() -> Callable[..., Any]:
    """``edgerules_request(target, request, client_cert=None) -> Decision``."""
    return decide
