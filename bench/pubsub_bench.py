"""Pub/sub hot-path numbers: publish→receive latency, per-publish cost, many concurrent streams.

    .venv/bin/python bench/pubsub_bench.py [--redis redis://127.0.0.1:6379/0]

Starts a throwaway Postgres when DATABASE_URL is unset. Latency is measured inside one process
(publisher and subscriber share a clock) but every message makes the full round trip through the
server: NOTIFY → LISTEN connection → fan-out queue.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

import dj_database_url
import django
from django.conf import settings


def setup(redis_url: str | None) -> Any:
    cluster = None
    if not os.environ.get("DATABASE_URL"):
        from django_ai_chat.dev import devdb

        cluster = devdb.start("bench")
        os.environ["DATABASE_URL"] = cluster.url
    settings.configure(
        DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"])},
        INSTALLED_APPS=["django_ai_chat"],
        AI_CHAT_PUBSUB_URL=redis_url,
        USE_TZ=True,
    )
    django.setup()
    return cluster


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def report(name: str, latencies_ms: list[float]) -> None:
    print(
        f"{name}: n={len(latencies_ms)} median={statistics.median(latencies_ms):.3f} ms "
        f"p95={pct(latencies_ms, 0.95):.3f} ms p99={pct(latencies_ms, 0.99):.3f} ms"
    )


async def sequential(n: int) -> None:
    from django_ai_chat import pubsub

    latencies: list[float] = []
    async with pubsub.subscribe("bench:seq") as messages:
        await pubsub.apublish("bench:seq", {"warm": True})
        await anext(messages)
        start = time.perf_counter()
        for i in range(n):
            sent = time.perf_counter()
            await pubsub.apublish(
                "bench:seq", {"type": "delta", "id": "x", "offset": i, "text": "tok "}
            )
            await anext(messages)
            latencies.append((time.perf_counter() - sent) * 1000)
        elapsed = time.perf_counter() - start
    report("apublish→receive, one at a time", latencies)
    print(f"  {n / elapsed:,.0f} round trips/s")


async def concurrent(streams: int, tokens: int, subscribers_per_stream: int) -> None:
    from django_ai_chat import pubsub

    latencies: list[float] = []

    async def consume(topic: str, ready: asyncio.Event) -> None:
        async with pubsub.subscribe(topic) as messages:
            ready.set()
            async for _, payload in messages:
                latencies.append((time.perf_counter() - payload["t"]) * 1000)
                if payload["offset"] == tokens - 1:
                    return

    async def produce(topic: str) -> None:
        for i in range(tokens):
            await pubsub.apublish(
                topic, {"type": "delta", "offset": i, "text": "tok ", "t": time.perf_counter()}
            )
            await asyncio.sleep(0.02)  # ~50 tokens/s, a fast model

    consumers = []
    for s in range(streams):
        for _ in range(subscribers_per_stream):
            ready = asyncio.Event()
            consumers.append(asyncio.create_task(consume(f"bench:c:{s}", ready)))
            await ready.wait()
    start = time.perf_counter()
    await asyncio.gather(*(produce(f"bench:c:{s}") for s in range(streams)))
    await asyncio.gather(*consumers)
    elapsed = time.perf_counter() - start
    report(
        f"{streams} streams x {tokens} tokens at 50 tok/s, "
        f"{subscribers_per_stream} subscriber(s) each",
        latencies,
    )
    print(
        f"  {streams * tokens / elapsed:,.0f} publishes/s, "
        f"{len(latencies) / elapsed:,.0f} deliveries/s"
    )


def sync_publish_cost(n: int) -> None:
    from django.db import connection

    from django_ai_chat import pubsub

    pubsub.publish("bench:sync", {"warm": True})
    start = time.perf_counter()
    for i in range(n):
        pubsub.publish("bench:sync", {"type": "delta", "id": "x", "offset": i, "text": "tok "})
    print(
        "sync publish() outside a transaction: "
        f"{(time.perf_counter() - start) / n * 1e6:.0f} µs each"
    )
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None)
    parser.add_argument("--streams", type=int, default=300)
    args = parser.parse_args()
    cluster = setup(args.redis)
    try:
        print(f"backend: {'redis' if args.redis else 'postgres'}")
        sync_publish_cost(2000)
        asyncio.run(sequential(2000))
        asyncio.run(concurrent(args.streams, 50, 1))
        asyncio.run(concurrent(50, 50, 4))
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
