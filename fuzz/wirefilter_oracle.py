"""Cloudflare's wirefilter parser as a differential oracle for edgerules' front end.

The PyPI package ``octorules-wirefilter`` (a dev dependency; never imported by
``src/``) wraps Cloudflare's real wirefilter parser and type checker. Its field scheme
is a third party's transcription and its function signatures are stubs, so it is trusted
for the grammar, literals, operators, field types and ``[*]``, not for function
arguments. This module owns:

* ``judge(text)``: whether edgerules and wirefilter both accept or both reject ``text``,
  and, when they do not, which documented deviation (``DEVIATIONS``) explains it; an
  unexplained disagreement is a bug on one side;
* the expression generators: ``expressions()`` (hypothesis, from the grammar and the
  field scheme both sides share) and ``case_expressions()`` / ``mutations()`` (the
  expressions of ``tests/cases/*.toml`` and near-misses of them).

Used by ``tests/test_wirefilter_oracle.py`` (a derandomised few thousand, in
``make test``) and ``fuzz/oracle_explore.py`` (the large exploration whose figure is in
docs/conformance.md).

Named lists: wirefilter accepts any ``$name`` on String, Int and IP fields; edgerules
needs the lists. ``judge`` gives edgerules a list of the kind the left-hand side takes
(IP field → ip, ``http.host`` → hostname, ``ip.src.asnum`` → asn, other Strings →
string) for every name the expression uses.
"""

from __future__ import annotations

import random
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import edgerules
from edgerules.errors import ParseError, RuleError
from edgerules.lang import ast
from edgerules.lang.parser import parse_expression
from edgerules.lang.scheme import default_scheme
from edgerules.lang.types import BOOL, BYTES, INT, IP, Array, Map, Type

CASES = Path(__file__).resolve().parents[1] / "tests" / "cases"


def _wirefilter() -> Any:
    import octorules_wirefilter

    return octorules_wirefilter


# --- the two sides ------------------------------------------------------------------------


def oracle_error(text: str) -> str | None:
    """wirefilter's error for ``text`` (None: accepted)."""
    return _wirefilter().parse_expression(text).get("error")


@dataclass(frozen=True)
class _List:
    """A stand-in named list: the checker reads only ``kind`` (and the compiler
    ``contains``); real lists also validate names and items, which is not under test."""

    kind: str

    def contains(self, value: object) -> bool:
        return False


def _lists_for(text: str) -> dict[str, Any] | None:
    """A named list of the right kind for each ``$name`` of ``text`` (see the module doc)."""
    try:
        tree = parse_expression(text)
    except ParseError:
        return None
    scheme = default_scheme()
    lists: dict[str, Any] = {}
    for node in _walk(tree):
        if isinstance(node, ast.Comparison) and isinstance(node.rhs, ast.ListRef):
            name = node.rhs.name
            if name in lists:
                continue
            lhs = node.lhs
            fld = scheme.get(lhs.name) if isinstance(lhs, ast.FieldRef) else None
            if fld is not None and fld.type == IP:
                kind = "ip"
            elif fld is not None and fld.name == "http.host":
                kind = "hostname"
            elif fld is not None and fld.name == "ip.src.asnum":
                kind = "asn"
            else:
                kind = "string"
            lists[name] = _List(kind)
    return lists


def our_error(text: str) -> str | None:
    """edgerules' error for ``text`` (None: accepted), against Cloudflare's scheme."""
    try:
        edgerules.compile(text, lists=_lists_for(text))
    except RuleError as exc:
        return str(exc)
    return None


def _walk(node: object) -> Iterator[object]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, ast.Logical):
            stack.extend(n.items)
        elif isinstance(n, ast.Not):
            stack.append(n.operand)
        elif isinstance(n, ast.Quantifier):
            stack.append(n.arg)
        elif isinstance(n, ast.BoolValue):
            stack.append(n.value)
        elif isinstance(n, ast.Comparison):
            stack.append(n.lhs)
            if isinstance(n.rhs, ast.FieldRef | ast.Index | ast.FunctionCall):
                stack.append(n.rhs)
        elif isinstance(n, ast.Index):
            stack.append(n.base)
        elif isinstance(n, ast.FunctionCall):
            stack.extend(n.args)


