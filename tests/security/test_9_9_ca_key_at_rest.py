"""Issue 9.9: the CA key is protected at rest.

Before the fix a pre-existing store file (0644 after ``touch``) received the CA private key
in clear, world-readable (and the -wal/-shm files inherited the mode); the key was
encrypted with PBKDF2 at 2,048 iterations; an empty passphrase meant "unencrypted".
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess

from cryptography.hazmat.primitives import serialization
from store_sec_helpers import clean_env, cli


def stored_key(store) -> str:
    conn = sqlite3.connect(store)
    try:
        return conn.execute("SELECT private_key FROM managed_cas").fetchone()[0]
    finally:
        conn.close()


def iterations(pem: str) -> int:
    """PBKDF2 iteration count as ``openssl asn1parse`` shows it (independent reader)."""
    out = subprocess.run(
        ["openssl", "asn1parse"], input=pem, capture_output=True, text=True, check=True
    ).stdout
    lines = out.splitlines()
    kdf = next(i for i, line in enumerate(lines) if ":PBKDF2" in line)
    count = next(line for line in lines[kdf:] if "prim: INTEGER" in line)
    return int(count.rsplit(":", 1)[1], 16)


def test_touched_world_readable_file_never_holds_the_key_readable(tmp_path):
    store = tmp_path / "store.db"
    store.touch()
    os.chmod(store, 0o644)  # what `touch` leaves under the usual umask
    out = cli("ca", "create", "--store", str(store))
    assert "changed to 0600" in out.stderr
    for suffix in ("", "-wal", "-shm"):
        path = f"{store}{suffix}"
        if os.path.exists(path):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, suffix
    # without a passphrase the key is in clear: said loudly, at creation
    assert "UNENCRYPTED" in out.stderr


def test_directory_writable_by_others_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    out = cli("ca", "create", "--store", str(shared / "store.db"), check=False)
    assert out.returncode == 2 and "writable by others" in out.stderr
    if (shared / "store.db").exists():  # the empty store may exist; no key was written
        conn = sqlite3.connect(shared / "store.db")
        assert conn.execute("SELECT count(*) FROM managed_cas").fetchone()[0] == 0
        conn.close()


def test_passphrase_uses_a_modern_kdf_and_old_keys_are_upgraded(tmp_path):
    store, secret = tmp_path / "store.db", tmp_path / "pass"
    secret.write_text("correct horse battery staple\n")
    cli("ca", "create", "--store", str(store), "--passphrase-file", str(secret))
    pem = stored_key(store)
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert iterations(pem) >= 600_000

    # A store written by an older edgerules: the same key under PBKDF2 at 2,048 rounds.
    key = serialization.load_pem_private_key(pem.encode(), b"correct horse battery staple")
    weak = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse battery staple"),
    ).decode()
    assert iterations(weak) == 2048
    conn = sqlite3.connect(store)
    conn.execute("UPDATE managed_cas SET private_key = ?", (weak,))
    conn.commit()
    conn.close()
    # it still opens, and is re-encrypted with the modern KDF on first use
    cli("cert", "issue", "--store", str(store), "--passphrase-file", str(secret))
    assert iterations(stored_key(store)) >= 600_000


def test_ca_rekey_changes_the_passphrase(tmp_path):
    store, old, new = tmp_path / "store.db", tmp_path / "old", tmp_path / "new"
    old.write_text("old passphrase")
    new.write_text("new passphrase")
    cli("ca", "create", "--store", str(store))  # a key kept in clear ...
    cli("ca", "rekey", "--store", str(store), "--new-passphrase-file", str(old))  # ... encrypted
    assert iterations(stored_key(store)) >= 600_000
    cli("ca", "rekey", "--store", str(store), "--passphrase-file", str(old),
        "--new-passphrase-file", str(new))
    fail = cli("cert", "issue", "--store", str(store), "--passphrase-file", str(old), check=False)
    assert fail.returncode == 2 and "wrong passphrase" in fail.stderr
    cli("cert", "issue", "--store", str(store), "--passphrase-file", str(new))


def test_empty_passphrase_is_an_error_never_unencrypted(tmp_path):
    store = tmp_path / "store.db"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    out = cli("ca", "create", "--store", str(store), "--passphrase-file", str(empty), check=False)
    assert out.returncode == 2 and "empty" in out.stderr
    out = cli("ca", "create", "--store", str(store), check=False,
              env=clean_env(EDGERULES_STORE_PASSPHRASE=""))
    assert out.returncode == 2 and "empty" in out.stderr
    if store.exists():
        conn = sqlite3.connect(store)
        assert conn.execute("SELECT count(*) FROM managed_cas").fetchone()[0] == 0
        conn.close()
