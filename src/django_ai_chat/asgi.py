"""Run the job worker inside the ASGI server process: one command for development.

`with_worker(application)` wraps an ASGI application (Django's `ASGIHandler`) with an ASGI
*lifespan* handler that starts procrastinate workers when the server starts and stops them,
gracefully, when it stops. The web side keeps deferring jobs through Django's connection (so an
enqueue stays in the same transaction as the ORM write); the workers use procrastinate's worker
connector, because the Django connector cannot LISTEN (`docs/design.md`, "Jobs").
The workers are `django_ai_chat.worker.Workers`, with the same heartbeat, stall and deletion
settings as the generated `manage.py <app>_worker`.

Production runs web and workers as separate processes (`uvicorn <project>.asgi:application` and
`manage.py <app>_worker`); this wrapper is for `manage.py chat_dev` and the demo.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from django_ai_chat.worker import DEFAULT_CONCURRENCY, Workers

__all__ = ["DEFAULT_CONCURRENCY", "ASGIApp", "WorkerLifespan", "with_worker"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]
"""Any ASGI 3 application (loosely typed: Django's and uvicorn's own aliases differ)."""

logger = logging.getLogger(__name__)


class WorkerLifespan:
    """An ASGI application that runs procrastinate workers for the lifetime of the server.

    HTTP and WebSocket scopes go to the wrapped application unchanged; the `lifespan` scope is
    handled here (Django's handler does not support it). The wrapped application's own lifespan,
    if it has one, is not called.

    Attributes:
        application: The wrapped ASGI application.
        queues: Queue name → concurrency; empty: one worker for every queue.
        shutdown_timeout: Seconds running jobs get to finish when the server stops; after that
            they are aborted (the generated `respond` job keeps the partial answer).
    """

    def __init__(
        self,
        application: ASGIApp,
        *,
        queues: Mapping[str, int] | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.application = application
        self.queues: dict[str, int] = dict(queues or {})
        self.shutdown_timeout = shutdown_timeout
        self._workers: Workers | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection; the `lifespan` one starts and stops the workers."""
        if scope["type"] != "lifespan":
            await self.application(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.astart()
                except Exception as error:
                    logger.exception("The in-process job worker did not start")
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.astop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def astart(self) -> None:
        """Open a worker connection pool and start one worker task per queue."""
        workers = Workers(self.queues, shutdown_timeout=self.shutdown_timeout, name="in-process")
        await workers.astart()
        self._workers = workers
        logger.info("Job worker running inside the server: %s", ", ".join(workers.names))

    async def astop(self) -> None:
        """Stop the workers (running jobs get `shutdown_timeout` seconds) and close the pool."""
        workers, self._workers = self._workers, None
        if workers is not None:
            await workers.astop()


def with_worker(
    application: ASGIApp,
    *,
    queues: Mapping[str, int] | None = None,
    shutdown_timeout: float = 5.0,
) -> WorkerLifespan:
    """Wrap an ASGI application so procrastinate workers run inside the server process.

    Serve the result with an ASGI server that runs the lifespan protocol (uvicorn does by
    default: `lifespan="auto"`).

    Args:
        application: The ASGI application, usually `django.core.asgi.get_asgi_application()`.
        queues: Queue name → how many of its jobs run at once, e.g.
            `{"chat_responses": 10, "conversations": 10}`. `None` or empty: one worker over
            every queue, running up to `DEFAULT_CONCURRENCY` jobs.
        shutdown_timeout: Seconds running jobs get to finish when the server stops.

    Returns:
        The wrapped ASGI application.

    Example:
        ```python
        from django.core.asgi import get_asgi_application
        from django_ai_chat.asgi import with_worker

        application = with_worker(get_asgi_application(), queues={"chat_responses": 10})
        ```
    """
    return WorkerLifespan(application, queues=queues, shutdown_timeout=shutdown_timeout)
