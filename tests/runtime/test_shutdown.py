"""A stop signal to the server process ends open event streams (`django_ai_chat._shutdown`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from types import FrameType

import pytest

from django_ai_chat import _shutdown


@pytest.fixture
def server_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A SIGTERM handler of the "server", installed before the stream view chains onto it."""
    monkeypatch.setattr(_shutdown, "_stopped", False)
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


async def _endless() -> AsyncIterator[str]:
    yield "retry: 1000\n\n"
    while True:
        await asyncio.sleep(3600)
        yield ": keep-alive\n\n"


async def test_sigterm_ends_an_open_stream_and_still_reaches_the_servers_handler(
    server_handler: list[int],
) -> None:
    _shutdown.watch_signals()
    _shutdown.watch_signals()  # idempotent: one chained handler
    stream = _shutdown.until_stopping(_endless())
    assert await anext(stream) == "retry: 1000\n\n"
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    assert not pending.done()

    signal.raise_signal(signal.SIGTERM)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 10)
    assert server_handler == [signal.SIGTERM]  # once: the server stops as before

    # A stream opened after the signal ends at once.
    assert [chunk async for chunk in _shutdown.until_stopping(_endless())] == []


async def test_a_stream_that_ends_by_itself_is_passed_through_whole(
    server_handler: list[int],
) -> None:
    async def finite() -> AsyncIterator[str]:
        for chunk in ("a", "b", "c"):
            yield chunk

    assert [chunk async for chunk in _shutdown.until_stopping(finite())] == ["a", "b", "c"]
