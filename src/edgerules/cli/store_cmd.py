"""``edgerules store``: the store file itself.

    edgerules store migrate    # upgrade an existing store's schema (needs write access)
    edgerules store check      # integrity check (PRAGMA integrity_check); exit 1 if damaged

Common options and output conventions: :mod:`edgerules.cli.common`.
"""

from __future__ import annotations

import argparse

from edgerules.cli.common import open_store_from_args, print_json, store_options


def _store_migrate(args: argparse.Namespace) -> int:
    with open_store_from_args(args) as store:  # a read-write open migrates
        version = store.schema_version()
    if args.json:
        print_json({"store": str(args.store or store.path), "schema_version": version})
    else:
        print(f"Store {store.path} is at schema version {version}")
    return 0


def _store_check(args: argparse.Namespace) -> int:
    with open_store_from_args(args, read_only=True) as store:
        result = store.integrity_check()
    ok = result == "ok"
    if args.json:
        print_json({"store": store.path, "ok": ok, "result": result.splitlines()})
    else:
        print(f"Store {store.path}: " + ("ok" if ok else f"DAMAGED\n{result}"))
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = store_options()
    store = subparsers.add_parser("store", help="the store file: migrate, check")
    sub = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    p = sub.add_parser("migrate", parents=[common], help="upgrade the schema of a store")
    p.set_defaults(func=_store_migrate)
    p = sub.add_parser("check", parents=[common], help="check the store's integrity")
    p.set_defaults(func=_store_check)
