"""AST -> canonical text for the Rules language.

Owns ``format_expr``. Invariant: for every AST the parser can produce,
``parse_expression(format_expr(a)) == a`` (spans are not part of equality). The canonical
form uses English operator names, single spaces, the fewest parentheses the precedence
(not > and > xor > or) allows, and canonical literals:

* strings: quoted, with ``\\"`` and ``\\\\`` escaped, printable characters of valid UTF-8
  kept, everything else as ``\\xHH`` (a string the author wrote raw stays raw when it can);
* regexes: raw strings ``r"…"`` with just enough ``#`` (a raw string means exactly the
  pattern the regex engine receives, whatever the quoted form's escaping rules);
* integers in decimal, IPv6 addresses compressed (``ipaddress``'s ``str``).

Parentheses are kept around a nested chain of the *same* operator: the parser flattens
only unparenthesised chains, so ``(a or b) or c`` must stay distinct from ``a or b or c``.
No recursion limit concerns: parsed ASTs are at most ``limits.NESTING_CEILING`` levels deep,
and the formatter takes at most two frames per level.
"""

from __future__ import annotations

from edgerules.lang import ast

__all__ = ["format_expr", "format_raw_string", "format_string"]

_OP_TEXT = {"strict_wildcard": "strict wildcard"}
_PRECEDENCE = {"or": 1, "xor": 2, "and": 3}
_MAX_HASHES = 255


def format_expr(expr: object) -> str:
    """Return the canonical text of an expression AST (``ast.Expr``).

    Any other AST node (a value expression, a literal, a right-hand side, a set item) is
    accepted too and formatted as it would appear inside an expression (useful for
    traces and messages).

    Raises:
        TypeError: ``expr`` is not an AST node.
    """
    if isinstance(expr, ast.FieldRef | ast.Index | ast.FunctionCall):
        return _value(expr)
    if isinstance(expr, ast.Regex | ast.SetLiteral | ast.ListRef):
        return _rhs(expr)
    if isinstance(expr, ast.Literal | ast.IntRangeItem | ast.IpRangeItem | ast.CidrItem):
        return _set_item(expr)
    return _expr(expr, 0)


def _expr(node: object, parent_precedence: int) -> str:
    if isinstance(node, ast.Logical):
        prec = _PRECEDENCE[node.op]
        text = f" {node.op} ".join(_expr(item, prec) for item in node.items)
        # Same precedence needs parentheses too, or the chain would be flattened.
        return f"({text})" if prec <= parent_precedence else text
    if isinstance(node, ast.Not):
        return "not " + _expr(node.operand, 4)
    if isinstance(node, ast.Comparison):
        rhs = node.rhs
        if node.op == "matches" and isinstance(rhs, ast.Literal) and rhs.kind == "string":
            rhs_text = _regex_literal(rhs.value)  # type: ignore[arg-type]
        else:
            rhs_text = _rhs(rhs)
        return f"{_value(node.lhs)} {_OP_TEXT.get(node.op, node.op)} {rhs_text}"
    if isinstance(node, ast.BoolValue):
        return _value(node.value)
    if isinstance(node, ast.FieldRef | ast.Index | ast.FunctionCall):
        return _value(node)  # a bare value as a condition (hand-built ASTs)
    if isinstance(node, ast.Quantifier):
        return f"{node.kind}({_expr(node.arg, 0)})"
    if isinstance(node, ast.BoolConst):
        return "true" if node.value else "false"
    raise TypeError(f"not an expression node: {node!r}")


def _value(node: object) -> str:
    if isinstance(node, ast.FieldRef):
        return node.name
    if isinstance(node, ast.Index):
        base = _value(node.base)
        index = node.index
        if isinstance(index, ast.Star):
            return f"{base}[*]"
        if isinstance(index, bytes):
            return f"{base}[{format_string(index)}]"
        return f"{base}[{index}]"
    if isinstance(node, ast.FunctionCall):
        # A loop, not a generator: two frames per nested call instead of three, so the
        # deepest nesting a scheme may allow (limits.NESTING_CEILING) formats too.
        args = []
        for a in node.args:
            args.append(_arg(a))
        return f"{node.name}({', '.join(args)})"
    raise TypeError(f"not a value expression: {node!r}")


