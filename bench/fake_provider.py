"""The fake OpenAI server as its own process, plus a recorder of when each token left it.

    .venv/bin/python bench/fake_provider.py --port 8900 --ttft 0.2 --tps 20 --jitter 0.5

It serves `django_ai_chat.testing`'s `FakeOpenAIApp` unchanged (same directives, same timing)
wrapped in a thin ASGI layer that, for every streamed completion, notes the arrival time of the
request and the `x_emit_ts` of each content chunk with the character offset it ends at. Requests
are keyed by the last `bench-<hex>` tag in the request body (the tag of the newest user message).
`GET /bench/emits` returns and forgets everything recorded so far.

The worker's pydantic-ai drops `x_emit_ts`, so without this the harness could not tell how long a
token took from the provider to the browser through our stack.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from django_ai_chat.testing import FakeOpenAIApp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TAG = re.compile(rb"bench-[0-9a-f]{8,32}")


class Recorder:
    """ASGI wrapper: records per tagged request `arrived`, `emits` [(end, ts)], `done`."""

    def __init__(self, app: FakeOpenAIApp) -> None:
        self.app = app
        self.records: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].rstrip("/") == "/bench/emits":
            records, self.records = self.records, {}
            body = json.dumps(records).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        arrived = time.time()
        record: dict[str, Any] | None = None
        end = 0
        buffer = b""

        async def tapped_receive() -> Message:
            nonlocal record
            message = await receive()
            chunk = message.get("body", b"")
            if record is None and chunk:
                tags = TAG.findall(chunk)
                if tags:
                    record = {"arrived": arrived, "emits": [], "done": None, "stream": False}
                    self.records[tags[-1].decode()] = record
            return message

        async def tapped_send(message: Message) -> None:
            nonlocal end, buffer
            await send(message)
            if record is None or message["type"] != "http.response.body":
                return
            record["stream"] = True
            buffer += message.get("body", b"")
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if not event.startswith(b"data: {"):
                    continue
                payload = json.loads(event[6:])
                for choice in payload.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        end += len(text)
                        record["emits"].append((end, payload["x_emit_ts"]))
            if not message.get("more_body"):
                record["done"] = time.time()

        await self.app(scope, tapped_receive, tapped_send)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket whose connections send small writes at once (TCP_NODELAY).

    asyncio sets TCP_NODELAY only on sockets created with `proto=IPPROTO_TCP`; accepted ones
    inherit the listener's. Without it, Nagle holds the first token behind the unacknowledged
    role chunk until the client's delayed ACK (~40 ms), which is the provider's artefact, not ours.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--ttft", type=float, default=0.0)
    parser.add_argument("--tps", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--jitter", type=float, default=0.0)
    args = parser.parse_args()
    app = Recorder(
        FakeOpenAIApp(ttft=args.ttft, tps=args.tps, tokens=args.tokens, jitter=args.jitter)
    )
    sock = bind(args.host, args.port)
    print(f"Fake OpenAI server: http://{args.host}:{sock.getsockname()[1]}/v1", flush=True)
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        loop="asyncio",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
