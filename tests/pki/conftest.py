"""Store fixtures: every test that takes ``store`` runs against both backends (SQLite and
PostgreSQL; one suite, parametrised). ``reopen()`` opens a second store object on the
same storage and account (another process's view). ``sqlite_store`` is for the tests of
the SQLite file itself."""

from __future__ import annotations

import uuid

import pytest

from edgerules.store import SQLiteStore, open_store

from .pg import postgres_database  # noqa: F401 (a fixture)


@pytest.fixture
def store_path(tmp_path):
    return str(tmp_path / "store.db")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, store_path, monkeypatch) -> dict:
    """Where the store lives: ``{"target": path or URL, "account_id": ...}``."""
    monkeypatch.delenv("EDGERULES_STORE_PASSPHRASE", raising=False)
    monkeypatch.delenv("EDGERULES_ACCOUNT", raising=False)
    if request.param == "sqlite":
        return {"target": store_path, "account_id": "default"}
    url = request.getfixturevalue("postgres_database")
    # one database per session, one account per test: tests never see each other
    return {"target": url, "account_id": f"t-{uuid.uuid4().hex[:12]}"}


@pytest.fixture
def reopen(backend):
    opened = []

    def reopen(**options):
        s = open_store(backend["target"], account_id=backend["account_id"], **options)
        opened.append(s)
        return s

    yield reopen
    for s in opened:
        s.close()


@pytest.fixture
def store(backend):
    s = open_store(backend["target"], account_id=backend["account_id"], create=True)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(store_path, monkeypatch) -> SQLiteStore:
    monkeypatch.delenv("EDGERULES_STORE_PASSPHRASE", raising=False)
    monkeypatch.delenv("EDGERULES_ACCOUNT", raising=False)
    s = open_store(store_path, create=True)
    yield s
    s.close()
