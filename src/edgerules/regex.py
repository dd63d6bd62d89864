"""Regular expressions of ``matches`` / ``~`` and ``regex_replace`` (spec rules-language
§5.2), on google-re2.

This module owns translating the Rules language's regex dialect (Rust ``regex`` crate
syntax, Unicode off by default) to RE2, compiling it once, and running it. Invariants:

* Matching is linear in the input (RE2 never backtracks); compiled programs are capped
  by ``MAX_MEM`` and patterns by ``MAX_PATTERN_LENGTH``.
* Default (byte) mode: the pattern is compiled with ``Encoding.LATIN1`` so the subject
  is matched byte by byte: ``.`` matches any single byte (except ``\\n`` unless
  ``(?s)``), ``\\w \\d \\s \\b`` and ``(?i)`` are ASCII-only, ``\\xHH`` is byte ``HH``.
  A non-ASCII character written literally outside a class stands for its UTF-8 bytes as
  one unit (``é+`` repeats the whole character), like Rust's ``(?-u)`` literals.
* UTF-8 mode: a ``u`` flag in the pattern's **leading** flag group(s) (``(?u)``,
  ``(?iu)``, ``(?u)(?i)`` …) selects ``Encoding.UTF8``; the ``u`` is removed because RE2
  has no such flag. Invalid UTF-8 in the subject is allowed (it simply never matches
  ``.`` or a class).
* ``(?x)`` (verbose) is supported in the leading flag group(s) only: unescaped
  whitespace and ``#`` comments are removed everywhere, inside classes too (Rust's rule);
  ``\\ `` and ``\\#`` stay literal.
* Rejected with ``RegexError(message, offset)``: everything RE2 rejects (backreferences,
  look-around, ``\\Z``, bad syntax), ``u``/``x`` flags outside the leading group, ``\\p``
  classes in byte mode, non-ASCII characters inside a class in byte mode, nested classes
  and class set operations (``[a[b]]``, ``&&``, ``--``, ``~~`` — Rust features RE2 would
  silently read differently), and RE2-only escapes ``\\C`` and ``\\Q…\\E``.
  ``offset`` is a character offset into the pattern text given to ``compile_regex``, or
  0 when unknown.
* Rust's ``\\u007F``/``\\u{7F}``/``\\U0000007F`` escapes are translated to RE2's
  ``\\x{…}``.
* A byte-mode pattern that is a plain literal (optionally ``^…``/``…$``, with
  ``\\``-escaped punctuation) is searched with ``bytes`` methods instead of calling RE2;
  the answer is the same (a property test compares them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

import re2

from edgerules.errors import RuleError

__all__ = ["MAX_MEM", "MAX_PATTERN_LENGTH", "CompiledRegex", "RegexError", "compile_regex"]

# RE2's default program budget is 8 MiB; wirefilter's compiled-program limit is 10 MiB.
MAX_MEM: Final = 8 << 20
# An expression is at most 4,096 characters (spec §1), so no pattern from rule text is
# longer; the cap protects direct callers.
MAX_PATTERN_LENGTH: Final = 4096

_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED
_RE2 = re2._re2.RE2
_HEX = frozenset("0123456789abcdefABCDEF")
_FLAG_CHARS = frozenset("imsxuUR-")


class RegexError(RuleError):
    """An invalid or unsupported regex; ``offset`` is a character offset into the
    pattern (0 when unknown)."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


def _options(utf8: bool, *, capture: bool = True) -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = MAX_MEM
    opts.encoding = re2.Options.Encoding.UTF8 if utf8 else re2.Options.Encoding.LATIN1
    opts.never_capture = not capture
    return opts


def _parse_flag_group(pattern: str, i: int) -> tuple[str, int, bool] | None:
    """If ``pattern[i:]`` starts a flag group ``(?flags)`` or ``(?flags:``, return
    ``(flags, index after the ')' or ':', is_scoped)``."""
    if not pattern.startswith("(?", i):
        return None
    j = i + 2
    while j < len(pattern) and pattern[j] in _FLAG_CHARS:
        j += 1
    if j == i + 2 or j >= len(pattern) or pattern[j] not in "):":
        return None
    return pattern[i + 2 : j], j + 1, pattern[j] == ":"


