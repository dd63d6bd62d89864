"""``edgerules host``: per-hostname mTLS (hostname associations).

    edgerules host enable HOST... [--ca ID|managed] | disable HOST... [--ca ID|managed]
    edgerules host set [HOST...] [--ca ID|managed] | list
    edgerules host profile [HOST... --profile compatible|strict [--allow W,...] | --default]

Common options and output conventions: :mod:`edgerules.cli.common`.
"""

from __future__ import annotations

import argparse

from edgerules.cli.common import (
    open_store_from_args,
    print_json,
    print_table,
    require_managed_ca,
    safe,
    store_options,
)
from edgerules.errors import ConfigError


def _ca_label(ref: str | None) -> str:
    return "the managed CA" if ref in (None, "managed") else f"CA {safe(ref)}"


def _host_assign(args: argparse.Namespace, *, replace: bool) -> int:
    """``host enable`` (add to the CA's list) and ``host set`` (PUT: exactly this list)."""
    with open_store_from_args(args) as store:
        if args.ca is None or args.ca.strip().lower() == "managed":
            require_managed_ca(store)
        if replace:
            hosts = store.set_hostname_associations(args.hostnames, args.ca)
        else:
            hosts = store.enable_hostnames(args.hostnames, args.ca)
    if args.json:
        print_json({"mtls_certificate_id": args.ca, "hostnames": hosts})
    elif replace:
        print(f"Hostnames of {_ca_label(args.ca)}: {', '.join(hosts) or '(none)'}")
    else:
        print(f"mTLS enabled with {_ca_label(args.ca)} on: {', '.join(hosts)}")
    return 0


def _host_enable(args: argparse.Namespace) -> int:
    return _host_assign(args, replace=False)


def _host_set(args: argparse.Namespace) -> int:
    return _host_assign(args, replace=True)


def _host_disable(args: argparse.Namespace) -> int:
    with open_store_from_args(args) as store:
        if args.ca is not None and args.ca.strip().lower() == "managed":
            require_managed_ca(store)
        removed = store.disable_hostnames(args.hostnames, args.ca, all_cas=args.ca is None)
    if args.json:
        print_json({"mtls_certificate_id": args.ca, "removed": removed})
    elif removed:
        print(f"Removed from {_ca_label(args.ca) if args.ca else 'every CA'}: {', '.join(removed)}")
    else:
        print("Nothing to remove: no such association.")
    return 0


def _host_list(args: argparse.Namespace) -> int:
    with open_store_from_args(args, read_only=True) as store:
        if args.ca is not None:
            hosts = store.get_hostname_associations(args.ca)
            if args.json:
                print_json({"mtls_certificate_id": args.ca, "hostnames": hosts})
            else:
                print("\n".join(hosts) if hosts else "(none)")
            return 0
        table = store.hostname_table()
    if args.json:
        print_json(
            [
                {"hostname": h, "ca_type": kind, "ca_id": ca_id, "ca_name": name}
                for h, kind, ca_id, name in table
            ]
        )
        return 0
    if not table:
        print("mTLS is not enabled on any hostname (`edgerules host enable HOST`).")
        return 0
    print_table(["HOSTNAME", "CA_TYPE", "CA_ID", "CA_NAME"], table)
    return 0


def _host_profile(args: argparse.Namespace) -> int:
    """Per-hostname validation profile: overrides every CA's own on those hostnames."""
    if not args.hostnames:
        with open_store_from_args(args, read_only=True) as store:
            overrides = store.hostname_profiles()
        if args.json:
            print_json({h: {"profile": p, "allow": a} for h, (p, a) in overrides.items()})
        elif overrides:
            print_table(["HOSTNAME", "PROFILE", "ALLOW"], [[h, p, a] for h, (p, a) in overrides.items()])
        else:
            print("No hostname overrides: each CA's own profile applies.")
        return 0
    if args.default == (args.profile is not None):
        raise ConfigError("give --profile PROFILE, or --default to remove the override")
    with open_store_from_args(args) as store:
        names = store.set_hostname_profile(
            args.hostnames, None if args.default else args.profile, args.allow or ()
        )
    if args.json:
        print_json({"hostnames": names, "profile": None if args.default else args.profile})
    elif args.default:
        print(f"Each CA's own profile applies again on {', '.join(names)}")
    else:
        extra = f" (allowing {args.allow})" if args.allow else ""
        print(f"Profile {args.profile}{extra} on {', '.join(names)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = store_options()
    host = subparsers.add_parser("host", help="per-hostname mTLS (hostname associations)")
    host_sub = host.add_subparsers(dest="host_command", metavar="ACTION", required=True)
    ca_help = 'the CA: an uploaded CA id or name, or "managed" (default)'
    p = host_sub.add_parser("enable", parents=[common], help="enable mTLS on hostnames")
    p.add_argument("hostnames", nargs="+", metavar="HOST")
    p.add_argument("--ca", default=None, metavar="ID|managed", help=ca_help)
    p.set_defaults(func=_host_enable)
    p = host_sub.add_parser(
        "disable", parents=[common], help="remove hostnames (from every CA unless --ca)"
    )
    p.add_argument("hostnames", nargs="+", metavar="HOST")
    p.add_argument("--ca", default=None, metavar="ID|managed", help="only this CA's association")
    p.set_defaults(func=_host_disable)
    p = host_sub.add_parser(
        "set", parents=[common], help="replace a CA's whole hostname list (API PUT semantics)"
    )
    p.add_argument("hostnames", nargs="*", metavar="HOST")
    p.add_argument("--ca", default=None, metavar="ID|managed", help=ca_help)
    p.set_defaults(func=_host_set)
    p = host_sub.add_parser(
        "profile",
        parents=[common],
        help="validation profile on hostnames (overrides the CAs'); no HOST: list overrides",
    )
    p.add_argument("hostnames", nargs="*", metavar="HOST")
    p.add_argument("--profile", choices=("compatible", "strict"), default=None)
    p.add_argument("--allow", default=None, metavar="W,...",
                   help="weak cryptography accepted on these hostnames: sha1, md5, rsa1024, dsa")
    p.add_argument("--default", action="store_true", help="remove the override")
    p.set_defaults(func=_host_profile)
    p = host_sub.add_parser("list", parents=[common], help="list hostname associations")
    p.add_argument("--ca", default=None, metavar="ID|managed", help="only this CA's hostnames")
    p.set_defaults(func=_host_list)
