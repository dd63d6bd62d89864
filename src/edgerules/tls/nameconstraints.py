"""Name constraints, the way OpenSSL 3 checks them (``check_name_constraints``).

Owns: :func:`check_chain` — for every certificate of a built chain (leaf first, anchor
last) except self-issued intermediates, the constraints of every certificate above it
(the trust anchor's included) applied to its names: the subject as a directoryName, the
subject's emailAddress attributes, every subjectAltName entry and, for the leaf without
a DNS SAN, a host-name-like commonName (``NAME_CONSTRAINTS_check_CN``).

Matching per type follows OpenSSL's ``nc_match``: permitted subtrees of the name's type
first (at least one must match), then excluded ones; DNS and URI hosts compare
case-insensitively on label boundaries, e-mail local parts case-sensitively, directory
names by canonical prefix, IP addresses by network; other types present in a constraint
are "unsupported name constraint type".

Invariants: pure; returns ``""`` or a :class:`~edgerules.tls.reasons.Reason` string.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edgerules.tls import dn
from edgerules.tls.der import DERError
from edgerules.tls.rawcert import parse_name
from edgerules.tls.reasons import Reason

__all__ = ["check_chain"]

_EMAIL_OID = bytes.fromhex("2a864886f70d010901")
_CN_OID = bytes.fromhex("550403")
_IA5 = 22
_OK = ""


def _dns(name: str, base: str) -> str:
    if not base:
        return _OK
    if len(name) < len(base):
        return Reason.PERMITTED_SUBTREE
    tail = name[len(name) - len(base) :]
    if len(name) > len(base) and base[0] != "." and name[len(name) - len(base) - 1] != ".":
        return Reason.PERMITTED_SUBTREE
    return _OK if tail.lower() == base.lower() else Reason.PERMITTED_SUBTREE


def _email(addr: str, base: str) -> str:
    local, _, host = addr.rpartition("@")
    # Our choice, stricter than OpenSSL (which reads the part after the last "@"): an address
    # with several "@" or an empty part is malformed, not "inside" a permitted domain
    # (RFC 5280 §4.2.1.10; x509-limbo nc-permits-invalid-email-san).
    if not local or not host or "@" in local:
        return Reason.NAME_SYNTAX
    if "@" not in base and base.startswith("."):
        if len(addr) > len(base) and addr[-len(base) :].lower() == base.lower():
            return _OK
        return Reason.PERMITTED_SUBTREE
    if "@" in base:
        blocal, _, bhost = base.rpartition("@")
        if blocal and blocal != local:  # local part: case-sensitive
            return Reason.PERMITTED_SUBTREE
    else:
        bhost = base
    return _OK if host.lower() == bhost.lower() else Reason.PERMITTED_SUBTREE


def _uri(uri: str, base: str) -> str:
    colon = uri.find(":")
    if colon < 0 or uri[colon : colon + 3] != "://":
        return Reason.NAME_SYNTAX
    rest = uri[colon + 3 :]
    end = len(rest)
    for sep in (":", "/"):
        i = rest.find(sep)
        if i >= 0:
            end = i
            break
    host = rest[:end]
    if not host:
        return Reason.NAME_SYNTAX
    if base.startswith("."):
        ok = len(host) > len(base) and host[-len(base) :].lower() == base.lower()
        return _OK if ok else Reason.PERMITTED_SUBTREE
    return _OK if host.lower() == base.lower() else Reason.PERMITTED_SUBTREE


def _ip(addr: object, base: object) -> str:
    if not isinstance(base, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return Reason.CONSTRAINT_SYNTAX
    if type(addr) is not type(base.network_address):
        return Reason.PERMITTED_SUBTREE
    return _OK if addr in base else Reason.PERMITTED_SUBTREE


def _canon_name(name: x509.Name) -> object:
    return dn.canonical(parse_name(name.public_bytes(Encoding.DER)))


def _dirname(canon: object, base: x509.Name) -> str:
    try:
        prefix = _canon_name(base)
    except (DERError, ValueError):
        return Reason.CONSTRAINT_SYNTAX
    rdns = canon  # tuple of canonical RDNs
    ok = len(prefix) <= len(rdns) and tuple(rdns[: len(prefix)]) == prefix  # type: ignore[arg-type]
    return _OK if ok else Reason.PERMITTED_SUBTREE


# A name to check: (GeneralName class, matcher taking the constraint's base).
Name = tuple[type, Callable[[x509.GeneralName], str]]


def _single(kind: type, value: object) -> Name:
    if kind is x509.DNSName:
        return kind, lambda b: _dns(value, b.value)  # type: ignore[arg-type]
    if kind is x509.RFC822Name:
        return kind, lambda b: _email(value, b.value)  # type: ignore[arg-type]
    if kind is x509.UniformResourceIdentifier:
        return kind, lambda b: _uri(value, b.value)  # type: ignore[arg-type]
    if kind is x509.IPAddress:
        return kind, lambda b: _ip(value, b.value)
    if kind is x509.DirectoryName:
        return kind, lambda b: _dirname(value, b.value)
    return kind, lambda _b: Reason.CONSTRAINT_TYPE


def _match(name: Name, nc: x509.NameConstraints) -> str:
    """OpenSSL's ``nc_match`` for one name."""
    kind, test = name
    match = 0
    for sub in nc.permitted_subtrees or ():
        if type(sub) is not kind:
            continue
        if match == 2:
            continue
        match = 1
        r = test(sub)
        if r == _OK:
            match = 2
        elif r != Reason.PERMITTED_SUBTREE:
            return r
    if match == 1:
        return Reason.PERMITTED_SUBTREE
    for sub in nc.excluded_subtrees or ():
        if type(sub) is not kind:
            continue
        r = test(sub)
        if r == _OK:
            return Reason.EXCLUDED_SUBTREE
        if r != Reason.PERMITTED_SUBTREE:
            return r
    return _OK


