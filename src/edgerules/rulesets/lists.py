"""Named lists (``$name`` on the right-hand side of ``in``).

Cloudflare's lists: https://developers.cloudflare.com/waf/tools/lists/ (kinds, quotas),
https://developers.cloudflare.com/waf/tools/lists/custom-lists/ (item syntax) and
https://developers.cloudflare.com/waf/tools/lists/use-in-expressions/.

This module owns the four list kinds, their item syntax, the naming rules and loading
lists from files. It does no I/O except in the explicit ``load_*`` functions.

Invariants:

* Every list is immutable once built and answers ``contains(value)`` without scanning:
  IP lists keep, per address family, sorted non-overlapping integer intervals searched
  with ``bisect`` (O(log n)); hostname lists keep two sets (exact names and ``*.``
  suffixes) and walk the labels of the looked-up host (O(labels)); ASN and string lists
  are sets (O(1)).
* ``contains`` never raises: a value of the wrong runtime type (or ``MISSING``) is simply
  not in the list. Type compatibility is the engine's compile-time job, via ``kind``.
* Every malformed item, name or file raises ``ListError`` naming the list and the item.

Decisions on points Cloudflare's documentation leaves open, also listed in docs/rulesets.md:

* IP items: addresses, CIDRs (IPv4 ``/8``–``/32``, IPv6 ``/4``–``/64`` as Cloudflare documents)
  and ranges ``a-b`` (both ends of one family, ``a <= b``; ``..`` is accepted too). A CIDR
  with host bits set is normalised (``192.0.2.1/24`` means ``192.0.2.0/24``), as the
  engine does for inline lists. A bare IPv6 address is **rejected** with a hint to write
  its ``/64`` (Cloudflare: "individual IPv6 addresses must be entered as /64") — silently
  widening it would match 2^64 addresses the user did not write. IPv4-mapped IPv6 values
  are not translated: ``::ffff:192.0.2.1`` is not in a list holding ``192.0.2.1``.
* Hostname items: an FQDN, optionally starting with ``*.``. Matching is ASCII
  case-insensitive and ignores one trailing dot, because DNS names are; ``*.example.com``
  matches every name below ``example.com`` at any depth but **not** ``example.com``
  itself (list it too if wanted). A port in the looked-up value is not stripped.
* String lists (an edgerules extension for String fields) match bytes exactly
  (case-sensitive), like ``in {"…"}``.
* ASN items are integers 0 … 4294967295.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from edgerules.lang.ipset import merge_intervals
from edgerules.rulesets.errors import ListError

__all__ = [
    "KINDS",
    "MANAGED_LIST_NAMES",
    "ASNList",
    "HostnameList",
    "IPList",
    "NamedList",
    "NamedLists",
    "StringList",
    "check_list_name",
    "load_list",
    "make_list",
]

KINDS = ("ip", "hostname", "asn", "string")

# Cloudflare's managed IP lists (https://developers.cloudflare.com/waf/tools/lists/managed-lists/). They may be defined by the user for local testing (the
# content is theirs to supply); their names are the only names allowed to contain a dot.
MANAGED_LIST_NAMES = frozenset(
    {"cf.open_proxies", "cf.anonymizer", "cf.vpn", "cf.malware", "cf.botnetcc"}
)

_NAME_RE = re.compile(r"[a-z0-9_]+")
_MAX_NAME = 50
# RFC 1035-ish labels; underscores are tolerated because real hostnames carry them.
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_ASN = 2**32 - 1


@runtime_checkable
class NamedList(Protocol):
    """What the engine needs from a list (docs/architecture.md, "Extending and testing")."""

    name: str
    kind: str

    def contains(self, value: object) -> bool: ...


def check_list_name(name: object) -> str:
    """Return ``name`` if it is a valid custom list name (``^[a-z0-9_]+$``, at most 50
    characters) or one of the managed ``cf.*`` names; raise ``ListError`` otherwise."""
    if not isinstance(name, str):
        raise ListError(f"list name must be a string, not {type(name).__name__}")
    if name.startswith("$"):
        raise ListError(f"list name {name!r}: write the name without the leading '$'")
    if name in MANAGED_LIST_NAMES:
        return name
    if name.startswith("cf."):
        known = ", ".join(sorted(MANAGED_LIST_NAMES))
        raise ListError(f"unknown managed list {name!r} (managed lists: {known})")
    if not name or len(name) > _MAX_NAME or not _NAME_RE.fullmatch(name):
        raise ListError(
            f"invalid list name {name!r}: use 1-{_MAX_NAME} characters from a-z, 0-9 and _"
        )
    return name


class _ListBase:
    """Shared plumbing: name, kind, the items as written (for ``to_dict``)."""

    kind: str = ""
    __slots__ = ("_items", "description", "name")

    def __init__(self, name: str, items: Iterable[object], description: str = "") -> None:
        self.name = check_list_name(name)
        self.description = description
        self._items: tuple[object, ...] = ()
        self._build(list(items))

    def _build(self, items: list[object]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _bad(self, item: object, why: str) -> ListError:
        return ListError(f"{self.kind} list {self.name!r}: invalid item {item!r}: {why}")

    @property
    def items(self) -> tuple[object, ...]:
        """The items as given (normalised text), in input order."""
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, value: object) -> bool:
        return self.contains(value)

    def contains(self, value: object) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "kind": self.kind}
        if self.description:
            out["description"] = self.description
        out["items"] = list(self._items)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self._items)} items)"


# --- IP lists -------------------------------------------------------------------------


class IPList(_ListBase):
    """Addresses, CIDRs and ranges of either family; O(log n) lookups."""

    kind = "ip"
    __slots__ = ("_v4", "_v6")

    def _parse_item(self, item: object) -> tuple[int, int, int, str]:
        """One item -> (family 4|6, lo, hi, normalised text)."""
        if isinstance(item, dict):  # Cloudflare API item shape {"ip": "…", "comment": …}
            item = item.get("ip", item)
        if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address):
            item = str(item)
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            item = item.with_prefixlen
        if not isinstance(item, str):
            raise self._bad(item, "expected an address, CIDR or range as a string")
        text = item.strip()
        for sep in ("..", "-"):
            if sep in text:
                lo_text, _, hi_text = text.partition(sep)
                try:
                    lo = ipaddress.ip_address(lo_text.strip())
                    hi = ipaddress.ip_address(hi_text.strip())
                except ValueError as exc:
                    raise self._bad(item, f"not an address range ({exc})") from None
                if lo.version != hi.version:
                    raise self._bad(item, "both ends of a range must be of one address family")
                if int(lo) > int(hi):
                    raise self._bad(item, "the range's start is after its end")
                return lo.version, int(lo), int(hi), f"{lo}-{hi}"
        if "/" in text:
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError as exc:
                raise self._bad(item, f"not a CIDR ({exc})") from None
            lo_pfx, hi_pfx = (8, 32) if net.version == 4 else (4, 64)
            if not lo_pfx <= net.prefixlen <= hi_pfx:
                raise self._bad(
                    item,
                    f"IPv{net.version} prefixes must be /{lo_pfx} to /{hi_pfx}",
                )
            return (
                net.version,
                int(net.network_address),
                int(net.broadcast_address),
                net.with_prefixlen,
            )
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise self._bad(item, "not an IP address, CIDR or range") from None
        if addr.version == 6:
            net6 = ipaddress.IPv6Network(f"{addr}/64", strict=False)
            raise self._bad(
                item, f"individual IPv6 addresses must be entered as /64 (e.g. {net6})"
            )
        return 4, int(addr), int(addr), str(addr)

    def _build(self, items: list[object]) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        texts = []
        for item in items:
            fam, lo, hi, text = self._parse_item(item)
            (v4 if fam == 4 else v6).append((lo, hi))
            texts.append(text)
        self._items = tuple(texts)
        self._v4 = merge_intervals(v4)
        self._v6 = merge_intervals(v6)

    def contains(self, value: object) -> bool:
        if type(value) is ipaddress.IPv4Address:
            starts, ends = self._v4
        elif type(value) is ipaddress.IPv6Address:
            starts, ends = self._v6
        else:
            return False
        n = int(value)
        i = bisect.bisect_right(starts, n) - 1
        return i >= 0 and n <= ends[i]

    @property
    def intervals(self) -> int:
        """Number of merged intervals (both families); for diagnostics and tests."""
        return len(self._v4[0]) + len(self._v6[0])


# --- hostname lists -------------------------------------------------------------------


class HostnameList(_ListBase):
    """FQDNs, optionally ``*.``-prefixed; case-insensitive; O(labels) lookups."""

    kind = "hostname"
    __slots__ = ("_exact", "_suffixes")

    def _build(self, items: list[object]) -> None:
        exact: set[bytes] = set()
        suffixes: set[bytes] = set()
        texts = []
        for item in items:
            if isinstance(item, dict):  # API shape {"hostname": {"url_hostname": "…"}}
                host = item.get("hostname", item)
                item = host.get("url_hostname", host) if isinstance(host, dict) else host
            if not isinstance(item, str):
                raise self._bad(item, "expected a hostname string")
            text = item.strip().lower()
            if text.endswith("."):
                text = text[:-1]
            wildcard = text.startswith("*.")
            name = text[2:] if wildcard else text
            labels = name.split(".")
            if (
                not name
                or len(name) > 253
                or "*" in name
                or not all(_LABEL_RE.fullmatch(label) for label in labels)
            ):
                raise self._bad(
                    item, "expected a hostname such as api.example.com or *.example.com"
                )
            if wildcard and len(labels) < 2:
                raise self._bad(item, "a wildcard needs at least two labels (*.example.com)")
            (suffixes if wildcard else exact).add(name.encode("ascii"))
            texts.append(text)
        self._items = tuple(texts)
        self._exact = frozenset(exact)
        self._suffixes = frozenset(suffixes)

    def matcher(self) -> Callable[[object], bool]:
        """``contains`` as one closure over local sets, for compiled filters (optional
        part of the NamedList protocol)."""
        exact, rest = self.exact_and_rest()

        def matches(value: object) -> bool:
            return value in exact or rest(value)

        return matches

    def exact_and_rest(self) -> tuple[frozenset[bytes], Callable[[object], bool]]:
        """``(exact, rest)`` with ``contains(x) == (x in exact or rest(x))``, for compiled
        filters (optional part of the NamedList protocol): the common case, a lowercase
        host, is one set lookup inlined in the filter, what an inline ``{…}`` set costs;
        ``rest`` handles case, a trailing dot and ``*.`` entries."""
        exact = self._exact
        contains = self.contains
        if self._suffixes:
            return exact, contains

        def rest(value: object) -> bool:
            if type(value) is bytes and value.islower() and value[-1:] != b".":
                return False  # already in canonical form, and not listed
            return contains(value)

        return exact, rest

    def contains(self, value: object) -> bool:
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogateescape")
        if type(value) is not bytes:
            return False
        host = value.lower()
        if host.endswith(b"."):
            host = host[:-1]
        if host in self._exact:
            return True
        if not self._suffixes:
            return False
        # Walk parent names: a.b.example.com -> b.example.com -> example.com -> com.
        dot = host.find(b".")
        while dot >= 0:
            host = host[dot + 1 :]
            if host in self._suffixes:
                return True
            dot = host.find(b".")
        return False


# --- ASN and string lists ---------------------------------------------------------------


class ASNList(_ListBase):
    """Autonomous system numbers; O(1) lookups."""

    kind = "asn"
    __slots__ = ("_set",)

    def _build(self, items: list[object]) -> None:
        values = []
        for item in items:
            if isinstance(item, dict):
                item = item.get("asn", item)
            if isinstance(item, str):
                text = item.strip()
                if text[:2].upper() == "AS":
                    text = text[2:]
                try:
                    item = int(text, 10)
                except ValueError:
                    raise self._bad(item, "expected an AS number") from None
            if type(item) is not int or not 0 <= item <= _MAX_ASN:
                raise self._bad(item, f"expected an AS number 0-{_MAX_ASN}")
            values.append(item)
        self._items = tuple(values)
        self._set = frozenset(values)

    def contains(self, value: object) -> bool:
        return type(value) is int and value in self._set


class StringList(_ListBase):
    """Exact byte strings (case-sensitive); O(1) lookups. An edgerules extension."""

    kind = "string"
    __slots__ = ("_set",)

    def _build(self, items: list[object]) -> None:
        values = []
        for item in items:
            if isinstance(item, dict):
                item = item.get("value", item)
            if not isinstance(item, str | bytes):
                raise self._bad(item, "expected a string")
            values.append(item)
        self._items = tuple(values)
        self._set = frozenset(v.encode("utf-8") if isinstance(v, str) else v for v in values)

    def contains(self, value: object) -> bool:
        if isinstance(value, str):
            value = value.encode("utf-8")
        return type(value) is bytes and value in self._set

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["items"] = [
            v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v
            for v in self._items
        ]
        return out


_KIND_CLASSES: dict[str, type[_ListBase]] = {
    "ip": IPList,
    "hostname": HostnameList,
    "asn": ASNList,
    "string": StringList,
}


def make_list(name: str, kind: str, items: Iterable[object], description: str = "") -> _ListBase:
    """Build a list of ``kind`` (``ip``/``hostname``/``asn``/``string``)."""
    cls = _KIND_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ListError(f"list {name!r}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    return cls(name, items, description)


# --- files --------------------------------------------------------------------------------

_DIRECTIVE_RE = re.compile(r"#\s*(name|kind|description)\s*:\s*(.*?)\s*$")


def _from_mapping(obj: object, where: str) -> _ListBase:
    if not isinstance(obj, dict):
        raise ListError(f"{where}: a list must be an object with name, kind and items")
    unknown = set(obj) - {"name", "kind", "items", "description", "id"}
    if unknown:
        raise ListError(f"{where}: unknown key {sorted(unknown)[0]!r} in list definition")
    for key in ("name", "kind", "items"):
        if key not in obj:
            raise ListError(f"{where}: missing {key!r}")
    items = obj["items"]
    if not isinstance(items, list):
        raise ListError(f"{where}: 'items' must be an array")
    description = obj.get("description", "")
    if not isinstance(description, str):
        raise ListError(f"{where}: 'description' must be a string")
    return make_list(obj["name"], obj["kind"], items, description)


def load_list(
    path: str | os.PathLike[str], *, name: str | None = None, kind: str | None = None
) -> _ListBase:
    """Load one list from a file.

    * ``*.json``: ``{"name": …, "kind": …, "items": […]}`` (items as plain values or in
      the Cloudflare API item shapes ``{"ip": …}``, ``{"asn": …}``,
      ``{"hostname": {"url_hostname": …}}``).
    * anything else: text, one item per line; ``#`` starts a comment; blank lines are
      ignored. Header comments ``# kind: ip`` / ``# name: office_ips`` set kind and name;
      otherwise the name is the file's stem and ``kind`` must be passed.

    Arguments override what the file says.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ListError(f"cannot read list file {str(p)!r}: {exc}") from None
    if p.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ListError(f"{p}: invalid JSON: {exc}") from None
        if isinstance(obj, dict):
            obj = dict(obj)
            if name is not None:
                obj["name"] = name
            if kind is not None:
                obj["kind"] = kind
        return _from_mapping(obj, str(p))
    found: dict[str, str] = {}
    items: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            m = _DIRECTIVE_RE.match(stripped)
            if m and not items:
                found.setdefault(m.group(1), m.group(2))
            continue
        stripped = stripped.split("#", 1)[0].strip()
        if stripped:
            items.append(stripped)
    list_name = name or found.get("name") or p.stem
    list_kind = kind or found.get("kind")
    if list_kind is None:
        raise ListError(f"{p}: say the list's kind with a '# kind: ip' header line or kind=")
    return make_list(list_name, list_kind, items, found.get("description", ""))


