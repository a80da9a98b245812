"""Pub/sub across processes, with fan-out, transactions and reconnects, on Postgres and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from django_ai_chat import pubsub

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
WAIT = 20.0  # generous upper bound for a message to arrive; never a speed assertion


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run bin/system-deps (Debian: redis-server).")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            threading.Event().wait(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=["postgres", "redis"])
def backend(request: pytest.FixtureRequest, settings: Any) -> str:
    if request.param == "redis":
        settings.AI_CHAT_PUBSUB_URL = request.getfixturevalue("redis_url")
    else:
        settings.AI_CHAT_PUBSUB_URL = None
    return str(request.param)


@pytest.fixture
def topic() -> str:
    return f"test:{uuid.uuid4()}"


async def _next(messages: pubsub.Subscription) -> tuple[str, dict[str, Any]]:
    return await asyncio.wait_for(anext(messages), WAIT)


async def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run sync ORM code off the event loop, closing that thread's connection afterwards."""

    def run() -> Any:
        try:
            return fn()
        finally:
            connection.close()

    return await asyncio.to_thread(run)


def _kill_listener(backend: str) -> int:
    if backend == "redis":
        import redis
        from django.conf import settings

        client = redis.Redis.from_url(settings.AI_CHAT_PUBSUB_URL)
        try:
            return int(client.client_kill_filter(_type="pubsub"))
        finally:
            client.close()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'django_ai_chat.pubsub' AND datname = current_database()"
        )
        return int(cursor.fetchone()[0])


async def _peer(*args: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PEER_DB_NAME": str(connection.settings_dict["NAME"]),
        "PEER_PUBSUB_URL": _current_url(),
        "PYTHONPATH": str(REPO),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.runtime._pubsub_peer",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )


def _current_url() -> str:
    from django.conf import settings

    return str(getattr(settings, "AI_CHAT_PUBSUB_URL", None) or "")


async def _lines(proc: asyncio.subprocess.Process) -> AsyncIterator[str]:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        if not line:
            return
        yield line.decode().strip()


async def test_subscriber_receives_what_another_process_publishes(backend: str, topic: str) -> None:
    async with pubsub.subscribe(topic) as messages:
        proc = await _peer("publish", topic, "5")
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
        received = [await _next(messages) for _ in range(5)]
    assert received == [(topic, {"n": i, "text": "héllo"}) for i in range(5)]


async def test_another_process_receives_what_this_one_publishes(backend: str, topic: str) -> None:
    proc = await _peer("subscribe", topic, "3")
    lines = _lines(proc)
    assert await anext(lines) == "ready"
    for i in range(3):
        await pubsub.apublish(topic, {"n": i})
    received = [json.loads(line) async for line in lines]
    assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    assert received == [[topic, {"n": i}] for i in range(3)]


async def test_fan_out_to_several_subscribers_over_one_listener(backend: str, topic: str) -> None:
    other = f"{topic}:other"
    async with (
        pubsub.subscribe(topic) as first,
        pubsub.subscribe(topic) as second,
        pubsub.subscribe(other, topic) as both,
    ):
        await pubsub.apublish(topic, {"type": "delta", "text": "a"})
        await pubsub.apublish(other, {"type": "delta", "text": "b"})
        assert await _next(first) == (topic, {"type": "delta", "text": "a"})
        assert await _next(second) == (topic, {"type": "delta", "text": "a"})
        assert await _next(both) == (topic, {"type": "delta", "text": "a"})
        assert await _next(both) == (other, {"type": "delta", "text": "b"})
        # `first` follows only `topic`: the next thing it sees is the next message on it.
        await pubsub.apublish(topic, {"type": "end"})
        assert await _next(first) == (topic, {"type": "end"})
        if backend == "postgres":

            def listeners() -> int:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'django_ai_chat.pubsub' AND datname = current_database()"
                    )
                    return int(cursor.fetchone()[0])

            assert await _in_thread(listeners) == 1


async def test_publish_in_transaction_is_delivered_at_commit(backend: str, topic: str) -> None:
    published, proceed = threading.Event(), threading.Event()

    def write() -> None:
        with transaction.atomic():
            pubsub.publish(topic, {"step": "in-transaction"})
            published.set()
            proceed.wait(WAIT)

    async with pubsub.subscribe(topic) as messages:
        writer = asyncio.ensure_future(_in_thread(write))
        await asyncio.to_thread(published.wait, WAIT)
        # Published after the transactional one but delivered first: the first waits for commit.
        await pubsub.apublish(topic, {"step": "outside"})
        assert await _next(messages) == (topic, {"step": "outside"})
        proceed.set()
        await writer
        assert await _next(messages) == (topic, {"step": "in-transaction"})


