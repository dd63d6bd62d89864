"""The client-side connection limits and the store poll interval, as command-line options
shared by ``edgerules proxy`` and ``edgerules serve``.

Owns: the option definitions (names, defaults, help) of everything both servers do to a
client connection — connection slots, handshake/first-request/header/idle/body timeouts,
lifetime caps, the certificate validation budget, ``--poll-interval`` — and turning them
into :class:`edgerules.proxy.config.Limits`. Invariant: both commands take the same
options with the same defaults (the defaults are ``Limits``'s own); the values are
checked by ``Limits`` (a ``ConfigError`` for a non-positive or non-finite value).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_connection_arguments", "limits_from_args"]


def add_connection_arguments(p: Any) -> None:
    """Add the shared options to the parser ``p``."""
    from edgerules.proxy.config import DEFAULT_POLL_INTERVAL, Limits

    d = Limits()
    p.add_argument("--max-connections", type=int, default=d.max_connections)
    p.add_argument("--max-header-bytes", type=int, default=d.max_header_bytes)
    p.add_argument("--max-headers", type=int, default=d.max_header_count)
    p.add_argument("--handshake-timeout", type=float, default=d.handshake_timeout)
    p.add_argument(
        "--first-request-timeout",
        type=float,
        default=d.first_request_timeout,
        help="seconds from the handshake to a complete first request head (default %(default)s)",
    )
    p.add_argument("--header-timeout", type=float, default=d.header_timeout)
    p.add_argument("--idle-timeout", type=float, default=d.idle_timeout)
    p.add_argument(
        "--max-connection-requests",
        type=int,
        default=d.max_connection_requests,
        metavar="N",
        help="requests served on one connection, then it is closed (default %(default)s)",
    )
    p.add_argument(
        "--max-connection-age",
        type=float,
        default=d.max_connection_age,
        metavar="SECONDS",
        help="no new request on a connection older than this (default %(default)s)",
    )
    p.add_argument(
        "--validation-budget",
        type=float,
        default=d.validation_budget,
        metavar="SECONDS",
        help="time for validating a client certificate chain; a chain over it is not "
        "verified (default %(default)s)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=DEFAULT_POLL_INTERVAL,
        metavar="SECONDS",
        help="how old the store state (revocations, mTLS hostnames, CAs) used for a request "
        "may be: a change made by another process reaches open connections within it "
        "(default %(default)s)",
    )
    p.add_argument("--body-timeout", type=float, default=d.body_timeout)


def limits_from_args(args: argparse.Namespace, **more: Any) -> Any:
    """``Limits`` from the shared options (and ``more`` fields)."""
    from edgerules.proxy.config import Limits

    return Limits(
        max_connections=args.max_connections,
        handshake_timeout=args.handshake_timeout,
        first_request_timeout=args.first_request_timeout,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
        max_connection_requests=args.max_connection_requests,
        max_connection_age=args.max_connection_age,
        validation_budget=args.validation_budget,
        body_timeout=args.body_timeout,
        max_header_bytes=args.max_header_bytes,
        max_header_count=args.max_headers,
        shutdown_grace=args.shutdown_grace,
        **more,
    )
