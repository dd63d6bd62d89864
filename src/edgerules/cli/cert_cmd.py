"""``edgerules cert``: client certificates signed by the managed CA.

    edgerules cert issue [--csr FILE | --key-type rsa|ecdsa] [--validity-days N]
                         [--cn CN | --subject DN] [--cert-out F] [--key-out F] [--p12 F]
    edgerules cert list [--status S] [--page N] [--per-page N] | show ID | revoke ID
    edgerules cert restore ID | export ID --p12 FILE [--key FILE]

Invariant of ``issue``: a generated private key exists only in this process (the store
keeps no copy), so every output is opened before issuing, written and fsynced to a
temporary file before the store commits, and renamed into place after; a failure after
the commit prints the key instead of losing it (:func:`_rescue`). ``--key-out F --json``
does not also print the key; a PKCS#12 file holding a key needs a password or
``--p12-no-password``. Text from certificates and CSRs is printed with terminal control
characters escaped (:func:`edgerules.cli.common.safe`).
Common options and output conventions: :mod:`edgerules.cli.common`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from edgerules.cli.common import (
    Output,
    key_type_option,
    open_outputs,
    open_store_from_args,
    p12_options,
    p12_password,
    positive_int,
    print_fields,
    print_json,
    print_table,
    read_input_file,
    require_managed_ca,
    store_options,
)
from edgerules.errors import ConfigError
from edgerules.pki.errors import PKIError

_STATUSES = ("all", "active", "pending_revocation", "revoked", "pending_reactivation")


def _cert_pairs(record: Any) -> list[tuple[str, object]]:
    return [
        ("id", record.id),
        ("status", record.status),
        ("subject", record.subject),
        ("common_name", record.common_name),
        ("organization", record.organization),
        ("organizational_unit", record.organizational_unit),
        ("country", record.country),
        ("state", record.state),
        ("location", record.location),
        ("serial_number", record.serial_number),
        ("serial (hex)", record.serial_hex),
        ("ski", record.ski),
        ("fingerprint_sha256", record.fingerprint_sha256),
        ("signature", record.signature),
        ("issued_on", record.issued_on),
        ("expires_on", record.expires_on),
        ("validity_days", record.validity_days),
        ("certificate_authority", f"{record.ca_name} ({record.ca_id})"),
    ]




def _p12_password_or_refusal(args: argparse.Namespace, option: str) -> bytes | None:
    """The PKCS#12 password; a bundle holding a private key without one is refused unless
    ``--p12-no-password`` says so (issue 9.10: our choice is to refuse rather than warn)."""
    password = p12_password(args)
    if password is None and not args.p12_no_password:
        raise ConfigError(
            f"{option} without a password would write the private key UNENCRYPTED into the "
            "bundle: give --p12-password-file FILE (or $EDGERULES_P12_PASSWORD), or "
            "--p12-no-password if that is really what you want"
        )
    return password


def _cert_issue(args: argparse.Namespace) -> int:
    if args.csr and (args.cn or args.subject):
        raise PKIError("--cn/--subject cannot be combined with --csr: the CSR's subject is used")
    if args.csr and args.p12:
        raise PKIError(
            "--p12 at issue time needs the generated key; with --csr use "
            "`edgerules cert export ID --p12 FILE --key YOUR.key`"
        )
    if args.csr and args.key_out:
        raise PKIError(
            "--key-out writes the key edgerules generates; with --csr the private key is "
            "yours and edgerules never sees it"
        )
    # Everything that can fail on the user's input is checked before the certificate is
    # issued, and every file is written and fsynced BEFORE the store commits (renamed into
    # place after): the generated private key exists only in this process (the store keeps
    # no copy), so neither a failure nor a crash may leave an issued certificate whose key
    # is gone (issue 9.10).
    csr = read_input_file(args.csr) if args.csr else None
    password = _p12_password_or_refusal(args, "--p12") if args.p12 else None
    outputs = open_outputs(
        [
            ("--cert-out", args.cert_out, False),
            ("--key-out", args.key_out, True),
            ("--p12", args.p12, True),
        ]
    )
    files = {out.option: out for out in outputs}

    def stage(issued: Any) -> None:  # called by the store before it commits
        record = issued.record
        if "--cert-out" in files:
            files["--cert-out"].stage(record.certificate.encode("ascii"))
        if "--key-out" in files and issued.private_key is not None:
            files["--key-out"].stage(issued.private_key.encode("ascii"))
        if "--p12" in files:
            files["--p12"].stage(
                store.pkcs12_bundle(
                    record, private_key=issued.private_key, password=password,
                    legacy=args.p12_legacy,
                )
            )

    try:
        with open_store_from_args(args) as store:
            require_managed_ca(store)
            issued = store.issue_certificate(
                csr=csr,
                key_type=args.key_type or "ecdsa",
                subject=args.subject,
                common_name=args.cn,
                validity_days=args.validity_days,
                before_commit=stage,
            )
    except BaseException:
        for out in outputs:  # nothing was issued: leave the file system as it was
            out.discard()
        raise
    # Committed: put the staged files in place.
    record = issued.record
    written: set[str] = set()
    for out in outputs:
        try:
            out.commit()
            written.add(out.option)
        except ConfigError as exc:
            for other in outputs:
                other.discard()
            _rescue(args, issued, written, str(exc))
    key_written = "--key-out" in written
    if args.json:
        data = issued.to_dict()
        if key_written or "--p12" in written:
            data.pop("private_key", None)  # in the 0600 file: never also on stdout
        print_json(data)
        return 0
    print(f"Issued client certificate {record.id}")
    print_fields(_cert_pairs(record))
    if args.cert_out:
        print(f"\nCertificate written to {args.cert_out}")
    else:
        print()
        sys.stdout.write(record.certificate)
    if issued.private_key is not None:
        if key_written:
            print(f"Private key written to {args.key_out} (mode 0600; edgerules keeps no copy)")
        elif "--p12" in written:
            print(f"Private key written only into {args.p12} (edgerules keeps no copy)")
        else:
            print("\nPrivate key (shown only this once; edgerules keeps no copy):")
            sys.stdout.write(issued.private_key)
    if "--p12" in written:
        print(f"PKCS#12 bundle (certificate, key, CA) written to {args.p12}")
    return 0


def _rescue(args: argparse.Namespace, issued: Any, written: set[str], problem: str) -> NoReturn:
    """The certificate was issued but an output failed: print what was not saved (above
    all the private key, whose only copy this is) on stdout, then fail with a message
    saying so. Nothing is lost."""
    record = issued.record
    key_saved = "--key-out" in written or issued.private_key is None
    if args.json:
        text = json.dumps(issued.to_dict(), indent=2) + "\n"
    else:
        text = f"Issued client certificate {record.id}\n"
        if "--cert-out" not in written:
            text += f"\nCertificate:\n{record.certificate}"
        if not key_saved:
            text += "\nPrivate key (shown only this once; edgerules keeps no copy):\n"
            text += issued.private_key
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        where = "stdout"
    except (OSError, ValueError):  # stdout is broken too: the key must still be shown
        sys.stderr.write(text)
        where = "stderr"
    shown = []
    if args.json or "--cert-out" not in written:
        shown.append("certificate")
    if not key_saved:
        shown.append("private key")
    what = " and ".join(shown) + (" are" if len(shown) > 1 else " is")
    raise ConfigError(
        f"{problem}\nclient certificate {record.id} WAS issued"
        + (f"; its {what} printed on {where} above" if shown else "")
        + (" (save the private key now: edgerules keeps no copy)" if not key_saved else "")
        + (f"; files written: {', '.join(sorted(written))}" if written else "")
        + (
            f"; build the PKCS#12 bundle later with `edgerules cert export {record.id} "
            "--p12 FILE --key KEY.pem`"
            if args.p12 and "--p12" not in written
            else ""
        )
    )


def _cert_list(args: argparse.Namespace) -> int:
    with open_store_from_args(args, read_only=True) as store:
        page = store.list_certificates(status=args.status, page=args.page, per_page=args.per_page)
    if args.json:
        print_json(page.to_dict())
        return 0
    if not page.items:
        print(f"No client certificates (status={args.status}, page {page.page}).")
        return 0
    print_table(
        ["ID", "STATUS", "COMMON_NAME", "SERIAL (hex)", "EXPIRES_ON"],
        [
            [c.id, c.status, c.common_name, c.serial_hex, c.expires_on]
            for c in page.items
        ],
    )
    print(
        f"page {page.page}/{page.total_pages}, {len(page.items)} of {page.total_count} "
        f"certificate(s)"
    )
    return 0


def _cert_show(args: argparse.Namespace) -> int:
    with open_store_from_args(args, read_only=True) as store:
        record = store.get_certificate(args.id)
    if args.json:
        print_json(record.to_dict())
    elif args.pem:
        sys.stdout.write(record.certificate)
    else:
        print_fields(_cert_pairs(record))
    return 0


def _cert_transition(args: argparse.Namespace) -> int:
    with open_store_from_args(args) as store:
        if args.cert_command == "revoke":
            record = store.revoke_certificate(args.id)
        else:
            record = store.restore_certificate(args.id)
    if args.json:
        print_json(record.to_dict())
    else:
        print(f"Client certificate {record.id} is now {record.status}")
    return 0


def _cert_export(args: argparse.Namespace) -> int:
    key = read_input_file(args.key) if args.key else None
    password = _p12_password_or_refusal(args, "--p12 with --key") if key is not None else (
        p12_password(args)
    )
    with open_store_from_args(args, read_only=True) as store:
        data = store.export_pkcs12(
            args.id, private_key=key, password=password, legacy=args.p12_legacy
        )
    # Output: a bundle holding the key is 0600 even when the file existed with another mode
    Output("--p12", args.p12, private=key is not None).write(data)
    what = "certificate, key and CA" if key is not None else "certificate and CA (no key)"
    if args.json:
        print_json({"id": args.id, "p12": args.p12, "includes_key": key is not None})
    else:
        print(f"PKCS#12 bundle ({what}) written to {args.p12}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = store_options()
    cert = subparsers.add_parser("cert", help="client certificates signed by the managed CA")
    cert_sub = cert.add_subparsers(dest="cert_command", metavar="ACTION", required=True)
    p = cert_sub.add_parser("issue", parents=[common], help="issue a client certificate")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--csr", metavar="FILE", help="sign this PEM CSR (its subject is kept)")
    key_type_option(source, "generate a key: ecdsa (P-256, default) or rsa (2048)")
    p.add_argument("--validity-days", type=positive_int, default=3650, metavar="N")
    name = p.add_mutually_exclusive_group()
    name.add_argument(
        "--cn", metavar="CN", help='common name (default subject "CN=Cloudflare,C=US")'
    )
    name.add_argument(
        "--subject", metavar="DN", help='RFC 4514 subject, e.g. "CN=dev1,O=Acme,C=US"'
    )
    p.add_argument("--cert-out", metavar="FILE", help="write the certificate PEM here")
    p.add_argument("--key-out", metavar="FILE", help="write the generated key here (mode 0600)")
    p.add_argument("--p12", metavar="FILE", help="also write a PKCS#12 bundle (cert + key + CA)")
    p12_options(p)
    p.set_defaults(func=_cert_issue)
    p = cert_sub.add_parser("list", parents=[common], help="list client certificates")
    p.add_argument("--status", choices=_STATUSES, default="all")
    p.add_argument("--page", type=positive_int, default=1)
    p.add_argument("--per-page", type=positive_int, default=20)
    p.set_defaults(func=_cert_list)
    p = cert_sub.add_parser("show", parents=[common], help="show one client certificate")
    p.add_argument("id", metavar="ID")
    p.add_argument("--pem", action="store_true", help="print only the certificate PEM")
    p.set_defaults(func=_cert_show)
    for action, text in (
        ("revoke", "revoke (status revoked, at once)"),
        ("restore", "restore a revoked certificate"),
    ):
        p = cert_sub.add_parser(action, parents=[common], help=text)
        p.add_argument("id", metavar="ID")
        p.set_defaults(func=_cert_transition)
    p = cert_sub.add_parser("export", parents=[common], help="export a PKCS#12 bundle")
    p.add_argument("id", metavar="ID")
    p.add_argument("--p12", metavar="FILE", required=True, help="output file")
    p.add_argument("--key", metavar="FILE", help="the certificate's private key (PEM) to include")
    p12_options(p)
    p.set_defaults(func=_cert_export)
