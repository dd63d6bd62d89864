"""``cert issue`` output files, ``--subject`` messages and ``cert list --page`` limits.

Regression tests for the bad-input fixes in cli/common.py and cli/cert_cmd.py (``Output``,
``open_outputs``, ``_rescue``), pki/issuing.py (``_subject_mistake``) and
store/sqlite.py (``MAX_PAGE``). The rule they pin down: the generated private key exists
only in this process (the store keeps no copy), so every output is checked BEFORE the
certificate is issued, a failed command leaves existing files as they were, and a
failure AFTER issuing prints the certificate id and the private key instead of losing
them.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgerules.cli import main
from edgerules.errors import PKIError

from .helpers import make_csr, name

KEY_PEM = re.compile(
    r"-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n"
)
OLD = b"old content, must survive a failed command\n" * 50


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    """``run(*argv)`` -> (status, stdout, stderr) with ``--store`` in tmp_path."""
    monkeypatch.chdir(tmp_path)
    for var in ("EDGERULES_STORE", "EDGERULES_STORE_PASSPHRASE", "EDGERULES_ACCOUNT",
                "EDGERULES_P12_PASSWORD", "EDGERULES_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    db = str(tmp_path / "cli.db")
    assert main(["ca", "create", "--store", db]) == 0
    capsys.readouterr()

    def run(*argv: str, store: str | None = None) -> tuple[int, str, str]:
        # These tests are about files, not passwords: a bundle without a password is
        # asked for explicitly (a key in a PKCS#12 file needs one or --p12-no-password).
        if "--p12" in argv and argv[0] == "cert":
            argv = (*argv, "--p12-no-password")
        try:
            code = main([*argv, "--store", store or db])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, err
        assert "internal error" not in err, err
        return code, out, err

    run.db = db
    return run


def count(run) -> int:
    """Certificates in the store (every status)."""
    code, out, err = run("cert", "list", "--json", "--per-page", "1000")
    assert code == 0, err
    return json.loads(out)["result_info"]["total_count"]


def issue_one(run) -> str:
    """Issue one certificate so the store exists and counts are meaningful."""
    code, out, err = run("cert", "issue", "--cn", "seed", "--json")
    assert code == 0, err
    return json.loads(out)["id"]


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_key_matches(run, cert_id: str, key_pem: str) -> None:
    """``key_pem`` is the private key of certificate ``cert_id`` (nothing was lost)."""
    code, cert_pem, err = run("cert", "show", cert_id, "--pem")
    assert code == 0, err
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)


def issued_id(out: str) -> str:
    match = re.search(r"Issued client certificate ([0-9a-f]{32})", out)
    assert match, out
    return match.group(1)


# --- a bad output path fails BEFORE issuing --------------------------------------------------


BAD_PATHS = {
    "missing-dir": (lambda p: p / "no-such-dir" / "out.pem", "No such file or directory"),
    "directory": (lambda p: p, "Is a directory"),
    "under-a-file": (lambda p: write(p / "plain", b"x") / "out.pem", "Not a directory"),
}


@pytest.mark.parametrize("option", ["--cert-out", "--key-out", "--p12"])
@pytest.mark.parametrize("kind", sorted(BAD_PATHS))
def test_bad_output_path_fails_before_issuing(run, tmp_path: Path, option: str,
                                              kind: str) -> None:
    """The message names the option and the path; nothing is issued; the other outputs
    (opened first, or not yet) are not left behind."""
    issue_one(run)
    make, reason = BAD_PATHS[kind]
    bad = str(make(tmp_path))
    good = {opt: tmp_path / f"good{opt.replace('-', '_')}" for opt in
            ("--cert-out", "--key-out", "--p12") if opt != option}
    args = [option, bad]
    for opt, path in good.items():
        args += [opt, str(path)]
    code, out, err = run("cert", "issue", *args)
    assert code == 2, (out, err)
    assert f"cannot write {bad} ({option})" in err, err
    assert reason in err, err
    assert "PRIVATE KEY" not in out and "WAS issued" not in err
    assert count(run) == 1, "a certificate was issued although an output path was bad"
    for path in good.values():
        assert not path.exists(), f"{path} was left behind by a failed command"


@pytest.mark.parametrize(
    ("first", "second"),
    [("--cert-out", "--key-out"), ("--key-out", "--p12"), ("--cert-out", "--p12")],
)
def test_two_options_naming_one_file_are_refused(run, tmp_path: Path, first: str,
                                                 second: str) -> None:
    issue_one(run)
    target = tmp_path / "same.pem"
    code, _out, err = run("cert", "issue", first, str(target), second, str(target))
    assert code == 2
    assert f"{first} and {second} name the same file {target}" in err, err
    assert not target.exists()
    assert count(run) == 1


def test_same_file_through_another_spelling_or_a_symlink(run, tmp_path: Path) -> None:
    """The check is on the real path: ``dir/../x`` and a symlink to ``x`` are ``x``; an
    existing file named twice keeps its content."""
    issue_one(run)
    target = write(tmp_path / "x.pem", OLD)
    (tmp_path / "sub").mkdir()
    spelled = str(tmp_path / "sub" / ".." / "x.pem")
    code, _, err = run("cert", "issue", "--cert-out", str(target), "--key-out", spelled)
    assert code == 2 and "--cert-out and --key-out name the same file" in err, err
    link = tmp_path / "link.pem"
    link.symlink_to(target)
    code, _, err = run("cert", "issue", "--key-out", str(target), "--p12", str(link))
    assert code == 2 and "--key-out and --p12 name the same file" in err, err
    assert target.read_bytes() == OLD
    assert count(run) == 1


def test_csr_with_key_out_is_refused(run, tmp_path: Path) -> None:
    issue_one(run)
    csr_pem, _key = make_csr(name("from-csr"))
    csr = write(tmp_path / "req.csr", csr_pem.encode())
    key_out = tmp_path / "k.pem"
    code, out, err = run("cert", "issue", "--csr", str(csr), "--key-out", str(key_out))
    assert code == 2, (out, err)
    assert "--key-out" in err and "--csr" in err and "never sees it" in err, err
    assert not key_out.exists()
    assert count(run) == 1
    # the CSR alone (with --cert-out) is fine
    cert_out = tmp_path / "c.pem"
    code, _, err = run("cert", "issue", "--csr", str(csr), "--cert-out", str(cert_out))
    assert code == 0, err
    assert cert_out.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert count(run) == 2


# --- an existing file keeps its content when the command fails ------------------------------


@pytest.mark.parametrize(
    "failure",
    ["other-output-bad", "bad-subject", "bad-store", "bad-validity"],
)
def test_existing_outputs_keep_their_content_on_failure(run, tmp_path: Path,
                                                        failure: str) -> None:
    """Outputs are opened without truncating: a failure before (or while) issuing leaves
    existing files byte for byte (and mode) as they were, and removes the new ones."""
    cert_out = write(tmp_path / "cert.pem", OLD)
    key_out = write(tmp_path / "key.pem", OLD[::-1], mode=0o640)
    new_p12 = tmp_path / "new.p12"
    args = ["--cert-out", str(cert_out), "--key-out", str(key_out)]
    store = None
    if failure == "other-output-bad":
        args += ["--p12", str(tmp_path / "no-such-dir" / "b.p12")]
    else:
        args += ["--p12", str(new_p12)]
    if failure == "bad-subject":
        args += ["--subject", "CN=x,ZZ=y"]
    elif failure == "bad-store":
        store = str(tmp_path / "no-such-dir" / "s.db")
    elif failure == "bad-validity":
        args += ["--validity-days", "99999999"]
    code, out, err = run("cert", "issue", *args, store=store)
    assert code == 2, (out, err)
    assert "PRIVATE KEY" not in out and "WAS issued" not in err, (out, err)
    assert cert_out.read_bytes() == OLD
    assert key_out.read_bytes() == OLD[::-1]
    assert mode_of(cert_out) == 0o644 and mode_of(key_out) == 0o640
    assert not new_p12.exists(), "a file created for a failed command was left behind"
    assert count(run) == 0


# --- reused key files end up 0600 ------------------------------------------------------------


@pytest.mark.parametrize("option", ["--key-out", "--p12"])
@pytest.mark.parametrize("existing", [True, False], ids=["reused", "new"])
def test_private_outputs_are_mode_0600(run, tmp_path: Path, option: str,
                                       existing: bool) -> None:
    """A key or PKCS#12 file is 0600 even when it already existed with a looser mode,
    and an existing longer file is truncated (no stale bytes after the new content)."""
    target = tmp_path / "private.out"
    if existing:
        write(target, OLD * 10, mode=0o644)
    cert_out = write(tmp_path / "cert.pem", OLD * 10, mode=0o644)
    code, out, err = run("cert", "issue", "--cert-out", str(cert_out), option, str(target))
    assert code == 0, err
    assert mode_of(target) == 0o600, oct(mode_of(target))
    assert mode_of(cert_out) == 0o644  # the certificate is public: mode left alone
    data = target.read_bytes()
    assert OLD[:20] not in data
    if option == "--key-out":
        assert KEY_PEM.fullmatch(data.decode())
        assert_key_matches(run, issued_id(out), data.decode())
    else:
        from cryptography.hazmat.primitives.serialization import pkcs12

        bundle = pkcs12.load_pkcs12(data, None)
        assert bundle.key is not None and bundle.cert is not None
    cert_data = cert_out.read_bytes()
    assert cert_data.startswith(b"-----BEGIN CERTIFICATE-----") and OLD[:20] not in cert_data


def test_export_with_key_into_existing_file_is_mode_0600(run, tmp_path: Path) -> None:
    """``cert export --p12 F --key K`` puts the private key in F: an existing F with a
    looser mode becomes 0600 (as with ``cert issue --p12``), and is truncated."""
    issued = json.loads(run("cert", "issue", "--json")[1])
    key_file = write(tmp_path / "dev.key", issued["private_key"].encode(), mode=0o600)
    target = write(tmp_path / "bundle.p12", OLD * 10, mode=0o644)
    code, _, err = run("cert", "export", issued["id"], "--p12", str(target), "--key", str(key_file))
    assert code == 0, err
    assert mode_of(target) == 0o600, oct(mode_of(target))
    assert OLD[:20] not in target.read_bytes()
    public = write(tmp_path / "trust.p12", OLD, mode=0o644)
    assert run("cert", "export", issued["id"], "--p12", str(public))[0] == 0
    assert mode_of(public) == 0o644  # no key inside: mode left alone


# --- the rescue path: a failure AFTER issuing loses nothing ----------------------------------


dev_full = pytest.mark.skipif(
    not os.path.exists("/dev/full") or not os.access("/dev/full", os.W_OK),
    reason="needs a writable /dev/full (Linux)",
)


@dev_full
def test_key_out_write_failure_prints_the_key(run, tmp_path: Path) -> None:
    """``--key-out /dev/full`` passes the open check; the write fails after issuing: the
    key is printed on stdout and the message says the certificate WAS issued."""
    issue_one(run)
    cert_out = tmp_path / "c.pem"
    code, out, err = run("cert", "issue", "--cert-out", str(cert_out), "--key-out", "/dev/full")
    assert code == 2, (out, err)
    cert_id = issued_id(out)
    assert "cannot write /dev/full" in err and "No space left on device" in err, err
    assert f"client certificate {cert_id} WAS issued" in err, err
    assert "private key is printed on stdout" in err and "keeps no copy" in err, err
    assert "files written: --cert-out" in err, err
    keys = KEY_PEM.findall(out)
    assert len(keys) == 1, out
    assert_key_matches(run, cert_id, keys[0])
    assert cert_out.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert "\nCertificate:\n" not in out  # saved to --cert-out, so not repeated
    assert count(run) == 2


@dev_full
def test_cert_out_write_failure_prints_certificate_and_key(run) -> None:
    code, out, err = run("cert", "issue", "--cert-out", "/dev/full")
    assert code == 2, (out, err)
    cert_id = issued_id(out)
    assert f"client certificate {cert_id} WAS issued" in err, err
    assert "certificate and private key are printed on stdout" in err, err
    assert "-----BEGIN CERTIFICATE-----" in out
    (key,) = KEY_PEM.findall(out)
    assert_key_matches(run, cert_id, key)
    assert count(run) == 1


@dev_full
def test_rescue_in_json_mode_prints_the_json_with_the_key(run) -> None:
    code, out, err = run("cert", "issue", "--key-out", "/dev/full", "--json")
    assert code == 2, (out, err)
    data = json.loads(out)
    assert f"client certificate {data['id']} WAS issued" in err, err
    assert KEY_PEM.fullmatch(data["private_key"])
    assert_key_matches(run, data["id"], data["private_key"])


@dev_full
def test_rescue_with_broken_stdout_prints_the_key_on_stderr(
    run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout failing too (disk full, closed pipe): the key still reaches the user."""
    import io

    class FailingStdout(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr("sys.stdout", FailingStdout())
        code = main(["cert", "issue", "--key-out", "/dev/full", "--store", run.db])
    _out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and "internal error" not in err, err
    assert "WAS issued" in err and "printed on stderr above" in err, err
    (key,) = KEY_PEM.findall(err)
    assert_key_matches(run, issued_id(err), key)


def test_pkcs12_failure_issues_nothing(run, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The PKCS#12 bundle is built (and every file staged) before the store commits: a
    failure there issues nothing and leaves every file as it was (issue 9.10)."""
    from edgerules.store.base import Store

    def broken_bundle(self, record, **kwargs):
        raise PKIError("simulated PKCS#12 failure")

    monkeypatch.setattr(Store, "pkcs12_bundle", broken_bundle)
    issue_one(run)
    cert_out = tmp_path / "new-cert.pem"
    key_out = write(tmp_path / "old-key.pem", OLD)
    p12 = tmp_path / "b.p12"
    code, out, err = run("cert", "issue", "--cert-out", str(cert_out), "--key-out",
                         str(key_out), "--p12", str(p12))
    assert code == 2, (out, err)
    assert "simulated PKCS#12 failure" in err and "WAS issued" not in err, err
    assert "PRIVATE KEY" not in out
    assert not cert_out.exists() and not p12.exists()
    assert key_out.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert count(run) == 1


# --- --subject: the message says what is wrong ------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("garbage", "'garbage' is not a TYPE=value pair"),
        ("CN=x,ZZ=y", "unknown attribute type 'ZZ'"),
        ("=x", "has an empty type before '='"),
        ("cn=x", "attribute types are case-sensitive: CN"),
        ("CN=x,,O=y", "attribute #2 is empty"),
        ("C=USA", "C must be 2 characters long, got 3"),
    ],
)
def test_bad_subject_says_why_and_issues_nothing(run, tmp_path: Path, subject: str,
                                                 reason: str) -> None:
    key_out = tmp_path / "k.pem"
    code, out, err = run("cert", "issue", "--subject", subject, "--key-out", str(key_out))
    assert code == 2, (out, err)
    assert f"invalid subject {subject!r}: " in err, err
    assert reason in err, err
    assert "PRIVATE KEY" not in out and not key_out.exists()
    assert count(run) == 0


def test_good_subjects_still_work(run) -> None:
    """The diagnosis runs only after a parse failure: valid subjects are unaffected."""
    for subject in ("CN=dev1,O=Acme,C=US", "CN=a\\,b", "2.5.4.3=by-oid"):
        code, _out, err = run("cert", "issue", "--subject", subject, "--json")
        assert code == 0, (subject, err)
    assert count(run) == 3


# --- cert list --page ------------------------------------------------------------------------


@pytest.mark.parametrize("page", [10**30, 10**100, 1_000_000_001], ids=["1e30", "1e100", "max+1"])
def test_cert_list_huge_page_is_a_clear_error(run, page: int) -> None:
    issue_one(run)
    code, out, err = run("cert", "list", "--page", str(page))
    assert code == 2, (out, err)
    assert "page must be between 1 and 1000000000" in err, err
    assert len(err) < 300, err  # a 100-digit number is not echoed in full


def test_cert_list_last_allowed_page_is_empty(run) -> None:
    issue_one(run)
    code, out, err = run("cert", "list", "--page", "1000000000", "--json")
    assert code == 0, err
    assert json.loads(out)["result"] == []
