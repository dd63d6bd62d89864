"""Structured access log: one JSON object per request, one line each.

Owns: the record layout. Keys (always present, ``null`` when unknown): ``time``
(RFC 3339 UTC), ``client`` (address), ``sni``, ``host``, ``method``, ``path``,
``decision`` (allow/block/challenge/error), ``rule`` (ref), ``cert_presented``,
``cert_verified``, ``cert_revoked``, ``cert_serial``, ``cert_status`` (Workers-style
``SUCCESS``/``NONE``/``FAILED:<reason>``, ``, REVOKED`` appended when revoked), ``status``, ``bytes`` (response
body bytes sent), ``duration_ms``, ``upstream_error``. Writing never raises; a log file
that cannot be opened is a ``ConfigError`` naming it (at start-up, before serving).
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from typing import IO, Any

from edgerules.errors import ConfigError

__all__ = ["AccessLog"]


class AccessLog:
    def __init__(self, stream: IO[str] | None = None, *, path: str | None = None) -> None:
        self._owned = False
        if path is not None and path != "-":
            try:
                stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (kept open)
            except OSError as exc:
                raise ConfigError(
                    f"cannot open access log {path}: {exc.strerror or exc}"
                ) from None
            self._owned = True
        elif path == "-":
            stream = sys.stdout
        self.stream = stream  # None: disabled
        self.records: list[dict[str, Any]] | None = None  # tests may set [] to capture

    def write(self, record: dict[str, Any]) -> None:
        record.setdefault("time", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        if self.records is not None:
            self.records.append(record)
        if self.stream is None:
            return
        try:
            self.stream.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self._owned and self.stream is not None:
            try:
                self.stream.close()
            except OSError:
                pass
