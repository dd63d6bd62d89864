"""Issue 9 item 2 (the proxy's side): no client can stall the proxy with crafted
certificates.

Attack (reproduced on the old code): a chain of RSA "intermediates" with ~3070-bit
public exponents costs a tenth of a second or more of CPU per handshake, and the
validator ran synchronously on the event loop: while it ran, no other client was
served (normal clients went from 3 ms to hundreds of milliseconds); a validation that
never finishes would stop the proxy for good.

Guarantee: validation runs in worker threads, never on the event loop; each connection
has a validation time budget (``--validation-budget``), after which its certificate is
treated as not verified with the reason ``certificate validation timed out``. (How
cheap a crafted chain is to refuse is the validator's part: key-size caps, memoised
signature checks, a signature budget.)

And before any of that, in the handshake: OpenSSL checks one signature with a presented
key whatever our verify callback answers (the leaf's signature with the first
intermediate's key; the client's CertificateVerify with the leaf's), so a certificate
whose key edgerules refuses to verify with (an RSA exponent over 2^32-1, …) fails the
handshake instead of costing the event loop milliseconds.

The first two tests make a validation *never finish* (the validator waits on an event
the test controls) to show, without any timing assumption, that (a) other clients are
served meanwhile and (b) the budget ends it; the others send real crafted chains
(``bench/attack_chains.py``) from attacker threads through the ``edgerules proxy`` CLI
while a normal client keeps being served: chains with refused keys are refused in the
handshake, chains at the caps are validated off the loop and blocked by the rule. Real
TLS, Python ``ssl`` and ``http.client``."""

from __future__ import annotations

import contextlib
import http.client
import ssl
import sys
import threading

import pytest
from proxy_attack_helpers import (
    HOST,
    ROOT,
    RULES,
    cli_proxy,
    deployment,
    echo_origin,
    read_response,
    tls_client,
)

from edgerules.enforcement.decision import RulesetDecider
from edgerules.proxy.accesslog import AccessLog
from edgerules.proxy.config import Limits, ProxyConfig
from edgerules.proxy.server import ProxyServer, ServerThread
from edgerules.rulesets import Ruleset
from edgerules.store import open_store

sys.path.insert(0, str(ROOT / "bench"))
from attack_chains import expensive_chain, write_chain


class StuckOnAttacker:
    """The store's validator, except that validating the attacker's chain waits until
    ``release`` is set: a validation that takes as long as the test wants."""

    def __init__(self, inner, attacker_leaf: bytes, release: threading.Event) -> None:
        self.inner = inner
        self.attacker_leaf = attacker_leaf
        self.release = release
        self.entered = threading.Event()

    def validate(self, chain, *, hostname=None, now=None):
        if chain and chain[0] == self.attacker_leaf:
            self.entered.set()
            self.release.wait(60)
        return self.inner.validate(chain, hostname=hostname)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sec92")
    dep = deployment(tmp)
    # at the caps: accepted by the handshake, so a validation starts
    chain = expensive_chain(9, exponent_bits=32)
    files = write_chain(chain, tmp)
    with echo_origin() as (origin, _echo):
        yield dep, chain, files, origin


@contextlib.contextmanager
def stuck_proxy(env, budget: float):
    dep, chain, _files, origin = env
    store = open_store(str(dep.store), read_only=True)
    release = threading.Event()
    wrappers: dict[int, StuckOnAttacker] = {}

    def lookup(sni):
        inner = store.validator_for_hostname(sni)
        if inner is None:
            return None
        if id(inner) not in wrappers:  # one wrapper per store validator (trust version)
            wrappers[id(inner)] = StuckOnAttacker(inner, chain.ders[0], release)
        return wrappers[id(inner)]

    log = AccessLog(None)
    log.records = []
    server = ProxyServer(
        ProxyConfig(
            upstream=f"http://127.0.0.1:{origin.port}",
            listen_port=0,
            limits=Limits(validation_budget=budget),
        ),
        RulesetDecider(Ruleset.load(RULES)),
        store=store,
        mtls_lookup=lookup,
        access_log=log,
    )
    thread = ServerThread(server).start()
    try:
        yield thread.port, wrappers, log.records, release
    finally:
        release.set()  # never leave a worker (or, on the old code, the loop) waiting
        thread.stop(3.0)
        store.close()


