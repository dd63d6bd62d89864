"""The decision hook between a request and the rules, and the pages for blocked requests.

Owns: ``Verdict`` (what the proxy needs from a decision), ``RulesetDecider`` (the
adapter over ``edgerules.Ruleset``: builds only ``ruleset.fields`` and evaluates), and
the default block / challenge responses.

Choices on points Cloudflare leaves unspecified (docs/proxy.md): a block without a custom response answers 403 with a short
page — HTML when the client accepts ``text/html``, plain text otherwise — that names the
rule and, when the certificate is missing, unverified or revoked, says that a valid
client certificate is required. A *challenge* cannot be solved by an API client behind
a TLS proxy, so it answers 403 with a "challenge required" page (never 200).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edgerules.enforcement.request_fields import (
    RequestInfo,
    connection_constant,
    connection_level,
    field_getter,
    request_fields,
)

__all__ = [
    "AllowAll",
    "Decider",
    "FunctionDecider",
    "RulesetDecider",
    "Verdict",
    "block_page",
]


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "allow" | "block" | "challenge"
    rule_ref: str | None = None
    rule_description: str | None = None
    status: int | None = None  # custom response (block action_parameters), else None
    content_type: str | None = None
    body: bytes | None = None
    decision: Any = None  # the underlying Decision, for the ASGI scope / logs
    action: str | None = None
    # The version of the ruleset that decided (the access log's "ruleset"; the proxy's
    # hot reload sets it, docs/operations.md); None when no versioned ruleset decided.
    ruleset: str | None = None


class Decider(Protocol):
    fields: frozenset[str]

    def decide(self, info: RequestInfo, client_auth: Any) -> Verdict: ...


class AllowAll:
    """No rules: every request is forwarded (useful for tests and --rules-less runs)."""

    fields: frozenset[str] = frozenset()

    def decide(self, info: RequestInfo, client_auth: Any) -> Verdict:
        return Verdict("allow")


class FunctionDecider:
    """Wraps ``fn(fields: dict, client_auth) -> Verdict`` (tests and embedding)."""

    def __init__(
        self, fn: Callable[[dict[str, Any], Any], Verdict], fields: frozenset[str]
    ) -> None:
        self.fn = fn
        self.fields = frozenset(fields)

    def decide(self, info: RequestInfo, client_auth: Any) -> Verdict:
        return self.fn(request_fields(self.fields, info, client_auth), client_auth)


def verdict_from_decision(decision: Any, *, ruleset: str | None = None) -> Verdict:
    rule = getattr(decision, "rule", None)
    response = getattr(decision, "response", None)
    status = content_type = body = None
    if response is not None:
        status = getattr(response, "status", None) or getattr(response, "status_code", None)
        content_type = getattr(response, "content_type", None)
        body = getattr(response, "body", None)
        if isinstance(body, str):
            body = body.encode("utf-8")
    return Verdict(
        outcome=str(getattr(decision, "outcome", "allow")),
        rule_ref=getattr(rule, "ref", None) if rule is not None else None,
        rule_description=getattr(rule, "description", None) if rule is not None else None,
        status=int(status) if status else None,
        content_type=content_type,
        body=body,
        decision=decision,
        action=getattr(decision, "action", None),
        ruleset=ruleset,
    )


class RulesetDecider:
    """Evaluates an ``edgerules.Ruleset`` with a context holding only ``ruleset.fields``.

    ``connection_level``: the ruleset reads only fields fixed for a connection (given its
    certificate verdict) and ``http.host``; evaluation is a pure function of the fields,
    so a server may reuse a verdict for the same connection, verdict and host.

    ``version`` (optional) names the ruleset's content; every verdict carries it.

    Per request (issue 14: rule evaluation ≤ 5 % of a proxied request), the context's
    slot list is filled directly: the defaults, then the connection-constant fields
    (``connection_values``: the ``cf.tls_client_auth.*`` and TLS/IP fields, coerced; a
    server may compute them once per connection and pass them to ``decide_with``), then
    each per-request field from its getter through the scheme's coercer — the values
    ``request_fields`` and ``Context.update(only=...)`` would give, without the
    intermediate dict and the per-name lookups. The verdict of a shared ``Decision``
    (allow, or a terminating rule's without logged or skipped rules) is built once.
    """

    def __init__(self, ruleset: Any, *, version: str | None = None) -> None:
        self.ruleset = ruleset
        self.fields = frozenset(ruleset.fields)
        self.version = version
        self.connection_level = connection_level(self.fields)
        self._verdicts: dict[int, tuple[Any, Verdict]] = {}
        self._plan = _SlotPlan.build(ruleset, self.fields)

    def decide(self, info: RequestInfo, client_auth: Any) -> Verdict:
        plan = self._plan
        if plan is None:
            values = request_fields(self.fields, info, client_auth)
            return verdict_from_decision(self.ruleset.evaluate(values), ruleset=self.version)
        return self.decide_with(plan.connection_values(info, client_auth), info)

    def connection_values(self, info: RequestInfo, client_auth: Any) -> Any:
        """The coerced connection-constant fields (opaque; for ``decide_with`` on any
        request of the same connection and ``ClientAuth``)."""
        plan = self._plan
        if plan is None:
            return client_auth
        return plan.connection_values(info, client_auth)

    def decide_with(self, connection_values: Any, info: RequestInfo) -> Verdict:
        plan = self._plan
        if plan is None:
            return self.decide(info, connection_values)
        return self._verdict(self.ruleset.evaluate(plan.context(connection_values, info)))

    def _verdict(self, decision: Any) -> Verdict:
        """``verdict_from_decision``, built once per shared ``Decision``."""
        cached = self._verdicts.get(id(decision))
        if cached is not None and cached[0] is decision:
            return cached[1]
        verdict = verdict_from_decision(decision, ruleset=self.version)
        # Only decisions without logged or skipped rules: those are shared (``ALLOW``, a
        # terminating rule's own ``Decision``); the others are new per evaluation.
        if (
            not getattr(decision, "logged", ())
            and not getattr(decision, "skipped", ())
            and len(self._verdicts) < _VERDICTS_MAX
        ):
            self._verdicts[id(decision)] = (decision, verdict)
        return verdict


_VERDICTS_MAX = 4096
_AUTH_PREFIX = "cf.tls_client_auth."


def _provided(name: str) -> bool:
    """Whether ``request_fields`` can give field ``name`` (a ``ClientAuth`` gives every
    ``cf.tls_client_auth.*`` field)."""
    return field_getter(name) is not None or name.startswith(_AUTH_PREFIX)


class _SlotPlan:
    """How ``RulesetDecider`` fills a ruleset's ``Context`` slots (see its docstring):
    the slots ``request_fields`` + ``Context.update(only=fields)`` would set
    (``Scheme.slots_for``), split into the ``ClientAuth``'s fields, the other
    connection-constant fields and the per-request ones."""

    __slots__ = ("auth", "defaults", "info_conn", "info_req", "scheme")

    @classmethod
    def build(cls, ruleset: Any, fields: frozenset[str]) -> _SlotPlan | None:
        scheme = getattr(ruleset, "scheme", None)
        if scheme is None or not hasattr(scheme, "slots_for"):
            return None  # not an edgerules ruleset: the general path
        plan = cls()
        plan.scheme = scheme
        plan.defaults = list(scheme.defaults)
        auth = []
        info_conn = []
        info_req = []
        for name, index, coerce in scheme.slots_for(fields, _provided):
            get = field_getter(name)
            if get is None:
                auth.append((index, coerce, name))
            elif connection_constant(name):
                info_conn.append((index, coerce, get))
            else:
                info_req.append((index, coerce, get))
        plan.auth = tuple(auth)
        plan.info_conn = tuple(info_conn)
        plan.info_req = tuple(info_req)
        return plan

    def connection_values(self, info: RequestInfo, client_auth: Any) -> tuple[tuple[int, object], ...]:
        out = [(index, coerce(get(info))) for index, coerce, get in self.info_conn]
        if self.auth and client_auth is not None:
            auth_fields = client_auth.fields()
            for index, coerce, name in self.auth:
                try:
                    value = auth_fields[name]
                except KeyError:
                    continue
                out.append((index, coerce(value)))
        return tuple(out)

    def context(self, connection_values: tuple[tuple[int, object], ...], info: RequestInfo) -> Any:
        values = self.defaults.copy()
        for index, value in connection_values:
            values[index] = value
        for index, coerce, get in self.info_req:
            values[index] = coerce(get(info))
        return self.scheme.context_from_slots(values)


def _cert_problem(client_auth: Any) -> str | None:
    if client_auth is None:
        return None
    if not getattr(client_auth, "presented", False):
        return "no client certificate was presented"
    if not getattr(client_auth, "verified", False):
        reason = getattr(client_auth, "failure_reason", "") or "it did not verify"
        return f"the client certificate was not accepted ({reason})"
    if getattr(client_auth, "revoked", False):
        return "the client certificate has been revoked"
    return None


def block_page(
    verdict: Verdict, client_auth: Any, *, accept: bytes = b"", cert_requested: bool = False
) -> tuple[int, bytes, bytes]:
    """(status, content type, body) for a block or challenge verdict."""
    if verdict.outcome == "block" and verdict.status is not None:
        body = verdict.body or b""
        return verdict.status, (verdict.content_type or "text/plain").encode(), body
    problem = _cert_problem(client_auth) if cert_requested else None
    rule = f"rule {verdict.rule_ref}" if verdict.rule_ref else "a firewall rule"
    if verdict.outcome == "challenge":
        title = "403 Forbidden: challenge required"
        lines = [
            f"This request matched {rule}, whose action is a challenge.",
            "This server cannot run interactive challenges, so the request was refused.",
        ]
    else:
        title = "403 Forbidden"
        lines = [f"This request was blocked by {rule}."]
    if problem is not None:
        lines.append(f"A valid client certificate is required: {problem}.")
    if b"text/html" in accept.lower():
        items = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
        body = (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title></head><body><h1>{html.escape(title)}</h1>{items}</body></html>\n"
        ).encode()
        return 403, b"text/html; charset=utf-8", body
    return 403, b"text/plain; charset=utf-8", ("\n".join([title, *lines]) + "\n").encode()
