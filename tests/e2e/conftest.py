"""`generated_project`: a fresh `startproject` with the chat generated into it, on its own database.

Session-scoped and shared by the e2e, worker and browser tests: generating and migrating takes
seconds, so it happens once. Tests must not edit the project's files; they may write rows.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

OPTIONS = ("--live", "--live-component", "--extend", "admin")
"""What `generated_project` passes to `django-ai-chat gen` (besides `--yes`)."""

BIN = Path(sys.executable).parent
LINT_CONFIG = Path(__file__).parent.parent / "golden" / "lint-generated.toml"


@dataclass
class GeneratedProject:
    """A generated project in a temporary directory and the environment to run it."""

    path: Path
    """Directory holding `manage.py`."""
    app_label: str
    """The generated app (`chat`)."""
    options: tuple[str, ...]
    """Options the generator ran with (besides `--yes`)."""
    database_url: str
    """The project's own database in the throwaway cluster."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment for subprocesses: `DATABASE_URL` set, no `DJANGO_SETTINGS_MODULE`."""

    def run(
        self, *args: str | Path, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the project directory with the project's environment."""
        done = subprocess.run(
            [str(a) for a in args],
            cwd=self.path,
            env={**self.env, **kwargs.pop("env", {})},
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def manage(
        self, *args: str, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """`python manage.py <args>`; fails the test on a non-zero exit unless `check=False`."""
        return self.run(sys.executable, "manage.py", *args, check=check, **kwargs)

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start `python manage.py <args>` in the background (a worker, a server)."""
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=self.path,
            env={**self.env, **kwargs.pop("env", {})},
            text=True,
            **kwargs,
        )

    def gen(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`django-ai-chat gen <args>` in the project, as a user runs it."""
        return self.run(BIN / "django-ai-chat", "gen", *args, check=check)


def _database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _use_database_url(settings: Path) -> None:
    """Point the stock settings at `DATABASE_URL` (the generated chat needs PostgreSQL)."""
    text = settings.read_text()
    text, found = re.subn(
        r"DATABASES = \{\n.*?\n\}\n",
        "DATABASES = {'default': dj_database_url.config(conn_max_age=0)}\n",
        text,
        flags=re.S,
    )
    assert found == 1, "startproject's DATABASES block changed shape"
    settings.write_text(
        text.replace(
            "from pathlib import Path\n", "from pathlib import Path\n\nimport dj_database_url\n", 1
        )
    )


@pytest.fixture(scope="session")
def generated_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeneratedProject]:
    """`startproject mysite`, `django-ai-chat gen --yes <OPTIONS>`, `migrate`."""
    admin_url = os.environ["DATABASE_URL"]
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    root = tmp_path_factory.mktemp("e2e") / "project"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=_database(admin_url, name), PYTHONDONTWRITEBYTECODE="1")
    project = GeneratedProject(root, "chat", OPTIONS, env["DATABASE_URL"], env)
    try:
        project.run(BIN / "django-admin", "startproject", "mysite", ".")
        _use_database_url(root / "mysite" / "settings.py")
        project.gen("--yes", *OPTIONS)
        project.manage("makemigrations", "--check", "--dry-run")
        project.manage("migrate", "--no-input")
        yield project
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # ResourceWarning is an error in the runtime and generator suites. Here, tests drive real
    # servers through Playwright, httpx and subprocesses, and some client sockets of those are
    # still collected unclosed (issue 13 left this part open): ignored in this folder only,
    # until each is closed where it is opened.
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::ResourceWarning"))
            item.add_marker(
                pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
            )


@pytest.fixture(autouse=True)
def _collect_leaks_here() -> Iterator[None]:
    # Random order puts runtime tests (where ResourceWarning is an error) after these: what one
    # of these leaves unclosed is collected now, under this folder's filter, not in a later test.
    yield
    gc.collect()
