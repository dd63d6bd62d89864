"""Actions of WAF custom rules and their parameters.

Cloudflare's pages: https://developers.cloudflare.com/ruleset-engine/rules-language/actions/,
https://developers.cloudflare.com/waf/custom-rules/skip/options/ (skip parameters),
https://developers.cloudflare.com/waf/custom-rules/ (plan limits).

This module owns the action vocabulary, the validation of ``action_parameters`` and the
plan limits of custom rules (``Limits``). It knows nothing about expressions or evaluation order
(that is ``ruleset.py``). Every check happens at load time: an ``Action`` object that
exists is valid, so evaluation never re-checks anything.

Decisions on points Cloudflare's documentation leaves open, also in docs/rulesets.md:

* ``block`` custom response: ``status_code`` defaults to 403, ``content_type`` to
  ``text/plain``, ``content`` to ``""``. "Valid for the type": ``application/json`` must
  parse as JSON, ``text/xml`` must be well-formed XML; ``text/html`` and ``text/plain``
  only need to be UTF-8 text. 2 KB means 2,048 bytes of UTF-8.
* ``skip`` needs at least one of ``ruleset``/``phase``/``phases``/``products``;
  ``phase: "current"`` must stand alone (Cloudflare's skip options only let the other three
  combine) and is refused in account-level (``kind: root``) rulesets (zone level only).
* ``logging`` is accepted on ``skip`` rules only (as the Rulesets API says) and defaults to enabled.
* ``execute`` takes ``{"id": "<ruleset id>"}``; the target must be a ``custom`` ruleset
  (resolved and checked for cycles by ``ruleset.py``).
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgerules.errors import RuleError

__all__ = [
    "ACTIONS",
    "CHALLENGE_ACTIONS",
    "CONTENT_TYPES",
    "SKIP_PHASES",
    "SKIP_PRODUCTS",
    "Action",
    "BlockResponse",
    "Limits",
    "parse_action",
]

CHALLENGE_ACTIONS = ("managed_challenge", "js_challenge", "challenge")
ACTIONS = ("block", *CHALLENGE_ACTIONS, "skip", "log", "execute")
CONTENT_TYPES = ("text/html", "text/plain", "application/json", "text/xml")
SKIP_PHASES = ("http_ratelimit", "http_request_sbfm", "http_request_firewall_managed")
SKIP_PRODUCTS = ("zoneLockdown", "uaBlock", "bic", "hot", "securityLevel", "rateLimit", "waf")
MAX_CONTENT_BYTES = 2048
DEFAULT_BLOCK_STATUS = 403

# Actions of other phases or of the deprecated Firewall Rules, with what to write instead.
_NOT_CUSTOM_RULE_ACTIONS = {
    "allow": 'there is no "allow" action in custom rules; use "skip" (e.g. '
    'action_parameters {"ruleset": "current"}) to let a request past the remaining rules',
    "bypass": 'the Firewall Rules "bypass" action is replaced by "skip"',
    "rewrite": '"rewrite" belongs to transform phases, not to custom rules',
    "redirect": '"redirect" belongs to redirect phases, not to custom rules',
    "route": '"route" belongs to origin rules, not to custom rules',
    "set_config": '"set_config" belongs to configuration rules, not to custom rules',
    "serve_error": '"serve_error" belongs to custom error rules, not to custom rules',
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Plan limits of custom rules. Defaults are the Enterprise values."""

    max_rules: int = 1000
    max_expression_length: int = 4096
    max_custom_rulesets: int = 10
    regex: bool = True
    log: bool = True
    custom_response: bool = True
    hmac: bool = True
    account_rulesets: bool = True
    plan: str = "enterprise"
    # RE2 instructions of all the ruleset's regexes together (``Filter.regex_size``; one
    # rule may hold up to 100,000: lang/regex.py). Not a Cloudflare plan limit: it bounds
    # the memory a ruleset's compiled regexes take (~16 bytes per instruction, plus each
    # regex's DFA cache). The default is ten rules at the per-rule maximum, or ~10,000
    # typical patterns (docs/rulesets.md, "Limits").
    max_regex_program: int = 1_000_000

    PLANS: ClassVar[tuple[str, ...]] = ("free", "pro", "business", "enterprise")

    @classmethod
    def for_plan(cls, plan: str) -> Limits:
        """Cloudflare's plan table: ``free``, ``pro``, ``business`` or ``enterprise``."""
        table = {
            "free": cls(5, 4096, 1, False, False, False, False, False, "free"),
            "pro": cls(20, 4096, 2, False, False, True, True, False, "pro"),
            "business": cls(100, 4096, 5, True, False, True, True, False, "business"),
            "enterprise": cls(),
        }
        try:
            return table[plan]
        except (KeyError, TypeError):  # TypeError: an unhashable "plan"
            raise RuleError(
                f"unknown plan {plan!r} (expected one of {', '.join(cls.PLANS)})"
            ) from None

    @classmethod
    def unlimited(cls) -> Limits:
        """No rule-count, length or total regex size cap (benchmarks, generated
        rulesets)."""
        return cls(max_rules=10**9, max_expression_length=10**9, max_custom_rulesets=10**9,
                   plan="unlimited", max_regex_program=10**12)

    @classmethod
    def coerce(cls, value: Limits | str | dict[str, Any] | None) -> Limits:
        if value is None:
            return cls()
        if isinstance(value, Limits):
            return value
        if isinstance(value, str):
            return cls.for_plan(value)
        if isinstance(value, dict):
            base = cls.for_plan(value["plan"]) if "plan" in value else cls()
            fields = {k: v for k, v in value.items() if k != "plan"}
            unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise RuleError(f"unknown limit {sorted(unknown, key=str)[0]!r}")
            for name, val in fields.items():
                expected = type(getattr(base, name))
                if expected is bool and type(val) is not bool:
                    raise RuleError(f"limit {name!r} must be true or false, not {val!r}")
                if expected is int and (type(val) is not int or val < 0):
                    raise RuleError(f"limit {name!r} must be a non-negative integer, not "
                                    f"{val!r}")
            return cls(**{**_asdict(base), **fields})
        raise RuleError(f"limits must be a plan name, a dict or a Limits, not {value!r}")