def _apply_flags(flags: str, utf8: bool, verbose: bool) -> tuple[str, bool, bool]:
    """Remove ``u``/``x`` from a leading flag group, returning the remaining flags."""
    negate = False
    kept = []
    for c in flags:
        if c == "-":
            negate = True
            kept.append(c)
        elif c == "u":
            utf8 = not negate
        elif c == "x":
            verbose = not negate
        else:
            kept.append(c)
    rest = "".join(kept)
    if rest.endswith("-"):
        rest = rest[:-1]
    return rest, utf8, verbose


def _translate(pattern: str) -> tuple[str, bool, list[int]]:
    """Translate the Rust-dialect ``pattern`` to RE2 syntax.

    Returns ``(re2 pattern text, utf8 mode, offset map)`` where ``offset map[k]`` is the
    original offset of output character ``k`` (for error positions)."""
    out: list[str] = []
    where: list[int] = []

    def emit(text: str, origin: int) -> None:
        out.append(text)
        where.extend([origin] * len(text))

    # 1. Leading flag groups: (?u) and (?x) are decided here, for the whole pattern.
    utf8 = False
    verbose = False
    i = 0
    n = len(pattern)
    while True:
        group = _parse_flag_group(pattern, i)
        if group is None or group[2]:
            break
        flags, after, _ = group
        rest, utf8, verbose = _apply_flags(flags, utf8, verbose)
        if rest:
            emit(f"(?{rest})", i)
        i = after

    # 2. The body.
    in_class = False
    class_start = 0  # offset just after '[' (and '^'), where a literal ']' may appear
    while i < n:
        c = pattern[i]
        if verbose and (c in " \t\n\r\f\v" or c == "#"):
            if c == "#":
                nl = pattern.find("\n", i)
                i = n if nl < 0 else nl + 1
            else:
                i += 1
            continue
        if c == "\\":
            if i + 1 >= n:
                raise RegexError("a regex cannot end with a lone backslash", i)
            e = pattern[i + 1]
            if e in "QC":
                raise RegexError(f"\\{e} is not supported (not Rust regex syntax)", i)
            if e in "pP" and not utf8:
                raise RegexError(
                    f"Unicode class \\{e} needs Unicode mode: start the pattern with (?u)", i
                )
            if e in "uU":
                j, text = _unicode_escape(pattern, i)
                emit(text, i)
                i = j
                continue
            if verbose and e in " #":
                emit("\\x20" if e == " " else "\\#", i)
                i += 2
                continue
            if ord(e) > 0x7F:
                # An escaped non-ASCII char is that char (Rust allows escaping it).
                i += 1
                continue
            emit(pattern[i : i + 2], i)
            i += 2
            continue
        if in_class:
            if c == "]" and i != class_start:
                in_class = False
                emit(c, i)
                i += 1
                continue
            if c == "[":
                if pattern.startswith("[:", i):
                    end = pattern.find(":]", i + 2)
                    if end >= 0:
                        emit(pattern[i : end + 2], i)
                        i = end + 2
                        continue
                raise RegexError(
                    "nested character classes are not supported (escape the bracket as \\[)", i
                )
            if c in "&~" and pattern.startswith(c * 2, i):
                raise RegexError(
                    f"class set operation {c * 2} is not supported (escape it as \\{c}\\{c})", i
                )
            if c == "-" and pattern.startswith("--", i):
                raise RegexError(
                    "class set operation -- is not supported (escape it as \\-\\-)", i
                )
            if 0xDC80 <= ord(c) <= 0xDCFF and not utf8:
                emit(f"\\x{ord(c) - 0xDC00:02x}", i)  # a surrogate-escaped raw byte
                i += 1
                continue
            if ord(c) > 0x7F and not utf8:
                raise RegexError(
                    "a non-ASCII character inside a class needs Unicode mode: start the "
                    "pattern with (?u), or use \\xHH bytes",
                    i,
                )
            emit(c, i)
            i += 1
            continue
        if c == "[":
            in_class = True
            emit(c, i)
            i += 1
            if i < n and pattern[i] == "^":
                emit("^", i)
                i += 1
            class_start = i
            continue
        if c == "(":
            group = _parse_flag_group(pattern, i)
            if group is not None:
                flags, after, scoped = group
                if "x" in flags:
                    raise RegexError(
                        "the x flag is supported only at the start of the pattern", i
                    )
                if "u" in flags:
                    negated = flags.index("u") > flags.find("-") >= 0
                    if utf8 or not negated:
                        raise RegexError(
                            "the u flag is supported only at the start of the pattern", i
                        )
                    # (?-u) in byte mode is a no-op: drop the flag.
                    flags = flags.replace("u", "")
                    if flags.endswith("-"):
                        flags = flags[:-1]
                if flags or scoped:
                    emit(f"(?{flags}{':' if scoped else ')'}", i)
                i = after
                continue
        if 0xDC80 <= ord(c) <= 0xDCFF and not utf8:
            # A raw byte passed as str.decode("utf-8", "surrogateescape") stands for itself.
            emit(f"\\x{ord(c) - 0xDC00:02x}", i)
            i += 1
            continue
        if ord(c) > 0x7F and not utf8:
            # Rust (?-u) reads a literal char as its UTF-8 bytes, repeated as a unit.
            emit("(?:" + "".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass")) + ")", i)
            i += 1
            continue
        emit(c, i)
        i += 1
    return "".join(out), utf8, where


