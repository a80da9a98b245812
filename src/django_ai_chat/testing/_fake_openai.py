"""A fake OpenAI-compatible chat-completions server (ASGI, served by uvicorn) for tests and benches.

Driven either by a script (in-process, the same turns as `ScriptedLLM`) or by directives in the
last user message, so separate processes (browser tests, benchmarks) can steer it:

* `[tool:NAME {json}]` call a tool first (several directives: parallel calls);
* `[say:TEXT]` answer exactly TEXT; `[tokens:N]` answer N filler tokens;
* `[error:500]` fail with HTTP 500 before streaming; `[error:midstream]` cut the stream halfway;
* `[ttft:SECONDS]`, `[tps:N]`, `[jitter:FRACTION]` override the timing for this request;
* `[reasoning:N]` report N reasoning tokens (counted in the completion tokens, as OpenAI does);
* `[think:N]` stream N tokens of visible reasoning before the answer, as `reasoning_content`
  deltas (DeepSeek's, vLLM's and other OpenAI-compatible servers' field, which pydantic-ai's
  OpenAI chat model reads into `ThinkingPart`s); they are on the same schedule as the text
  (the answer's first token follows the last thought's) and reported as reasoning tokens.

A last user message with attachments (image or file parts, or the text of an attached file
after its `[Attached file: …]` header) gets an answer that starts by saying what arrived:
"I received photo.png as an image part (image/png, 1234 bytes); notes.pdf as text: “…”.".

Timing is an absolute schedule, as a real provider's: token `i` leaves at `t0 + ttft + i / tps`
(`t0`: the request's arrival), moved by up to `jitter / 2` of an interval either way (never
before the token ahead of it), so tokens sometimes arrive closer together than `1 / tps`. A
server that falls behind (a loaded machine) catches up instead of drifting later.

Usage is reported like OpenAI's (in the last chunk when `stream_options.include_usage` asks,
else in the body): prompt tokens ~ a quarter of the messages' JSON; the messages before the last
user message count as cached (`prompt_tokens_details.cached_tokens`: the prefix a provider has
seen in the previous request); completion tokens = text tokens + tool calls' argument size.
Each reported usage is kept in `.usages`, for tests to compare with what was stored.

After a tool result arrives, the answer names the tool and quotes its result. A request ending
with an unfinished answer and a plain request to continue it (an answer a stopping worker handed
over, `Responder.resume`) gets the rest of what that answer would have been, as an ideal model
would. Every streamed chunk
carries `x_emit_ts` (float epoch seconds when it was written) for latency measurements.

Longer than our usual modules: a provider's behaviour is one contract (directives, timing,
usage, errors, the SSE wire), and tests read it top to bottom in one place; the server process
wrapper at the end is what `python -m django_ai_chat.testing` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, TypeAlias

import uvicorn

from django_ai_chat.testing._scripted import ReportedUsage, Thinking

if TYPE_CHECKING:
    from django_ai_chat.testing._scripted import ScriptItem, Turn

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

_FILLER_TEXT = (
    "Streaming answers arrive token by token from the fake server, so the chat can show them "
    "while they are written. Each chunk carries its emit time, which lets a benchmark measure "
    "how long a token takes to reach the browser."
)
_THINKING_TEXT = (
    "The person wants an answer they can read while it streams. I should check what was asked, "
    "weigh the plain reading against the other ones, then answer briefly and in order."
)
_DIRECTIVE = re.compile(r"\[(tool|say|tokens|error|ttft|tps|jitter|reasoning|think):")
# Directives that set one number of the plan: its attribute and type.
_NUMBERS: dict[str, tuple[str, type[int] | type[float]]] = {
    "ttft": ("ttft", float),
    "tps": ("tps", float),
    "jitter": ("jitter", float),
    "reasoning": ("reasoning_tokens", int),
}
_TOKENS = re.compile(r"\s*\S+\s*|\s+")
_ATTACHED = re.compile(
    r"\[Attached file: (?P<name>.+?) · (?P<type>[^ ]+) · [^]]*· (?P<how>[^]]+)\]"
)
_DATA_URL = re.compile(r"data:(?P<type>[^;,]+)?(?:;[^,]*)?,(?P<data>.*)", re.DOTALL)


class _DropConnection(Exception):
    """Raised inside the app to make uvicorn cut the connection mid-response."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


