"""`with_worker`: procrastinate workers inside the ASGI process, for the server's lifetime."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from procrastinate.contrib.django import app as procrastinate_app

from django_ai_chat.asgi import WorkerLifespan, with_worker

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0  # upper bound for something to happen; never a speed assertion

done: asyncio.Queue[str] | None = None


@procrastinate_app.task(name="tests.asgi.record", queue="asgi_test")
async def record(word: str) -> None:
    assert done is not None
    await done.put(word)


class Lifespan:
    """Drives an ASGI app's lifespan protocol as a server would."""

    def __init__(self, application: WorkerLifespan) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(
            application({"type": "lifespan"}, self.incoming.get, self.send)
        )

    async def send(self, message: Any) -> None:
        await self.outgoing.put(dict(message))

    async def say(self, kind: str) -> dict[str, Any]:
        await self.incoming.put({"type": f"lifespan.{kind}"})
        return await asyncio.wait_for(self.outgoing.get(), WAIT)


async def unreachable(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the lifespan scope must not reach the wrapped application")


async def test_jobs_run_while_the_server_runs_and_the_workers_stop_with_it() -> None:
    global done
    done = asyncio.Queue()
    application = with_worker(unreachable, queues={"asgi_test": 2})
    lifespan = Lifespan(application)
    # Rows other tests' workers left behind are not this application's (random order).
    earlier = await sync_to_async(_registered_workers)()

    assert await lifespan.say("startup") == {"type": "lifespan.startup.complete"}
    await sync_to_async(_defer)("hello")
    assert await asyncio.wait_for(done.get(), WAIT) == "hello"

    assert await lifespan.say("shutdown") == {"type": "lifespan.shutdown.complete"}
    await asyncio.wait_for(lifespan.task, WAIT)
    assert await sync_to_async(_registered_workers)() == earlier


async def test_other_scopes_reach_the_wrapped_application() -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await with_worker(inner)({"type": "http"}, _never, _ignore)

    assert seen == ["http"]


async def _never() -> dict[str, Any]:
    raise AssertionError("not called")


async def _ignore(message: Any) -> None:
    pass


def _defer(word: str) -> None:
    try:
        record.defer(word=word)
    finally:
        connection.close()


def _registered_workers() -> set[int]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM procrastinate_workers")
            rows = cursor.fetchall()
    finally:
        # This runs in asgiref's worker thread: its connection would outlive the test database.
        connection.close()
    return {int(row[0]) for row in rows}
