"""The generated project under test: `django-admin startproject` + `django-ai-chat gen --live`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
SEED = Path(__file__).with_name("seed.py")

SETTINGS_TAIL = """

# --- django-ai-chat bench (appended by bench/project.py) ---
import os  # noqa: E402

import dj_database_url  # noqa: E402

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DEBUG = False
# Sign-in is set-up, not measured: PBKDF2 for hundreds of users would dominate the run.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Production settings as the README's "Deployment" section recommends: psycopg's pool, so that
# requests, streams and jobs do not each open a PostgreSQL connection (`--patch no-db-pool`: off).
if not os.environ.get("BENCH_NO_DB_POOL"):
    DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 2, "max_size": 20, "timeout": 10}}
AI_CHAT_MODEL = os.environ.get("AI_CHAT_MODEL") or None
AI_CHAT_OPENAI_BASE_URL = os.environ.get("AI_CHAT_OPENAI_BASE_URL") or None
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
"""


def run(
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    ok: tuple[int, ...] = (0,),
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode not in ok:
        raise RuntimeError(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


def timed(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> float:
    start = time.perf_counter()
    run(args, cwd=cwd, env=env, timeout=timeout, ok=(0, 1, 2))
    return time.perf_counter() - start


class Project:
    """A fresh project in `root` using the database at `database_url`."""

    name = "benchproj"

    def __init__(self, root: Path, database_url: str, app: str = "chat") -> None:
        self.root = root
        self.dir = root / self.name
        self.app = app
        self.env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        self.env |= {
            "DATABASE_URL": database_url,
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def manage_env(self) -> dict[str, str]:
        return self.env | {"DJANGO_SETTINGS_MODULE": f"{self.name}.settings"}

    def create(self) -> dict[str, Any]:
        """startproject, point it at Postgres, then time the generator; returns the timings."""
        run(
            [str(BIN / "django-admin"), "startproject", self.name],
            cwd=self.root,
            env=self.env,
            timeout=60,
        )
        settings = self.dir / self.name / "settings.py"
        settings.write_text(settings.read_text() + SETTINGS_TAIL)
        gen = [str(BIN / "django-ai-chat"), "gen"]
        timings: dict[str, Any] = {}
        timings["dry_run_s"] = [
            timed([*gen, "--live", "--dry-run"], cwd=self.dir, env=self.env, timeout=120)
            for _ in range(3)
        ]
        timings["gen_yes_s"] = timed(
            [*gen, "--yes", "--live"], cwd=self.dir, env=self.env, timeout=180
        )
        timings["dry_run_in_sync_s"] = timed(
            [*gen, "--live", "--dry-run"], cwd=self.dir, env=self.env, timeout=120
        )
        check = run(
            [*gen, "--live", "--check"], cwd=self.dir, env=self.env, timeout=120, ok=(0, 1, 2)
        )
        timings["check_exit"] = check.returncode
        return timings

    def set_worker_concurrency(self, concurrency: int) -> bool:
        """Raise the generated worker's answer concurrency (`QUEUE_CONCURRENCY` in jobs.py)."""
        jobs = self.dir / self.app / "jobs.py"
        text = jobs.read_text()
        new, count = re.subn(
            r"""((?:RESPONSES_QUEUE|["']chat_responses["']):\s*)\d+""",
            rf"\g<1>{concurrency}",
            text,
            count=1,
        )
        jobs.write_text(new)
        return count == 1

    def set_constant(self, module: str, name: str, value: str) -> bool:
        """Set a module-level constant of the generated app (e.g. views.STREAM_COALESCE)."""
        path = self.dir / self.app / module
        text = path.read_text()
        new, count = re.subn(rf"(?m)^{name} = .*$", f"{name} = {value}", text, count=1)
        path.write_text(new)
        return count == 1

    def constants(self) -> dict[str, str]:
        """The tuning constants of the generated app as generated (or patched)."""
        found = {}
        for module, name in (
            ("views.py", "STREAM_COALESCE"),
            ("views.py", "HISTORY_LIMIT"),
            ("jobs.py", "QUEUE_CONCURRENCY"),
            ("responder.py", "history_limit"),  # a class attribute of ChatResponder
        ):
            path = self.dir / self.app / module
            text = path.read_text() if path.exists() else ""
            match = re.search(rf"(?m)^(?:    )?{name} = (.*)$", text)
            found[f"{module}:{name}"] = match.group(1) if match else "absent"
        return found

    def worker_command(self, concurrency: int) -> list[str]:
        command = self.dir / self.app / "management" / "commands" / f"{self.app}_worker.py"
        if command.exists():
            return [sys.executable, "manage.py", f"{self.app}_worker"]
        # Until the generated worker command lands: procrastinate's own, same queues.
        return [
            sys.executable,
            "manage.py",
            "procrastinate",
            "worker",
            "--queues",
            "chat_responses,conversations",
            "--concurrency",
            str(concurrency),
        ]

    def manage(self, *args: str, timeout: float = 300) -> str:
        return run(
            [sys.executable, "manage.py", *args], cwd=self.dir, env=self.manage_env, timeout=timeout
        ).stdout

    def seed(self, *args: str, timeout: float = 300) -> dict[str, Any]:
        out = run(
            [sys.executable, str(SEED), *args], cwd=self.dir, env=self.manage_env, timeout=timeout
        )
        for line in out.stdout.splitlines():
            if line.startswith("BENCH-JSON "):
                result: dict[str, Any] = json.loads(line.removeprefix("BENCH-JSON "))
                return result
        raise RuntimeError(f"seed {args} printed no result:\n{out.stdout}\n{out.stderr}")
