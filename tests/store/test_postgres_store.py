"""The PostgreSQL backend beyond the shared suite (tests/pki runs every store test on
both backends): concurrent writers in separate processes, migrations on a shared server,
the CLI with a postgresql:// URL, and change notifications."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from edgerules.errors import StoreError
from edgerules.pki import issuing
from edgerules.store import open_store
from edgerules.store.schema import CURRENT_VERSION

EDGERULES = Path(sys.executable).parent / "edgerules"

_WRITER = r"""
import sys
from edgerules.store import open_store
store = open_store(sys.argv[1], account_id=sys.argv[2])
for _ in range(int(sys.argv[3])):
    print(store.issue_certificate().record.serial_number, flush=True)
store.close()
"""


def account() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def test_concurrent_writers_in_other_processes_get_unique_monotonic_serials(postgres_database):
    acct = account()
    with open_store(postgres_database, account_id=acct, create=True) as s:
        s.managed_ca()
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, postgres_database, acct, "10"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    per_writer = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        per_writer.append([int(x) for x in out.split()])
    serials = [s for w in per_writer for s in w]
    assert len(set(serials)) == 30
    sequences = sorted(s >> issuing.SEQUENCE_SHIFT for s in serials)
    assert sequences == list(range(1, 31))  # one account-wide sequence, no gaps, no repeats
    for writer in per_writer:  # each writer saw its serials grow
        assert writer == sorted(writer)


def test_a_database_without_a_store_is_not_opened(postgres_database):
    import psycopg

    empty = f"edgerules_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{empty}"')
    try:
        url = postgres_database.rsplit("/", 1)[0] + "/" + empty
        for read_only in (True, False):  # only create=True makes the tables
            with pytest.raises(StoreError, match="no edgerules store"):
                open_store(url, read_only=read_only)
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{empty}" WITH (FORCE)')
    acct = account()
    with open_store(postgres_database, account_id=acct, create=True) as s:
        assert s.schema_version() == CURRENT_VERSION


def test_newer_schema_is_refused(postgres_database):
    import psycopg

    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    try:
        with pytest.raises(StoreError, match="newer than this edgerules"):
            open_store(postgres_database, account_id=account())
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute("UPDATE schema_version SET version = %s", (CURRENT_VERSION,))


def test_cli_with_a_postgresql_url(postgres_database, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGERULES_")}
    env.update(EDGERULES_STORE=postgres_database, EDGERULES_ACCOUNT=account())

    def cli(*args: str) -> str:
        proc = subprocess.run([str(EDGERULES), *args], capture_output=True, text=True,
                              env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("ca", "create")
    issued = json.loads(cli("cert", "issue", "--cn", "dev", "--key-out",
                            str(tmp_path / "k.pem"), "--json"))
    cli("host", "enable", "api.example.com")
    cli("cert", "revoke", issued["id"])
    listed = json.loads(cli("cert", "list", "--status", "revoked", "--json"))
    assert [c["id"] for c in listed["result"]] == [issued["id"]]
    assert "api.example.com" in cli("host", "list")


def test_notify_wakes_other_processes_without_polling(postgres_database):
    """Poll interval one hour: only LISTEN/NOTIFY can bring the change this fast."""
    acct = account()
    with open_store(postgres_database, account_id=acct, create=True) as writer:
        writer.managed_ca()
        cert = writer.issue_certificate().record
        writer.enable_hostnames(["api.example.com"])
        reader = open_store(postgres_database, account_id=acct, read_only=True,
                            revocation_poll_interval=3600)
        try:
            v0 = reader.versions()
            deadline = time.monotonic() + 30  # NOTIFY, not the 1 h poll; bounds a hang only
            writer.revoke_certificate(cert.id)
            while reader.versions()[1] == v0[1] and time.monotonic() < deadline:
                time.sleep(0.005)
            assert reader.versions()[1] == v0[1] + 1
            writer.disable_hostnames(["api.example.com"])
            while reader.versions()[0] == v0[0] and time.monotonic() < deadline:
                time.sleep(0.005)
            assert reader.validator_for_hostname("api.example.com") is None
        finally:
            reader.close()
