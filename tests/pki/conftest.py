from __future__ import annotations

import pytest

from edgerules.store import SQLiteStore, open_store


@pytest.fixture
def store_path(tmp_path):
    return str(tmp_path / "store.db")


@pytest.fixture
def store(store_path, monkeypatch) -> SQLiteStore:
    monkeypatch.delenv("EDGERULES_STORE_PASSPHRASE", raising=False)
    monkeypatch.delenv("EDGERULES_ACCOUNT", raising=False)
    s = open_store(store_path, create=True)
    yield s
    s.close()
