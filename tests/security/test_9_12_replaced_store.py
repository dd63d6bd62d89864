"""Issue 9.12: a replaced store file is noticed.

Before the fix a store restored from a backup or moved into place (a new inode) was never
seen by a running proxy: it kept reading the old, unlinked file. Now the proxy checks the
file's identity every poll and reopens a replaced store; the state versions move past
everything shown before, so no cached verdict from the old file survives.
"""

from __future__ import annotations

import os
import sqlite3

from store_sec_helpers import Client, cli, deploy, echo_origin, running_proxy, status, wait_for


def backup(store, dest) -> None:
    src = sqlite3.connect(store)
    dst = sqlite3.connect(dest)
    src.backup(dst)
    dst.close()
    src.close()


def move_into_place(new, store) -> None:
    """How a restore or a deployment tool replaces a file: rename over it."""
    os.replace(new, store)
    for suffix in ("-wal", "-shm"):  # the new file has none of its own
        assert not os.path.exists(f"{new}{suffix}")


def test_store_restored_from_backup_is_seen_by_the_running_proxy(tmp_path):
    dep = deploy(tmp_path)
    device = dep.devices["revoked"]
    backup(dep.store, tmp_path / "backup.db")  # taken while the device was revoked
    cli("cert", "restore", device.id, "--store", str(dep.store))
    with echo_origin() as origin, running_proxy(dep.store, origin) as proxy:
        assert status(proxy.port, device) == 200  # restored: admitted
        inode = dep.store.stat().st_ino
        restored = tmp_path / "restored.db"
        backup(tmp_path / "backup.db", restored)
        move_into_place(restored, dep.store)
        assert dep.store.stat().st_ino != inode
        # the proxy must now enforce the restored file: the device is revoked there
        assert wait_for(lambda: status(proxy.port, device) == 403, timeout=30)
        # diagnostics reach stderr through the proxy's log thread (issue 9 item 7): wait
        assert wait_for(lambda: "was replaced" in proxy.log(), timeout=30)
        assert status(proxy.port, dep.devices["ok"]) == 200


def test_moved_in_store_with_mtls_off_is_enforced(tmp_path):
    """A store moved into place where mTLS is off for the host: new connections are no
    longer asked for a certificate (the trust version moved)."""
    dep = deploy(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    replacement = deploy(other, names=("x",))
    cli("host", "disable", "api.localhost", "--store", str(replacement.store))
    with echo_origin() as origin, running_proxy(dep.store, origin) as proxy:
        with Client(proxy.port, dep.devices["ok"]) as client:
            assert client.get() == 200
        staged = tmp_path / "staged.db"
        backup(replacement.store, staged)
        move_into_place(staged, dep.store)
        # mTLS is off on api.localhost in the new store: the rule blocks everyone without
        # a verified certificate, and no certificate is requested any more
        assert wait_for(lambda: status(proxy.port, dep.devices["ok"]) == 403, timeout=30)