# --- deviations -------------------------------------------------------------------------------
#
# Two kinds. A *spelling* deviation is text one side reads and the other does not, with a
# rewrite to the other side's spelling (`side`: who accepts the original); a disagreement
# is explained when applying every applicable rewrite of the accepting side makes the other
# side accept too (several may combine in one expression). A *refusal* deviation is a rule
# one side enforces on purpose, recognised by its message.


@dataclass
class Verdict:
    text: str
    ours: str | None  # edgerules' error (None: accepted)
    theirs: str | None  # wirefilter's error (None: accepted)
    deviation: str | None = None  # the deviation(s) explaining a disagreement, "+"-joined

    @property
    def agree(self) -> bool:
        return (self.ours is None) == (self.theirs is None)

    @property
    def explained(self) -> bool:
        return self.agree or self.deviation is not None

    def report(self, width: int = 400) -> str:
        def cut(x: str) -> str:
            return x if len(x) <= width else x[:width] + f"… ({len(x)} characters)"

        return (
            f"edgerules {'accepts' if self.ours is None else 'rejects'}, wirefilter "
            f"{'accepts' if self.theirs is None else 'rejects'}:\n  text: {cut(repr(self.text))}\n"
            f"  edgerules: {cut(self.ours or 'accepted')}\n"
            f"  wirefilter: {cut(self.theirs or 'accepted')}"
        )


@dataclass(frozen=True)
class Deviation:
    id: str
    summary: str
    reason: str
    # spelling deviations: who accepts the original text, and the rewrite (None: no change)
    side: str = ""
    rewrite: Callable[[str], str | None] | None = None
    # refusal deviations: recognised from the verdict
    refuses: Callable[[Verdict], bool] | None = None


