"""``edgerules crl``: certificate revocation lists for uploaded CAs (issue 10 point 4).

    edgerules crl add FILE [--ca ID]                     # a CRL file (PEM or DER; '-' = stdin)
    edgerules crl add --url URL [--ca ID] [--every SECONDS]   # a CRL source, fetched now
    edgerules crl list | show ID | remove ID
    edgerules crl refresh [ID] [--all] [--every SECONDS]  # fetch due sources (loop: a sidecar)

A CRL is checked as the validator will apply it before it is stored: refused (with the
reason) when it is a delta or scoped CRL or carries an unhandled critical extension, or
when it names the ``--ca`` as its issuer but is not signed by it. Running proxies pick a
change up on their next connection (the store's trust counter moves). What a certificate
not listed on a stale CRL means is the CA's setting (``ca upload/set --crl-stale``).

Common options and output conventions: :mod:`edgerules.cli.common`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from edgerules.cli.common import (
    open_store_from_args,
    print_fields,
    print_json,
    print_table,
    read_input_file,
    store_options,
)
from edgerules.errors import ConfigError


def _fields(record: Any) -> list[tuple[str, object]]:
    return [
        ("id", record.id),
        ("ca", record.ca_name or record.ca_id or "(matched by issuer)"),
        ("issuer", record.issuer or "(not fetched yet)"),
        ("crl_number", record.crl_number or "-"),
        ("this_update", record.this_update or "-"),
        ("next_update", record.next_update or "-"),
        ("revoked", record.revoked_count),
        ("url", record.url or "-"),
        ("refresh_seconds", record.refresh_seconds or "-"),
        ("fetched_on", record.fetched_on or "-"),
        ("last_error", record.last_error or "-"),
    ]


def _crl_add(args: argparse.Namespace) -> int:
    from edgerules.store.crlfetch import refresh_due

    if (args.file is None) == (args.url is None):
        raise ConfigError("give a CRL file, or --url URL (one of them)")
    if args.every and args.url is None:
        raise ConfigError("--every applies to a CRL fetched from --url")
    data = read_input_file(args.file) if args.file is not None else None
    with open_store_from_args(args) as store:
        record = store.add_crl(data, ca=args.ca, url=args.url, refresh_seconds=args.every or 0)
        if args.url is not None:
            ((record, error),) = refresh_due(store, only=record.id)
            if error:
                store.remove_crl(record.id)
                raise ConfigError(f"CRL from {args.url} not added: {error}")
    if args.json:
        print_json(record.to_dict())
    else:
        print(f"Added CRL {record.id}")
        print_fields(_fields(record)[1:])
    return 0


def _crl_list(args: argparse.Namespace) -> int:
    with open_store_from_args(args, read_only=True) as store:
        records = store.list_crls()
    if args.json:
        print_json([r.to_dict() for r in records])
        return 0
    if not records:
        print("No CRLs (add one with `edgerules crl add FILE --ca ID`).")
        return 0
    print_table(
        ["ID", "CA", "ISSUER", "NUMBER", "NEXT_UPDATE", "REVOKED", "URL", "ERROR"],
        [
            [r.id, r.ca_name or r.ca_id or "-", r.issuer or "-", r.crl_number or "-",
             r.next_update or "-", r.revoked_count, r.url or "-", r.last_error or "-"]
            for r in records
        ],
    )
    return 0


def _crl_show(args: argparse.Namespace) -> int:
    with open_store_from_args(args, read_only=True) as store:
        record = store.get_crl(args.id)
    if args.json:
        print_json(record.to_dict())
    else:
        print_fields(_fields(record))
    return 0


def _crl_remove(args: argparse.Namespace) -> int:
    with open_store_from_args(args) as store:
        record = store.remove_crl(args.id)
    if args.json:
        print_json({"id": record.id, "removed": True})
    else:
        print(f"Removed CRL {record.id}")
    return 0


def _crl_refresh(args: argparse.Namespace) -> int:
    from edgerules.store.crlfetch import refresh_due

    failures = 0
    while True:
        with open_store_from_args(args) as store:
            results = refresh_due(store, force=args.all, only=args.id)
        for record, error in results:
            failures += bool(error)
            if args.json:
                print_json({**record.to_dict(), "error": error})
            elif error:
                print(f"CRL {record.id} ({record.url}): {error}", file=sys.stderr)
            else:
                print(f"CRL {record.id}: {record.issuer}, number {record.crl_number or '-'}, "
                      f"next update {record.next_update or '-'}")
        sys.stdout.flush()
        if not args.every:
            break
        time.sleep(args.every)
    return 2 if failures else 0  # docs/cli.md: 2 = could not (fully) run


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = store_options()
    crl = subparsers.add_parser("crl", help="certificate revocation lists for uploaded CAs")
    sub = crl.add_subparsers(dest="crl_command", metavar="ACTION", required=True)
    p = sub.add_parser("add", parents=[common], help="add a CRL (file) or a CRL source (--url)")
    p.add_argument("file", nargs="?", metavar="FILE", help="PEM or DER CRL ('-' = stdin)")
    p.add_argument("--ca", default=None, metavar="ID", help="the uploaded CA it belongs to")
    p.add_argument("--url", default=None, help="fetch the CRL from this http(s) URL")
    p.add_argument("--every", type=_seconds, default=None, metavar="SECONDS",
                   help="refetch the --url CRL this often (`crl refresh` does it)")
    p.set_defaults(func=_crl_add)
    p = sub.add_parser("list", parents=[common], help="list the CRLs")
    p.set_defaults(func=_crl_list)
    p = sub.add_parser("show", parents=[common], help="show one CRL")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=_crl_show)
    p = sub.add_parser("remove", parents=[common], help="remove a CRL")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=_crl_remove)
    p = sub.add_parser("refresh", parents=[common],
                       help="fetch the CRL sources that are due (all with --all)")
    p.add_argument("id", nargs="?", default=None, metavar="ID", help="only this CRL")
    p.add_argument("--all", action="store_true", help="fetch every source, due or not")
    p.add_argument("--every", type=_seconds, default=None, metavar="SECONDS",
                   help="keep running, checking every SECONDS (a sidecar beside the proxy)")
    p.set_defaults(func=_crl_refresh)
