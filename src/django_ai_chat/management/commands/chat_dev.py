"""`manage.py chat_dev`: the development server, ASGI, with the job worker inside it."""

from __future__ import annotations

import argparse
import contextlib
import re
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from django_ai_chat.asgi import DEFAULT_CONCURRENCY, ASGIApp, WorkerLifespan, with_worker

_ADDRPORT = re.compile(r"^(?:(?P<host>[^:]+|\[[0-9a-fA-F:]+\]):)?(?P<port>\d+)$")


class Command(BaseCommand):
    """Serve the project with uvicorn and run the chat's job worker in the same process."""

    help = (
        "Development server: uvicorn (ASGI, so answers stream) with the procrastinate job worker "
        "running inside it, and static files served. One process, stopped with Ctrl-C. In "
        "production run `uvicorn <project>.asgi:application` and `manage.py <app>_worker` "
        "instead."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare `[addrport]`, `--queue`, `--no-worker` and `--log-level`."""
        parser.add_argument(
            "addrport",
            nargs="?",
            default="127.0.0.1:8000",
            help="Port or address:port to listen on (default 127.0.0.1:8000).",
        )
        parser.add_argument(
            "--queue",
            action="append",
            default=[],
            metavar="NAME[:CONCURRENCY]",
            help="Run a worker for this queue only (repeatable); CONCURRENCY defaults to "
            f"{DEFAULT_CONCURRENCY}. Default: one worker for every queue.",
        )
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Serve only; run `manage.py <app>_worker` separately.",
        )
        parser.add_argument(
            "--log-level",
            default="info",
            choices=["critical", "error", "warning", "info", "debug"],
            help="uvicorn's log level (default info).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the ASGI application and run uvicorn until interrupted."""
        import uvicorn
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
        from django.core.asgi import get_asgi_application

        host, port = _parse_addrport(options["addrport"])
        application: ASGIApp = _project_application() or get_asgi_application()
        if "django.contrib.staticfiles" in settings.INSTALLED_APPS:
            # Like runserver: a development server serves static files itself.
            application = ASGIStaticFilesHandler(application)  # type: ignore[arg-type]
        queues = _parse_queues(options["queue"])
        if options["no_worker"]:
            role = "web only"
        else:
            application = with_worker(application, queues=queues)
            jobs = ", ".join(f"{q} ({n} at once)" for q, n in queues.items()) or "every queue"
            role = f"web and job worker: {jobs}"
        self.stdout.write(f"Serving on http://{host}:{port}/ ({role}); quit with CONTROL-C.")
        config = uvicorn.Config(
            application,
            host=host.strip("[]"),
            port=port,
            # The lifespan protocol starts the in-process worker; Django itself has none.
            lifespan="off" if options["no_worker"] else "on",
            log_level=options["log_level"],
            # Open SSE streams never end by themselves: do not wait for them forever on Ctrl-C.
            timeout_graceful_shutdown=2,
        )
        # uvicorn re-raises the Ctrl-C it handled once it has shut down: that is a clean stop.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run()


def _project_application() -> ASGIApp | None:
    """The project's `ASGI_APPLICATION` when set, so its own ASGI middleware is kept."""
    from django.utils.module_loading import import_string

    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return None
    application = import_string(path)
    if isinstance(application, WorkerLifespan):
        # The project already wrapped itself with `with_worker`: do not run two workers.
        return application.application
    return application  # type: ignore[no-any-return]


def _parse_addrport(value: str) -> tuple[str, int]:
    match = _ADDRPORT.match(value)
    if not match:
        raise CommandError(f"{value!r} is not a port or address:port, e.g. 8000 or 0.0.0.0:8000.")
    return match["host"] or "127.0.0.1", int(match["port"])


def _parse_queues(values: list[str]) -> dict[str, int]:
    queues: dict[str, int] = {}
    for value in values:
        name, _, limit = value.partition(":")
        if not name or (limit and not limit.isdigit()):
            raise CommandError(
                f"--queue {value!r}: expected NAME or NAME:CONCURRENCY, e.g. chat_responses:10."
            )
        queues[name] = int(limit) if limit else DEFAULT_CONCURRENCY
    return queues
