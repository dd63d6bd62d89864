"""Fetching CRLs from the URLs operators gave (``edgerules crl add --url``), on schedule.

Owns: the HTTP GET of one CRL (bounded time and size), :func:`refresh_due` — fetch every
CRL source whose refresh interval has passed and record the outcome in the store — and
:class:`CRLRefresher`, a daemon thread doing that periodically (``edgerules crl refresh
--every`` runs one; a proxy can start one beside itself). Validators pick the new CRLs up
on their next connection: the store bumps its trust counter when a CRL changes.

Invariants: a failed fetch keeps the stored CRL (and records the error); a fetched CRL
is checked exactly as an added one (and one older than the stored CRL is refused, so an
attacker on the path cannot replay an old CRL); nothing here raises out of
:func:`refresh_due` for a network or CRL problem.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from edgerules.pki.crl import MAX_CRL_BYTES, CRLRecord
from edgerules.store.base import Store

__all__ = ["FETCH_TIMEOUT_S", "CRLRefresher", "fetch_crl", "refresh_due"]

log = logging.getLogger("edgerules.crl")

FETCH_TIMEOUT_S = 10.0


class FetchError(Exception):
    """A CRL could not be downloaded."""


def fetch_crl(url: str, *, timeout: float = FETCH_TIMEOUT_S) -> bytes:
    """The body at ``url`` (at most :data:`MAX_CRL_BYTES`), or :class:`FetchError`."""
    request = urllib.request.Request(url, headers={"User-Agent": "edgerules-crl-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read(MAX_CRL_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code} from {url}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"cannot fetch {url}: {reason}") from None
    if len(body) > MAX_CRL_BYTES:
        raise FetchError(f"{url}: the CRL is larger than {MAX_CRL_BYTES} bytes")
    return body


def _due(record: CRLRecord, now: _dt.datetime) -> bool:
    if not record.url:
        return False
    if not record.this_update or not record.fetched_on:
        return True  # never fetched successfully
    if record.refresh_seconds <= 0:
        return False
    last = _dt.datetime.fromisoformat(record.fetched_on.replace("Z", "+00:00"))
    return now >= last + _dt.timedelta(seconds=record.refresh_seconds)


def refresh_due(
    store: Store,
    *,
    now: _dt.datetime | None = None,
    force: bool = False,
    only: str | None = None,
    fetch: Callable[[str], bytes] = fetch_crl,
) -> list[tuple[CRLRecord, str]]:
    """Fetch every CRL source that is due (all with ``force``; ``only``: one CRL id);
    returns ``(record after the fetch, "" or the error)`` for each one fetched."""
    when = now or _dt.datetime.now(_dt.UTC)
    out: list[tuple[CRLRecord, str]] = []
    for record in store.list_crls():
        if only is not None and record.id != only:
            continue
        if not record.url or not (force or only is not None or _due(record, when)):
            continue
        try:
            data = fetch(record.url)
        except Exception as exc:  # network, HTTP, size: recorded, never raised
            error = str(exc) or type(exc).__name__
            updated = store.replace_crl(record.id, None, error=error)
        else:
            updated = store.replace_crl(record.id, data)
            error = updated.last_error
        if error:
            log.warning("CRL %s from %s: %s", record.id, record.url, error)
        out.append((updated, error))
    return out


class CRLRefresher:
    """A daemon thread running :func:`refresh_due` every ``interval`` seconds."""

    def __init__(self, store: Store, interval: float = 60.0) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crl-refresher", daemon=True)

    def start(self) -> CRLRefresher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                refresh_due(self.store)
            except Exception:  # the store itself failed: log, keep serving
                log.exception("CRL refresh failed")
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
