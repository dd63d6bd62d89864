"""CLI for the client-certificate control plane: ``ca``, ``cert`` and ``host``.

    edgerules ca show [--pem] [--key-type rsa|ecdsa]   # the managed CA (created on first use)
    edgerules ca upload FILE [--name NAME]             # BYOCA
    edgerules ca list | delete ID
    edgerules cert issue [--csr FILE | --key-type rsa|ecdsa] [--validity-days N]
                         [--cn CN | --subject DN] [--cert-out F] [--key-out F] [--p12 F]
    edgerules cert list [--status S] [--page N] [--per-page N] | show ID | revoke ID
    edgerules cert restore ID | export ID --p12 FILE [--key FILE]
    edgerules host enable HOST... [--ca ID|managed] | disable HOST... [--ca ID|managed]
    edgerules host set [HOST...] [--ca ID|managed] | list

Every leaf command takes ``--store PATH`` (default ``$EDGERULES_STORE``, else
``./edgerules.db``), ``--account ID`` and ``--json``. Output is a human table by default,
JSON with ``--json``. Errors are ``PKIError``/``StoreError``/``ConfigError`` messages on
stderr with exit status 1 (the registry's handler); argparse reports usage errors with 2.
Nothing here raises for a user mistake (DESIGN.md anti-pattern 12).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from edgerules.errors import ConfigError, PKIError, RuleError

_STATUSES = ("all", "active", "pending_revocation", "revoked", "pending_reactivation")


# -- plumbing -------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--store",
        metavar="PATH",
        default=None,
        help="SQLite store (default: $EDGERULES_STORE, else ./edgerules.db)",
    )
    p.add_argument(
        "--account",
        metavar="ID",
        default=None,
        help='account id (default: $EDGERULES_ACCOUNT, else "default")',
    )
    p.add_argument(
        "--passphrase-file",
        metavar="FILE",
        default=None,
        help="file holding the CA key passphrase (default: $EDGERULES_STORE_PASSPHRASE)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _open(args: argparse.Namespace) -> Any:
    from edgerules.store import open_store

    passphrase = None
    if args.passphrase_file:
        data = _read_file(args.passphrase_file)
        try:
            passphrase = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"passphrase file {args.passphrase_file} is not valid UTF-8 text "
                f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
            ) from None
    return open_store(args.store, account_id=args.account, passphrase=passphrase)


def _read_file(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _p12_password(args: argparse.Namespace) -> bytes | None:
    """The PKCS#12 password (``--p12-password-file``, else ``$EDGERULES_P12_PASSWORD``);
    checked here, before anything is issued: PKCS#12 passwords must be UTF-8."""
    if getattr(args, "p12_password_file", None):
        data = _read_file(args.p12_password_file).rstrip(b"\r\n")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"PKCS#12 password file {args.p12_password_file} is not valid UTF-8 text "
                f"(byte 0x{data[exc.start]:02x} at offset {exc.start}); PKCS#12 passwords "
                "must be UTF-8"
            ) from None
        return data or None
    env = os.environ.get("EDGERULES_P12_PASSWORD")
    if not env:
        return None
    try:
        return env.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the environment (surrogateescape)
        raise ConfigError(
            "$EDGERULES_P12_PASSWORD is not valid UTF-8; PKCS#12 passwords must be UTF-8"
        ) from None