@dataclass
class _Call:
    id: str
    name: str
    arguments: str


@dataclass
class _Plan:
    thinking: list[str] = field(default_factory=list)
    """Reasoning tokens, streamed as `reasoning_content` before the text."""
    text: list[str] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)
    error: str | None = None
    drop_at: int | None = None
    """Cut the connection before this text token (`len(text)`: after the text)."""
    ttft: float = 0.0
    tps: float = 0.0
    reasoning_tokens: int = 0
    reported: ReportedUsage | None = None
    """A script's usage to report instead of the computed one."""
    jitter: float = 0.0


def emit_schedule(
    count: int, *, ttft: float, tps: float, jitter: float = 0.0, rng: random.Random | None = None
) -> list[float]:
    """Seconds after the request at which each of `count` tokens is emitted.

    Token `i` at `ttft + i / tps`, moved uniformly by up to `jitter / 2` of an interval either
    way, never before `ttft` nor before the token ahead of it. `tps` 0: all at `ttft`.
    """
    if tps <= 0:
        return [ttft] * count
    rng = rng or random.Random()
    interval, times, previous = 1 / tps, [], ttft
    for index in range(count):
        shift = (rng.random() - 0.5) * jitter * interval if jitter else 0.0
        previous = max(previous, ttft + index * interval + shift)
        times.append(previous)
    return times


def _content_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _data_size(url: str) -> tuple[str, int]:
    match = _DATA_URL.match(url)
    if not match:
        return "?", 0
    data = match.group("data")
    return match.group("type") or "?", len(data) * 3 // 4 - data[-2:].count("=")


def _received(message: dict[str, Any]) -> str:
    """What a user message carried besides its text, as the answer's first sentence ("")."""
    content = message.get("content")
    if not isinstance(content, list):
        return ""
    seen: list[str] = []
    pending = ""  # the name announced by a header whose file part follows
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("image_url", "file"):
            url = (
                part["image_url"].get("url", "")
                if kind == "image_url"
                else part.get("file", {}).get("file_data", "")
            )
            media_type, size = _data_size(url)
            label = "an image part" if kind == "image_url" else "a file part"
            seen.append(f"{pending or 'a file'} as {label} ({media_type}, {size} bytes)")
            pending = ""
        elif kind == "text" and (header := _ATTACHED.match(part.get("text", ""))):
            if "text follows" in header.group("how"):
                body = part["text"][header.end() :].split("\n[End of ")[0].split()
                words = " ".join(body[:8])
                seen.append(f"{header.group('name')} as text: “{words}”")
            else:
                pending = header.group("name")
    return f"I received {'; '.join(seen)}." if seen else ""


def _parse_directives(text: str) -> list[tuple[str, str, Any]]:
    """`(kind, value, json_arguments)` for each `[kind:value]` directive in `text`."""
    found: list[tuple[str, str, Any]] = []
    decoder = json.JSONDecoder()
    position = 0
    while match := _DIRECTIVE.search(text, position):
        kind, start = match.group(1), match.end()
        if kind == "tool":
            name_match = re.match(r"\s*([\w.-]+)\s*", text[start:])
            if not name_match:
                position = start
                continue
            name, cursor = name_match.group(1), start + name_match.end()
            arguments: Any = {}
            if text[cursor : cursor + 1] == "{":
                try:
                    arguments, cursor = decoder.raw_decode(text, cursor)
                except json.JSONDecodeError:
                    arguments = {}
            end = text.find("]", cursor)
            found.append((kind, name, arguments))
        else:
            end = text.find("]", start)
            if end < 0:
                break
            found.append((kind, text[start:end].strip(), None))
        position = end + 1 if end >= 0 else len(text)
    return found


def _split_tokens(text: str) -> list[str]:
    return _TOKENS.findall(text)


def _filler(count: int, source: str = _FILLER_TEXT) -> list[str]:
    words = source.split(" ")
    return [f"{word} " for word in itertools.islice(itertools.cycle(words), count)]


