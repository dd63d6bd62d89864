"""``edgerules ca``: the managed CA and uploaded CAs (BYOCA).

    edgerules ca create [--key-type rsa|ecdsa]         # the store (if new) and the managed CA
    edgerules ca show [--pem]                          # the managed CA
    edgerules ca rekey [--new-passphrase-file F]       # re-encrypt its key
    edgerules ca upload FILE [--name NAME] [--create]  # BYOCA
          [--profile compatible|strict] [--allow sha1,...] [--crl-stale open|closed] [--force]
    edgerules ca set ID [--profile P] [--allow W,...] [--crl-stale open|closed]
    edgerules ca list | delete ID

``ca upload`` runs the validator's profile on the CA itself (issue 10): a certificate that
is not a CA is refused; one through which no client could be verified under the profile
is refused with the reasons, or stored with those reasons as warnings with ``--force``.

Only ``ca create`` (and ``ca upload --create``) create a store; every other command opens
an existing one, read-only where it only reads (issue 9.8).

Common options and output conventions: :mod:`edgerules.cli.common`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from edgerules.cli.common import (
    key_type_option,
    open_store_from_args,
    print_fields,
    print_json,
    print_table,
    read_input_file,
    read_passphrase_file,
    require_managed_ca,
    safe,
    store_options,
)
from edgerules.errors import ConfigError


def _ca_create(args: argparse.Namespace) -> int:
    with open_store_from_args(args, create=True) as store:
        existing = store.managed_ca(create=False)
        if existing is not None:
            raise ConfigError(
                f"the managed CA of account {store.account_id!r} already exists "
                f"({existing.id}): `edgerules ca show`"
            )
        ca = store.managed_ca(create=True, key_type=args.key_type)
    if args.json:
        print_json({**ca.to_dict(), "hostnames": []})
        return 0
    print(f"Created the managed CA {ca.id} in {store.path}")
    _print_ca(ca, [])
    if not ca.key_encrypted:
        print(
            "warning: the CA private key is stored UNENCRYPTED: whoever can read the store "
            "file can issue client certificates; set EDGERULES_STORE_PASSPHRASE or "
            "--passphrase-file and run `edgerules ca rekey`",
            file=sys.stderr,
        )
    return 0


def _print_ca(ca: Any, hosts: list[str]) -> None:
    print_fields(
        [
            ("id", ca.id),
            ("name", ca.name),
            ("subject", ca.subject),
            ("key_type", ca.key_type),
            ("key_encrypted", "yes" if ca.key_encrypted else "no"),
            ("serial_number", ca.serial_number),
            ("ski", ca.ski),
            ("fingerprint_sha256", ca.fingerprint_sha256),
            ("signature", ca.signature),
            ("issued_on", ca.issued_on),
            ("expires_on", ca.expires_on),
            ("hostnames", ", ".join(hosts) or "(none)"),
        ]
    )


def _ca_show(args: argparse.Namespace) -> int:
    with open_store_from_args(args, read_only=True) as store:
        ca = require_managed_ca(store)
        hosts = store.get_hostname_associations(None)
    if args.json:
        print_json({**ca.to_dict(), "hostnames": hosts})
    elif args.pem:
        sys.stdout.write(ca.certificate)
    else:
        _print_ca(ca, hosts)
    return 0


def _ca_rekey(args: argparse.Namespace) -> int:
    """Re-encrypt the managed CA's key under a new passphrase (also: encrypt a key kept in
    clear, or one encrypted by an older edgerules with a weaker KDF)."""
    if args.new_passphrase_file:
        new = read_passphrase_file(args.new_passphrase_file, "new passphrase file")
    else:
        new = os.environ.get("EDGERULES_NEW_STORE_PASSPHRASE")
        if new is None:
            raise ConfigError(
                "give the new passphrase: --new-passphrase-file FILE or "
                "$EDGERULES_NEW_STORE_PASSPHRASE (the current one: --passphrase-file or "
                "$EDGERULES_STORE_PASSPHRASE)"
            )
        if not new:
            raise ConfigError(
                "$EDGERULES_NEW_STORE_PASSPHRASE is empty: an empty passphrase never means "
                "'unencrypted'"
            )
    with open_store_from_args(args) as store:
        ca = store.rekey_ca(new)
    if args.json:
        print_json({"id": ca.id, "key_encrypted": ca.key_encrypted})
    else:
        print(f"The managed CA key ({ca.id}) is now encrypted with the new passphrase")
    return 0


def _ca_upload(args: argparse.Namespace) -> int:
    data = read_input_file(args.file)
    with open_store_from_args(args, create=args.create) as store:
        warnings: list[str] = []
        if args.force:
            warnings = store.check_ca_upload(data, profile=args.profile, allow=args.allow or ())
            for problem in warnings:
                print(f"warning: {problem} (stored anyway: --force)", file=sys.stderr)
        ca = store.upload_ca(
            data,
            name=args.name,
            profile=args.profile,
            allow=args.allow or (),
            crl_stale=args.crl_stale,
            force=args.force,
        )
    if args.json:
        print_json({**ca.to_dict(), "warnings": warnings})
    else:
        print(f"Uploaded CA {ca.id}")
        print_fields(_ca_fields(ca))
    return 0


def _ca_fields(ca: Any) -> list[tuple[str, object]]:
    return [
        ("name", ca.name),
        ("subject", ca.subject),
        ("issuer", ca.issuer),
        ("signature", ca.signature),
        ("expires_on", ca.expires_on),
        ("profile", ca.profile + (f" (allowing {ca.allow})" if ca.allow else "")),
        ("crl_stale", ca.crl_stale),
    ]


def _ca_set(args: argparse.Namespace) -> int:
    if args.profile is None and args.allow is None and args.crl_stale is None:
        raise ConfigError("nothing to change: give --profile, --allow and/or --crl-stale")
    with open_store_from_args(args) as store:
        ca = store.set_ca_settings(
            args.id, profile=args.profile, allow=args.allow, crl_stale=args.crl_stale
        )
    if args.json:
        print_json(ca.to_dict())
    else:
        print(f"Updated CA {ca.id}")
        print_fields(_ca_fields(ca))
    return 0


def _settings_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    p.add_argument(
        "--profile",
        choices=("compatible", "strict"),
        default="compatible" if defaults else None,
        help="validation profile of the CA's clients: compatible (what `openssl verify` "
        "accepts at security level 2; default) or strict (RFC 5280 / CA/B Forum rules)",
    )
    p.add_argument(
        "--allow",
        default=None,
        metavar="W,...",
        help="weak cryptography to accept for this CA, named one by one: sha1, md5, "
        "rsa1024, dsa ('' = none)",
    )
    p.add_argument(
        "--crl-stale",
        choices=("open", "closed"),
        default="open" if defaults else None,
        help="a client not listed on a CRL past its nextUpdate: open = admitted (default), "
        "closed = refused (CRL has expired)",
    )


def _ca_list(args: argparse.Namespace) -> int:
    with open_store_from_args(args, read_only=True) as store:
        managed = store.managed_ca(create=False)
        uploaded = store.list_uploaded_cas()
        table = store.hostname_table()
    hosts: dict[str, list[str]] = {}
    for hostname, _kind, ca_id, _name in table:
        hosts.setdefault(ca_id, []).append(hostname)
    if args.json:
        out = []
        if managed is not None:
            out.append({**managed.to_dict(), "hostnames": hosts.get(managed.id, [])})
        out.extend({**u.to_dict(), "hostnames": hosts.get(u.id, [])} for u in uploaded)
        print_json(out)
        return 0
    rows: list[list[object]] = []
    if managed is not None:
        rows.append(
            [
                managed.id,
                "managed",
                managed.name,
                managed.expires_on,
                len(hosts.get(managed.id, [])),
            ]
        )
    for u in uploaded:
        rows.append([u.id, u.type, u.name or "", u.expires_on, len(hosts.get(u.id, []))])
    if not rows:
        print("No CAs yet (create the managed CA with `edgerules ca create`).")
        return 0
    print_table(["ID", "TYPE", "NAME", "EXPIRES_ON", "HOSTS"], rows)
    return 0


def _ca_delete(args: argparse.Namespace) -> int:
    with open_store_from_args(args) as store:
        ca = store.delete_uploaded_ca(args.id)
    if args.json:
        print_json({"id": ca.id, "deleted": True})
    else:
        print(f"Deleted CA {ca.id}" + (f" ({safe(ca.name)})" if ca.name else ""))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = store_options()
    ca = subparsers.add_parser("ca", help="managed CA and uploaded CAs (BYOCA)")
    ca_sub = ca.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    p = ca_sub.add_parser(
        "create", parents=[common], help="create the managed CA (and the store, if new)"
    )
    key_type_option(p, "the CA's key type (default ecdsa P-256)")
    p.set_defaults(func=_ca_create)
    p = ca_sub.add_parser("show", parents=[common], help="show the managed CA")
    p.add_argument("--pem", action="store_true", help="print only the CA certificate PEM")
    p.set_defaults(func=_ca_show)
    p = ca_sub.add_parser(
        "rekey", parents=[common], help="re-encrypt the managed CA's key with a new passphrase"
    )
    p.add_argument(
        "--new-passphrase-file",
        metavar="FILE",
        help="the new passphrase (default: $EDGERULES_NEW_STORE_PASSPHRASE)",
    )
    p.set_defaults(func=_ca_rekey)
    p = ca_sub.add_parser("upload", parents=[common], help="upload a CA certificate (BYOCA)")
    p.add_argument("file", metavar="FILE", help="PEM file with one CA certificate ('-' = stdin)")
    p.add_argument("--name", default=None, help="a unique name for the CA")
    p.add_argument(
        "--create", action="store_true", help="create the store if it does not exist yet"
    )
    _settings_options(p, defaults=True)
    p.add_argument(
        "--force",
        action="store_true",
        help="store the CA even if no client could be verified through it (print why)",
    )
    p.set_defaults(func=_ca_upload)
    p = ca_sub.add_parser(
        "set", parents=[common], help="change an uploaded CA's validation settings"
    )
    p.add_argument("id", metavar="ID", help="uploaded CA id or name")
    _settings_options(p, defaults=False)
    p.set_defaults(func=_ca_set)
    p = ca_sub.add_parser("list", parents=[common], help="list the managed and uploaded CAs")
    p.set_defaults(func=_ca_list)
    p = ca_sub.add_parser("delete", parents=[common], help="delete an uploaded CA not in use")
    p.add_argument("id", metavar="ID", help="uploaded CA id or name")
    p.set_defaults(func=_ca_delete)
