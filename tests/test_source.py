"""The caret renderer: positions and widths in the original text, tabs expanded."""

from __future__ import annotations

from edgerules.lang.source import Source, Span, render_error


def test_a_span_holding_tabs_is_underlined_entirely() -> None:
    text = 'a eq\t\t"x" zz'
    out = render_error("m", Source(text), Span(4, 9)).splitlines()
    assert out[1] == '  | a eq        "x" zz'
    assert out[2] == "  |     " + "^" * 11  # two tabs (4 columns each) and "x" with quotes


def test_end_of_input_caret_sits_past_the_last_character() -> None:
    out = render_error("unexpected end of input", Source("abc"), Span(3, 3)).splitlines()
    assert out[2] == "  |    ^"


def test_a_span_running_into_the_next_line_is_cut_at_the_line_end() -> None:
    out = render_error("m", Source("ab\ncd"), Span(1, 4)).splitlines()
    assert out[0] == "error: m (line 1, column 2)"
    assert out[2] == "  |  ^"


def test_second_line_positions_and_the_source_name() -> None:
    out = render_error("m", Source("ssl and\n  http.hots", name="rule 'x'"), Span(10, 19))
    assert out.splitlines() == [
        "error: m (rule 'x', line 2, column 3)",
        "  |   http.hots",
        "  |   ^^^^^^^^^",
    ]
