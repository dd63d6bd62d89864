"""Fixtures for the proxy tests: a test PKI and an echo origin (always stopped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxy_certs import ProxyTestPKI

from edgerules.proxy.echo import EchoOrigin
from edgerules.proxy.server import ServerThread


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> ProxyTestPKI:
    return ProxyTestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def origin() -> Iterator[ServerThread]:
    thread = ServerThread(EchoOrigin()).start()
    try:
        yield thread
    finally:
        thread.stop(1.0)