def _rewrite_spans(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _our_tree(text: str) -> ast.Expr | None:
    try:
        return parse_expression(text)
    except ParseError:
        return None


def _all_literals(tree: object) -> Iterator[ast.Literal]:
    for node in _walk(tree):
        if isinstance(node, ast.Literal):
            yield node
        elif isinstance(node, ast.Comparison):
            rhs = node.rhs
            if isinstance(rhs, ast.Literal):
                yield rhs
            elif isinstance(rhs, ast.SetLiteral):
                for item in rhs.items:
                    if isinstance(item, ast.Literal):
                        yield item


def _tabs_as_spaces(text: str) -> str | None:
    return text.replace("\t", " ") if "\t" in text else None


def _hex_bytes_with_colons(text: str) -> str | None:
    """``text`` with every hex byte string literal written with ``:`` separators."""
    tree = _our_tree(text)
    if tree is None:
        return None
    edits = []
    for node in _all_literals(tree):
        if node.kind == "string" and not node.raw:
            written = text[node.span.start : node.span.end]
            if re.fullmatch(r"[0-9A-Fa-f]{2}([-.][0-9A-Fa-f]{2})+", written):
                edits.append((node.span.start, node.span.end, re.sub(r"[-.]", ":", written)))
    return _rewrite_spans(text, edits) if edits else None


def _parenthesized_arguments(text: str) -> str | None:
    """``text`` with each argument of a call or ``any``/``all`` that is a condition (a
    comparison or a logical expression) wrapped in parentheses."""
    tree = _our_tree(text)
    if tree is None:
        return None
    edits = []
    for node in _walk(tree):
        args: tuple[object, ...] = ()
        if isinstance(node, ast.FunctionCall):
            args = node.args
        elif isinstance(node, ast.Quantifier):
            args = (node.arg,)
        for arg in args:
            if isinstance(arg, ast.Logical | ast.Comparison):
                edits.append((arg.span.start, arg.span.start, "("))
                edits.append((arg.span.end, arg.span.end, ")"))
    return _rewrite_spans(text, edits) if edits else None


_KEYWORD = r"(?:not|and|xor|or|eq|ne|lt|le|gt|ge|contains|matches|in|wildcard|bitwise_and)"
# a keyword glued to what follows it (`notssl`, `eq1`, `containsr"a"`), where a word starts
_GLUED = re.compile(rf"(?<![\w.$])({_KEYWORD})(?=[\w\"$(!])")
_WORD = re.compile(r"[\w.]+")


@cache
def _known_names() -> frozenset[str]:
    scheme = default_scheme()
    return frozenset([*(f.name for f in scheme.fields), *scheme.aliases, *scheme.functions])


# `443or ssl`, `0xffxor`, `61:62or`, `10.0.0.1xorssl`: wirefilter's literal (integer, hex
# integer, byte string, IP address) ends where its characters end, then a keyword follows
_GLUED_AFTER_INT = re.compile(
    r"((?<![\w.:])(?:0x[0-9A-Fa-f]+?|-?[0-9]+|[0-9:][0-9A-Fa-f:.-]*?))"
    r"(and|xor|or)(?=[\s(!A-Za-z_])"
)


def _unglued(text: str) -> str | None:
    """``text`` with a space after every keyword glued to the word after it, where the
    whole word is no field or function name (``len``, ``lower``, ``in`` stay), and
    between an integer and a logical keyword glued to it (``443or``)."""
    known = _known_names()
    fixed = _GLUED_AFTER_INT.sub(r"\1 \2", text)
    for _ in range(len(text)):  # `notnotssl`: one keyword per pass
        m = next(
            (
                m
                for m in _GLUED.finditer(fixed)
                if (w := _WORD.match(fixed, m.start())) is None or w.group() not in known
            ),
            None,
        )
        if m is None:
            break
        fixed = fixed[: m.end()] + " " + fixed[m.end() :]
    return fixed if fixed != text else None


_ARGUMENT_MESSAGE = re.compile(r"argument|arguments")
_OUR_CALL_MESSAGE = re.compile(r"^error: [a-z0-9_]+\(\)")
_THIRD_PARTY_CALL = re.compile(r"(?<![\w.])(contains|wildcard|ip_in_range|hmac|sha512)\s*\(")
# edgerules' regex rejections that are documented deviations from Rust's regex crate
# (docs/functions.md "Regular expressions": what RE2 cannot run, refused not approximated).
_REGEX_DEVIATIONS = (
    "in Unicode mode is not supported",
    "supported only at the start of the pattern",
    "CRLF mode",
    "one-sided word boundar",
    "inside (?u:",
    "is not supported in Unicode mode",
    "(?x) is supported",
    "invalid character class range: \\p",
    "invalid character class range: \\P",
    "bad repetition operator",  # Rust reads a** / a+* as nested repetitions
    "invalid counted repetition",  # Rust allows spaces inside {m,n}
)
# The cidr crate's lenient IPv4 forms inside { }: fewer than four octets (`5`, `1.2.3`,
# `100.0.0/8`) or a zero-padded octet (`203.00.113.0/24`).
_LENIENT_IPV4 = re.compile(r"[0-9]+(?:\.[0-9]+){0,3}(?:/[0-9]+)?")


def _lenient_ipv4_in_set(text: str) -> bool:
    for body in re.findall(r"\{([^{}]*)\}", text):
        for item in body.split():
            if _LENIENT_IPV4.fullmatch(item):
                octets = item.split("/")[0].split(".")
                if len(octets) < 4 or any(len(o) > 1 and o.startswith("0") for o in octets):
                    return True
    return False


def _they_accept(v: Verdict) -> bool:
    return v.theirs is None and v.ours is not None


def _we_accept(v: Verdict) -> bool:
    return v.ours is None and v.theirs is not None


def _function_arguments(v: Verdict) -> bool:
    if _they_accept(v):
        ours = v.ours or ""
        # an argument rule of a function, or regex_replace/wildcard_replace once per rule
        return bool(_OUR_CALL_MESSAGE.match(ours)) or "at most once per expression" in ours
    return _we_accept(v) and bool(_ARGUMENT_MESSAGE.search(v.theirs or ""))


# Tags in the reasons: [D] documented by Cloudflare, [E] behaviour of the open-source
# wirefilter engine, [U] left unspecified by Cloudflare (the reason states our choice).
DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "tab-whitespace",
        "TAB is whitespace for edgerules; wirefilter rejects it",
        "A [U] choice (docs/engine-front.md decision 1): rules pasted from editors often "
        "hold a TAB and it can never change what an expression means.",
        side="ours",
        rewrite=_tabs_as_spaces,
    ),
    Deviation(
        "byte-string-separators",
        "hex byte strings written with - or . (61-62-63, 61.62.63)",
        "wirefilter's lexer at commit af1a1e9 accepts the three "
        "separators (one per literal); the oracle's newer wirefilter revision accepts only "
        "`:`. edgerules keeps the three forms (existing rules use them).",
        side="ours",
        rewrite=_hex_bytes_with_colons,
    ),
    Deviation(
        "logic-in-arguments",
        "and/or/xor right after a comparison inside any(…), all(…) or a function call",
        "wirefilter's argument lexer stops after the first comparison unless the argument "
        "starts with ( or not (`any(a eq 1 or b eq 2)` → expected `)`), although "
        "`any((a eq 1) or b eq 2)` parses; edgerules reads the whole argument, as its "
        "grammar (grammar/rules.lark: an argument is any expression) and element-wise logic "
        "(docs/engine-back.md, `[*]`) describe.",
        side="ours",
        rewrite=_parenthesized_arguments,
    ),
    Deviation(
        "glued-keywords",
        'an English keyword glued to the next word (notssl, ssl andssl, x eq1, x containsr"a")',
        "wirefilter matches keywords as prefixes (so a field whose name starts with "
        "`not` would be mis-lexed); edgerules reads keywords as whole words, so a glued one "
        "is an error naming the unknown word (docs/engine-front.md), never another meaning.",
        side="theirs",
        rewrite=_unglued,
    ),
    Deviation(
        "true-false-constant",
        "the whole expression `true` (or `false`)",
        "Cloudflare documents `true` as the rule that matches every request [D]; it is not "
        "part of the open-source grammar.",
        refuses=lambda v: _we_accept(v) and v.text.strip(" \t\r\n") in ("true", "false"),
    ),
    Deviation(
        "empty-expression",
        "empty or whitespace-only text",
        "octorules-wirefilter answers an empty text with an empty result; an empty rule is "
        "a mistake, so edgerules reports it (docs/engine-front.md decision 12).",
        refuses=lambda v: _they_accept(v) and not v.text.strip(" \t\r\n"),
    ),
    Deviation(
        "ipv4-short-networks",
        "short or zero-padded IPv4 networks inside { } (5, 1.2.3, 100.0.0/8, 203.00.113.0/24)",
        "wirefilter's cidr crate reads `5` as 5.0.0.0/8 and `1.2.3` as 1.2.3.0/24 in a set "
        "and accepts zero-padded octets there (not after eq); Cloudflare documents addresses, "
        "CIDRs and ranges only [D], `{10.0.0.1 5}` is far more often a mistake than a /8, "
        "and a leading zero reads as octal elsewhere, so edgerules refuses them.",
        refuses=lambda v: _they_accept(v) and _lenient_ipv4_in_set(v.text),
    ),
    Deviation(
        "ip-ordering",
        "lt/le/gt/ge on IP addresses",
        "Cloudflare's documentation marks ordering on IPs unsupported [D]; wirefilter "
        "accepts it [E]; edgerules keeps rejecting it.",
        refuses=lambda v: _they_accept(v) and "is not allowed on IP addresses" in (v.ours or ""),
    ),
    Deviation(
        "function-arguments",
        "function argument rules (types, literal/field kinds, counts, ranges, once per expression)",
        "The oracle's function signatures are stubs (its README says so); edgerules "
        "implements Cloudflare's documented argument rules (docs/functions.md).",
        refuses=_function_arguments,
    ),
    Deviation(
        "third-party-functions",
        "contains(), wildcard(), ip_in_range(), hmac(), sha512() as functions",
        "Only in third-party schemes: not Cloudflare functions (its functions reference has "
        "none of them; contains and wildcard are operators).",
        refuses=lambda v: _they_accept(v) and _THIRD_PARTY_CALL.search(v.text) is not None,
    ),
    Deviation(
        "wildcard-star-limit",
        "more than 10 * in a wildcard pattern",
        "A limit octorules-wirefilter sets for itself (its ParserSettings); Cloudflare "
        "publishes none and edgerules' wildcard matching is linear (docs/functions.md).",
        refuses=lambda v: _we_accept(v)
        and "star metacharacters, but the limit is 10" in (v.theirs or ""),
    ),
    Deviation(
        "named-list-kinds",
        "a $list on a field its kind does not fit (an Int list on any Int field, …)",
        "The oracle accepts any list on any String, Int or IP field; Cloudflare's lists "
        "are ip, hostname (http.host), asn (ip.src.asnum) lists [D], and so are edgerules'.",
        refuses=lambda v: _they_accept(v) and "items; it can only be used with" in (v.ours or ""),
    ),
    Deviation(
        "regex-dialect",
        "regex constructs Rust's regex crate has and RE2 cannot run",
        "edgerules matches with RE2 (linear time); the few constructs it cannot translate "
        "exactly are refused, never approximated (docs/functions.md, Regular expressions).",
        refuses=lambda v: _they_accept(v) and any(m in (v.ours or "") for m in _REGEX_DEVIATIONS),
    ),
    Deviation(
        "regex-budget",
        "regexes over edgerules' compile budget (counted repetitions over 1,000 copies, …)",
        "A deliberate bound on compile time and memory (docs/engine-back.md, issue 11): "
        "RE2 compiles counted repetitions by copying them; Rust's regex crate has only its "
        "own, larger size limit.",
        refuses=lambda v: _they_accept(v) and "regex is too large" in (v.ours or ""),
    ),
    Deviation(
        "nesting-counting",
        "nesting limit: edgerules also counts index brackets and any()/all() levels",
        "Each is a level of recursion for the checker and the closures (docs/engine-front.md "
        "decision 7); both sides allow 128.",
        refuses=lambda v: "nested too deeply" in (v.ours or "")
        or "nesting depth" in (v.theirs or ""),
    ),
    Deviation(
        "cloudflare-limits",
        "over 4,096 characters, or over 64 regular expressions in one expression",
        "Cloudflare's documented limits [D] (edgerules' defaults, settable per scheme); the "
        "open-source parser has neither (the oracle caps length at 1 MiB).",
        refuses=lambda v: _they_accept(v)
        and re.search(r"expression is too long|too many regular expressions", v.ours or "")
        is not None,
    ),
)
DEVIATION_IDS = tuple(d.id for d in DEVIATIONS)


