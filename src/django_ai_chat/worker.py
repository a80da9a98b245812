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

Users: `run_workers` (the generated `manage.py <app>_worker`, through `WorkerCommand`) and
`django_ai_chat.asgi.WorkerLifespan` (`manage.py chat_dev`: workers inside the ASGI server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from asgiref.sync import sync_to_async
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from django_ai_chat.conf import ai_chat_settings

if TYPE_CHECKING:
    from procrastinate import App

    from django_ai_chat.jobs import ChatJobs

__all__ = ["DEFAULT_CONCURRENCY", "WorkerCommand", "WorkerStopped", "Workers", "run_workers"]

DEFAULT_CONCURRENCY = 10
"""Jobs one worker runs at once when no per-queue limit is given."""

GIVE_UP_AFTER: Final = 60.0
"""Seconds a worker may keep stopping or failing before the process gives up (exits non-zero)."""

_RESTART_DELAYS: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds before the 1st, 2nd, ... consecutive restart: a database coming back gets time."""

logger = logging.getLogger(__name__)


class WorkerStopped(Exception):
    """A worker kept stopping (its database unreachable, say): the process cannot go on."""


class Workers:
    """Procrastinate workers, one per queue, started and stopped together.

    Attributes:
        queues: Queue name → how many of its jobs run at once; empty: one worker for every
            queue running up to `DEFAULT_CONCURRENCY` jobs.
        shutdown_timeout: Seconds running jobs get to finish when the workers stop; after that
            they are cancelled (an answer keeps its partial text).
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
        worker_app = app.with_connector(app.connector.get_worker_connector())
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
                "shutdown_graceful_timeout": self.shutdown_timeout,
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
        """Ask every worker to stop: running jobs get `shutdown_timeout` seconds.

        A second call cancels them at once.
        """
        self._cancelled = True
        for task in self._tasks:
            task.cancel()

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
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
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
        stop_signals: Signals that stop the workers gracefully (a second one: at once), e.g.
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
        """Declare `--shutdown-timeout`."""
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=self.shutdown_timeout,
            help="Seconds running jobs get to finish on SIGTERM/SIGINT "
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
        self.warm_up(jobs)
        try:
            asyncio.run(
                run_workers(
                    jobs.queues,
                    shutdown_timeout=options["shutdown_timeout"],
                    name=jobs.app_label,
                    stop_signals=(signal.SIGINT, signal.SIGTERM),
                    on_ready=lambda _workers: self.stdout.write(
                        f"Worker running: {', '.join(jobs.queues)}"
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


def _log_unexpected_exit(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("Job worker %r stopped: %r", task.get_name(), error, exc_info=error)