class NamedLists(Mapping[str, NamedList]):
    """The lists a ruleset may reference, by name (what ``compile(lists=…)`` takes)."""

    def __init__(self, lists: Iterable[NamedList] | Mapping[str, NamedList] = ()) -> None:
        self._lists: dict[str, NamedList] = {}
        values = lists.values() if isinstance(lists, Mapping) else lists
        for lst in values:
            self.add(lst)

    def add(self, lst: NamedList) -> NamedList:
        if not isinstance(lst, NamedList):
            raise ListError(f"not a named list: {lst!r}")
        if lst.name in self._lists:
            raise ListError(f"duplicate list name {lst.name!r}")
        if lst.kind not in KINDS:
            raise ListError(f"list {lst.name!r}: unknown kind {lst.kind!r}")
        self._lists[lst.name] = lst
        return lst

    def define(self, name: str, kind: str, items: Iterable[object]) -> NamedList:
        """Build and add a list in one call."""
        return self.add(make_list(name, kind, items))

    @classmethod
    def from_dict(cls, obj: Mapping[str, object]) -> NamedLists:
        """``{name: {"kind": …, "items": […]}}`` (the case-file shape) or
        ``{"lists": [{"name", "kind", "items"}, …]}``."""
        out = cls()
        if isinstance(obj.get("lists"), list):
            for i, entry in enumerate(obj["lists"]):  # type: ignore[arg-type]
                out.add(_from_mapping(entry, f"lists[{i}]"))
            return out
        for name, entry in obj.items():
            if not isinstance(entry, dict):
                raise ListError(f"list {name!r}: expected {{kind = …, items = […]}}")
            out.add(_from_mapping({"name": name, **entry}, f"list {name!r}"))
        return out

    @classmethod
    def load(cls, *paths: str | os.PathLike[str]) -> NamedLists:
        """Load list files; a directory contributes every ``*.json``, ``*.txt`` and
        ``*.list`` file in it (sorted, not recursive)."""
        out = cls()
        for path in paths:
            p = Path(path)
            if p.is_dir():
                for child in sorted(p.iterdir()):
                    if child.suffix.lower() in (".json", ".txt", ".list") and child.is_file():
                        out.add(load_list(child))
            else:
                out.add(load_list(p))
        return out

    def check_quotas(self, plan: str = "enterprise") -> None:
        """Raise ``ListError`` if these lists exceed the plan's quotas (Cloudflare's lists page): number
        of custom lists (Free 1, Pro/Business 10, Enterprise 1,000), items across custom
        lists (10,000; Enterprise 500,000) and, on Enterprise, at most 40 hostname lists
        with 10,000 items and 40 ASN lists with 30,000 items. Managed lists do not count.
        Not applied automatically: call it to mirror an account's limits."""
        quotas = {"free": (1, 10_000), "pro": (10, 10_000), "business": (10, 10_000),
                  "enterprise": (1000, 500_000)}
        if plan not in quotas:
            raise ListError(f"unknown plan {plan!r} (expected one of {', '.join(quotas)})")
        max_lists, max_items = quotas[plan]
        custom = [lst for lst in self._lists.values() if lst.name not in MANAGED_LIST_NAMES]

        def size(lst: NamedList) -> int:
            try:
                return len(lst)  # type: ignore[arg-type]
            except TypeError:
                return 0

        if len(custom) > max_lists:
            raise ListError(f"{len(custom)} custom lists exceed the {plan} plan's quota of "
                            f"{max_lists}")
        total = sum(size(lst) for lst in custom)
        if total > max_items:
            raise ListError(f"{total} list items exceed the {plan} plan's quota of {max_items}")
        if plan == "enterprise":
            for kind, max_count, max_kind_items in (("hostname", 40, 10_000), ("asn", 40, 30_000)):
                of_kind = [lst for lst in custom if lst.kind == kind]
                items = sum(size(lst) for lst in of_kind)
                if len(of_kind) > max_count or items > max_kind_items:
                    raise ListError(f"{kind} lists: {len(of_kind)} lists with {items} items "
                                    f"exceed the quota of {max_count} lists with "
                                    f"{max_kind_items} items")

    def to_dict(self) -> dict[str, object]:
        return {
            "lists": [
                lst.to_dict() if hasattr(lst, "to_dict") else {"name": lst.name, "kind": lst.kind}
                for lst in self._lists.values()
            ]
        }

    def __getitem__(self, name: str) -> NamedList:
        return self._lists[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lists)

    def __len__(self) -> int:
        return len(self._lists)

    def __repr__(self) -> str:
        return f"NamedLists({list(self._lists)})"