def _refusal(v: Verdict) -> str | None:
    for d in DEVIATIONS:
        if d.refuses is not None and d.refuses(v):
            return d.id
    return None


def explain(v: Verdict) -> str | None:
    """The deviation(s) explaining a disagreement ("+"-joined), or None."""
    found = _refusal(v)
    if found is not None:
        return found
    side = "ours" if v.ours is None else "theirs"
    text, used = v.text, []
    for d in DEVIATIONS:
        if d.side == side and d.rewrite is not None:
            fixed = d.rewrite(text)
            if fixed is not None:
                text, used = fixed, [*used, d.id]
    if not used:
        return None
    if side == "ours":
        theirs = oracle_error(text)
        if theirs is None:
            return "+".join(used)
        rest = _refusal(Verdict(text, None, theirs))
        return "+".join([*used, rest]) if rest is not None else None
    again = Verdict(text, our_error(text), None)
    if again.ours is None:
        return "+".join(used)
    rest = _refusal(again)
    return "+".join([*used, rest]) if rest is not None else None


def judge(text: str) -> Verdict:
    """Both sides' answers for ``text``, and the deviation explaining a disagreement."""
    v = Verdict(text, our_error(text), oracle_error(text))
    if not v.agree:
        v.deviation = explain(v)
    return v


