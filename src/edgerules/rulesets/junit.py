"""Policy-test results as JUnit XML (``edgerules test --junit FILE``), the format CI
systems (GitHub Actions reporters, GitLab, Jenkins) read.

Owns the mapping: one ``<testsuite>`` per cases file (``name`` = the file, property
``ruleset``), one ``<testcase>`` per case (``classname`` = the cases file, ``name`` =
the case's name); a failing case has a ``<failure>`` whose message is its first problem
and whose text holds every problem, the request and the trace; a cases file that could
not run is one ``<testcase>`` with an ``<error>``. Written with ``xml.etree``, so any
text (quotes, ``<``, non-ASCII) is escaped; characters XML 1.0 cannot hold (control
characters) are replaced by ``\\uXXXX``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

__all__ = ["junit_xml"]

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _failure_text(result: Any) -> str:
    lines = list(result.problems)
    if result.case.request:
        lines.append("request: " + ", ".join(f"{k}={v!r}" for k, v in result.case.request.items()))
    if result.case.client_cert is not None:
        lines.append(f"client_cert: {result.case.client_cert}")
    if result.trace is not None:
        lines += ["trace:", *("  " + x for x in result.trace.render().splitlines())]
    return "\n".join(lines)


def junit_xml(suites: Sequence[tuple[str, str, Any, str | None]]) -> str:
    """``suites``: ``(cases file, ruleset, Report or None, error or None)``."""
    root = ET.Element("testsuites", name="edgerules policy tests")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for cases_file, ruleset, report, error in suites:
        suite = ET.SubElement(root, "testsuite", name=_clean(cases_file))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="ruleset", value=_clean(ruleset))
        tests = failures = errors = 0
        if report is None:
            case = ET.SubElement(suite, "testcase", classname=_clean(cases_file),
                                 name="load cases and ruleset")
            err = ET.SubElement(case, "error", message=_clean((error or "").split("\n", 1)[0]))
            err.text = _clean(error or "")
            tests, errors = 1, 1
        else:
            for result in report.results:
                tests += 1
                case = ET.SubElement(suite, "testcase", classname=_clean(cases_file),
                                     name=_clean(result.case.name))
                if not result.passed:
                    failures += 1
                    failure = ET.SubElement(case, "failure",
                                            message=_clean(result.problems[0]))
                    failure.text = _clean(_failure_text(result))
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", "0")
        for key, value in (("tests", tests), ("failures", failures), ("errors", errors)):
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
