"""Scale-out, proven with real processes: two web servers (uvicorn) and two workers.

A real SSE client (the cursor protocol of `chat.js`: `Last-Event-ID`, deltas applied by offset)
follows a conversation on web A while the question is POSTed to web B, on Redis pub/sub and on
LISTEN/NOTIFY. Web A is stopped (SIGTERM) mid-answer: it must end its stream and exit, and the
client, reconnecting to B, must end with the model's exact text. Then the worker streaming the
next answer is killed (SIGKILL): the other worker gives the whole answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from django_ai_chat.testing import FakeOpenAIServer
from django_ai_chat.testing._fake_openai import _filler
from tests.e2e.conftest import GeneratedProject

pytestmark = pytest.mark.e2e

WAIT = 90.0  # upper bound of every wait; never a speed assertion
TOKENS = 120
STOP_WAIT = 30.0  # a stopped web server must be gone by then (it stayed up for good before)
REDIS_URL = os.environ.get("AI_CHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_MESSAGE = re.compile(r'<article id="message-([0-9a-f-]{36})"[^>]*?data-source="(\w+)"', re.S)


def _attribute(html: str, name: str) -> str | None:
    found = re.search(rf'{name}="([^"]*)"', html)
    return found.group(1) if found else None


@dataclass
class Stream:
    """One EventSource-like connection on a thread: its events and the texts they build."""

    base: str
    path: str
    cookies: httpx.Cookies
    last_event_id: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    """Agent message id → text as a browser holds it (deltas applied at their offsets)."""
    complete: dict[str, str] = field(default_factory=dict)
    """Agent message id → its final HTML."""
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.ended.clear()
        self.opened.clear()
        threading.Thread(target=self._run, daemon=True).start()
        if not self.opened.wait(WAIT):
            pytest.fail(f"the stream of {self.base} did not open")

    def _run(self) -> None:
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        try:
            with (
                httpx.Client(base_url=self.base, cookies=self.cookies, timeout=None) as client,
                client.stream("GET", self.path, headers=headers) as response,
            ):
                if response.status_code != 200:
                    self.problems.append(f"stream answered {response.status_code}")
                    return
                self.opened.set()
                buffer = ""
                for chunk in response.iter_text():
                    buffer += chunk
                    while "\n\n" in buffer:
                        raw, buffer = buffer.split("\n\n", 1)
                        self._event(raw)
        except httpx.HTTPError as error:
            self.problems.append(f"stream dropped: {error!r}")
        finally:
            self.opened.set()
            self.ended.set()

    def _event(self, raw: str) -> None:
        name, data, event_id = "message", [], None
        for line in raw.split("\n"):
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                event_id = value
            elif key in ("", "retry"):
                return  # a comment or the retry hint
        if event_id:
            self.last_event_id = event_id
        self._apply(name, "\n".join(data))

    def _apply(self, name: str, payload: str) -> None:
        if name == "delta":
            delta = json.loads(payload)
            have = self.texts.get(delta["id"])
            if have is None:
                return  # not a message this page shows
            if delta["offset"] > len(have):
                self.problems.append(f"gap in {delta['id']}: {delta['offset']} > {len(have)}")
                return
            self.texts[delta["id"]] = have + delta["text"][len(have) - delta["offset"] :]
        elif name == "message":
            found = _MESSAGE.search(payload)
            if found is None or found.group(2) != "agent":
                return
            message_id = found.group(1)
            end = int(_attribute(payload, "data-end") or 0)
            if message_id not in self.texts:
                if end:
                    self.problems.append(f"{message_id} arrived as HTML with {end} characters")
                self.texts[message_id] = ""
            if _attribute(payload, "data-complete") == "true":
                self.complete[message_id] = payload
        elif name == "removed":
            message_id = json.loads(payload)["id"]
            self.removed.append(message_id)
            self.texts.pop(message_id, None)


@dataclass
class Cluster:
    project: GeneratedProject
    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def shell(self, code: str) -> Any:
        done = self.project.manage("shell", "-c", textwrap.dedent(code), env=self.env)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start(self, name: str, *args: str) -> subprocess.Popen[str]:
        with (self.logs / f"{name}.log").open("w") as log:  # the child keeps its own copy
            process = self.project.popen(*args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def web(self, name: str, *args: str) -> tuple[subprocess.Popen[str], str]:
        """Start uvicorn serving the project, as the README says; returns it and its URL."""
        port = _free_port()
        uvicorn = [sys.executable, "-m", "uvicorn", "mysite.asgi:application", "--port", str(port)]
        with (self.logs / f"{name}.log").open("w") as log:  # the child keeps its own copy
            process = subprocess.Popen(
                [*uvicorn, *args],
                cwd=self.project.path,
                env={**self.project.env, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # `--workers`: its children go with it at the end
            )
        self.processes.append(process)
        return process, f"http://127.0.0.1:{port}"

    def serving(self, process: subprocess.Popen[str], base: str) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"a web server exited:\n{self.log_text()}")
            try:
                httpx.get(f"{base}/admin/login/", timeout=10)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail(f"{base} did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(self.logs.glob("*")))

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.project.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def answer(self, question_id: str) -> tuple[Any, ...] | None:
        rows = self.query(
            "SELECT id, text, complete, error FROM chat_message WHERE response_to_id = %s",
            question_id,
        )
        return rows[0] if rows else None

    def wait_for(self, what: str, condition: Any) -> Any:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if result := condition():
                return result
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}; logs:\n{self.log_text()}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["redis", "postgres"])
def cluster(
    request: pytest.FixtureRequest, generated_project: GeneratedProject, tmp_path: Path
) -> Iterator[Cluster]:
    if request.param == "redis":
        try:
            import redis

            redis.Redis.from_url(REDIS_URL).ping()
        except Exception as error:  # no server here: the Postgres shape still runs
            pytest.skip(f"no Redis at {REDIS_URL}: {error!r}")
    pubsub = f"AI_CHAT_PUBSUB_URL = {REDIS_URL!r}" if request.param == "redis" else ""
    with FakeOpenAIServer(ttft=0.02) as server:
        settings_dir = tmp_path / "settings"
        settings_dir.mkdir()
        (settings_dir / "scale_out_settings.py").write_text(
            textwrap.dedent(f"""
                from mysite.settings import *  # noqa: F403

                AI_CHAT_MODEL = "openai:fake"
                AI_CHAT_OPENAI_BASE_URL = {server.base_url!r}
                AI_CHAT_STALLED_AFTER = 2.0
                AI_CHAT_RESCUE_CRON = "* * * * * */1"
                {pubsub}
            """)
        )
        env = {
            "DJANGO_SETTINGS_MODULE": "scale_out_settings",
            "PYTHONPATH": os.pathsep.join([str(settings_dir), str(generated_project.path)]),
            "OPENAI_API_KEY": "sk-fake-key-for-the-fake-server",
        }
        logs = tmp_path / "logs"
        logs.mkdir()
        cluster = Cluster(generated_project, env, logs)
        try:
            yield cluster
        finally:
            for process in cluster.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)  # uvicorn's worker processes


def _sign_in(cluster: Cluster, base: str, name: str) -> tuple[httpx.Cookies, str]:
    ids = cluster.shell(f"""
        import json
        from django.contrib.auth import get_user_model
        from chat import actions

        user = get_user_model().objects.filter(username={name!r}).first()
        if user is None:
            user = get_user_model().objects.create_superuser({name!r}, password="pw-{name}")
        conversation = actions.create_conversation(user)
        print(json.dumps(str(conversation.pk)))
    """)
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        response = client.post(
            "/admin/login/?next=/admin/",
            data={"username": name, "password": f"pw-{name}", "csrfmiddlewaretoken": token[1]},
        )
        assert response.status_code == 302, response.text
        return client.cookies, str(ids)


def _post(base: str, cookies: httpx.Cookies, conversation: str, text: str) -> None:
    response = httpx.post(
        f"{base}/chat/{conversation}/send/",
        data={"text": text},
        cookies=cookies,
        headers={
            "X-CSRFToken": cookies["csrftoken"],
            "HX-Request": "true",
            "Referer": f"{base}/chat/{conversation}/",
        },
        timeout=30,
    )
    assert response.status_code < 400, response.text


def _question(cluster: Cluster, conversation: str, number: int) -> str:
    def find() -> str | None:
        rows = cluster.query(
            "SELECT id FROM chat_message WHERE conversation_id = %s AND source = 'user' "
            "ORDER BY id",
            conversation,
        )
        return str(rows[number][0]) if len(rows) > number else None

    return str(cluster.wait_for("the question", find))


def test_two_web_servers_and_two_workers_lose_nothing(cluster: Cluster) -> None:
    first_worker = cluster.start("worker-1", "chat_worker")
    second_worker = cluster.start("worker-2", "chat_worker")
    # The README's shape. uvicorn restarts a worker process that does not answer its health
    # check within 5 s, which a busy machine's first Django requests can exceed.
    web_a, base_a = cluster.web("web-a", "--workers", "2", "--timeout-worker-healthcheck", "60")
    web_b, base_b = cluster.web("web-b")
    cluster.serving(web_a, base_a)
    cluster.serving(web_b, base_b)
    cookies, conversation = _sign_in(cluster, base_b, "scaler")
    expected = "".join(_filler(TOKENS))

    stream = Stream(base_a, f"/chat/{conversation}/stream/", cookies)
    stream.start()
    second_worker.send_signal(signal.SIGSTOP)  # so the first worker takes this question
    try:
        _post(base_b, cookies, conversation, f"[tokens:{TOKENS}] [tps:40]")  # 3 s
        question = _question(cluster, conversation, 0)
        answer_id = str(cluster.wait_for("the answer", lambda: cluster.answer(question))[0])
    finally:
        second_worker.send_signal(signal.SIGCONT)
    cluster.wait_for("deltas on web A", lambda: len(stream.texts.get(answer_id, "")) > 30)

    # A deploy of web A: it ends its stream and exits; the client goes on at web B.
    web_a.send_signal(signal.SIGTERM)
    assert stream.ended.wait(STOP_WAIT), "web A kept its event stream open after SIGTERM"
    try:
        web_a.wait(STOP_WAIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"web A did not exit after SIGTERM:\n{cluster.log_text()}")
    assert len(stream.texts[answer_id]) < len(expected), "the answer ended before the deploy"
    stream.base = base_b
    stream.start()
    cluster.wait_for("the whole answer on web B", lambda: answer_id in stream.complete)
    assert stream.texts[answer_id] == expected
    assert _attribute(stream.complete[answer_id], "data-error") is None

    # The worker streaming the next answer dies: the other one answers it, in full.
    second_worker.send_signal(signal.SIGSTOP)
    try:
        _post(base_b, cookies, conversation, f"[tokens:{TOKENS}] [tps:40]")
        question = _question(cluster, conversation, 1)
        dead_id = str(cluster.wait_for("the answer", lambda: cluster.answer(question))[0])
    finally:
        second_worker.send_signal(signal.SIGCONT)
    cluster.wait_for("deltas", lambda: len(stream.texts.get(dead_id, "")) > 20)
    first_worker.kill()
    rescued = cluster.wait_for(
        "the rescued answer", lambda: (a := cluster.answer(question)) and a[2] and a
    )
    rescued_id, text, _complete, error = rescued
    assert (text, error) == (expected, "")
    cluster.wait_for("it on the stream", lambda: str(rescued_id) in stream.complete)
    assert stream.texts[str(rescued_id)] == expected
    assert stream.problems == []
