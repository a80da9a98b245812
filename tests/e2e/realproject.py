"""Projects shaped like the ones people have, the chat generated into them, run for real.

`RealProject.make(shape, …)` copies the layers of a `Shape` (our own files under `projects/`)
into a temporary directory with a database of its own, runs the project's own tests once
(the baseline), then generates the chat as a user would: `django-ai-chat gen --live --yes`,
then every manual step the notices print, pasted as written (`paste_notices`). The tests then
call its public entry points: `manage.py`, the project's test runner, `gen --check`, uvicorn
and the generated worker, with `AI_CHAT_MODEL = "demo:instant"` set in a settings module
outside the project (`from <the active settings> import *`), so its files stay the user's.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.e2e.conftest import BIN
from tests.e2e.newproject import free_port, wait_for_http

PROJECTS = Path(__file__).parent / "projects"
APP = "chat"
"""The generated app (`gen`'s default `--domain`)."""
ROUTE = "/chat/"
PASSWORD = "a-long-test-password-42"
WAIT = 90.0
"""Upper bound for a process or an answer; never a speed assertion."""
OVERLAY = "ai_chat_e2e_settings"
MIGRATE = ("migrate", "--no-input")
MAKEMIGRATIONS = ("makemigrations", "--check", "--dry-run")
"""The settings module (outside the project) that servers and workers run with."""

Outcome = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class Shape:
    """A project layout: layers of files under `projects/` and what the project says of itself."""

    name: str
    layers: tuple[tuple[str, str], ...]
    """`(directory under projects/, destination in the project)`, later layers win."""
    settings: str
    """The settings module `manage.py` selects (its `setdefault`)."""
    urls_file: str
    """The root URLconf's file: where a notice's "in your root URLconf" goes."""
    runner: Literal["pytest", "django"]
    """How the project runs its tests: `pytest` (pytest-django, its config) or `manage.py test`."""
    options: tuple[str, ...] = ("--live",)
    """What `gen` is run with, besides `--yes`."""
    steps: frozenset[str] | None = None
    """The tests (names without `test_`) this shape runs; `None`: all of them."""
    remove: tuple[str, ...] = ()
    """Files of the layers the project does not have."""
    edits: tuple[tuple[str, str, str], ...] = ()
    """`(file, old, new)` replacements applied after the layers (each must match once)."""
    xfail: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    """Test name (without `test_`) → why it fails today (an issue 17 item)."""
    render: Callable[[Path], Path] | None = None
    """Makes the project's files under a work directory (a template), before the layers."""
    skip: str | None = None
    """Why the shape cannot run here (e.g. an opt-in template that is not there)."""


@dataclass
class Suite:
    """One run of the project's test suite: each test's outcome, by id."""

    done: subprocess.CompletedProcess[str]
    outcomes: dict[str, Outcome]

    def of(self, generated: bool) -> dict[str, Outcome]:
        """The generated app's tests (`True`) or the project's own (`False`)."""
        return {k: v for k, v in self.outcomes.items() if _is_generated(k) == generated}

    @property
    def output(self) -> str:
        """What the runner printed (stdout + stderr), for failure messages."""
        return self.done.stdout + self.done.stderr


def _is_generated(test_id: str) -> bool:
    return re.search(rf"(^|[./]){APP}[./]tests([./]|$)", test_id) is not None


@dataclass
class Notices:
    """The notices of a `gen` run, as a user reads them."""

    pasted: list[str] = field(default_factory=list)
    """Notices whose lines were pasted where they say."""
    commands: list[list[str]] = field(default_factory=list)
    """`python manage.py …` lines of "Next steps" that change the project (makemigrations)."""
    unclear: list[str] = field(default_factory=list)
    """Notices with code to paste that do not say where it goes."""


@dataclass
class RealProject:
    """A project of one `Shape` in a temporary directory, with its own database."""

    shape: Shape
    path: Path
    env: dict[str, str]
    database_url: str
    work: Path
    """Outside the project: logs, junit files, the overlay settings module."""
    baseline: Suite | None = None
    generated: subprocess.CompletedProcess[str] | None = None
    notices: Notices = field(default_factory=Notices)
    _steps: dict[str, Any] = field(default_factory=dict)
    _futures: dict[str, Future[Any]] = field(default_factory=dict)
    _processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"RealProject({self.shape.name!r}, {str(self.path)!r})"

    def require_generated(self) -> None:
        """Fail the test unless `gen` completed (the later steps mean nothing otherwise)."""
        assert self.generated is not None
        if self.generated.returncode != 0:
            pytest.fail(
                f"`django-ai-chat gen --live --yes` exited {self.generated.returncode}:\n"
                f"{_tail(self.generated)}"
            )

    # -- running commands -------------------------------------------------------------------

    def run(
        self, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the project directory with the project's environment."""
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def manage(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """`python manage.py <args>` with the project's own settings."""
        return self.run(sys.executable, "manage.py", *args, **kwargs)

    def gen(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`django-ai-chat gen <args>`, as a user runs it in the project."""
        return self.run(BIN / "django-ai-chat", "gen", *args)

    def once(self, name: str, step: Callable[[], Any]) -> Any:
        """Run `step()` the first time `name` is asked for; the same result afterwards.

        A step started ahead (`prefetch`) is waited for. A step that failed the test fails
        every later test that asks for it, with its message.
        """
        if name not in self._steps:
            future = self._futures.get(name)
            try:
                self._steps[name] = future.result() if future else step()
            except pytest.fail.Exception as failure:
                self._steps[name] = failure
        result = self._steps[name]
        if isinstance(result, pytest.fail.Exception):
            pytest.fail(f"(step {name!r}) {result.msg}")
        return result

    def require(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`manage.py <args>` once, after `gen`; fails the calling test when either failed."""
        self.require_generated()
        done: subprocess.CompletedProcess[str] = self.once(name, lambda: self.manage(*args))
        assert isinstance(done, subprocess.CompletedProcess), done
        if done.returncode != 0:
            pytest.fail(f"`manage.py {' '.join(args)}` exited {done.returncode}:\n{_tail(done)}")
        return done

    def migrated(self) -> None:
        """The database migrated (once), or the test fails."""
        self.require("migrate", *MIGRATE)

    def gen_check(self) -> subprocess.CompletedProcess[str]:
        """`gen --check` with the options of the run (once)."""
        done: subprocess.CompletedProcess[str] = self.once(
            "gen --check", lambda: self.gen("--check", *self.shape.options)
        )
        return done

    def suite_after(self) -> Suite:
        """The project's suite after the generation (once)."""
        suite: Suite = self.once("after", lambda: self.suite("after"))
        return suite

    def prefetch(self, pool: ThreadPoolExecutor) -> None:
        """Start the independent steps at once: they only read the project's files.

        The tests wait for the one they look at (`once`); on two busy cores this keeps both
        working while one process waits for Postgres or imports.
        """
        steps: tuple[tuple[str, tuple[str, ...], Callable[[], Any]], ...] = (
            ("migrate", ("migrate", "serves", "answers"), lambda: self.manage(*MIGRATE)),
            ("after", ("generated_tests", "own_tests"), lambda: self.suite("after")),
            ("check", ("check",), lambda: self.manage("check")),
            ("makemigrations", ("migrations",), lambda: self.manage(*MAKEMIGRATIONS)),
            ("gen --check", ("gen_check",), lambda: self.gen("--check", *self.shape.options)),
        )
        wanted = self.shape.steps
        for name, tests, step in steps:
            if wanted is None or wanted.intersection(tests):
                self._futures[name] = pool.submit(step)

    def suite(self, name: str) -> Suite:
        """Run the project's whole test suite with its own runner and settings."""
        if self.shape.runner == "pytest":
            junit = self.work / f"{name}.xml"
            done = self.run(
                sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                f"--junitxml={junit}",
            )  # fmt: skip
            outcomes = _junit_outcomes(junit) if junit.is_file() else {}
        else:
            done = self.manage("test", "--no-input", "-v", "2")
            outcomes = _unittest_outcomes(done.stderr)
        # Kept for a look after the run (a failure message shows only its end).
        (self.work / f"{name}.out").write_text(done.stdout + done.stderr)
        return Suite(done, outcomes)

    # -- the site: uvicorn + the worker ------------------------------------------------------

    def site(self) -> Site:
        """uvicorn serving the project's `ASGI_APPLICATION`, the generated worker, a user."""
        return self.once("site", self._start_site)  # type: ignore[no-any-return]

    def _start_site(self) -> Site:
        self.migrated()  # after `gen`
        env = self._overlay_env()
        worker = self._popen("worker", [sys.executable, "manage.py", f"{APP}_worker"], env)
        info = self._shell(env, _SITE_INFO)
        module, _, attribute = info["asgi"].rpartition(".")
        app_dir = next(
            (d for d in (self.path, self.path / "src") if _module_path(d, module).is_file()),
            None,
        )
        if app_dir is None:
            pytest.fail(f"ASGI_APPLICATION {info['asgi']!r}: no such module in the project")
        port = free_port()
        server = self._popen(
            "uvicorn",
            [sys.executable, "-m", "uvicorn", f"{module}:{attribute}", "--app-dir", str(app_dir),
             "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
            env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}{ROUTE}", server, timeout=WAIT)
        return Site(self, base, info["login"], info["username"], server, worker)

    def _overlay_env(self) -> dict[str, str]:
        overlay = self.work / "overlay"
        overlay.mkdir(exist_ok=True)
        (overlay / f"{OVERLAY}.py").write_text(
            f'from {self.shape.settings} import *  # noqa: F403\n\nAI_CHAT_MODEL = "demo:instant"\n'
        )
        return {"DJANGO_SETTINGS_MODULE": OVERLAY, "PYTHONPATH": str(overlay)}

    def _shell(self, env: dict[str, str], code: str) -> dict[str, Any]:
        done = self.manage("shell", "-c", code, env=env)
        if done.returncode != 0:
            pytest.fail(f"`manage.py shell` exited {done.returncode}:\n{_tail(done)}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def _popen(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        with (self.work / f"{name}.log").open("w") as log:  # the child keeps its own copy
            process = subprocess.Popen(
                args,
                cwd=self.path,
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self._processes.append(process)
        return process

    def logs(self) -> str:
        """The server's and the worker's output so far."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.work.glob("*.log"))
        )

    def stop(self) -> None:
        """Stop the processes this project started (SIGTERM, then SIGKILL)."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    # -- making one ------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def make(cls, shape: Shape, tmp: Path, admin_url: str, env: dict[str, str]) -> Iterator[Any]:
        """Copy the shape, create its database, run its tests, generate and paste the notices."""
        name = f"real_{shape.name}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        work = tmp / "work"
        work.mkdir()
        project = cls(shape, tmp / shape.name, {**env, "DATABASE_URL": url}, url, work)
        pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix=f"e2e-{shape.name}")
        try:
            project._lay_out()
            project.baseline = project.suite("before")
            project.generated = project.gen(*shape.options, "--yes")
            if project.generated.returncode == 0:
                project.notices = paste_notices(project, project.generated.stdout)
                for command in project.notices.commands:
                    project.once(" ".join(command), lambda c=command: project.manage(*c))
                project.prefetch(pool)
            yield project
        finally:
            pool.shutdown(cancel_futures=True)
            project.stop()
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
                # The test runner's own database, left behind if a run was killed.
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(f"test_{name}")
                    )
                )

    def _lay_out(self) -> None:
        if self.shape.render is not None:
            shutil.copytree(self.shape.render(self.work), self.path)
        for layer, destination in self.shape.layers:
            shutil.copytree(
                PROJECTS / layer,
                self.path / destination,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        for name in self.shape.remove:
            (self.path / name).unlink()
        for name, old, new in self.shape.edits:
            file = self.path / name
            text = file.read_text()
            assert text.count(old) == 1, f"{name}: {old!r} is not in it exactly once"
            file.write_text(text.replace(old, new))


@dataclass
class Site:
    """The running project: a signed-in browser-like client, the live stream, the worker."""

    project: RealProject
    base_url: str
    login_url: str
    username: str
    server: subprocess.Popen[str]
    worker: subprocess.Popen[str]

    def client(self) -> httpx.Client:
        """An HTTP client on the site (no redirects followed: the tests look at them)."""
        return httpx.Client(base_url=self.base_url, timeout=WAIT)

    def sign_in(self, client: httpx.Client) -> None:
        """Sign in through the project's login page, as a person would."""
        page = client.get(self.login_url)
        assert page.status_code == 200, f"{self.login_url}: {page.status_code}"
        form = {
            "csrfmiddlewaretoken": _csrf(page.text),
            _login_field(page.text): self.username,
            "password": PASSWORD,
            "next": ROUTE,
        }
        done = client.post(self.login_url, data=form)
        assert done.status_code == 302, (done.status_code, done.text[-2000:])
        assert done.headers["location"] == ROUTE, done.headers["location"]

    def send(self, client: httpx.Client, text: str, conversation: str | None = None) -> str:
        """Post a message from the chat page's form; returns the conversation's id."""
        page = client.get(f"{ROUTE}{conversation}/" if conversation else ROUTE)
        assert page.status_code == 200, (page.status_code, page.text[-2000:])
        action = f"{ROUTE}{conversation}/send/" if conversation else f"{ROUTE}send/"
        done = client.post(action, data={"csrfmiddlewaretoken": _csrf(page.text), "text": text})
        assert done.status_code == 302, f"{action}: {done.status_code}\n{self.project.logs()}"
        match = re.fullmatch(rf"{ROUTE}([0-9a-f-]{{36}})/", done.headers["location"])
        assert match, done.headers["location"]
        return match[1]

    @contextlib.contextmanager
    def stream(self, client: httpx.Client, conversation: str) -> Iterator[Events]:
        """The conversation's live SSE stream, read on a thread while the test goes on."""
        events = Events(self)
        url = f"{self.base_url}{ROUTE}{conversation}/stream/"
        headers = {"Accept": "text/event-stream"}
        with (
            httpx.Client(cookies=client.cookies, timeout=WAIT) as streaming,
            streaming.stream("GET", url, headers=headers) as response,
        ):
            assert response.status_code == 200, response.status_code
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = threading.Thread(target=events.read, args=(response,), daemon=True)
            reader.start()
            try:
                yield events
            finally:
                events.closed = True
                response.close()


_INPUT = re.compile(r"<input\b[^>]*>", re.S)


def _login_field(html: str) -> str:
    """The login form's field for the username (`username`; allauth's `login`; ...)."""
    for tag in _INPUT.findall(html):
        name = re.search(r'name="([^"]+)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if name and (kind is None or kind[1] in ("text", "email")):
            return name[1]
    raise AssertionError(f"no username field in the login page:\n{html[:3000]}")


_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, f"no CSRF token in the page:\n{html[:2000]}"
    return match[1]


@dataclass
class Events:
    """SSE events as they arrive: `(event, data)`."""

    site: Site
    items: list[tuple[str, str]] = field(default_factory=list)
    closed: bool = False

    def read(self, response: httpx.Response) -> None:
        event, data = "message", []
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:
                    self.items.append((event, "\n".join(data)))
                    event, data = "message", []

    def wait_for(self, what: str, condition: Any) -> Any:
        """The first truthy `condition(items)` within `WAIT` seconds, or the test fails."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            found = condition(list(self.items))
            if found:
                return found
            for process in (self.site.worker, self.site.server):
                if process.poll() is not None:
                    pytest.fail(f"{process.args} exited:\n{self.site.project.logs()}")
            time.sleep(0.05)
        pytest.fail(
            f"timed out waiting for {what}; events: {self.items!r}\n{self.site.project.logs()}"
        )


_SITE_INFO = textwrap.dedent(f"""
    import json
    from django.apps import apps
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import models
    from django.shortcuts import resolve_url

    User = get_user_model()
    fields = {{}}
    for name in [User.USERNAME_FIELD, *User.REQUIRED_FIELDS]:
        is_email = isinstance(User._meta.get_field(name), models.EmailField)
        fields[name] = "ada@example.com" if is_email else "ada"
    user = User.objects.create_user(**fields, password={PASSWORD!r})
    if apps.is_installed("allauth.account"):  # cookiecutter-django: verified addresses only
        from allauth.account.models import EmailAddress

        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    print(json.dumps({{
        "asgi": settings.ASGI_APPLICATION,
        "login": resolve_url(settings.LOGIN_URL),
        "username": fields[User.USERNAME_FIELD],
    }}))
""")
"""Creates a user the way the project's own model wants one; reads the settings the site needs."""


def _module_path(directory: Path, module: str) -> Path:
    return directory.joinpath(*module.split(".")).with_suffix(".py")


def _tail(done: subprocess.CompletedProcess[str], size: int = 6000) -> str:
    return (done.stdout + done.stderr)[-size:]


def _junit_outcomes(path: Path) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(path).iter("testcase"):
        test_id = f"{case.get('classname', '')}.{case.get('name', '')}".strip(".")
        if case.find("skipped") is not None:
            outcomes[test_id] = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes[test_id] = "failed"
        else:
            outcomes[test_id] = "passed"
    return outcomes


_UNITTEST_LINE = re.compile(
    # `name (dotted.id) ... ok`; a test's docstring puts its first line before the outcome.
    r"^(?P<name>\w+) \((?P<id>[\w.]+)\)(?:\n(?!\w+ \().*)?"
    r" \.\.\. (?P<outcome>ok|FAIL|ERROR|skipped)",
    re.M,
)


def _unittest_outcomes(stderr: str) -> dict[str, Outcome]:
    outcome: dict[str, Outcome] = {"ok": "passed", "skipped": "skipped"}
    return {m["id"]: outcome.get(m["outcome"], "failed") for m in _UNITTEST_LINE.finditer(stderr)}


# -- notices, read and pasted as a user would ------------------------------------------------

_CODE = re.compile(r"^ {4}")


def notices_of(output: str) -> list[str]:
    """The notices `gen` printed after writing: paragraphs that start at the margin."""
    _, found, rest = output.partition("\nWrote ")
    if not found:
        _, found, rest = output.partition("\nNothing to change")
    paragraphs: list[list[str]] = []
    for line in rest.splitlines()[1:]:
        if line and not line[0].isspace():
            paragraphs.append([line])
        elif paragraphs:
            paragraphs[-1].append(line)
    return ["\n".join(p).rstrip() for p in paragraphs if not p[0].startswith("Running: ")]


def _code(notice: str) -> list[str]:
    """The notice's indented lines (what to paste), dedented; blank lines kept inside."""
    lines = notice.splitlines()[1:]
    return textwrap.dedent("\n".join(line for line in lines)).strip("\n").splitlines()


def _entries(code: list[str]) -> tuple[list[str], list[str]]:
    """`"x",` lines before and after a `...` line (the list's existing entries)."""
    before: list[str] = []
    after: list[str] = []
    target = after
    if "..." in [c.strip() for c in code]:
        target = before
    for line in (c.strip() for c in code):
        if line == "...":
            target = after
        elif line.startswith(("'", '"')):
            target.append(line.rstrip(","))
    return before, after


def _append(project: RealProject, file: str, text: str) -> None:
    path = project.path / file
    assert path.is_file(), f"a notice names {file!r}, which is not in the project"
    path.write_text(path.read_text().rstrip("\n") + "\n\n" + text.strip("\n") + "\n")


def _prepend_urls(project: RealProject, file: str, code: list[str]) -> None:
    # In front of the others: a catch-all route at the end must not swallow them.
    routes = "".join(f"    {line.strip()}\n" for line in code if line.strip())
    _append(
        project,
        file,
        f"from django.urls import include, path  # noqa: E402\n\nurlpatterns = [\n{routes}"
        "    *urlpatterns,\n]",
    )


def paste_notices(project: RealProject, output: str) -> Notices:
    """Do what each notice of `output` asks, where it says; see `Notices`."""
    result = Notices()
    for notice in notices_of(output):
        first = notice.splitlines()[0]
        code = _code(notice)
        if m := re.match(r"Add to (INSTALLED_APPS|MIDDLEWARE) in (\S+)", first):
            setting, file = m[1], m[2].rstrip(":")
            before, after = _entries(code)
            items = [*before, f"*{setting}", *after]
            _append(project, file, f"{setting} = [{', '.join(items)}]")
        elif m := re.match(r"Add to urlpatterns in (\S+)", first):
            _prepend_urls(project, m[1].rstrip(":"), code)
        elif "LOGIN_URL" in first and any("include(" in line for line in code):
            # "in your root URLconf"
            _prepend_urls(project, project.shape.urls_file, [c for c in code if "path(" in c])
        elif first.startswith("Add to your project's dependencies"):
            continue  # the test environment has them installed
        elif first.startswith("Embed the chat component"):
            continue  # "in any template": the user's choice, not a step
        elif m := re.match(r"Add to (\S+\.py)", first):
            _append(project, m[1].rstrip(":"), "\n".join(code))
        elif first.startswith("Next steps"):
            for line in code:
                command = line.split("#")[0].split()
                if command[:3] == ["python", "manage.py", "makemigrations"]:
                    result.commands.append(command[2:])
            continue
        elif code:
            result.unclear.append(notice)
            continue
        else:
            continue  # information only
        result.pasted.append(notice)
    return result