def _arg(node: object) -> str:
    if isinstance(node, ast.Literal):
        return _literal(node)
    if isinstance(node, ast.FieldRef | ast.Index | ast.FunctionCall):
        return _value(node)
    return _expr(node, 0)


def _rhs(node: object) -> str:
    if isinstance(node, ast.Literal):
        return _literal(node)
    if isinstance(node, ast.FieldRef | ast.Index | ast.FunctionCall):
        return _value(node)  # a dynamic right-hand side (eq…ge)
    if isinstance(node, ast.Regex):
        return format_raw_string(node.pattern)
    if isinstance(node, ast.SetLiteral):
        return "{" + " ".join(_set_item(i) for i in node.items) + "}"
    if isinstance(node, ast.ListRef):
        return f"${node.name}"
    raise TypeError(f"not a right-hand side: {node!r}")


def _regex_literal(pattern: bytes) -> str:
    r"""A string Literal used as a regex (hand-built ASTs; the parser makes a ``Regex``).
    Its bytes are the pattern, so it is written raw when it is printable UTF-8: quoted,
    the regex string rule would keep an escaped ``\\`` as two backslashes. Other bytes
    are written quoted as ``\xHH``, which the regex reads as those bytes."""
    return _raw_if_friendly(pattern)


def _raw_if_friendly(value: bytes) -> str:
    """``value`` as a raw string when it is printable UTF-8 a raw string can hold, else as
    a quoted string with escapes."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return format_string(value)
    return format_raw_string(text) if _raw_friendly(text) else format_string(value)


def _set_item(node: object) -> str:
    if isinstance(node, ast.IntRangeItem | ast.IpRangeItem):
        return f"{node.lo}..{node.hi}"
    if isinstance(node, ast.CidrItem):
        return str(node.network)
    return _literal(node)  # type: ignore[arg-type]


def _literal(node: ast.Literal) -> str:
    if node.kind == "string":
        value = node.value
        assert isinstance(value, bytes)
        return _raw_if_friendly(value) if node.raw else format_string(value)
    if node.kind == "int":
        return str(node.value)
    if node.kind == "ip":
        return str(node.value)
    if node.kind == "bool":  # only the whole-expression constant; kept for completeness
        return "true" if node.value else "false"
    raise TypeError(f"unknown literal kind {node.kind!r}")


def _raw_friendly(text: str) -> bool:
    return all(c.isprintable() for c in text) and _hashes_needed(text) <= _MAX_HASHES


def format_string(value: bytes) -> str:
    """A quoted string literal (basic escapes) denoting exactly ``value``."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    out = ['"']
    if text is not None:
        for c in text:
            if c == '"' or c == "\\":
                out.append("\\" + c)
            elif c.isprintable():
                out.append(c)
            else:
                out.extend(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass"))
    else:
        for b in value:
            if b in (0x22, 0x5C):
                out.append("\\" + chr(b))
            elif 0x20 <= b < 0x7F:
                out.append(chr(b))
            else:
                out.append(f"\\x{b:02x}")
    out.append('"')
    return "".join(out)


def _hashes_needed(text: str) -> int:
    """The fewest ``#`` so that ``"`` + that many ``#`` never occurs inside ``text``."""
    if '"' not in text:
        return 0
    longest = 0
    i = text.find('"')
    while i >= 0:
        j = i + 1
        while j < len(text) and text[j] == "#":
            j += 1
        longest = max(longest, j - i - 1)
        i = text.find('"', i + 1)
    return longest + 1


def format_raw_string(text: str) -> str:
    """A raw string ``r#"…"#`` holding ``text`` verbatim, with the fewest ``#``.

    Raises:
        ValueError: ``text`` would need more than 255 ``#`` (the raw-string limit).
    """
    n = _hashes_needed(text)
    if n > _MAX_HASHES:
        raise ValueError("raw string would need more than 255 '#'")
    hashes = "#" * n
    return f'r{hashes}"{text}"{hashes}'
