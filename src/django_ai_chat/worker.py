"""Run procrastinate job workers: the one runner behind `<app>_worker` and `chat_dev`.

`Workers` runs one procrastinate worker per queue, each with its own concurrency, over one
connection pool of procrastinate's *worker* connector (the Django connector cannot LISTEN for new
jobs; the web side keeps deferring through Django's
connection, so an enqueue stays in the transaction of the write that caused it). Every worker
started here gets the same settings: a heartbeat every `AI_CHAT_STALLED_AFTER / 3` seconds
(the periodic rescue of `django_ai_chat.jobs` treats a worker silent for `AI_CHAT_STALLED_AFTER`
seconds as dead), and successful jobs deleted (the messages are the record that matters).

Procrastinate stops a worker whose side task (heartbeat, periodic deferrer, job listener) fails,
and `run_worker_async` then simply returns: after a database blip (a failover, a restart,
PgBouncer recycling connections) a process would sit idle or exit with status 0, which no
supervisor restarts. `Workers` restarts such a worker on fresh connections, and gives up with
`WorkerStopped` (a non-zero exit) only when it keeps failing.

Stopping (a deploy): the workers take no new job at once, so other worker processes get them;
running jobs get `shutdown_timeout` seconds to finish; answers still running then are *handed
over* (`handover_scope`: the answer's text so far is written to its row and a job to continue it
is queued, which another worker, or this one once restarted, picks up), and whatever is left
after `HANDOVER_SECONDS` more is cancelled.

Users: `run_workers` (the generated `manage.py <app>_worker`, through `WorkerCommand`) and
`django_ai_chat.asgi.WorkerLifespan` (`manage.py chat_dev`: workers inside the ASGI server).

Longer than our usual modules: supervising, stopping and handing over are one life cycle (the
handover scope is armed by the stop that `Workers` runs), and `WorkerCommand` is its thin shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from asgiref.sync import sync_to_async
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from django_ai_chat.conf import ai_chat_settings

if TYPE_CHECKING:
    import psycopg
    from procrastinate import App
    from procrastinate.connector import BaseAsyncConnector

    from django_ai_chat.jobs import ChatJobs

__all__ = [
    "DEFAULT_CONCURRENCY",
    "HANDOVER_SECONDS",
    "HandedOver",
    "HandoverScope",
    "WorkerCommand",
    "WorkerStopped",
    "Workers",
    "handover_scope",
    "run_workers",
]

DEFAULT_CONCURRENCY = 10
"""Jobs one worker runs at once when no per-queue limit is given."""

GIVE_UP_AFTER: Final = 60.0
"""Seconds a worker may keep stopping or failing before the process gives up (exits non-zero)."""

_RESTART_DELAYS: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds before the 1st, 2nd, ... consecutive restart: a database coming back gets time."""

HANDOVER_SECONDS: Final = 5.0
"""Seconds a stopping worker's answers get to hand themselves over before they are cancelled."""

logger = logging.getLogger(__name__)

_handovers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = (
    weakref.WeakKeyDictionary()
)
"""Per event loop: set when the workers running on it ask their answers to hand over."""

_side_jobs: set[asyncio.Task[Any]] = set()
"""Short tasks jobs leave behind (waking the next job): awaited before the pool closes."""


def _handover_event() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    event = _handovers.get(loop)
    if event is None:
        event = _handovers[loop] = asyncio.Event()
    return event


def keep_until_stopped(task: asyncio.Task[Any]) -> None:
    """Keep `task` (a job's short afterthought) referenced; stopping workers wait for it."""
    _side_jobs.add(task)
    task.add_done_callback(_side_jobs.discard)


class HandedOver(Exception):
    """Raised by a job that a stopping worker cut off after it saved its state.

    `ChatJobs` queues a job that continues the answer (`Responder.resume`).

    Attributes:
        message_id: The unfinished answer, its text so far in its row.
    """

    def __init__(self, message_id: str) -> None:
        super().__init__(f"Answer {message_id!r} handed over to another worker.")
        self.message_id = message_id


