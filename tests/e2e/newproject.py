"""Helpers shared by the tests of `django-ai-chat new` and the demo (e2e and browser).

They drive the real entry points in subprocesses: the console script, the new project's
`manage.py`, its development server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from psycopg import sql


def cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run `django-ai-chat <args>` as a user would, with a clean Django environment."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "-m", "django_ai_chat.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def project_env(project: Path, **extra: str) -> dict[str, str]:
    """Environment for the new project's `manage.py` (its own settings module)."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = f"{project.name}.settings"
    env.update(extra)
    return env


def manage(
    project: Path, *args: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `python manage.py <args>` in `project`."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database in the cluster of `DATABASE_URL`; its URL. Dropped afterwards."""
    base = os.environ["DATABASE_URL"]
    name = f"newproj_{uuid.uuid4().hex[:10]}"
    admin = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    """Return once `url` answers (any status below 500); fail if `process` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode} before {url}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def dev_server(project: Path, env: dict[str, str]) -> Iterator[str]:
    """`manage.py chat_dev` (uvicorn + in-process worker) on a free port; yields its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "chat_dev", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=project,
        env=env,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/accounts/login/", server)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
