"""Fixtures for the ecosystem tests (middleware behind real proxies' header conventions,
``edgerules serve``, ruleset formats, CLI hygiene): the proxy tests' PKI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "proxy"))

from proxy_certs import ProxyTestPKI


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> ProxyTestPKI:
    return ProxyTestPKI(tmp_path_factory.mktemp("eco-pki"))
