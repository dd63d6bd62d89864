"""Operations around a running proxy: hot reload, metrics, readiness, the admin listener.

Owns: composing ``reload.Reloader``, ``metrics.ProxyMetrics``, ``readiness.StoreProbe``
and ``admin.AdminServer`` around one ``ProxyServer``; the admin endpoints' answers;
the SIGHUP handler; stopping all of it when the proxy stops.

Lifecycle: build ``Operations`` before serving (the admin address is checked and bound
then, the store probed once: start-up errors come before the ready line), call
``start()`` on the proxy's event loop once it listens (``run_proxy``'s ``on_ready``).
Nothing here runs per request except the metrics observer (``proxy.metrics``).

Endpoints (docs/operations.md):

* ``GET /healthz``: 200 ``ok`` while the process and its event loop answer.
* ``GET /readyz``: 200 when the proxy should get traffic — not shutting down, rules
  loaded, and (with a store) the store reachable and its state read at least once;
  else 503. The body is JSON with each check.
* ``GET /metrics``: the Prometheus text format.
* ``POST /reload``: reload the rules now; 200 with the version in force, 422 with every
  error when the new rules were rejected (the old ones stay in force).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from typing import Any

from edgerules.proxy.admin import AdminServer, Response
from edgerules.proxy.readiness import StoreProbe
from edgerules.proxy.reload import LoadedRules, Reloader

__all__ = ["Operations", "current_rules"]

log = logging.getLogger("edgerules.proxy")


def current_rules(server: Any) -> LoadedRules:
    """The ``LoadedRules`` describing the decider a server was built with."""
    decider = server.decider
    ruleset = getattr(decider, "ruleset", None)
    refs = frozenset(r.ref for r in getattr(ruleset, "rules", ()) if getattr(r, "ref", None))
    return LoadedRules(decider, getattr(decider, "version", None), refs)


def _server_stats(server: Any) -> dict[str, int]:
    metrics = getattr(server, "metrics", None)
    if callable(metrics):  # the server's own counters, when it offers them
        return dict(metrics())
    return {**server.stats, "open_connections": len(getattr(server, "_conns", ()))}


def _json(status: int, obj: Any) -> Response:
    return status, "application/json", (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


class Operations:
    def __init__(
        self,
        server: Any,
        *,
        load: Callable[[], LoadedRules] | None,
        watch_paths: tuple[str, ...] = (),
        watch_interval: float = 0.0,
        admin_listen: tuple[str, int] | None = None,
        admin_allow_remote: bool = False,
        diagnostics_dropped: Callable[[], int] | None = None,
        store_probe_interval: float = 1.0,
    ) -> None:
        self.server = server
        rules = current_rules(server)
        self.metrics: Any = None
        self.probe: StoreProbe | None = None
        self.admin: AdminServer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        if admin_listen is not None:
            from edgerules.proxy.metrics import ProxyMetrics  # prometheus_client: only here

            self.metrics = ProxyMetrics(rule_refs=rules.rule_refs)
            server.observer = self.metrics
        self.reloader = Reloader(
            server,
            load,
            rules,
            on_loaded=self._on_loaded,
            watch_paths=watch_paths,
        )
        self.watch_interval = watch_interval
        if admin_listen is not None:
            store = getattr(server, "store", None)
            if store is not None:
                self.probe = StoreProbe(store, interval=store_probe_interval)
                self.probe.probe()  # before serving: /readyz is right from the first scrape
            sources: dict[str, Callable[[], Any]] = {
                "server_stats": lambda: _server_stats(server),
                "access_log_dropped": lambda: server.access_log.dropped,
                "rules": lambda: self.reloader.state,
            }
            if diagnostics_dropped is not None:
                sources["diagnostics_dropped"] = diagnostics_dropped
            if self.probe is not None:
                sources["store"] = self.probe.status
            self.metrics.sources.update(sources)
            host, port = admin_listen
            self.admin = AdminServer(
                host,
                port,
                {
                    ("GET", "/healthz"): self._healthz,
                    ("GET", "/readyz"): self._readyz,
                    ("GET", "/metrics"): self._metrics,
                    ("POST", "/reload"): self._reload,
                },
                allow_remote=admin_allow_remote,
            )
            self.admin.bind()

    def _on_loaded(self, rules: LoadedRules) -> None:
        if self.metrics is not None:
            self.metrics.add_rule_refs(rules.rule_refs)

    # -- on the event loop --------------------------------------------------------------
    def start(self) -> None:
        """Start everything on the running loop (call from ``run_proxy``'s ``on_ready``)."""
        loop = asyncio.get_running_loop()
        # Only the main thread can take signals (an embedded proxy in a thread reloads
        # through reload() or POST /reload instead).
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, self.reloader.request, "SIGHUP")
        if self.admin is not None:
            self._spawn(self.admin.start())
        if self.probe is not None:
            self._spawn(self.probe.run())
        if self.watch_interval > 0 and self.reloader.watch_paths:
            # The files as they are now, before the ready line: a change made right
            # after it is seen.
            self._spawn(self.reloader.watch(self.watch_interval, self.reloader.signature()))
        if hasattr(self.server, "wait_stopped"):
            self._spawn(self._stop_with_server())

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    async def _stop_with_server(self) -> None:
        await self.server.wait_stopped()
        await self.stop()

    async def stop(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self.admin is not None:
            await self.admin.close()

    # -- endpoints ------------------------------------------------------------------------
    async def _healthz(self) -> Response:
        return 200, "text/plain; charset=utf-8", b"ok\n"

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {}
        ready = True
        draining = bool(getattr(self.server, "draining", False))
        checks["serving"] = {"ok": not draining, **({"detail": "shutting down"} if draining else {})}
        ready &= not draining
        state = self.reloader.state
        checks["rules"] = {
            "ok": True,  # the proxy never runs without its rules: a bad start-up file is fatal
            "version": state.version,
            "generation": state.generation,
            "last_reload_error": state.last_error,
        }
        if self.probe is None:
            checks["store"] = {"ok": True, "detail": "no store configured"}
        else:
            st = self.probe.status()
            ok = st.reachable and st.state_loaded
            checks["store"] = {
                "ok": ok,
                "reachable": st.reachable,
                "state_loaded": st.state_loaded,
                "versions": st.versions,
                "last_sync_age_seconds": (
                    round(st.last_sync_age, 3) if st.last_sync_age is not None else None
                ),
                "error": st.error,
            }
            ready &= ok
        return ready, checks

    async def _readyz(self) -> Response:
        ready, checks = self.readiness()
        return _json(200 if ready else 503, {"ready": ready, "checks": checks})

    async def _metrics(self) -> Response:
        from edgerules.proxy.metrics import CONTENT_TYPE

        return 200, CONTENT_TYPE, self.metrics.render()

    async def _reload(self) -> Response:
        result = await self.reloader.reload("POST /reload")
        if result.ok:
            return _json(
                200,
                {
                    "result": "ok",
                    "version": result.version,
                    "changed": result.changed,
                    "generation": self.reloader.state.generation,
                },
            )
        return _json(
            422, {"result": "rejected", "version": result.version, "errors": result.error}
        )
