"""PostgreSQL for the store tests: one fresh database per test session.

``EDGERULES_TEST_POSTGRES`` names the server (default: the local one,
``postgresql://postgres@127.0.0.1:5432/postgres``); the session creates a database with a
unique name there and drops it afterwards. Unreachable server: the PostgreSQL variants
are skipped with the reason — except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("EDGERULES_TEST_POSTGRES") or DEFAULT_SERVER


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def unreachable(reason: str) -> None:
    message = f"PostgreSQL at {server_url()} is not reachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: the PostgreSQL store tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a database created for this test session (dropped at the end)."""
    try:
        import psycopg
    except ImportError:
        unreachable("psycopg is not installed (the 'postgres' extra)")
    name = f"edgerules_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(server_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        unreachable(str(exc).strip())
    try:
        yield with_database(server_url(), name)
    finally:
        with psycopg.connect(server_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
