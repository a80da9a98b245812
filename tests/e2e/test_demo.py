"""`django-ai-chat demo` (what `bin/demo` runs): from a fresh directory to an answered message.

The demo runs as a user runs it: its own throwaway PostgreSQL (no `DATABASE_URL`), no API key
(the offline demo model answers), stopped with SIGINT (Ctrl-C).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from django_ai_chat.testing import FakeOpenAIServer

pytestmark = pytest.mark.e2e

WAIT = 240.0  # upper bound for the demo to come up (it generates a project first)


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    output: list[str]
    url: str
    email: str
    password: str
    database_dir: Path
    model: str

    def read_until_exit(self, timeout: float) -> str:
        self.process.wait(timeout)
        time.sleep(0.2)  # let the drain thread take the last lines
        return "".join(self.output)


def _drain(stream: IO[str], output: list[str], banner: threading.Event) -> None:
    with stream:  # closed at the demo's exit: an open pipe is a ResourceWarning
        for line in stream:
            output.append(line)
            if "Stop with Ctrl-C." in line:
                banner.set()
    banner.set()


def _start_demo(workdir: Path, **extra_env: str) -> RunningDemo:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "OPENAI_API_KEY", "AI_CHAT_MODEL"):
        env.pop(name, None)
    env.update(extra_env)
    process = subprocess.Popen(
        [sys.executable, "-m", "django_ai_chat.cli", "demo", "--port", "0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    banner = threading.Event()
    # A thread drains the pipe: the demo must never block on a full pipe, and select() on a
    # buffered text stream misses lines already read into the buffer.
    threading.Thread(target=_drain, args=(process.stdout, output, banner), daemon=True).start()
    banner.wait(WAIT)
    text = "".join(output)
    fields = dict(re.findall(r"^\s+(URL|Email|Password|Database|Model):\s+(.+)$", text, re.M))
    if len(fields) < 5:
        process.kill()
        process.wait()
        raise AssertionError(f"the demo did not print its URL and credentials:\n{text}")
    database = re.search(r"throwaway PostgreSQL in (\S+)", fields["Database"])
    assert database, text
    return RunningDemo(
        process,
        output,
        fields["URL"].strip(),
        fields["Email"].strip(),
        fields["Password"].strip(),
        Path(database[1]),
        fields["Model"].strip(),
    )


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RunningDemo]:
    running = _start_demo(tmp_path)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def _log_in(client: httpx.Client, base: str, email: str, password: str) -> None:
    page = client.get(f"{base}/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    response = client.post(
        f"{base}/accounts/login/",
        data={"username": email, "password": password, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/chat/"


def _send(client: httpx.Client, base: str, text: str) -> str:
    chat = client.get(f"{base}/chat/")
    assert chat.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', chat.text)
    action = re.search(r'<form[^>]*action="([^"]*/send/)"', chat.text)
    assert token and action, chat.text
    response = client.post(
        f"{base}{action[1]}",
        data={"text": text, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": f"{base}/chat/"},
    )
    assert response.status_code == 302, response.text
    return str(response.headers["location"])


def _answer(client: httpx.Client, base: str, conversation: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = client.get(f"{base}{conversation}").text
        answer = re.search(
            r'<article[^>]*data-source="agent"[^>]*data-complete="true"[^>]*>(.*?)</article>',
            page,
            re.S,
        )
        if answer:
            return answer[1]
        time.sleep(0.5)
    raise AssertionError(f"no complete answer in {conversation} within {timeout} s")


def test_the_demo_answers_its_user_and_stops_cleanly(demo: RunningDemo, tmp_path: Path) -> None:
    base = demo.url.removesuffix("/chat/")
    assert demo.database_dir.is_dir()
    assert (tmp_path / "demo" / "manage.py").is_file()

    assert demo.model.startswith("demo: (offline demo model")

    with httpx.Client(timeout=10) as client:
        _log_in(client, base, demo.email, demo.password)
        assert "offline demo model" in client.get(f"{base}/chat/").text  # labelled in the UI
        conversation = _send(client, base, "What can you do?")
        answer = _answer(client, base, conversation)
    assert "offline demo model" in answer

    demo.process.send_signal(signal.SIGINT)
    output = demo.read_until_exit(timeout=60)

    assert demo.process.returncode == 0, output
    assert "Removed the throwaway PostgreSQL" in output
    assert not demo.database_dir.exists()
    port = int(base.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # the server is gone too


def test_with_the_providers_key_the_demo_uses_the_real_model(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        demo = _start_demo(tmp_path, OPENAI_API_KEY="sk-fake", OPENAI_BASE_URL=fake.base_url)
        try:
            base = demo.url.removesuffix("/chat/")
            with httpx.Client(timeout=10) as client:
                _log_in(client, base, demo.email, demo.password)
                assert "offline demo model" not in client.get(f"{base}/chat/").text
                conversation = _send(client, base, "[say:Answered by openai:gpt-4o.]")
                answer = _answer(client, base, conversation)
        finally:
            demo.process.send_signal(signal.SIGINT)
            demo.read_until_exit(timeout=60)

    assert demo.model == "openai:gpt-4o"
    assert "Answered by openai:gpt-4o." in answer
    assert any(request.get("model") == "gpt-4o" for request in fake.requests)
