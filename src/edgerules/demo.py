"""``python -m edgerules.demo`` (``make demo``): the whole product on loopback, in seconds.

Creates a store in a temporary directory, the managed CA, client certificates (valid,
revoked, one from a foreign CA, one self-signed), enables mTLS on ``api.localhost``,
starts an echo origin and the proxy with ``rules/mtls-required.json`` on 127.0.0.1 (free
ports), sends real HTTPS requests (Python ``ssl``, SNI ``api.localhost``, connecting to
127.0.0.1, verifying the proxy's dev certificate) and prints one table row per client.
Exits 0 only when every row is as expected. Everything it starts is stopped and the
temporary directory is removed, whatever happens — unless ``--keep`` is given, which
keeps the directory (store, certificates and keys) and prints how to look at it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import socket
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main"]

HOST = "api.localhost"
OTHER_HOST = "www.localhost"


@dataclass
class Row:
    client: str
    state: str
    sni: str
    cert: tuple[Path, Path] | None
    expect_status: int
    expect_decision: str
    expect_verdict: str = "NONE"  # validator verdict; "FAILED" matches any failure reason
    extra_headers: dict[str, str] | None = None
    expect_client_cert: str | None = None  # "yes"/"no": Client-Cert seen by the origin
    # filled in
    status: int | None = None
    decision: str = "?"
    verdict: str = "?"
    rule: str = "-"
    origin_client_cert: str = "-"
    error: str = ""

    @property
    def ok(self) -> bool:
        verdict_ok = (
            self.verdict.startswith("FAILED")
            if self.expect_verdict == "FAILED"
            else self.verdict == self.expect_verdict
        )
        cert_ok = self.expect_client_cert in (None, self.origin_client_cert)
        return (
            cert_ok
            and self.status == self.expect_status
            and self.decision == self.expect_decision
            and verdict_ok
        )


def _rules_file() -> Path:
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        candidate = base / "rules" / "mtls-required.json"
        if candidate.is_file():
            return candidate
    raise SystemExit("demo: rules/mtls-required.json not found (run from the project root)")


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _request(port: int, row: Row, server_ca: bytes) -> tuple[int, dict[str, Any] | None, bytes]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=server_ca.decode())  # the proxy's dev certificate
    if row.cert is not None:
        ctx.load_cert_chain(*row.cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = ctx.wrap_socket(raw, server_hostname=row.sni)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.sock = sock
        headers = {"Host": row.sni, "User-Agent": "edgerules-demo"}
        headers.update(row.extra_headers or {})
        conn.request("GET", "/hello", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        echo = json.loads(body) if resp.getheader("x-origin") == "echo" else None
        return resp.status, echo, body
    finally:
        sock.close()


def _wait_record(records: list[dict[str, Any]], index: int) -> dict[str, Any] | None:
    deadline = time.monotonic() + 5
    while len(records) <= index and time.monotonic() < deadline:
        time.sleep(0.005)
    return records[index] if len(records) > index else None


def run(out: Any = sys.stdout, *, keep: bool = False) -> int:
    from edgerules.enforcement.decision import RulesetDecider
    from edgerules.pki.devcert import generate_dev_certificate
    from edgerules.proxy.accesslog import AccessLog
    from edgerules.proxy.config import ProxyConfig
    from edgerules.proxy.echo import EchoOrigin
    from edgerules.proxy.server import ProxyServer, ServerThread
    from edgerules.rulesets import Ruleset
    from edgerules.store import open_store

    started = time.monotonic()
    rules_path = _rules_file()
    threads: list[ServerThread] = []
    stores: list[Any] = []
    workdir = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="edgerules-demo-"))
        if keep
        else tempfile.TemporaryDirectory(prefix="edgerules-demo-")
    )
    with workdir as tmp_name:
        tmp = Path(tmp_name)
        try:
            print(f"edgerules demo: store and certificates in {tmp}", file=out)
            store = open_store(str(tmp / "edgerules.db"), create=True)
            stores.append(store)
            ca = store.managed_ca()
            print(f"  managed CA     {ca.name if hasattr(ca, 'name') else ca}", file=out)
            valid = store.issue_certificate(common_name="device-001", validity_days=365)
            revoked = store.issue_certificate(common_name="device-002", validity_days=365)
            store.revoke_certificate(revoked.record.id)
            # A certificate from another account's managed CA: a CA we do not trust.
            foreign_store = open_store(
                str(tmp / "foreign.db"), create=True, account_id="someone-else"
            )
            stores.append(foreign_store)
            foreign = foreign_store.issue_certificate(common_name="intruder", validity_days=365)
            self_signed = generate_dev_certificate(["self-signed-client"])
            store.enable_hostnames([HOST])
            print(f"  mTLS enabled   {', '.join(sorted(store.mtls_hostnames()))}", file=out)
            print(f"  rules          {rules_path}", file=out)

            def pair(name: str, cert_pem: str | bytes, key_pem: str | bytes) -> tuple[Path, Path]:
                return _write(tmp / f"{name}.crt", cert_pem), _write(tmp / f"{name}.key", key_pem)

            assert valid.private_key and revoked.private_key and foreign.private_key
            rows = [
                Row("anonymous", "none", HOST, None, 403, "block"),
                Row(
                    "device-001",
                    "valid (managed CA)",
                    HOST,
                    pair("valid", valid.record.certificate, valid.private_key),
                    200,
                    "allow",
                    "SUCCESS",
                    expect_client_cert="yes",
                ),
                Row(
                    "device-002",
                    "revoked (managed CA)",
                    HOST,
                    pair("revoked", revoked.record.certificate, revoked.private_key),
                    403,
                    "block",
                    "SUCCESS, REVOKED",
                ),
                Row(
                    "intruder",
                    "foreign CA",
                    HOST,
                    pair("foreign", foreign.record.certificate, foreign.private_key),
                    403,
                    "block",
                    "FAILED",
                ),
                Row(
                    "self-signed",
                    "self-signed",
                    HOST,
                    pair("self", self_signed.cert_pem, self_signed.key_pem),
                    403,
                    "block",
                    "FAILED",
                ),
                Row(
                    "forger",
                    "none + forged Client-Cert",
                    HOST,
                    None,
                    403,
                    "block",
                    "NONE",
                    {"Client-Cert": ":Zm9yZ2Vk:", "cf-cert-verified": "true"},
                ),
                Row(
                    "forger on www",
                    f"none + forged Client-Cert ({OTHER_HOST})",
                    OTHER_HOST,
                    None,
                    200,
                    "allow",
                    "NONE",
                    {"Client-Cert": ":Zm9yZ2Vk:"},
                    expect_client_cert="no",  # allowed, but the forged header never arrives
                ),
            ]

            # -- servers ----------------------------------------------------------
            origin = ServerThread(EchoOrigin()).start()
            threads.append(origin)
            access_log = AccessLog(None)
            access_log.records = []
            config = ProxyConfig(
                upstream=f"http://127.0.0.1:{origin.port}",
                listen_host="127.0.0.1",
                listen_port=0,
                dev_cert_hostnames=(HOST, OTHER_HOST, "localhost"),
            )
            proxy = ProxyServer(
                config,
                RulesetDecider(Ruleset.load(rules_path)),
                store=store,
                access_log=access_log,
            )
            proxy_thread = ServerThread(proxy).start()
            threads.append(proxy_thread)
            assert proxy.tls.dev_certificate is not None and proxy_thread.port is not None
            server_ca = proxy.tls.dev_certificate.cert_pem
            print(
                f"  origin         http://127.0.0.1:{origin.port}\n"
                f"  proxy          https://127.0.0.1:{proxy_thread.port} (SNI {HOST} -> 127.0.0.1)\n",
                file=out,
            )

            # -- requests ---------------------------------------------------------
            for row in rows:
                before = len(access_log.records)
                try:
                    status, echo, _body = _request(proxy_thread.port, row, server_ca)
                except (OSError, ssl.SSLError) as exc:
                    row.error = f"{type(exc).__name__}: {exc}"
                    continue
                row.status = status
                record = _wait_record(access_log.records, before)
                if record is not None:
                    row.decision = record.get("decision") or "?"
                    row.rule = record.get("rule") or "-"
                    row.verdict = record.get("cert_status") or "?"
                if echo is not None:
                    names = {n.lower() for n, _ in echo["headers"]}
                    row.origin_client_cert = "yes" if "client-cert" in names else "no"
        finally:
            for thread in reversed(threads):
                try:
                    thread.stop(2.0)
                except Exception as exc:  # report, keep stopping the others
                    print(f"demo: stopping a server failed: {exc}", file=sys.stderr)
            for st in stores:
                try:
                    st.close()
                except Exception:
                    pass

    # -- table ------------------------------------------------------------------------
    headers = (
        "client",
        "certificate",
        "validator",
        "decision",
        "rule",
        "HTTP",
        "Client-Cert@origin",
        "",
    )
    table = [
        (
            r.client,
            r.state,
            r.verdict,
            r.decision,
            r.rule,
            str(r.status) if r.status is not None else "-",
            r.origin_client_cert,
            "ok"
            if r.ok
            else f"EXPECTED {r.expect_verdict} {r.expect_decision} {r.expect_status} {r.error}".rstrip(),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line.rstrip(), file=out)
    print("  ".join("-" * w for w in widths).rstrip(), file=out)
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip(), file=out)
    failures = [r for r in rows if not r.ok]
    elapsed = time.monotonic() - started
    if failures:
        print(
            f"\ndemo FAILED: {len(failures)} of {len(rows)} rows unexpected ({elapsed:.1f} s)",
            file=out,
        )
        if keep:
            print(f"kept: {tmp_name}", file=out)
        return 1
    print(
        f"\ndemo OK: {len(rows)} of {len(rows)} rows as expected; everything stopped ({elapsed:.1f} s)",
        file=out,
    )
    if keep:
        print(
            f"kept: {tmp_name} (store edgerules.db, the client certificates and keys); look "
            f"inside with:\n  .venv/bin/edgerules cert list --store {tmp_name}/edgerules.db",
            file=out,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgerules.demo",
        description="The whole product on loopback: a store with the managed CA, client "
        "certificates (valid, revoked, foreign, self-signed), the mTLS proxy with "
        "rules/mtls-required.json and an echo origin; real HTTPS requests, one table row "
        "per client. Exit status 0 when every row is as expected.",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory (store, certificates, keys) and print where it is",
    )
    args = parser.parse_args(argv)
    return run(keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