def _asdict(limits: Limits) -> dict[str, Any]:
    return {f.name: getattr(limits, f.name) for f in dataclasses.fields(limits)}


@dataclass(frozen=True, slots=True)
class BlockResponse:
    """The custom response of a ``block`` rule. ``body`` is the encoded content."""

    status: int = DEFAULT_BLOCK_STATUS
    content_type: str = "text/plain"
    body: bytes = b""

    @property
    def content(self) -> str:
        return self.body.decode("utf-8")

    def to_dict(self) -> dict[str, object]:
        return {"status_code": self.status, "content_type": self.content_type,
                "content": self.content}


@dataclass(frozen=True, slots=True)
class Action:
    """A validated action. ``name`` is the API value; only the fields of that action are
    meaningful: ``response`` (block), ``skip_ruleset``/``skip_phase``/``skip_phases``/
    ``skip_products`` (skip), ``execute_id`` (execute). ``log_matches`` is the rule's
    ``logging.enabled`` for skip rules (True otherwise)."""

    name: str
    response: BlockResponse | None = None
    skip_ruleset: bool = False
    skip_phase: bool = False
    skip_phases: tuple[str, ...] = ()
    skip_products: tuple[str, ...] = ()
    execute_id: str | None = None
    log_matches: bool = True
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def terminating(self) -> bool:
        return self.name == "block" or self.name in CHALLENGE_ACTIONS

    @property
    def outcome(self) -> str | None:
        """The decision outcome a terminating action produces (None otherwise)."""
        if self.name == "block":
            return "block"
        if self.name in CHALLENGE_ACTIONS:
            return "challenge"
        return None


def _problem(message: str) -> RuleError:
    return RuleError(message)


def _parse_response(obj: object, limits: Limits) -> BlockResponse:
    if not isinstance(obj, dict):
        raise _problem("action_parameters.response must be an object")
    unknown = set(obj) - {"status_code", "content_type", "content"}
    if unknown:
        raise _problem(f"unknown key {sorted(unknown)[0]!r} in action_parameters.response "
                       "(expected status_code, content_type, content)")
    if not limits.custom_response:
        raise _problem(f"custom block responses are not available on the {limits.plan} plan")
    status = obj.get("status_code", DEFAULT_BLOCK_STATUS)
    if type(status) is not int or not 400 <= status <= 499:
        raise _problem(f"response status_code must be an integer 400-499, not {status!r}")
    ctype = obj.get("content_type", "text/plain")
    if ctype not in CONTENT_TYPES:
        raise _problem(f"response content_type {ctype!r} is not allowed "
                       f"(allowed: {', '.join(CONTENT_TYPES)})")
    content = obj.get("content", "")
    if not isinstance(content, str):
        raise _problem("response content must be a string")
    body = content.encode("utf-8", "surrogatepass")
    if len(body) > MAX_CONTENT_BYTES:
        raise _problem(f"response content is {len(body)} bytes; the limit is "
                       f"{MAX_CONTENT_BYTES} bytes (2 KB)")
    if ctype == "application/json":
        try:
            json.loads(content)
        except ValueError as exc:
            raise _problem(f"response content is not valid JSON: {exc}") from None
    elif ctype == "text/xml":
        try:
            ET.fromstring(content)
        except ET.ParseError as exc:
            raise _problem(f"response content is not well-formed XML: {exc}") from None
    return BlockResponse(status, ctype, body)


