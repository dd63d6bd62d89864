"""``edgerules serve MODULE:APP``: an ASGI application behind edgerules' own mTLS terminator.

Owns: argument parsing, importing the application, and wiring the ruleset, the store,
the limits and the access log into :class:`edgerules.proxy.asgi_server.ASGIServer`. The
connection options (limits, ``--validation-budget``, ``--poll-interval``) are defined once
for ``serve`` and ``proxy`` (:mod:`edgerules.cli.limits_args`); the store is opened
read-only with ``--poll-interval`` and its state loaded before serving, as for the proxy.
Prints one ready line to stderr (``edgerules serve listening on https://HOST:PORT ->
MODULE:APP``) once the socket is bound (and the app's lifespan startup is done).

Importing the application runs its code: every failure there (no such module, no such
attribute, an exception at import) is a ``ConfigError`` naming the module and the cause.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from edgerules.cli.limits_args import add_connection_arguments, limits_from_args
from edgerules.errors import ConfigError

__all__ = ["load_app", "register", "resolve_store"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run an ASGI application behind edgerules' mTLS terminator",
        description=(
            "Serve MODULE:APP (an ASGI application, e.g. a FastAPI or Starlette app) over "
            "HTTPS: a client certificate is asked for on the store's mTLS hostnames, the "
            "handshake completes whatever the client presents, the ruleset decides every "
            "request, and allowed requests reach the application with the ASGI 'tls' "
            "extension filled (client_cert_chain, client_cert_name, client_cert_error, "
            "tls_version, cipher_suite, server_cert). As with 'edgerules proxy', every "
            "request is decided with the store's current revocation and trust state "
            "(--poll-interval), validation runs off the event loop within "
            "--validation-budget, and connections are bounded (--first-request-timeout, "
            "--max-connections with eviction of idle ones, --max-connection-requests, "
            "--max-connection-age)."
        ),
    )
    p.add_argument("app", metavar="MODULE:APP",
                   help="the ASGI application, e.g. myproject.main:app")
    p.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT",
                   help="default %(default)s (port 0 picks a free port)")
    p.add_argument("--rules", metavar="FILE",
                   help="ruleset file (without it every request is allowed)")
    p.add_argument("--list", dest="lists", action="append", default=[], metavar="PATH",
                   help="named-list file or directory used by the ruleset (repeatable)")
    p.add_argument("--store", metavar="PATH",
                   help="store with the CAs and mTLS hostnames (default: $EDGERULES_STORE, "
                        "else ./edgerules.db when it exists)")
    p.add_argument("--cert", metavar="PEM",
                   help="server certificate chain (default: a self-signed development "
                        "certificate for localhost, *.localhost and the store's mTLS hosts)")
    p.add_argument("--key", metavar="PEM", help="server private key")
    p.add_argument("--app-dir", default=".", metavar="DIR",
                   help="directory put first on the import path (default: the current one)")
    p.add_argument("--factory", action="store_true",
                   help="MODULE:APP is a function returning the application")
    p.add_argument("--no-lifespan", action="store_true",
                   help="do not run the application's lifespan startup/shutdown")
    p.add_argument("--access-log", default="-", metavar="PATH",
                   help="JSON lines; '-' = stdout (default), 'off' = none")
    # client connections: the same options (and defaults) as ``edgerules proxy``
    add_connection_arguments(p)
    p.add_argument("--shutdown-grace", type=float, default=10.0)
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_run)


def load_app(spec: str, *, app_dir: str = ".", factory: bool = False) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted) and return the ASGI callable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"expected MODULE:APP (e.g. main:app), got {spec!r}")
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import {module_name!r}: no such module (looked in "
                              f"{path} and the installed packages)") from None
        raise ConfigError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # the application's own code failed at import
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") \
            from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    if factory:
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(f"the factory {spec} failed: {type(exc).__name__}: {exc}") \
                from None
    if not callable(obj):
        raise ConfigError(f"{spec} is not an ASGI application (not callable)")
    return obj


def resolve_store(path: str | None, *, command: str, **options: Any) -> Any:
    """The store to use: ``path`` (must exist), else ``$EDGERULES_STORE`` (must exist),
    else ``./edgerules.db`` if it exists, else None — the same default as the store
    commands, without creating an empty store nobody configured. Opened read-only;
    ``options`` go to :func:`edgerules.store.open_store` (``revocation_poll_interval``)."""
    from edgerules.store import DEFAULT_PATH, open_store

    explicit = path or os.environ.get("EDGERULES_STORE")
    if explicit:
        return open_store(os.fspath(explicit), read_only=True, **options)
    if os.path.exists(DEFAULT_PATH):
        return open_store(DEFAULT_PATH, read_only=True, **options)
    print(f"edgerules {command}: no store ({DEFAULT_PATH} does not exist and neither "
          "--store nor $EDGERULES_STORE is set): no hostname has mTLS enabled",
          file=sys.stderr)
    return None


def build_server(args: argparse.Namespace) -> Any:
    from edgerules.enforcement.decision import AllowAll, RulesetDecider
    from edgerules.enforcement.gate import Gate
    from edgerules.proxy.accesslog import AccessLog
    from edgerules.proxy.asgi_server import ASGIServer
    from edgerules.proxy.config import check_poll_interval, parse_hostport

    host, port = parse_hostport(args.listen)
    limits = limits_from_args(args)
    check_poll_interval(args.poll_interval)
    lists = None
    if args.lists:
        from edgerules.rulesets.lists import NamedLists

        lists = NamedLists.load(*args.lists)
    decider: Any = AllowAll()
    if args.rules:
        from edgerules.rulesets import Ruleset

        decider = RulesetDecider(Ruleset.load(args.rules, lists=lists))
    elif args.lists:
        raise ConfigError("--list needs --rules: named lists are used by a ruleset")
    else:
        print("edgerules serve: no --rules given, every request is allowed", file=sys.stderr)
    if bool(args.cert) != bool(args.key):
        raise ConfigError("give --cert and --key together")
    app = load_app(args.app, app_dir=args.app_dir, factory=args.factory)
    store = resolve_store(args.store, command="serve",
                          revocation_poll_interval=args.poll_interval)
    if store is not None:
        try:
            # As the proxy: refuse a damaged store and load the enforcement state before
            # serving; from here on it lives in memory and a failing store is survived
            # with the last state loaded (fail static).
            store.check_integrity()
            store.load_state()
        except BaseException:
            store.close()
            raise
    names: tuple[str, ...] = ("localhost", "*.localhost")
    if store is not None and not args.cert:
        names = tuple(dict.fromkeys((*names, *sorted(store.mtls_hostnames()))))
    access_log = None
    try:
        access_log = AccessLog(None) if args.access_log == "off" else AccessLog(
            path=args.access_log)
        return ASGIServer(
            app, Gate(decider), listen_host=host, listen_port=port, cert_file=args.cert,
            key_file=args.key, dev_cert_hostnames=names, store=store, limits=limits,
            access_log=access_log, lifespan=not args.no_lifespan,
            poll_interval=args.poll_interval,
        )
    except BaseException:
        if access_log is not None:
            access_log.close()
        if store is not None:
            store.close()
        raise


def _run(args: argparse.Namespace) -> int:
    from edgerules.proxy.asgi_server import run_asgi_server

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    server = build_server(args)

    def ready(port: int) -> None:
        shown = f"[{server.listen_host}]" if ":" in server.listen_host else server.listen_host
        print(f"edgerules serve listening on https://{shown}:{port} -> {args.app}",
              file=sys.stderr, flush=True)

    try:
        return run_asgi_server(server, on_ready=ready)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.listen}: {exc}") from None
