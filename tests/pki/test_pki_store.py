"""The SQLite store: schema and migrations, lifecycle, listing, counters, hostnames,
several processes at once, and a writer killed mid-operation."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgerules.errors import PKIError, StoreError
from edgerules.pki.hostnames import lookup_key, normalize_hostname
from edgerules.store import open_store
from edgerules.store.schema import CURRENT_VERSION

from .helpers import ec_key, make_cert, name, pem

SRC = str(Path(__file__).resolve().parents[2] / "src")


def load(text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(text.encode())


# -- schema ---------------------------------------------------------------------------


def test_new_store_has_current_schema_and_wal(sqlite_store, store_path):
    store = sqlite_store
    assert store.schema_version() == CURRENT_VERSION
    assert store.integrity_check() == "ok"
    conn = sqlite3.connect(store_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_new_store_file_is_private(store_path):
    # The store holds the managed CA's private key (in clear without a passphrase): a new
    # file, and the WAL/SHM files SQLite derives from it, are readable by the owner only,
    # whatever the umask. An existing file keeps the mode its owner gave it.
    old_umask = os.umask(0o022)
    try:
        with open_store(store_path, create=True) as s:
            s.issue_certificate()
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(store_path + suffix):
                    assert stat.S_IMODE(os.stat(store_path + suffix).st_mode) == 0o600, suffix
        os.chmod(store_path, 0o640)
        open_store(store_path).close()
        assert stat.S_IMODE(os.stat(store_path).st_mode) == 0o640
    finally:
        os.umask(old_umask)


def test_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERULES_STORE", str(tmp_path / "env.db"))
    with open_store(create=True) as s:
        s.managed_ca()
    assert (tmp_path / "env.db").exists()


def test_default_path_is_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGERULES_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    open_store(create=True).close()
    assert (tmp_path / "edgerules.db").exists()


def test_migrates_an_old_store(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.commit()
    conn.close()
    with open_store(path) as s:
        assert s.schema_version() == CURRENT_VERSION
        s.issue_certificate()


def test_refuses_a_newer_store(store_path):
    open_store(store_path, create=True).close()
    conn = sqlite3.connect(store_path)
    conn.execute("UPDATE schema_version SET version = 999")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this edgerules"):
        open_store(store_path)


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(bad)
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(tmp_path)  # a directory
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(tmp_path / "missing-dir" / "x.db")


def test_reopen_keeps_everything(store_path):
    with open_store(store_path, create=True) as s:
        ca = s.managed_ca()
        r = s.issue_certificate().record
        s.enable_hostnames(["a.example.com"])
    with open_store(store_path) as s:
        assert s.managed_ca().id == ca.id
        assert s.get_certificate(r.id) == r
        assert s.mtls_hostnames() == {"a.example.com"}


# -- lifecycle ------------------------------------------------------------------------


def test_revoke_and_restore_are_synchronous(store):
    r = store.issue_certificate().record
    trust, revocation = store.versions()
    revoked = store.revoke_certificate(r.id)
    assert revoked.status == "revoked" and store.get_certificate(r.id).status == "revoked"
    assert store.versions() == (trust, revocation + 1)
    with pytest.raises(PKIError, match="is revoked: cannot revoke"):
        store.revoke_certificate(r.id)
    assert store.restore_certificate(r.id).status == "active"
    assert store.versions() == (trust, revocation + 2)
    with pytest.raises(PKIError, match="is active: cannot restore"):
        store.restore_certificate(r.id)
    assert [e[0] for e in store.certificate_events(r.id)] == ["issued", "revoked", "restored"]
    # never deleted: still listed
    assert store.list_certificates().total_count == 1


def test_ids_accept_dashed_and_upper_case(store):
    r = store.issue_certificate().record
    dashed = f"{r.id[:8]}-{r.id[8:12]}-{r.id[12:16]}-{r.id[16:20]}-{r.id[20:]}".upper()
    assert store.get_certificate(dashed) == r
    with pytest.raises(PKIError, match="not found"):
        store.get_certificate("0" * 32)
    with pytest.raises(PKIError, match="invalid certificate id"):
        store.revoke_certificate("xyz")


def test_list_filters_and_paginates(store):
    ids = [store.issue_certificate(common_name=f"d{i}").record.id for i in range(7)]
    store.revoke_certificate(ids[1])
    store.revoke_certificate(ids[4])
    page = store.list_certificates(per_page=3)
    assert page.total_count == 7 and page.total_pages == 3
    assert [c.id for c in page.items] == ids[::-1][:3]  # newest first
    assert [c.id for c in store.list_certificates(per_page=3, page=3).items] == [ids[0]]
    assert store.list_certificates(per_page=3, page=4).items == ()
    revoked = store.list_certificates(status="revoked")
    assert {c.id for c in revoked.items} == {ids[1], ids[4]}
    assert store.list_certificates(status="active").total_count == 5
    assert store.list_certificates(status="pending_revocation").total_count == 0
    info = store.list_certificates(per_page=3, page=2).to_dict()["result_info"]
    assert info == {"page": 2, "per_page": 3, "count": 3, "total_count": 7, "total_pages": 3}
    for bad in ({"status": "deleted"}, {"page": 0}, {"per_page": 0}, {"per_page": 10**6}):
        with pytest.raises(PKIError):
            store.list_certificates(**bad)


def test_revocation_source_answers_for_managed_leaves_only(store, reopen):
    r = store.issue_certificate().record
    leaf = load(r.certificate)
    ca = load(store.managed_ca().certificate)
    store.revocation_poll_interval = 0  # read the counter on every call
    source = store.revocation_source()
    assert source is store.revocation_source()
    v0 = source.version
    assert not source.is_revoked(leaf, ca)
    # a revoke through another connection (as the CLI in another process would do)
    reopen().revoke_certificate(r.id)
    assert source.version > v0
    assert source.is_revoked(leaf, ca)
    # same serial, other issuer: uploaded CAs have no revocation (as at Cloudflare)
    foreign_ca = make_cert(name("Foreign"), ec_key())
    assert not source.is_revoked(leaf, foreign_ca)
    store.restore_certificate(r.id)
    assert not source.is_revoked(leaf, ca)


def test_state_is_in_memory_and_follows_other_processes(store, reopen):
    r = store.issue_certificate().record
    leaf = load(r.certificate)
    ca = load(store.managed_ca().certificate)
    source = store.revocation_source()
    assert store.revocation_poll_interval in (0.1, 0.25)  # the defaults: SQLite, PostgreSQL
    v0 = source.version  # loads the state and starts the sync thread
    loads = []
    load_state = store._load_state
    store._load_state = lambda *a: loads.append(1) or load_state(*a)
    for _ in range(1000):  # the validator's path: memory only
        assert source.version == v0 and not source.is_revoked(leaf, ca)
    # nothing changed: nothing re-read per call (PostgreSQL's listener, connecting, may
    # trigger one reload)
    assert len(loads) <= 1
    store.revoke_certificate(r.id)  # through this store: seen before the call returns
    assert source.version == v0 + 1 and source.is_revoked(leaf, ca)
    # another process: seen by the sync thread within the poll interval
    reopen().restore_certificate(r.id)
    deadline = time.monotonic() + 10
    while source.version != v0 + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.version == v0 + 2 and not source.is_revoked(leaf, ca)
    assert store.health().reachable and store.health().loaded


@pytest.mark.parametrize("bad", [-1, "1", None, True, float("nan")])
def test_revocation_poll_interval_is_checked(store_path, bad):
    with pytest.raises(StoreError, match="revocation_poll_interval"):
        open_store(store_path, revocation_poll_interval=bad)


# -- hostnames --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("API.Example.COM.", "api.example.com"),
        (" a.b ", "a.b"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("_acme.example.com", "_acme.example.com"),
    ],
)
def test_normalize_hostname(raw, canonical):
    assert normalize_hostname(raw) == canonical
    assert lookup_key(raw.strip()) == canonical


@pytest.mark.parametrize(
    "bad", ["", ".", "*.example.com", "a..b", "-a.com", "a b.com", "a" * 64 + ".com", "x." * 130]
)
def test_invalid_hostnames(bad):
    with pytest.raises(PKIError, match="invalid hostname"):
        normalize_hostname(bad)


@pytest.mark.parametrize("ambiguous", ["straße.de", "σίσυφος.gr", "a\u200db.example"])
def test_idna_deviation_characters_are_refused(ambiguous):
    # Python's "idna" codec (IDNA 2003) maps ß to "ss", final sigma to sigma and drops
    # ZWJ/ZWNJ, while browsers (UTS 46 non-transitional, IDNA 2008) keep them: clients of
    # straße.de send the SNI xn--strae-oqa.de, not strasse.de. Enabling the IDNA 2003 form
    # would silently leave the real hostname without mTLS, so the name is refused with a
    # request for the A-label.
    with pytest.raises(PKIError, match="xn--"):
        normalize_hostname(ambiguous)
    assert lookup_key(ambiguous) is None


def test_lookup_key_is_lenient():
    assert lookup_key(None) is None
    assert lookup_key(b"API.example.com") == "api.example.com"
    assert lookup_key(b"\xff") is None
    assert lookup_key("*.x") is None


def test_replace_semantics(store):
    assert store.get_hostname_associations() == []  # no managed CA yet: nothing
    assert store.set_hostname_associations(["B.example.com", "a.example.com"]) == [
        "a.example.com",
        "b.example.com",
    ]
    assert store.set_hostname_associations(["c.example.com"]) == ["c.example.com"]
    assert store.get_hostname_associations() == ["c.example.com"]
    assert store.get_hostname_associations("managed") == ["c.example.com"]
    assert store.set_hostname_associations([]) == []
    assert store.mtls_hostnames() == set()


def test_enable_disable_and_table(store):
    ca = store.upload_ca(pem(make_cert(name("Acme CA"), ec_key())), name="acme")
    store.enable_hostnames(["a.example.com", "b.example.com"])
    store.enable_hostnames(["b.example.com", "c.example.com"], ca.id)
    assert store.get_hostname_associations(ca.id) == ["b.example.com", "c.example.com"]
    assert store.get_hostname_associations("acme") == ["b.example.com", "c.example.com"]
    assert store.mtls_hostnames() == {"a.example.com", "b.example.com", "c.example.com"}
    table = store.hostname_table()
    assert [(h, kind) for h, kind, _, _ in table] == [
        ("a.example.com", "managed"),
        ("b.example.com", "uploaded"),
        ("b.example.com", "managed"),
        ("c.example.com", "uploaded"),
    ]
    assert store.disable_hostnames(["b.example.com"], ca.id) == ["b.example.com"]
    assert store.get_hostname_associations() == ["a.example.com", "b.example.com"]
    assert store.disable_hostnames(["B.EXAMPLE.COM", "nope.example"], all_cas=True) == [
        "b.example.com"
    ]
    assert store.mtls_hostnames() == {"a.example.com", "c.example.com"}
    with pytest.raises(PKIError, match="not found"):
        store.enable_hostnames(["x.example.com"], "no-such-ca")
    with pytest.raises(PKIError, match="wildcard"):
        store.enable_hostnames(["*.example.com"])


def test_trust_version_moves_with_trust_changes(store):
    v = store.trust_version()
    store.enable_hostnames(["a.example.com"])  # also creates the managed CA
    v1 = store.trust_version()
    assert v1 > v
    store.enable_hostnames(["a.example.com"])  # no change, no bump
    assert store.trust_version() == v1
    ca = store.upload_ca(pem(make_cert(name("X"), ec_key())))
    assert store.trust_version() == v1 + 1
    store.set_hostname_associations(["a.example.com"], ca.id)
    assert store.trust_version() == v1 + 2
    store.issue_certificate()
    assert store.trust_version() == v1 + 2  # issuing does not change trust


def test_trusted_cas_order_newest_upload_first_then_managed(store):
    old = make_cert(name("Old CA"), ec_key())
    new = make_cert(name("New CA"), ec_key())
    a = store.upload_ca(pem(old))
    b = store.upload_ca(pem(new))
    store.enable_hostnames(["h.example.com"])
    store.enable_hostnames(["h.example.com"], a.id)
    store.enable_hostnames(["h.example.com"], b.id)
    managed = load(store.managed_ca().certificate)
    assert store.trusted_cas_for("h.example.com") == [new, old, managed]
    assert store.trusted_cas_for("other.example.com") == []


def test_validator_none_without_mtls(store):
    store.enable_hostnames(["a.example.com"])
    assert store.validator_for_hostname("b.example.com") is None
    assert store.validator_for_hostname(None) is None
    assert store.validator_for_hostname("") is None


# -- several processes ------------------------------------------------------------------

_WRITER = r"""
import sys
from edgerules.store import open_store
store = open_store(sys.argv[1])
first = store.issue_certificate().record.id
print("ready", flush=True)
n = 0
while n < int(sys.argv[2]):
    issued = store.issue_certificate(key_type="ecdsa")
    print(issued.record.id, flush=True)  # reported only after the commit returned
    # flip one certificate's state too, so counter bumps are exercised under the kill
    if n % 2:
        store.restore_certificate(first)
    else:
        store.revoke_certificate(first)
    n += 1