# --- the fields both schemes have, by type -------------------------------------------------


_ORACLE_TYPES = {
    "STRING": BYTES,
    "INT": INT,
    "BOOL": BOOL,
    "IP": IP,
    "ARRAY_STRING": Array(BYTES),
    "ARRAY_INT": Array(INT),
    "ARRAY_ARRAY_STRING": Array(Array(BYTES)),
    "MAP_ARRAY_STRING": Map(Array(BYTES)),
    "MAP_ARRAY_INT": Map(Array(INT)),
    "MAP_STRING_INT": Map(INT),
}


@cache
def shared_fields() -> dict[Type, tuple[str, ...]]:
    """Field names by type, for the fields both schemes have with the same type."""
    ours = {f.name: f.type for f in default_scheme().fields}
    by_type: dict[Type, list[str]] = {}
    for f in _wirefilter().get_schema_info()["fields"]:
        t = _ORACLE_TYPES.get(f["type"])
        if t is not None and ours.get(f["name"]) == t:
            by_type.setdefault(t, []).append(f["name"])
    return {t: tuple(sorted(names)) for t, names in by_type.items()}


# --- generators -------------------------------------------------------------------------------

# Whitespace between tokens: mostly one space; sometimes none, several, newlines or a TAB.
_gap = st.sampled_from([" "] * 12 + ["", "  ", "\n", "\r\n", " \n ", "\t"])
_tight = st.sampled_from([""] * 6 + [" ", "\n"])

