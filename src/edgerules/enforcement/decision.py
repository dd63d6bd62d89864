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

from edgerules.enforcement.request_fields import RequestInfo, connection_level, request_fields

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
    """

    def __init__(self, ruleset: Any, *, version: str | None = None) -> None:
        self.ruleset = ruleset
        self.fields = frozenset(ruleset.fields)
        self.version = version
        self.connection_level = connection_level(self.fields)

    def decide(self, info: RequestInfo, client_auth: Any) -> Verdict:
        values = request_fields(self.fields, info, client_auth)
        return verdict_from_decision(self.ruleset.evaluate(values), ruleset=self.version)


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
