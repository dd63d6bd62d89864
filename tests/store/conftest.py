"""Fixtures of the PostgreSQL store tests (the session database comes from tests/pki)."""

from __future__ import annotations

from pki.pg import postgres_database  # noqa: F401 (a fixture)