class _Output:
    """An output file opened (and so checked) before a certificate is issued.

    The file is opened without truncating it: an existing file keeps its content until
    :meth:`write`, and a file this created is removed again by :meth:`discard` (used when
    issuing fails), so a failed command changes nothing."""

    def __init__(self, option: str, path: str, *, private: bool = False) -> None:
        self.option = option
        self.path = path
        self.private = private
        self.created = False
        mode = 0o600 if private else 0o644
        try:
            try:
                self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                self.created = True
            except FileExistsError:
                self._fd = os.open(path, os.O_WRONLY)
        except OSError as exc:
            raise ConfigError(f"cannot write {path} ({option}): {exc.strerror or exc}") from None

    def write(self, data: bytes) -> None:
        fd, self._fd = self._fd, None
        assert fd is not None, "written twice"
        try:
            with os.fdopen(fd, "wb") as fh:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.ftruncate(fd, 0)
                    if self.private and not self.created:
                        os.fchmod(fd, 0o600)  # an existing file: the key is still private
                fh.write(data)
        except OSError as exc:
            if self.created:  # do not leave a partial file behind
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            raise ConfigError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def discard(self) -> None:
        """Close without writing; remove the file if this created it (still empty)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.close(fd)
            if self.created:
                os.unlink(self.path)


def _open_outputs(specs: Sequence[tuple[str, str | None, bool]]) -> list[_Output]:
    """Open every ``(option, path, private)`` output, or none: a failure closes (and
    removes) the ones already opened. Two options naming one file are refused."""
    seen: dict[str, str] = {}
    for option, path, _private in specs:
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise ConfigError(f"{seen[real]} and {option} name the same file {path}")
        seen[real] = option
    outputs: list[_Output] = []
    try:
        for option, path, private in specs:
            if path is not None:
                outputs.append(_Output(option, path, private=private))
    except BaseException:
        for out in outputs:
            out.discard()
        raise
    return outputs


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fields(pairs: Sequence[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)}  {'' if value is None else value}".rstrip())


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


# -- ca ---------------------------------------------------------------------------------


def _ca_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        ca = store.managed_ca(create=True, key_type=args.key_type)
        hosts = store.get_hostname_associations(None)
    if args.json:
        _print_json({**ca.to_dict(), "hostnames": hosts})
    elif args.pem:
        sys.stdout.write(ca.certificate)
    else:
        _fields(
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
    return 0


def _ca_upload(args: argparse.Namespace) -> int:
    data = _read_file(args.file)
    with _open(args) as store:
        ca = store.upload_ca(data, name=args.name)
    if args.json:
        _print_json(ca.to_dict())
    else:
        print(f"Uploaded CA {ca.id}")
        _fields(
            [
                ("name", ca.name),
                ("subject", ca.subject),
                ("issuer", ca.issuer),
                ("signature", ca.signature),
                ("expires_on", ca.expires_on),
            ]
        )
    return 0


def _ca_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
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
        _print_json(out)
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
        print("No CAs yet (the managed CA is created on first use: `edgerules ca show`).")
        return 0
    _table(["ID", "TYPE", "NAME", "EXPIRES_ON", "HOSTS"], rows)
    return 0


def _ca_delete(args: argparse.Namespace) -> int:
    with _open(args) as store:
        ca = store.delete_uploaded_ca(args.id)
    if args.json:
        _print_json({"id": ca.id, "deleted": True})
    else:
        print(f"Deleted CA {ca.id}" + (f" ({ca.name})" if ca.name else ""))
    return 0


# -- cert -------------------------------------------------------------------------------


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
    # issued: the generated private key exists only in this process (the store keeps no
    # copy), so a failure afterwards would lose it.
    csr = _read_file(args.csr) if args.csr else None
    password = _p12_password(args) if args.p12 else None
    outputs = _open_outputs(
        [
            ("--cert-out", args.cert_out, False),
            ("--key-out", args.key_out, True),
            ("--p12", args.p12, True),
        ]
    )
    files = {out.option: out for out in outputs}
    issued = None
    p12: bytes | None = None
    p12_error: str | None = None
    try:
        with _open(args) as store:
            issued = store.issue_certificate(
                csr=csr,
                key_type=args.key_type or "ecdsa",
                subject=args.subject,
                common_name=args.cn,
                validity_days=args.validity_days,
            )
            # From here on a failure must not lose the key: _rescue prints it.
            if args.p12:
                try:
                    p12 = store.export_pkcs12(
                        issued.record.id,
                        private_key=issued.private_key,
                        password=password,
                        legacy=args.p12_legacy,
                    )
                except RuleError as exc:
                    p12_error = f"cannot build the PKCS#12 bundle {args.p12}: {exc}"
    finally:
        if issued is None:  # nothing issued: leave the file system as it was
            for out in outputs:
                out.discard()
    assert issued is not None
    if p12_error is not None:
        for out in outputs:
            out.discard()
        _rescue(args, issued, set(), p12_error)
    record = issued.record
    written: set[str] = set()
    try:
        if "--cert-out" in files:
            files["--cert-out"].write(record.certificate.encode("ascii"))
            written.add("--cert-out")
        if "--key-out" in files and issued.private_key is not None:
            files["--key-out"].write(issued.private_key.encode("ascii"))
            written.add("--key-out")
        if p12 is not None:
            files["--p12"].write(p12)
            written.add("--p12")
    except ConfigError as exc:
        for out in outputs:
            out.discard()  # the ones not reached (removed again if this created them)
        _rescue(args, issued, written, str(exc))
    key_written = "--key-out" in written
    if args.json:
        _print_json(issued.to_dict())
        return 0
    print(f"Issued client certificate {record.id}")
    _fields(_cert_pairs(record))
    if args.cert_out:
        print(f"\nCertificate written to {args.cert_out}")
    else:
        print()
        sys.stdout.write(record.certificate)
    if issued.private_key is not None:
        if key_written:
            print(f"Private key written to {args.key_out} (mode 0600; edgerules keeps no copy)")
        else:
            print("\nPrivate key (shown only this once; edgerules keeps no copy):")
            sys.stdout.write(issued.private_key)
    if p12 is not None:
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
    with _open(args) as store:
        page = store.list_certificates(status=args.status, page=args.page, per_page=args.per_page)
    if args.json:
        _print_json(page.to_dict())
        return 0
    if not page.items:
        print(f"No client certificates (status={args.status}, page {page.page}).")
        return 0
    _table(
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
    with _open(args) as store:
        record = store.get_certificate(args.id)
    if args.json:
        _print_json(record.to_dict())
    elif args.pem:
        sys.stdout.write(record.certificate)
    else:
        _fields(_cert_pairs(record))
    return 0


def _cert_transition(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if args.cert_command == "revoke":
            record = store.revoke_certificate(args.id)
        else:
            record = store.restore_certificate(args.id)
    if args.json:
        _print_json(record.to_dict())
    else:
        print(f"Client certificate {record.id} is now {record.status}")
    return 0


def _cert_export(args: argparse.Namespace) -> int:
    key = _read_file(args.key) if args.key else None
    with _open(args) as store:
        data = store.export_pkcs12(
            args.id, private_key=key, password=_p12_password(args), legacy=args.p12_legacy
        )
    # _Output: a bundle holding the key is 0600 even when the file existed with another mode
    _Output("--p12", args.p12, private=key is not None).write(data)
    what = "certificate, key and CA" if key is not None else "certificate and CA (no key)"
    if args.json:
        _print_json({"id": args.id, "p12": args.p12, "includes_key": key is not None})
    else:
        print(f"PKCS#12 bundle ({what}) written to {args.p12}")
    return 0


# -- host -------------------------------------------------------------------------------


def _ca_label(ref: str | None) -> str:
    return "the managed CA" if ref in (None, "managed") else f"CA {ref}"


def _host_assign(args: argparse.Namespace, *, replace: bool) -> int:
    """``host enable`` (add to the CA's list) and ``host set`` (PUT: exactly this list)."""
    with _open(args) as store:
        if replace:
            hosts = store.set_hostname_associations(args.hostnames, args.ca)
        else:
            hosts = store.enable_hostnames(args.hostnames, args.ca)
    if args.json:
        _print_json({"mtls_certificate_id": args.ca, "hostnames": hosts})
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
    with _open(args) as store:
        removed = store.disable_hostnames(args.hostnames, args.ca, all_cas=args.ca is None)
    if args.json:
        _print_json({"mtls_certificate_id": args.ca, "removed": removed})
    elif removed:
        print(f"Removed from {_ca_label(args.ca) if args.ca else 'every CA'}: {', '.join(removed)}")
    else:
        print("Nothing to remove: no such association.")
    return 0


def _host_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if args.ca is not None:
            hosts = store.get_hostname_associations(args.ca)
            if args.json:
                _print_json({"mtls_certificate_id": args.ca, "hostnames": hosts})
            else:
                print("\n".join(hosts) if hosts else "(none)")
            return 0
        table = store.hostname_table()
    if args.json:
        _print_json(
            [
                {"hostname": h, "ca_type": kind, "ca_id": ca_id, "ca_name": name}
                for h, kind, ca_id, name in table
            ]
        )
        return 0
    if not table:
        print("mTLS is not enabled on any hostname (`edgerules host enable HOST`).")
        return 0
    _table(["HOSTNAME", "CA_TYPE", "CA_ID", "CA_NAME"], table)
    return 0


# -- registration ------------------------------------------------------------------------


def _key_type_option(parser: Any, help_text: str) -> None:
    parser.add_argument("--key-type", choices=("ecdsa", "rsa"), default=None, help=help_text)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = _common()

    ca = subparsers.add_parser("ca", help="managed CA and uploaded CAs (BYOCA)")
    ca_sub = ca.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    p = ca_sub.add_parser(
        "show", parents=[common], help="show the managed CA (created on first use)"
    )
    p.add_argument("--pem", action="store_true", help="print only the CA certificate PEM")
    _key_type_option(p, "key type if the CA is created now (default ecdsa P-256)")
    p.set_defaults(func=_ca_show)
    p = ca_sub.add_parser("upload", parents=[common], help="upload a CA certificate (BYOCA)")
    p.add_argument("file", metavar="FILE", help="PEM file with one CA certificate ('-' = stdin)")
    p.add_argument("--name", default=None, help="a unique name for the CA")
    p.set_defaults(func=_ca_upload)
    p = ca_sub.add_parser("list", parents=[common], help="list the managed and uploaded CAs")
    p.set_defaults(func=_ca_list)
    p = ca_sub.add_parser("delete", parents=[common], help="delete an uploaded CA not in use")
    p.add_argument("id", metavar="ID", help="uploaded CA id or name")
    p.set_defaults(func=_ca_delete)

    cert = subparsers.add_parser("cert", help="client certificates signed by the managed CA")
    cert_sub = cert.add_subparsers(dest="cert_command", metavar="ACTION", required=True)
    p = cert_sub.add_parser("issue", parents=[common], help="issue a client certificate")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--csr", metavar="FILE", help="sign this PEM CSR (its subject is kept)")
    _key_type_option(source, "generate a key: ecdsa (P-256, default) or rsa (2048)")
    p.add_argument("--validity-days", type=_positive_int, default=3650, metavar="N")
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
    _p12_options(p)
    p.set_defaults(func=_cert_issue)
    p = cert_sub.add_parser("list", parents=[common], help="list client certificates")
    p.add_argument("--status", choices=_STATUSES, default="all")
    p.add_argument("--page", type=_positive_int, default=1)
    p.add_argument("--per-page", type=_positive_int, default=20)
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
    _p12_options(p)
    p.set_defaults(func=_cert_export)

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
    p = host_sub.add_parser("list", parents=[common], help="list hostname associations")
    p.add_argument("--ca", default=None, metavar="ID|managed", help="only this CA's hostnames")
    p.set_defaults(func=_host_list)


def _p12_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--p12-password-file",
        metavar="FILE",
        help="PKCS#12 password file (default: $EDGERULES_P12_PASSWORD; none = unencrypted)",
    )
    p.add_argument(
        "--p12-legacy",
        action="store_true",
        help="3DES/SHA-1 PKCS#12 for old Android/iOS/macOS importers",
    )
