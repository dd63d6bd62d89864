"""Plumbing shared by the control-plane commands (``ca``, ``cert``, ``host``, ``crl``).

Owns: the options every store command takes (``--store``, ``--account``,
``--passphrase-file``, ``--json``), opening the store from them, reading input files,
output files that are opened (so checked) before anything irreversible happens, and the
table/field/JSON printers. Nothing here raises for a user mistake: problems become
``ConfigError`` messages (an exit status and one line, never a traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from edgerules.errors import ConfigError


def store_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--store",
        metavar="PATH|URL",
        default=None,
        help="SQLite file or postgresql:// URL (default: $EDGERULES_STORE, else ./edgerules.db)",
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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def open_store_from_args(
    args: argparse.Namespace, *, create: bool = False, read_only: bool = False
) -> Any:
    """The store named by ``--store`` / ``$EDGERULES_STORE``: an existing one unless
    ``create`` (only ``ca create`` and ``--create`` make a new store); ``read_only`` for
    commands that only read."""
    from edgerules.store import open_store

    return open_store(
        args.store,
        create=create,
        read_only=read_only,
        account_id=args.account,
        passphrase=read_passphrase_file(args.passphrase_file) if args.passphrase_file else None,
    )


def read_passphrase_file(path: str, what: str = "passphrase file") -> str:
    """One passphrase from a file (one trailing newline dropped); empty is an error."""
    data = read_input_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not valid UTF-8 text "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    text = text.rstrip("\r\n")
    if not text:
        raise ConfigError(
            f"{what} {path} is empty: give a non-empty passphrase (an empty one never means "
            "'store the key unencrypted')"
        )
    return text


def require_managed_ca(store: Any) -> Any:
    """The account's managed CA; a clear error (not a new CA) when there is none: only
    `ca create` makes one, so a mistyped --store or --account never mints a CA."""
    ca = store.managed_ca(create=False)
    if ca is None:
        raise ConfigError(
            f"no managed CA for account {store.account_id!r} in store {store.path}: create "
            "it with `edgerules ca create` (check --store and --account)"
        )
    return ca


def read_input_file(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def p12_password(args: argparse.Namespace) -> bytes | None:
    """The PKCS#12 password (``--p12-password-file``, else ``$EDGERULES_P12_PASSWORD``);
    checked here, before anything is issued: PKCS#12 passwords must be UTF-8."""
    if getattr(args, "p12_password_file", None):
        data = read_input_file(args.p12_password_file).rstrip(b"\r\n")
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


class Output:
    """An output file written crash-safely (issue 9.10).

    Opened — so checked — before anything is issued: a temporary file is created next to
    the target (same directory, so the final rename is atomic). :meth:`stage` writes and
    fsyncs the data there (before the store commits the certificate); :meth:`commit`
    renames it over the target and fsyncs the directory (after the commit). A crash
    between the commit and the rename leaves the key in the temporary file
    (``.NAME.*.tmp``), never lost; a failure before the commit leaves every existing file
    as it was. A key or PKCS#12 file is 0600; a public one keeps the mode of the file it
    replaces (0644 minus the umask when new). A target that exists and is not a regular
    file (``/dev/stdout``, a FIFO) is opened now and written at :meth:`commit`."""

    def __init__(self, option: str, path: str, *, private: bool = False) -> None:
        self.option = option
        self.path = path
        self.private = private
        self._real = os.path.realpath(path)
        self._data: bytes | None = None
        self._fd: int | None = None
        self._tmp: str | None = None
        try:
            if os.path.exists(self._real) and not os.path.isfile(self._real):
                if os.path.isdir(self._real):
                    raise IsADirectoryError(21, "Is a directory")
                self._fd = os.open(self._real, os.O_WRONLY)  # a device or a FIFO
                return
            directory, base = os.path.split(self._real)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
            self._fd = fd
            os.fchmod(fd, self._mode())
        except OSError as exc:
            self.discard()
            raise ConfigError(f"cannot write {path} ({option}): {exc.strerror or exc}") from None

    def _mode(self) -> int:
        if self.private:
            return 0o600
        try:
            return stat.S_IMODE(os.stat(self._real).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            return 0o644 & ~umask

    def stage(self, data: bytes) -> None:
        """Write and fsync ``data`` into the temporary file (before the commit)."""
        self._data = data
        if self._tmp is None:
            return  # a device or FIFO: written at commit()
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def commit(self) -> None:
        """Put the staged data in place (after the commit)."""
        fd, self._fd = self._fd, None
        assert fd is not None and self._data is not None, "commit() without stage()"
        try:
            if self._tmp is None:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(self._data)
                return
            os.close(fd)
            os.replace(self._tmp, self._real)
            self._tmp = None
            dir_fd = os.open(os.path.dirname(self._real), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, data: bytes) -> None:
        """:meth:`stage` then :meth:`commit` (outputs of commands that commit nothing)."""
        try:
            self.stage(data)
            self.commit()
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close without writing; remove the temporary file."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def open_outputs(specs: Sequence[tuple[str, str | None, bool]]) -> list[Output]:
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
    outputs: list[Output] = []
    try:
        for option, path, private in specs:
            if path is not None:
                outputs.append(Output(option, path, private=private))
    except BaseException:
        for out in outputs:
            out.discard()
        raise
    return outputs


# Characters that drive a terminal (C0/C1 controls, DEL, line/paragraph separators, bidi
# embeddings/overrides/isolates): shown escaped, never sent raw (issue 9.10 — a CSR
# subject like "CN=\x1b]0;..." must not rewrite the operator's screen).
_UNSAFE = [
    *range(0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, 0x2028, 0x2029,
    *range(0x202A, 0x202F), *range(0x2066, 0x206A),
]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNSAFE}


def safe(text: object, *, keep: str = "") -> str:
    """``text`` with terminal control characters escaped (``\\x1b``); ``keep`` lists
    characters left alone (``"\\n"`` for multi-line messages)."""
    value = str(text)
    if value.isprintable() and value.isascii():
        return value
    table = _ESCAPES if not keep else {c: e for c, e in _ESCAPES.items() if chr(c) not in keep}
    return value.translate(table)


def print_json(obj: object) -> None:
    # ensure_ascii (the default) escapes every control character as \uXXXX
    print(json.dumps(obj, indent=2, sort_keys=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[safe(h) for h in headers]] + [["" if v is None else safe(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_fields(pairs: Sequence[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key.ljust(width)}  {'' if value is None else safe(value)}".rstrip())


def key_type_option(parser: Any, help_text: str) -> None:
    parser.add_argument("--key-type", choices=("ecdsa", "rsa"), default=None, help=help_text)


def p12_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--p12-password-file",
        metavar="FILE",
        help="PKCS#12 password file (default: $EDGERULES_P12_PASSWORD)",
    )
    p.add_argument(
        "--p12-no-password",
        action="store_true",
        help="allow a bundle holding a private key without a password (unencrypted)",
    )
    p.add_argument(
        "--p12-legacy",
        action="store_true",
        help="3DES/SHA-1 PKCS#12 for old Android/iOS/macOS importers",
    )
