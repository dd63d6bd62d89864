"""Fail static (issue 13.3): when PostgreSQL goes away a running proxy keeps enforcing the
last state it loaded (revocations included), logs the outage, reconnects once the server
is back and then picks up changes made meanwhile; a proxy that never loaded state refuses
to start.

The server stopped and restarted is a dedicated cluster the test builds with initdb /
pg_ctl on a free port (``pgcluster.py``), never the machine's shared server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from edgerules.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
from store_sec_helpers import (
    Proxy,
    clean_env,
    cli,
    deploy,
    echo_origin,
    running_proxy,
    start_proxy,
    status,
    wait_for,
)

from .pgcluster import dedicated_cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    try:
        with dedicated_cluster() as c:
            yield c
    except RuntimeError as exc:  # no server binaries on this machine
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def test_proxy_keeps_enforcing_through_an_outage_and_resyncs(cluster, tmp_path):
    url = cluster.database("fleet")
    env = clean_env()
    dep = deploy(tmp_path, names=("ok", "revoked", "later"), store=url, env=env)
    ok, revoked, later = (dep.devices[n] for n in ("ok", "revoked", "later"))
    watcher = open_store(url, read_only=True, revocation_poll_interval=0.05)
    watcher.load_state()
    try:
        with echo_origin() as origin, running_proxy(url, origin, env=env) as proxy:
            assert status(proxy.port, revoked) == 403
            assert status(proxy.port, later) == 200
            cluster.stop()
            # the store is gone; the proxy still knows who is revoked, and says so
            assert wait_for(lambda: not watcher.health().reachable, timeout=15)
            assert status(proxy.port, revoked) == 403
            assert status(proxy.port, ok) == 200
            assert status(proxy.port) == 403  # no certificate: still blocked
            assert wait_for(lambda: "cannot be read" in proxy.log(), timeout=15), proxy.log()
            health = watcher.health()
            assert health.loaded and health.last_error and health.outage_since
            # a proxy that never loaded state does not start while the store is down
            refused = start_proxy(url, origin, env=env)
            assert not isinstance(refused, Proxy), "a proxy started without any state"
            assert refused.returncode == 2 and "cannot" in refused.stderr
            # the server comes back; a revocation made now reaches the running proxy
            cluster.start()
            cli("cert", "revoke", later.id, "--store", url, env=env)
            assert wait_for(lambda: status(proxy.port, later) == 403, timeout=20)
            assert wait_for(lambda: watcher.health().reachable, timeout=15)
            assert status(proxy.port, ok) == 200
    finally:
        watcher.close()
