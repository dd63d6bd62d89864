"""Policy tests: cases of "this request gets this decision", and the certificate profiles.

This module owns the policy-test file format (TOML), the named client-certificate
profiles standing for the ``cf.tls_client_auth.*`` values an mTLS hostname produces,
and the runner with its readable report. It reads files only in ``load_cases``; the CLI
(``edgerules test``) and ``edgerules.testing`` (pytest) are thin layers over it.

File format (``rules/<name>.tests.toml``)::

    ruleset = "mtls-required.json"      # optional: the ruleset under test (relative path)
    rulesets = ["custom.json"]          # optional: more rulesets (custom/root) -> a Policy
    lists = ["lists/office_ips.txt"]    # optional: named-list files (relative paths)
    plan = "enterprise"                 # optional: limits (free/pro/business/enterprise)

    [defaults]                          # optional: merged under every case
    request = { "http.host" = "api.localhost" }
    client_cert = "none"

    [[case]]
    name = "valid certificate is let through"
    request = { "http.request.uri.path" = "/v1/orders" }
    client_cert = "valid"               # a profile (table below)
    cert = { cert_serial = "01AB" }     # optional overrides of the profile's values
    expect = { outcome = "allow" }

    [[case]]
    name = "no certificate is blocked"
    client_cert = "none"
    expect = { outcome = "block", rule = "mtls_enforce", status = 403 }

``expect`` keys: ``outcome`` (required: block/allow/challenge), ``rule`` (deciding rule's
ref; ``""`` = no rule), ``action``, ``status``, ``content_type``, ``body_contains``,
``logged`` and ``skipped`` (lists of refs, compared exactly, in order).

Certificate profiles (values on an mTLS-enabled hostname; synthetic but well-formed —
DNs, serials, fingerprints and SKIs have the formats of Cloudflare's ``cf.tls_client_auth.*``
fields, https://developers.cloudflare.com/ssl/client-certificates/client-certificate-variables/;
a case overrides any of them with ``cert``):

=============  =========  ========  =======  =============================================
profile        presented  verified  revoked  descriptive fields
=============  =========  ========  =======  =============================================
none           false      false     false    all ""  (mTLS host, no certificate sent)
not_requested  false      false     false    all ""  (hostname without mTLS)
valid          true       true      false    leaf issued by the "edgerules Test CA"
revoked        true       true      true     as valid, another serial (managed CA revoked)
expired        true       false     false    as valid, not_after in the past
not_yet_valid  true       false     false    as valid, not_before in the future
wrong_ca       true       false     false    issued by an unknown CA (other issuer DN/SKI)
self_signed    true       false     false    issuer DN/SKI/serial = subject's own
=============  =========  ========  =======  =============================================

A profile says what the mTLS layer reports, not how it got there: the end-to-end tests
of the validator make real certificates for the same names.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgerules.errors import RuleError
from edgerules.rulesets.errors import RulesetError

__all__ = [
    "PROFILES",
    "TEST_CA_DN",
    "TEST_CA_SKI",
    "VALID_FINGERPRINT_SHA256",
    "VALID_SERIAL",
    "Case",
    "CaseFile",
    "CaseResult",
    "Report",
    "check_decision",
    "load_cases",
    "profile_fields",
    "run_cases",
]

_P = "cf.tls_client_auth."


def _hex(seed: str, n: int, *, upper: bool) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()[:n]
    return digest.upper() if upper else digest


def _empty() -> dict[str, object]:
    return {
        _P + "cert_presented": False,
        _P + "cert_verified": False,
        _P + "cert_revoked": False,
        _P + "cert_subject_dn": "",
        _P + "cert_issuer_dn": "",
        _P + "cert_subject_dn_rfc2253": "",
        _P + "cert_issuer_dn_rfc2253": "",
        _P + "cert_subject_dn_legacy": "",
        _P + "cert_issuer_dn_legacy": "",
        _P + "cert_serial": "",
        _P + "cert_issuer_serial": "",
        _P + "cert_fingerprint_sha256": "",
        _P + "cert_fingerprint_sha1": "",
        _P + "cert_not_before": "",
        _P + "cert_not_after": "",
        _P + "cert_ski": "",
        _P + "cert_issuer_ski": "",
        _P + "cert_rfc9440": "",
        _P + "cert_rfc9440_too_large": False,
        _P + "cert_chain_rfc9440": "",
        _P + "cert_chain_rfc9440_too_large": False,
    }


TEST_CA_DN = "CN=edgerules Test CA,O=edgerules,C=US"
TEST_CA_DN_LEGACY = "/C=US/O=edgerules/CN=edgerules Test CA"
TEST_CA_SKI = _hex("edgerules test ca ski", 40, upper=True)
TEST_CA_SERIAL = _hex("edgerules test ca serial", 40, upper=True)


def _leaf(
    seed: str,
    *,
    verified: bool,
    revoked: bool = False,
    cn: str = "test-client",
    issuer_dn: str = TEST_CA_DN,
    issuer_dn_legacy: str = TEST_CA_DN_LEGACY,
    issuer_ski: str | None = TEST_CA_SKI,
    issuer_serial: str | None = TEST_CA_SERIAL,
    not_before: str = "Jan 10 00:00:00 2026 GMT",
    not_after: str = "Jan 10 00:00:00 2036 GMT",
) -> dict[str, object]:
    subject = f"CN={cn},O=edgerules,C=US"
    subject_legacy = f"/C=US/O=edgerules/CN={cn}"
    ski = _hex(seed + " ski", 40, upper=True)
    serial = _hex(seed + " serial", 40, upper=True)
    if issuer_ski is None:  # self-signed: the issuer is the leaf itself
        issuer_dn, issuer_dn_legacy, issuer_ski, issuer_serial = subject, subject_legacy, ski, serial
    fake_der = b"0\x82edgerules synthetic certificate: " + seed.encode()
    values = _empty()
    values.update({
        _P + "cert_presented": True,
        _P + "cert_verified": verified,
        _P + "cert_revoked": revoked,
        _P + "cert_subject_dn": subject,
        _P + "cert_issuer_dn": issuer_dn,
        _P + "cert_subject_dn_rfc2253": subject,
        _P + "cert_issuer_dn_rfc2253": issuer_dn,
        _P + "cert_subject_dn_legacy": subject_legacy,
        _P + "cert_issuer_dn_legacy": issuer_dn_legacy,
        _P + "cert_serial": serial,
        _P + "cert_issuer_serial": issuer_serial or "",
        _P + "cert_fingerprint_sha256": hashlib.sha256(fake_der).hexdigest(),
        _P + "cert_fingerprint_sha1": hashlib.sha1(fake_der).hexdigest(),
        _P + "cert_not_before": not_before,
        _P + "cert_not_after": not_after,
        _P + "cert_ski": ski,
        _P + "cert_issuer_ski": issuer_ski,
        _P + "cert_rfc9440": ":" + base64.b64encode(fake_der).decode() + ":",
    })
    return values


PROFILES: dict[str, dict[str, object]] = {
    "none": _empty(),
    "not_requested": _empty(),
    "valid": _leaf("valid", verified=True),
    "revoked": _leaf("revoked", verified=True, revoked=True),
    "expired": _leaf("expired", verified=False, not_before="Jan 10 00:00:00 2024 GMT",
                     not_after="Jan 10 00:00:00 2025 GMT"),
    "not_yet_valid": _leaf("not_yet_valid", verified=False,
                           not_before="Jan 10 00:00:00 2099 GMT",
                           not_after="Jan 10 00:00:00 2100 GMT"),
    "wrong_ca": _leaf("wrong_ca", verified=False, issuer_dn="CN=Unknown CA,O=Elsewhere,C=US",
                      issuer_dn_legacy="/C=US/O=Elsewhere/CN=Unknown CA",
                      issuer_ski=_hex("unknown ca ski", 40, upper=True), issuer_serial=""),
    "self_signed": _leaf("self_signed", verified=False, cn="self-signed-client",
                         issuer_ski=None),
}
VALID_FINGERPRINT_SHA256 = str(PROFILES["valid"][_P + "cert_fingerprint_sha256"])
VALID_SERIAL = str(PROFILES["valid"][_P + "cert_serial"])


def profile_fields(profile: str = "none", overrides: Mapping[str, object] | None = None
                   ) -> dict[str, object]:
    """The ``cf.tls_client_auth.*`` values of a profile, with ``overrides`` applied
    (keys with or without the ``cf.tls_client_auth.`` prefix)."""
    try:
        values = dict(PROFILES[profile])
    except (KeyError, TypeError):
        raise RuleError(f"unknown client certificate profile {profile!r} "
                        f"(profiles: {', '.join(PROFILES)})") from None
    if overrides is not None and not isinstance(overrides, Mapping):
        raise RuleError(f"certificate overrides must be a mapping of field values, not "
                        f"{type(overrides).__name__}")
    for key, value in (overrides or {}).items():
        if not isinstance(key, str):
            raise RuleError(f"unknown client certificate field {key!r}")
        full = key if key.startswith(_P) else _P + key
        if full not in values:
            raise RuleError(f"unknown client certificate field {key!r}")
        values[full] = value
    return values


# --- case files ------------------------------------------------------------------------------

_EXPECT_KEYS = ("outcome", "rule", "action", "status", "content_type", "body_contains",
                "logged", "skipped")
_CASE_KEYS = ("name", "request", "client_cert", "cert", "expect", "explain")
_FILE_KEYS = ("ruleset", "rulesets", "lists", "plan", "defaults", "case")


@dataclass(frozen=True)
class Case:
    name: str
    request: dict[str, object]
    client_cert: str | None
    cert: dict[str, object]
    expect: dict[str, object]
    index: int = 0

    def fields(self) -> dict[str, object]:
        """Every field value of the request: profile values, then the request's."""
        out: dict[str, object] = {}
        if self.client_cert is not None:
            out.update(profile_fields(self.client_cert, self.cert))
        elif self.cert:
            out.update(profile_fields("valid", self.cert))
        out.update(self.request)
        return out


