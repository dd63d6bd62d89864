"""Regular expressions of ``matches`` / ``~`` and ``regex_replace`` (Cloudflare's operators
page, https://developers.cloudflare.com/ruleset-engine/rules-language/operators/), on google-re2.

This module owns translating the Rules language's regex dialect (Rust ``regex`` crate
syntax, Unicode off by default) to RE2, compiling it once, and running it. Invariants:

* Matching is linear in the input (RE2 never backtracks); compiled programs are capped
  by ``MAX_MEM`` and patterns by ``MAX_PATTERN_LENGTH``.
* Default (byte) mode: the pattern is compiled with ``Encoding.LATIN1`` so the subject
  is matched byte by byte: ``.`` matches any single byte (except ``\\n`` unless
  ``(?s)``), ``\\w \\d \\s \\b`` and ``(?i)`` are ASCII-only, ``\\xHH`` is byte ``HH``.
  A non-ASCII character written literally outside a class stands for its UTF-8 bytes as
  one unit (``é+`` repeats the whole character), like Rust's ``(?-u)`` literals.
  ``\\s``/``\\S`` are spelled out as ``[\\t\\n\\x0B\\f\\r ]`` (RE2's ``\\s`` lacks
  ``\\x0B``). Every bracketed class is evaluated here to a byte set — nested classes,
  ``&&``/``--``/``~~``, ``[:name:]``, ``(?i)`` folding and negation as in Rust — and
  emitted as an explicit RE2 class.
* UTF-8 mode: a ``u`` flag in the pattern's **leading** flag group(s) (``(?u)``,
  ``(?iu)``, ``(?u)(?i)`` …) selects ``Encoding.UTF8``; the ``u`` is removed because RE2
  has no such flag. Invalid UTF-8 in the subject is allowed (it simply never matches
  ``.`` or a class). ``\\w \\d \\s`` (and negations) become Rust's Unicode classes
  (``\\w`` = Alphabetic + M + Nd + Pc + Join_Control, ``\\s`` = White_Space); ``\\b``,
  ``\\B`` and the one-sided boundaries are rejected (RE2's ``\\b`` is ASCII-only); nested
  classes and set operations are rejected.
* A scoped ``(?u:…)`` later in a byte-mode pattern supports literals and ``.`` (one
  UTF-8 encoded scalar, spelled out as byte sequences); other Unicode-sensitive
  constructs in it are rejected. A non-scoped ``(?u)`` after the start is rejected.
* ``(?x)`` (verbose) is supported in the leading flag group(s) only: unescaped
  whitespace and ``#`` comments are removed everywhere, inside classes too (Rust's rule);
  ``\\ `` and ``\\#`` stay literal.
* Rust's one-sided word boundaries ``\\< \\> \\b{start} \\b{end} \\b{start-half}
  \\b{end-half}`` are rewritten to ``\\b``, ``\\B``, nothing or a never-matching class
  when the byte on one side is fixed by the pattern (a literal, class or ``\\w``-like
  escape right next to it that must match at least once, or ``^``/``$``); otherwise
  they are rejected.
* ``X{m,n}`` with a bound over RE2's 1,000 is split into chunks of at most 1,000
  (``X{0,1001}`` → ``(?:X){0,1000}(?:X){0,1}``: same language and preference order);
  rejected when ``X`` holds a capture group or a bound exceeds 100,000.
* The ``R`` flag (CRLF mode) is accepted: ``.`` then excludes ``\\r`` too; ``^``/``$``
  while both ``m`` and ``R`` are on are rejected (RE2 has no CRLF mode).
* Rejected with ``RegexError(message, offset)``: everything RE2 rejects (look-around,
  ``\\Z``, bad syntax), what Rust rejects but RE2 would read differently (``\\1``/
  ``\\101``, octal included; ``x{,3}``, ``a{``, ``{2}``; ``[\\d-z]``; an escaped non-ASCII
  character), ``u``/``x`` flags outside the places above, ``\\p`` classes in byte mode,
  non-ASCII characters inside a class in byte mode, and RE2-only escapes ``\\C`` and
  ``\\Q…\\E``. ``offset`` is a character offset into the pattern text given to
  ``compile_regex``, or 0 when unknown.
* Rust's ``\\u007F``/``\\u{7F}``/``\\U0000007F`` escapes are translated to RE2's
  ``\\x{…}``.
* A byte-mode pattern that is a plain literal (optionally ``^…``/``…$``, with
  ``\\``-escaped punctuation) is searched with ``bytes`` methods instead of calling RE2;
  the answer is the same (a property test compares them).
"""

from __future__ import annotations

import re as _re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import re2

from edgerules.errors import RuleError

__all__ = [
    "MAX_MEM",
    "MAX_PATTERN_LENGTH",
    "MAX_REPEAT_EXPANSION",
    "MAX_RULE_PROGRAM",
    "MAX_RULE_REPEAT_EXPANSION",
    "CompiledRegex",
    "RegexBudget",
    "RegexError",
    "compile_regex",
    "pattern_text",
]

# RE2's default program budget is 8 MiB; wirefilter's compiled-program limit is 10 MiB.
MAX_MEM: Final = 8 << 20
# An expression is at most 4,096 characters (Cloudflare's limit), so no pattern from rule text is
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


# --- byte sets (byte mode: every class is a set of bytes 0-255) -------------------------