def _unicode_escape(pattern: str, i: int) -> tuple[int, str]:
    """Translate Rust's ``\\uXXXX``, ``\\u{X…}``, ``\\UXXXXXXXX``, ``\\U{X…}`` at ``i``."""
    kind = pattern[i + 1]
    j = i + 2
    if j < len(pattern) and pattern[j] == "{":
        end = pattern.find("}", j)
        digits = pattern[j + 1 : end] if end >= 0 else ""
        if end < 0 or not digits or not set(digits) <= _HEX:
            raise RegexError(f"invalid escape \\{kind}{{…}}", i)
        return end + 1, f"\\x{{{digits}}}"
    width = 4 if kind == "u" else 8
    digits = pattern[j : j + width]
    if len(digits) != width or not set(digits) <= _HEX:
        raise RegexError(f"invalid escape \\{kind}: expected {width} hex digits", i)
    return j + width, f"\\x{{{digits}}}"


class CompiledRegex:
    """A compiled pattern. ``search(data)`` is an unanchored search over bytes;
    ``first_match(data)`` returns the spans of group 0..``groups`` of the leftmost-first
    match (``(-1, -1)`` for a group that did not take part) or ``None``.

    For callers that inline the search into their own closure (the compiler):
    ``literal`` is ``(bytes, anchored at start, anchored at end)`` for a plain-literal
    byte-mode pattern (then ``search`` is a ``bytes`` operation) or ``None``; otherwise
    ``re2_match(anchor, data, 0, len(data))[0][0] >= 0`` is ``search(data)`` without the
    wrapper frame (``re2_match`` is the bound ``Match`` of the RE2 program compiled
    without capture groups, ``anchor`` its unanchored mode)."""

    __slots__ = ("_capturing", "_finder", "anchor", "groups", "literal", "pattern", "re2_match",
                 "search", "translated", "utf8")

    pattern: str  # as given
    translated: bytes  # what RE2 compiled
    utf8: bool
    groups: int
    search: Callable[[bytes], bool]
    literal: tuple[bytes, bool, bool] | None
    re2_match: Callable[[object, bytes, int, int], list[tuple[int, int]]]
    anchor: object

    def __init__(self, pattern: str, translated: bytes, utf8: bool, finder: object,
                 capturing: object) -> None:
        self.pattern = pattern
        self.translated = translated
        self.utf8 = utf8
        self._finder = finder
        self._capturing = capturing
        self.groups = capturing.NumberOfCapturingGroups()  # type: ignore[attr-defined]
        self.literal = None
        self.anchor = _UNANCHORED
        match = self.re2_match = finder.Match  # type: ignore[attr-defined]

        def search(data: bytes) -> bool:
            return match(_UNANCHORED, data, 0, len(data))[0][0] >= 0

        self.search = search

    def first_match(self, data: bytes) -> list[tuple[int, int]] | None:
        spans = self._capturing.Match(_UNANCHORED, data, 0, len(data))  # type: ignore[attr-defined]
        if spans[0][0] < 0:
            return None
        return list(spans)

    def __repr__(self) -> str:
        return f"CompiledRegex({self.pattern!r}{', utf8' if self.utf8 else ''})"


