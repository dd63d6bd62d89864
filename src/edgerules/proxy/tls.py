"""TLS termination with pyOpenSSL driven from asyncio through memory BIOs.

Owns: the server ``SSL.Context`` (certificate, protocol floor, session policy), the SNI
callback that decides per connection whether to *request* a client certificate,
``TLSProtocol`` — the proxy's connection: an ``asyncio.Protocol`` that feeds ciphertext
from ``data_received`` straight into OpenSSL and keeps the plaintext it yields — and
``TLSStream``, an async byte stream over one ``SSL.Connection`` whose ciphertext moves
through asyncio's ``StreamReader``/``StreamWriter`` (``edgerules serve``).

Why pyOpenSSL: Python's ``ssl`` module aborts the handshake when a requested client
certificate does not verify; Cloudflare completes the handshake whatever the client
presents, so that the *rules* decide (its troubleshooting page shows requests with an
invalid and with no certificate reaching a Worker:
https://developers.cloudflare.com/ssl/client-certificates/troubleshooting/). Here a hostname with mTLS gets
``VERIFY_PEER`` (never ``FAIL_IF_NO_PEER_CERT``) with a verify callback that accepts
everything; the chain is judged afterwards by ``edgerules.tls.ClientCertValidator``.

Invariants:
* The certificate request is decided by SNI alone, not Host (our choice; Cloudflare does
  not say which).
* The leaf is taken from ``get_peer_certificate()``: on the server side OpenSSL's
  ``get_peer_cert_chain()`` omits it. ``chain_der`` is leaf first, then the
  intermediates in the order the client sent them.
* OpenSSL's own chain verification is limited to depth 0 (it runs inside the handshake,
  on the event loop, although its verdict is ignored): it checks at most one signature
  (the leaf's, with the first intermediate's key), and the client's CertificateVerify is
  checked with the leaf's key; the validator judges the whole chain in a worker thread.
  A presented certificate whose key edgerules refuses to verify with (RSA exponent over
  2^32-1, modulus over 8192 bits, …) fails the handshake before either check
  (``_accept_any_certificate``): the one exception to "the handshake completes whatever
  the client presents", so that no key can cost the event loop milliseconds.
* Session resumption is disabled on every context (no session cache, no tickets): a
  resumed session carries no peer chain, so an mTLS verdict would silently vanish. A
  session id context is still set, as OpenSSL requires one whenever VERIFY_PEER is on.
* Only ``TLSError`` (or ``EOFError``/``OSError``/``TimeoutError``) leaves this module.
* ``TLSProtocol``'s record path (``SSL_read``/``SSL_write``/``BIO_read``/``BIO_write``)
  calls OpenSSL through pyOpenSSL's own cffi binding on the connection's ``SSL`` and
  BIO pointers, with one reusable read buffer per thread: pyOpenSSL's methods allocate
  a fresh 64 KiB buffer per call and wrap every call in Python-level checks, which was
  most of the TLS share of a keep-alive request (issue 14). Anything but data or
  "want read" goes back through pyOpenSSL's error mapping, so errors are reported alike.
* No cryptography X.509 calls here (the validator and ``pki`` own those): the peer's
  certificates stay pyOpenSSL ``X509`` objects and leave as DER through
  ``crypto.dump_certificate(FILETYPE_ASN1, …)`` — cheaper than ``as_cryptography=True``,
  which would parse each certificate once more only to re-encode it. The development
  certificate is built by :mod:`edgerules.pki.devcert`; its objects are handed to
  pyOpenSSL as they are.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from edgerules.errors import ConfigError
from edgerules.proxy.waiter import Waiter, WriteFlow
from edgerules.tls.keycheck import certificate_refusal

__all__ = [
    "ServerTLS",
    "TLSError",
    "TLSInfo",
    "TLSProtocol",
    "TLSStream",
    "boringssl_cipher_name",
]

log = logging.getLogger("edgerules.proxy")

_READ_SIZE = 65536
_LINGER_MAX = 16 * 1024 * 1024  # bytes discarded at most while lingering
_SESSION_ID_CONTEXT = b"edgerules-proxy"

# OpenSSL names TLS 1.3 suites after the RFC; Cloudflare's cf.tls_cipher uses BoringSSL's
# names ("AEAD-AES128-GCM-SHA256"). TLS 1.2 names are the same in both libraries.
_TLS13_CIPHERS = {
    "TLS_AES_128_GCM_SHA256": "AEAD-AES128-GCM-SHA256",
    "TLS_AES_256_GCM_SHA384": "AEAD-AES256-GCM-SHA384",
    "TLS_CHACHA20_POLY1305_SHA256": "AEAD-CHACHA20-POLY1305-SHA256",
}


def boringssl_cipher_name(openssl_name: str) -> str:
    return _TLS13_CIPHERS.get(openssl_name, openssl_name)


class TLSError(Exception):
    """A TLS failure on one connection (bad record, handshake failure, protocol error)."""


_MAX_PEM_FILE = 1 << 20  # a server certificate chain or key file is far smaller


def _openssl_reason(exc: BaseException) -> str:
    """OpenSSL's error queue ``[(lib, func, reason), ...]`` as readable text."""
    errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else None
    if not errors:
        return str(exc) or type(exc).__name__
    reasons = [str(e[2]) for e in errors if isinstance(e, tuple) and len(e) == 3 and e[2]]
    return "; ".join(dict.fromkeys(reasons)) or str(exc)