class HandoverScope:
    """Cancels its body when the workers of this event loop hand their answers over.

    The cancellation is absorbed on exit; `handed_over` tells whether it happened. See
    `handover_scope`.
    """

    def __init__(self) -> None:
        self.handed_over = False
        self._task: asyncio.Task[Any] | None = None
        self._waiter: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.current_task()
        if self._task is None:
            raise RuntimeError("handover_scope() must be used inside a task.")
        event = _handover_event()
        self._waiter = asyncio.get_running_loop().create_task(self._wait(event))
        await asyncio.sleep(0)  # an event already set cancels the body right away
        return self

    async def _wait(self, event: asyncio.Event) -> None:
        await event.wait()
        if self._task is not None and not self.handed_over:
            self.handed_over = True
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
        if self.handed_over and self._task is not None and self._task.uncancel() == 0:
            # Our cancellation and no other one pending: absorb it.
            return exc_type is asyncio.CancelledError
        return False


def handover_scope() -> HandoverScope:
    """An async context manager whose body is cancelled when a stopping worker hands over.

    A job wraps the part it can hand over (an answer streaming from the model) in it; after the
    body, `scope.handed_over` says whether it was cut off so that another worker can continue.
    Outside a worker (a test, a web process) it never fires.

    Example:
        ```python
        async with handover_scope() as scope:
            await stream_the_answer()
        if scope.handed_over:
            ...  # save the state, queue a job to continue
        ```
    """
    return HandoverScope()


class WorkerStopped(Exception):
    """A worker kept stopping (its database unreachable, say): the process cannot go on."""


def worker_connector() -> BaseAsyncConnector:
    """Procrastinate's worker connector for Django's database, its connections in autocommit.

    Procrastinate's queries are one statement each, but its psycopg pool runs each in a
    transaction of its own, committed by another round trip once the result is in. A worker
    process stopped in between (SIGSTOP, a paused VM, swapping, a long GC pause on a loaded
    machine) kept what the statement wrote locked until it ran again: a naming job it had
    just taken kept its queueing lock, and the next question of that conversation, deferring
    the title again in the send view's transaction, waited on that lock (a web request hung
    on a frozen worker). In autocommit, each statement is committed as it ends.
    """
    from procrastinate.contrib.django.settings import settings as procrastinate_settings
    from procrastinate.contrib.django.utils import connector_params
    from procrastinate.psycopg_connector import PsycopgConnector

    # What `DjangoConnector.get_worker_connector()` builds (psycopg 3 is our dependency), but
    # for `configure`: an `autocommit` in `kwargs` would clash with procrastinate's own for its
    # listening connection.
    params = connector_params(procrastinate_settings.DATABASE_ALIAS)
    return PsycopgConnector(kwargs=params, configure=_autocommit)


async def _autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    await connection.set_autocommit(True)


