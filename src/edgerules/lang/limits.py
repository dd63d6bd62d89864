"""Limits of one expression: length, nesting, regular expressions, items of a ``{ }`` set.

Owns ``ExpressionLimits`` and ``DEFAULT_LIMITS`` (Cloudflare's limits). A ``Scheme`` carries
one ``ExpressionLimits``; the parser enforces ``max_length``, ``max_nesting`` and
``max_set_items``, the checker ``max_regexes``. Every limit is a caret error
(``ParseError``) at the first thing over it, never a truncation.

Invariants:

* Instances are immutable and validated on construction (positive integers; a bool is
  not an integer).
* ``max_nesting`` never exceeds ``NESTING_CEILING``: the checker, the compiler, the
  formatter and the trace recurse once or twice per nesting level, and the ceiling is
  the depth they are all tested at (tests/test_limits.py) within Python's default
  recursion limit. The other limits only cost time and memory, linearly, so they have
  no ceiling: an application that raises them accepts that cost.

Named lists (``in $name``) are the recommended way to hold large sets: they are not part
of the expression, so no limit here applies to them, and ``http.host in $hosts`` costs
what an inline set costs (bench/bench_language.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

__all__ = ["DEFAULT_LIMITS", "NESTING_CEILING", "ExpressionLimits"]

# Deepest nesting every recursive consumer is tested at (see the module invariants).
NESTING_CEILING: Final = 256


@dataclass(frozen=True, slots=True)
class ExpressionLimits:
    """Limits of one expression. The defaults are Cloudflare's.

    Attributes:
        max_length: characters in the expression (4,096, documented:
            https://developers.cloudflare.com/ruleset-engine/rules-language/expressions/).
        max_nesting: levels of parentheses, ``not``/``!``, function calls, ``any``/``all``
            and index brackets (128, the open-source wirefilter engine's default); at most ``NESTING_CEILING``.
        max_regexes: regular expressions in one expression, counting each ``matches``/``~``
            and each ``regex_replace()`` (64, Cloudflare's documented limit since 2026-10-01).
        max_set_items: items in one inline ``{ … }`` set (our choice, unspecified by
            Cloudflare: 10,000, the non-Enterprise
            quota of list items; see docs/engine-front.md).

    Raises:
        ValueError: a limit that is not a positive integer, or nesting over the ceiling.
    """

    max_length: int = 4096
    max_nesting: int = 128
    max_regexes: int = 64
    max_set_items: int = 10_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")
        if self.max_nesting > NESTING_CEILING:
            raise ValueError(
                f"max_nesting must be at most {NESTING_CEILING} (the depth the checker, "
                f"compiler, formatter and trace are tested at), got {self.max_nesting}"
            )


DEFAULT_LIMITS: Final = ExpressionLimits()
