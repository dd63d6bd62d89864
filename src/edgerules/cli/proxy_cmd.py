"""``edgerules proxy``: run the mTLS-terminating reverse proxy.

Owns: argument parsing and wiring (ruleset, store, config, access log) into
``edgerules.proxy.server.run_proxy``. Prints one ready line to stderr
(``edgerules proxy listening on https://HOST:PORT -> UPSTREAM``) once the socket is
bound, so scripts can wait for it (and read the port when ``--listen`` used port 0).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import logging.handlers
import math
import os
import queue
import signal
import sys
from typing import Any

from edgerules.cli.limits_args import add_connection_arguments, limits_from_args
from edgerules.errors import ConfigError

__all__ = ["build_server", "register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "proxy",
        help="run the mTLS-terminating reverse proxy",
        description=(
            "Terminate TLS (asking for a client certificate on mTLS-enabled hostnames), "
            "evaluate the ruleset on every request and forward allowed requests to the upstream."
        ),
    )
    p.add_argument(
        "--listen", default="127.0.0.1:8443", metavar="HOST:PORT", help="default %(default)s"
    )
    p.add_argument(
        "--upstream", required=True, metavar="URL", help="origin, e.g. http://127.0.0.1:8080"
    )
    p.add_argument(
        "--rules", metavar="FILE", help="ruleset JSON (without it every request is allowed)"
    )
    p.add_argument(
        "--store",
        metavar="PATH",
        help="store with the CAs and mTLS hostnames (default: $EDGERULES_STORE, else "
        "./edgerules.db when it exists)",
    )
    p.add_argument(
        "--cert",
        metavar="PEM",
        help="server certificate chain (default: self-signed dev certificate)",
    )
    p.add_argument("--key", metavar="PEM", help="server private key")
    p.add_argument(
        "--list",
        dest="lists",
        action="append",
        default=[],
        metavar="PATH",
        help="named-list file or directory used by the ruleset (repeatable)",
    )
    p.add_argument(
        "--access-log",
        default="-",
        metavar="PATH",
        help="JSON lines; '-' = stdout (default), 'off' = none",
    )
    p.add_argument(
        "--access-log-queue",
        type=int,
        default=10_000,
        metavar="N",
        help="records waiting for the log writer at most; beyond, records are dropped and "
        "counted, so a stalled log reader never stops the proxy (default %(default)s)",
    )
    p.add_argument(
        "--forward",
        default="rfc9440",
        metavar="STYLES",
        help="certificate headers to the origin: comma list of rfc9440, cf-client-cert, cf-cert, none (default %(default)s)",
    )
    p.add_argument(
        "--forward-host",
        action="append",
        default=[],
        metavar="HOST=STYLES",
        help="per-hostname override of --forward (repeatable)",
    )
    p.add_argument(
        "--cf-client-cert-every-request",
        action="store_true",
        help="send Cf-Client-Cert-* on every request (default: only a connection's first, "
        "as Cloudflare's forwarding page says; per-request is needed to rate-limit by certificate)",
    )
    p.add_argument(
        "--rewrite-host",
        action="store_true",
        help="send the upstream's Host instead of the client's",
    )
    # client connections: the same options (and defaults) as ``edgerules serve``
    add_connection_arguments(p)
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.add_argument("--upstream-timeout", type=float, default=30.0)
    p.add_argument("--shutdown-grace", type=float, default=10.0)
    p.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="event loop: uvloop when installed (auto, the default) or asyncio's",
    )
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    ops = p.add_argument_group("operations (docs/operations.md)")
    ops.add_argument(
        "--admin-listen",
        metavar="HOST:PORT",
        help="serve /healthz, /readyz, /metrics and POST /reload over plain HTTP here "
        "(loopback only unless --admin-allow-remote; default: no admin listener)",
    )
    ops.add_argument(
        "--admin-allow-remote",
        action="store_true",
        help="allow a non-loopback --admin-listen address (the admin endpoints have no "
        "authentication: protect that address yourself)",
    )
    ops.add_argument(
        "--watch-rules",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also reload the --rules and --list files when they change, checked every "
        "SECONDS (default 0: off; SIGHUP always reloads)",
    )
    p.set_defaults(func=_run)


def build_server(args: argparse.Namespace) -> Any:
    from edgerules.enforcement.decision import AllowAll
    from edgerules.proxy.accesslog import AccessLog
    from edgerules.proxy.config import ForwardingPolicy, ProxyConfig, parse_hostport
    from edgerules.proxy.server import ProxyServer

    host, port = parse_hostport(args.listen)
    limits = limits_from_args(
        args, connect_timeout=args.connect_timeout, upstream_timeout=args.upstream_timeout
    )
    every = args.cf_client_cert_every_request
    by_host = {}
    for item in args.forward_host:
        name, sep, styles = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--forward-host expects HOST=STYLES, got {item!r}")
        by_host[name] = ForwardingPolicy.from_styles(styles.split(","), every_request=every)
    config = ProxyConfig(
        upstream=args.upstream,
        listen_host=host,
        listen_port=port,
        cert_file=args.cert,
        key_file=args.key,
        limits=limits,
        forwarding=ForwardingPolicy.from_styles(args.forward.split(","), every_request=every),
        forwarding_by_host=by_host,
        preserve_host=not args.rewrite_host,
        poll_interval=args.poll_interval,
    )
    decider: Any = AllowAll()
    if args.lists and not args.rules:  # checked even without --rules: a bad --list is an error
        from edgerules.rulesets.lists import NamedLists

        NamedLists.load(*args.lists)
    if args.rules:
        from edgerules.cli.proxy_rules import load_rules

        # The same loader as every hot reload (SIGHUP, POST /reload): same checks, and the
        # version the access log records.
        decider = load_rules(args.rules, args.lists).decider
    elif args.lists:
        raise ConfigError(
            f"--list {' '.join(args.lists)} needs --rules: named lists are used by a "
            "ruleset's expressions, and without --rules every request is allowed"
        )
    else:
        print("edgerules proxy: no --rules given, every request is allowed", file=sys.stderr)
    store = None
    # The store commands' default: --store, else $EDGERULES_STORE, else ./edgerules.db —
    # here only when it exists (the proxy never creates a store).
    from edgerules.store import DEFAULT_PATH

    store_path = args.store or os.environ.get("EDGERULES_STORE") or (
        DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else None)
    if store_path:
        from edgerules.store import open_store

        # An existing store only (a mistyped path is an error, never a new empty store),
        # read-only: the proxy never writes, and may run from a read-only file or volume.
        store = open_store(
            store_path, read_only=True, revocation_poll_interval=args.poll_interval
        )
        try:
            # Refuse a damaged store, and load the enforcement state before serving: a
            # proxy that never loaded state does not start (issues 9.5, 13.3). From here
            # on the state lives in memory and a failing store is survived (fail static).
            store.check_integrity()
            store.load_state()
        except BaseException:
            store.close()
            raise
    else:
        print(f"edgerules proxy: no store (no --store, no $EDGERULES_STORE, no {DEFAULT_PATH}): "
              "no hostname has mTLS enabled", file=sys.stderr)
    if store is not None and not args.cert:
        # the dev certificate also names every mTLS host, so clients can verify it
        names = ("localhost", "*.localhost", *sorted(store.mtls_hostnames()))
        config.dev_cert_hostnames = tuple(dict.fromkeys(names))
    access_log = None
    try:
        if args.access_log_queue < 1:
            raise ConfigError(f"--access-log-queue must be >= 1, got {args.access_log_queue}")
        access_log = (
            AccessLog(None)
            if args.access_log == "off"
            else AccessLog(path=args.access_log, max_queue=args.access_log_queue)
        )
        # ProxyServer loads the certificate; if that fails, close what was opened above so
        # a caller that keeps running (tests, embedders) does not leak the store or the log.
        return ProxyServer(config, decider, store=store, access_log=access_log)
    except BaseException:
        if access_log is not None:
            access_log.close()
        if store is not None:
            store.close()
        raise


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Hands records to a listener thread; when its queue is full the record is dropped
    (and counted) instead of blocking the event loop on a stalled stderr (issue 9 item 7)."""

    dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