def _parse_skip(params: dict[str, Any], kind: str | None) -> dict[str, Any]:
    unknown = set(params) - {"ruleset", "phase", "phases", "products"}
    if unknown:
        raise _problem(f"unknown skip parameter {sorted(unknown)[0]!r} "
                       "(expected ruleset, phase, phases, products)")
    if not params:
        raise _problem("skip needs action_parameters: ruleset, phase, phases or products")
    out: dict[str, Any] = {}
    if "ruleset" in params:
        if params["ruleset"] != "current":
            raise _problem(f'skip ruleset must be "current", not {params["ruleset"]!r}')
        out["skip_ruleset"] = True
    if "phase" in params:
        if params["phase"] != "current":
            raise _problem(f'skip phase must be "current", not {params["phase"]!r}')
        if len(params) > 1:
            raise _problem('skip phase "current" cannot be combined with other skip '
                           "parameters (it already skips the rest of the phase)")
        if kind == "root":
            raise _problem('skip phase "current" is only available in zone-level rulesets')
        out["skip_phase"] = True
    for key, allowed, dest in (("phases", SKIP_PHASES, "skip_phases"),
                               ("products", SKIP_PRODUCTS, "skip_products")):
        if key not in params:
            continue
        values = params[key]
        if not isinstance(values, list) or not values:
            raise _problem(f"skip {key} must be a non-empty array")
        for v in values:
            if v not in allowed:
                near = [a for a in allowed if isinstance(v, str) and a.lower() == v.lower()]
                hint = f' (names are case-sensitive: did you mean "{near[0]}"?)' if near else ""
                raise _problem(f"skip {key}: {v!r} is not one of {', '.join(allowed)}{hint}")
        if len(set(values)) != len(values):
            raise _problem(f"skip {key} lists a value twice")
        out[dest] = tuple(values)
    return out


def parse_action(
    name: object,
    params: object,
    *,
    logging: object = None,
    limits: Limits | None = None,
    kind: str | None = None,
) -> Action:
    """Validate ``action`` + ``action_parameters`` (+ the rule's ``logging``) of one rule
    in a ruleset of ``kind``. Raises ``RuleError`` with a message naming the problem."""
    limits = limits or Limits()
    if not isinstance(name, str):
        raise _problem(f"action must be a string, not {name!r}")
    if name not in ACTIONS:
        if name in _NOT_CUSTOM_RULE_ACTIONS:
            raise _problem(f"unsupported action {name!r}: {_NOT_CUSTOM_RULE_ACTIONS[name]}")
        import difflib

        close = difflib.get_close_matches(name, ACTIONS, n=1, cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise _problem(f"unknown action {name!r}{hint} (expected one of {', '.join(ACTIONS)})")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _problem("action_parameters must be an object")
    log_matches = True
    if logging is not None:
        if name != "skip":
            raise _problem('"logging" applies to skip rules only')
        if not isinstance(logging, dict) or set(logging) - {"enabled"}:
            raise _problem('logging must be {"enabled": true|false}')
        enabled = logging.get("enabled", True)
        if type(enabled) is not bool:
            raise _problem("logging.enabled must be true or false")
        log_matches = enabled
    if name == "block":
        unknown = set(params) - {"response"}
        if unknown:
            raise _problem(f"unknown block parameter {sorted(unknown)[0]!r} (expected response)")
        response = _parse_response(params["response"], limits) if "response" in params else None
        return Action(name, response=response, params=params)
    if name in CHALLENGE_ACTIONS or name == "log":
        if params:
            raise _problem(f"{name} takes no action_parameters (got {sorted(params)[0]!r})")
        if name == "log" and not limits.log:
            raise _problem(f"the log action is not available on the {limits.plan} plan")
        return Action(name, params=params)
    if name == "skip":
        return Action(name, log_matches=log_matches, params=params, **_parse_skip(params, kind))
    # execute
    unknown = set(params) - {"id"}
    if unknown:
        raise _problem(f"unknown execute parameter {sorted(unknown)[0]!r} (expected id)")
    target = params.get("id")
    if not isinstance(target, str) or not target:
        raise _problem('execute needs action_parameters {"id": "<custom ruleset id>"}')
    return Action(name, execute_id=target, params=params)
