"""edgerules proxy against nginx, side by side, under the same load (issue 14).

Both terminate TLS with the same ECDSA P-256 server certificate, ask for a client
certificate (nginx: ``ssl_verify_client optional`` against the managed CA; edgerules:
mTLS enabled on the host in its store, ``rules/mtls-required.json``), forward to the same
origin (a separate nginx instance answering a small JSON body) and answer 403 themselves
when there is no valid certificate. Session resumption and access logs are off on both;
one process each (nginx: ``worker_processes 1``). The load client is ``bench/loadclient.c``
(C, OpenSSL, one thread per connection), built here with gcc.

Scenarios (each run for ``--seconds``, edgerules and nginx alternating, ``--repeats``
times; the median is reported): keep-alive with a valid certificate at c=1/16/64, a new
handshake per request (valid certificate, c=16), blocked keep-alive (no certificate,
c=16), blocked with a new connection per request (c=16). Printed per scenario and server:
requests/s, p50/p99 latency and **server CPU per request** (user+system of the server
process(es) over the run / requests; "of it sys": the kernel's part, i.e. the socket
calls and the loopback TCP stack they run) — the headline: the machine is shared,
wall-clock figures are noisy. ``--memory-only``: only the idle-connection memory figure
(RSS growth per held keep-alive connection, in freshly started servers).

nginx is the Debian package: installed with apt-get when absent (skipped with a message
when that fails). ``.venv/bin/python bench/bench_proxy_load.py [--seconds 5 --repeats 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
RULES = ROOT / "rules" / "mtls-required.json"
HOST = "api.localhost"

SCENARIOS = [
    # name, mode, concurrency, client certificate?, expected status
    ("keep-alive c=1", "keepalive", 1, True, 200),
    ("keep-alive c=16", "keepalive", 16, True, 200),
    ("keep-alive c=64", "keepalive", 64, True, 200),
    ("new handshake c=16", "new", 16, True, 200),
    ("blocked keep-alive c=16", "keepalive", 16, False, 403),
    ("blocked new conn c=16", "new", 16, False, 403),
]


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of ``pids`` (system: the kernel's share, i.e. the
    socket calls and the loopback TCP stack they run)."""
    user = system = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
            system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return user, system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def ensure_nginx() -> str | None:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path:
        return path
    print("nginx is absent: installing the Debian package (apt-get install nginx) ...", flush=True)
    for cmd in (["apt-get", "install", "-y", "-qq", "nginx"], ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "nginx"]):
        subprocess.run(cmd, capture_output=True, timeout=600)
        path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if path:
            return path
    return None


def build_loadclient(tmp: Path) -> Path:
    out = tmp / "loadclient"
    subprocess.run(
        ["gcc", "-O2", "-pthread", str(BENCH / "loadclient.c"), "-o", str(out), "-lssl", "-lcrypto"],
        check=True, capture_output=True, timeout=120,
    )
    return out