@dataclass
class CaseFile:
    path: Path | None
    cases: list[Case]
    ruleset: Path | None = None
    rulesets: list[Path] = field(default_factory=list)
    lists: list[Path] = field(default_factory=list)
    plan: str | None = None

    def load_target(self, ruleset: str | os.PathLike[str] | None = None, *,
                    lists: Mapping[str, Any] | None = None) -> Any:
        """Load the ruleset under test (``ruleset`` overrides the file's) — a ``Policy``
        when the file names extra ``rulesets``."""
        from edgerules.rulesets import Policy, Ruleset
        from edgerules.rulesets.lists import NamedLists

        path = Path(ruleset) if ruleset is not None else self.ruleset
        if path is None:
            raise RulesetError(f"{self.path}: no ruleset given (set ruleset = \"…\" in the "
                               "file or pass one)")
        if lists is None and self.lists:
            lists = NamedLists.load(*self.lists)
        rs = Ruleset.load(path, lists=lists, limits=self.plan)
        if not self.rulesets:
            return rs
        others = [Ruleset.load(p, lists=lists, limits=self.plan) for p in self.rulesets]
        return Policy([rs, *others], limits=self.plan)


def _fail(where: str, message: str) -> RulesetError:
    return RulesetError(f"{where}: {message}")


