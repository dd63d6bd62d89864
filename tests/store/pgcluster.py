"""A throw-away PostgreSQL cluster for tests that stop and restart the server.

Built with the installed server binaries (``/usr/lib/postgresql/*/bin``): ``initdb`` in a
temporary directory, ``pg_ctl`` on a free loopback port. The machine's shared server is
never touched. PostgreSQL refuses to run as root, so when the tests run as root the
cluster belongs to the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, root: Path, bindir: Path, port: int, user: str | None) -> None:
        self.root, self.bindir, self.port, self.user = root, bindir, port, user
        self.data = root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, check=True)

    def start(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "server.log"), "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c full_page_writes=off", "start")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                  "stop")

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def dedicated_cluster() -> Iterator[Cluster]:
    """A running cluster of its own; stopped and deleted afterwards. Raises RuntimeError
    when the server binaries are not installed."""
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        pwd.getpwnam(user)  # KeyError: no such user
    root = Path(tempfile.mkdtemp(prefix="edgerules-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(root, bindir, _free_port(), user)
    try:
        cluster._run(str(bindir / "initdb"), "-D", str(cluster.data), "-U", "postgres",
                     "--auth=trust", "-E", "UTF8", "--no-sync", timeout=120)
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