def attacker_request(port, files):
    cert, key = files
    with tls_client(port, cert=cert, key=key) as sock:
        sock.sendall(f"GET /attack HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        return read_response(sock)[0]


def test_other_clients_are_served_while_a_validation_hangs(env):
    dep, _chain, files, _origin = env
    with stuck_proxy(env, budget=30.0) as (port, wrappers, _records, release), \
            concurrent_call(attacker_request, port, files) as attack:
        assert wait_for(lambda: any(w.entered.is_set() for w in wrappers.values()))
        # the attacker's validation is in progress and will not finish by itself
        with tls_client(port, cert=dep.cert, key=dep.key, timeout=10) as sock:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.sock = sock
            for i in range(5):
                conn.request("GET", f"/normal{i}", headers={"Host": HOST})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
        assert not attack.done()  # still waiting for its verdict
        release.set()
        assert attack.result(10) == 403  # the chain did not verify


def test_a_validation_over_budget_is_not_verified(env):
    _dep, _chain, files, _origin = env
    with stuck_proxy(env, budget=0.5) as (port, _wrappers, records, _release):
        assert attacker_request(port, files) == 403
        # the log record is written just after the response
        assert wait_for(lambda: any(r["path"] == "/attack" for r in records))
        record = next(r for r in records if r["path"] == "/attack")
        assert record["cert_presented"] is True
        assert record["cert_verified"] is False
        assert record["cert_status"] == "FAILED:certificate validation timed out"


def attacker_outcome(port, files):
    """The attacker's answer: an HTTP status, or "refused" when the handshake failed."""
    try:
        return attacker_request(port, files)
    except (ssl.SSLError, ConnectionError):
        return "refused"


@pytest.mark.parametrize(
    ("exponent_bits", "expected"),
    [(3070, "refused"), (32, 403)],
    ids=["refused-keys-fail-the-handshake", "keys-at-the-caps-are-validated-and-blocked"],
)
def test_real_crafted_chains_do_not_stop_normal_clients(env, tmp_path, exponent_bits, expected):
    dep, _chain, _files, origin = env
    attackers_files = [
        write_chain(expensive_chain(9, tag=f"a{i}", exponent_bits=exponent_bits), tmp_path, f"a{i}")
        for i in range(2)
    ]
    with cli_proxy(
        "--upstream", f"http://127.0.0.1:{origin.port}",
        "--rules", str(RULES), "--store", str(dep.store), "--access-log", "off",
    ) as (proc, port):
        stop = threading.Event()
        attacked: list[int | str] = []

        def attack(files):
            while not stop.is_set():
                attacked.append(attacker_outcome(port, files))

        threads = [threading.Thread(target=attack, args=(f,)) for f in attackers_files]
        for t in threads:
            t.start()
        try:
            with tls_client(port, cert=dep.cert, key=dep.key) as sock:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.sock = sock
                for i in range(30):
                    conn.request("GET", f"/normal{i}", headers={"Host": HOST})
                    resp = conn.getresponse()
                    resp.read()
                    assert resp.status == 200
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert attacked and set(attacked) == {expected}
        proc.terminate()
        assert proc.wait(10) == 0


def test_a_refused_key_fails_the_handshake_and_says_why(env, tmp_path):
    dep, _chain, _files, origin = env
    files = write_chain(expensive_chain(2, tag="why"), tmp_path, "why")
    with cli_proxy(
        "--upstream", f"http://127.0.0.1:{origin.port}",
        "--rules", str(RULES), "--store", str(dep.store), "--access-log", "off",
        "--log-level", "info",
    ) as (proc, port):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            attacker_request(port, files)
        # the proxy keeps serving: a valid client right after gets its 200
        with tls_client(port, cert=dep.cert, key=dep.key) as sock:
            sock.sendall(f"GET /after HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            assert read_response(sock)[0] == 200
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert "refused a certificate at depth 1: RSA public exponent of 3070 bits" in err


# -- small helpers ----------------------------------------------------------------------
@contextlib.contextmanager
def concurrent_call(fn, *args):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        yield pool.submit(fn, *args)


def wait_for(predicate, timeout=30.0):
    from proxy_attack_helpers import wait_until

    return wait_until(predicate, timeout)
