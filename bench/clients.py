"""Simulated users: log in, POST a message, read the SSE stream as a browser does.

Also the baseline client, reading the fake provider's stream directly (no Django, no worker, no
database). Every receive time is `time.time()`, the clock the fake provider stamps chunks with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_MESSAGE_ID = re.compile(r'id="message-([0-9a-f-]{36})"')
_TIMEOUT = httpx.Timeout(60.0, read=None)


def new_tag() -> str:
    return f"bench-{uuid.uuid4().hex[:16]}"


def prompt(tag: str, *, tokens: int, tps: float, ttft: float) -> str:
    """A user message steering the fake provider (see `django_ai_chat.testing.FakeOpenAIServer`)."""
    return f"{tag} please answer [tokens:{tokens}] [tps:{tps:g}] [ttft:{ttft:g}]"


@dataclass
class Answer:
    """What one client saw of one answer."""

    tag: str
    tokens: int
    via: str  # "stack" or "direct"
    posted: float = 0.0
    post_ms: float = 0.0
    post_status: int = 0
    deltas: list[tuple[float, int, int]] = field(default_factory=list)  # (recv, offset, end)
    emit_ts: list[float] = field(default_factory=list)  # direct only: x_emit_ts per delta
    first_delta: float | None = None
    completed: float | None = None
    answer_id: str | None = None
    sse_bytes: int = 0  # decoded SSE text of the answer's events
    wire_bytes: float = 0.0  # what crossed the network for them (gzip when the server sends it)
    delta_bytes: int = 0
    final_html_bytes: int = 0
    final_text_chars: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class _Event:
    recv: float
    name: str
    data: str
    id: str | None
    size: int
    wire: float


async def _events(response: httpx.Response) -> Any:
    """Parse an SSE byte stream into `_Event`s stamped with their arrival time.

    A gzip-encoded stream (as browsers accept) is decoded here, chunk by chunk; each event is
    charged its share of the compressed bytes of the network chunks that completed it.
    """
    gzip = response.headers.get("content-encoding", "").lower() == "gzip"
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
    buffer = b""
    pending_wire = 0
    async for wire_chunk in response.aiter_raw():
        recv = time.time()
        pending_wire += len(wire_chunk)
        buffer += decoder.decompress(wire_chunk) if decoder else wire_chunk
        raws = []
        while True:
            cut = buffer.find(b"\n\n")
            if cut < 0:
                break
            raw, buffer = buffer[:cut], buffer[cut + 2 :]
            raws.append(raw)
        if not raws:
            continue
        share, pending_wire = pending_wire / len(raws), 0
        for raw in raws:
            name, event_id, data = "message", None, []
            for line in raw.decode().split("\n"):
                if line.startswith(":"):
                    name = "comment"
                    continue
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "event":
                    name = value
                elif key == "data":
                    data.append(value)
                elif key == "id":
                    event_id = value
                elif key == "retry":
                    name = "retry"
            yield _Event(recv, name, "\n".join(data), event_id, len(raw) + 2, share)


class Gate:
    """Holds every client until all have opened their stream, then gives a common start time."""

    def __init__(self, expected: int, lead: float = 0.2) -> None:
        self.expected = expected
        self.count = 0
        self.lead = lead
        self._opened = asyncio.Event()
        self.t0 = 0.0

    def arrived(self) -> None:
        self.count += 1
        if self.count >= self.expected and not self._opened.is_set():
            self.t0 = time.time() + self.lead
            self._opened.set()

    async def opened(self) -> float:
        await self._opened.wait()
        return self.t0


class User:
    """One signed-in browser: its own cookies, CSRF token and conversation."""

    def __init__(
        self, base: str, username: str, password: str, conversation: str, *, gzip: bool = True
    ) -> None:
        self.base = base
        self.username = username
        self.password = password
        self.conversation = conversation
        # What a browser's EventSource accepts (gzip at least); `gzip=False` asks for none.
        encoding = "gzip, deflate" if gzip else "identity"
        self.client = httpx.AsyncClient(
            base_url=base, timeout=_TIMEOUT, headers={"Accept-Encoding": encoding}
        )
        self.last_event_id: str | None = None

    async def login(self) -> None:
        page = await self.client.get("/admin/login/")
        token = _CSRF_INPUT.search(page.text)
        if token is None:
            raise RuntimeError(f"no CSRF token on /admin/login/ ({page.status_code})")
        response = await self.client.post(
            "/admin/login/?next=/admin/",
            data={
                "username": self.username,
                "password": self.password,
                "csrfmiddlewaretoken": token.group(1),
                "next": "/admin/",
            },
        )
        if response.status_code != 302 or "sessionid" not in self.client.cookies:
            raise RuntimeError(f"login of {self.username!r} failed ({response.status_code})")

    async def close(self) -> None:
        await self.client.aclose()

    async def get(self, path: str) -> tuple[float, int, int]:
        start = time.perf_counter()
        response = await self.client.get(path)
        return (time.perf_counter() - start) * 1000, response.status_code, len(response.content)

    async def ask(self, route: str, text: str, answer: Answer, gate: Gate, offset: float) -> None:
        """Open the conversation's stream, POST `text` once the gate opens, read to the end."""
        ready = asyncio.Event()
        arrived = False
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        url = f"/{route}/{self.conversation}/stream/"
        try:
            async with self.client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    answer.error = f"stream {response.status_code}"
                    return
                events = _events(response)
                done = asyncio.Event()
                reader = asyncio.create_task(self._read(events, answer, ready, done))
                try:
                    await asyncio.wait_for(ready.wait(), 30)
                    arrived = True
                    gate.arrived()
                    start_at = await gate.opened() + offset
                    await asyncio.sleep(max(0.0, start_at - time.time()))
                    await self._post(route, text, answer)
                    if answer.error is None:
                        await done.wait()
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
                    with contextlib.suppress(Exception):
                        await events.aclose()
        except Exception as error:
            answer.error = answer.error or f"ask: {error!r}"
        finally:
            if not arrived:
                gate.arrived()

    async def _post(self, route: str, text: str, answer: Answer) -> None:
        answer.posted = time.time()
        start = time.perf_counter()
        response = await self.client.post(
            f"/{route}/{self.conversation}/send/",
            data={"text": text},
            headers={
                "X-CSRFToken": self.client.cookies["csrftoken"],
                "HX-Request": "true",
                "Referer": f"{self.base}/{route}/{self.conversation}/",
            },
        )
        answer.post_ms = (time.perf_counter() - start) * 1000
        answer.post_status = response.status_code
        if response.status_code >= 400:
            answer.error = f"POST {response.status_code}"

    async def _read(
        self, events: Any, answer: Answer, ready: asyncio.Event, done: asyncio.Event
    ) -> None:
        try:
            async for event in events:
                if event.id:
                    self.last_event_id = event.id
                if event.name == "retry":
                    ready.set()
                    continue
                if not answer.posted or event.name not in ("delta", "message"):
                    continue
                if event.name == "delta":
                    payload = json.loads(event.data)
                    if answer.answer_id is None:
                        answer.answer_id = payload["id"]
                    if payload["id"] != answer.answer_id:
                        continue
                    end = payload["offset"] + len(payload["text"])
                    answer.deltas.append((event.recv, payload["offset"], end))
                    answer.first_delta = answer.first_delta or event.recv
                    answer.sse_bytes += event.size
                    answer.wire_bytes += event.wire
                    answer.delta_bytes += event.size
                    continue
                if 'data-source="agent"' not in event.data:
                    continue
                found = _MESSAGE_ID.search(event.data)
                message_id = found.group(1) if found else None
                if answer.answer_id is None:
                    answer.answer_id = message_id
                if message_id != answer.answer_id:
                    continue
                answer.sse_bytes += event.size
                answer.wire_bytes += event.wire
                if 'data-complete="true"' in event.data:
                    answer.completed = event.recv
                    answer.final_html_bytes = len(event.data.encode())
                    done.set()
                    return
        except Exception as error:  # a dropped stream ends this answer with an error
            answer.error = answer.error or f"stream: {error!r}"
        finally:
            ready.set()
            done.set()