print("done", flush=True)
"""


def _spawn(path: str, count: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("EDGERULES_STORE_PASSPHRASE", None)
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, path, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _check_consistent(path: str) -> int:
    """Integrity, every certificate complete and self-consistent, counters matching the
    audit trail (the bump and the status change committed together). Returns the count."""
    with open_store(path) as s:
        assert s.integrity_check() == "ok"
        ca = load(s.managed_ca(create=False).certificate)
        page = s.list_certificates(per_page=1000)
        for r in page.items:
            cert = load(r.certificate)
            cert.verify_directly_issued_by(ca)
            assert str(cert.serial_number) == r.serial_number
            der = cert.public_bytes(serialization.Encoding.DER)
            assert hashlib.sha256(der).hexdigest() == r.fingerprint_sha256
            assert r.csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")
            assert r.status in ("active", "revoked")
            events = s.certificate_events(r.id)
            assert events[0][0] == "issued"
            assert events[-1][1] == r.status
        conn = sqlite3.connect(path)
        (changes,) = conn.execute(
            "SELECT count(*) FROM client_certificate_events WHERE event != 'issued'"
        ).fetchone()
        conn.close()
        assert s.counters()[1] == changes
        return page.total_count


def _count(path: str) -> int:
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM client_certificates").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_killed_writer_leaves_store_consistent(store_path):
    """SIGKILL a writer in the middle of a loop of issues and revoke/restores, five times
    on the same file: after each kill the store passes ``integrity_check``, every
    certificate is complete, every id the writer saw committed is there, and the
    revocation counter equals the number of recorded status changes."""
    open_store(store_path, create=True).close()
    committed: set[str] = set()
    for kill_after in (3, 10, 20, 35, 50):
        proc = _spawn(store_path, 10_000)
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            deadline = time.monotonic() + 60
            while _count(store_path) < kill_after and time.monotonic() < deadline:
                time.sleep(0.002)
            os.kill(proc.pid, signal.SIGKILL)  # mid-loop: often inside a transaction
            out, _ = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        committed.update(line for line in out.split() if len(line) == 32)
        total = _check_consistent(store_path)
        assert total >= kill_after
        with open_store(store_path) as s:
            present = {c.id for c in s.list_certificates(per_page=1000).items}
        assert committed <= present
    # the store is still fully usable afterwards
    with open_store(store_path) as s:
        s.issue_certificate()
    assert _check_consistent(store_path) == total + 1


@pytest.mark.slow
def test_concurrent_writers(store_path):
    open_store(store_path, create=True).managed_ca()
    procs = [_spawn(store_path, 12) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        lines = out.split()
        assert lines[0] == "ready" and lines[-1] == "done" and len(lines) == 14
    assert _check_consistent(store_path) == 2 * 13


# -- opening (issue 9.8) ----------------------------------------------------------------


def test_missing_store_is_never_created(tmp_path):
    with pytest.raises(StoreError, match="no such file"):
        open_store(tmp_path / "typo.db")
    with pytest.raises(StoreError, match="no such file"):
        open_store(tmp_path / "typo.db", read_only=True)
    assert not (tmp_path / "typo.db").exists()


def test_read_only_store_refuses_writes_and_old_schemas(tmp_path, capsys):
    from edgerules.cli import main

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="edgerules store migrate"):
        open_store(path, read_only=True)
    assert main(["store", "migrate", "--store", str(path)]) == 0
    assert f"schema version {CURRENT_VERSION}" in capsys.readouterr().out
    with open_store(path, read_only=True) as s:
        assert s.schema_version() == CURRENT_VERSION and s.managed_ca(create=False) is None
        with pytest.raises(StoreError, match="read-only"):
            s.managed_ca()
    assert main(["store", "check", "--store", str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")


def test_incremental_state_matches_a_full_reload(store, reopen):
    """After the first load a process reads only the certificates whose status changed
    since the revocation version it holds; the result equals a full reload."""
    certs = [store.issue_certificate().record for _ in range(6)]
    reader = reopen(revocation_poll_interval=0)
    reader.load_state()
    for i, c in enumerate(certs):
        if i % 2:
            store.revoke_certificate(c.id)
    store.restore_certificate(certs[1].id)
    store.revoke_certificate(certs[0].id)
    snap = reader._live.snapshot()  # interval 0: refreshed now, incrementally
    expected = {int(certs[i].serial_number) for i in (0, 3, 5)}
    assert snap.raw.revoked == expected
    assert reader._load_state().revoked == expected  # a full reload agrees