async def test_publish_in_rolled_back_transaction_is_never_delivered(
    backend: str, topic: str
) -> None:
    class Rollback(Exception):
        pass

    def write() -> None:
        with pytest.raises(Rollback), transaction.atomic():
            pubsub.publish(topic, {"step": "rolled-back"})
            raise Rollback
        pubsub.publish(topic, {"step": "after"})

    async with pubsub.subscribe(topic) as messages:
        await _in_thread(write)
        assert await _next(messages) == (topic, {"step": "after"})


async def test_nested_savepoint_rollback_drops_only_its_message(backend: str, topic: str) -> None:
    def write() -> None:
        with transaction.atomic():
            pubsub.publish(topic, {"n": 1})
            try:
                with transaction.atomic():
                    pubsub.publish(topic, {"n": 2})
                    raise ValueError
            except ValueError:
                pass
            pubsub.publish(topic, {"n": 3})

    async with pubsub.subscribe(topic) as messages:
        await _in_thread(write)
        assert await _next(messages) == (topic, {"n": 1})
        assert await _next(messages) == (topic, {"n": 3})


async def test_oversized_payload_is_refused(backend: str, topic: str) -> None:
    big = {"text": "x" * 7_000}
    with pytest.raises(ValueError, match=r"limit is 7000"):
        await pubsub.apublish(topic, big)
    with pytest.raises(ValueError, match=r"limit is 7000"):
        await _in_thread(lambda: pubsub.publish(topic, big))
    # Multi-byte characters count in bytes: 2,000 times "€" is 6,000 bytes, 2,400 is 7,200.
    with pytest.raises(ValueError, match=r"bytes encoded"):
        await pubsub.apublish(topic, {"text": "€" * 2_400})
    async with pubsub.subscribe(topic) as messages:
        await pubsub.apublish(topic, {"text": "€" * 2_000})
        assert await _next(messages) == (topic, {"text": "€" * 2_000})


async def test_invalid_topics_and_payloads_are_refused(backend: str) -> None:
    with pytest.raises(ValueError, match="topic"):
        await pubsub.apublish("", {})
    with pytest.raises(ValueError, match="topic"):
        await pubsub.apublish("a\nb", {})
    with pytest.raises(TypeError, match="must be a dict"):
        await pubsub.apublish("t", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON-serialisable"):
        await pubsub.apublish("t", {"when": object()})
    with pytest.raises(ValueError, match="at least one topic"):
        async with pubsub.subscribe():
            pass


async def test_listener_reconnects_and_tells_subscribers(backend: str, topic: str) -> None:
    async with pubsub.subscribe(topic) as messages:
        await pubsub.apublish(topic, {"n": 1})
        assert await _next(messages) == (topic, {"n": 1})
        assert await _in_thread(lambda: _kill_listener(backend)) == 1
        # Messages may have been lost while it was down: the subscriber is told, not left waiting.
        assert await _next(messages) == (topic, {"type": "resync", "reason": "reconnected"})
        await pubsub.apublish(topic, {"n": 2})
        assert await _next(messages) == (topic, {"n": 2})


async def test_slow_subscriber_gets_resync_and_does_not_block_others(
    backend: str, topic: str
) -> None:
    async with pubsub.subscribe(topic) as slow, pubsub.subscribe(topic) as fast:
        for n in range(pubsub.QUEUE_SIZE + 5):
            await pubsub.apublish(topic, {"n": n})
            assert await _next(fast) == (topic, {"n": n})
        # The slow one overflowed at QUEUE_SIZE + 1: its backlog became one resync, and it
        # continues with what arrived after that.
        assert await _next(slow) == (topic, {"type": "resync", "reason": "overflow"})
        rest = [await _next(slow) for _ in range(4)]
        assert rest == [
            (topic, {"n": n}) for n in range(pubsub.QUEUE_SIZE + 1, pubsub.QUEUE_SIZE + 5)
        ]


async def test_iteration_ends_when_the_block_exits(backend: str, topic: str) -> None:
    async with pubsub.subscribe(topic) as messages:
        pass
    assert [m async for m in messages] == []


def test_sync_publish_outside_transaction_is_immediate(backend: str, topic: str) -> None:
    async def scenario() -> tuple[str, dict[str, Any]]:
        async with pubsub.subscribe(topic) as messages:
            await _in_thread(lambda: pubsub.publish(topic, {"ok": True}))
            return await _next(messages)

    assert asyncio.run(scenario()) == (topic, {"ok": True})


async def test_concurrent_publishes_arrive_in_order_and_duplicates_are_kept(
    backend: str, topic: str
) -> None:
    async with pubsub.subscribe(topic) as messages:
        # Started together, so they queue up and go out in batches.
        await asyncio.gather(*(pubsub.apublish(topic, {"n": n}) for n in range(300)))
        assert [await _next(messages) for _ in range(300)] == [
            (topic, {"n": n}) for n in range(300)
        ]
        # Identical payloads in one batch are still one delivery each.
        await asyncio.gather(
            *(pubsub.apublish(topic, {"type": "message", "id": 1}) for _ in range(5))
        )
        await pubsub.apublish(topic, {"type": "end"})
        received = [await _next(messages) for _ in range(6)]
    assert received == [(topic, {"type": "message", "id": 1})] * 5 + [(topic, {"type": "end"})]


async def test_a_batch_larger_than_one_notification_arrives_whole_and_in_order(
    backend: str, topic: str
) -> None:
    # Many messages queued at once travel packed (Postgres: as few NOTIFYs as fit), mixed with
    # topics nobody here follows and with the control channel; each arrives once, in order.
    text = "x" * 200
    others = (f"{topic}:other", f"{topic}{pubsub.CONTROL_SUFFIX}")
    async with pubsub.subscribe(topic, others[1]) as messages:
        await asyncio.gather(
            *(
                pubsub.apublish(t, {"n": n, "text": text})
                for n in range(200)
                for t in (topic, *others)
            )
        )
        received = [await _next(messages) for _ in range(400)]
    for followed in (topic, others[1]):
        assert [p for t, p in received if t == followed] == [
            {"n": n, "text": text} for n in range(200)
        ]


def _listened_channels(backend: str) -> set[str]:
    if backend == "redis":
        import redis
        from django.conf import settings

        client = redis.Redis.from_url(settings.AI_CHAT_PUBSUB_URL, decode_responses=True)
        try:
            return set(client.pubsub_channels())
        finally:
            client.close()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query FROM pg_stat_activity "
            "WHERE application_name = 'django_ai_chat.pubsub' AND datname = current_database()"
        )
        return {row[0].removeprefix("LISTEN ").strip('"') for row in cursor.fetchall()}