_ALL = frozenset(range(256))
_WORD = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_DIGIT = frozenset(b"0123456789")
# Rust's ASCII \s (and [[:space:]]) includes the vertical tab \x0B; RE2's \s does not.
_SPACE = frozenset(b"\t\n\x0b\x0c\r ")
_LOWER = frozenset(range(0x61, 0x7B))
_UPPER = frozenset(range(0x41, 0x5B))
_ASCII_CLASSES: Final = {
    "alnum": _DIGIT | _LOWER | _UPPER,
    "alpha": _LOWER | _UPPER,
    "ascii": frozenset(range(0x80)),
    "blank": frozenset(b"\t "),
    "cntrl": frozenset([*range(0x20), 0x7F]),
    "digit": _DIGIT,
    "graph": frozenset(range(0x21, 0x7F)),
    "lower": _LOWER,
    "print": frozenset(range(0x20, 0x7F)),
    "punct": frozenset(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "space": _SPACE,
    "upper": _UPPER,
    "word": _WORD,
    "xdigit": frozenset(b"0123456789ABCDEFabcdef"),
}
_PERL_BYTES: Final = {"d": _DIGIT, "s": _SPACE, "w": _WORD}
_SIMPLE_ESCAPES: Final = {"a": 7, "f": 12, "t": 9, "n": 10, "r": 13, "v": 11}
_RUST_META = frozenset("\\.+*?()|[]{}^$#&-~")


def _fold(s: frozenset[int]) -> frozenset[int]:
    """ASCII simple case folding of a byte set (Rust's byte-class ``(?i)``)."""
    return s | {b ^ 0x20 for b in s if b in _LOWER or b in _UPPER}


def _byte_class(s: frozenset[int]) -> str:
    """An explicit RE2 class for the byte set ``s`` (Latin-1 mode)."""
    if not s:
        return "[^\\x00-\\xff]"  # matches nothing
    parts = []
    items = sorted(s)
    lo = prev = items[0]
    for b in [*items[1:], -2]:
        if b == prev + 1:
            prev = b
            continue
        parts.append(f"\\x{lo:02x}" if lo == prev else f"\\x{lo:02x}-\\x{prev:02x}")
        lo = prev = b
    return "[" + "".join(parts) + "]"


# --- Unicode mode: Rust's Unicode \w \d \s (UTS #18 Annex C) as RE2 class items ----------

# \w = Alphabetic + Mark + Decimal_Number + Connector_Punctuation + Join_Control, where
# Alphabetic = L + Nl + Other_Alphabetic (its non-Mark members are the So ranges below).
_U_WORD = (
    "\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200c}\\x{200d}\\x{24b6}-\\x{24e9}"
    "\\x{1f130}-\\x{1f149}\\x{1f150}-\\x{1f169}\\x{1f170}-\\x{1f189}"
)
_U_SPACE_RANGES = [(0x9, 0xD), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
                   (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
                   (0x3000, 0x3000)]


def _u_ranges(ranges: list[tuple[int, int]]) -> str:
    return "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)


def _u_complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, lo = [], 0
    for a, b in ranges:
        if a > lo:
            out.append((lo, a - 1))
        lo = b + 1
    out.append((lo, 0x10FFFF))
    return out


_U_SPACE = _u_ranges(_U_SPACE_RANGES)
_U_NOT_SPACE = _u_ranges(_u_complement(_U_SPACE_RANGES))
# Class items (inside [...]) for each perl class in Unicode mode; \W has no item form.
_U_PERL_ITEMS: Final = {"d": "\\p{Nd}", "D": "\\P{Nd}", "s": _U_SPACE, "S": _U_NOT_SPACE,
                        "w": _U_WORD}
# (?u:.) inside a byte-mode pattern: one UTF-8 encoded scalar value, as bytes.
_UTF8_MULTI = (
    "[\\xc2-\\xdf][\\x80-\\xbf]|\\xe0[\\xa0-\\xbf][\\x80-\\xbf]"
    "|[\\xe1-\\xec\\xee\\xef][\\x80-\\xbf]{2}|\\xed[\\x80-\\x9f][\\x80-\\xbf]"
    "|\\xf0[\\x90-\\xbf][\\x80-\\xbf]{2}|[\\xf1-\\xf3][\\x80-\\xbf]{3}"
    "|\\xf4[\\x80-\\x8f][\\x80-\\xbf]{2}"
)
# The compile-time budget (docs/engine-back.md, "Limits"). Counted repetitions are
# expanded by RE2 into copies of their operand: the sum of the copies over the pattern
# (nested repetitions multiply) is capped, since RE2's compile time grows quadratically
# with it and its DFA needs memory quadratic in it (`[a-z]{1000}!` still runs as a DFA
# within MAX_MEM; `[a-z]{2000}!` falls back to the NFA, ~250 ms per 16 KB value).
MAX_REPEAT_EXPANSION: Final = 1000
# Total RE2 program size (instructions) of the regexes of one rule (their number is
# limited by the scheme's ExpressionLimits.max_regexes: 64, as Cloudflare documents).
MAX_RULE_PROGRAM: Final = 100_000
# Copies of counted repetitions over all regexes of one rule: a DFA for `[a-z]{999}!`
# costs ~8 ms to build on its first 16 KB value, so a rule may hold two of those, not 64.
MAX_RULE_REPEAT_EXPANSION: Final = 2000


class _ClassFrame:
    """One open bracketed class while ``_Translator.parse_class`` reads it."""

    __slots__ = ("first", "items", "lhs", "negated", "op", "start", "union")

    def __init__(self, start: int) -> None:
        self.start = start
        self.negated = False
        self.union: frozenset[int] = frozenset()
        self.items: list[str] = []  # Unicode mode
        self.lhs: frozenset[int] | None = None  # left operand of a set operation
        self.op = ""
        self.first = True

    def open(self, p: str, n: int) -> int:
        """Read the ``[`` (and a ``^``); returns the index after them."""
        i = self.start + 1
        if i < n and p[i] == "^":
            self.negated = True
            i += 1
        return i

    def close(self, fold: bool) -> frozenset[int]:
        """The class's byte set once its ``]`` is read."""
        union = self.union
        if self.lhs is not None:
            if fold:
                union = _fold(union)
            union = _set_op(self.op, self.lhs, union)
        if fold:
            union = _fold(union)
        if self.negated:
            union = _ALL - union
        return union


class _Translator:
    """One pass over a Rust-dialect pattern, producing RE2 text.

    State: ``pieces`` (output text, original offset) — atoms are found again by piece
    index, for splitting repetitions over RE2's 1,000 limit; ``flags`` are the active
    inline flags (``i m s U R`` and ``u`` for a scoped Unicode group in a byte-mode
    pattern); ``prev_word`` says whether the last consumed byte is surely a word byte
    (True), surely not (False) or unknown (None) — what ``\\>`` & co. need."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.n = len(pattern)
        self.pieces: list[tuple[str, int]] = []
        self.utf8 = False
        self.verbose = False
        self.flags: set[str] = set()
        self.stack: list[tuple[set[str], int, int]] = []  # (flags, piece index, captures)
        self.captures = 0
        self.atom: int | None = None  # piece index where the last atom starts
        self.atom_captures = False
        self.prev_word: bool | None = None
        # Repetition expansion (MAX_REPEAT_EXPANSION): per open group, the copies its
        # counted repetitions add; ``atom_weight`` is what one copy of the last atom adds.
        self.weights: list[int] = [0]
        self.atom_weight = 0
        self.expansion = 0  # the pattern's total, once run() is done

    # -- helpers --------------------------------------------------------------------------

    def emit(self, text: str, origin: int) -> None:
        self.pieces.append((text, origin))

    def error(self, message: str, offset: int) -> RegexError:
        return RegexError(message, offset)

    def skip(self, i: int) -> int:
        """Skip whitespace and comments in verbose mode."""
        p = self.p
        while self.verbose and i < self.n and (p[i] in " \t\n\r\f\v" or p[i] == "#"):
            if p[i] == "#":
                nl = p.find("\n", i)
                i = self.n if nl < 0 else nl + 1
            else:
                i += 1
        return i

    def start_atom(self, captures: bool = False) -> None:
        self.atom = len(self.pieces)
        self.atom_captures = captures
        self.atom_weight = 0

    def push_group(self) -> None:
        self.stack.append((set(self.flags), len(self.pieces), self.captures))
        self.weights.append(0)

    # -- main loop ------------------------------------------------------------------------

    def run(self) -> tuple[str, bool, list[int]]:
        p, n = self.p, self.n
        i = 0
        # 1. Leading flag groups: (?u) and (?x) are decided here, for the whole pattern.
        while True:
            group = _parse_flag_group(p, i)
            if group is None or group[2]:
                break
            flags, after, _ = group
            negate = False
            for c in flags:
                if c == "-":
                    negate = True
                elif c == "u":
                    self.utf8 = not negate
                elif c == "x":
                    self.verbose = not negate
            self.set_flags(flags.replace("u", "").replace("x", ""), i)
            i = after
        # 2. The body.
        while True:
            i = self.skip(i)
            if i >= n:
                break
            i = self.step(i)
        out: list[str] = []
        where: list[int] = []
        for text, origin in self.pieces:
            out.append(text)
            where.extend([origin] * len(text))
        self.expansion = sum(self.weights)
        return "".join(out), self.utf8, where

    def set_flags(self, flags: str, origin: int) -> None:
        """Apply flags ``i m s U R`` (``u``/``x`` already handled) and emit them."""
        negate = False
        kept = []
        for c in flags:
            if c == "-":
                negate = True
                kept.append(c)
                continue
            if negate:
                self.flags.discard(c)
            else:
                self.flags.add(c)
            if c != "R":
                kept.append(c)
        rest = "".join(kept).rstrip("-")
        if rest:
            self.emit(f"(?{rest})", origin)

    def step(self, i: int) -> int:
        p = self.p
        c = p[i]
        if c == "\\":
            return self.escape(i)
        if c == "[":
            self.start_atom()
            end, text, members = self.parse_class(i)
            if "u" in self.flags and not self.utf8 and (
                members is None or max(members, default=0) > 0x7F
            ):
                raise self.unicode_scope_error(i, "a class that may match non-ASCII")
            self.emit(text, i)
            self.prev_word = _word_status(members)
            return end
        if c == "(":
            return self.open_group(i)
        if c == ")":
            self.emit(")", i)
            if not self.stack:
                return i + 1  # RE2 reports the unopened group
            self.flags, start, caps = self.stack.pop()
            inner = self.weights.pop()
            self.weights[-1] += inner  # the group once; a count after it multiplies
            self.atom = start
            self.atom_captures = self.captures > caps
            self.atom_weight = inner
            self.prev_word = None
            return i + 1
        if c == "|":
            self.emit("|", i)
            self.atom = None
            self.prev_word = None
            return i + 1
        if c in "*+?{":
            return self.repetition(i)
        if c in "^$":
            if "m" in self.flags and "R" in self.flags:
                raise self.error(
                    f"{c} in multi-line CRLF mode (?mR) is not supported (RE2 has no CRLF "
                    "mode); drop the R flag or match \\r explicitly",
                    i,
                )
            self.start_atom()
            self.emit(c, i)
            self.prev_word = False if c == "^" else None
            return i + 1
        if c == ".":
            self.start_atom()
            self.prev_word = None
            self.emit(self.dot(), i)
            return i + 1
        # A literal character.
        self.start_atom()
        if 0xDC80 <= ord(c) <= 0xDCFF and not self.utf8:
            # A raw byte passed as str.decode("utf-8", "surrogateescape") stands for itself.
            b = ord(c) - 0xDC00
            self.emit(f"\\x{b:02x}", i)
            self.prev_word = b in _WORD
            return i + 1
        if ord(c) > 0x7F and not self.utf8:
            if "u" in self.flags and "i" in self.flags:
                raise self.unicode_scope_error(i, "a case-insensitive non-ASCII character")
            # Rust (?-u) reads a literal char as its UTF-8 bytes, repeated as a unit.
            data = c.encode("utf-8", "surrogatepass")
            self.emit("(?:" + "".join(f"\\x{b:02x}" for b in data) + ")", i)
            self.prev_word = False
            return i + 1
        if c in "kKsS" and "u" in self.flags and "i" in self.flags and not self.utf8:
            raise self.unicode_scope_error(i, f"a case-insensitive {c} (it folds to non-ASCII)")
        self.emit(c, i)
        self.prev_word = None if ord(c) > 0x7F else ord(c) in _WORD
        return i + 1

    def dot(self) -> str:
        newline = "s" not in self.flags
        crlf = newline and "R" in self.flags
        if "u" in self.flags and not self.utf8:
            ascii_ = _ALL - frozenset(range(0x80, 0x100))
            if newline:
                ascii_ -= {10}
            if crlf:
                ascii_ -= {13}
            return "(?:" + _byte_class(ascii_) + "|" + _UTF8_MULTI + ")"
        if crlf:
            return "[^\\n\\r]"
        return "."

    def unicode_scope_error(self, i: int, what: str) -> RegexError:
        return self.error(
            f"{what} is not supported inside a (?u) group that is not at the start of the "
            "pattern (only ASCII literals, non-ASCII literals and . are); start the whole "
            "pattern with (?u) instead",
            i,
        )

    # -- groups and flags -----------------------------------------------------------------

    def open_group(self, i: int) -> int:
        p = self.p
        group = _parse_flag_group(p, i)
        if group is None:
            if p.startswith("(?)", i):  # Rust: an error; RE2 would take it as an empty group
                raise self.error("empty flag group (?)", i)
            capturing = not p.startswith("(?", i) or p.startswith(("(?P<", "(?<"), i)
            if p.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
                capturing = False  # RE2 rejects these below
            self.push_group()
            if capturing:
                self.captures += 1
            self.atom = None
            self.prev_word = None
            if p.startswith("(?:", i):
                self.emit("(?:", i)
                return i + 3
            if p.startswith("(?", i):
                close = p.find(">", i) if p.startswith(("(?P<", "(?<"), i) and capturing else -1
                if close >= 0:
                    self.emit(p[i : close + 1], i)
                    return close + 1
                self.emit("(?", i)
                return i + 2
            self.emit("(", i)
            return i + 1
        flags, after, scoped = group
        if "x" in flags:
            raise self.error("the x flag is supported only at the start of the pattern", i)
        negated_part = flags.partition("-")[2]
        if "u" in flags and "u" not in negated_part and not scoped and not self.utf8:
            raise self.error(
                "the u flag is supported only at the start of the pattern or as a scoped "
                "group (?u:...)",
                i,
            )
        if "u" in flags:
            turn_off = "u" in negated_part
            if self.utf8 and turn_off:
                raise self.error(
                    "(?-u) inside a Unicode-mode pattern is not supported (RE2 cannot switch "
                    "to byte mode inside one pattern)",
                    i,
                )
        self.atom = None
        if scoped:
            self.push_group()
            self.prev_word = None
        if "u" in flags and not self.utf8:
            if "u" in negated_part:
                self.flags.discard("u")
            else:
                self.flags.add("u")
        rest = flags.replace("u", "")
        if rest.endswith("-"):
            rest = rest[:-1]
        if scoped:
            self.emit("(?:", i)
            if rest:
                self.set_flags(rest, i)
        elif rest:
            self.set_flags(rest, i)
        return after

    # -- repetition -----------------------------------------------------------------------

    def repetition(self, i: int) -> int:
        p, n = self.p, self.n
        if self.atom is None:
            raise self.error("repetition operator missing expression", i)
        c = p[i]
        if c != "{":
            j = i + 1
            lazy = j < n and p[j] == "?"
            self.emit(c + ("?" if lazy else ""), i)
            if c != "+":
                self.prev_word = None
            return j + 1 if lazy else j
        # Counted repetition {m}, {m,}, {m,n} (Rust: anything else is an error).
        j = self.skip(i + 1)
        k = j
        while k < n and p[k].isdigit() and p[k].isascii():
            k += 1
        if k == j:
            if k >= n:
                raise self.error("invalid counted repetition: unclosed {", i)
            raise self.error("invalid counted repetition: expected a decimal after {", i)
        lo = int(p[j:k])
        hi: int | None = lo
        k = self.skip(k)
        if k < n and p[k] == ",":
            k = self.skip(k + 1)
            m = k
            while m < n and p[m].isdigit() and p[m].isascii():
                m += 1
            hi = int(p[k:m]) if m > k else None
            k = self.skip(m)
        if k >= n or p[k] != "}":
            raise self.error("invalid counted repetition: unclosed {", i)
        if hi is not None and lo > hi:
            raise self.error("invalid counted repetition: the minimum exceeds the maximum", i)
        k += 1
        lazy = k < n and p[k] == "?"
        q = "?" if lazy else ""
        if lo == 0:
            self.prev_word = None
        # Copies RE2 makes of the operand: max(lo, hi), or lo + 1 for {lo,} (X{lo}X*);
        # a group's own repetitions are multiplied (they were counted once on ")").
        copies = lo + 1 if hi is None else max(hi, 1)
        unit = max(self.atom_weight, 1)
        self.weights[-1] += unit * copies - self.atom_weight
        self.atom_weight = unit * copies
        if copies > MAX_REPEAT_EXPANSION or self.weights[0] + sum(self.weights[1:]) > (
            MAX_REPEAT_EXPANSION
        ):
            raise self.error(
                f"regex is too large: its counted repetitions expand to more than "
                f"{MAX_REPEAT_EXPANSION} copies (nested counts multiply)",
                i,
            )
        body = f"{{{lo}}}" if hi == lo else f"{{{lo},{'' if hi is None else hi}}}"
        self.emit(body + q, i)
        return k + 1 if lazy else k

    # -- escapes outside classes ----------------------------------------------------------

    def escape(self, i: int) -> int:
        p, n = self.p, self.n
        if i + 1 >= n:
            raise self.error("a regex cannot end with a lone backslash", i)
        e = p[i + 1]
        uscope = "u" in self.flags and not self.utf8
        if e.isdigit():
            raise self.error(
                f"invalid escape \\{e}: backreferences (and octal escapes) are not supported", i
            )
        if e in "QC":
            raise self.error(f"\\{e} is not supported (not Rust regex syntax)", i)
        if e in "pP":
            if uscope:
                raise self.unicode_scope_error(i, f"\\{e}")
            if not self.utf8:
                raise self.error(
                    f"Unicode class \\{e} needs Unicode mode: start the pattern with (?u)", i
                )
            end, _, _, text = self.class_item(i)
            self.start_atom()
            self.emit(text, i)
            self.prev_word = None
            return end
        if e in "<>" or (e == "b" and self.special_boundary(i) is not None):
            return self.word_assertion(i)
        if e in "bB":
            if self.utf8 or uscope:
                raise self.error(
                    f"\\{e} in Unicode mode is not supported: Rust's Unicode word boundary "
                    "cannot be run on RE2 (whose \\b is ASCII-only); drop (?u) or match the "
                    "boundary explicitly",
                    i,
                )
            self.start_atom()
            self.emit(p[i : i + 2], i)  # zero-width: prev_word stays
            return i + 2
        if ord(e) > 0x7F:
            raise self.error(
                "escaping a non-ASCII character is not allowed (Rust regex rejects it)", i
            )
        self.start_atom()
        if e in "dswDSW":
            if uscope:
                raise self.unicode_scope_error(i, f"\\{e}")
            self.prev_word = None
            if self.utf8:
                self.emit(_unicode_perl(e), i)
            elif e in "sS":
                s = _SPACE if e == "s" else _ALL - _SPACE
                self.emit(_byte_class(s), i)
                self.prev_word = False if e == "s" else None
            else:
                self.emit(p[i : i + 2], i)
                self.prev_word = {"d": True, "w": True, "W": False}.get(e)
            return i + 2
        if e in "xuU":
            if uscope:
                raise self.unicode_scope_error(i, f"\\{e}")
            j, text, value = self.hex_escape(i)
            self.emit(text, i)
            self.prev_word = value in _WORD if value < 0x80 or not self.utf8 else None
            return j
        if self.verbose and e in " #":
            self.emit("\\x20" if e == " " else "\\#", i)
            self.prev_word = False
            return i + 2
        if e in _SIMPLE_ESCAPES:
            self.prev_word = False
        elif e.isalnum():
            self.prev_word = None  # \A \z (zero-width) or an error from RE2
            if e in "Az":
                self.prev_word = False
        else:
            self.prev_word = e == "_"
        self.emit(p[i : i + 2], i)
        return i + 2

    def hex_escape(self, i: int) -> tuple[int, str, int]:
        """``\\xHH``, ``\\x{…}``, ``\\uXXXX``, ``\\u{…}``, ``\\UXXXXXXXX``, ``\\U{…}``:
        (end, RE2 text, value)."""
        p = self.p
        kind = p[i + 1]
        j = i + 2
        if j < self.n and p[j] == "{":
            end = p.find("}", j)
            digits = p[j + 1 : end] if end >= 0 else ""
            if end < 0 or not digits or not set(digits) <= _HEX or len(digits) > 8:
                raise self.error(f"invalid escape \\{kind}{{…}}", i)
            value = int(digits, 16)
            end += 1
        else:
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = p[j : j + width]
            if len(digits) != width or not set(digits) <= _HEX:
                raise self.error(f"invalid escape \\{kind}: expected {width} hex digits", i)
            value = int(digits, 16)
            end = j + width
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise self.error(f"invalid escape \\{kind}: not a Unicode scalar value", i)
        return end, f"\\x{{{value:x}}}", value

    # -- word-boundary assertions \< \> \b{start} \b{end} \b{start-half} \b{end-half} ------

    def special_boundary(self, i: int) -> tuple[str, int] | None:
        """At ``\\b``: ``(name, end)`` for ``\\b{name}`` (Rust reads ``\\b{`` + letter or
        ``-`` as a special boundary; anything else is a repetition of ``\\b``)."""
        p = self.p
        j = i + 2
        if j >= self.n or p[j] != "{":
            return None
        k = self.skip(j + 1)
        if k >= self.n or not (p[k].isascii() and (p[k].isalpha() or p[k] == "-")):
            return None
        m = k
        name = []
        while m < self.n and p[m].isascii() and (p[m].isalpha() or p[m] == "-"):
            name.append(p[m])
            m = self.skip(m + 1)
        if m >= self.n or p[m] != "}":
            raise self.error("unclosed special word boundary \\b{...", i)
        word = "".join(name)
        if word not in ("start", "end", "start-half", "end-half"):
            raise self.error(f"unrecognized special word boundary \\b{{{word}}}", i)
        return word, m + 1

    def word_assertion(self, i: int) -> int:
        """Rust's one-sided word boundaries. RE2 has only \\b/\\B, so they are rewritten
        when the byte on one side is known from the pattern (a literal, a class, \\w …
        right next to them, or ^/$); otherwise they are rejected."""
        p = self.p
        e = p[i + 1]
        if e == "b":
            special = self.special_boundary(i)
            assert special is not None
            kind, end = special
        else:
            kind, end = ("start" if e == "<" else "end"), i + 2
        name = p[i:end]
        if self.utf8 or "u" in self.flags:
            raise self.error(
                f"{name} in Unicode mode is not supported: Rust's Unicode word boundary "
                "cannot be run on RE2 (whose \\b is ASCII-only)",
                i,
            )
        left = self.prev_word  # is the byte before surely a word byte?
        right = self.peek_word(end)  # is the byte after surely a word byte?
        never = "[^\\x00-\\xff]"
        text: str | None = None
        # start = !L & R; end = L & !R; start-half = !L; end-half = !R.
        if kind == "start":
            if left is True or right is False:
                text = never
            elif left is False or right is True:
                text = "\\b"
        elif kind == "end":
            if left is False or right is True:
                text = never
            elif left is True or right is False:
                text = "\\b"
        elif kind == "start-half":
            if left is not None:
                text = "" if left is False else never
            elif right is not None:
                text = "\\b" if right else "\\B"
        else:  # end-half
            if right is not None:
                text = "" if right is False else never
            elif left is not None:
                text = "\\b" if left else "\\B"
        if text is None:
            raise self.error(
                f"{name} is supported only right after or right before something that "
                "surely matches a word or a non-word byte (a literal, a class, \\w, ^, $ "
                "…): RE2 has no look-around to check the other side",
                i,
            )
        self.start_atom()
        self.emit(f"(?:{text})", i)
        return end

    def peek_word(self, i: int) -> bool | None:
        """Whether the next atom at ``i`` surely starts with a word byte (True), surely
        with a non-word byte or is at the end of the text (False), or unknown (None)."""
        p, n = self.p, self.n
        i = self.skip(i)
        if i >= n:
            return None
        c = p[i]
        members: frozenset[int] | None = None
        end = i + 1
        try:
            if c == "$":
                return False
            if c == "[":
                end, _, members = self.parse_class(i)
            elif c == "\\" and i + 1 < n:
                e = p[i + 1]
                end = i + 2
                if e == "z":
                    return False
                if e in "dsw":
                    members = _PERL_BYTES[e]
                elif e in "DSW":
                    members = _ALL - _PERL_BYTES[e.lower()]
                elif e == "x":
                    end, _, value = self.hex_escape(i)
                    members = frozenset([value]) if value < 0x100 else None
                elif e in _SIMPLE_ESCAPES:
                    members = frozenset([_SIMPLE_ESCAPES[e]])
                elif e.isascii() and not e.isalnum() and e not in "<>":
                    members = frozenset([ord(e)])
            elif c not in _RUST_META or c in "&-~":
                members = frozenset([c.encode("utf-8", "surrogateescape")[0]])
        except (RegexError, UnicodeEncodeError):
            return None
        if members is None:
            return None
        j = self.skip(end)
        if j < n and (p[j] in "?*" or (p[j] == "{" and not p[self.skip(j + 1) : j + 8].lstrip()
                                               .startswith(tuple("123456789")))):
            return None  # may repeat zero times
        return _word_status(members)

    # -- classes --------------------------------------------------------------------------

    def parse_class(self, i: int) -> tuple[int, str, frozenset[int] | None]:
        """Parse the bracketed class at ``i``. Byte mode: evaluate it (nested classes, set
        operations, ``(?i)``, negation) to a byte set and return an explicit RE2 class.
        Unicode mode: translate item by item (no nesting or set operations).

        Nested classes are handled with an explicit stack, not recursion: a pattern of a
        thousand ``[`` must be an answer, not a ``RecursionError``."""
        p, n = self.p, self.n
        fold = "i" in self.flags
        stack: list[_ClassFrame] = []
        frame = _ClassFrame(i)
        i = frame.open(p, n)
        while True:
            i = self.skip(i)
            if i >= n:
                raise self.error("invalid regex: missing ]: unclosed character class", frame.start)
            c = p[i]
            if c == "]" and not frame.first:
                i += 1
                union = frame.close(fold)
                if stack:  # a nested class: its set joins the enclosing one
                    frame = stack.pop()
                    frame.union |= union
                    continue
                break
            if c == "]":  # a leading ] is literal
                frame.union |= {0x5D}
                frame.items.append("\\]")
                i += 1
                frame.first = False
                continue
            frame.first = False
            if c == "[":
                ascii_class = _ascii_class_at(p, i)
                if ascii_class is not None:
                    name, neg, end = ascii_class
                    members = _fold(_ASCII_CLASSES[name]) if fold else _ASCII_CLASSES[name]
                    frame.union |= _ALL - members if neg else members
                    frame.items.append(p[i:end])
                    i = end
                    continue
                if self.utf8:
                    raise self.error(
                        "nested character classes are not supported in Unicode mode "
                        "(escape the bracket as \\[)",
                        i,
                    )
                stack.append(frame)
                frame = _ClassFrame(i)
                i = frame.open(p, n)
                continue
            if c in "&-~" and p.startswith(c * 2, i):
                if self.utf8:
                    raise self.error(
                        f"class set operation {c * 2} is not supported in Unicode mode "
                        f"(escape it as \\{c}\\{c})",
                        i,
                    )
                union = _fold(frame.union) if fold else frame.union
                frame.lhs = union if frame.lhs is None else _set_op(frame.op, frame.lhs, union)
                frame.op = c
                frame.union = frozenset()
                i += 2
                continue
            i, members, text = self.class_range(i, frame.start)
            frame.union |= members
            frame.items.append(text)
        if not self.utf8:
            return i, _byte_class(union), union
        items, negated, start = frame.items, frame.negated, frame.start
        if "\\W" in items:
            if len(items) > 1 or negated:
                raise self.error(
                    "\\W inside a class with other items is not supported in Unicode mode",
                    start,
                )
            return i, _unicode_perl("W"), None
        body = "".join(items)
        return i, f"[{'^' if negated else ''}{body}]", None

    def class_range(self, i: int, start: int) -> tuple[int, frozenset[int], str]:
        """One class item or range ``a-z``: (end, byte set, Unicode-mode text)."""
        p, n = self.p, self.n
        end, lo, members, text = self.class_item(i)
        j = self.skip(end)
        if j >= n:
            raise self.error("invalid regex: missing ]: unclosed character class", start)
        if p[j] != "-":
            return end, members, text
        k = self.skip(j + 1)
        if k >= n:
            raise self.error("invalid regex: missing ]: unclosed character class", start)
        if p[k] in "]-":
            return end, members, text  # a literal '-' follows (or a -- operation)
        if lo is None:
            raise self.error(f"invalid class range: {p[i:end]} cannot be a range endpoint", i)
        end2, hi, _, text2 = self.class_item(k)
        if hi is None:
            raise self.error(f"invalid class range: {p[k:end2]} cannot be a range endpoint", k)
        if hi < lo:
            raise self.error(f"invalid class range: {p[i:end2]} (start after end)", i)
        if self.utf8:
            return end2, frozenset(), f"{text}-{text2}"
        return end2, frozenset(range(lo, hi + 1)), ""

    def class_item(self, i: int) -> tuple[int, int | None, frozenset[int], str]:
        """(end, literal value or None for a class, byte set, Unicode-mode text)."""
        p, n = self.p, self.n
        c = p[i]
        if c != "\\":
            if 0xDC80 <= ord(c) <= 0xDCFF and not self.utf8:
                b = ord(c) - 0xDC00  # a surrogate-escaped raw byte
                return i + 1, b, frozenset([b]), ""
            if ord(c) > 0x7F and not self.utf8:
                raise self.error(
                    "a non-ASCII character inside a class needs Unicode mode: start the "
                    "pattern with (?u), or use \\xHH bytes",
                    i,
                )
            if 0xD800 <= ord(c) <= 0xDFFF:
                raise self.error("the pattern is not valid text", i)
            return i + 1, ord(c), frozenset([ord(c)]) if ord(c) < 0x100 else frozenset(), (
                c if c.isalnum() and c.isascii() else f"\\x{{{ord(c):x}}}"
            )
        if i + 1 >= n:
            raise self.error("a regex cannot end with a lone backslash", i)
        e = p[i + 1]
        if e in "dswDSW":
            if self.utf8:
                text = "\\W" if e == "W" else _U_PERL_ITEMS[e]
                return i + 2, None, frozenset(), text
            s = _PERL_BYTES[e.lower()]
            return i + 2, None, s if e.islower() else _ALL - s, ""
        if e in "pP":
            if not self.utf8:
                raise self.error(
                    f"Unicode class \\{e} needs Unicode mode: start the pattern with (?u)", i
                )
            if i + 2 < n and p[i + 2] == "{":
                close = p.find("}", i + 2)
                if close < 0:
                    raise self.error(f"invalid escape \\{e}{{…", i)
                return close + 1, None, frozenset(), p[i : close + 1]
            if i + 2 >= n:
                raise self.error(f"invalid escape \\{e}", i)
            return i + 3, None, frozenset(), p[i : i + 3]
        if e in "xuU":
            end, text, value = self.hex_escape(i)
            if not self.utf8 and value > 0xFF:
                raise self.error(
                    "a non-ASCII character inside a class needs Unicode mode: start the "
                    "pattern with (?u), or use \\xHH bytes",
                    i,
                )
            return end, value, frozenset([value]) if value < 0x100 else frozenset(), text
        if e in _SIMPLE_ESCAPES:
            v = _SIMPLE_ESCAPES[e]
            return i + 2, v, frozenset([v]), f"\\x{{{v:x}}}"
        if e.isascii() and not e.isalnum() and e not in "<>":
            v = ord(e)
            return i + 2, v, frozenset([v]), f"\\x{{{v:x}}}"
        if e.isdigit():
            raise self.error(
                f"invalid escape \\{e}: backreferences (and octal escapes) are not supported", i
            )
        raise self.error(f"invalid escape \\{e} inside a character class", i)


def _word_status(members: frozenset[int] | None) -> bool | None:
    if members is None or not members:
        return None
    if members <= _WORD:
        return True
    if not members & _WORD:
        return False
    return None


def _set_op(op: str, a: frozenset[int], b: frozenset[int]) -> frozenset[int]:
    if op == "&":
        return a & b
    if op == "-":
        return a - b
    return a ^ b


def _ascii_class_at(p: str, i: int) -> tuple[str, bool, int] | None:
    """``[:name:]`` / ``[:^name:]`` at ``i`` with a known name: (name, negated, end)."""
    if not p.startswith("[:", i):
        return None
    j = i + 2
    neg = j < len(p) and p[j] == "^"
    if neg:
        j += 1
    end = p.find(":]", j)
    if end < 0 or p[j:end] not in _ASCII_CLASSES:
        return None
    return p[j:end], neg, end + 2


def _unicode_perl(e: str) -> str:
    """Rust's Unicode ``\\d \\s \\w`` (and negations) as an RE2 class (UTF-8 mode)."""
    if e == "W":
        return f"[^{_U_WORD}]"
    return f"[{_U_PERL_ITEMS[e]}]"


def _translate(pattern: str) -> tuple[str, bool, list[int]]:
    """Translate the Rust-dialect ``pattern`` to RE2 syntax.

    Returns ``(re2 pattern text, utf8 mode, offset map)`` where ``offset map[k]`` is the
    original offset of output character ``k`` (for error positions)."""
    return _Translator(pattern).run()


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

    __slots__ = ("__weakref__", "_capturing", "_finder", "anchor", "expansion", "groups",
                 "literal", "pattern", "program_size", "python", "re2_match", "search",
                 "translated", "utf8")

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
        # RE2 instructions of the programs kept (the budget's unit: compile time, match
        # time in the NFA and memory all grow with it).
        size = capturing.ProgramSize()  # type: ignore[attr-defined]
        if finder is not capturing:
            size += finder.ProgramSize()  # type: ignore[attr-defined]
        self.program_size: int = size
        self.expansion = 0  # copies made by counted repetitions (set by compile_regex)
        # A Python ``re`` pattern (bytes) with the same answers and linear matching, for
        # anchored patterns of a simple shape (``_python_twin``), else None.
        self.python: Any = None
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
            if not (e.isascii() and not e.isalnum() and e.isprintable() and e not in " <>"):
                return None
            out.append(e)
            i += 2
            continue
        if c in _META or (0xD800 <= ord(c) <= 0xDFFF):
            return None
        out.append(c)
        i += 1
    return "".join(out).encode("utf-8"), start, end


def _class_bytes(body: str) -> frozenset[int] | None:
    """The byte set of a simple bracketed class body (ASCII characters, ranges, ``\\d
    \\w \\s`` and their negations, escaped punctuation; a leading ``^`` negates), or
    ``None`` for anything else (nesting, set operations, POSIX classes …)."""
    negated = body.startswith("^")
    if negated:
        body = body[1:]
    if not body:
        return None  # "[]…" / "[^]…": a leading ] is literal in Rust; not handled here
    items: list[int | frozenset[int]] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            e = body[i + 1 : i + 2]
            if e in ("d", "w", "s", "D", "W", "S"):
                base = _PERL_BYTES[e.lower()]
                items.append(base if e.islower() else _ALL - base)
            elif e and e.isascii() and not e.isalnum() and e.isprintable() and e not in " <>":
                items.append(ord(e))
            else:
                return None
            i += 2
            continue
        if c in "[]&~" or not c.isascii() or not c.isprintable():
            return None
        items.append(ord(c))
        i += 1
    out: set[int] = set()
    k = 0
    while k < len(items):
        item = items[k]
        if (isinstance(item, int) and k + 2 < len(items) and items[k + 1] == 0x2D
                and isinstance(items[k + 2], int)):
            hi = items[k + 2]
            assert isinstance(hi, int)
            if hi < item:
                return None
            out.update(range(item, hi + 1))
            k += 3
            continue
        if isinstance(item, int):
            out.add(item)
        else:
            out |= item
        k += 1
    result = frozenset(out)
    return _ALL - result if negated else result


def _re_class(members: frozenset[int]) -> bytes:
    """A ``re`` bytes class of exactly ``members`` (ranges of consecutive bytes)."""
    ordered = sorted(members)
    parts: list[bytes] = []
    k = 0
    while k < len(ordered):
        j = k
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(b"\\x%02x" % ordered[k] if j == k else b"\\x%02x-\\x%02x" % (ordered[k], ordered[j]))
        k = j + 1
    return b"[" + b"".join(parts) + b"]"


def _python_twin(pattern: str) -> Any:
    """A Python ``re`` pattern (bytes) answering ``search`` exactly as RE2 does, for
    patterns where backtracking is provably linear — else ``None``.

    The class: ``^``, then items (an ASCII literal, escaped punctuation, ``.``, ``\\d
    \\w \\s`` and negations, a simple class), each with an optional greedy quantifier,
    then an optional ``$``; no groups, alternation or flags. Every item with a variable
    count must match no byte that can come right after it (the bytes of the following
    items up to the first mandatory one): then giving a byte back can never let the rest
    match, each backtracking step fails at once, and with ``^`` there is one start
    position, so a match costs O(length × items). ``re``'s ``match`` costs ~150 ns where
    the ``re2`` binding costs ~500 ns per call. ``$`` becomes ``\\Z`` (Python's ``$``
    also matches before a final newline); every item is an explicit byte class."""
    if not pattern.startswith("^") or "|" in pattern or "(" in pattern:
        return None
    body = pattern[1:]
    end = body.endswith("$") and not body.endswith("\\$")
    if end:
        body = body[:-1]
    items: list[tuple[frozenset[int], int, int | None]] = []  # (bytes, min, max)
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == "\\":
            e = body[i + 1 : i + 2]
            if e in ("d", "w", "s", "D", "W", "S"):
                base = _PERL_BYTES[e.lower()]
                members = base if e.islower() else _ALL - base
            elif e and e.isascii() and not e.isalnum() and e.isprintable() and e not in " <>":
                members = frozenset([ord(e)])
            else:
                return None
            i += 2
        elif c == "[":
            close = body.find("]", i + 2 if body.startswith("[^", i) else i + 1)
            if close < 0:
                return None
            got = _class_bytes(body[i + 1 : close])
            if got is None or not got:
                return None
            members = got
            i = close + 1
        elif c == ".":
            members = _ALL - {0x0A}
            i += 1
        elif c in _META or c in "$^" or not c.isascii() or not c.isprintable():
            return None
        else:
            members = frozenset([ord(c)])
            i += 1
        lo, hi = 1, 1
        q = body[i : i + 1]
        if q in ("?", "*", "+"):
            lo, hi = {"?": (0, 1), "*": (0, None), "+": (1, None)}[q]
            i += 1
        elif q == "{":
            close = body.find("}", i)
            if close < 0:
                return None
            spec = body[i + 1 : close]
            lo_s, comma, hi_s = spec.partition(",")
            if not lo_s.isdigit() or not lo_s.isascii() or (hi_s and not (hi_s.isdigit() and hi_s.isascii())):
                return None
            lo = int(lo_s)
            hi = (int(hi_s) if hi_s else None) if comma else lo
            if (hi is not None and hi < lo) or lo > 1000 or (hi or 0) > 1000:
                return None
            i = close + 1
        if body[i : i + 1] in ("?", "+", "*", "{"):
            return None  # lazy or possessive-looking suffixes: not in the class
        items.append((members, lo, hi))
    for k, (members, lo, hi) in enumerate(items):
        if hi == lo:
            continue
        follow: set[int] = set()
        for nxt, nlo, _nhi in items[k + 1 :]:
            follow |= nxt
            if nlo > 0:
                break
        if members & follow:
            return None
    out = [b"^"]
    for members, lo, hi in items:
        cls = _re_class(members)
        if (lo, hi) != (1, 1):
            cls += b"{%d,%s}" % (lo, b"" if hi is None else b"%d" % hi)
        out.append(cls)
    if end:
        out.append(b"\\Z")
    return _re.compile(b"".join(out))


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


def pattern_text(pattern: bytes) -> str:
    """The pattern text of a regex written as a string literal (``regex_replace``'s
    argument, a hand-built ``matches`` right-hand side): its UTF-8 text, with any other
    byte kept as a surrogate escape, which the translator reads as that byte."""
    return pattern.decode("utf-8", "surrogateescape")


class RegexBudget:
    """The regex budget of one rule: RE2 programs totalling at most ``MAX_RULE_PROGRAM``
    instructions and ``MAX_RULE_REPEAT_EXPANSION`` repetition copies (the number of
    regexes is the scheme's ``limits.max_regexes``, 64 by default). The checker charges every
    ``matches`` pattern as it compiles it, so a rule over budget is refused after at
    most one regex past the limit (each regex's compile is itself bounded by
    ``MAX_MEM`` and ``MAX_REPEAT_EXPANSION``)."""

    __slots__ = ("expansion", "size")

    def __init__(self) -> None:
        self.size = 0
        self.expansion = 0

    def charge(self, rx: CompiledRegex) -> None:
        """Count ``rx``; raises ``RegexError`` when the rule goes over budget."""
        self.size += rx.program_size
        self.expansion += rx.expansion
        if self.expansion > MAX_RULE_REPEAT_EXPANSION:
            raise RegexError(
                f"the rule's regexes are too large: their counted repetitions expand to "
                f"{self.expansion:,} copies (at most {MAX_RULE_REPEAT_EXPANSION:,} per rule)"
            )
        if self.size > MAX_RULE_PROGRAM:
            raise RegexError(
                f"the rule's regexes are too large: {self.size:,} RE2 instructions (at most "
                f"{MAX_RULE_PROGRAM:,} per rule)"
            )


# The cache of compiled regexes. Entries in use (held by a filter) are found through a
# weak dictionary, so a pattern repeated across a ruleset is compiled once without the
# cache keeping anything alive; a small LRU of strong references keeps recently used
# patterns for recompiles, bounded by an estimate of their memory (RE2's program plus
# the DFA cache it may grow up to MAX_MEM), not by their count.
CACHE_MEMORY: Final = 32 << 20
_lock = threading.Lock()
_alive: weakref.WeakValueDictionary[str, CompiledRegex] = weakref.WeakValueDictionary()
_recent: OrderedDict[str, tuple[CompiledRegex, int]] = OrderedDict()
_recent_cost = 0


def _memory_estimate(rx: CompiledRegex) -> int:
    """Bytes an RE2 object may hold: 16 per instruction, and a DFA cache that grows with
    use up to most of MAX_MEM (estimated from the program size)."""
    return 4096 + 16 * rx.program_size + min(MAX_MEM, 4096 * rx.program_size)


def _remember(pattern: str, rx: CompiledRegex) -> None:
    global _recent_cost
    with _lock:
        _alive[pattern] = rx
        old = _recent.pop(pattern, None)
        if old is not None:
            _recent_cost -= old[1]
        cost = _memory_estimate(rx)
        _recent[pattern] = (rx, cost)
        _recent_cost += cost
        while _recent_cost > CACHE_MEMORY and len(_recent) > 1:
            _, (_, freed) = _recent.popitem(last=False)
            _recent_cost -= freed


def cache_clear() -> None:
    """Forget every cached regex (tests)."""
    global _recent_cost
    with _lock:
        _alive.clear()
        _recent.clear()
        _recent_cost = 0


def cache_memory() -> int:
    """The estimated memory held by the cache's strong references (bytes)."""
    return _recent_cost


def compile_regex(pattern: str) -> CompiledRegex:
    """Compile a pattern of the Rules language; raises ``RegexError``.

    Results are cached (rulesets repeat patterns; ``regex_replace`` checks and binds the
    same pattern); a ``CompiledRegex`` is never mutated after this returns."""
    with _lock:
        rx = _alive.get(pattern)
        if rx is not None and pattern in _recent:
            _recent.move_to_end(pattern)
            return rx
    if rx is None:
        rx = _compile_regex(pattern)
    _remember(pattern, rx)
    return rx


def _compile_regex(pattern: str) -> CompiledRegex:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexError(
            f"regex is too long ({len(pattern)} characters; at most {MAX_PATTERN_LENGTH})", 0
        )
    translator = _Translator(pattern)
    translated, utf8, where = translator.run()
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
    compiled.expansion = translator.expansion
    shape = None if utf8 else _literal_shape(pattern)
    if shape is not None:
        compiled.literal = shape
        compiled.search = _literal_search(*shape)
    elif not utf8:
        twin = _python_twin(pattern)
        if twin is not None:
            compiled.python = twin
            match = twin.match
            compiled.search = lambda data: match(data) is not None
    return compiled