def server_certificate(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp / "server.crt", tmp / "server.key"


NGINX_ORIGIN = """
worker_processes 1; daemon off; pid {tmp}/origin.pid; error_log stderr error;
events {{ worker_connections 4096; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{port} reuseport; keepalive_requests 1000000;
    location / {{ default_type application/json; return 200 '{{"origin":"nginx","ok":true}}'; }} }} }}
"""

NGINX_PROXY = """
worker_processes 1; daemon off; pid {tmp}/proxy.pid; error_log stderr error;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{ access_log off;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 32; }}
  server {{ listen 127.0.0.1:{port} ssl;
    server_name {host};
    ssl_certificate {cert}; ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off; ssl_session_tickets off;
    ssl_client_certificate {ca}; ssl_verify_client optional; ssl_verify_depth 2;
    keepalive_requests 1000;
    location / {{
      if ($ssl_client_verify != SUCCESS) {{ return 403 '{{"error":"client certificate required"}}'; }}
      proxy_pass http://origin; proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header Client-Cert $ssl_client_escaped_cert;
    }} }} }}
"""


class Servers:
    def __init__(self, tmp: Path, nginx: str | None) -> None:
        self.tmp = tmp
        self.nginx = nginx
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_nginx(self, template: str, name: str, **values: object) -> tuple[subprocess.Popen[bytes], int]:
        assert self.nginx
        port = free_port()
        conf = self.tmp / f"{name}.conf"
        conf.write_text(template.format(tmp=self.tmp, port=port, host=HOST, **values))
        proc = subprocess.Popen([self.nginx, "-c", str(conf), "-p", str(self.tmp)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        wait_port(port)
        return proc, port

    def start_edgerules(self, origin: int, cert: Path, key: Path, store: Path,
                        profile: str | None = None, loop: str = "auto") -> tuple[subprocess.Popen[bytes], int]:
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        proc = subprocess.Popen(
            [sys.executable, *prefix, "-m", "edgerules", "proxy", "--listen", "127.0.0.1:0",
             *(["--loop", loop] if loop != "auto" else []),
             "--upstream", f"http://127.0.0.1:{origin}", "--rules", str(RULES),
             "--store", str(store), "--cert", str(cert), "--key", str(key), "--access-log", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode()
            if "listening on" in line:
                return proc, int(line.split("127.0.0.1:", 1)[1].split()[0])
        raise RuntimeError("edgerules proxy did not start")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(10)
            if p.poll() is None:
                p.kill()


def worker_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The process and its children (nginx: master + worker)."""
    pids = [proc.pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{proc.pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{proc.pid}/task/{task}/children") as f:
                pids.extend(int(x) for x in f.read().split())
    return pids


def run_load(client: Path, port: int, seconds: float, mode: str, conc: int, cert: tuple[Path, Path] | None,
             expect: int, pids: list[int]) -> dict[str, float]:
    user0, sys0 = cpu_times(pids)
    out = subprocess.run(
        [str(client), "127.0.0.1", str(port), HOST, str(seconds), str(conc), mode,
         str(cert[0]) if cert else "-", str(cert[1]) if cert else "-", "/bench", str(expect)],
        capture_output=True, text=True, timeout=seconds + 120, check=True)
    user1, sys1 = cpu_times(pids)
    used, kernel = (user1 - user0) + (sys1 - sys0), sys1 - sys0
    result = json.loads(out.stdout)
    n = result["requests"]
    result["rps"] = n / result["seconds"] if result["seconds"] else 0.0
    result["cpu_ms"] = used * 1000 / n if n else float("nan")
    result["sys_ms"] = kernel * 1000 / n if n else float("nan")
    return result


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def idle_memory(port: int, pids: list[int], count: int, cert: tuple[Path, Path]) -> float:
    """RSS growth per idle keep-alive connection (KiB): ``count`` TLS connections with a
    client certificate, each after one answered request, held open."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    request = f"GET /bench HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()

    def one() -> ssl.SSLSocket:
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 10), server_hostname=HOST)
        sock.sendall(request)
        buf = b""
        while b"}" not in buf and b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        return sock

    for _ in range(20):
        one().close()  # warm-up: code paths, pools
    time.sleep(0.5)
    before = rss_kib(pids)
    socks = [one() for _ in range(count)]
    time.sleep(1.0)
    after = rss_kib(pids)
    for s in socks:
        s.close()
    return (after - before) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], help="scenario name prefix (repeatable)")
    parser.add_argument("--no-nginx", action="store_true", help="edgerules only (nginx still serves as the origin)")
    parser.add_argument("--profile", metavar="FILE", help="run edgerules under cProfile, stats to FILE")
    parser.add_argument("--idle", type=int, default=1000,
                        help="idle keep-alive connections for the memory figure (0: skip)")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the idle-connection memory figure (no load scenarios)")
    parser.add_argument("--compare-loops", action="store_true",
                        help="edgerules with asyncio's loop vs with uvloop (instead of nginx)")
    args = parser.parse_args(argv)
    from edgerules.store import open_store

    nginx = ensure_nginx()
    if nginx is None:
        print("SKIPPED: the Debian package nginx could not be installed (it is both the "
              "reference and the origin)")
        return 0
    with tempfile.TemporaryDirectory(prefix="edgerules-load-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "logs").mkdir()
        client = build_loadclient(tmp)
        cert, key = server_certificate(tmp)
        store_path = tmp / "store.db"
        store = open_store(str(store_path), create=True)
        issued = store.issue_certificate(common_name="load", validity_days=30)
        store.enable_hostnames([HOST])
        ca_pem = store.managed_ca(create=False).certificate  # type: ignore[union-attr]
        store.close()
        (tmp / "c.crt").write_text(issued.record.certificate)
        (tmp / "c.key").write_text(issued.private_key or "")
        (tmp / "ca.crt").write_text(ca_pem)
        client_cert = (tmp / "c.crt", tmp / "c.key")
        servers = Servers(tmp, nginx)
        try:
            _origin_proc, origin = servers.start_nginx(NGINX_ORIGIN, "origin")
            er_proc, er_port = servers.start_edgerules(origin, cert, key, store_path, args.profile)
            targets = {"edgerules": (er_port, worker_pids(er_proc))}
            if args.compare_loops:
                as_proc, as_port = servers.start_edgerules(origin, cert, key, store_path, loop="asyncio")
                targets = {"asyncio": (as_port, worker_pids(as_proc)), "uvloop": targets["edgerules"]}
            elif not args.no_nginx:
                ng_proc, ng_port = servers.start_nginx(
                    NGINX_PROXY, "proxy", origin=origin, cert=cert, key=key, ca=tmp / "ca.crt")
                targets["nginx"] = (ng_port, worker_pids(ng_proc))
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            scenarios = [s for s in SCENARIOS if not args.only or any(s[0].startswith(o) for o in args.only)]
            if args.memory_only:
                scenarios = []
            for rep in range(args.repeats):
                for name, mode, conc, with_cert, expect in scenarios:
                    order = list(targets) if rep % 2 == 0 else list(reversed(targets))
                    for server in order:
                        port, pids = targets[server]
                        r = run_load(client, port, args.seconds, mode, conc,
                                     client_cert if with_cert else None, expect, pids)
                        if r["errors"] or r["bad_status"]:
                            print(f"  {server} {name}: {r['errors']} errors, {r['bad_status']} wrong status")
                        results.setdefault((name, server), []).append(r)
            print(f"\n{dt.date.today()}  {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
                  f"{args.repeats} alternating runs of {args.seconds:g} s, medians\n")
            if scenarios:
                print(f"{'scenario':<24} {'server':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                      f"{'CPU ms/req':>11} {'of it sys':>10} {'CPU vs nginx':>12}")
            for name, *_ in scenarios:
                base = None
                for server in targets:
                    runs = results[(name, server)]
                    med = {k: statistics.median(r[k] for r in runs)
                           for k in ("rps", "p50_ms", "p99_ms", "cpu_ms", "sys_ms")}
                    if server == "nginx":
                        base = med["cpu_ms"]
                    results[(name, server + "#med")] = [med]
                for server in targets:
                    med = results[(name, server + "#med")][0]
                    ratio = f"{med['cpu_ms'] / base:.1f}x" if base and server != "nginx" else ""
                    print(f"{name:<24} {server:<10} {med['rps']:>8.0f} {med['p50_ms']:>8.2f} "
                          f"{med['p99_ms']:>8.2f} {med['cpu_ms']:>11.3f} {med['sys_ms']:>10.3f} {ratio:>12}")
            if args.idle:
                print()
                for server in targets:
                    port, pids = targets[server]
                    kib = idle_memory(port, pids, args.idle, client_cert)
                    print(f"memory: {server}: {kib:.1f} KiB RSS per idle keep-alive connection "
                          f"({args.idle} connections, each after one request)")
        finally:
            servers.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