class FakeOpenAIApp:
    """The ASGI application; see the module docstring for its behaviour."""

    def __init__(
        self,
        *,
        ttft: float = 0.0,
        tps: float = 0.0,
        tokens: int = 30,
        script: Iterable[Turn] | None = None,
        jitter: float = 0.0,
    ) -> None:
        """Create the app.

        Args:
            ttft: Seconds before the first chunk of each answer.
            tps: Tokens per second (0: as fast as possible), on an absolute schedule.
            tokens: Length of a filler answer, in tokens.
            script: Turns (as for `ScriptedLLM`) served one per request before directives apply.
            jitter: Fraction of `1 / tps` by which a token may leave early or late (0 to 1).
        """
        self.ttft, self.tps, self.tokens, self.jitter = ttft, tps, tokens, jitter
        self.script: deque[list[ScriptItem]] = deque(list(turn) for turn in script or ())
        self.requests: list[dict[str, Any]] = []
        self.usages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._call_ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/"), scope["method"]
        if method == "POST" and path.endswith("/chat/completions"):
            await self._completions(receive, send)
        elif method == "GET" and path.endswith("/models"):
            await _send_json(
                send, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]}
            )
        else:
            await _send_json(send, 404, {"error": {"message": f"Not found: {method} {path}"}})

    async def _completions(self, receive: Receive, send: Send) -> None:
        arrived = asyncio.get_running_loop().time()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body or b"{}")
        self.requests.append(request)
        plan = self._plan(request)
        if plan.error == "500":
            await _send_json(
                send,
                500,
                {"error": {"message": "Injected error (fake server)", "type": "server_error"}},
                # The openai SDK honours this: fail at once instead of retrying with back-off.
                headers=[(b"x-should-retry", b"false")],
            )
            return
        completion_id = f"chatcmpl-fake-{next(self._ids)}"
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            await self._stream(send, receive, request, plan, completion_id, include_usage, arrived)
        else:
            await _sleep_until(arrived + plan.ttft)
            if plan.drop_at is not None:
                raise _DropConnection
            completion = _completion(request, plan, completion_id)
            await _send_json(send, 200, {**completion, "usage": self._usage(request, plan)})

    def _plan(self, request: dict[str, Any]) -> _Plan:
        plan = _Plan(ttft=self.ttft, tps=self.tps, jitter=self.jitter)
        if self.script:
            self._plan_script(plan, self.script.popleft())
        else:
            self._plan_directives(plan, request.get("messages") or [])
        return plan

    def _plan_script(self, plan: _Plan, turn: list[ScriptItem]) -> None:
        for item in turn:
            if isinstance(item, BaseException):
                plan.drop_at = len(plan.text)  # as `ScriptedLLM` raises there
                return
            if isinstance(item, ReportedUsage):
                plan.reported = item
            elif isinstance(item, Thinking):
                plan.thinking.append(item.text)
            elif isinstance(item, str):
                plan.text.append(item)
            else:
                plan.calls.append(
                    _Call(item.id or self._call_id(), item.name, item.arguments_json())
                )

    def _plan_directives(self, plan: _Plan, messages: list[dict[str, Any]]) -> None:
        if (continued := _continuation(messages)) is not None:
            earlier, partial = continued
            whole = _Plan(ttft=plan.ttft, tps=plan.tps)
            self._plan_directives(whole, earlier)
            text = "".join(whole.text)
            if not whole.calls and whole.error is None and text.startswith(partial):
                plan.text = _split_tokens(text[len(partial) :])
                plan.ttft, plan.tps = whole.ttft, whole.tps
                return
        after_prompt = itertools.takewhile(lambda m: m.get("role") != "user", reversed(messages))
        answered_tools = [m for m in after_prompt if m.get("role") == "tool"]
        last_user: dict[str, Any] = next(
            (m for m in reversed(messages) if m.get("role") == "user"), {}
        )
        prompt = _content_text(last_user)
        directives = _parse_directives(prompt)
        say, tokens = None, self.tokens
        for kind, value, arguments in directives:
            with contextlib.suppress(ValueError):
                if kind == "say":
                    say = value
                elif kind == "tokens":
                    tokens = int(value)
                elif kind in _NUMBERS:
                    attribute, number = _NUMBERS[kind]
                    setattr(plan, attribute, number(value))
                elif kind == "think":
                    plan.thinking = _filler(int(value), _THINKING_TEXT)
                elif kind == "error" and not answered_tools:
                    plan.error = value
                elif kind == "tool" and not answered_tools:
                    plan.calls.append(_Call(self._call_id(), value, json.dumps(arguments)))
        if plan.calls:
            return
        if preamble := (
            _tool_summary(answered_tools, messages) if answered_tools else _received(last_user)
        ):
            plan.text.extend(_split_tokens(preamble + "\n\n"))
        plan.text.extend(_split_tokens(say) if say is not None else _filler(tokens))
        if plan.error == "midstream":
            plan.drop_at = max(1, len(plan.text) // 2)

    def _usage(self, request: dict[str, Any], plan: _Plan) -> dict[str, Any]:
        usage = _usage(request, plan)
        self.usages.append(usage)
        return usage

    def _call_id(self) -> str:
        # The same ids as `ScriptedLLM`, so both produce identical event sequences.
        return f"call_{next(self._call_ids)}"

    async def _stream(
        self,
        send: Send,
        receive: Receive,
        request: dict[str, Any],
        plan: _Plan,
        completion_id: str,
        include_usage: bool,
        arrived: float,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        disconnected = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, disconnected))
        model = str(request.get("model", "fake"))

        async def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                "x_emit_ts": time.time(),
            }
            await _send_sse(send, payload)

        thoughts = len(plan.thinking)
        schedule = emit_schedule(
            thoughts + len(plan.text), ttft=plan.ttft, tps=plan.tps, jitter=plan.jitter
        )
        try:
            await _sleep_until(arrived + plan.ttft)
            await chunk({"role": "assistant", "content": ""})
            for index, thought in enumerate(plan.thinking):
                if disconnected.is_set():
                    return
                await _sleep_until(arrived + schedule[index])
                await chunk({"reasoning_content": thought})
            schedule = schedule[thoughts:]
            drop_at = plan.drop_at
            for index, token in enumerate(plan.text):
                if disconnected.is_set():
                    return
                if drop_at is not None and index == drop_at:
                    raise _DropConnection
                await _sleep_until(arrived + schedule[index])
                await chunk({"content": token})
            if drop_at is not None:
                raise _DropConnection
            for index, call in enumerate(plan.calls):
                start = {"index": index, "id": call.id, "type": "function"}
                await chunk(
                    {"tool_calls": [{**start, "function": {"name": call.name, "arguments": ""}}]}
                )
                await chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": call.arguments}}]}
                )
            await chunk({}, "tool_calls" if plan.calls else "stop")
            if include_usage:
                usage = self._usage(request, plan)
                await _send_sse(send, {"id": completion_id, "object": "chat.completion.chunk",
                                       "created": int(time.time()), "model": model, "choices": [],
                                       "usage": usage, "x_emit_ts": time.time()})  # fmt: skip
            await send(
                {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True}
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def _continuation(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str] | None:
    """`(messages before the unfinished answer, its text)` for a request to continue it."""
    if len(messages) < 3:
        return None
    answer, request = messages[-2], messages[-1]
    if request.get("role") != "user" or answer.get("role") != "assistant":
        return None
    prompt, partial = _content_text(request), _content_text(answer)
    if "continue" not in prompt.lower() or _DIRECTIVE.search(prompt) or not partial:
        return None
    return messages[:-2], partial


def _tool_summary(tool_messages: Sequence[dict[str, Any]], messages: list[dict[str, Any]]) -> str:
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[call.get("id", "")] = call.get("function", {}).get("name", "?")
    parts = []
    for message in reversed(tool_messages):
        name = names.get(message.get("tool_call_id", ""), "?")
        result = " ".join(_content_text(message).split())
        result = result if len(result) <= 200 else result[:199] + "…"
        parts.append(f"The tool `{name}` returned: {result}")
    return "\n".join(parts)


def _usage(request: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    if (reported := plan.reported) is not None:
        return {
            "prompt_tokens": reported.input_tokens,
            "completion_tokens": reported.output_tokens,
            "total_tokens": reported.input_tokens + reported.output_tokens,
            "prompt_tokens_details": {"cached_tokens": reported.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": reported.reasoning_tokens},
        }
    messages = request.get("messages") or []
    prompt_tokens = max(1, len(json.dumps(messages)) // 4)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    cached_tokens = min(prompt_tokens, len(json.dumps(messages[:last_user])) // 4)
    completion_tokens = len(plan.text) + sum(1 + len(c.arguments) // 4 for c in plan.calls)
    reasoning_tokens = plan.reasoning_tokens + len(plan.thinking)
    completion_tokens += reasoning_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def _completion(request: dict[str, Any], plan: _Plan, completion_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.text) or None}
    if plan.thinking:
        message["reasoning_content"] = "".join(plan.thinking)
    if plan.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in plan.calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.get("model", "fake")),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if plan.calls else "stop",
            }
        ],
    }