class Workers:
    """Procrastinate workers, one per queue, started and stopped together.

    Attributes:
        queues: Queue name → how many of its jobs run at once; empty: one worker for every
            queue running up to `DEFAULT_CONCURRENCY` jobs.
        shutdown_timeout: Seconds running jobs get to finish when the workers stop; answers
            still running then are handed over (`handover_scope`), other jobs get
            `HANDOVER_SECONDS` more and are then cancelled. Keep it below
            `AI_CHAT_STALLED_AFTER`: a stopping worker sends no heartbeat.
        name: Prefix of the worker names (`<name>:<queue>`), shown in procrastinate's tables.
        options: Further keyword arguments of `procrastinate.App.run_worker_async`
            (e.g. `fetch_job_polling_interval`); they win over the settings above.
    """

    def __init__(
        self,
        queues: Mapping[str, int] | None = None,
        *,
        shutdown_timeout: float = 10.0,
        name: str = "django_ai_chat",
        **options: Any,
    ) -> None:
        self.queues: dict[str, int] = dict(queues or {})
        self.shutdown_timeout = shutdown_timeout
        self.name = name
        self.options = options
        self._app: App | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._cancelled = False
        self._handover: asyncio.TimerHandle | None = None

    @property
    def names(self) -> list[str]:
        """Names of the running workers."""
        return [task.get_name() for task in self._tasks]

    async def astart(self) -> None:
        """Open the worker connection pool and start one worker task per queue.

        Raises:
            TypeError: procrastinate's Django app does not use its Django connector.
        """
        from procrastinate.contrib.django import app
        from procrastinate.contrib.django.django_connector import DjangoConnector

        if not isinstance(app.connector, DjangoConnector):
            raise TypeError(
                f"procrastinate's app uses {type(app.connector).__name__!r}; django_ai_chat's "
                "workers expect the Django connector of 'procrastinate.contrib.django' (the "
                "default)."
            )
        # A separate app sharing the tasks: replacing the connector of the shared app would
        # take web-side enqueues out of their transaction.
        worker_app = app.with_connector(worker_connector())
        _handover_event().clear()  # a restart in the same loop (tests, chat_dev)
        await worker_app.open_async()
        self._app = worker_app
        if self._cancelled:
            return  # stopped (a signal) while the pool opened
        stalled_after = float(ai_chat_settings.STALLED_AFTER)
        plan: list[tuple[list[str], int]] = (
            [([queue], limit) for queue, limit in self.queues.items()]
            if self.queues
            else [([], DEFAULT_CONCURRENCY)]
        )
        for queues, concurrency in plan:
            name = f"{self.name}:{','.join(queues) or 'all queues'}"
            options: dict[str, Any] = {
                # An empty list would mean "no queue": None is procrastinate's "every queue".
                "queues": queues or None,
                "concurrency": concurrency,
                "name": name,
                "install_signal_handlers": False,
                # Answers hand over at `shutdown_timeout`; the rest is a margin for that.
                "shutdown_graceful_timeout": self.shutdown_timeout + HANDOVER_SECONDS,
                "update_heartbeat_interval": stalled_after / 3,
                "stalled_worker_timeout": stalled_after,
                "delete_jobs": "successful",
                **self.options,
            }
            task = asyncio.create_task(self._supervise(worker_app, options), name=name)
            task.add_done_callback(_log_unexpected_exit)
            self._tasks.append(task)
        # Let each worker register itself before the caller goes on.
        await asyncio.sleep(0)

    async def _supervise(self, app: App, options: dict[str, Any]) -> None:
        """Run one worker; restart it when it stops or fails without being asked to."""
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        restarts = 0
        while True:
            started = loop.time()
            try:
                await app.run_worker_async(**options)
                failure = "stopped on its own (a side task failed: see the log above)"
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failure = f"failed: {error!r}"
            if self._cancelled:
                return
            now = loop.time()
            if now - started > GIVE_UP_AFTER:  # it served for a while: a new failure
                failing_since, restarts = None, 0
            failing_since = started if failing_since is None else failing_since
            if now - failing_since > GIVE_UP_AFTER and restarts >= 2:
                raise WorkerStopped(
                    f"Job worker {options['name']!r} {failure}, and has kept failing for "
                    f"{now - failing_since:.0f} s; giving up. Is the database reachable?"
                )
            delay = _RESTART_DELAYS[min(restarts, len(_RESTART_DELAYS) - 1)]
            restarts += 1
            logger.warning(
                "Job worker %r %s; restarting it in %g s.", options["name"], failure, delay
            )
            # The periodic deferrer enqueues through Django's connection, in asgiref's thread:
            # Django replaces a broken connection only between requests, so close it here.
            await sync_to_async(connections.close_all)()
            await asyncio.sleep(delay)

    def cancel(self) -> None:
        """Ask every worker to stop: no new job; running jobs get `shutdown_timeout` seconds.

        Answers still running then are handed over. A second call hands them over at once.
        """
        first = not self._cancelled
        self._cancelled = True
        if first:
            for task in self._tasks:
                task.cancel()
            self._handover = asyncio.get_running_loop().call_later(
                max(self.shutdown_timeout, 0.0), self.hand_over
            )
        else:
            self.hand_over()

    def hand_over(self) -> None:
        """Ask the running answers to hand themselves over to another worker now."""
        if self._handover is not None:
            self._handover.cancel()
        _handover_event().set()

    async def wait(self) -> None:
        """Return once every worker has stopped, or raise the error a worker stopped with."""
        if not self._tasks:
            return
        done, _pending = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def astop(self) -> None:
        """Stop the workers (running jobs get `shutdown_timeout` seconds) and close the pool."""
        if not self._cancelled:
            self.cancel()
        # Cancelled once, by `cancel`: a later second cancellation would reach procrastinate's
        # graceful wait, which then stops waiting for the running jobs.
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._handover is not None:
            self._handover.cancel()
        if _side_jobs:
            # E.g. waking the job that continues a handed-over answer: it needs the pool.
            await asyncio.wait(set(_side_jobs), timeout=HANDOVER_SECONDS)
        if self._app is not None:
            app, self._app = self._app, None
            await app.close_async()