async def ask_direct(
    client: httpx.AsyncClient, text: str, answer: Answer, gate: Gate, offset: float
) -> None:
    """The limit: the same client reading the fake provider's stream itself."""
    gate.arrived()
    start_at = await gate.opened() + offset
    await asyncio.sleep(max(0.0, start_at - time.time()))
    body = {
        "model": "fake",
        "stream": True,
        "messages": [{"role": "user", "content": text}],
    }
    answer.posted = time.time()
    try:
        async with client.stream("POST", "/chat/completions", json=body) as response:
            answer.post_status = response.status_code
            buffer = b""
            async for chunk in response.aiter_raw():
                recv = time.time()
                buffer += chunk
                while (cut := buffer.find(b"\n\n")) >= 0:
                    raw, buffer = buffer[:cut], buffer[cut + 2 :]
                    answer.sse_bytes += len(raw) + 2
                    answer.wire_bytes += len(raw) + 2
                    if not raw.startswith(b"data: {"):
                        continue
                    payload = json.loads(raw[6:])
                    for choice in payload.get("choices") or []:
                        text_part = (choice.get("delta") or {}).get("content") or ""
                        if not text_part:
                            continue
                        offset = answer.final_text_chars
                        answer.final_text_chars += len(text_part)
                        answer.deltas.append((recv, offset, answer.final_text_chars))
                        answer.emit_ts.append(payload["x_emit_ts"])
                        answer.first_delta = answer.first_delta or recv
            answer.completed = time.time()
            answer.final_html_bytes = answer.final_text_chars
    except Exception as error:
        answer.error = f"direct: {error!r}"