def _read_pem_file(path: str, what: str) -> bytes:
    """The bytes of the server's ``what`` file, or a ConfigError naming it and why."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"cannot load the server {what} {path}: it is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"cannot load the server {what} {path}: not a regular file")
        if info.st_size > _MAX_PEM_FILE:
            raise ConfigError(
                f"cannot load the server {what} {path}: {info.st_size} bytes is too large "
                f"for a PEM file (at most {_MAX_PEM_FILE})"
            )
        with open(path, "rb") as fh:
            return fh.read(_MAX_PEM_FILE + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot load the server {what} {path}: {exc.strerror or exc}"
        ) from None


def _load_server_files(ctx: SSL.Context, cert_file: str, key_file: str) -> None:
    """Load ``--cert``/``--key`` into ``ctx``; every problem is a ConfigError naming the
    file and what is wrong with it (never OpenSSL's raw error list)."""
    cert_pem = _read_pem_file(cert_file, "certificate")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        hint = " (it holds a private key: swapped --cert and --key?)" if (
            b"PRIVATE KEY-----" in cert_pem
        ) else ""
        raise ConfigError(
            f"cannot load the server certificate {cert_file}: not a PEM certificate "
            f"(no -----BEGIN CERTIFICATE----- block){hint}"
        )
    try:
        ctx.use_certificate_chain_file(cert_file)
    except SSL.Error as exc:
        raise ConfigError(
            f"cannot load the server certificate {cert_file}: not a valid PEM certificate "
            f"chain ({_openssl_reason(exc)})"
        ) from None
    key_pem = _read_pem_file(key_file, "private key")
    if b"PRIVATE KEY-----" not in key_pem:
        hint = " (it holds a certificate: swapped --cert and --key?)" if (
            b"-----BEGIN CERTIFICATE-----" in key_pem
        ) else ""
        raise ConfigError(
            f"cannot load the server private key {key_file}: not a PEM private key "
            f"(no -----BEGIN ... PRIVATE KEY----- block){hint}"
        )
    if b"ENCRYPTED" in key_pem:
        raise ConfigError(
            f"cannot load the server private key {key_file}: the key is encrypted; "
            "give an unencrypted key (e.g. `openssl pkey -in KEY -out plain.key`)"
        )
    mismatch = ConfigError(
        f"the server private key {key_file} does not match the certificate in {cert_file} "
        "(the first certificate of --cert must be the key's)"
    )
    try:
        ctx.use_privatekey_file(key_file)
    except SSL.Error as exc:
        reason = _openssl_reason(exc)
        if "mismatch" in reason:  # OpenSSL checks the pair when the key is loaded
            raise mismatch from None
        raise ConfigError(
            f"cannot load the server private key {key_file}: not a valid PEM private key "
            f"({reason})"
        ) from None
    try:
        ctx.check_privatekey()
    except SSL.Error:
        raise mismatch from None


def _accept_any_certificate(
    conn: SSL.Connection, cert: Any, errnum: int, depth: int, ok: int
) -> bool:
    """OpenSSL's verify callback on mTLS hostnames: accept whatever is presented, so that
    no certificate makes the handshake fail and the *rules* decide (Cloudflare completes
    the handshake for a missing, untrusted, expired or self-signed certificate);
    verification is the validator's job, after the handshake, off the event loop.

    One exception (our choice; Cloudflare does not say), a security bound: a certificate whose public key edgerules refuses
    to verify with (an RSA exponent over 2^32-1 or a modulus over 8192 bits, an EC key
    with explicit parameters, …: :func:`edgerules.tls.keycheck.refusal`) fails the
    handshake. OpenSSL would otherwise check a signature with that key right here, on the
    event loop, whatever this callback answers — the leaf's signature with the first
    intermediate's key (it builds one level past the verify depth of 0), the client's
    CertificateVerify with the leaf's key — and one such check costs milliseconds, the
    lever of issue 9 point 2's attack. No real client presents such a key; BoringSSL,
    Cloudflare's TLS library, refuses RSA exponents over 33 bits outright."""
    try:
        reason = certificate_refusal(crypto.dump_certificate(crypto.FILETYPE_ASN1, cert))
    except Exception:  # never raise into OpenSSL; the validator judges what we cannot
        return True
    if not reason:
        return True
    info = conn.get_app_data()
    if isinstance(info, TLSInfo) and not info.refused_key:
        info.refused_key = f"certificate at depth {depth}: {reason}"
    return False


_VERIFY_MODE = SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE
_VERIFY_HELPER: Any = None


def _shared_verify_callback() -> Any:
    """The C verify callback running ``_accept_any_certificate`` for any connection
    (pyOpenSSL's wrapper finds the ``Connection`` from the ``SSL`` pointer); built once
    and kept for the life of the process."""
    global _VERIFY_HELPER
    if _VERIFY_HELPER is None:
        _VERIFY_HELPER = SSL._VerifyHelper(_accept_any_certificate)  # type: ignore[attr-defined]
    return _VERIFY_HELPER.callback


def _handshake_failure(exc: SSL.Error, info: TLSInfo | None) -> str:
    message = f"TLS handshake failed: {_describe(exc)}"
    if info is not None and info.refused_key:
        message += f" (refused a {info.refused_key})"
    return message


@dataclass(slots=True)
class TLSInfo:
    """What the handshake established; filled in by the SNI callback, the verify callback
    and ``TLSProtocol`` (the proxy) or ``TLSStream`` (``edgerules serve``)."""

    sni: str | None = None
    cert_requested: bool = False  # a CertificateRequest was sent (mTLS host)
    validator: Any = None  # the hostname's ClientCertValidator when cert_requested
    version: str = ""  # "TLSv1.2" | "TLSv1.3"
    cipher: str = ""  # BoringSSL naming
    chain_der: tuple[bytes, ...] = ()  # leaf first, then intermediates as sent
    session_reused: bool = False
    # why the handshake was refused in the verify callback (a key too costly to verify)
    refused_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ServerTLS:
    """The server-side TLS configuration shared by every connection.

    ``mtls_lookup(sni) -> validator | None`` says whether a hostname has mTLS enabled
    (and returns the validator to use). It is called inside the handshake, once per
    connection, so it must be fast (the server caches store lookups).
    """

    def __init__(
        self,
        *,
        cert_file: str | None = None,
        key_file: str | None = None,
        dev_cert_hostnames: tuple[str, ...] = ("localhost", "*.localhost"),
        mtls_lookup: Callable[[str | None], Any] = lambda host: None,
    ) -> None:
        self.mtls_lookup = mtls_lookup
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_options(
            SSL.OP_NO_COMPRESSION
            | SSL.OP_NO_RENEGOTIATION
            | SSL.OP_CIPHER_SERVER_PREFERENCE
            | SSL.OP_NO_TICKET
        )
        # OpenSSL verifies the presented chain during the handshake although our callback
        # accepts everything: with a crafted chain (RSA keys with huge exponents) that is
        # tens of milliseconds of signature checks on the event loop per handshake. Depth
        # 0 stops its chain building at the leaf (one signature check at most); the whole
        # chain is still received and judged by the validator, off the loop.
        ctx.set_verify_depth(0)
        # Free OpenSSL's record buffers (~34 KiB) while a connection is idle, as nginx
        # does: most keep-alive connections are idle most of the time (issue 14 point 4).
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        # No resumption at all (see module docstring); the id context is still required.
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        ctx.set_session_id(_SESSION_ID_CONTEXT)
        if cert_file is not None and key_file is not None:
            _load_server_files(ctx, cert_file, key_file)
            self.dev_certificate = None
        else:
            try:
                from edgerules.pki.devcert import generate_dev_certificate

                dev = generate_dev_certificate(dev_cert_hostnames)
                ctx.use_certificate(dev.certificate)
                ctx.use_privatekey(dev.private_key)
                ctx.check_privatekey()
                self.dev_certificate = dev
            except (SSL.Error, OSError) as exc:
                raise ConfigError(
                    f"cannot load the development server certificate: {_openssl_reason(exc)}"
                ) from None
        ctx.set_tlsext_servername_callback(self._on_servername)
        self.context = ctx

    def _on_servername(self, conn: SSL.Connection) -> None:
        info: TLSInfo = conn.get_app_data()
        raw = conn.get_servername()
        sni = None
        if raw:
            try:
                sni = raw.decode("ascii").lower().rstrip(".")
            except UnicodeDecodeError:
                sni = None
        info.sni = sni
        validator = self.mtls_lookup(sni) if sni else None
        if validator is not None:
            info.cert_requested = True
            info.validator = validator
            # Ask for a certificate but never require one, and never fail on what comes.
            # One C callback shared by every connection (``Connection.set_verify`` would
            # build a wrapper and a cffi callback per connection and keep them for its
            # life: ≈ 0.7 KiB of an idle connection, issue 14). Our callback never
            # raises, so nothing is lost by not having pyOpenSSL's per-connection helper
            # collect exceptions.
            _lib.SSL_set_verify(conn._ssl, _VERIFY_MODE, _shared_verify_callback())  # type: ignore[attr-defined]

    def new_connection(self) -> tuple[SSL.Connection, TLSInfo]:
        conn = SSL.Connection(self.context, None)  # None → memory BIOs
        info = TLSInfo()
        conn.set_app_data(info)
        conn.set_accept_state()
        return conn, info


class TLSStream:
    """Async plaintext stream over one server-side TLS connection."""

    def __init__(
        self,
        conn: SSL.Connection,
        info: TLSInfo,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        write_timeout: float = 30.0,
    ) -> None:
        self._conn = conn
        self.info = info
        self._reader = reader
        self._writer = writer
        self._write_timeout = write_timeout
        self._eof = False

    # -- ciphertext plumbing -------------------------------------------------------
    def _pending_output(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self._conn.bio_read(_READ_SIZE)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    async def _flush(self) -> None:
        data = self._pending_output()
        if data:
            writer = self._writer
            writer.write(data)
            # Wait (with a timeout) only when the kernel did not take everything: a small
            # response normally leaves in the write() itself, and arming a timer per
            # write was a measurable share of a keep-alive request (docs/proxy-bench.md).
            transport = writer.transport
            if transport.get_write_buffer_size() or transport.is_closing():
                async with asyncio.timeout(self._write_timeout):
                    await writer.drain()

    async def _feed(self) -> bool:
        """Read ciphertext from the socket into the TLS engine; False on EOF."""
        data = await self._reader.read(_READ_SIZE)
        if not data:
            return False
        self._conn.bio_write(data)
        return True

    # -- handshake -----------------------------------------------------------------
    async def handshake(self) -> TLSInfo:
        while True:
            try:
                self._conn.do_handshake()
                break
            except SSL.WantReadError:
                await self._flush()
                if not await self._feed():
                    raise TLSError("connection closed during the TLS handshake") from None
            except SSL.Error as exc:
                # Send the alert OpenSSL queued, then give up on this connection only.
                try:
                    await self._flush()
                except (OSError, TimeoutError):
                    pass
                raise TLSError(_handshake_failure(exc, self.info)) from None
        await self._flush()
        info = self.info
        info.version = self._conn.get_protocol_version_name()
        info.cipher = boringssl_cipher_name(self._conn.get_cipher_name() or "")
        info.session_reused = bool(self._conn.get_session() and _session_reused(self._conn))
        if info.cert_requested:
            info.chain_der = _peer_chain_der(self._conn)
        return info

    # -- application data ----------------------------------------------------------
    async def recv(self) -> bytes:
        """Next plaintext bytes; ``b""`` at end of stream (close_notify or TCP EOF)."""
        if self._eof:
            return b""
        while True:
            try:
                return self._conn.recv(_READ_SIZE)
            except SSL.WantReadError:
                await self._flush()  # e.g. TLS 1.3 post-handshake messages
                if not await self._feed():
                    self._eof = True
                    return b""
            except SSL.ZeroReturnError:
                self._eof = True
                return b""
            except SSL.SysCallError:
                self._eof = True
                return b""
            except SSL.Error as exc:
                raise TLSError(f"TLS error: {_describe(exc)}") from None

    async def send(self, data: bytes) -> None:
        if not data:
            return
        try:
            view = memoryview(data)
            while view:
                sent = self._conn.send(view[:_READ_SIZE].tobytes())
                view = view[sent:]
        except SSL.Error as exc:
            raise TLSError(f"TLS error while sending: {_describe(exc)}") from None
        await self._flush()

    async def close(self, linger: float = 0.0) -> None:
        """Send close_notify when possible, then close the socket (never raises).

        close_notify is sent also in answer to the peer's own (RFC 8446 §6.1): a client
        that shuts TLS down cleanly (Python's ``unwrap()``) waits for it.

        ``linger`` > 0: the client may still be sending (a request body we did not read):
        after our response and close_notify, half-close (FIN) and read and discard what
        it sends for up to ``linger`` seconds (and ``_LINGER_MAX`` bytes). Closing with
        unread input makes the kernel send a reset, which can destroy the response the
        client has not read yet (the "lingering close" of RFC 9112 §9.6)."""
        try:
            if not self._conn.get_shutdown() & SSL.SENT_SHUTDOWN and self.info.version:
                self._conn.shutdown()
                await asyncio.wait_for(self._flush(), 1.0)
        except Exception:  # the peer may be gone; closing must not fail
            pass
        if linger > 0 and not self._eof:
            try:
                if self._writer.can_write_eof():
                    self._writer.write_eof()
                async with asyncio.timeout(linger):
                    discarded = 0
                    while discarded < _LINGER_MAX:
                        data = await self._reader.read(_READ_SIZE)
                        if not data:
                            break
                        discarded += len(data)
            except Exception:  # timeout, reset: close anyway
                pass
        close_transport(self._writer)


# -- the proxy's connection: a Protocol over memory BIOs --------------------------------
_WANT_READ = _lib.SSL_ERROR_WANT_READ
_PLAINTEXT_HIGH = 256 * 1024  # buffered plaintext above which the socket is not read
_WRITE_PIECE = 256 * 1024  # plaintext encrypted per SSL_write (bounds the BIO's growth)
_BIO_KEEP = 4096  # a memory BIO that held more is replaced when the connection idles
_buffers = threading.local()


def _read_buffer() -> Any:
    """A reusable 64 KiB C buffer for SSL_read/BIO_read, one per thread (cffi releases
    the GIL during the call, and tests run several proxies in one process)."""
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = _ffi.new("char[]", _READ_SIZE)
    return buf


class _Ready:
    """An awaitable that is done already (``TLSProtocol.wait`` after EOF)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return iter(())  # type: ignore[return-value]


_READY = _Ready()


class TLSProtocol(WriteFlow):
    """One server-side TLS connection as an ``asyncio.Protocol``.

    Ciphertext is written into OpenSSL's memory BIO as it arrives; after the handshake
    every record is decrypted at once into ``buf`` (plaintext not consumed yet; the
    consumer slices what it used off the front). ``eof`` turns True at the peer's
    ``close_notify``, TCP EOF, a TLS error (``error`` says which) or a lost connection.
    One coroutine (the connection's) consumes it: ``wait(timeout)`` suspends it until
    something new arrived. Writing is synchronous (``send``: encrypt and hand to the
    transport); ``drain`` waits only while the transport's buffer is over its mark.
    """

    __slots__ = (
        "_bio_in", "_bio_out", "_bios_grown", "_discarding", "_drain_waiter", "_on_connect",
        "_read_paused", "_ssl", "_tls", "_waiter", "_write_paused", "buf", "closed", "conn",
        "discarded", "eof", "error", "handshaken", "info", "transport",
    )

    def __init__(self, tls: ServerTLS, on_connect: Callable[[TLSProtocol], None]) -> None:
        self._tls = tls
        self._on_connect = on_connect
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.eof = False
        self.error: str | None = None
        self.closed = False
        self.handshaken = False
        self.discarded = 0  # lingering close: bytes dropped unread
        self._bios_grown = True  # the BIOs held more than _BIO_KEEP (the handshake does)
        self._discarding = False
        self._waiter = Waiter()
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self.conn: SSL.Connection | None = None
        self.info: TLSInfo | None = None

    # -- asyncio callbacks --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn, self.info = self._tls.new_connection()
        conn = self.conn
        self._ssl, self._bio_in, self._bio_out = conn._ssl, conn._into_ssl, conn._from_ssl  # type: ignore[attr-defined]
        self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            self.discarded += len(data)
            if self.discarded >= _LINGER_MAX and self.transport is not None:
                self.transport.close()
            return
        if self.eof:
            return  # after close_notify or an error nothing more is read
        _lib.BIO_write(self._bio_in, data, len(data))
        if len(data) > _BIO_KEEP:
            self._bios_grown = True
        if self.handshaken:
            self._decrypt()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # keep the transport: the response may still have to be written

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.closed = True
        self._waiter.close()
        self._fail_drain("connection lost")

    # -- records ------------------------------------------------------------------------
    def _decrypt(self) -> None:
        ssl = self._ssl
        buf = _read_buffer()
        chunks = []
        while True:
            n = _lib.SSL_read(ssl, buf, _READ_SIZE)
            if n > 0:
                chunks.append(_ffi.buffer(buf, n)[:])
                continue
            if _lib.SSL_get_error(ssl, n) != _WANT_READ:
                self._read_failed(n)
            break
        if chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.buf = self.buf + data if self.buf else data
            if len(self.buf) > _PLAINTEXT_HIGH and not self._read_paused and self.transport:
                self._read_paused = True
                self.transport.pause_reading()
        self._flush()  # e.g. TLS 1.3 post-handshake messages, alerts

    def _read_failed(self, result: int) -> None:
        assert self.conn is not None
        try:
            self.conn._raise_ssl_error(self._ssl, result)  # type: ignore[attr-defined]
        except (SSL.ZeroReturnError, SSL.SysCallError, SSL.WantReadError):
            pass  # close_notify / EOF
        except SSL.Error as exc:
            self.error = f"TLS error: {_describe(exc)}"
        self.eof = True

    def release_buffers(self) -> None:
        """Give OpenSSL's memory BIOs back to the allocator when they grew (a memory BIO
        keeps the capacity of the largest data it ever held: the handshake flights, a
        large response). Called after the handshake and when the connection goes idle;
        what the input BIO still holds (part of a record) moves to the new one."""
        if not self._bios_grown or self.conn is None or self.closed:
            return
        self._bios_grown = False
        self._flush()  # the output BIO is empty after this
        buf = _read_buffer()
        pending = []
        while (n := _lib.BIO_read(self._bio_in, buf, _READ_SIZE)) > 0:
            pending.append(_ffi.buffer(buf, n)[:])
        bio_in = _lib.BIO_new(_lib.BIO_s_mem())
        bio_out = _lib.BIO_new(_lib.BIO_s_mem())
        if bio_in == _ffi.NULL or bio_out == _ffi.NULL:
            raise MemoryError("BIO_new failed")
        for data in pending:
            _lib.BIO_write(bio_in, data, len(data))
        _lib.SSL_set_bio(self._ssl, bio_in, bio_out)  # frees the old pair (SSL owned them)
        conn = self.conn
        conn._into_ssl, conn._from_ssl = bio_in, bio_out  # type: ignore[attr-defined]
        self._bio_in, self._bio_out = bio_in, bio_out

    def consumed(self) -> None:
        """The consumer took from ``buf``: read the socket again when it was paused."""
        if self._read_paused and len(self.buf) <= _PLAINTEXT_HIGH // 2 and self.transport:
            self._read_paused = False
            self.transport.resume_reading()

    def _flush(self) -> None:
        bio = self._bio_out
        buf = _read_buffer()
        n = _lib.BIO_read(bio, buf, _READ_SIZE)
        if n <= 0:
            return
        data = _ffi.buffer(buf, n)[:]
        while n == _READ_SIZE:
            n = _lib.BIO_read(bio, buf, _READ_SIZE)
            if n > 0:
                data += _ffi.buffer(buf, n)[:]
        if len(data) > _BIO_KEEP:
            self._bios_grown = True
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def send(self, data: bytes) -> None:
        """Encrypt ``data`` and hand it to the transport (never waits). Raises
        ``TLSError`` when the connection is gone or TLS fails."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise TLSError("connection closed")
        ssl = self._ssl
        total = len(data)
        done = flushed = 0
        with _ffi.from_buffer(data) as ptr:
            while done < total:
                # pyOpenSSL's contexts allow partial writes: one record may be all that
                # SSL_write takes. The BIO is emptied every _WRITE_PIECE (bounded).
                n = _lib.SSL_write(ssl, ptr + done, total - done)
                if n <= 0:
                    assert self.conn is not None
                    try:
                        self.conn._raise_ssl_error(ssl, n)  # type: ignore[attr-defined]
                    except SSL.Error as exc:
                        raise TLSError(f"TLS error while sending: {_describe(exc)}") from None
                    raise TLSError("TLS write failed")
                done += n
                if done - flushed >= _WRITE_PIECE and done < total:
                    self._flush()
                    flushed = done
        self._flush()

    @property
    def write_blocked(self) -> bool:
        return self._write_paused

    async def drain(self, timeout: float) -> None:
        """Wait until the transport's buffer is under its mark (TimeoutError after
        ``timeout``; ConnectionResetError when the connection is lost)."""
        if not self._write_paused:
            if self.closed:
                raise ConnectionResetError("connection lost")
            return
        await self._wait_drained(timeout)

    # -- waiting ------------------------------------------------------------------------
    def _wake(self) -> None:
        self._waiter.wake()

    def wait(self, timeout: float) -> Awaitable[None]:
        """Await it: until something arrives (plaintext, ciphertext during the
        handshake, EOF or an error), at most ``timeout`` seconds (then TimeoutError).
        Not a coroutine (no frame held while a connection idles, see ``Waiter``)."""
        if self.eof:
            return _READY
        return self._waiter.wait(timeout)

    # -- handshake and closing ----------------------------------------------------------
    async def handshake(self) -> TLSInfo:
        """Drive the handshake (the caller bounds it with a timeout)."""
        conn, info = self.conn, self.info
        assert conn is not None and info is not None
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                self._flush()
                if self.eof:
                    raise TLSError("connection closed during the TLS handshake") from None
                await self.wait(3600.0)
            except SSL.Error as exc:
                self._flush()  # the alert OpenSSL queued
                raise TLSError(_handshake_failure(exc, info)) from None
        self._flush()
        self.handshaken = True
        self.release_buffers()  # the handshake flights (certificate chains) are the largest
        info.version = conn.get_protocol_version_name()
        info.cipher = boringssl_cipher_name(conn.get_cipher_name() or "")
        info.session_reused = bool(conn.get_session() and _session_reused(conn))
        if info.cert_requested:
            info.chain_der = _peer_chain_der(conn)
        self._decrypt()  # application data that came with the last handshake flight
        return info

    async def close(self, linger: float = 0.0) -> None:
        """close_notify when possible, then close the socket (never raises); with
        ``linger``, half-close first and discard what the client still sends for up to
        ``linger`` seconds (see ``TLSStream.close``)."""
        transport = self.transport
        if transport is None:
            return
        conn = self.conn
        try:
            if (
                conn is not None
                and self.handshaken
                and not self.closed
                and not conn.get_shutdown() & SSL.SENT_SHUTDOWN
            ):
                conn.shutdown()
                self._flush()
        except Exception:  # the peer may be gone; closing must not fail
            pass
        if linger > 0 and not self.eof and not self.closed:
            try:
                if transport.can_write_eof():
                    transport.write_eof()
                self._discarding = True  # data_received drops what comes (16 MiB at most)
                await self.wait(linger)  # until the client's FIN, a reset or the time
            except Exception:  # timeout, reset: close anyway
                pass
        transport.close()
        self.closed = True
        self.buf = b""


def _peer_chain_der(conn: SSL.Connection) -> tuple[bytes, ...]:
    leaf = conn.get_peer_certificate()
    if leaf is None:
        return ()
    leaf_der = _der(leaf)
    ders = [leaf_der]
    # Server side: the chain excludes the leaf (OpenSSL documents this asymmetry);
    # stay defensive in case a future version includes it.
    for cert in conn.get_peer_cert_chain() or ():
        der = _der(cert)
        if der == leaf_der and len(ders) == 1:
            continue
        ders.append(der)
    return tuple(ders)


def close_transport(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except Exception:
        pass


def _der(cert: crypto.X509) -> bytes:
    return crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)


def _session_reused(conn: SSL.Connection) -> bool:
    # pyOpenSSL has no wrapper for SSL_session_reused; use the raw binding.
    try:
        from OpenSSL._util import lib

        return bool(lib.SSL_session_reused(conn._ssl))
    except Exception:
        return False


def _describe(exc: SSL.Error) -> str:
    try:
        parts = [item[2] for item in exc.args[0] if len(item) > 2]
        if parts:
            return "; ".join(str(p) for p in parts)
    except (IndexError, TypeError):
        pass
    return str(exc) or type(exc).__name__
