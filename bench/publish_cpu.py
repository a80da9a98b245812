"""CPU per token of publishing answers' deltas, A/B in one run: one NOTIFY per delta vs packed.

    .venv/bin/python -m bench.publish_cpu [--answers 100] [--tokens 200] [--tps 50] [--rounds 2]

A throwaway PostgreSQL (so its CPU is ours alone). This process plays the answer worker:
`--answers` simultaneous `AnswerWriter`s, each appending `--tokens` tokens at `--tps` (on an
absolute schedule, as the fake provider emits them), published through `pubsub` exactly as the
worker does (no model, no database writes: only the delta path). A second process plays a web
process: it subscribes to every answer's topic, as the relays of open pages do, and counts the
text. Arms alternate (A, B, A, B...): A sends one notification per delta (the code before
packing), B packs the deltas of many answers queued in one batch into one notification
(`pubsub._codec.pack`). Reported per arm: CPU ms per 1,000 tokens of the publisher, the listener
and PostgreSQL (utime + stime from /proc, so other processes on the machine are not counted),
and notifications sent. Results: `bench/results/publish-cpu-<date>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import procs  # noqa: E402

TOPIC = "chat:messages:bench-{}"


def setup() -> Any:
    import dj_database_url
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"])},
        INSTALLED_APPS=["django_ai_chat"],
        USE_TZ=True,
    )
    django.setup()


async def listen(answers: int, expected: int) -> None:
    """The web process's side: follow every topic, count characters until all have arrived."""
    from django_ai_chat import pubsub

    topics = [TOPIC.format(i) for i in range(answers)]
    received = 0
    async with pubsub.subscribe(*topics) as messages:
        print("ready", flush=True)
        start = time.process_time()
        async for _topic, payload in messages:
            if payload.get("type") == "delta":
                received += len(payload["text"])
                if received >= expected:
                    break
        print(json.dumps({"cpu": time.process_time() - start}), flush=True)


async def publish(answers: int, tokens: int, tps: float) -> dict[str, Any]:
    from django_ai_chat.streaming import AnswerWriter

    async def flush(text: str, fields: dict[str, Any]) -> None:
        return None

    loop = asyncio.get_running_loop()

    async def one(index: int, t0: float) -> None:
        async with AnswerWriter(f"m{index}", topic=TOPIC.format(index), flush=flush) as writer:
            for i in range(tokens):
                delay = t0 + i / tps - loop.time()
                await asyncio.sleep(max(0.0, delay))
                await writer.append("tok ")

    t0 = loop.time() + 0.2
    await asyncio.gather(*(one(i, t0 + (i % 50) / (50 * tps)) for i in range(answers)))
    return {}


def arm(packed: bool, args: argparse.Namespace, pg_pid: int) -> dict[str, Any]:
    from django_ai_chat.pubsub import _postgres

    sent = {"notifications": 0}
    real_pack = _postgres.pack

    def counting_pack(messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out = real_pack(messages) if packed else messages
        sent["notifications"] += len(out)
        return out

    _postgres.pack = counting_pack  # type: ignore[assignment]
    expected = args.answers * args.tokens * len("tok ")
    command = [sys.executable, "-m", "bench.publish_cpu", "--listen", str(expected)]
    listener = subprocess.Popen(
        [*command, "--answers", str(args.answers)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
    )
    assert listener.stdout is not None
    assert listener.stdout.readline().strip() == "ready"
    pg_before = _pg_cpu(pg_pid)
    cpu_before, wall_before = time.process_time(), time.monotonic()
    asyncio.run(publish(args.answers, args.tokens, args.tps))
    cpu, wall = time.process_time() - cpu_before, time.monotonic() - wall_before
    line = listener.stdout.readline()
    listener.wait(60)
    pg = _pg_cpu(pg_pid) - pg_before
    _postgres.pack = real_pack
    total = args.answers * args.tokens
    return {
        "packed": packed,
        "tokens": total,
        "wall_s": wall,
        "notifications": sent["notifications"],
        "cpu_us_per_token": {
            "publisher": 1000 * cpu / total * 1000,
            "listener": 1000 * json.loads(line)["cpu"] / total * 1000,
            "postgres": 1000 * pg / total * 1000,
        },
    }


def _pg_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = sum(int(f) for f in fields[11:15]) / procs.TICKS
    return own + sum(procs.cpu_seconds(p) for p in procs.children(pid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--tps", type=float, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--listen", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listen:
        setup()
        asyncio.run(listen(args.answers, args.listen))
        return
    from django_ai_chat.dev import devdb

    cluster = devdb.start("bench-publish")
    try:
        os.environ["DATABASE_URL"] = cluster.url
        setup()
        pg_pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
        load = os.getloadavg()
        runs = []
        for _ in range(args.rounds):
            for packed in (False, True):
                result = arm(packed, args, pg_pid)
                runs.append(result)
                cpu = result["cpu_us_per_token"]
                print(
                    f"{'packed' if packed else 'one per delta'}: "
                    f"{result['notifications']:,} notifications for {result['tokens']:,} tokens; "
                    f"CPU µs per token: publisher {cpu['publisher']:.0f}, "
                    f"listener {cpu['listener']:.0f}, postgres {cpu['postgres']:.0f}",
                    flush=True,
                )
        out = {
            "config": vars(args),
            "load_average_before": load,
            "load_average_after": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "runs": runs,
        }
        path = ROOT / "bench" / "results" / f"publish-cpu-{time.strftime('%Y-%m-%d_%H%M')}.json"
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