async def test_control_topics_travel_on_a_channel_of_their_own(backend: str, topic: str) -> None:
    """A process that follows only control topics (a worker) does not listen to the data."""
    control = topic + pubsub.CONTROL_SUFFIX
    async with pubsub.subscribe(control) as requests:
        assert await _in_thread(lambda: _listened_channels(backend)) == {pubsub.CONTROL_CHANNEL}
        # Published together, so data and control go out in one batch.
        await asyncio.gather(
            *(pubsub.apublish(topic, {"n": n}) for n in range(3)),
            pubsub.apublish(control, {"type": "stop"}),
        )
        await _in_thread(lambda: pubsub.publish(control, {"type": "sync"}))
        assert [await _next(requests) for _ in range(2)] == [
            (control, {"type": "stop"}),
            (control, {"type": "sync"}),
        ]


async def test_one_subscription_may_follow_both_channels(backend: str, topic: str) -> None:
    control = topic + pubsub.CONTROL_SUFFIX
    async with pubsub.subscribe(topic, control) as messages:
        await asyncio.gather(pubsub.apublish(topic, {"n": 1}), pubsub.apublish(control, {"n": 2}))
        assert {_key(await _next(messages)) for _ in range(2)} == {(topic, 1), (control, 2)}
        # One listener per channel, each reconnects and tells about its own topics.
        assert await _in_thread(lambda: _kill_listener(backend)) == 2
        resyncs = {_key(await _next(messages)) for _ in range(2)}
        assert resyncs == {(topic, "reconnected"), (control, "reconnected")}
        await pubsub.apublish(control, {"n": 3})
        assert await _next(messages) == (control, {"n": 3})


def _key(message: tuple[str, dict[str, Any]]) -> tuple[str, Any]:
    topic, payload = message
    return topic, payload.get("n", payload.get("reason"))


async def test_a_failed_publish_reports_its_error_to_the_caller(
    backend: str, topic: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on this port: the publish must raise, not vanish.
    closed_port = _free_port()
    if backend == "redis":
        settings.AI_CHAT_PUBSUB_URL = f"redis://127.0.0.1:{closed_port}/0"
    else:
        monkeypatch.setitem(connection.settings_dict, "PORT", str(closed_port))
    with pytest.raises(Exception, match=str(closed_port)):
        await pubsub.apublish(topic, {"n": 1})


async def test_redis_outage_at_commit_is_logged_not_raised(
    redis_url: str, settings: Any, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The transaction has committed by then: failing the request would misreport the work.
    settings.AI_CHAT_PUBSUB_URL = f"redis://127.0.0.1:{_free_port()}/0"

    def write() -> None:
        with transaction.atomic():
            pubsub.publish(topic, {"n": 1})

    await _in_thread(write)
    assert any(r.levelname == "ERROR" and "on_commit" in r.getMessage() for r in caplog.records), (
        caplog.text
    )
    # Outside a transaction the caller hears about it.
    with pytest.raises(Exception, match="Connect"):
        await _in_thread(lambda: pubsub.publish(topic, {"n": 2}))
