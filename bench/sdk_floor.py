"""What reading a token stream costs in CPU before our stack does anything with it.

    .venv/bin/python -m bench.sdk_floor [--answers 50] [--tokens 200]

The fake OpenAI server runs in its own process (`bench/fake_provider.py`, unthrottled); this
process reads `--answers` simultaneous streamed completions of `--tokens` tokens five ways and
reports its own CPU time per token (`time.process_time`, so the provider's CPU is not counted):

1. raw: httpx, split `data:` lines, `json.loads` each chunk (what the bench's "limit" client does);
2. openai: the openai SDK's `chat.completions.create(stream=True)` (SSE decoder, chunk models);
3. pydantic-ai direct: `pydantic_ai.direct.model_request_stream`, the model's stream without
   the agent graph (no tool loop);
4. pydantic-ai: `Agent.iter()` streamed node by node over pydantic-ai's `OpenAIChatModel`, as
   `django_ai_chat.loop` uses it;
5. loop: `django_ai_chat.loop.astream` itself (pydantic-ai + our event queue), no tools.

Everything our worker adds (persisting, publishing, the job) comes on top of line 5; the web
process and PostgreSQL come on top of that. Two cores' worth of line 4 is therefore a ceiling on
the tokens/s a two-core machine can deliver through any stack built on these libraries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import procs  # noqa: E402

PROMPT = "Write. [tokens:{tokens}] [tps:0] [ttft:0]"


async def _raw(base: str, tokens: int) -> int:
    seen = 0
    body = {
        "model": "fake",
        "stream": True,
        "messages": [{"role": "user", "content": PROMPT.format(tokens=tokens)}],
    }
    async with (
        httpx.AsyncClient(base_url=base, timeout=60) as client,
        client.stream("POST", "/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    seen += 1
    return seen


def _openai_reader(base: str) -> Callable[[int], Awaitable[int]]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base, api_key="sk-floor")

    async def read(tokens: int) -> int:
        seen = 0
        stream = await client.chat.completions.create(
            model="fake",
            stream=True,
            messages=[{"role": "user", "content": PROMPT.format(tokens=tokens)}],
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen += 1
        return seen

    return read


def _pydantic_ai_reader(base: str) -> Callable[[int], Awaitable[int]]:
    from pydantic_ai import Agent
    from pydantic_ai.messages import PartDeltaEvent, PartStartEvent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("fake", provider=OpenAIProvider(base_url=base, api_key="sk-floor"))

    async def read(tokens: int) -> int:
        seen = 0
        agent: Agent[None, str] = Agent(model)
        async with agent.iter(PROMPT.format(tokens=tokens)) as run:
            node = run.next_node
            while not Agent.is_end_node(node):
                if Agent.is_model_request_node(node):
                    async with node.stream(run.ctx) as events:
                        async for event in events:
                            if isinstance(event, PartStartEvent | PartDeltaEvent):
                                seen += 1
                node = await run.next(node)
        return seen

    return read


def _direct_reader(base: str) -> Callable[[int], Awaitable[int]]:
    from pydantic_ai.direct import model_request_stream
    from pydantic_ai.messages import ModelRequest, PartDeltaEvent, PartStartEvent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("fake", provider=OpenAIProvider(base_url=base, api_key="sk-floor"))

    async def read(tokens: int) -> int:
        seen = 0
        request = [ModelRequest.user_text_prompt(PROMPT.format(tokens=tokens))]
        async with model_request_stream(model, request) as events:
            async for event in events:
                if isinstance(event, PartStartEvent | PartDeltaEvent):
                    seen += 1
        return seen

    return read


def _loop_reader(base: str) -> Callable[[int], Awaitable[int]]:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(AI_CHAT_OPENAI_BASE_URL=base, OPENAI_API_KEY="sk-floor")
        django.setup()
    from django_ai_chat.events import TextDeltaEvent
    from django_ai_chat.loop import ChatMessage, astream

    async def read(tokens: int) -> int:
        seen = 0
        history = [ChatMessage("user", PROMPT.format(tokens=tokens))]
        async for event in astream(history, system_prompt="", model="openai:fake", tools=False):
            if isinstance(event, TextDeltaEvent):
                seen += 1
        return seen

    return read


async def _measure(
    read: Callable[[int], Awaitable[int]], answers: int, tokens: int
) -> dict[str, Any]:
    await asyncio.gather(*(read(5) for _ in range(min(answers, 5))))  # warm: imports, clients
    cpu, wall = time.process_time(), time.perf_counter()
    counts = await asyncio.gather(*(read(tokens) for _ in range(answers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    total = sum(counts)
    return {
        "tokens": total,
        "cpu_us_per_token": cpu / total * 1e6,
        "tokens_per_s_one_core": total / cpu,
        "wall_tokens_per_s": total / wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=200)
    args = parser.parse_args(argv)
    port = procs.free_port()
    provider = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--port", str(port)],
        env=dict(os.environ) | {"PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/models", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        readers: dict[str, Callable[[int], Awaitable[int]]] = {
            "raw (httpx + json)": lambda n: _raw(base, n),
            "openai SDK": _openai_reader(base),
            "pydantic-ai direct.model_request_stream (no agent graph)": _direct_reader(base),
            "pydantic-ai Agent.iter": _pydantic_ai_reader(base),
            "django_ai_chat.loop.astream": _loop_reader(base),
        }
        print(f"{args.answers} simultaneous answers x {args.tokens} tokens, CPU of this process")
        print("| Reader | CPU µs per token | Tokens/s per core |")
        print("|---|---|---|")
        for name, read in readers.items():
            figures = asyncio.run(_measure(read, args.answers, args.tokens))
            print(
                f"| {name} | {figures['cpu_us_per_token']:.0f} | "
                f"{figures['tokens_per_s_one_core']:,.0f} |"
            )
    finally:
        provider.terminate()
        provider.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
