"""A throwaway PostgreSQL cluster started from the machine's own binaries.

Used by the test suite, the demo and the benchmarks when `DATABASE_URL` is unset: `initdb` into a
temporary directory, `pg_ctl start` on a free loopback port, and remove everything on `stop()`.
Durability is switched off (`fsync=off`): the data is thrown away anyway. A small reaper process
watches the process that started the cluster and removes the cluster if that process dies
without calling `stop()` (killed test run, Ctrl-C in the wrong place), so no server outlives its
owner.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DURABILITY_OFF = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class PostgresNotFound(RuntimeError):
    """No `initdb`/`pg_ctl` on this machine."""


@dataclass
class ThrowawayPostgres:
    """A running throwaway cluster; `url` points at its database."""

    url: str
    data_dir: Path
    _bin_dir: Path
    _user: str | None
    _reaper: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def stop(self) -> None:
        """Stop the server and delete its files. Safe to call twice."""
        if self.data_dir.exists():
            _run(
                [self._bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "stop"],
                user=self._user,
                check=False,
            )
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            # Its watch is over. Ended and waited for here, not left to exit on its own: a child
            # nobody waits for stays a zombie, and its Popen a ResourceWarning when collected.
            reaper.kill()
            reaper.wait()

    def __enter__(self) -> ThrowawayPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_bin_dir() -> Path:
    """The directory holding `initdb` and `pg_ctl`, newest major version first."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in [*candidates, Path("/usr/local/pgsql/bin"), Path("/opt/homebrew/bin")]:
        if (candidate / "initdb").exists():
            return candidate
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them "
        "(Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`) "
        "or set DATABASE_URL to an existing PostgreSQL database."
    )


def start(database: str = "app", *, max_connections: int = 300) -> ThrowawayPostgres:
    """Start a throwaway cluster and create `database` in it.

    Args:
        database: Name of the database to create.
        max_connections: Server `max_connections`; benchmarks run hundreds of clients.

    Returns:
        The running cluster. Call `stop()` (or use it as a context manager) to remove it.
    """
    bin_dir = find_bin_dir()
    # initdb refuses to run as root: hand the cluster to the `postgres` system user then.
    user = "postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="ai-chat-pg-"))
    data_dir = base / "data"
    if user:
        shutil.chown(base, user=user)
    _run(
        [
            bin_dir / "initdb",
            "-D",
            data_dir,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        ],
        user=user,
    )
    port = _free_port()
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
        f"-c max_connections={max_connections} {_DURABILITY_OFF}"
    )
    _run(
        [
            bin_dir / "pg_ctl",
            "-D",
            data_dir,
            "-o",
            options,
            "-l",
            base / "server.log",
            "-w",
            "start",
        ],
        user=user,
    )
    cluster = ThrowawayPostgres(
        f"postgresql://postgres@127.0.0.1:{port}/{database}", data_dir, bin_dir, user
    )
    try:
        _create_database(f"postgresql://postgres@127.0.0.1:{port}/postgres", database)
    except BaseException:
        cluster.stop()
        raise
    _start_reaper(cluster)
    return cluster


def _start_reaper(cluster: ThrowawayPostgres) -> None:
    args = [str(os.getpid()), str(cluster.data_dir), str(cluster._bin_dir), cluster._user or ""]
    cluster._reaper = subprocess.Popen(
        [sys.executable, "-m", "django_ai_chat.dev.devdb", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C to the owner's process group must not reach it
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    # A zombie still answers kill(0): it is dead for our purpose.
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def _reap(owner: int, cluster: ThrowawayPostgres) -> None:
    while _alive(owner) and cluster.data_dir.exists():
        time.sleep(0.5)
    cluster.stop()


def _create_database(admin_url: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(args: list[Any], *, user: str | None, check: bool = True) -> None:
    result = subprocess.run(
        [str(a) for a in args], user=user, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{Path(str(args[0])).name} failed: {result.stderr.strip()}")


if __name__ == "__main__":
    _pid, _data_dir, _bin, _user_name = sys.argv[1:5]
    _reap(int(_pid), ThrowawayPostgres("", Path(_data_dir), Path(_bin), _user_name or None))
