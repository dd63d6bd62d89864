"""Text -> AST for the Rules language: the only module that imports lark.

Owns: loading ``grammar/rules.lark`` (through the package symlink ``lang/rules.lark``), the
handlers that build ``edgerules.lang.ast`` nodes with spans, literal decoding (string
escapes, the regex string rule, raw strings, integers, IPs, CIDRs, hex byte strings,
ranges), syntactic limits, and the translation of every lark error into ``ParseError``.

Two paths, one automaton. Valid text is parsed by ``_fast_parse``, which drives the
LALR(1) table lark generates from the grammar, with the lexer regexes lark builds for
each parser state, in a tight loop that calls the AST handlers on each reduction (no
lark tokens, no parse tree). Anything it cannot accept (every syntax error, a literal
the handlers reject, possibly-too-deep nesting) is parsed again by lark itself
(``Lark.parse`` + ``_ToAst.transform``), and lark's exceptions are translated exactly
as before: errors never come from the fast path. Both paths give the same AST and spans
(tested on every test input and on generated text).

Invariants:

* ``parse_expression`` returns an ``ast.Expr`` or raises ``edgerules.errors.ParseError``
  whose span lies within ``[0, len(text)]``; no lark exception, ``RecursionError`` or
  other library error escapes.
* The text is never rewritten before parsing: spans are offsets into the original text.
* The Lark parser object is built once, at import (its lexer scanners included), and
  never mutated afterwards (no per-call callbacks, no state stored on it); the fast
  path's tables are read from it once, at import, and never change either; parsing is
  thread-safe (all per-call state is local).
* Limits are checked before any recursive step: the length limit before lexing; both
  parses and the tree -> AST walk are iterative; the fast path only runs when the text
  holds at most ``limits.max_nesting`` nesting tokens, and lark's walk checks the nesting
  limit on its way down, so every AST handed out is at most that many levels of
  parentheses / not / calls / any-all / indexes deep (safe for recursive consumers).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from copy import copy
from typing import Final, NoReturn

from lark import Lark, Token, Tree
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedToken,
)

from edgerules.lang import ast
from edgerules.lang.errors import ParseError
from edgerules.lang.limits import DEFAULT_LIMITS, ExpressionLimits
from edgerules.lang.source import Source, Span

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_NESTING_DEPTH",
    "MAX_RAW_STRING_HASHES",
    "MAX_SET_ITEMS",
    "parse_expression",
]

# The default limits (Cloudflare's; a Scheme may carry others: edgerules.lang.limits).
# Cloudflare's documented limit: 4,096 characters (https://developers.cloudflare.com/ruleset-engine/rules-language/expressions/).
MAX_EXPRESSION_LENGTH: Final = DEFAULT_LIMITS.max_length
# 128 levels of parentheses / not / function calls (the wirefilter engine's default). We also count
# any(...)/all(...) and index brackets: each one is a level of recursion for the checker,
# the compiler and the closures, and Python's stack is far smaller than Rust's.
MAX_NESTING_DEPTH: Final = DEFAULT_LIMITS.max_nesting
# Cloudflare sets no cap on `{ … }` (our choice): 10,000 matches the non-Enterprise quota of
# list items and keeps a single rule's compile time bounded. (4,096 characters allow ~2,000
# items anyway; the cap matters only if the length limit is raised.)
MAX_SET_ITEMS: Final = DEFAULT_LIMITS.max_set_items
# Raw strings: r, then 0-255 `#`.
MAX_RAW_STRING_HASHES: Final = 255

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

# Every keyword of the language (lowercase only, as Cloudflare documents). A field token spelled like one
# of these where the keyword is not allowed is reported as a misplaced keyword instead of
# silently becoming a field named "and".
KEYWORDS: Final = frozenset(
    {
        "not", "and", "xor", "or", "any", "all", "true", "false",
        "eq", "ne", "lt", "le", "gt", "ge", "contains", "matches", "wildcard",
        "in", "bitwise_and",
    }
)  # fmt: skip

# Canonical operator name for every spelling the CMP_OP / MATCHES / IN tokens can have.
_OPERATORS: Final[dict[str, ast.ComparisonOp]] = {
    "eq": "eq", "==": "eq",
    "ne": "ne", "!=": "ne",
    "lt": "lt", "<": "lt",
    "le": "le", "<=": "le",
    "gt": "gt", ">": "gt",
    "ge": "ge", ">=": "ge",
    "contains": "contains",
    "matches": "matches", "~": "matches",
    "wildcard": "wildcard",
    "strict wildcard": "strict_wildcard",
    "in": "in",
    "bitwise_and": "bitwise_and", "&": "bitwise_and",
}  # fmt: skip

# Names of functions an author may try to use as an infix operator (the dashboard shows
# "starts with" / "ends with" as operators: they are functions).
_FUNCTION_LIKE_OPERATORS: Final = frozenset(
    {"starts_with", "ends_with", "has_key", "has_value", "lower", "upper", "len"}
)

_LIST_NAME_RE: Final = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
# As in wirefilter: one separator throughout a byte string.
_HEX_BYTES_RE: Final = re.compile(r"[0-9A-Fa-f]{2}(?P<sep>[:.\-])[0-9A-Fa-f]{2}(?:(?P=sep)[0-9A-Fa-f]{2})*")
_MIXED_HEX_BYTES_RE: Final = re.compile(r"[0-9A-Fa-f]{2}(?:[:.\-][0-9A-Fa-f]{2})+")
_IPV4_LIKE_RE: Final = re.compile(r"[0-9.]+")
_NAME_RE: Final = re.compile(r"[A-Za-z_][\w.]*")

_WHITESPACE: Final = " \t\r\n"  # the grammar's %ignore set

_NESTING_RULES: Final = frozenset({"paren", "not_expr", "quantifier", "call", "indexed"})


class _KeywordAsName(Exception):
    """Raised by the FIELD lexer callback; converted to ParseError in parse_expression
    (the callback has no access to the source text)."""

    def __init__(self, token: Token) -> None:
        super().__init__(token.value)
        self.token = token


def _check_field_token(token: Token) -> Token:
    # Fixed at construction (never replaced per call), so the parser stays immutable.
    if token.value in KEYWORDS:
        raise _KeywordAsName(token)
    return token


def _build_parser() -> Lark:
    return Lark.open_from_package(
        "edgerules.lang",
        "rules.lark",
        ("",),
        parser="lalr",
        lexer="contextual",
        # Spans are taken from the tokens by _ToAst; lark's propagate_positions would
        # compute the same for every reduction and measured 40% of parse time.
        propagate_positions=False,
        maybe_placeholders=False,
        lexer_callbacks={"FIELD": _check_field_token},
    )


def _prebuild_scanners(parser: Lark) -> None:
    """Compile every lexer state's scanner now. Lark builds them lazily on first use,
    which would mean the shared parser changes (benignly, but still) while requests
    are parsed in several threads; ~9 ms once at import instead."""
    try:
        contextual = parser.parser.lexer  # type: ignore[attr-defined]
        lexers = [*contextual.lexers.values(), contextual.root_lexer]
    except AttributeError:  # pragma: no cover - another lark layout: stay lazy
        return
    for lexer in {id(lx): lx for lx in lexers}.values():
        _ = lexer.scanner


_PARSER: Final[Lark] = _build_parser()
_prebuild_scanners(_PARSER)


# --- public entry point -----------------------------------------------------------------


def parse_expression(
    text: str, name: str | None = None, *, limits: ExpressionLimits = DEFAULT_LIMITS
) -> ast.Expr:
    """Parse a filter expression into an AST.

    Args:
        text: the expression as the author wrote it (spans refer to this exact text).
        name: a name for messages, e.g. ``rule "block-ua" in rules.toml``.
        limits: length, nesting and set-size limits (default: Cloudflare's; a scheme's
            own are ``Scheme.limits``).

    Returns:
        The expression's AST (``ast.Expr``); the whole-expression ``true``/``false`` is a
        ``BoolConst``.

    Raises:
        ParseError: syntax errors, malformed literals and exceeded limits, with a span.
    """
    if not isinstance(text, str):  # a programmer error, but still only ParseError
        message = f"expression must be a string, got {type(text).__name__}"
        raise ParseError(message, Source("", name), Span(0, 0))
    source: Source = _Source(text, name)  # type: ignore[assignment]
    max_length = limits.max_length
    if len(text) > max_length:
        raise ParseError(
            f"expression is too long: {len(text)} characters, the limit is {max_length}",
            source,
            Span(max_length, len(text)),
        )
    if not text.strip(" \t\r\n"):
        raise ParseError("empty expression", source, Span(len(text), len(text)))
    ctx = _ToAst(source, limits)
    if _FAST is not None and _nesting_bound(text) <= limits.max_nesting:
        try:
            return _fast_parse(text, ctx)
        except (_Bail, ParseError, KeyError, IndexError):
            pass  # lark parses it again and reports the (first) error exactly as before
        except Exception:  # pragma: no cover - a fast-path bug: lark's path still answers
            pass
    try:
        tree = _PARSER.parse(text)
    except _KeywordAsName as exc:
        raise _keyword_error(source, exc.token) from None
    except UnexpectedToken as exc:
        raise _translate_unexpected_token(source, exc) from None
    except UnexpectedCharacters as exc:
        raise _translate_unexpected_characters(source, exc) from None
    except UnexpectedEOF as exc:
        raise ParseError("unexpected end of input", source, Span(len(text), len(text))) from exc
    except LarkError as exc:  # pragma: no cover - defensive: any other lark failure
        raise ParseError(
            f"unrecognised input ({type(exc).__name__})", source, Span(0, len(text))
        ) from None
    try:
        return ctx.transform(tree)
    except RecursionError:  # pragma: no cover - the transform is iterative
        raise ParseError("expression is too deeply nested", source, Span(0, len(text))) from None


# --- node construction -------------------------------------------------------------------


def _fast_new(cls: type) -> Callable[..., object]:
    """``cls(field1, field2, …)`` (every field, in order) for a frozen slotted dataclass
    of ``edgerules.lang.ast`` / ``Span``, at about a third of the generated ``__init__``'s
    cost (which calls ``object.__setattr__`` once per field, since the class is frozen;
    a parse builds a node and a span per token). The object is made as an instance of a
    plain class with the same slots, filled by ordinary attribute stores, and then given
    its real class (``__class__`` assignment, allowed between identical layouts). The
    result is indistinguishable: same class, same slots, the dataclass's own equality,
    hash and repr. Span's ``__post_init__`` only rejects negative or reversed spans, which
    the parser never makes; any other class with a ``__post_init__``, or a layout this
    does not expect, keeps its own constructor."""
    try:
        names = tuple(f.name for f in dataclasses.fields(cls))
    except TypeError:  # pragma: no cover - not a dataclass
        return cls
    if (
        cls.__dict__.get("__slots__") != names
        or cls.__bases__ != (object,)
        or (hasattr(cls, "__post_init__") and cls is not Span)
        or not all(name.isidentifier() and not name.startswith("_") for name in names)
    ):
        return cls  # pragma: no cover
    mirror = type(f"_{cls.__name__}Slots", (), {"__slots__": names})
    args = ", ".join(names)
    stores = "".join(f"    o.{name} = {name}\n" for name in names)
    source = f"def make({args}):\n    o = mirror()\n{stores}    o.__class__ = cls\n    return o\n"
    namespace: dict[str, object] = {"mirror": mirror, "cls": cls}
    exec(source, namespace)  # the same technique as dataclasses' own __init__
    make: Callable[..., object] = namespace["make"]  # type: ignore[assignment]
    make.__qualname__ = f"_fast_new.<{cls.__name__}>"
    try:
        make(*range(len(names)))
    except TypeError:  # pragma: no cover - __class__ assignment refused: layouts differ
        return cls
    return make


# Every argument is given (Literal: kind, value, span, raw; FunctionCall: name, args,
# span, name_span; Comparison: lhs, op, rhs, span, op_span).
_Span: Final[Callable[[int, int], Span]] = _fast_new(Span)  # type: ignore[assignment]
_Source: Final = _fast_new(Source)
_BoolConst: Final = _fast_new(ast.BoolConst)
_BoolValue: Final = _fast_new(ast.BoolValue)
_CidrItem: Final = _fast_new(ast.CidrItem)
_Comparison: Final = _fast_new(ast.Comparison)
_FieldRef: Final = _fast_new(ast.FieldRef)
_FunctionCall: Final = _fast_new(ast.FunctionCall)
_Index: Final = _fast_new(ast.Index)
_IntRangeItem: Final = _fast_new(ast.IntRangeItem)
_IpRangeItem: Final = _fast_new(ast.IpRangeItem)
_ListRef: Final = _fast_new(ast.ListRef)
_Literal: Final = _fast_new(ast.Literal)
_Logical: Final = _fast_new(ast.Logical)
_Not: Final = _fast_new(ast.Not)
_Quantifier: Final = _fast_new(ast.Quantifier)
_Regex: Final = _fast_new(ast.Regex)
_SetLiteral: Final = _fast_new(ast.SetLiteral)
_Star: Final = _fast_new(ast.Star)


# --- literal decoding --------------------------------------------------------------------


# Tokens reach the handlers as plain tuples ``(type, value, start, end)``: the fast path
# builds them straight from regex matches, and ``_ToAst.transform`` converts lark's.
_Tok = tuple[str, str, int, int]


def _span(tok: _Tok) -> Span:
    return _Span(tok[2], tok[3])


def _tok_span(tok: Token) -> Span:
    """The span of a lark token (error translation)."""
    return Span(tok.start_pos, tok.end_pos)


def decode_quoted_string(source: Source, tok: _Tok) -> bytes:
    """Decode a quoted string with the basic escapes: ``\\"`` and ``\\\\`` (Cloudflare's
    values page, https://developers.cloudflare.com/ruleset-engine/rules-language/values/),
    ``\\xHH`` and ``\\OOO`` (as in wirefilter). Other characters are copied as UTF-8."""
    body = tok[1][1:-1]
    base = tok[2] + 1
    if "\\" not in body:
        return body.encode("utf-8", "surrogatepass")
    out = bytearray()
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            j = body.find("\\", i)
            if j < 0:
                j = n
            out += body[i:j].encode("utf-8", "surrogatepass")
            i = j
            continue
        e = body[i + 1]  # the lexer guarantees a character after every backslash
        if e in '"\\':
            out.append(ord(e))
            i += 2
        elif e == "x":
            digits = body[i + 2 : i + 4]
            if len(digits) != 2 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                shown = body[i : i + 2 + len(digits)]
                raise ParseError(
                    f"invalid escape {shown}: expected two hex digits after \\x",
                    source,
                    _Span(base + i, base + i + 2 + len(digits)),
                )
            out.append(int(digits, 16))
            i += 4
        elif e in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(d in "01234567" for d in digits):
                raise ParseError(
                    f"invalid escape \\{digits}: expected three octal digits after \\",
                    source,
                    _Span(base + i, base + i + 1 + len(digits)),
                )
            value = int(digits, 8)
            if value > 0o377:
                raise ParseError(
                    f"invalid escape \\{digits}: octal escapes go up to \\377",
                    source,
                    _Span(base + i, base + i + 4),
                )
            out.append(value)
            i += 4
        else:
            raise ParseError(
                f'invalid escape \\{e}: expected ", \\, xHH or OOO after \\',
                source,
                _Span(base + i, base + i + 2),
                hint=r"write \\ for a backslash; regex escapes are kept only after matches"
                if e in "nrtdws.^$*+?()[]{}|/-"
                else None,
            )
    return bytes(out)


def _raw_content(source: Source, tok: _Tok) -> str:
    text = tok[1]
    hashes = len(text) - len(text.lstrip("r").lstrip("#")) - 1
    if hashes > MAX_RAW_STRING_HASHES:
        raise ParseError(
            f"raw string opened with {hashes} #, the limit is {MAX_RAW_STRING_HASHES}",
            source,
            _Span(tok[2], tok[2] + 1 + hashes),
        )
    return text[hashes + 2 : len(text) - hashes - 1]


def _regex_pattern(tok: _Tok) -> str:
    """Regex string scanning (wirefilter's algorithm): a backslash keeps the next character, except
    that ``\\"`` outside a ``[...]`` class becomes a bare ``"``."""
    body = tok[1][1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    in_class = False
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == "\\":
            e = body[i + 1]
            if in_class or e != '"':
                out.append("\\")
            out.append(e)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def _parse_int(source: Source, tok: _Tok) -> int:
    text = tok[1]
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    if negative:
        # wirefilter's lexer: a sign only before decimal digits, where a leading 0 is not
        # octal (-012 is -12); -0x10 is not an integer.
        if digits.startswith("0x"):
            raise ParseError(
                f"invalid integer {text}: a negative integer is written in decimal",
                source,
                _span(tok),
            )
        value = -int(digits, 10)
    elif digits.startswith("0x"):
        value = int(digits[2:], 16)
    elif len(digits) > 1 and digits.startswith("0"):
        # As in wirefilter: a leading 0 means octal (0123 == 83).
        if any(d in "89" for d in digits):
            raise ParseError(
                f"invalid octal integer {text}: a leading 0 means octal (digits 0-7)",
                source,
                _span(tok),
            )
        value = int(digits, 8)
    else:
        value = int(digits, 10)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ParseError(f"integer {text} is out of range (signed 64-bit)", source, _span(tok))
    return value


def _parse_addr(source: Source, tok: _Tok, *, in_set: bool) -> ast.Literal | ast.CidrItem:
    """Classify an ADDR token: CIDR, IPv4/IPv6 address or hex byte string. An IP
    reading wins over a byte-string reading (our choice: ``10.20.30.40`` is an
    address; write ``"\\x10\\x20\\x30\\x40"`` for the bytes)."""
    text = tok[1]
    span = _span(tok)
    if "/" in text:
        if not in_set:
            raise ParseError(
                "CIDR only allowed inside { }",
                source,
                span,
                hint=f"write {{{text}}} with in",
            )
        try:  # the common case first: one parse of the whole CIDR
            return _CidrItem(ipaddress.ip_network(text, strict=True), span)
        except ValueError:
            pass
        addr, _, prefix = text.partition("/")
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise ParseError(f"invalid IP address {addr} in CIDR", source, span) from None
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            if "host bits set" in str(exc):
                raise ParseError(
                    f"CIDR {text} has host bits set",
                    source,
                    span,
                    hint=f"did you mean {ipaddress.ip_network(text, strict=False)}?",
                ) from None
            raise ParseError(f"invalid CIDR prefix length /{prefix}", source, span) from None
        return _CidrItem(network, span)
    try:
        return _Literal("ip", ipaddress.ip_address(text), span, False)
    except ValueError:
        pass
    m = _HEX_BYTES_RE.fullmatch(text)
    if m:
        return _Literal("string", bytes.fromhex(text.replace(m["sep"], "")), span, False)
    if _MIXED_HEX_BYTES_RE.fullmatch(text):
        first = text[2]
        other = next(c for c in text[2::3] if c != first)
        return _mixed_separators(source, tok, first, other)
    if ":" in text:
        raise ParseError(f"invalid IPv6 address {text}", source, span)
    if _IPV4_LIKE_RE.fullmatch(text):
        raise ParseError(f"invalid IPv4 address {text}", source, span)
    raise ParseError(
        f"invalid literal {text}: not an IP address nor a byte string like 01:2e:f3",
        source,
        span,
    )


def _mixed_separators(source: Source, tok: _Tok, first: str, other: str) -> NoReturn:
    text = tok[1]
    at = tok[2] + text.index(other, 2)
    raise ParseError(
        f'a byte string uses one separator throughout (here "{first}", then "{other}")',
        source,
        _Span(at, at + 1),
        hint="write " + re.sub(r"[:.\-]", first, text),
    )


def _scalar(source: Source, tok: _Tok, *, in_set: bool) -> ast.Literal | ast.CidrItem:
    kind = tok[0]
    if kind == "STRING":
        return _Literal("string", decode_quoted_string(source, tok), _span(tok), False)
    if kind == "RAW_STRING":
        content = _raw_content(source, tok)
        return _Literal("string", content.encode("utf-8", "surrogatepass"), _span(tok), True)
    if kind == "INT":
        return _Literal("int", _parse_int(source, tok), _span(tok), False)
    if kind == "ADDR":
        return _parse_addr(source, tok, in_set=in_set)
    raise AssertionError(kind)  # pragma: no cover - the grammar allows nothing else


# --- the transformer --------------------------------------------------------------------


class _ToAst:
    """Parse tree -> ast (purely syntactic; one short method per grammar rule).

    ``transform`` walks the tree post-order with an explicit stack (no recursion, so any
    depth the length limit allows is safe) and checks the nesting limit on the way down,
    before any node of the too-deep branch is built. Written by hand rather than with
    lark's ``Transformer_NonRecursive``, which took most of the parse time. Spans come
    from the tokens (lark's ``propagate_positions`` is off: it cost 40% of lark's own
    time). The handlers (one short method per grammar rule) are also the fast path's
    reducers; tokens reach them as ``(type, value, start, end)`` tuples on both paths.
    """

    __slots__ = ("limits", "source")

    def __init__(self, source: Source, limits: ExpressionLimits = DEFAULT_LIMITS) -> None:
        self.source = source
        self.limits = limits

    def transform(self, tree: Tree) -> ast.Expr:
        handlers = _HANDLERS
        values: list[object] = []
        # (item, depth, state): state 0 = expand a tree, 1 = reduce a tree, 2 = a token
        todo: list[tuple[object, int, int]] = [(tree, 0, 0)]
        while todo:
            item, depth, state = todo.pop()
            if state == 2:
                tok: Token = item  # type: ignore[assignment]
                values.append((tok.type, tok.value, tok.start_pos, tok.end_pos))
                continue
            node: Tree = item  # type: ignore[assignment]
            if state == 1:
                n = len(node.children)
                children = values[-n:] if n else []
                del values[len(values) - n :]
                name = node.data
                if name in _UNARY_HANDLERS:
                    values.append(handlers[name](self, children[0]))
                else:
                    values.append(handlers[name](self, children))
                continue
            if node.data in _NESTING_RULES:
                depth += 1
                if depth > self.limits.max_nesting:
                    self._too_deep(node)
            todo.append((node, depth, 1))
            for child in reversed(node.children):
                todo.append((child, depth, 0 if isinstance(child, Tree) else 2))
        (result,) = values
        return result  # type: ignore[return-value]

    def _too_deep(self, node: Tree) -> NoReturn:
        # The level's own token: `(`, `not`/`!`, `any`/`all`, the function name, or `[`.
        tok = node.children[1 if node.data == "indexed" else 0]
        start, end = tok.start_pos, tok.end_pos  # type: ignore[union-attr]
        self._error(
            f"expression is nested too deeply: more than {self.limits.max_nesting} levels "
            "of parentheses, not, function calls or indexes",
            _Span(start, end),
        )

    def _error(self, message: str, span: Span, hint: str | None = None) -> NoReturn:
        raise ParseError(message, self.source, span, hint=hint)

    # whole expression
    # (Rules with one child take it directly: see _UNARY_HANDLERS.)
    def true_const(self, tok: _Tok) -> ast.BoolConst:
        return _BoolConst(True, _span(tok))

    def false_const(self, tok: _Tok) -> ast.BoolConst:
        return _BoolConst(False, _span(tok))

    # logic
    def or_expr(self, children: list) -> ast.Logical:
        span = _Span(children[0].span.start, children[-1].span.end)
        return _Logical("or", tuple(children), span)

    def xor_expr(self, children: list) -> ast.Logical:
        span = _Span(children[0].span.start, children[-1].span.end)
        return _Logical("xor", tuple(children), span)

    def and_expr(self, children: list) -> ast.Logical:
        span = _Span(children[0].span.start, children[-1].span.end)
        return _Logical("and", tuple(children), span)

    def not_expr(self, children: list) -> ast.Not:
        return _Not(children[1], _Span(children[0][2], children[1].span.end))

    def paren(self, children: list) -> ast.Expr:
        return children[1]  # parentheses only shape the tree

    def quantifier(self, children: list) -> ast.Quantifier:
        return _Quantifier(children[0][1], children[2], _Span(children[0][2], children[3][3]))

    def bool_value(self, value: ast.ValueExpr) -> ast.BoolValue:
        return _BoolValue(value, value.span)

    # comparisons
    def comparison(self, children: list) -> ast.Comparison:
        lhs, op_tok, rhs = children
        if isinstance(rhs, tuple):  # LIST_NAME
            rhs = self._list_ref(rhs)
        span = _Span(lhs.span.start, rhs.span.end)
        op_span = _Span(op_tok[2], op_tok[3])
        return _Comparison(lhs, _OPERATORS[op_tok[1]], rhs, span, op_span)

    def _list_ref(self, tok: _Tok) -> ast.ListRef:
        name = tok[1][1:]
        if not _LIST_NAME_RE.fullmatch(name):
            self._error(
                f"invalid list name ${name}: use lowercase letters, digits and _ "
                "(segments joined by .)",
                _span(tok),
            )
        return _ListRef(name, _span(tok))

    def literal(self, tok: _Tok) -> ast.Literal:
        if tok[0] == "STRING" and "\\" not in tok[1]:  # the common case, inline
            value = tok[1][1:-1].encode("utf-8", "surrogatepass")
            return _Literal("string", value, _Span(tok[2], tok[3]), False)
        result = _scalar(self.source, tok, in_set=False)
        assert isinstance(result, ast.Literal)  # CIDRs were rejected outside { }
        return result

    def regex(self, tok: _Tok) -> ast.Regex:
        raw = tok[0] == "RAW_STRING"
        pattern = _raw_content(self.source, tok) if raw else _regex_pattern(tok)
        return _Regex(pattern, _span(tok))

    def set(self, children: list) -> ast.SetLiteral:
        items: list[ast.SetItem] = []
        for child in children[1:-1]:
            if len(items) >= self.limits.max_set_items:
                span = _span(child) if isinstance(child, tuple) else child.span
                self._error(
                    f"too many items in {{ }}: the limit is {self.limits.max_set_items}", span
                )
            if isinstance(child, tuple):
                items.append(_scalar(self.source, child, in_set=True))
            else:
                items.append(child)
        return _SetLiteral(tuple(items), _Span(children[0][2], children[-1][3]))

    def range(self, children: list) -> ast.IntRangeItem | ast.IpRangeItem:
        lo_tok, _, hi_tok = children
        span = _Span(lo_tok[2], hi_tok[3])
        lo = _scalar(self.source, lo_tok, in_set=True)
        hi = _scalar(self.source, hi_tok, in_set=True)
        if (
            isinstance(lo, ast.Literal)
            and isinstance(hi, ast.Literal)
            and lo.kind == hi.kind
            and lo.kind in ("int", "ip")
        ):
            if lo.kind == "ip" and lo.value.version != hi.value.version:  # type: ignore[union-attr]
                self._error("range ends must be addresses of the same family (IPv4 or IPv6)", span)
            if lo.value > hi.value:  # type: ignore[operator]
                self._error(f"empty range: {lo_tok[1]} is greater than {hi_tok[1]}", span)
            if lo.kind == "int":
                return _IntRangeItem(lo.value, hi.value, span)  # type: ignore[arg-type]
            return _IpRangeItem(lo.value, hi.value, span)  # type: ignore[arg-type]
        self._error("a range needs two integers or two IP addresses (a..b)", span)

    # values
    def field(self, tok: _Tok) -> ast.FieldRef:
        if tok[1] in KEYWORDS:  # lark's lexer callback rejects it first; the fast path here
            raise _Bail
        return _FieldRef(tok[1], _Span(tok[2], tok[3]))

    def call(self, children: list) -> ast.FunctionCall:
        name_tok = children[0]
        if name_tok[1] in KEYWORDS:  # as in field()
            raise _Bail
        args: list[ast.Arg] = []
        for child in children[2:-1]:
            if isinstance(child, tuple):  # COMMA
                continue
            # A bare value passed as an argument is the value itself, not a predicate.
            args.append(child.value if isinstance(child, ast.BoolValue) else child)
        span = _Span(name_tok[2], children[-1][3])
        return _FunctionCall(name_tok[1], tuple(args), span, _span(name_tok))

    def indexed(self, children: list) -> ast.Index:
        base, _, index, _ = children
        return _Index(base, index, _Span(base.span.start, children[3][3]))

    def index(self, tok: _Tok) -> int | bytes | ast.Star:
        if tok[0] == "STAR":
            return _Star(_span(tok))
        if tok[0] == "STRING":
            return decode_quoted_string(self.source, tok)
        value = _parse_int(self.source, tok)
        if value < 0:
            self._error("an array index must be a non-negative integer", _span(tok))
        return value


# Handlers of one-child rules take the child itself (the fast path reduces those most).
_UNARY_HANDLERS: Final = frozenset(
    {"true_const", "false_const", "bool_value", "literal", "regex", "field", "index"}
)
_HANDLERS: Final[dict[str, Callable[[_ToAst, object], object]]] = {
    name: getattr(_ToAst, name)
    for name in (
        "true_const", "false_const", "or_expr", "xor_expr", "and_expr", "not_expr", "paren",
        "quantifier", "bool_value", "comparison", "literal", "regex", "set", "range", "field",
        "call", "indexed", "index",
    )
}  # fmt: skip


# --- the fast path: lark's own LALR table and lexer regexes in one tight loop -----------
#
# lark's ``parse`` spends most of its time in generic machinery: a generator-based
# contextual lexer building a full ``Token`` per match (line/column bookkeeping
# included), ``ParserState.feed_token`` per token, a tree-builder callback chain per
# reduction, and a ``Tree`` per node that ``_ToAst`` then walks again. ``_fast_parse``
# runs the SAME automaton without that machinery:
#
# * the LALR(1) action/goto table lark generated from ``grammar/rules.lark``;
# * per parser state, the regex lark's contextual lexer compiled for that state (the
#   terminals acceptable there, in lark's priority order), prefixed with a possessive
#   run of the %ignore whitespace and suffixed with an end-of-text alternative, so one
#   ``match`` skips the whitespace and reads the token or the end. This equals lark's
#   lexing because no terminal can start with whitespace (tested);
# * reductions call the ``_ToAst`` handlers directly with the children lark's tree
#   builder would have given the node (filtered tokens dropped, ``_rule`` children
#   spliced, ``?rule`` single children passed through), so no parse tree is built; a
#   chain of pass-through reductions (``comparison`` -> ``unary`` -> ``and_expr`` ->
#   ``xor_expr`` -> ``or_expr`` -> ``start``) is followed in one step through a table
#   precomputed from the same automaton.
#
# The grammar stays the only description of the language: nothing here knows a rule or
# a terminal pattern by heart. The fast path only ever *accepts*: at the first thing it
# cannot handle (a character no terminal matches, a token the table rejects, a FIELD
# spelled like a keyword, a ParseError from a handler) it gives up and
# ``parse_expression`` parses the text again with lark, whose exceptions are translated
# exactly as before; a text that might nest too deeply (``_nesting_bound``) goes to lark
# directly. Errors therefore never depend on this code, and valid input yields the same
# AST, spans included, as lark + ``_ToAst.transform`` (tests/test_parser.py compares the
# two on every test input and on generated text).


class _Bail(Exception):
    """The fast path cannot parse this text; lark parses it (and reports the error)."""


# The %ignore terminal of the grammar, checked against it when the tables are built.
_IGNORED: Final = r"[ \t\r\n]+"
_END: Final = "$END"

_ReduceFn = Callable[["_ToAst", list], object]
# A reduce action: (number of children, reducer or None for a pass-through, goto, keyed).
# The goto maps the state under the children to the next state, or, if keyed, the state
# under the children and then the lookahead to the state where the chain of pass-through
# reductions that follows ends (`comparison` -> `unary` -> `and_expr` -> … in one step).
_Reduce = tuple[int, "_ReduceFn | None", dict, bool]


def _make_reducer(rule: object) -> _ReduceFn | None:
    """The function building a reduced rule's value, mirroring lark's ``ParseTreeBuilder``
    (child filter, ``?rule`` single-child expansion, callback by alias or rule name). It
    takes the list of children, or, for a rule of one symbol, the child itself. None: the
    value is the single child, unchanged (a pass-through). An inlined rule's value is the
    plain list of its kept children, which its parent splices (by position: which child
    is an inlined rule is known from the parent's expansion)."""
    name: str = rule.origin.name  # type: ignore[attr-defined]
    expansion = rule.expansion  # type: ignore[attr-defined]
    options = rule.options  # type: ignore[attr-defined]
    alias = rule.alias  # type: ignore[attr-defined]
    if options.keep_all_tokens or options.template_source or not expansion:
        raise _Bail  # unused by the grammar: not mirrored here
    include = tuple(
        (i, not sym.is_term and sym.name.startswith("_"))
        for i, sym in enumerate(expansion)
        if not (sym.is_term and sym.filter_out)
    )
    expand1 = bool(options.expand1) and not alias
    if expand1 and len(expansion) == 1 and include == ((0, False),):
        return None
    inline = name.startswith("_")
    handler = None if inline else _HANDLERS.get(alias or name)
    if handler is None and not inline:
        raise _Bail  # a tree node _ToAst has no handler for
    unary = handler is not None and (alias or name) in _UNARY_HANDLERS
    if len(expansion) == 1:
        if include == ((0, False),) and not expand1:
            if inline:
                return lambda ctx, child: [child]
            if unary:
                return handler
        raise _Bail  # a one-symbol rule of another shape: not in this grammar
    if unary:
        raise _Bail  # a one-child handler for a longer rule: not in this grammar
    if len(include) == len(expansion) and not any(expand for _, expand in include):
        if inline:
            return lambda ctx, children: children  # (a fresh list)
        if expand1:
            return lambda ctx, children: (
                children[0] if len(children) == 1 else handler(ctx, children)  # type: ignore[misc]
            )
        return handler
    # The shapes lark generates for `x (SEP y)*` (all but the first two are generic):
    if inline and len(include) == 2 and include[0] == (0, True) and not include[1][1]:
        k = include[1][0]

        def extend(ctx: _ToAst, children: list) -> object:  # __x_star: __x_star SEP y
            items = children[0]
            items.append(children[k])
            return items

        return extend
    if inline and len(include) == 1 and not include[0][1]:
        k = include[0][0]
        return lambda ctx, children: [children[k]]  # __x_star: SEP y
    if not inline and len(expansion) == 2 and include == ((0, False), (1, True)):

        def chain(ctx: _ToAst, children: list) -> object:  # x: y __x_star
            items = [children[0], *children[1]]
            if expand1 and len(items) == 1:
                return items[0]  # pragma: no cover - a __x_star list is never empty
            return handler(ctx, items)  # type: ignore[misc]

        return chain

    def reduce(ctx: _ToAst, children: list) -> object:
        filtered: list = []
        for i, expand in include:
            if expand:
                if filtered:
                    filtered += children[i]
                else:  # left recursion: extend the inline list in place
                    filtered = children[i]
            else:
                filtered.append(children[i])
        if inline:
            return filtered
        if expand1 and len(filtered) == 1:
            return filtered[0]
        return handler(ctx, list(filtered))  # type: ignore[misc]

    return reduce


class _Path:
    """A node of the fast path's replay trie: the parser configuration reached after a
    sequence of token types, i.e. its state stack (``stack``) and that state's scanner
    (``scan``). ``edges`` maps the next token's type to what the LALR automaton does on
    it: the reductions that build a value, in order (``(size, reducer)``; pass-throughs
    left out, they change only the state) and the node after shifting the token (None:
    the text is accepted).

    LALR parsing is deterministic in the token types (the contextual lexer's state too),
    so the same path from the root always performs the same actions: a text whose token
    types follow recorded edges is parsed by replaying them, without the action/goto
    lookups and the state stack (which were about a third of a parse). A text leaving
    the recorded paths continues from the node's stack through the table, recording its
    own edges while the trie has room (``_TRIE_NODES``). Rules written in the same shape
    (`http.host eq "…" and …`) share their paths; literal values are not part of them."""

    __slots__ = ("edges", "scan", "stack")

    def __init__(self, scan: Callable[[str, int], re.Match[str] | None],
                 stack: tuple[int, ...]) -> None:
        self.scan = scan
        self.stack = stack
        self.edges: dict[str, tuple[tuple[tuple[int, _ReduceFn], ...], _Path | None]] = {}


# The replay trie holds at most this many nodes (each one a dict and its stack: together
# about 1 MB at the cap), and records only while the state stack is at most _TRIE_DEPTH
# deep; past either, parsing runs through the table alone.
_TRIE_NODES: Final = 4096
_TRIE_DEPTH: Final = 48
_trie_size = 0


class _FastTables:
    """The automaton and the per-state scanners, read once from the built Lark object
    (which is not modified). Raises _Bail if lark's internals are not as expected."""

    def __init__(self, parser: Lark) -> None:
        frontend = parser.parser  # type: ignore[attr-defined]
        table = frontend.parser.parser.parse_table
        terminals = parser.lexer_conf.terminals_by_name
        ignore = list(parser.lexer_conf.ignore)
        if len(ignore) != 1:
            raise _Bail
        ignored = terminals[ignore[0]].pattern.to_regexp()
        if ignored.encode("unicode_escape").decode("ascii") != _IGNORED:
            raise _Bail
        self.start: int = table.start_states["start"]
        self.end: int = table.end_states["start"]
        rows: dict[int, dict[str, tuple[object, object]]] = table.states
        gotos: dict[str, dict[int, int]] = {}
        for state, row in rows.items():
            for symbol, (_action, target) in row.items():
                if not symbol.isupper():  # a nonterminal: goto
                    gotos.setdefault(symbol, {})[state] = target  # type: ignore[assignment]
        # lark's actions: state -> lookahead -> target state (shift) or Rule (reduce)
        shifts_or_rules: dict[int, dict[str, object]] = {
            state: {symbol: arg for symbol, (_action, arg) in row.items() if symbol.isupper()}
            for state, row in rows.items()
        }
        for row in rows.values():
            for symbol, (action, arg) in row.items():
                kind = action.name  # type: ignore[attr-defined]
                if symbol.isupper() and (kind == "Shift") != isinstance(arg, int):
                    raise _Bail  # a shift targets a state number, a reduce holds a Rule
                if symbol == _END and kind == "Shift":
                    raise _Bail  # lark never shifts the end (the loop below relies on it)
        rules = {arg for acts in shifts_or_rules.values() for arg in acts.values()}
        rules = {r for r in rules if not isinstance(r, int)}
        reducers = {rule: _make_reducer(rule) for rule in rules}
        lookaheads = {symbol for acts in shifts_or_rules.values() for symbol in acts}

        def follow(state: int, under: int, lookahead: str) -> int:
            """Where a chain of pass-through reductions over ``under`` ends."""
            while not (lookahead == _END and state == self.end):
                rule = shifts_or_rules[state].get(lookahead)
                if rule is None or isinstance(rule, int) or reducers[rule] is not None:
                    break
                state = gotos[rule.origin.name][under]  # type: ignore[attr-defined]
            return state

        reduces: dict[object, _Reduce] = {}
        for rule in rules:
            goto = gotos[rule.origin.name]  # type: ignore[attr-defined]
            # The pass-through chain that may follow the reduction, folded into its goto:
            # state under the children -> lookahead -> the state where the chain ends.
            # (A pass-through rule itself is always looked up that way; another rule
            # only if a chain can follow it.)
            folded: dict[int, dict[str, int]] = {}
            for under, state in goto.items():
                ends = folded[under] = {}
                for lookahead in lookaheads:
                    try:
                        ends[lookahead] = follow(state, under, lookahead)
                    except KeyError:  # no such configuration: left out
                        pass
            keyed = reducers[rule] is None or any(
                end != goto[under] for under, ends in folded.items() for end in ends.values()
            )
            if keyed:
                goto = folded  # type: ignore[assignment]
            reduces[rule] = (len(rule.expansion), reducers[rule], goto, keyed)  # type: ignore[attr-defined]
        self.actions: dict[int, dict[str, int | _Reduce]] = {
            state: {
                symbol: arg if isinstance(arg, int) else reduces[arg]
                for symbol, arg in acts.items()
            }
            for state, acts in shifts_or_rules.items()
        }
        # One scanner per parser state, built from the regex lark compiled for it.
        self.scanners: dict[int, Callable[[str, int], re.Match[str] | None]] = {}
        compiled: dict[str, Callable[[str, int], re.Match[str] | None]] = {}
        for state, lexer in frontend.lexer.lexers.items():
            scanner = lexer.scanner
            if len(scanner._mres) != 1 or dict(lexer.callback) not in (
                {},
                {"FIELD": _check_field_token},
            ):
                raise _Bail
            mre = scanner._mres[0]
            if mre.flags & ~re.UNICODE:
                raise _Bail
            pattern = f"{_IGNORED[:-1]}*+(?:{mre.pattern}|\\Z)"  # whitespace, then token or end
            if pattern not in compiled:
                compiled[pattern] = re.compile(pattern).match
            self.scanners[state] = compiled[pattern]
        if set(self.scanners) != set(self.actions) or set(self.actions) != set(range(len(rows))):
            raise _Bail
        # Indexed by state number (lark numbers them 0…n-1): a list is faster than a dict.
        self.action_rows = [self.actions[state] for state in range(len(rows))]
        self.scanner_list = [self.scanners[state] for state in range(len(rows))]
        self.root = _Path(self.scanner_list[self.start], (self.start,))


def _nesting_bound(text: str) -> int:
    """An upper bound of the nesting depth: every level owns one `(` (paren, call,
    any/all), `[` (index) or `not`/`!` token. Deeper texts take lark's path, whose tree
    walk reports the exact level and span."""
    return text.count("(") + text.count("[") + text.count("!") + text.count("not")


def _build_fast_tables(parser: Lark) -> _FastTables | None:
    try:
        return _FastTables(parser)
    except (_Bail, AttributeError, KeyError, TypeError):  # pragma: no cover - other lark
        return None


_FAST: Final = _build_fast_tables(_PARSER)


def _fast_parse(text: str, ctx: _ToAst) -> ast.Expr:
    """Parse ``text`` with lark's table and lexer regexes. Raises _Bail (or KeyError /
    IndexError from a table lookup) where lark would raise, or ParseError from a handler;
    the caller then parses with lark."""
    fast = _FAST
    assert fast is not None
    end = _END
    node = fast.root
    values: list[object] = []
    pos = 0
    tok: object = None
    # Replay the recorded path while the token types follow it.
    while True:
        m = node.scan(text, pos)
        if m is None:
            raise _Bail
        ttype = m.lastgroup
        if ttype is None:  # \Z: only whitespace was left
            ttype = end
        else:
            start, pos = m.span(m.lastindex)  # type: ignore[arg-type]
            tok = (ttype, text[start:pos], start, pos)
        edge = node.edges.get(ttype)
        if edge is None:
            break
        ops, child = edge
        for size, reducer in ops:
            if size == 1:
                values[-1] = reducer(ctx, values[-1])
            else:
                children = values[-size:]
                del values[-size:]
                values.append(reducer(ctx, children))
        if child is None:
            return values[-1]  # type: ignore[return-value]
        node = child
        values.append(tok)
    # Off the recorded paths: the automaton itself, from the node's configuration.
    global _trie_size
    actions = fast.action_rows
    scanners = fast.scanner_list
    end_state = fast.end
    states = list(node.stack)
    state = states[-1]
    record: _Path | None = node if _trie_size < _TRIE_NODES else None
    while True:
        ops_done: list[tuple[int, _ReduceFn]] = []
        act = actions[state][ttype]  # KeyError: lark rejects the token
        while act.__class__ is tuple:
            size, reducer, goto, keyed = act  # type: ignore[misc]
            if size == 1:
                if reducer is not None:  # else a pass-through: only the state changes
                    values[-1] = reducer(ctx, values[-1])
                    ops_done.append((1, reducer))
            else:
                children = values[-size:]
                del values[-size:]
                del states[1 - size :]  # the top one is overwritten below
                values.append(reducer(ctx, children))  # type: ignore[misc]
                ops_done.append((size, reducer))
            state = goto[states[-2]][ttype] if keyed else goto[states[-2]]
            states[-1] = state
            if state == end_state and ttype is end:
                if record is not None:
                    record.edges[ttype] = (tuple(ops_done), None)
                return values[-1]  # type: ignore[return-value]
            act = actions[state][ttype]
        state = act  # type: ignore[assignment]
        states.append(state)
        values.append(tok)  # (also `_AND` & co., which no reducer reads)
        if record is not None:
            if _trie_size < _TRIE_NODES and len(states) <= _TRIE_DEPTH:
                child = _Path(scanners[state], tuple(states))
                _trie_size += 1
                # (A complete edge is published at once: a concurrent parse sees it or not.)
                record.edges[ttype] = (tuple(ops_done), child)
                record = child
            else:
                record = None
        m = scanners[state](text, pos)
        if m is None:
            raise _Bail
        ttype = m.lastgroup
        if ttype is None:  # \Z: only whitespace was left
            ttype = end
        else:
            start, pos = m.span(m.lastindex)  # type: ignore[arg-type]
            tok = (ttype, text[start:pos], start, pos)


# --- error translation ------------------------------------------------------------------

_LITERAL_TERMINALS: Final = frozenset({"STRING", "RAW_STRING", "INT", "ADDR"})
_OPERAND_TERMINALS: Final = frozenset({"FIELD", "NOT", "LPAR", "QUANT"})

# What an author types, for each terminal name (never show lark's names).
_TERMINAL_TEXT: Final[dict[str, str]] = {
    "$END": "end of input",
    "LPAR": "(",
    "RPAR": ")",
    "LSQB": "[",
    "RSQB": "]",
    "LBRACE": "{",
    "RBRACE": "}",
    "COMMA": "a comma",
    "DOTDOT": "..",
    "STAR": "*",
    "STRING": "a quoted string",
    "REGEX_STRING": "a quoted string",
    "RAW_STRING": "a raw string",
    "INT": "an integer",
    "ADDR": "an IP address",
    "LIST_NAME": "a $list name",
    "FIELD": "a field",
    "NOT": "not",
    "_AND": "and",
    "_OR": "or",
    "_XOR": "xor",
    "QUANT": "any(…)",
    "CMP_OP": "an operator",
    "MATCHES": "matches",
    "IN": "in",
    "TRUE": "true",
    "FALSE": "false",
}

# The order in which "expected …" lists terminals: values first, closers, end last.
_TERMINAL_ORDER: Final[dict[str, int]] = {
    name: rank
    for rank, name in enumerate(
        [
            "FIELD", "NOT", "QUANT", "LPAR", "STRING", "REGEX_STRING", "RAW_STRING", "INT",
            "ADDR", "STAR", "LBRACE", "LIST_NAME", "CMP_OP", "MATCHES", "IN", "LSQB",
            "DOTDOT", "_AND", "_XOR", "_OR", "COMMA", "RPAR", "RSQB", "RBRACE", "$END",
        ]
    )
}  # fmt: skip

_OPERATOR_LIST: Final = "eq, ne, lt, le, gt, ge, contains, wildcard, strict wildcard, matches, in"


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of input"
    text = tok.value
    if len(text) > 24:
        text = text[:21] + "..."
    # keep the message on one line: show control characters escaped
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _expected_text(expected: set[str]) -> str:
    names: list[str] = []
    for name in sorted(expected, key=lambda n: (_TERMINAL_ORDER.get(n, 50), n)):
        shown = _TERMINAL_TEXT.get(name, name.lower())
        if shown not in names:
            names.append(shown)
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


_PREV_WORD_RE: Final = re.compile(r"(strict wildcard|[\w.$]+|[=!<>~&|^]+|[()\[\]{},\"])\s*\Z")


def _previous_text(text: str, pos: int) -> str:
    """The token-ish text just before ``pos`` (for "expected a value after eq")."""
    m = _PREV_WORD_RE.search(text, 0, pos)
    return m.group(1) if m else ""


def _keyword_error(source: Source, tok: Token) -> ParseError:
    word = tok.value
    span = _tok_span(tok)
    prev = _previous_text(source.text, tok.start_pos)
    if prev in _OPERATORS and prev not in ("in", "matches", "~"):
        # A keyword where the right-hand side of a comparison should be.
        if word in ("true", "false"):
            return ParseError(
                f"{word} is not a value: Boolean fields take no operator",
                source,
                span,
                hint="write the field bare (ssl) or negated (not ssl)",
            )
        return ParseError(f"expected a value after {prev}, got {word}", source, span)
    if word in ("true", "false"):
        return ParseError(
            f"{word} is only allowed as the whole expression",
            source,
            span,
            hint="a Boolean field is used bare: ssl, not ssl",
        )
    return ParseError(
        f"unexpected keyword {word}: expected a field, a function call, not or (",
        source,
        span,
    )


def _acceptable(exc: UnexpectedToken) -> set[str]:
    """The terminals the parser would really accept where the error happened.

    Lark's ``expected`` is the LALR state's lookahead set, which merges contexts (after
    ``1`` it lists ``,`` and ``)`` even at the top level) and, when the error comes from
    the contextual lexer, lacks ``$END``. Feeding each candidate to a copy of the parser
    state (what lark's ``InteractiveParser.accepts`` does) gives the exact set."""
    state = exc.state
    expected = set(exc.expected or ())
    if state is None:  # pragma: no cover - lark always passes it for LALR
        return expected
    try:
        conf = copy(state.parse_conf)
        conf.callbacks = {}
        accepted: set[str] = set()
        for name in state.parse_conf.states[state.position]:
            if not name.isupper():
                continue
            trial = state.copy(deepcopy_values=False)
            trial.parse_conf = conf
            try:
                trial.feed_token(Token(name, ""), is_end=name == "$END")
            except Exception:
                continue
            accepted.add(name)
    except Exception:
        return expected
    return accepted or expected


def _translate_unexpected_token(source: Source, exc: UnexpectedToken) -> ParseError:
    text = source.text
    tok: Token = exc.token
    expected = _acceptable(exc)
    at_end = tok.type == "$END"
    span = Span(len(text), len(text)) if at_end else Span(tok.start_pos, tok.end_pos)
    shown = _describe_token(tok)
    prev = _previous_text(text, len(text) if at_end else tok.start_pos)

    def err(message: str, hint: str | None = None, where: Span = span) -> ParseError:
        return ParseError(message, source, where, hint=hint)

    # A raw string that never closes lexes as the field `r` in the error path.
    if (
        tok.type == "FIELD"
        and tok.value == "r"
        and text[tok.end_pos : tok.end_pos + 1] in ('"', "#")
    ):
        return err(
            "missing closing quote of raw string", where=Span(tok.start_pos, tok.end_pos + 1)
        )
    if tok.type == "ADDR" and "/" in tok.value and "ADDR" not in expected:
        return err("CIDR only allowed inside { }", hint=f"write in {{{tok.value}}}")
    if tok.type == "DOTDOT":
        return err("ranges are only allowed inside { }")
    # `true and ssl`: the whole-expression constant followed by more text. Point at the
    # constant, as `ssl and true` does, rather than at the operator after it.
    head = text[: len(text) if at_end else tok.start_pos]
    if not at_end and head.strip() in ("true", "false"):
        start = len(head) - len(head.lstrip())
        word = head.strip()
        return err(
            f"{word} is only allowed as the whole expression",
            hint="a rule that matches every request is just: true" if word == "true" else None,
            where=Span(start, start + len(word)),
        )
    if tok.type == "COMMA" and "RBRACE" in expected:
        return err("unexpected , in { }", hint="items are separated by spaces, not commas")

    # Right after a comparison operator: a value (a literal or, after eq…ge, a field or a
    # function call: allowed since 2026-10-01) must follow.
    if expected & _LITERAL_TERMINALS and expected <= _LITERAL_TERMINALS | {"FIELD"}:
        if tok.type in ("TRUE", "FALSE"):
            return err(
                f"{tok.value} is not a value: Boolean fields take no operator",
                hint="write the field bare (ssl) or negated (not ssl)",
            )
        if tok.type == "LBRACE":
            return err(f"{{ }} only follows in, not {prev}")
        if tok.type == "FIELD":
            return err(
                f"expected a value after {prev}, got the name {shown}: the right-hand side "
                "must be a literal"
            )
        return err(f"expected a value after {prev}, got {shown}")
    if expected == {"REGEX_STRING", "RAW_STRING"}:
        if tok.type == "STRING":  # lexes as a plain string, not as a regex string
            return err(
                'missing closing quote: a " inside [...] does not end a regex string',
                where=Span(tok.start_pos, tok.start_pos + 1),
            )
        return err(
            f"expected a regular expression (a quoted or raw string) after {prev}, got {shown}"
        )
    if expected == {"LBRACE", "LIST_NAME"}:
        return err(f"expected {{ or a $list after in, got {shown}")

    # After a value: an operator (or and/or/xor/end) was expected.
    if "CMP_OP" in expected:
        word = tok.value if tok.type == "FIELD" else ""
        if word in _FUNCTION_LIKE_OPERATORS:
            return err(
                f"{word} is a function, not an operator",
                hint=f"write {word}({prev}, …)",
            )
        if word == "strict":
            return err("strict wildcard is two words separated by exactly one space")
        if word and word.lower() in KEYWORDS:
            return err(f"keywords are lowercase: write {word.lower()}")
        if "." in word:  # a field name where an operator should be
            return err(f"expected an operator after {prev}, got the name {word}")
        if word:
            return err(f"unknown operator {word}: expected one of {_OPERATOR_LIST}")
        if tok.type == "NOT":
            subject = prev if _NAME_RE.fullmatch(prev) else "x"
            return err(
                f"{tok.value} goes before the whole comparison",
                hint=f"write not {subject} … (not binds to the whole comparison)",
            )
        if tok.type in _LITERAL_TERMINALS or tok.type == "REGEX_STRING":
            missing = "an operator or a comma" if "COMMA" in expected else "an operator"
            return err(f"missing {missing} before {shown}")
        if at_end and "$END" not in expected:
            return err(f"unexpected end of input: expected {_expected_text(expected)}")
        if "$END" in expected:
            return err("unrecognised input")
        return err(
            f"unexpected {shown}: expected an operator or {_expected_text(expected - {'CMP_OP'})}"
        )

    # Where an operand (field, not, (, any/all) must start.
    if expected & _OPERAND_TERMINALS == _OPERAND_TERMINALS:
        after = f" after {prev}" if prev else ""
        if at_end:
            return err(f"unexpected end of input: expected an expression{after}")
        if tok.type in _LITERAL_TERMINALS or tok.type in ("REGEX_STRING", "LIST_NAME"):
            return err(
                f"unexpected {shown}: a literal may only follow an operator",
                hint="the left-hand side is a field or a function call",
            )
        return err(f"unexpected {shown}: expected an expression{after}")

    if tok.type == "FIELD" and tok.value.lower() in KEYWORDS and tok.value.lower() != tok.value:
        return err(f"keywords are lowercase: write {tok.value.lower()}")
    if "$END" in expected and not at_end:
        return err("unrecognised input")
    if at_end:
        return err(f"unexpected end of input: expected {_expected_text(expected)}")
    return err(f"unexpected {shown}: expected {_expected_text(expected)}")


def _translate_unexpected_characters(source: Source, exc: UnexpectedCharacters) -> ParseError:
    text = source.text
    pos = min(exc.pos_in_stream, len(text))
    span = Span(pos, min(pos + 1, len(text)))
    char = text[pos : pos + 1]
    raw = re.search(r"(?<![\w.])r\Z", text[:pos])
    if raw is not None and re.match(r'#*"', text[pos:]):
        # `r"…` / `r#"…` never closed: the lexer read the name r, then stopped here.
        return ParseError(
            "missing closing quote of raw string", source, Span(raw.start(), pos + 1)
        )
    if char == '"':
        return ParseError("missing closing quote", source, span)
    if char == "=":
        return ParseError("unknown operator =", source, span, hint="did you mean ==?")
    if char == "$":
        return ParseError("a $list may only follow in", source, span)
    if char == "'":
        return ParseError("unrecognised input", source, span, hint='strings use double quotes: "…"')
    if char == "#":
        return ParseError("unrecognised input", source, span, hint="the language has no comments")
    allowed = set(exc.allowed or ())
    # wirefilter's lexical rules (LSQB and DOTDOT refuse whitespace next to them): say so.
    gap = len(text[:pos]) - len(text[:pos].rstrip(_WHITESPACE))
    if char == "[" and "LSQB" in allowed and gap:
        return ParseError(
            "no whitespace allowed between a value and its index",
            source,
            Span(pos - gap, pos + 1),
            hint="remove the whitespace before [",
        )
    if text.startswith("..", pos) and "DOTDOT" in allowed:
        after = len(text[pos + 2 :]) - len(text[pos + 2 :].lstrip(_WHITESPACE))
        return ParseError(
            "no whitespace allowed around .. in a range",
            source,
            Span(pos - gap, pos + 2 + after),
            hint="write a range as one word: 1..5, 10.0.0.1..10.0.0.9",
        )
    if allowed & (_LITERAL_TERMINALS | {"REGEX_STRING"}) and allowed <= _LITERAL_TERMINALS | {
        "REGEX_STRING",
        "FIELD",
    }:
        prev = _previous_text(text, pos)
        what = (
            "a regular expression (a quoted or raw string)"
            if "REGEX_STRING" in allowed
            else "a value"
        )
        return ParseError(f"expected {what} after {prev}", source, span)
    return ParseError("unrecognised input", source, span)