def parse_cases(obj: Mapping[str, Any], *, where: str = "cases",
                base: Path | None = None) -> CaseFile:
    """Validate a parsed case file (see the module docstring)."""
    unknown = [k for k in obj if k not in _FILE_KEYS]
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r} (expected {', '.join(_FILE_KEYS)})")
    base = base or Path(".")

    def rel(value: object, key: str) -> Path:
        if not isinstance(value, str) or not value:
            raise _fail(where, f"{key} must be a path string")
        return base / value

    defaults = obj.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - {"request", "client_cert", "cert"}:
        raise _fail(where, "[defaults] may hold request, client_cert and cert")
    for key in ("request", "cert"):
        if not isinstance(defaults.get(key, {}), dict):
            raise _fail(where, f"defaults.{key} must be a table of field values, not "
                        f"{_kind(defaults[key])}")
    raw_cases = obj.get("case", [])
    if not isinstance(raw_cases, list) or not raw_cases:
        raise _fail(where, "no [[case]] tables")
    cases = []
    names: set[str] = set()
    for i, raw in enumerate(raw_cases):
        cw = f"{where}: case #{i + 1}"
        if not isinstance(raw, dict):
            raise _fail(cw, "a case must be a table")
        if isinstance(raw.get("name"), str) and raw["name"]:
            cw = f"{where}: case {raw['name']!r}"
        bad = [k for k in raw if k not in _CASE_KEYS]
        if bad:
            raise _fail(cw, f"unknown key {bad[0]!r} (expected {', '.join(_CASE_KEYS)})")
        name = raw.get("name", f"case {i + 1}")
        if not isinstance(name, str) or not name:
            raise _fail(cw, "name must be a non-empty string")
        cw = f"{where}: case {name!r}"
        if name in names:
            raise _fail(cw, "duplicate case name")
        names.add(name)
        for key in ("request", "cert"):
            if not isinstance(raw.get(key, {}), dict):
                raise _fail(cw, f"{key} must be a table of field values, not {_kind(raw[key])}")
        request = {**defaults.get("request", {}), **raw.get("request", {})}
        cert = {**defaults.get("cert", {}), **raw.get("cert", {})}
        profile = raw.get("client_cert", defaults.get("client_cert"))
        if profile is not None and (not isinstance(profile, str) or profile not in PROFILES):
            raise _fail(cw, f"unknown client_cert profile {profile!r} "
                        f"(profiles: {', '.join(PROFILES)})")
        try:
            profile_fields(profile or "valid", cert)
        except RuleError as exc:
            raise _fail(cw, exc.message) from None
        expect = raw.get("expect")
        if not isinstance(expect, dict) or "outcome" not in expect:
            raise _fail(cw, "expect = { outcome = \"block\"|\"allow\"|\"challenge\", … } is required")
        bad = [k for k in expect if k not in _EXPECT_KEYS]
        if bad:
            raise _fail(cw, f"unknown expect key {bad[0]!r} (expected {', '.join(_EXPECT_KEYS)})")
        if expect["outcome"] not in ("block", "allow", "challenge"):
            raise _fail(cw, f"expect.outcome must be block, allow or challenge, not "
                        f"{expect['outcome']!r}")
        problem = _check_expect_types(expect)
        if problem:
            raise _fail(cw, problem)
        explain = raw.get("explain", [])
        if not isinstance(explain, list) or not all(isinstance(x, str) for x in explain):
            raise _fail(cw, "explain must be an array of rule refs")
        cases.append(Case(name, request, profile, cert, expect, i))
    lists = obj.get("lists", [])
    rulesets = obj.get("rulesets", [])
    if not isinstance(lists, list) or not isinstance(rulesets, list):
        raise _fail(where, "lists and rulesets must be arrays of paths")
    plan = obj.get("plan")
    if plan is not None and not isinstance(plan, str):
        raise _fail(where, "plan must be a string")
    if plan is not None:
        from edgerules.rulesets.actions import Limits

        if plan not in Limits.PLANS:
            raise _fail(where, f"unknown plan {plan!r} (expected one of "
                        f"{', '.join(Limits.PLANS)})")
    return CaseFile(
        path=None,
        cases=cases,
        ruleset=rel(obj["ruleset"], "ruleset") if "ruleset" in obj else None,
        rulesets=[rel(p, "rulesets") for p in rulesets],
        lists=[rel(p, "lists") for p in lists],
        plan=plan,
    )


