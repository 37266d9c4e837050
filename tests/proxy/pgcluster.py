"""A throwaway PostgreSQL server for the journal tests: `initdb` + `pg_ctl` on a temporary
directory and a free port (Debian's `postgresql` package; `.ci/run` and `make test` install it).

initdb refuses to run as root, and CI runs as root: the cluster then belongs to an unprivileged
user (`postgres` if the package made it, else `nobody`) and every server command runs as that
user via `runuser`. Without the binaries the fixture skips, saying which package to install.
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
from itertools import count
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, newest version first; None if not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb and shutil.which("pg_ctl") else None


class PgCluster:
    """One PostgreSQL server: start, stop (to simulate an outage), databases made on demand."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="reestr-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._names = count(1)
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "reestr", "-E", "UTF8", "--locale=C",
                  "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.dir)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr or result.stdout}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on "
                   "-c max_connections=60 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://reestr@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its DSN."""
        import psycopg

        name = f"journal_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]  # a name we made
        return self.dsn(name)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def make_cluster() -> PgCluster:
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found: install Debian's `postgresql` package "
                    "(`apt-get install -y postgresql`; `.ci/run` and `make test` do)")
    cluster = PgCluster(bindir)
    cluster.start()
    return cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole session."""
    cluster = make_cluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> str:
    """The DSN of a fresh database on the session's server."""
    return pg_cluster.new_database()