def _cn_dns_id(value: str) -> str:
    """OpenSSL's ``cn2dnsid``: the CN when it looks like a multi-label host name."""
    value = value.rstrip("\x00")
    if "\x00" in value:
        return "\x00"  # embedded NUL: unsupported syntax
    is_dns = False
    n = len(value)
    for i, c in enumerate(value):
        if c.isascii() and (c.isalnum() or c == "_"):
            continue
        if 0 < i < n - 1:
            if c == "-":
                continue
            if c == "." and value[i + 1] != "." and value[i - 1] != "-" and value[i + 1] != "-":
                is_dns = True
                continue
        is_dns = False
        break
    return value if is_dns else ""


def _names_of(cert, leaf: bool) -> tuple[list[Name], str]:  # type: ignore[no-untyped-def]
    """The names OpenSSL checks for ``cert`` (and a syntax error, if any)."""
    out: list[Name] = []
    entries = cert.raw.subject_entries
    if entries:
        out.append(_single(x509.DirectoryName, cert.canon_subject))
        for _i, oid, tag, data, _tlv in entries:
            if oid == _EMAIL_OID:
                if tag != _IA5:
                    return out, Reason.NAME_SYNTAX
                out.append(_single(x509.RFC822Name, data.decode("latin-1")))
    san = cert.ext(x509.SubjectAlternativeName)
    sans: Sequence[x509.GeneralName] = list(san) if san is not None else []  # type: ignore[call-overload]
    for gn in sans:
        value = gn.value
        if isinstance(gn, x509.DirectoryName):
            try:
                value = _canon_name(gn.value)
            except (DERError, ValueError):
                return out, Reason.NAME_SYNTAX
        out.append(_single(type(gn), value))
    return out, _OK


def _cn_names(cert) -> tuple[list[Name], str]:  # type: ignore[no-untyped-def]
    out: list[Name] = []
    for _i, oid, tag, data, _tlv in cert.raw.subject_entries:
        if oid != _CN_OID:
            continue
        try:
            text = "".join(map(chr, dn._codepoints(tag, data)))
        except DERError:
            return out, Reason.NAME_SYNTAX
        host = _cn_dns_id(text)
        if host == "\x00":
            return out, Reason.NAME_SYNTAX
        if host:
            out.append(_single(x509.DNSName, host))
    return out, _OK


def check_chain(chain: Sequence, self_issued: Callable[[object], bool]) -> str:  # type: ignore[type-arg]
    """The first name-constraint violation in ``chain`` (``""`` when none)."""
    constraints = [c.ext(x509.NameConstraints) for c in chain]
    if not any(constraints[1:]):
        return _OK
    for i in range(len(chain) - 1, -1, -1):
        cert = chain[i]
        if i != 0 and self_issued(cert):
            continue
        names: list[Name] | None = None
        for j in range(len(chain) - 1, i, -1):
            nc = constraints[j]
            if nc is None:
                continue
            if names is None:
                names, err = _names_of(cert, i == 0)
                if err:
                    return err
            for name in names:
                r = _match(name, nc)  # type: ignore[arg-type]
                if r:
                    return r
            if i == 0 and not any(k is x509.DNSName for k, _t in names):
                cn_names, err = _cn_names(cert)
                if err:
                    return err
                for name in cn_names:
                    r = _match(name, nc)  # type: ignore[arg-type]
                    if r:
                        return r
    return _OK
