"""The ``ca``, ``cert`` and ``host`` commands through ``edgerules.cli.main``."""

from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from edgerules.cli import main

from .helpers import ec_key, make_cert, make_csr, name, pem


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EDGERULES_STORE_PASSPHRASE", raising=False)
    monkeypatch.delenv("EDGERULES_ACCOUNT", raising=False)
    monkeypatch.delenv("EDGERULES_P12_PASSWORD", raising=False)
    db = str(tmp_path / "cli.db")
    assert main(["ca", "create", "--store", db]) == 0  # only `ca create` makes a store
    capsys.readouterr()

    def run(*argv: str, store: bool = True) -> tuple[int, str, str]:
        args = list(argv) + (["--store", db] if store else [])
        code = main(args)
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    run.db = db
    return run


def jrun(run, *argv: str, store: bool = True):
    code, out, err = run(*argv, "--json", store=store)
    assert code == 0, err
    return json.loads(out)


def test_ca_create_then_show(run, tmp_path):
    code, _, err = run("ca", "create")
    assert code == 2 and "already exists" in err
    fresh = str(tmp_path / "fresh.db")
    code, _, err = run("ca", "show", "--store", fresh, store=False)
    assert code == 2 and "no such file" in err and not os.path.exists(fresh)
    code, out, err = run("ca", "create", "--key-type", "rsa", "--store", fresh, store=False)
    assert code == 0 and "key_type            rsa" in out and "UNENCRYPTED" in err
    code, out, _ = run("ca", "show")
    assert code == 0 and "Managed CA for account default" in out
    data = jrun(run, "ca", "show")
    assert data["type"] == "managed" and data["hostnames"] == []
    code, out, _ = run("ca", "show", "--pem")
    assert out.startswith("-----BEGIN CERTIFICATE-----") and out == data["certificate"]