async def run_workers(
    queues: Mapping[str, int] | None,
    *,
    shutdown_timeout: float,
    name: str = "django_ai_chat",
    stop_signals: Iterable[int] = (),
    on_ready: Callable[[Workers], object] | None = None,
    **options: Any,
) -> None:
    """Run procrastinate workers until they are stopped, by a signal or by cancelling.

    Args:
        queues: Queue name → how many of its jobs run at once (`ChatJobs.queues`); `None` or
            empty: one worker for every queue.
        shutdown_timeout: Seconds running jobs get to finish once asked to stop.
        name: Prefix of the worker names.
        stop_signals: Signals that stop the workers gracefully (a second one: running answers
            are handed over at once), e.g.
            `(signal.SIGINT, signal.SIGTERM)`; handlers are removed on return.
        on_ready: Called with the `Workers` once they run.
        **options: Further arguments of `procrastinate.App.run_worker_async`.

    Raises:
        Exception: The error a worker stopped with, after the others were stopped.
    """
    workers = Workers(queues, shutdown_timeout=shutdown_timeout, name=name, **options)
    loop = asyncio.get_running_loop()
    signals = list(stop_signals)
    try:
        for signum in signals:
            loop.add_signal_handler(signum, workers.cancel)
        await workers.astart()
        if on_ready is not None:
            on_ready(workers)
        await workers.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await workers.astop()


class WorkerCommand(BaseCommand):
    """A management command running a chat app's jobs (`ChatJobs`) until SIGTERM or SIGINT.

    Subclass it in `<app>/management/commands/<app>_worker.py` and set `jobs`:

    ```python
    from django_ai_chat.worker import WorkerCommand

    from ...jobs import chat_jobs


    class Command(WorkerCommand):
        jobs = chat_jobs
    ```

    One process runs every queue of `jobs.queues`, each with its own limit, and the periodic
    rescue of stalled jobs. Run as many processes as you like.

    Attributes:
        jobs: The chat app's jobs.
        shutdown_timeout: Default of `--shutdown-timeout`.
    """

    help = "Run the chat's background jobs: answers and conversation titles."
    jobs: ChatJobs | None = None
    shutdown_timeout: float = 10.0

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare `--shutdown-timeout` and `--loop`."""
        parser.add_argument(
            "--loop",
            choices=("auto", "asyncio", "uvloop"),
            default="auto",
            help="Event loop: uvloop (less CPU per streamed token), asyncio, or auto: uvloop "
            "when installed (default: auto).",
        )
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=self.shutdown_timeout,
            help="Seconds running jobs get to finish on SIGTERM/SIGINT; answers still running "
            "then are handed over to another worker (or to this one once restarted) "
            f"(default: {self.shutdown_timeout:g}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Warm the model up, then run the workers until stopped."""
        jobs = self.jobs
        if jobs is None:
            raise CommandError(
                f"{type(self).__module__}.Command has no jobs: set `jobs = chat_jobs` "
                "(the ChatJobs of your app's jobs.py) on the class."
            )
        loop_factory = _loop_factory(options.get("loop", "auto"))
        self.warm_up(jobs)
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(
                    run_workers(
                        jobs.queues,
                        shutdown_timeout=options["shutdown_timeout"],
                        name=jobs.app_label,
                        stop_signals=(signal.SIGINT, signal.SIGTERM),
                        on_ready=lambda _workers: self.stdout.write(
                            f"Worker running: {', '.join(jobs.queues)} "
                            f"({'asyncio' if loop_factory is None else 'uvloop'})"
                        ),
                    )
                )
        except WorkerStopped as error:
            # Exit non-zero, so that systemd, Kubernetes or supervisord restart the process.
            raise CommandError(str(error)) from error

    def warm_up(self, jobs: ChatJobs) -> None:
        """Import the model's SDK and build its client now, not during the first answer.

        That takes 1-2 s of CPU, better paid at start than by the first person. A model that
        is not usable yet (no API key) is reported, not fatal: the answers will say so.
        """
        from django_ai_chat.exceptions import ConfigurationError
        from django_ai_chat.llm import resolve_model

        model = jobs.responder.get_model()
        try:
            resolve_model(model)
        except ConfigurationError as error:
            self.stderr.write(f"Model {model!r} is not usable yet: {error}")


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop `--loop` asks for (`None`: asyncio's own).

    uvloop, which uvicorn's `standard` extra installs on Linux and macOS, takes less CPU per
    event than asyncio's loop, and a worker handles an event per streamed token
    (BENCHMARKS.md).
    """
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as error:
        if name == "uvloop":
            raise CommandError(
                "--loop uvloop: uvloop is not installed (pip install uvloop)."
            ) from error
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _log_unexpected_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("Job worker %r stopped: %r", task.get_name(), error, exc_info=error)