_CMP_SPELLINGS = {
    "eq": ["eq", "=="], "ne": ["ne", "!="], "lt": ["lt", "<"], "le": ["le", "<="],
    "gt": ["gt", ">"], "ge": ["ge", ">="], "contains": ["contains"],
    "wildcard": ["wildcard"], "strict_wildcard": ["strict wildcard"],
    "matches": ["matches", "~"], "in": ["in"], "bitwise_and": ["&", "bitwise_and"],
}  # fmt: skip
_OPS_FOR = {
    BYTES: ["eq", "ne", "lt", "le", "gt", "ge", "contains", "wildcard", "strict_wildcard", "matches", "in"],
    INT: ["eq", "ne", "lt", "le", "gt", "ge", "in", "bitwise_and"],
    IP: ["eq", "ne", "in"],
}  # fmt: skip

_REGEXES = [
    r"^/api/v\d+\.json$", r"(?i)bot|crawl", r"[a-z]+", r"a{2,3}", r"\w+\s*", r"(?u)\p{Hangul}+",
    r"[[:alpha:]]", r"a|", r"(a)(b)?", r"^$", r"\.", r"[^/]+", r"(?:ab)+", r"[\"]",
    r"a{,3}", r"(?=a)", r"\1", r"(?u)\bx", r"[z-a]", r"(", r"a**", r"x{1001}", r"\Z",
    r"[a-c&&b]", r"(?x) a b # c", r"\<w", r"(?mR)^a$", r"\pL", r"[é]", r"é+",
]  # fmt: skip
_WILDCARDS = ["*.example.com", "a*b*c", "*", "", "a\\*b", "a**", "a\\", "a\\x", "/*/*/*/*/*/*/*/*/*/*/*"]


@st.composite
def string_literals(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["plain", "plain", "escaped", "raw", "hex", "bad"]))
    if kind == "plain":
        return '"' + draw(st.text(alphabet="abc./-_ *XYZé0123", max_size=8)) + '"'
    if kind == "escaped":
        parts = draw(st.lists(st.sampled_from(["a", '\\"', "\\\\", "\\x41", "\\101", "\\377", "é"]), max_size=4))
        return '"' + "".join(parts) + '"'
    if kind == "raw":
        hashes = "#" * draw(st.integers(0, 2))
        body = draw(st.sampled_from(["a", 'a"b', "a\\d", "", '"#']))
        return f'r{hashes}"{body}"{hashes}'
    if kind == "hex":
        sep = draw(st.sampled_from([":", ":", "-", "."]))
        n = draw(st.integers(2, 4))
        parts = [draw(st.sampled_from(["61", "2e", "ff", "0a", "AB"])) for _ in range(n)]
        text = sep.join(parts)
        if draw(st.booleans()) and n > 2:  # sometimes two separators: invalid
            text = text[:5] + draw(st.sampled_from([":", "-", "."])) + text[6:]
        return text
    return draw(st.sampled_from(['"\\d"', '"\\x4"', '"\\777"', '"a', "'a'", 'r"a', '"\\n"']))