def test_issue_show_list_revoke_restore(run):
    issued = jrun(run, "cert", "issue", "--cn", "device-1", "--validity-days", "30")
    assert issued["common_name"] == "device-1" and issued["validity_days"] == 30
    assert issued["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    cid = issued["id"]
    shown = jrun(run, "cert", "show", cid)
    assert shown == {k: v for k, v in issued.items() if k != "private_key"}
    code, out, _ = run("cert", "show", cid)
    assert code == 0 and "serial_number" in out and cid in out
    code, out, _ = run("cert", "list")
    assert cid in out and "page 1/1" in out
    code, out, _ = run("cert", "revoke", cid)
    assert code == 0 and "now revoked" in out
    listed = jrun(run, "cert", "list", "--status", "revoked")
    assert [c["id"] for c in listed["result"]] == [cid]
    assert listed["result_info"]["total_count"] == 1
    code, _, err = run("cert", "revoke", cid)
    assert code == 2 and "already" not in err and "is revoked: cannot revoke" in err
    assert jrun(run, "cert", "restore", cid)["status"] == "active"
    assert jrun(run, "cert", "list", "--status", "revoked")["result"] == []


def test_issue_human_output_shows_key_once(run, tmp_path):
    code, out, _ = run("cert", "issue", "--key-type", "rsa")
    assert code == 0
    assert "Private key (shown only this once" in out and "BEGIN PRIVATE KEY" in out
    assert "SHA256WithRSA" not in out  # the CA is ECDSA: the signature is ECDSAWithSHA256
    code, out, _ = run(
        "cert", "issue", "--cert-out", str(tmp_path / "c.pem"), "--key-out", str(tmp_path / "k.pem")
    )
    assert code == 0 and "BEGIN PRIVATE KEY" not in out
    assert stat.S_IMODE(os.stat(tmp_path / "k.pem").st_mode) == 0o600
    assert (tmp_path / "c.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_issue_from_csr(run, tmp_path):
    csr_pem, _ = make_csr(name("sensor", O="Acme", C="DE"))
    (tmp_path / "req.csr").write_text(csr_pem)
    data = jrun(run, "cert", "issue", "--csr", str(tmp_path / "req.csr"))
    assert (data["common_name"], data["organization"], data["country"]) == ("sensor", "Acme", "DE")
    assert "private_key" not in data and data["csr"] == csr_pem
    code, _, err = run("cert", "issue", "--csr", str(tmp_path / "req.csr"), "--cn", "x")
    assert code == 2 and "cannot be combined with --csr" in err
    (tmp_path / "bad.csr").write_text("garbage")
    code, _, err = run("cert", "issue", "--csr", str(tmp_path / "bad.csr"))
    assert code == 2 and "malformed CSR" in err
    code, _, err = run("cert", "issue", "--csr", str(tmp_path / "missing.csr"))
    assert code == 2 and "cannot read" in err


def test_usage_errors_exit_2(run):
    with pytest.raises(SystemExit) as e:
        run("cert", "issue", "--csr", "x", "--key-type", "rsa")
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run("cert", "issue", "--validity-days", "0")
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run("cert", "list", "--status", "gone")
    assert e.value.code == 2
    code, _, err = run("cert", "issue", "--validity-days", "99999")
    assert code == 2 and "validity_days must be between 1 and 5475" in err
    code, _, err = run("cert", "show", "nope")
    assert code == 2 and "invalid certificate id" in err


def test_pkcs12_at_issue_and_export(run, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERULES_P12_PASSWORD", "s3cret")
    p12 = tmp_path / "dev.p12"
    issued = jrun(run, "cert", "issue", "--p12", str(p12))
    assert "private_key" not in issued  # it went into the bundle, not also to stdout
    key, cert, cas = pkcs12.load_key_and_certificates(p12.read_bytes(), b"s3cret")
    assert key is not None and len(cas) == 1
    assert key.public_key() == cert.public_key()
    (tmp_path / "dev.key").write_text(pem(key))
    out = tmp_path / "again.p12"
    code, text, err = run(
        "cert", "export", issued["id"], "--p12", str(out), "--key", str(tmp_path / "dev.key")
    )
    assert code == 0 and "certificate, key and CA" in text, err
    assert pkcs12.load_key_and_certificates(out.read_bytes(), b"s3cret")[0] is not None
    monkeypatch.delenv("EDGERULES_P12_PASSWORD")
    code, text, _ = run("cert", "export", issued["id"], "--p12", str(tmp_path / "nokey.p12"))
    assert code == 0 and "no key" in text
    assert pkcs12.load_pkcs12((tmp_path / "nokey.p12").read_bytes(), None).key is None


def test_export_with_an_encrypted_device_key_says_what_to_do(run, tmp_path):
    # The device key given to `cert export --key` is the user's, not the store's: the
    # store passphrase has nothing to do with it and must not be suggested.
    from cryptography.hazmat.primitives import serialization

    issued = jrun(run, "cert", "issue")
    key = serialization.load_pem_private_key(issued["private_key"].encode(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"device pass"),
    )
    (tmp_path / "enc.key").write_bytes(encrypted)
    code, _, err = run(
        "cert", "export", issued["id"], "--p12", str(tmp_path / "x.p12"),
        "--key", str(tmp_path / "enc.key"), "--p12-no-password",
    )
    assert code == 2 and "encrypted" in err
    assert "EDGERULES_STORE_PASSPHRASE" not in err and "openssl pkey" in err
    assert not (tmp_path / "x.p12").exists()


def test_byoca_and_hosts(run, tmp_path):
    ca_file = tmp_path / "acme.pem"
    ca_file.write_text(pem(make_cert(name("Acme CA"), ec_key())))
    byoca = str(tmp_path / "byoca.db")  # a BYOCA-only store: `ca upload --create`
    code, _, err = run("ca", "upload", str(ca_file), "--store", byoca, store=False)
    assert code == 2 and "no such file" in err
    up = jrun(run, "ca", "upload", str(ca_file), "--name", "acme", "--create", "--store", byoca,
              store=False)
    assert up["name"] == "acme" and up["ca"] is True
    assert [c["type"] for c in jrun(run, "ca", "list", "--store", byoca, store=False)] == [
        "custom"
    ]
    code, _, err = run("host", "enable", "api.example.com", "--store", byoca, store=False)
    assert code == 2 and "ca create" in err  # the managed CA is never minted on the fly
    jrun(run, "ca", "upload", str(ca_file), "--name", "acme")
    code, out, _ = run("host", "enable", "API.example.com", "b.example.com", "--ca", "acme")
    assert code == 0 and "api.example.com" in out
    run("host", "enable", "api.example.com")
    table = jrun(run, "host", "list")
    assert [(r["hostname"], r["ca_type"]) for r in table] == [
        ("api.example.com", "uploaded"),
        ("api.example.com", "managed"),
        ("b.example.com", "uploaded"),
    ]
    assert jrun(run, "host", "list", "--ca", "acme")["hostnames"] == [
        "api.example.com",
        "b.example.com",
    ]
    code, out, _ = run("ca", "list")
    assert code == 0 and "managed" in out and "acme" in out
    code, _, err = run("ca", "delete", "acme")
    assert code == 2 and "still associated" in err
    assert jrun(run, "host", "set", "--ca", "acme")["hostnames"] == []
    assert jrun(run, "host", "disable", "api.example.com")["removed"] == ["api.example.com"]
    code, out, _ = run("host", "list")
    assert "not enabled on any hostname" in out
    code, out, _ = run("ca", "delete", "acme")
    assert code == 0 and "Deleted CA" in out


def test_byoca_rejections_are_clean_errors(run, tmp_path):
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(pem(make_cert(name("leaf"), ec_key(), ca=False)))
    code, _, err = run("ca", "upload", str(leaf))
    assert code == 2 and "leaf (basicConstraints CA:FALSE)" in err
    for i in range(5):
        f = tmp_path / f"ca{i}.pem"
        f.write_text(pem(make_cert(name(f"CA {i}"), ec_key())))
        assert run("ca", "upload", str(f))[0] == 0
    f = tmp_path / "ca6.pem"
    f.write_text(pem(make_cert(name("CA 6"), ec_key())))
    code, _, err = run("ca", "upload", str(f))
    assert code == 2 and err.strip() == "error 1489: Hit maximum CA cert allocation."
    code, _, err = run("host", "enable", "*.example.com")
    assert code == 2 and "wildcard" in err


def test_store_from_environment_and_store_errors(run, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERULES_STORE", str(tmp_path / "env.db"))
    code, _, err = run("cert", "issue", "--json", store=False)
    assert code == 2 and "no such file" in err and not (tmp_path / "env.db").exists()
    assert run("ca", "create", store=False)[0] == 0
    code, _, _ = run("cert", "issue", "--json", store=False)
    assert code == 0 and (tmp_path / "env.db").exists()
    code, _, err = run("cert", "list", "--store", str(tmp_path), store=False)
    assert code == 2 and "cannot open store" in err


def test_accounts_are_separate(run):
    code, _, err = run("cert", "issue", "--account", "a")
    assert code == 2 and "no managed CA for account 'a'" in err  # never minted on the fly
    jrun(run, "ca", "create", "--account", "a")
    jrun(run, "cert", "issue", "--account", "a")
    assert jrun(run, "cert", "list", "--account", "b")["result_info"]["total_count"] == 0
    assert jrun(run, "cert", "list", "--account", "a")["result_info"]["total_count"] == 1


def test_passphrase_file(run, tmp_path):
    (tmp_path / "pass").write_text("hunter2\n")
    shown = jrun(run, "ca", "create", "--account", "p", "--passphrase-file", str(tmp_path / "pass"))
    assert shown["key_encrypted"] is True
    code, _, err = run("cert", "issue", "--account", "p")
    assert code == 2 and "encrypted" in err
    assert run(
        "cert", "issue", "--account", "p", "--passphrase-file", str(tmp_path / "pass")
    )[0] == 0