def _setup_logging(level: str) -> _DroppingQueueHandler:
    """Diagnostics go to stderr from a daemon thread through a bounded queue."""
    records: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=1000)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler = _DroppingQueueHandler(records)
    # The queue handler formats the message (with any traceback) once; the stderr handler
    # adds the level and logger. Without a formatter of its own, basicConfig would give
    # it BASIC_FORMAT and every line would carry the prefix twice.
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    listener = logging.handlers.QueueListener(records, stderr)
    listener.start()  # its thread is a daemon: a stalled stderr never blocks the exit
    atexit.register(_stop_listener, listener, records)
    return handler


def _stop_listener(listener: logging.handlers.QueueListener, records: queue.Queue[Any]) -> None:
    """Flush pending diagnostics at exit, unless stderr is stalled."""
    thread = listener._thread  # QueueListener has no public join with a timeout
    if thread is None:
        return
    try:
        records.put_nowait(listener._sentinel)
    except queue.Full:
        return
    thread.join(2.0)


def _run(args: argparse.Namespace) -> int:
    from edgerules.proxy.server import run_proxy

    # A SIGHUP before the reload handler is installed must not kill the proxy (the
    # default action); the rules are being read anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    diagnostics = _setup_logging(args.log_level)
    server = build_server(args)
    ops = _operations(args, server, diagnostics)

    def ready(port: int) -> None:
        ops.start()
        host = server.config.listen_host
        shown = f"[{host}]" if ":" in host else host
        print(
            f"edgerules proxy listening on https://{shown}:{port} -> {server.config.upstream}",
            file=sys.stderr,
            flush=True,
        )
        if ops.admin is not None:
            ahost = ops.admin.host
            ashown = f"[{ahost}]" if ":" in ahost else ahost
            print(
                f"edgerules proxy admin on http://{ashown}:{ops.admin.port} "
                "(/healthz /readyz /metrics, POST /reload)",
                file=sys.stderr,
                flush=True,
            )

    try:
        return run_proxy(server, on_ready=ready, loop=args.loop)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.listen}: {exc}") from None


def _operations(args: argparse.Namespace, server: Any, diagnostics: Any) -> Any:
    """Hot reload, metrics and the admin listener around ``server`` (proxy.ops)."""
    from edgerules.proxy.config import parse_hostport
    from edgerules.proxy.ops import Operations

    admin = parse_hostport(args.admin_listen) if args.admin_listen else None
    if not math.isfinite(args.watch_rules) or args.watch_rules < 0:
        raise ConfigError(f"--watch-rules must be >= 0 seconds (finite), got {args.watch_rules}")
    load = None
    if args.rules:
        from edgerules.cli.proxy_rules import rules_loader

        load = rules_loader(args.rules, args.lists)
    try:
        return Operations(
            server,
            load=load,
            watch_paths=(args.rules, *args.lists) if args.rules else (),
            watch_interval=args.watch_rules,
            admin_listen=admin,
            admin_allow_remote=args.admin_allow_remote,
            diagnostics_dropped=lambda: diagnostics.dropped,
        )
    except BaseException:
        server.access_log.close()
        if server.store is not None:
            server.store.close()
        raise