_ints = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.integers(0, 4096).map(lambda i: f"0x{i:x}"),
    st.integers(1, 512).map(lambda i: f"0{i:o}"),
    st.sampled_from(["0", "-0", "08", "0x", "-0x10", "-012", "9223372036854775808", "1e3", "00"]),
)
_ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_ips = st.one_of(
    _ipv4,
    st.sampled_from(["::1", "2001:db8::1", "::", "::ffff:1.2.3.4", "fe80::1%eth0", "1.2.3", "010.0.0.1", "1::2::3", "256.1.1.1"]),
)
_cidrs = st.one_of(
    st.tuples(_ipv4, st.integers(0, 33)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.sampled_from(["10.0.0.0/8", "192.0.2.1/24", "2001:db8::/32", "::/0", "::/129"]),
)


@st.composite
def set_literals(draw: st.DrawFn, t: Type) -> str:
    items: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        if t == INT or draw(st.integers(0, 9)) == 0:
            item = draw(st.one_of(_ints, st.tuples(_ints, _ints).map(lambda p: f"{p[0]}..{p[1]}")))
        elif t == IP:
            item = draw(st.one_of(_ips, _cidrs, st.tuples(_ipv4, _ipv4).map(lambda p: f"{p[0]}..{p[1]}")))
        else:
            item = draw(string_literals())
        items.append(item)
    sep = draw(st.sampled_from([" ", " ", "  ", "\n", ","]))
    return "{" + draw(_tight) + sep.join(items) + draw(_tight) + "}"


def _fields(t: Type) -> tuple[str, ...]:
    return shared_fields().get(t, ())


@st.composite
def values(draw: st.DrawFn, t: Type, depth: int, star: bool = False) -> str:
    """A value expression of (mostly) type ``t``: a field, an indexed field, a call."""
    choice = draw(st.integers(0, 9))
    if choice <= 4 and _fields(t):
        return draw(st.sampled_from(_fields(t)))
    if choice <= 7:
        # an element of a map or an array of t
        containers = [(n, "map") for n in _fields(Map(Array(t)))] + [(n, "arr") for n in _fields(Array(t))]
        if containers:
            name, kind = draw(st.sampled_from(containers))
            key = draw(st.sampled_from(['"accept"', '"x-a"', "0", "*", '"a\\x41"', "-1", 'r"a"']))
            first = f"{name}[{key}]" if kind == "map" else f"{name}[{draw(st.sampled_from(['0', '1', '*', '010']))}]"
            if kind == "map":
                first += "[" + draw(st.sampled_from(["0", "*", "1"])) + "]"
            if not star:
                first = first.replace("[*]", "[0]")
            return first
    if depth < 3:
        if t == BYTES:
            fn = draw(st.sampled_from(["lower", "upper", "url_decode", "trim"]))
            return f"{fn}({draw(values(BYTES, depth + 1, star))})"
        if t == INT:
            return f"len({draw(values(BYTES, depth + 1, star))})"
    return draw(st.sampled_from(_fields(t) or _fields(BYTES)))


@st.composite
def comparisons(draw: st.DrawFn, depth: int, star: bool = False) -> str:
    t = draw(st.sampled_from([BYTES, BYTES, INT, IP]))
    lhs = draw(values(t, depth, star))
    op = draw(st.sampled_from(_OPS_FOR[t] if draw(st.integers(0, 9)) else list(_CMP_SPELLINGS)))
    spelled = draw(st.sampled_from(_CMP_SPELLINGS[op]))
    rt = t if draw(st.integers(0, 5)) else draw(st.sampled_from([BYTES, INT, IP]))
    if op == "in":
        rhs = draw(st.one_of(set_literals(rt), st.sampled_from(["$bad_ips", "$hosts", "$cf.open_proxies", "$Bad"])))
    elif op == "matches":
        pattern = draw(st.sampled_from(_REGEXES))
        rhs = draw(st.sampled_from([f'"{pattern}"', f'r#"{pattern}"#']))
    elif op in ("wildcard", "strict_wildcard"):
        rhs = '"' + draw(st.sampled_from(_WILDCARDS)) + '"'
    elif draw(st.integers(0, 4)) == 0 and op in ("eq", "ne", "lt", "le", "gt", "ge"):
        rhs = draw(values(rt, depth + 1))  # a dynamic right-hand side (2026)
    elif rt == BYTES:
        rhs = draw(string_literals())
    elif rt == INT:
        rhs = draw(_ints)
    else:
        rhs = draw(st.one_of(_ips, _cidrs))
    return f"{lhs}{draw(_gap)}{spelled}{draw(_gap)}{rhs}"


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0, star: bool = False) -> str:
    choice = draw(st.integers(0, 12 if depth < 3 else 5))
    if choice <= 3:
        return draw(comparisons(depth, star))
    if choice <= 5:
        return draw(st.sampled_from(_fields(BOOL)))
    if choice == 6:
        neg = draw(st.sampled_from(["not ", "not", "!", "! "]))
        return neg + draw(conditions(depth + 1, star))
    if choice == 7:
        return "(" + draw(_tight) + draw(conditions(depth + 1, star)) + draw(_tight) + ")"
    if choice == 8:
        q = draw(st.sampled_from(["any", "all"]))
        return f"{q}({draw(conditions(depth + 1, star=True))})"
    if choice == 9:
        fn = draw(st.sampled_from(["starts_with", "ends_with"]))
        lit = draw(string_literals())
        return f"{fn}({draw(values(BYTES, depth + 1, star))},{draw(_gap)}{lit})"
    op = draw(st.sampled_from(["and", "or", "xor", "&&", "||", "^^"]))
    left = draw(conditions(depth + 1, star))
    right = draw(conditions(depth + 1, star))
    return f"{left}{draw(_gap)}{op}{draw(_gap)}{right}"


