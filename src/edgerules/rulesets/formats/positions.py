"""Where a rule's expression sits in the original file, character by character.

Owns: finding the literal that holds a rule's ``expression`` in a ruleset file (JSON,
TOML, Terraform HCL, YAML) and mapping each character of the decoded expression to its
offset in the file, so that an expression error's caret points into the **file** (its
line and column), not into the expression.

How: the literals that are values of an ``expression`` key are listed in file order
(per format); the one for a rule is the k-th literal whose characters align with the
rule's decoded expression (k counts earlier rules with the same expression). Aligning
walks the decoded text and the raw literal together: equal characters map to each
other, an escape sequence (``\\"``, ``\\n``, ``\\u00e9``) maps to the character it
stands for, and anything else in the raw text (quotes, indentation, a line
continuation) is skipped. Only ever used to report an error, so its cost does not
matter; it never raises (no position found means "report without a file position").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["align", "expression_literals", "line_of"]

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "\\": "\\",
            "/": "/", "'": "'", "0": "\0", "e": "\x1b", "a": "\a", "v": "\v"}

_KEY = r"""(?:expression|"expression"|'expression')"""
_JSON = re.compile(r'"expression"\s*:\s*("(?:[^"\\]|\\.)*")', re.S)
_TOML = re.compile(
    rf"(?m)^[ \t]*{_KEY}[ \t]*=[ \t]*"
    r"""("{3}[\s\S]*?"{3,5}|'{3}[\s\S]*?'{3,5}|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')""")
_HCL = re.compile(
    rf"{_KEY}\s*=\s*"
    r"""("(?:[^"\\\n]|\\.)*"|<<-?([A-Za-z_][A-Za-z0-9_]*)\n[\s\S]*?\n[ \t]*\2(?=\s))""")


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, max(0, offset)) + 1


def _escape_at(raw: str, i: int) -> tuple[str, int] | None:
    """(character, length) of the escape sequence at ``raw[i]`` (a backslash)."""
    if i + 1 >= len(raw):
        return None
    nxt = raw[i + 1]
    for letter, size in (("u", 4), ("U", 8), ("x", 2)):
        if nxt == letter:
            digits = raw[i + 2:i + 2 + size]
            if len(digits) == size and all(c in "0123456789abcdefABCDEF" for c in digits):
                try:
                    return chr(int(digits, 16)), 2 + size
                except (ValueError, OverflowError):
                    return None
            return None
    if nxt in _ESCAPES:
        return _ESCAPES[nxt], 2
    return None


def align(raw: str, decoded: str, *, escapes: bool) -> list[int] | None:
    """Offsets into ``raw`` of each character of ``decoded`` (plus the end), or None
    when the decoded text cannot be found in the raw literal."""
    out: list[int] = []
    i = 0
    n = len(raw)
    for ch in decoded:
        while True:
            if i >= n:
                return None
            c = raw[i]
            if escapes and c == "\\":
                if i + 1 < n and raw[i + 1] in "\r\n":  # TOML line-ending backslash
                    i += 1
                    while i < n and raw[i] in " \t\r\n":
                        i += 1
                    continue
                esc = _escape_at(raw, i)
                if esc is not None and esc[0] == ch:
                    out.append(i)
                    i += esc[1]
                    break
            if c == ch:
                out.append(i)
                i += 1
                break
            i += 1  # a quote, indentation, a folded line break...
    out.append(i)
    return out


def expression_literals(text: str, fmt: str) -> Iterator[tuple[int, int, bool]]:
    """``(start, end, escapes)`` of every literal that is the value of an
    ``expression`` key, in file order; ``escapes``: backslash escapes apply."""
    if fmt == "json":
        for m in _JSON.finditer(text):
            yield m.start(1), m.end(1), True
    elif fmt == "toml":
        for m in _TOML.finditer(text):
            yield m.start(1), m.end(1), m.group(1).startswith('"')
    elif fmt == "terraform":
        for m in _HCL.finditer(text):
            yield m.start(1), m.end(1), m.group(1).startswith('"')
    elif fmt == "yaml":
        yield from _yaml_literals(text)


def _yaml_literals(text: str) -> Iterator[tuple[int, int, bool]]:
    try:
        import yaml

        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except Exception:
        return
    stack = [root]
    found = []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if (isinstance(key, yaml.ScalarNode) and key.value == "expression"
                        and isinstance(value, yaml.ScalarNode)):
                    found.append((value.start_mark.index, value.end_mark.index,
                                  value.style == '"'))
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    yield from sorted(found)
