"""A real `manage.py chat_worker` answers messages from a fake OpenAI-compatible server.

The project is the generated one (`generated_project`); settings are overridden through a
settings module outside it (`from mysite.settings import *`), so its files stay untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from django_ai_chat.testing import FakeOpenAIServer
from django_ai_chat.testing._fake_openai import _filler
from tests.e2e.conftest import GeneratedProject

pytestmark = pytest.mark.e2e

WAIT = 90.0  # upper bound for an answer to complete; never a speed assertion
STALLED_AFTER = 2.0


@dataclass
class Chat:
    """The generated project run with test settings: worker, pub/sub spy, database."""

    project: GeneratedProject
    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    stopped: set[int] = field(default_factory=set)

    def shell(self, code: str) -> Any:
        """Run `code` in `manage.py shell`; it must print one JSON line, which is returned."""
        done = self.project.manage("shell", "-c", textwrap.dedent(code), env=self.env)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start_worker(self, *args: str) -> subprocess.Popen[str]:
        log = (self.logs / f"worker-{len(self.workers)}.log").open("w")
        worker = self.project.popen(
            f"{self.project.app_label}_worker",
            *args,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: subprocess.Popen[str], signum: int) -> None:
        self.stopped.add(worker.pid)
        worker.send_signal(signum)
        worker.wait(30)

    def worker_logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("worker-*.log")))

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.project.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def answer(self, question_id: str) -> tuple[Any, ...] | None:
        rows = self.query(
            "SELECT id, text, complete, stopped, error, tool_calls, tool_results "
            f"FROM {self.project.app_label}_message WHERE response_to_id = %s",
            question_id,
        )
        assert len(rows) <= 1
        return rows[0] if rows else None

    def wait_for(self, what: str, condition: Any) -> Any:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            if any(w.poll() is not None for w in self.workers if w.pid not in self.stopped):
                pytest.fail(f"a worker exited while waiting for {what}:\n{self.worker_logs()}")
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}; worker logs:\n{self.worker_logs()}")


class Spy:
    """A subscriber process printing every payload of one topic (the public pub/sub API)."""

    def __init__(self, chat: Chat, topic: str) -> None:
        code = f"""
            import asyncio, json
            from django_ai_chat import pubsub

            async def main():
                async with pubsub.subscribe({topic!r}) as messages:
                    print("ready", flush=True)
                    async for _topic, payload in messages:
                        print(json.dumps(payload), flush=True)

            asyncio.run(main())
        """
        self.process = chat.project.popen(
            "shell",
            "-c",
            textwrap.dedent(code),
            env=chat.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.payloads: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(WAIT):
            pytest.fail("the pub/sub spy did not start")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "ready":
                self._ready.set()
            elif line.startswith("{"):
                self.payloads.append(json.loads(line))

    def deltas(self, message_id: str) -> list[dict[str, Any]]:
        return [p for p in list(self.payloads) if p["type"] == "delta" and p["id"] == message_id]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def chat(generated_project: GeneratedProject, tmp_path: Path) -> Iterator[Chat]:
    with FakeOpenAIServer(ttft=0.02, tps=150) as server:
        settings_dir = tmp_path / "settings"
        settings_dir.mkdir()
        (settings_dir / "worker_test_settings.py").write_text(
            textwrap.dedent(f"""
                from mysite.settings import *  # noqa: F403

                AI_CHAT_MODEL = "openai:fake"
                AI_CHAT_OPENAI_BASE_URL = {server.base_url!r}
                AI_CHAT_STALLED_AFTER = {STALLED_AFTER}
                AI_CHAT_RESCUE_CRON = "* * * * * */1"
            """)
        )
        env = {
            "DJANGO_SETTINGS_MODULE": "worker_test_settings",
            "PYTHONPATH": os.pathsep.join([str(settings_dir), str(generated_project.path)]),
            "OPENAI_API_KEY": "sk-fake-key-for-the-fake-server",
        }
        logs = tmp_path / "logs"
        logs.mkdir()
        chat = Chat(generated_project, env, logs)
        try:
            yield chat
        finally:
            for worker in chat.workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    try:
                        worker.wait(20)
                    except subprocess.TimeoutExpired:
                        worker.kill()
                        worker.wait(10)


def _conversation(chat: Chat, name: str) -> dict[str, str]:
    return chat.shell(f"""
        import json
        from django.contrib.auth import get_user_model
        from chat import actions

        user, _ = get_user_model().objects.get_or_create(username={name!r})
        conversation = actions.create_conversation(user)
        print(json.dumps({{"user": user.pk, "conversation": str(conversation.pk)}}))
    """)


def _ask(chat: Chat, ids: dict[str, str], text: str) -> str:
    return str(
        chat.shell(f"""
        import json
        from django.contrib.auth import get_user_model
        from chat import actions

        user = get_user_model().objects.get(pk={ids["user"]!r})
        message = actions.create_message(
            user, text={text!r}, conversation_id={ids["conversation"]!r}
        )
        print(json.dumps(str(message.pk)))
    """)
    )


def _updates_of_messages(chat: Chat) -> int:
    rows = chat.query(
        "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = %s",
        f"{chat.project.app_label}_message",
    )
    return int(rows[0][0])


def test_a_worker_streams_the_answer_and_persists_tool_calls(chat: Chat) -> None:
    ids = _conversation(chat, "alice")
    spy = Spy(chat, f"chat:messages:{ids['conversation']}")
    try:
        chat.start_worker()
        question = _ask(chat, ids, '[tool:chat_list_conversations {"limit": 5}] [tokens:120]')
        answer = chat.wait_for("the answer", lambda: (a := chat.answer(question)) and a[2] and a)
    finally:
        time.sleep(0.5)  # the last payloads are on their way
        spy.stop()

    answer_id, text, complete, stopped, error, tool_calls, tool_results = answer
    assert (complete, stopped, error) == (True, False, "")
    assert [c["name"] for c in tool_calls] == ["chat_list_conversations"]
    assert tool_calls[0]["arguments"] == {"limit": 5}
    assert len(tool_results) == 1 and not tool_results[0]["is_error"]
    assert tool_results[0]["content"][0]["id"] == ids["conversation"]
    assert "The tool `chat_list_conversations` returned" in text
    # The browser-side view: deltas at their offsets rebuild exactly the stored text.
    deltas = spy.deltas(str(answer_id))
    assert len(deltas) > 20
    rebuilt = ""
    for delta in deltas:
        assert delta["offset"] == len(rebuilt), "gap or duplicate in the published deltas"
        rebuilt += delta["text"]
    assert rebuilt == text
    events = [(p["type"], p.get("id")) for p in spy.payloads]
    assert ("message", question) in events  # the question, published at commit
    assert events[-1] == ("message", str(answer_id))  # the completed answer, last


def test_writes_per_answer_are_coalesced(chat: Chat) -> None:
    ids = _conversation(chat, "bob")
    worker = chat.start_worker()
    before = _updates_of_messages(chat)
    question = _ask(chat, ids, "[tokens:300] [tps:100]")
    answer = chat.wait_for("the answer", lambda: (a := chat.answer(question)) and a[2] and a)
    chat.stop_worker(worker, signal.SIGTERM)  # exiting backends report their statistics
    chat.wait_for("statistics", lambda: _updates_of_messages(chat) > before)
    time.sleep(1.5)
    updates = _updates_of_messages(chat) - before
    print(f"\nDB updates of the message table for one 300-token answer: {updates}")
    assert answer[4] == ""
    # No browser asked for a flush and no tool ran: the end only, not one per token or second.
    assert 1 <= updates <= 2


def test_stop_keeps_the_partial_answer_exactly_as_streamed(chat: Chat) -> None:
    ids = _conversation(chat, "dave")
    spy = Spy(chat, f"chat:messages:{ids['conversation']}")
    try:
        chat.start_worker()
        question = _ask(chat, ids, "[tokens:400] [tps:40]")
        answer_id = chat.wait_for(
            "a streaming answer", lambda: (a := chat.answer(question)) and a[0]
        )
        chat.wait_for("some deltas", lambda: len(spy.deltas(str(answer_id))) > 5)
        stopped = chat.shell(f"""
            import json
            from django.contrib.auth import get_user_model
            from chat import actions

            user = get_user_model().objects.get(pk={ids["user"]!r})
            print(json.dumps(actions.stop_response(user, {ids["conversation"]!r})))
        """)
        assert stopped is True
        answer = chat.wait_for("the stop", lambda: (a := chat.answer(question)) and a[2] and a)
        time.sleep(0.5)
    finally:
        spy.stop()
    _answer_id, text, complete, was_stopped, error, _calls, _results = answer
    assert (complete, was_stopped, error) == (True, True, "")
    assert 0 < len(text.split()) < 400
    assert "".join(d["text"] for d in spy.deltas(str(answer_id))) == text


def test_a_killed_worker_leaves_no_answer_incomplete(chat: Chat) -> None:
    ids = _conversation(chat, "carol")
    spy = Spy(chat, f"chat:messages:{ids['conversation']}")
    try:
        worker = chat.start_worker()
        question = _ask(chat, ids, "[tokens:400] [tps:40]")
        answer_id = chat.wait_for(
            "a streaming answer", lambda: (a := chat.answer(question)) and not a[2] and a[0]
        )
        chat.wait_for("some deltas", lambda: len(spy.deltas(str(answer_id))) > 5)
        chat.stop_worker(worker, signal.SIGKILL)
    finally:
        spy.stop()
    partial = chat.answer(question)
    assert partial is not None and not partial[2]
    # Without a safety interval (the default) the row holds only what a sync or tool wrote.
    assert len(partial[1]) < len("".join(d["text"] for d in spy.deltas(str(answer_id))))

    chat.start_worker()  # its periodic rescue finds the dead worker's job
    answer = chat.wait_for(
        "the rescued answer", lambda: (a := chat.answer(question)) and a[2] and a
    )
    _answer_id, text, complete, _stopped, error, _calls, _results = answer
    assert complete
    if error:
        assert "interrupted" in error
    else:
        assert len(text.split()) >= 400  # answered again, in full
    assert "stalled; retrying" in chat.worker_logs()


def _kill_the_projects_connections(chat: Chat) -> int:
    # What a failover, a restart or PgBouncer recycling does to the worker's connections.
    rows = chat.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return len(rows)


def test_a_worker_keeps_serving_after_its_database_connections_are_killed(chat: Chat) -> None:
    ids = _conversation(chat, "dave")
    worker = chat.start_worker()
    first = _ask(chat, ids, "[tokens:5]")
    chat.wait_for("the first answer", lambda: (a := chat.answer(first)) and a[2])

    for _ in range(3):  # several blips: each side task (deferrer, heartbeat, listener) meets one
        assert _kill_the_projects_connections(chat) > 0
        time.sleep(2.5)  # the periodic deferrer ticks every second here, the heartbeat every 0.7 s

    assert worker.poll() is None, f"the worker exited:\n{chat.worker_logs()}"
    second = _ask(chat, ids, "[tokens:5]")
    chat.wait_for("an answer after the blips", lambda: (a := chat.answer(second)) and a[2])


def test_a_worker_that_cannot_reach_its_database_exits_non_zero(chat: Chat) -> None:
    database = chat.query("SELECT current_database()")[0][0]
    admin_url = chat.project.database_url.rsplit("/", 1)[0] + "/postgres"
    worker = chat.start_worker()
    chat.wait_for("the worker to start", lambda: "Worker running" in chat.worker_logs())
    chat.stopped.add(worker.pid)  # its exit is what this test waits for
    with psycopg.connect(admin_url, autocommit=True) as admin:
        try:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
            try:
                # Each attempt waits for the pool's 30 s connection timeout; it gives up after 60.
                returncode = worker.wait(WAIT + 90)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the worker is still running:\n{chat.worker_logs()}")
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    assert returncode != 0, chat.worker_logs()
    assert "giving up" in chat.worker_logs()


def test_a_stopping_worker_hands_its_answer_over_without_a_seam(chat: Chat) -> None:
    ids = _conversation(chat, "erin")
    spy = Spy(chat, f"chat:messages:{ids['conversation']}")
    try:
        first = chat.start_worker("--shutdown-timeout", "1")
        question = _ask(chat, ids, "[tokens:600] [tps:40]")  # 15 s: longer than its grace
        answer_id = chat.wait_for(
            "a streaming answer", lambda: (a := chat.answer(question)) and not a[2] and a[0]
        )
        chat.wait_for("some deltas", lambda: len(spy.deltas(str(answer_id))) > 5)
        chat.start_worker()  # idle, ready to take over
        chat.wait_for("the second worker", lambda: chat.worker_logs().count("Worker running") > 1)
        chat.stop_worker(first, signal.SIGTERM)
        assert first.returncode == 0, chat.worker_logs()
        answer = chat.wait_for("the answer", lambda: (a := chat.answer(question)) and a[2] and a)
        time.sleep(0.5)  # the last payloads are on their way
    finally:
        spy.stop()
    same_id, text, _complete, stopped, error, _calls, _results = answer
    assert (same_id, stopped, error) == (answer_id, False, "")
    assert text == "".join(_filler(600))  # the model's answer, once, whole
    rebuilt = ""
    for delta in spy.deltas(str(answer_id)):
        assert delta["offset"] == len(rebuilt), "a browser would see a gap or a repeat"
        rebuilt += delta["text"]
    assert rebuilt == text