def expressions() -> st.SearchStrategy[str]:
    """Expressions from the grammar and the shared scheme (valid ones and near-misses)."""
    return conditions()


# --- the case files and their mutations -----------------------------------------------------


@cache
def case_expressions() -> tuple[str, ...]:
    """Every expression of tests/cases/*.toml run against Cloudflare's scheme (groups on
    the small test scheme are left out), without duplicates, in file order."""
    seen: dict[str, None] = {}
    for path in sorted(CASES.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for group in data.get("group", []):
            if group.get("scheme") == "small":
                continue
            for case in group.get("case", []):
                expr = case.get("expr")
                if isinstance(expr, str):
                    seen.setdefault(expr, None)
    return tuple(seen)


_INSERTS = [" ", "(", ")", "[", "]", '"', "!", "not ", " and ", "{", "}", ",", ".", "..", "*",
            "$", "0", "\t", "\n", "#", "eq", "=", "r#", "\\", ":", "-", "[*]"]  # fmt: skip


def mutate(text: str, rng: random.Random) -> str:
    """One near-miss of ``text``: a character deleted, inserted or doubled, two
    neighbouring tokens swapped, a keyword upper-cased or a space removed/added."""
    if not text:
        return rng.choice(_INSERTS)
    kind = rng.randrange(7)
    i = rng.randrange(len(text))
    if kind == 0:
        return text[:i] + text[i + 1 :]
    if kind == 1:
        return text[:i] + rng.choice(_INSERTS) + text[i:]
    if kind == 2:
        return text[:i] + text[i] + text[i:]
    if kind == 3:
        tokens = re.split(r"(\s+)", text)
        words = [k for k, tok in enumerate(tokens) if tok.strip()]
        if len(words) >= 2:
            k = rng.randrange(len(words) - 1)
            a, b = words[k], words[k + 1]
            tokens[a], tokens[b] = tokens[b], tokens[a]
        return "".join(tokens)
    if kind == 4:
        m = list(re.finditer(r"\b(and|or|not|eq|ne|in|contains|matches|any|all)\b", text))
        if m:
            hit = rng.choice(m)
            return text[: hit.start()] + hit.group().upper() + text[hit.end() :]
        return text + " "
    if kind == 5:
        spaces = [m.start() for m in re.finditer(r" ", text)]
        if spaces:
            j = rng.choice(spaces)
            return text[:j] + text[j + 1 :]
        return " " + text
    return text[:i] + " " + text[i:]


def mutations(count: int, seed: int) -> list[str]:
    """``count`` mutations of the case expressions (1-3 edits each), reproducibly."""
    rng = random.Random(seed)
    base = case_expressions()
    out = []
    for _ in range(count):
        text = rng.choice(base)
        for _ in range(rng.randint(1, 3)):
            text = mutate(text, rng)
        out.append(text)
    return out
