"""Ending open event streams when the web server is told to stop (SIGTERM, SIGINT).

An ASGI server stopping gracefully (uvicorn, gunicorn's uvicorn worker) stops accepting
connections and waits for the responses in progress to end; an event stream never ends by
itself, so the process stayed up for as long as a tab was open, refusing new connections. The
ASGI lifespan `shutdown` message comes only after those responses ended, too late to help, and
the servers tell a request nothing else. So the stream view chains a handler onto the server's
own SIGTERM/SIGINT handlers (`watch_signals`): the signal ends every open stream of the process
at its next event (`until_stopping`), cleanly, and the server's handler then stops the server as
before. Browsers reconnect, with their cursor, to a process still serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import weakref
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any, Final

__all__ = ["stopping", "until_stopping", "watch_signals"]

_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)

_events: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
    weakref.WeakKeyDictionary()
)
_stopped = False
"""A stop signal arrived (event loops that start later see it too)."""

_MARK: Final = "_django_ai_chat_stop_handler"


def stopping() -> asyncio.Event:
    """The event of this event loop set once the process is told to stop."""
    loop = asyncio.get_running_loop()
    event = _events.get(loop)
    if event is None:
        event = _events[loop] = asyncio.Event()
        if _stopped:
            event.set()
    return event


def watch_signals() -> None:
    """Chain a handler that sets `stopping()` onto SIGTERM's and SIGINT's current handlers.

    Idempotent; a server that installs its handlers later replaces ours (then call it again,
    as the stream view does on every request). Only the main thread may set signal handlers:
    elsewhere it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        previous = signal.getsignal(signum)
        if getattr(previous, _MARK, False):
            continue
        handler = _chained(previous)
        setattr(handler, _MARK, True)
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, handler)


def _chained(previous: Any) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        _notify()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            # Nobody handled it before us: what the default would have done.
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    return handler


def _notify() -> None:
    global _stopped
    _stopped = True
    for loop, event in list(_events.items()):
        with contextlib.suppress(RuntimeError):  # a closed loop
            loop.call_soon_threadsafe(event.set)


async def until_stopping(events: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield from `events` until the process is told to stop; then close it and end.

    Each step of `events` runs in a task of its own, so that the stop can interrupt a wait.
    """
    stop = stopping()
    stop_waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            step: asyncio.Future[Any] = asyncio.ensure_future(anext(events))
            await asyncio.wait({step, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
                return
            try:
                chunk = step.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        stop_waiter.cancel()
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
