"""Named lists: item syntax, naming rules, lookups, files (edgerules.rulesets.lists)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from edgerules.errors import ListError
from edgerules.rulesets.lists import (
    ASNList,
    HostnameList,
    IPList,
    NamedList,
    NamedLists,
    StringList,
    check_list_name,
    load_list,
    make_list,
)

ip = ipaddress.ip_address


@pytest.mark.parametrize("name", ["a", "office_ips", "x" * 50, "cf.open_proxies", "cf.botnetcc"])
def test_valid_names(name: str) -> None:
    assert check_list_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Office", "a-b", "x" * 51, "$a", "a.b", "cf.unknown", "ä", 3]
)
def test_invalid_names(name: object) -> None:
    with pytest.raises(ListError):
        check_list_name(name)


def test_ip_list_addresses_cidrs_ranges() -> None:
    lst = IPList("l", ["192.0.2.1", "198.51.100.0/24", "203.0.113.10-203.0.113.20",
                      "2001:db8::/32", "10.0.0.0..10.0.0.3"])
    assert isinstance(lst, NamedList)
    assert lst.kind == "ip"
    for yes in ["192.0.2.1", "198.51.100.0", "198.51.100.255", "203.0.113.10", "203.0.113.20",
                "2001:db8:ffff::1", "10.0.0.3"]:
        assert lst.contains(ip(yes)), yes
    for no in ["192.0.2.2", "198.51.101.0", "203.0.113.9", "203.0.113.21", "2001:db9::",
               "10.0.0.4", "::ffff:192.0.2.1"]:
        assert not lst.contains(ip(no)), no


def test_ip_list_merges_intervals() -> None:
    lst = IPList("l", ["192.0.2.0/25", "192.0.2.128/25", "192.0.2.5", "192.0.3.0-192.0.3.9"])
    assert lst.intervals == 1  # adjacent and overlapping ranges merge into one
    assert lst.contains(ip("192.0.3.9")) and not lst.contains(ip("192.0.3.10"))


def test_ip_list_host_bits_normalised() -> None:
    lst = IPList("l", ["192.0.2.77/24"])
    assert lst.items == ("192.0.2.0/24",)
    assert lst.contains(ip("192.0.2.1"))


@pytest.mark.parametrize(
    "item,why",
    [
        ("10.0.0.0/7", "/8 to /32"),
        ("2001:db8::/3", "/4 to /64"),
        ("2001:db8::/65", "/4 to /64"),
        ("2001:db8::1", "/64"),
        ("192.0.2.9-192.0.2.1", "after its end"),
        ("192.0.2.1-2001:db8::1", "family"),
        ("nope", "not an IP"),
        ("192.0.2.300", "not an IP"),
        (17, "string"),
    ],
)
def test_ip_list_bad_items(item: object, why: str) -> None:
    with pytest.raises(ListError, match=why) as exc:
        IPList("office", [item])
    assert "office" in str(exc.value)


def test_ip_list_wrong_value_types_are_not_members() -> None:
    lst = IPList("l", ["0.0.0.0/8"])
    for value in [b"0.0.0.1", "0.0.0.1", 1, None, object()]:
        assert not lst.contains(value)


def test_ip_list_large_lookup_is_bisect() -> None:
    items = [f"10.{i // 256}.{i % 256}.0/24" for i in range(0, 20000, 2)]
    lst = IPList("big", items)
    assert lst.intervals == 10000
    assert lst.contains(ip("10.0.2.5")) and not lst.contains(ip("10.0.1.5"))


def test_hostname_list() -> None:
    lst = HostnameList("h", ["api.example.com", "*.iot.example.com", "Example.ORG."])
    assert lst.contains(b"api.example.com")
    assert lst.contains(b"API.Example.com")
    assert lst.contains(b"api.example.com.")
    assert lst.contains(b"a.iot.example.com")
    assert lst.contains(b"a.b.iot.example.com")
    assert not lst.contains(b"iot.example.com")  # our choice (unspecified): *.x does not match the apex
    assert not lst.contains(b"evil-iot.example.com")
    assert not lst.contains(b"www.api.example.com")
    assert lst.contains(b"example.org")
    assert not lst.contains(b"")
    assert not lst.contains(ip("192.0.2.1"))
    assert lst.contains("api.example.com")


@pytest.mark.parametrize("item", ["", "*.com", "a..b", "*", "a.*.b", "-a.com", "a b.com", 5])
def test_hostname_bad_items(item: object) -> None:
    with pytest.raises(ListError):
        HostnameList("h", [item])


def test_asn_list() -> None:
    lst = ASNList("a", [13335, "AS64496", "64497"])
    assert lst.contains(13335) and lst.contains(64496) and lst.contains(64497)
    assert not lst.contains(1) and not lst.contains(b"13335") and not lst.contains(True)
    for bad in [-1, 2**32, "x", 1.5, True]:
        with pytest.raises(ListError):
            ASNList("a", [bad])


def test_string_list() -> None:
    lst = StringList("s", ["AB", b"c"])
    assert lst.contains(b"AB") and lst.contains(b"c") and lst.contains("AB")
    assert not lst.contains(b"ab") and not lst.contains(1)
    assert lst.to_dict()["items"] == ["AB", "c"]


def test_make_list_unknown_kind() -> None:
    with pytest.raises(ListError, match="unknown kind"):
        make_list("x", "cidr", [])


def test_api_item_shapes() -> None:
    assert IPList("l", [{"ip": "192.0.2.1", "comment": "x"}]).contains(ip("192.0.2.1"))
    assert ASNList("l", [{"asn": 5}]).contains(5)
    assert HostnameList("l", [{"hostname": {"url_hostname": "a.com"}}]).contains(b"a.com")


def test_load_text_file(tmp_path) -> None:
    p = tmp_path / "office_ips.txt"
    p.write_text("# kind: ip\n# description: office\n\n192.0.2.0/24  # HQ\n198.51.100.1\n")
    lst = load_list(p)
    assert lst.name == "office_ips" and lst.kind == "ip" and lst.description == "office"
    assert lst.contains(ip("192.0.2.9"))


def test_load_text_file_needs_kind(tmp_path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("192.0.2.1\n")
    with pytest.raises(ListError, match="kind"):
        load_list(p)
    assert load_list(p, kind="ip").contains(ip("192.0.2.1"))


def test_load_json_file(tmp_path) -> None:
    p = tmp_path / "hosts.json"
    p.write_text(json.dumps({"name": "hosts", "kind": "hostname", "items": ["*.a.com"]}))
    assert load_list(p).contains(b"x.a.com")
    p.write_text(json.dumps({"name": "hosts", "kind": "hostname", "items": [], "extra": 1}))
    with pytest.raises(ListError, match="extra"):
        load_list(p)
    p.write_text("{")
    with pytest.raises(ListError, match="invalid JSON"):
        load_list(p)
    with pytest.raises(ListError, match="cannot read"):
        load_list(tmp_path / "missing.txt")


def test_named_lists_container(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("# kind: asn\n1\n")
    (tmp_path / "b.json").write_text('{"name": "b", "kind": "string", "items": ["x"]}')
    (tmp_path / "ignored.md").write_text("x")
    lists = NamedLists.load(tmp_path)
    assert sorted(lists) == ["a", "b"] and len(lists) == 2
    with pytest.raises(ListError, match="duplicate"):
        lists.add(ASNList("a", []))
    lists.define("c", "ip", ["192.0.2.0/24"])
    assert lists["c"].contains(ip("192.0.2.1"))
    again = NamedLists.from_dict(lists.to_dict())
    assert sorted(again) == ["a", "b", "c"]
    case_shape = NamedLists.from_dict({"bad_ips": {"kind": "ip", "items": ["192.0.2.0/24"]}})
    assert case_shape["bad_ips"].contains(ip("192.0.2.3"))


def test_quotas() -> None:
    lists = NamedLists()
    lists.define("a", "ip", ["192.0.2.1"])
    lists.check_quotas("free")
    lists.define("b", "asn", [1, 2])
    lists.define("cf.vpn", "ip", ["198.51.100.0/24"])  # managed lists do not count
    with pytest.raises(ListError, match="quota of 1"):
        lists.check_quotas("free")
    lists.check_quotas("pro")
    big = NamedLists([StringList("s", [str(i) for i in range(10_001)])])
    with pytest.raises(ListError, match="10000"):
        big.check_quotas("business")
    big.check_quotas("enterprise")
    hosts = NamedLists([HostnameList(f"h{i}", [f"h{i}.example.com"]) for i in range(41)])
    with pytest.raises(ListError, match="hostname lists"):
        hosts.check_quotas()
    with pytest.raises(ListError, match="unknown plan"):
        hosts.check_quotas("gold")