_META = frozenset("\\.^$|?*+()[]{}#")


def _literal_shape(pattern: str) -> tuple[bytes, bool, bool] | None:
    """``(literal, anchored at start, anchored at end)`` when ``pattern`` (byte mode) is
    just a literal, optionally between ``^`` and ``$``, with ``\\`` escapes of ASCII
    punctuation only; else ``None``. Such patterns are searched with ``bytes`` methods,
    which is what RE2 would answer, minus the call overhead."""
    start = pattern.startswith("^")
    body = pattern[1:] if start else pattern
    end = body.endswith("$") and not body.endswith("\\$")
    if end:
        body = body[:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body):
                return None
            e = body[i + 1]
            if not (e.isascii() and not e.isalnum() and e.isprintable() and e != " "):
                return None
            out.append(e)
            i += 2
            continue
        if c in _META or (0xD800 <= ord(c) <= 0xDFFF):
            return None
        out.append(c)
        i += 1
    return "".join(out).encode("utf-8"), start, end


def _literal_search(lit: bytes, start: bool, end: bool) -> Callable[[bytes], bool]:
    if start and end:
        return lambda data: data == lit
    if start:
        return lambda data: data.startswith(lit)
    if end:
        return lambda data: data.endswith(lit)
    return lambda data: data.find(lit) != -1


def _re2_error(err: bytes, translated: str, where: list[int]) -> RegexError:
    text = err.decode("utf-8", "replace")
    if "pattern too large" in text:
        return RegexError(
            f"regex is too large (its compiled program exceeds {MAX_MEM >> 20} MiB)", 0
        )
    message, _, fragment = text.partition(": ")
    offset = 0
    if fragment:
        k = translated.find(fragment)
        if k >= 0 and k < len(where):
            offset = where[k]
    hints = {
        "invalid perl operator": " (look-around and other Perl extensions are not supported)",
        "invalid escape sequence": "",
    }
    hint = hints.get(message, "")
    if message == "invalid escape sequence" and fragment[1:2].isdigit():
        hint = " (backreferences are not supported)"
    return RegexError(f"invalid regex: {text}{hint}", offset)


@functools.lru_cache(maxsize=512)
def compile_regex(pattern: str) -> CompiledRegex:
    """Compile a pattern of the Rules language; raises ``RegexError``.

    Results are cached (rulesets repeat patterns; ``regex_replace`` checks and binds the
    same pattern); a ``CompiledRegex`` is never mutated after this returns."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexError(
            f"regex is too long ({len(pattern)} characters; at most {MAX_PATTERN_LENGTH})", 0
        )
    translated, utf8, where = _translate(pattern)
    try:
        data = translated.encode("utf-8" if utf8 else "ascii")
    except UnicodeEncodeError as exc:  # lone surrogates in a str pattern
        raise RegexError("the pattern is not valid text", where[exc.start] if where else 0) from None
    capturing = _RE2(data, _options(utf8))
    if not capturing.ok():
        raise _re2_error(capturing.error(), translated, where)
    finder = capturing
    if capturing.NumberOfCapturingGroups():
        # A capture-free twin answers search() without computing submatches.
        finder = _RE2(data, _options(utf8, capture=False))
        if not finder.ok():  # pragma: no cover - same pattern compiled above
            raise _re2_error(finder.error(), translated, where)
    compiled = CompiledRegex(pattern, data, utf8, finder, capturing)
    shape = None if utf8 else _literal_shape(pattern)
    if shape is not None:
        compiled.literal = shape
        compiled.search = _literal_search(*shape)
    return compiled
