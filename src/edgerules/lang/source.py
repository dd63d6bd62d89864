"""Source text, spans into it, and the caret renderer for errors.

Invariants: a ``Span`` is a half-open ``[start, end)`` range of offsets into the
**original** text (nothing is stripped or rewritten before parsing). Lines and columns are
1-based and computed only when rendering. End-of-input errors use ``Span(len, len)``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Source", "Span", "render_error"]


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open character range ``[start, end)`` in a ``Source``'s text."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"bad span {self.start}..{self.end}")

    def cover(self, other: Span) -> Span:
        """The smallest span holding both."""
        return Span(min(self.start, other.start), max(self.end, other.end))


@dataclass(frozen=True, slots=True)
class Source:
    """An expression's text and a name for messages (``rule "block-ua" in rules.toml``)."""

    text: str
    name: str | None = None

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of ``offset`` (clamped into the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        line_start = self.text.rfind("\n", 0, offset) + 1
        return line, offset - line_start + 1

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line`` without its newline (CR stripped too)."""
        lines = self.text.split("\n")
        if 1 <= line <= len(lines):
            return lines[line - 1].rstrip("\r")
        return ""


def _expand_tabs(text: str, column: int) -> tuple[str, int]:
    """Expand tabs to 4 spaces and map a 1-based ``column`` into the expanded text."""
    prefix = text[: column - 1].replace("\t", "    ")
    return text.replace("\t", "    "), len(prefix) + 1


def render_error(message: str, source: Source, span: Span, hint: str | None = None) -> str:
    """Render an error as a header, the offending line and a caret line.

    ::

        error: unknown field "http.hots" (line 1, column 1)
          | http.hots eq "a.com"
          | ^^^^^^^^^ did you mean "http.host"?

    One ``^`` per column of the span after tab expansion (at least one), clamped to the end of the line
    the span starts on; the hint follows the carets.
    """
    line, column = source.line_col(span.start)
    where = f"line {line}, column {column}"
    if source.name:
        where = f"{source.name}, {where}"
    raw_line = source.line_text(line)
    shown, shown_col = _expand_tabs(raw_line, column)
    end_line, end_col = source.line_col(span.end)
    if end_line != line:
        end_col = len(raw_line) + 1  # a span running past its line is cut at the line's end
    # Widths are measured after tab expansion, so a span holding a TAB is fully underlined.
    _, shown_end = _expand_tabs(raw_line, min(end_col, len(raw_line) + 1))
    width = max(1, shown_end - shown_col)
    # The caret may sit one past the line's end (unexpected end of input).
    carets = " " * (shown_col - 1) + "^" * width
    tail = f" {hint}" if hint else ""
    return f"error: {message} ({where})\n  | {shown}\n  | {carets}{tail}"