async def _sleep_until(when: float) -> None:
    # Always yields once, so a fast schedule still lets the server notice a disconnect.
    await asyncio.sleep(max(0.0, when - asyncio.get_running_loop().time()))


async def _watch_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()


async def _send_sse(send: Send, payload: dict[str, Any]) -> None:
    data = b"data: " + json.dumps(payload).encode() + b"\n\n"
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (accepted ones inherit it);
    # without it the first token waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _server(app: FakeOpenAIApp, log_level: str = "warning") -> uvicorn.Server:
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        loop="asyncio",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


class FakeOpenAIServer:
    """The fake server on a background thread, for use in-process.

    Example:
        >>> with FakeOpenAIServer(ttft=0.05, tps=200) as server:
        ...     model = OpenAIChatModel("fake", provider=OpenAIProvider(base_url=server.base_url))

    Attributes:
        app: The ASGI app (its `requests` holds every parsed request body; `script` its turns).
    """

    __test__ = False

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ttft: float = 0.0,
        tps: float = 0.0,
        tokens: int = 30,
        script: Iterable[Turn] | None = None,
        jitter: float = 0.0,
    ) -> None:
        """Configure the server (see `FakeOpenAIApp` for the timing and script arguments)."""
        self.app = FakeOpenAIApp(ttft=ttft, tps=tps, tokens=tokens, script=script, jitter=jitter)
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (chosen by the OS when 0 was asked for)."""
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. `http://127.0.0.1:53211/v1`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received so far."""
        return self.app.requests

    @property
    def usages(self) -> list[dict[str, Any]]:
        """Every usage reported so far (OpenAI's `usage` objects), one per answered request."""
        return self.app.usages

    def start(self) -> Self:
        """Start serving on a daemon thread; returns once the port accepts connections."""
        sock = _bind(self.host, self._port)
        self._port = sock.getsockname()[1]
        self._server = _server(self.app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-openai"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("FakeOpenAIServer did not start within 10 s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: `python -m django_ai_chat.testing --port 8900 --ttft 0.2 --tps 50`."""
    parser = argparse.ArgumentParser(
        prog="python -m django_ai_chat.testing",
        description="Fake OpenAI-compatible chat-completions server (SSE streaming, tool calls, "
        "injected errors), steered by [directives] in the last user message.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900, help="0 picks a free port")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to first token")
    parser.add_argument("--tps", type=float, default=0.0, help="tokens per second (0: no limit)")
    parser.add_argument("--tokens", type=int, default=30, help="answer length in tokens")
    parser.add_argument(
        "--jitter", type=float, default=0.0, help="fraction of 1/tps a token may move (0-1)"
    )
    args = parser.parse_args(argv)
    app = FakeOpenAIApp(ttft=args.ttft, tps=args.tps, tokens=args.tokens, jitter=args.jitter)
    sock = _bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Fake OpenAI server: http://{host}:{sock.getsockname()[1]}/v1", flush=True)
    _server(app, log_level="info").run(sockets=[sock])
