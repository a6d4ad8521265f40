"""A throwaway PostgreSQL server for the store tests: Debian's PostgreSQL binaries, a cluster in a temporary
folder on a free loopback port (run as the `postgres` user when we are root: the server refuses root), one fresh
database per test. `make test` installs the binaries when they are missing and it runs as root; without them the
PostgreSQL cases are skipped, unless REQUIRE_POSTGRES=1 (CI), which makes that an error."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps it out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def cluster():
    """Start a cluster; yields the admin URL (trust auth, loopback only); stopped and removed afterwards."""
    bin_dir = binaries()
    if bin_dir is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            raise RuntimeError("REQUIRE_POSTGRES=1 but PostgreSQL is not installed (apt-get install -y postgresql)")
        pytest.skip("PostgreSQL is not installed; `make test` installs it when run as root")
    root = Path(tempfile.mkdtemp(prefix="imglab-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    run = dict(check=True, capture_output=True, timeout=120)
    subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                                    "-D", str(data)]), **run)
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                                    "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                                          "-c max_connections=200", "start"]), **run)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str):
    """A new empty database on the cluster; yields its URL, dropped afterwards (connections closed first)."""
    import psycopg

    name = "imglab_" + uuid.uuid4().hex[:12]
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:  # FORCE ends the connections pooled by the app's engines
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
