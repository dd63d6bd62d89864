"""Hot reload of the proxy's rules: SIGHUP, ``POST /reload`` or a file watch.

Owns: ``LoadedRules`` (a decider and the version naming its content), ``RulesState``
(what is in force, for metrics and ``/readyz``), ``Reloader`` (loads a new ruleset off
the event loop and swaps it in) and ``fingerprint`` (the version).

Invariants:

* The decider in force is one immutable object referenced by ``server.decider``; a
  reload replaces that reference in one assignment on the event loop. A request reads
  the reference once and decides with it, so a request that started before a reload is
  decided by the old rules even if it finishes after (a slow body, a slow origin), and
  one that starts after is decided by the new rules; no request sees a mix.
* A new ruleset that fails to load (a syntax error, an unknown field, a missing list
  file) is rejected as a whole: every error is logged at once, at error level, in one
  log record, and the rules in force stay in force. Nothing half-loaded is ever used.
* Reloads run one at a time; requests for a reload that arrive during one are merged
  into one more reload after it (the files may have changed meanwhile).
* Loading and compiling run in a worker thread: the event loop keeps serving.

The version (our choice; Cloudflare has no such thing) is the first 16 hex digits of the SHA-256 of the loaded ruleset and
lists in canonical JSON (``Ruleset.to_dict``, ``NamedLists.to_dict``): the same rules
give the same version on every proxy of a fleet and after a restart, and a change in
formatting alone does not change it. ``RulesState.generation`` counts the loads of this
process (1 = the rules loaded at start).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LoadedRules", "Reloader", "RulesState", "fingerprint"]

log = logging.getLogger("edgerules.proxy")


def fingerprint(*parts: Any) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of ``parts``."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class LoadedRules:
    decider: Any  # enforcement.decision.Decider, its verdicts carrying ``version``
    version: str | None  # None: no ruleset (every request allowed)
    rule_refs: frozenset[str] = frozenset()
    description: str = ""  # for the log: which files, how many rules


@dataclass
class RulesState:
    """The rules in force and the reload counters (read by /metrics and /readyz)."""

    version: str | None
    generation: int = 1
    loaded_at: float | None = None  # time.time()
    reloads_ok: int = 0
    reloads_rejected: int = 0
    last_error: str | None = None  # the last rejected reload's errors


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    version: str | None
    changed: bool = False
    error: str | None = None


class Reloader:
    """Reloads rules into ``server`` (anything with a ``decider`` attribute).

    ``load`` builds ``LoadedRules`` from the files (blocking; raises ``RuleError`` or
    ``OSError`` with every problem in its message). ``on_loaded`` is called on the event
    loop with each new ``LoadedRules`` (metrics use it to allow the new rule refs).
    """

    def __init__(
        self,
        server: Any,
        load: Callable[[], LoadedRules] | None,
        current: LoadedRules,
        *,
        on_loaded: Callable[[LoadedRules], None] | None = None,
        watch_paths: Iterable[str] = (),
    ) -> None:
        self.server = server
        self.load = load
        self.current = current
        self.on_loaded = on_loaded
        self.watch_paths = tuple(watch_paths)
        self.state = RulesState(version=current.version, loaded_at=time.time())
        self._lock: asyncio.Lock | None = None
        self._pending = 0  # reload requests not yet served
        self._last = ReloadResult(True, current.version)
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- requesting ----------------------------------------------------------------------
    def request(self, reason: str) -> None:
        """Ask for a reload from a signal handler (runs on the event loop, returns at once)."""
        task = asyncio.get_running_loop().create_task(self.reload(reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self, reason: str) -> ReloadResult:
        """Load the files again and put the result in force, or keep the rules in force."""
        if self.load is None:
            log.warning("%s: no --rules given, nothing to reload", reason)
            return ReloadResult(False, None, error="no --rules given: nothing to reload")
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._pending += 1
        async with self._lock:
            if self._pending == 0:
                # Another request's reload started after this one was asked for: it read
                # the files as they are now, so its result answers this request too.
                return self._last
            self._pending = 0
            self._last = await self._reload_now(reason)
            return self._last

    async def _reload_now(self, reason: str) -> ReloadResult:
        old = self.current
        try:
            new = await asyncio.to_thread(self.load)  # type: ignore[arg-type]
        except Exception as exc:
            self.state.reloads_rejected += 1
            self.state.last_error = str(exc) or type(exc).__name__
            log.error(
                "%s: the new rules were rejected; ruleset %s stays in force. %s",
                reason,
                old.version or "(none)",
                self.state.last_error,
            )
            return ReloadResult(False, old.version, error=self.state.last_error)
        # One reference assignment: requests already decided keep their verdict, the
        # next request reads the new decider.
        self.server.decider = new.decider
        self.current = new
        self.state.version = new.version
        self.state.generation += 1
        self.state.loaded_at = time.time()
        self.state.reloads_ok += 1
        self.state.last_error = None
        if self.on_loaded is not None:
            self.on_loaded(new)
        changed = new.version != old.version
        log.warning(
            "%s: ruleset %s in force (generation %d%s)%s",
            reason,
            new.version,
            self.state.generation,
            "" if changed else ", unchanged",
            f": {new.description}" if new.description else "",
        )
        return ReloadResult(True, new.version, changed=changed)

    # -- watching the files (opt-in) ---------------------------------------------------
    def signature(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for path in self.watch_paths:
            out.append(_stat(path))
            if os.path.isdir(path):
                try:
                    names = sorted(os.listdir(path))
                except OSError:
                    names = []
                out.extend((n, _stat(os.path.join(path, n))) for n in names)
        return tuple(out)

    async def watch(self, interval: float, since: tuple[Any, ...] | None = None) -> None:
        """Reload when a watched file changed and then stayed unchanged for one interval
        (an editor's save in several writes is loaded once, complete). ``since``: the
        files' signature to compare with (taken when the proxy became ready), else now."""
        seen = self.signature() if since is None else since
        changed: tuple[Any, ...] | None = None
        while True:
            await asyncio.sleep(interval)
            now = self.signature()
            if changed is not None and now == changed:
                changed = None
                seen = now
                await self.reload("rules file changed")
            elif now != seen:
                changed = now


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def rules_summary(current: LoadedRules, state: RulesState) -> Mapping[str, Any]:
    """What ``/readyz`` says about the rules."""
    return {
        "version": current.version,
        "generation": state.generation,
        "last_reload_error": state.last_error,
    }
