"""CPU per token of `django_ai_chat.loop.astream` itself, its paths A/B in one run.

    .venv/bin/python -m bench.loop_cpu [--answers 100] [--tokens 200] [--repeats 3]

The fake OpenAI server runs in its own process (`bench/fake_provider.py`, unthrottled); this
process reads `--answers` simultaneous answers of `--tokens` tokens through `astream`, one arm
after the other, the arms interleaved `--repeats` times, and reports its own CPU time per token
(`time.process_time`: utime + stime of this process, the provider's not counted):

- direct, a tool offered: a tool the model could call (and does not), the first request
  streamed with `pydantic_ai.direct.model_request_stream`, as an answer of the generated app
  goes (its `ai_tools.py` registers two);
- Agent.iter, a tool offered: the same run with the loop's switch off (`loop._direct_requests`),
  through `Agent.iter`, as every run went before;
- direct, no tools: no tool offered.

Also printed: how busy the machine's cores were meanwhile apart from this process
(`/proc/stat` minus our own CPU), since other processes share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
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


class _Echo:
    """A tool the model is offered and never calls (the fake provider calls none unasked)."""

    name = "echo"
    description = "Say it back."
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
    }

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        return arguments.get("text", "")


def _reader(base: str, *, direct: bool, tools: bool) -> Callable[[int], Awaitable[int]]:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(AI_CHAT_OPENAI_BASE_URL=base, OPENAI_API_KEY="sk-loop-cpu")
        django.setup()
    from django_ai_chat import loop
    from django_ai_chat.events import TextDeltaEvent

    async def read(tokens: int) -> int:
        loop._direct_requests = direct
        seen = 0
        history = [loop.ChatMessage("user", PROMPT.format(tokens=tokens))]
        events = loop.astream(
            history,
            system_prompt="Be brief.",
            model="openai:fake",
            tools=[_Echo()] if tools else False,
        )
        async for event in events:
            if isinstance(event, TextDeltaEvent):
                seen += 1
        return seen

    return read


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if kind == "asyncio":
        return None
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise SystemExit(f"--loops: unknown event loop {kind!r} (asyncio, uvloop)")


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


async def _measure(
    read: Callable[[int], Awaitable[int]], answers: int, tokens: int
) -> dict[str, Any]:
    await asyncio.gather(*(read(5) for _ in range(min(answers, 5))))  # warm: imports, clients
    busy, _ = _busy_jiffies()
    cpu, wall = time.process_time(), time.perf_counter()
    counts = await asyncio.gather(*(read(tokens) for _ in range(answers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    busy2, _ = _busy_jiffies()
    hz = os.sysconf("SC_CLK_TCK")
    cores = os.cpu_count() or 1
    others = max(0.0, ((busy2 - busy) / hz - cpu) / wall) if wall else 0.0
    total_tokens = sum(counts)
    return {
        "tokens": total_tokens,
        "cpu_us_per_token": cpu / total_tokens * 1e6,
        "wall_s": wall,
        "other_cores_busy": min(others, float(cores)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--loops",
        default="asyncio",
        help="Event loops to run each arm on, comma-separated: asyncio, uvloop (default: asyncio)",
    )
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
        arms = {
            "direct (a tool offered)": _reader(base, direct=True, tools=True),
            "Agent.iter (a tool offered, switch off)": _reader(base, direct=False, tools=True),
            "direct (no tools)": _reader(base, direct=True, tools=False),
        }
        print(f"{args.answers} simultaneous answers x {args.tokens} tokens through loop.astream")
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
        print("| Repeat | Arm | CPU µs per token | Other processes (cores busy) |")
        print("|---|---|---|---|")
        loops = args.loops.split(",")
        if len(loops) > 1:
            arms = {f"{name}, {kind}": read for kind in loops for name, read in arms.items()}
        results: dict[str, list[float]] = {name: [] for name in arms}
        for repeat in range(1, args.repeats + 1):
            for name, read in arms.items():
                kind = name.rsplit(", ", 1)[-1] if len(loops) > 1 else loops[0]
                with asyncio.Runner(loop_factory=_loop_factory(kind)) as runner:
                    figures = runner.run(_measure(read, args.answers, args.tokens))
                results[name].append(figures["cpu_us_per_token"])
                print(
                    f"| {repeat} | {name} | {figures['cpu_us_per_token']:.0f} | "
                    f"{figures['other_cores_busy']:.2f} |",
                    flush=True,
                )
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        for name, values in results.items():
            print(f"{name}: median {sorted(values)[len(values) // 2]:.0f} µs per token")
    finally:
        provider.terminate()
        provider.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
