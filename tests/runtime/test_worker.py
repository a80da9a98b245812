"""`run_workers` / `Workers` / `WorkerCommand`: real procrastinate workers on real Postgres."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from procrastinate.contrib.django import app as procrastinate_app
from procrastinate.contrib.django.models import ProcrastinateJob

from django_ai_chat.worker import WorkerCommand, Workers, run_workers
from tests.jobsapp.jobs import chat_jobs

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0  # upper bound for something to happen; never a speed assertion

T = TypeVar("T")

ran: list[tuple[str, str]] = []


@procrastinate_app.task(name="tests.worker.record", queue="worker_test_a")
async def record(word: str) -> None:
    ran.append(("worker_test_a", word))


@procrastinate_app.task(name="tests.worker.record_b", queue="worker_test_b")
async def record_b(word: str) -> None:
    ran.append(("worker_test_b", word))


@procrastinate_app.task(name="tests.worker.slow", queue="worker_test_a")
async def slow(word: str) -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # stop the worker while this job runs
    await asyncio.sleep(0.3)
    ran.append(("worker_test_a", word))


started = asyncio.Event()


@procrastinate_app.task(name="tests.worker.unhurried", queue="worker_test_a")
async def unhurried(word: str) -> None:
    started.set()
    await asyncio.sleep(0.5)
    ran.append(("worker_test_a", word))


@procrastinate_app.task(name="tests.worker.stop_command", queue="conversations")
def stop_command() -> None:
    ran.append(("conversations", "stop"))
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(autouse=True)
def clean() -> None:
    ran.clear()


async def db(function: Callable[[], T]) -> T:
    def run() -> T:
        try:
            return function()
        finally:
            connection.close()  # asgiref's thread: it would outlive the test database

    return await sync_to_async(run)()


async def eventually(what: str, condition: Callable[[], Any]) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        if result := condition():
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _job_rows(task: Any) -> int:
    return ProcrastinateJob.objects.filter(task_name=task.name).count()


async def test_each_queue_has_its_worker_and_finished_jobs_are_deleted() -> None:
    before = await db(_registered_workers)
    runner = asyncio.create_task(
        run_workers({"worker_test_a": 2, "worker_test_b": 1}, shutdown_timeout=1, name="t")
    )
    await db(lambda: (record.defer(word="one"), record_b.defer(word="two")))

    await eventually("both jobs", lambda: len(ran) == 2)
    assert sorted(ran) == [("worker_test_a", "one"), ("worker_test_b", "two")]
    # A job's row goes once its task has returned, a moment after `ran` saw it.
    deadline = asyncio.get_running_loop().time() + WAIT
    while left := await db(lambda: _job_rows(record) + _job_rows(record_b)):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{left} finished job rows were not deleted")
        await asyncio.sleep(0.05)

    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert await db(_registered_workers) == before


async def test_a_stop_signal_lets_the_running_job_finish() -> None:
    before = await db(_registered_workers)
    await db(lambda: slow.defer(word="finished"))

    await asyncio.wait_for(
        run_workers(
            {"worker_test_a": 1}, shutdown_timeout=10, name="t", stop_signals=[signal.SIGTERM]
        ),
        WAIT,
    )

    assert ran == [("worker_test_a", "finished")]
    assert await db(_registered_workers) == before


async def test_astop_lets_the_running_job_finish_too() -> None:
    # The in-process worker (`with_worker`) stops this way, without a signal first.
    started.clear()
    workers = Workers({"worker_test_a": 1}, shutdown_timeout=10, name="t")
    await workers.astart()
    try:
        await db(lambda: unhurried.defer(word="finished"))
        await asyncio.wait_for(started.wait(), WAIT)
    finally:
        await asyncio.wait_for(workers.astop(), WAIT)
    assert ran == [("worker_test_a", "finished")]


async def test_workers_report_their_names_and_stop_with_astop() -> None:
    workers = Workers({"worker_test_a": 1, "worker_test_b": 1}, shutdown_timeout=1, name="t")
    await workers.astart()
    try:
        assert workers.names == ["t:worker_test_a", "t:worker_test_b"]
    finally:
        await workers.astop()
    assert workers.names == []
    await workers.wait()  # nothing left to wait for


class Command(WorkerCommand):
    jobs = chat_jobs


@pytest.mark.parametrize(
    ("option", "uvloop_installed", "loop"),
    [("auto", True, "uvloop"), ("asyncio", True, "asyncio"), ("auto", False, "asyncio")],
)
def test_the_worker_command_runs_the_apps_queues_until_sigterm(
    monkeypatch: pytest.MonkeyPatch, option: str, uvloop_installed: bool, loop: str
) -> None:
    if not uvloop_installed:
        monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    stop_command.defer()
    connection.close()  # the worker's pool, not this connection, runs the job
    out, err = io.StringIO(), io.StringIO()

    call_command(Command(), "--shutdown-timeout", "2", "--loop", option, stdout=out, stderr=err)

    assert ran == [("conversations", "stop")]
    assert f"Worker running: chat_responses, conversations ({loop})" in out.getvalue()


def test_asking_for_uvloop_without_it_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)

    with pytest.raises(CommandError, match="uvloop is not installed"):
        call_command(Command(), "--loop", "uvloop")


def test_a_worker_command_needs_its_jobs() -> None:
    with pytest.raises(CommandError, match="set `jobs = chat_jobs`"):
        call_command(WorkerCommand())


def _registered_workers() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_workers")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])
