"""Issue 9.8: a mistyped store path is an error, not a new empty store.

Before the fix, ``--store typo.db`` (or ``EDGERULES_STORE``) silently created a store:
``edgerules proxy`` then ran with mTLS off on every host, ``ca show`` minted a second CA,
and a foreign SQLite file was migrated in place. Now only ``ca create`` (and
``ca upload --create``) create a store; the proxy and the read commands open an existing
one, read-only — the proxy runs from a read-only file in a read-only directory.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess

import pytest
from store_sec_helpers import (
    EDGERULES,
    NO_DAC_OVERRIDE,
    Proxy,
    clean_env,
    cli,
    deploy,
    echo_origin,
    running_proxy,
    start_proxy,
    status,
)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mistyped_store_path_is_an_error_everywhere(tmp_path):
    dep = deploy(tmp_path)
    typo = tmp_path / "stroe.db"
    for args in (["ca", "show"], ["ca", "list"], ["cert", "list"], ["host", "list"],
                 ["cert", "issue", "--cn", "x"], ["host", "enable", "api.localhost"]):
        out = cli(*args, "--store", str(typo), check=False)
        assert out.returncode == 2 and "no such file" in out.stderr, (args, out.stderr)
        assert not typo.exists(), args
    env = clean_env(EDGERULES_STORE=str(typo))  # the variable is checked the same way
    out = cli("ca", "show", env=env, check=False)
    assert out.returncode == 2 and "no such file" in out.stderr and not typo.exists()

    with echo_origin() as origin:
        # the proxy refuses to start instead of serving with mTLS off everywhere
        result = start_proxy(typo, origin)
        assert not isinstance(result, Proxy), "the proxy started on a mistyped store"
        assert result.returncode == 2 and "no such file" in result.stderr
        assert not typo.exists()
        # the real store still enforces: no certificate -> 403, a valid one -> 200
        with running_proxy(dep.store, origin) as proxy:
            assert status(proxy.port) == 403
            assert status(proxy.port, dep.devices["ok"]) == 200


def test_foreign_sqlite_file_is_refused_and_untouched(tmp_path):
    foreign = tmp_path / "app.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('alice')")
    conn.commit()
    conn.close()
    before = digest(foreign)
    for args in (["cert", "list"], ["ca", "create"], ["host", "enable", "api.localhost"]):
        out = cli(*args, "--store", str(foreign), check=False)
        assert out.returncode == 2 and "not an edgerules store" in out.stderr, (args, out.stderr)
        assert digest(foreign) == before, f"{args} modified the foreign database"
    with echo_origin() as origin:
        result = start_proxy(foreign, origin)
        assert not isinstance(result, Proxy)
        assert "not an edgerules store" in result.stderr
    assert digest(foreign) == before
    assert not os.path.exists(str(foreign) + "-wal")


def test_empty_file_is_not_a_store_until_created(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    out = cli("cert", "list", "--store", str(empty), check=False)
    assert out.returncode == 2 and "empty file" in out.stderr
    assert empty.stat().st_size == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="drops root's DAC override to make files read-only")
def test_proxy_runs_from_a_read_only_file_and_directory(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    dep = deploy(tmp_path, store=volume / "store.db")
    before = digest(dep.store)
    os.chmod(dep.store, 0o444)
    os.chmod(volume, 0o555)  # a read-only "volume": no -wal/-shm can be created there
    try:
        assert {p.name for p in volume.iterdir()} == {"store.db"}
        with echo_origin() as origin, running_proxy(
            dep.store, origin, prefix=NO_DAC_OVERRIDE
        ) as proxy:
            assert status(proxy.port) == 403
            assert status(proxy.port, dep.devices["ok"]) == 200
            assert status(proxy.port, dep.devices["revoked"]) == 403
        # read commands work on it too (read-only)
        listing = subprocess.run(
            [*NO_DAC_OVERRIDE, str(EDGERULES), "cert", "list", "--store", str(dep.store)],
            capture_output=True, text=True, env=clean_env(), timeout=60,
        )
        assert listing.returncode == 0 and "device-ok" in listing.stdout, listing.stderr
        assert digest(dep.store) == before
        assert stat.S_IMODE(dep.store.stat().st_mode) == 0o444
    finally:
        os.chmod(volume, 0o755)
