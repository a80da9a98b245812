"""Run the demo: a generated chat project on a throwaway PostgreSQL, no API key needed.

Creates the demo project with `django-ai-chat new` (into `./demo/` unless told otherwise, again
when the installed generator changed), starts a throwaway PostgreSQL from the machine's own
binaries (or uses `DATABASE_URL`), migrates, creates a demo user, and serves the chat with
`manage.py chat_dev` (web and job worker in one process). Without the provider's API key in the
environment the chat answers with the offline demo model (`demo:`). Ctrl-C stops everything and
removes the throwaway database.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from django_ai_chat import __version__
from django_ai_chat.cli.new import (
    PROJECT_TEMPLATE,
    NewProjectError,
    create_project,
    project_env,
)
from django_ai_chat.dev import devdb
from django_ai_chat.gen.errors import GeneratorError
from django_ai_chat.gen.options import PROVIDERS, clean_provider, default_model
from django_ai_chat.gen.options import add_arguments as add_chat_arguments

PROJECT_NAME = "chat_demo"
DEMO_EMAIL = "demo@example.com"
_STAMP = ".django-ai-chat-demo"
_READY_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0

# Run by `manage.py shell -c` in the demo project: (re)creates the demo user with the password
# given in the environment, so a reused database gets this run's password too.
_ENSURE_USER = (
    "import os\n"
    "from django.contrib.auth import get_user_model\n"
    "User = get_user_model()\n"
    "user = User.objects.filter(email=os.environ['DEMO_EMAIL']).first()\n"
    "user = user or User.objects.create_superuser(os.environ['DEMO_EMAIL'])\n"
    "user.set_password(os.environ['DEMO_PASSWORD'])\n"
    "user.save()\n"
)


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `demo` subcommand's arguments on `parser`."""
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("demo"),
        help="where the demo project lives (default: ./demo); created when missing",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port to serve on (default 8000; a free one when it is taken; 0: any free port)",
    )
    add_chat_arguments(
        parser,
        ("provider",),
        helps={
            "provider": "provider whose API key, when set, replaces the offline demo model "
            "(default: openai)"
        },
    )
    parser.add_argument(
        "--fresh", action="store_true", help="delete and recreate the demo project first"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C; returns the exit status."""
    try:
        return Demo(
            project_dir=args.dir.resolve(),
            host=args.host,
            port=args.port,
            provider=clean_provider(args.provider),
            fresh=args.fresh,
        ).run()
    except (DemoError, NewProjectError, GeneratorError, devdb.PostgresNotFound) as error:
        print(f"django-ai-chat demo: {error}", file=sys.stderr)
        return 2


@dataclass
class Demo:
    """One demo run: project, database, user, server."""

    project_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    provider: str = "openai"
    fresh: bool = False

    def run(self) -> int:
        """Prepare everything, serve until interrupted, clean up; returns the exit status."""
        try:
            with _stop_signals():
                self.ensure_project()
                with self.database() as (database_url, throwaway):
                    env = self.environment(database_url)
                    self.manage(["migrate", "--noinput"], env, step="Migrating the database")
                    password = secrets.token_urlsafe(9)
                    self.manage(
                        ["shell", "-c", _ENSURE_USER],
                        {**env, "DEMO_EMAIL": DEMO_EMAIL, "DEMO_PASSWORD": password},
                        step="Creating the demo user",
                    )
                    return self.serve(env, password, throwaway)
        except KeyboardInterrupt:
            print("\nInterrupted.", flush=True)
            return 130

    def ensure_project(self) -> None:
        """Create the demo project when missing or made by another version of the generator."""
        stamp = self.project_dir / _STAMP
        wanted = _generator_fingerprint(self.provider)
        if self.project_dir.exists():
            current = stamp.read_text().strip() if stamp.is_file() else None
            if not self.fresh and current == wanted:
                return
            if current is None and any(self.project_dir.iterdir()):
                raise DemoError(
                    f"{str(self.project_dir)!r} exists but was not made by the demo; move it "
                    "away or pass --dir to put the demo elsewhere."
                )
            reason = "--fresh" if self.fresh else "the generator changed"
            print(f"Recreating the demo project in {self.project_dir} ({reason})…", flush=True)
            shutil.rmtree(self.project_dir)
        else:
            print(f"Creating the demo project in {self.project_dir}…", flush=True)
        try:
            create_project(PROJECT_NAME, self.project_dir, provider=self.provider)
        except BaseException:
            shutil.rmtree(self.project_dir, ignore_errors=True)
            raise
        stamp.write_text(wanted + "\n")

    @contextlib.contextmanager
    def database(self) -> Iterator[tuple[str, devdb.ThrowawayPostgres | None]]:
        """`DATABASE_URL` when set, else a throwaway cluster removed on exit."""
        given = os.environ.get("DATABASE_URL")
        if given:
            print("Using the database in DATABASE_URL.", flush=True)
            yield given, None
            return
        print("Starting a throwaway PostgreSQL…", flush=True)
        cluster = devdb.start(PROJECT_NAME)
        try:
            yield cluster.url, cluster
        finally:
            cluster.stop()
            print(f"Removed the throwaway PostgreSQL ({cluster.data_dir.parent}).", flush=True)

    def environment(self, database_url: str) -> dict[str, str]:
        """The demo project's environment: database, debug, and the model."""
        env = project_env(self.project_dir, PROJECT_NAME)
        env["DATABASE_URL"] = database_url
        env.setdefault("DEBUG", "1")
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            # Served beyond loopback (e.g. --host 0.0.0.0 in a container): any Host header.
            env.setdefault("ALLOWED_HOSTS", "*")
        if not env.get("AI_CHAT_MODEL") and not self.api_key():
            env["AI_CHAT_MODEL"] = "demo:"
        return env

    def api_key(self) -> str | None:
        """The provider's API key from the environment, if any."""
        name = PROVIDERS[self.provider][0]
        return os.environ.get(name) if name else None

    def manage(self, args: list[str], env: dict[str, str], *, step: str) -> None:
        """Run `python manage.py <args>` in the project; its output is shown only on failure."""
        print(f"{step}…", flush=True)
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.project_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise DemoError(
                f"`manage.py {args[0]}` failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr).strip()}"
            )

    def serve(
        self, env: dict[str, str], password: str, throwaway: devdb.ThrowawayPostgres | None
    ) -> int:
        """Run `manage.py chat_dev` until it exits or the demo is interrupted."""
        port = _pick_port(self.host, self.port)
        # Its own session: Ctrl-C reaches only the demo, which then stops the server once.
        server = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "chat_dev",
                f"{self.host}:{port}",
                "--log-level",
                "warning",
            ],
            cwd=self.project_dir,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
            base = f"http://{shown_host}:{port}"
            _wait_until_ready(server, f"{base}/accounts/login/")
            print(self.banner(base, password, env, throwaway), flush=True)
            return server.wait()
        except KeyboardInterrupt:
            print("\nStopping…", flush=True)
            return 0
        finally:
            _stop(server)

    def banner(
        self,
        base: str,
        password: str,
        env: dict[str, str],
        throwaway: devdb.ThrowawayPostgres | None,
    ) -> str:
        """What the user needs: URL, credentials, model, database, how to stop."""
        model = env.get("AI_CHAT_MODEL") or default_model(self.provider)
        key_name = PROVIDERS[self.provider][0]
        if model.startswith("demo:"):
            model_line = (
                f"{model} (offline demo model; export {key_name}=… to use "
                f"{default_model(self.provider)})"
            )
        else:
            model_line = model
        database_line = (
            f"throwaway PostgreSQL in {throwaway.data_dir.parent} (removed on exit)"
            if throwaway
            else "DATABASE_URL"
        )
        return (
            "\n"
            "  django-ai-chat demo is running\n"
            f"    URL:       {base}/chat/\n"
            f"    Email:     {DEMO_EMAIL}\n"
            f"    Password:  {password}\n"
            f"    Model:     {model_line}\n"
            f"    Database:  {database_line}\n"
            f"    Project:   {self.project_dir}\n"
            "  Stop with Ctrl-C.\n"
        )


def _generator_fingerprint(provider: str) -> str:
    """Changes whenever the templates `new` and `gen_chat` render from change."""
    digest = hashlib.sha256(f"{__version__}:{provider}".encode())
    for root in (PROJECT_TEMPLATE, PROJECT_TEMPLATE.parent / "app_template"):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _pick_port(host: str, wanted: int) -> int:
    if wanted:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, wanted))
            except OSError:
                print(f"Port {wanted} is taken; using a free one.", flush=True)
            else:
                return wanted
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_ready(server: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DemoError(
                f"The server stopped during start-up (exit {server.returncode}); see its output "
                "above."
            )
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise DemoError(f"The server did not answer at {url} within {_READY_TIMEOUT:.0f} s.")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)
    try:
        server.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _die_with_parent() -> None:
    """In the server's process: get SIGINT when the demo dies, even by SIGKILL (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP stop the demo like Ctrl-C, so the database is removed.

    SIGINT too: a shell that starts the demo in the background leaves SIGINT ignored.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
