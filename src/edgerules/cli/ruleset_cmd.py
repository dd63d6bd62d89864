"""``edgerules test``, ``edgerules trace`` and ``edgerules lint``: rulesets on the command line.

This module owns only argument handling and output; loading, evaluation, tracing and
the policy-test runner live in ``ruleset.py`` and ``policytest.py``. Exit codes (the
same for every command, docs/cli.md): 0 ok; 1 a failing case, a problem ``lint`` found,
a block seen by ``trace --exit-code``; 2 the command could not run (usage, a ruleset or
cases file that does not load, a bad request file). Machine output (``--json``,
``--dump``, ``--junit -``) is the only thing on stdout; status lines go to stderr then.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgerules.errors import RuleError

__all__ = ["register"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--list", dest="lists", action="append", default=[], metavar="PATH",
                   help="named-list file or directory (repeatable)")
    p.add_argument("--with", dest="extra", action="append", default=[], metavar="RULESET",
                   help="another ruleset (custom ruleset for execute, or an account-level "
                        "entry point); repeatable")
    p.add_argument("--plan", choices=("free", "pro", "business", "enterprise"),
                   help="limits of this plan (default: enterprise)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "test", help="run policy tests (cases) against a ruleset",
        description="Run the cases of a policy-test file against a ruleset. Without CASES, "
                    "RULESET's sibling <name>.tests.toml is used; a single *.tests.toml "
                    "argument uses the ruleset its 'ruleset' key names.")
    p.add_argument("ruleset", metavar="RULESET", help="ruleset file (.json/.toml) or a cases file")
    p.add_argument("cases", metavar="CASES", nargs="*", help="policy-test files (*.tests.toml)")
    p.add_argument("-v", "--verbose", action="store_true", help="show traces of passing cases too")
    p.add_argument("--junit", metavar="FILE",
                   help="also write the results as JUnit XML (for CI systems)")
    _add_common(p)
    p.set_defaults(func=_cmd_test)

    p = subparsers.add_parser(
        "trace", help="explain the decision for one request, rule by rule",
        description="Evaluate one request and show every rule (matched, not matched, "
                    "disabled, skipped) and the value of each sub-expression of the "
                    "deciding rule.")
    p.add_argument("ruleset", metavar="RULESET")
    p.add_argument("--fields", dest="request", metavar="FILE.json",
                   help='request fields as JSON ({"http.host": "…", …}, or {"request": {…}, '
                        '"client_cert": "valid"}); "-" reads stdin')
    # the option's name before 0.2 (one name across commands now: --fields, as in eval)
    p.add_argument("--request", "-r", dest="request", help=argparse.SUPPRESS)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="set one field (VALUE is JSON if it parses, else a string); repeatable")
    p.add_argument("--client-cert", metavar="PROFILE",
                   help="client certificate profile: none, valid, expired, revoked, "
                        "wrong_ca, self_signed, not_yet_valid, not_requested")
    p.add_argument("--explain", action="append", default=[], metavar="REF",
                   help="also show sub-expression values of this rule (repeatable)")
    p.add_argument("--all", action="store_true", help="show sub-expression values of every rule")
    p.add_argument("--json", action="store_true",
                   help="print the decision as JSON (with the response a block is answered with)")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 1 when the request is blocked or challenged (0 when allowed)")
    _add_common(p)
    p.set_defaults(func=_cmd_trace)

    p = subparsers.add_parser(
        "lint", help="load rulesets and report every broken rule",
        description="Load each ruleset (compiling every rule) and report all problems; "
                    "--dump prints the normalised ruleset as JSON or TOML.")
    p.add_argument("rulesets", metavar="RULESET", nargs="+")
    p.add_argument("--dump", choices=("json", "toml"),
                   help="print the loaded ruleset (only the document goes to stdout)")
    _add_common(p)
    p.set_defaults(func=_cmd_lint)


def _lists(args: argparse.Namespace) -> Any:
    if not args.lists:
        return None
    from edgerules.rulesets.lists import NamedLists

    return NamedLists.load(*args.lists)


def _target(path: str, args: argparse.Namespace, lists: Any = None) -> Any:
    from edgerules.rulesets import Policy, Ruleset

    lists = lists if lists is not None else _lists(args)
    rs = Ruleset.load(path, lists=lists, limits=args.plan)
    if not args.extra:
        return rs
    others = [Ruleset.load(p, lists=lists, limits=args.plan) for p in args.extra]
    return Policy([rs, *others], limits=args.plan)


def _cmd_test(args: argparse.Namespace) -> int:
    from edgerules.rulesets.policytest import load_cases, run_cases

    ruleset: str | None = args.ruleset
    case_paths = list(args.cases)
    if not case_paths:
        if ruleset is not None and ruleset.endswith(".tests.toml"):
            case_paths, ruleset = [ruleset], None
        else:
            p = Path(args.ruleset)
            sibling = p.with_name(p.name.rsplit(".", 1)[0] + ".tests.toml")
            if not sibling.exists():
                print(f"error: no CASES given and {sibling} does not exist", file=sys.stderr)
                return 2
            case_paths = [str(sibling)]
    all_ok = True
    broken = False
    suites: list[tuple[str, str, Any, str | None]] = []
    out = sys.stderr if args.junit == "-" else sys.stdout  # stdout is the XML then
    for cpath in case_paths:
        try:
            cf = load_cases(cpath)
            lists = _lists(args)
            if ruleset is None:
                target = cf.load_target(lists=lists)
                shown = cf.ruleset
            elif args.extra or args.plan:
                target = _target(ruleset, args, lists)
                shown = ruleset
            else:
                target = cf.load_target(ruleset, lists=lists)
                shown = ruleset
        except RuleError as exc:
            if len(case_paths) == 1 and not args.junit:
                raise
            # One broken cases file does not hide the results of the others.
            print(str(exc), file=sys.stderr)
            suites.append((cpath, str(ruleset or ""), None, str(exc)))
            broken = True
            continue
        report = run_cases(target, cf.cases, trace="always" if args.verbose else "failures")
        report.title = f"{cpath} against {shown}:"
        print(report.render(verbose=args.verbose), file=out)
        suites.append((cpath, str(shown), report, None))
        all_ok = all_ok and report.ok
    if args.junit:
        from edgerules.rulesets.junit import junit_xml

        _write_output(args.junit, junit_xml(suites))
    if broken:
        return 2  # some cases could not run: an input error outranks failures
    return 0 if all_ok else 1


def _parse_set(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise RuleError(f"--set expects FIELD=VALUE, not {text!r}")
    try:
        value: object = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def _cmd_trace(args: argparse.Namespace) -> int:
    from edgerules.rulesets.policytest import _request_context, profile_fields

    target = _target(args.ruleset, args)
    request: dict[str, object] = {}
    profile = args.client_cert
    if args.request:
        try:
            text = sys.stdin.read() if args.request == "-" else Path(args.request).read_text(
                encoding="utf-8")
            obj = json.loads(text)
        except OSError as exc:
            raise RuleError(f"cannot read {args.request}: {exc.strerror or exc}") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise RuleError(f"{args.request}: invalid JSON: {exc}") from None
        except RecursionError:
            raise RuleError(f"{args.request}: invalid JSON: arrays or objects nested too "
                            "deeply") from None
        if not isinstance(obj, dict):
            raise RuleError(f"{args.request}: expected a JSON object of fields")
        if "request" in obj and isinstance(obj["request"], dict):  # case shape
            profile = profile or obj.get("client_cert")
            request.update(obj["request"])
        else:
            request.update(obj)
    for item in args.sets:
        name, value = _parse_set(item)
        request[name] = value
    values: dict[str, object] = {}
    if profile:
        values.update(profile_fields(profile))
    values.update(request)
    ctx = _request_context(target, values)
    explain: Any = "all" if args.all else args.explain
    trace = target.trace(ctx, explain=explain)
    if not args.all:
        _check_explain(target, trace, args.explain)
    decision = trace.decision
    if args.json:
        out = decision.to_dict()
        out["status"] = decision.status
        if decision.outcome != "allow":
            out["response"] = _answer(decision)
        out["rules"] = [
            {"ruleset": s.ruleset.name, "rule": s.rule.label, "action": s.rule.action,
             "status": s.status, "note": s.note}
            for s in trace.steps
        ]
        print(json.dumps(out, indent=2))
    else:
        print(trace.render())
    if args.exit_code and decision.outcome != "allow":
        return 1
    return 0


def _answer(decision: Any) -> dict[str, Any]:
    """The response a blocked or challenged request gets: the rule's custom response, or
    the default page the proxy and the middleware answer with (``default: true``)."""
    if decision.response is not None:
        answer = dict(decision.response.to_dict())
        answer["default"] = False
        return answer
    from edgerules.enforcement.decision import block_page, verdict_from_decision

    status, ctype, body = block_page(verdict_from_decision(decision), None)
    return {"status_code": status, "content_type": ctype.decode("latin-1"),
            "content": body.decode("utf-8", "replace"), "default": True}


def _write_output(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise RuleError(f"cannot write {path}: {exc.strerror or exc}") from None


def _check_explain(target: Any, trace: Any, refs: list[str]) -> None:
    """An ``--explain`` naming no rule is an error, not silently nothing explained."""
    rulesets = [target] if not hasattr(target, "entry_points") else [
        *target.entry_points, *target.custom]
    rules = [r for rs in rulesets for r in rs.rules] + [step.rule for step in trace.steps]
    known = {name for r in rules for name in (r.ref, r.id, r.label) if name}
    unknown = [ref for ref in refs if ref not in known]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise RuleError(f"--explain {unknown[0]!r}: no rule with this ref or id{hint} "
                        f"(rules: {', '.join(sorted(known)) or 'none'})")


def _cmd_lint(args: argparse.Namespace) -> int:
    from edgerules.rulesets import Policy, Ruleset

    if args.dump and len(args.rulesets) > 1:
        raise RuleError("--dump prints one ruleset: give one RULESET (the output must be "
                        "one document)")
    lists = _lists(args)
    status = 0
    loaded = []
    note = sys.stderr if args.dump else sys.stdout  # stdout holds only the document then
    for path in args.rulesets:
        try:
            rs = Ruleset.load(path, lists=lists, limits=args.plan)
        except RuleError as exc:
            print(str(exc), file=sys.stderr)
            status = 1
            continue
        loaded.append(rs)
        enabled = sum(1 for r in rs.rules if r.enabled)
        print(f"{path}: ok, {len(rs.rules)} rules ({enabled} enabled); fields read: "
              f"{', '.join(sorted(rs.fields)) or 'none'}", file=note)
        if args.dump == "json":
            print(rs.to_json(), end="")
        elif args.dump == "toml":
            print(rs.to_toml(), end="")
    if status == 0 and (args.extra or any(rs.custom_rulesets for rs in loaded)):
        others = [Ruleset.load(p, lists=lists, limits=args.plan) for p in args.extra]
        try:
            Policy([*loaded, *others], limits=args.plan)
        except RuleError as exc:
            print(str(exc), file=sys.stderr)
            status = 1
    return status
