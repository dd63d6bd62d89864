"""``edgerules proxy`` refuses bad start-up configuration with a message naming the
culprit, before it listens.

Regression tests for the bad-input fixes in proxy/tls.py (``_load_server_files``: the
``--cert``/``--key`` files), proxy/config.py (``Limits``: NaN, infinity, zero and negative
timeouts), proxy/accesslog.py (an access log that cannot be opened) and cli/proxy_cmd.py
(``--list`` without ``--rules``).

In-process runs cannot hang: ``run_proxy`` is replaced by a stub that raises at once
(nothing binds a port); a configuration that wrongly passes reaches the stub and the test
fails on the "internal error" it produces. The real ``edgerules`` binary is also run for
the timeouts that used to start a server, with a 20 s timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgerules.cli import main

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
EDGERULES_BIN = Path(sys.executable).with_name("edgerules")

needs_openssl = pytest.mark.skipif(not Path(OPENSSL).exists(), reason="needs openssl")


class ProxyStartedError(Exception):
    """The stub ``run_proxy`` was reached: the bad configuration was accepted."""


@pytest.fixture(autouse=True)
def _never_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("EDGERULES_STORE", "EDGERULES_STORE_PASSPHRASE", "EDGERULES_ACCOUNT",
                "EDGERULES_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    import edgerules.proxy.server as server_module

    def stub(server: object, *, on_ready: object = None, loop: str = "auto") -> int:
        raise ProxyStartedError("the proxy would have started serving")

    monkeypatch.setattr(server_module, "run_proxy", stub)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Server certificates and keys made with openssl: a good pair, a second pair, an
    RSA key, an encrypted key, and PEM-looking garbage."""
    if not Path(OPENSSL).exists():
        pytest.skip("needs openssl")
    d = tmp_path_factory.mktemp("server-pem")
    for stem, cn in (("a", "localhost"), ("b", "other.example")):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.crt", "-subj", f"/CN={cn}",
                 "-days", "2", cwd=d)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", "rsa.key", cwd=d)
    _openssl("pkey", "-in", "a.key", "-aes256", "-passout", "pass:secret", "-out", "enc.key",
             cwd=d)
    (d / "text.txt").write_text("hello, not a PEM file\n")
    (d / "empty.pem").write_bytes(b"")
    (d / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (d / "badcert.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nQUFBQUFB\n-----END CERTIFICATE-----\n")
    (d / "badkey.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nQUFBQUFB\n-----END PRIVATE KEY-----\n")
    (d / "adir").mkdir()
    return {p.name: p for p in d.iterdir()} | {"missing.pem": d / "missing.pem"}


def proxy_argv(*args: str) -> list[str]:
    return ["proxy", "--access-log", "off", "--upstream", "http://127.0.0.1:9",
            "--listen", "127.0.0.1:0", *args]


def run_proxy_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """In-process ``edgerules proxy ARGS`` -> (exit status, stderr)."""
    try:
        code = main(proxy_argv(*args))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    _out, err = capsys.readouterr()
    return code, err


def refused(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> str:
    code, err = run_proxy_cli(capsys, *args)
    assert "Traceback" not in err, err
    assert "ProxyStartedError" not in err, f"`proxy {' '.join(args)}` was accepted:\n{err}"
    assert "internal error" not in err, err
    assert code == 2, (code, err)
    for needle in needles:
        assert needle in err, f"{needle!r} not in stderr:\n{err}"
    return err


# --- --cert / --key --------------------------------------------------------------------------


def test_good_pair_is_accepted(capsys: pytest.CaptureFixture[str],
                               pem_files: dict[str, Path]) -> None:
    """Control: the fixture pair loads, so the cases below fail for their stated reason."""
    code, err = run_proxy_cli(capsys, "--cert", str(pem_files["a.crt"]),
                              "--key", str(pem_files["a.key"]))
    assert "ProxyStartedError" in err and code != 0, err  # reached run_proxy (the stub)
    code, err = run_proxy_cli(capsys, "--cert", str(pem_files["b.crt"]),
                              "--key", str(pem_files["b.key"]))
    assert "ProxyStartedError" in err, err


CERT_KEY_CASES = [
    # (id, --cert, --key, the file to name, the reason)
    ("cert-missing", "missing.pem", "a.key", "missing.pem",
     "cannot load the server certificate {c}: No such file or directory"),
    ("key-missing", "a.crt", "missing.pem", "missing.pem",
     "cannot load the server private key {k}: No such file or directory"),
    ("cert-directory", "adir", "a.key", "adir",
     "cannot load the server certificate {c}: it is a directory"),
    ("key-directory", "a.crt", "adir", "adir",
     "cannot load the server private key {k}: it is a directory"),
    ("cert-text", "text.txt", "a.key", "text.txt",
     "cannot load the server certificate {c}: not a PEM certificate"),
    ("cert-empty", "empty.pem", "a.key", "empty.pem",
     "cannot load the server certificate {c}: not a PEM certificate"),
    ("cert-binary", "binary.bin", "a.key", "binary.bin",
     "cannot load the server certificate {c}: not a PEM certificate"),
    ("key-text", "a.crt", "text.txt", "text.txt",
     "cannot load the server private key {k}: not a PEM private key"),
    ("key-binary", "a.crt", "binary.bin", "binary.bin",
     "cannot load the server private key {k}: not a PEM private key"),
    ("cert-bad-body", "badcert.pem", "a.key", "badcert.pem",
     "cannot load the server certificate {c}: not a valid PEM certificate chain"),
    ("key-bad-body", "a.crt", "badkey.pem", "badkey.pem",
     "cannot load the server private key {k}: not a valid PEM private key"),
    ("swapped", "a.key", "a.crt", "a.key", "swapped --cert and --key?"),
    ("key-is-a-cert", "a.crt", "a.crt", "a.crt", "swapped --cert and --key?"),
    ("mismatch", "a.crt", "b.key", "b.key",
     "the server private key {k} does not match the certificate in {c}"),
    ("mismatch-rsa", "a.crt", "rsa.key", "rsa.key",
     "the server private key {k} does not match the certificate in {c}"),
    ("encrypted-key", "a.crt", "enc.key", "enc.key", "the key is encrypted"),
]


@needs_openssl
@pytest.mark.parametrize(("cert", "key", "named", "reason"),
                         [c[1:] for c in CERT_KEY_CASES], ids=[c[0] for c in CERT_KEY_CASES])
def test_bad_cert_or_key_names_the_file(capsys: pytest.CaptureFixture[str],
                                        pem_files: dict[str, Path], cert: str, key: str,
                                        named: str, reason: str) -> None:
    c, k = str(pem_files[cert]), str(pem_files[key])
    err = refused(capsys, ["--cert", c, "--key", k], str(pem_files[named]),
                  reason.format(c=c, k=k))
    assert "[(" not in err, f"OpenSSL's raw error list leaked into the message:\n{err}"


@needs_openssl
@pytest.mark.parametrize("given", ["--cert", "--key"])
def test_cert_and_key_go_together(capsys: pytest.CaptureFixture[str],
                                  pem_files: dict[str, Path], given: str) -> None:
    path = pem_files["a.crt" if given == "--cert" else "a.key"]
    refused(capsys, [given, str(path)], "--cert and --key must be given together")


# --- timeouts --------------------------------------------------------------------------------


TIMEOUT_CASES = [(opt, value) for opt in ("--header-timeout", "--connect-timeout")
                 for value in ("nan", "inf", "-1", "0")]


@pytest.mark.parametrize(("option", "value"), TIMEOUT_CASES,
                         ids=[f"{o}={v}" for o, v in TIMEOUT_CASES])
def test_bad_timeouts_are_refused(capsys: pytest.CaptureFixture[str], option: str,
                                  value: str) -> None:
    field = option[2:].replace("-", "_")
    refused(capsys, [option, value], f"limit {field} must be a positive finite number")


@pytest.mark.skipif(not EDGERULES_BIN.exists(), reason="the edgerules script is not installed")
@pytest.mark.parametrize(("option", "value"),
                         [("--header-timeout", "nan"), ("--connect-timeout", "inf")])
def test_bad_timeouts_do_not_start_the_real_proxy(tmp_path: Path, option: str,
                                                  value: str) -> None:
    """The real binary (no stub): ``nan`` used to pass the check and start serving."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGERULES_")}
    try:
        proc = subprocess.run([str(EDGERULES_BIN), *proxy_argv(option, value)],
                              capture_output=True, text=True, timeout=20, cwd=tmp_path,
                              env=env)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
        pytest.fail(f"`edgerules proxy {option} {value}` started serving:\n{exc.stderr!r}")
    assert proc.returncode == 2, proc.stderr
    assert "listening on" not in proc.stderr and "Traceback" not in proc.stderr
    assert f"limit {option[2:].replace('-', '_')} must be a positive finite number" in (
        proc.stderr)


# --- --access-log and --list -----------------------------------------------------------------


def test_access_log_in_missing_directory(capsys: pytest.CaptureFixture[str]) -> None:
    # --access-log given twice: the last one wins over proxy_argv's "off"
    refused(capsys, ["--access-log", "/nonexistent/dir/log"],
            "cannot open access log /nonexistent/dir/log: No such file or directory")


def test_access_log_is_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    refused(capsys, ["--access-log", str(tmp_path)],
            f"cannot open access log {tmp_path}: Is a directory")


def test_list_without_rules_is_refused(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    office = tmp_path / "office.txt"
    office.write_text("# kind: ip\n10.0.0.1\n")
    admins = tmp_path / "admins.txt"
    admins.write_text("# kind: ip\n192.0.2.0/24\n")
    refused(capsys, ["--list", str(office)], f"--list {office} needs --rules")
    err = refused(capsys, ["--list", str(office), "--list", str(admins)], "needs --rules")
    assert str(office) in err and str(admins) in err, err


def test_missing_list_without_rules_names_the_file(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    refused(capsys, ["--list", str(tmp_path / "missing-lists.txt")], "missing-lists.txt")