def _kind(value: object) -> str:
    """``5`` -> ``"an integer (5)"``: the type of a wrong value, for messages."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{names.get(type(value), type(value).__name__)} ({text})"


def _check_expect_types(expect: Mapping[str, object]) -> str | None:
    """The first ``expect`` value of the wrong type, described; ``None`` when all fit."""
    for key in ("rule", "action", "content_type", "body_contains"):
        if key in expect and not isinstance(expect[key], str):
            return f"expect.{key} must be a string, not {_kind(expect[key])}"
    if "status" in expect and type(expect["status"]) is not int:
        return f"expect.status must be an integer, not {_kind(expect['status'])}"
    for key in ("logged", "skipped"):
        value = expect.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            return f"expect.{key} must be an array of rule refs, not {_kind(value)}"
    return None


def load_cases(path: str | os.PathLike[str]) -> CaseFile:
    """Read and validate a ``*.tests.toml`` file; paths inside are relative to it."""
    p = Path(path)
    try:
        obj = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesetError(f"cannot read {p}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesetError(f"{p}: invalid TOML: {exc}") from None
    except RecursionError:
        raise RulesetError(f"{p}: invalid TOML: arrays or tables nested too deeply") from None
    cf = parse_cases(obj, where=str(p), base=p.parent)
    cf.path = p
    return cf


# --- running -----------------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: Case
    decision: Any = None          # Decision, or None when the case could not run
    problems: list[str] = field(default_factory=list)
    trace: Any = None             # RulesetTrace for failures

    @property
    def passed(self) -> bool:
        return not self.problems


def check_decision(decision: Any, expect: Mapping[str, object]) -> list[str]:
    """Compare a ``Decision`` with an ``expect`` table; return the mismatches (empty =
    pass). Used by the runner and by ``edgerules.testing.assert_decision``."""
    problems = []
    rule_ref = None if decision.rule is None else decision.rule.label

    def differ(what: str, want: object, got: object) -> None:
        problems.append(f"{what}: expected {want!r}, got {got!r}")

    if expect.get("outcome") is not None and decision.outcome != expect["outcome"]:
        differ("outcome", expect["outcome"], decision.outcome)
    if "rule" in expect:
        want = expect["rule"] or None
        if rule_ref != want and not (decision.rule is not None and decision.rule.id == want):
            differ("rule", want, rule_ref)
    if "action" in expect and decision.action != expect["action"]:
        differ("action", expect["action"], decision.action)
    if "status" in expect and decision.status != expect["status"]:
        differ("status", expect["status"], decision.status)
    resp = decision.response
    if "content_type" in expect:
        got = resp.content_type if resp is not None else None
        if got != expect["content_type"]:
            differ("content_type", expect["content_type"], got)
    if "body_contains" in expect:
        body = resp.content if resp is not None else ""
        if str(expect["body_contains"]) not in body:
            differ("body_contains", expect["body_contains"], body)
    for key in ("logged", "skipped"):
        if key in expect:
            got_refs = [r.label for r in getattr(decision, key)]
            if list(expect[key]) != got_refs:  # type: ignore[call-overload]
                differ(key, list(expect[key]), got_refs)  # type: ignore[call-overload]
    return problems


def _request_context(target: Any, values: Mapping[str, object]) -> Any:
    """Check every field name against the scheme (a typo must fail the case, not be
    silently ignored) and build the one Context."""
    scheme = target.scheme
    canon: dict[str, object] = {}
    for name, value in values.items():
        fld = scheme.get(name) if isinstance(name, str) else None
        if fld is None:
            hint = scheme.suggest_field(name) if isinstance(name, str) else None
            extra = f' (did you mean "{hint}"?)' if hint else ""
            raise RuleError(f"unknown field {name!r} in request{extra}")
        canon[fld.name] = value
    # Every value is coerced (and a wrong type reported), not only those of the fields
    # the rules read: a case with a mistyped value must fail, not pass by accident.
    return scheme.context(canon)


def run_case(target: Any, case: Case, *, trace: str = "failures") -> CaseResult:
    """Run one case against a ``Ruleset`` or ``Policy``; ``trace``: ``failures``,
    ``always`` or ``never``."""
    result = CaseResult(case)
    try:
        ctx = _request_context(target, case.fields())
        result.decision = target.evaluate(ctx)
    except RuleError as exc:
        result.problems.append(f"could not evaluate: {exc}")
        return result
    result.problems = check_decision(result.decision, case.expect)
    if trace == "always" or (trace == "failures" and result.problems):
        # Also explain the rule the case expected to decide (why did it not match?).
        wanted = case.expect.get("rule")
        result.trace = target.trace(ctx, explain=[wanted] if isinstance(wanted, str) and wanted
                                    else [])
    return result


def run_cases(target: Any, cases: Iterable[Case], *, trace: str = "failures") -> Report:
    return Report([run_case(target, c, trace=trace) for c in cases])


@dataclass
class Report:
    results: list[CaseResult]
    title: str = ""

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    def render(self, *, verbose: bool = False) -> str:
        lines = []
        if self.title:
            lines.append(self.title)
        for r in self.results:
            mark = "PASS" if r.passed else "FAIL"
            got = "" if r.decision is None else f"  → {r.decision}"
            lines.append(f"  {mark}  {r.case.name}{got}")
            if not r.passed:
                for p in r.problems:
                    lines.append(f"        {p}")
                req = r.case.request
                if req:
                    shown = ", ".join(f"{k}={v!r}" for k, v in req.items())
                    lines.append(f"        request: {shown}")
                if r.case.client_cert is not None:
                    lines.append(f"        client_cert: {r.case.client_cert}")
            if r.trace is not None and (verbose or not r.passed):
                lines.append("        trace:")
                lines.extend("          " + line for line in r.trace.render().splitlines())
        n_fail = len(self.failed)
        lines.append(f"{len(self.results) - n_fail} passed, {n_fail} failed")
        return "\n".join(lines)
