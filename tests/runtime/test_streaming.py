"""The live-answer protocol end to end: a writer streaming into a real row, relays resuming."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.test import RequestFactory

from django_ai_chat import pubsub, streaming
from django_ai_chat.models import new_id
from django_ai_chat.streaming import (
    AnswerWriter,
    Cursor,
    control_topic,
    protocol,
    relay,
    request_stop,
)
from django_ai_chat.streaming.relay import _Relay

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0  # upper bound for something to arrive; never a speed assertion
TABLE = "streaming_test_message"


@dataclass
class Row:
    id: uuid.UUID
    conversation: uuid.UUID
    text: str
    complete: bool


class Rows:
    """A real table with the columns the protocol relies on, written with the guarded UPDATE."""

    def __init__(self) -> None:
        self.conversation = uuid.uuid4()
        self.topic = streaming.messages_topic(self.conversation)

    async def _sql(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    return list(cursor.fetchall()) if cursor.description else []
            finally:
                connection.close()

        return await asyncio.to_thread(run)

    async def create(self, *, text: str = "", complete: bool = False) -> uuid.UUID:
        message_id = new_id()  # time-ordered, as the models' ids: `after` compares them
        await self._sql(
            f"INSERT INTO {TABLE} (id, conversation, text, complete, seq) "
            "VALUES (%s, %s, %s, %s, nextval('streaming_test_seq'))",
            [message_id, self.conversation, text, complete],
        )
        return message_id

    async def write(self, message_id: uuid.UUID, text: str, fields: dict[str, Any]) -> None:
        # The guard the generated flush callback uses: never after completion, never shorter.
        await self._sql(
            f"UPDATE {TABLE} SET text = %s, complete = %s "
            "WHERE id = %s AND NOT complete AND length(text) <= %s",
            [text, bool(fields.get("complete", False)), message_id, len(text)],
        )

    async def delete(self, message_id: uuid.UUID) -> None:
        await self._sql(f"DELETE FROM {TABLE} WHERE id = %s", [message_id])

    async def load_messages(self, after: str | None) -> list[Row]:
        rows = await self._sql(
            f"SELECT id, conversation, text, complete FROM {TABLE} WHERE conversation = %s "
            "AND (%s::uuid IS NULL OR id > %s::uuid OR NOT complete) ORDER BY seq",
            [self.conversation, after, after],
        )
        return [Row(*row) for row in rows]

    async def load_message(self, message_id: str) -> Row | None:
        rows = await self._sql(
            f"SELECT id, conversation, text, complete FROM {TABLE} "
            "WHERE conversation = %s AND id = %s",
            [self.conversation, message_id],
        )
        return Row(*rows[0]) if rows else None

    async def get(self, message_id: uuid.UUID) -> Row:
        row = await self.load_message(str(message_id))
        assert row is not None
        return row

    def writer(self, message_id: uuid.UUID, **kwargs: Any) -> AnswerWriter:
        async def flush(text: str, fields: dict[str, Any]) -> None:
            await self.write(message_id, text, fields)

        return AnswerWriter(message_id, topic=self.topic, flush=flush, **kwargs)

    @contextlib.asynccontextmanager
    async def answering_syncs(self) -> AsyncIterator[None]:
        """Answer the relay's catch-up `sync` as a live worker does (`flushed`, the row as it
        is), for tests that publish a running answer's deltas by hand; a later `sync` (a gap)
        is the test's to answer."""

        async def answer(syncs: pubsub.Subscription) -> None:
            async for _topic, payload in syncs:
                row = await self.load_message(str(payload["id"]))
                if row is not None:
                    await pubsub.apublish(self.topic, protocol.flushed(row.id, len(row.text)))
                    return

        async with pubsub.subscribe(control_topic(self.topic)) as syncs:
            task = asyncio.create_task(answer(syncs))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def relay(self, cursor: Cursor, **kwargs: Any) -> AsyncIterator[str]:
        return relay(
            cursor=cursor,
            messages_topic=self.topic,
            load_messages=self.load_messages,
            load_message=self.load_message,
            render_message=render,
            **kwargs,
        )


async def render(row: Any) -> str:
    # Multi-line on purpose: SSE needs one `data:` line per line.
    return (
        f'<div id="message-{row.id}" data-end="{len(row.text)}" '
        f'data-complete="{str(row.complete).lower()}">\n{json.dumps(row.text)}\n</div>'
    )


async def _request_stop(topic: str, message_id: object) -> None:
    # As the stop view does it (sync), in a thread whose connection is closed afterwards.
    def stop() -> None:
        try:
            request_stop(topic, message_id)
        finally:
            connection.close()

    await sync_to_async(stop)()


@pytest.fixture
def caught_up(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once a relay's catch-up is over (sync answered or timed out, rows re-read, what the
    browser lacks sent on): from then on it learns of a change only from a live event."""
    event = asyncio.Event()
    real_catch_up = _Relay.catch_up

    async def catch_up(self: _Relay, *args: Any, **kwargs: Any) -> Any:
        try:
            return await real_catch_up(self, *args, **kwargs)
        finally:
            event.set()

    monkeypatch.setattr(_Relay, "catch_up", catch_up)
    return event


@pytest.fixture
def rows() -> Iterator[Rows]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE IF NOT EXISTS streaming_test_seq")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id uuid PRIMARY KEY, conversation uuid NOT NULL,"
            " text text NOT NULL, complete boolean NOT NULL, seq bigint NOT NULL)"
        )
    yield Rows()
    connection.close()


@dataclass
class Event:
    event: str | None
    id: str | None
    data: str


def parse(chunk: str) -> Event | None:
    """One SSE chunk as EventSource reads it (comments and `retry:` give `None`)."""
    fields: dict[str, list[str]] = {}
    for line in chunk.rstrip("\n").split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields.setdefault(name, []).append(value)
    if "data" not in fields:
        return None
    return Event(
        fields.get("event", [None])[0], fields.get("id", [None])[0], "\n".join(fields["data"])
    )


class Browser:
    """What chat.js does with the stream: one text buffer per message, checked for gaps."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.complete: set[str] = set()
        self.last_event_id: str | None = None
        self.events: list[Event] = []

    def load_page(self, rows: list[Row]) -> Cursor:
        for row in rows:
            self.texts[str(row.id)] = row.text
            if row.complete:
                self.complete.add(str(row.id))
        partial = next((r for r in reversed(rows) if not r.complete), None)
        return Cursor(
            after=str(rows[-1].id) if rows else None,
            partial=str(partial.id) if partial else None,
            end=len(partial.text) if partial else 0,
        )

    def apply(self, event: Event) -> None:
        self.events.append(event)
        if event.id is not None:
            self.last_event_id = event.id
        if event.event == "message":
            match = re.match(
                r'<div id="message-([^"]+)" data-end="(\d+)" data-complete="(\w+)">', event.data
            )
            assert match, event.data
            message_id, end, complete = match[1], int(match[2]), match[3] == "true"
            text = json.loads(event.data.split("\n")[1])
            assert len(text) == end
            self.texts[message_id] = text
            if complete:
                self.complete.add(message_id)
        elif event.event == "delta":
            delta = json.loads(event.data)
            have = self.texts.get(delta["id"])
            assert have is not None, f"delta for unknown message {delta['id']}"
            assert delta["offset"] == len(have), (
                f"gap or duplicate: browser holds {len(have)} chars, delta at {delta['offset']}"
            )
            assert delta["id"] not in self.complete
            self.texts[delta["id"]] = have + delta["text"]
        elif event.event == "removed":
            self.texts.pop(json.loads(event.data)["id"], None)
        elif event.event == "present":
            listed = json.loads(event.data)
            for message_id in [m for m in self.texts if m >= listed["since"]]:
                if message_id not in listed["ids"]:
                    self.texts.pop(message_id)

    async def follow(self, stream: AsyncIterator[str], until: Any) -> None:
        """Apply events until `until(browser)` holds, then disconnect."""
        try:
            async with asyncio.timeout(WAIT):
                async for chunk in stream:
                    event = parse(chunk)
                    if event is not None:
                        self.apply(event)
                    if until(self):
                        return
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


def _words(n: int) -> list[str]:
    return [f"word{i} " if i % 7 else f"ünï{i}\n\n" for i in range(n)]


async def test_reload_mid_answer_ends_with_exactly_the_models_text(rows: Rows) -> None:
    """Browsers that (re)connect at any point end with the full text, no gap, no duplicate."""
    deltas = _words(120)
    expected = "".join(deltas)
    user = await rows.create(text="Hello", complete=True)
    answer_id = await rows.create()
    halfway = asyncio.Event()

    async def worker() -> None:
        async with rows.writer(answer_id, flush_interval=0.05) as writer:
            for i, delta in enumerate(deltas):
                await writer.append(delta)
                if i == 40:
                    halfway.set()
                await asyncio.sleep(0.002)
            await writer.finish(complete=True)

    def done(browser: Browser) -> bool:
        return str(answer_id) in browser.complete

    async def reload_after(delay: float) -> Browser:
        await halfway.wait()
        await asyncio.sleep(delay)
        browser = Browser()
        cursor = browser.load_page(await rows.load_messages(None))
        await browser.follow(rows.relay(cursor), done)
        return browser

    async def fresh_without_page() -> Browser:
        await halfway.wait()
        browser = Browser()
        await browser.follow(rows.relay(Cursor()), done)
        return browser

    async def drops_connection_and_resumes() -> Browser:
        browser = Browser()
        cursor = browser.load_page(await rows.load_messages(None))
        await browser.follow(rows.relay(cursor), lambda b: len(b.texts[str(answer_id)]) > 50)
        resumed = Cursor.parse(browser.last_event_id)
        assert resumed is not None and resumed.partial == str(answer_id)
        await browser.follow(rows.relay(resumed), done)
        return browser

    task = asyncio.create_task(worker())
    browsers = await asyncio.gather(
        reload_after(0),
        reload_after(0.03),
        reload_after(0.1),
        fresh_without_page(),
        drops_connection_and_resumes(),
    )
    await task
    for browser in browsers:
        assert browser.texts[str(answer_id)] == expected
        assert browser.texts[str(user)] == "Hello"
    assert (await rows.get(answer_id)).text == expected
    # A browser that was there from the start got deltas, not the text again and again.
    first = browsers[-1]
    assert sum(1 for e in first.events if e.event == "delta") >= 10


async def test_an_answer_that_completed_while_the_browser_was_away_is_sent_whole(
    rows: Rows,
) -> None:
    """The streamed message is also the newest (`after`): it must not be skipped on resume."""
    await rows.create(text="Hello", complete=True)
    answer_id = await rows.create()
    browser = Browser()
    async with rows.writer(answer_id, flush_interval=0) as writer:
        await writer.append("Half of ")
        await writer.flush()
        cursor = browser.load_page(await rows.load_messages(None))
        assert cursor.after == cursor.partial == str(answer_id)
        await writer.append("the answer.")
        await writer.finish(complete=True)

    await browser.follow(rows.relay(cursor), lambda b: str(answer_id) in b.complete)
    assert browser.texts[str(answer_id)] == "Half of the answer."

    # Deleted meanwhile (a regenerate): the browser is told to drop it.
    await rows.delete(answer_id)
    gone = Browser()
    gone.texts[str(answer_id)] = "Half of "
    stream = rows.relay(Cursor(after=str(answer_id), partial=str(answer_id), end=8))
    await gone.follow(stream, lambda b: str(answer_id) not in b.texts)
    assert [e.event for e in gone.events] == ["removed"]


async def test_an_answer_no_worker_writes_any_more_is_sent_whole_on_reconnect(
    rows: Rows,
) -> None:
    """A paused answer (waiting for a tool approval) or one whose worker died: still incomplete,
    but its state changed while the browser was away (an approval card), and nobody answers
    the sync. The browser gets the whole message, not only what its text lacks."""
    answer_id = await rows.create()
    browser = Browser()
    async with rows.writer(answer_id, flush_interval=0) as writer:
        await writer.append("Let me note that.")
        await writer.flush()
        cursor = browser.load_page(await rows.load_messages(None))
        assert cursor.partial == str(answer_id) and cursor.end == len("Let me note that.")
        await writer.finish(complete=False)  # the job ends; the row stays open

    await browser.follow(
        rows.relay(cursor, sync_timeout=0.05), lambda b: any(e.event == "message" for e in b.events)
    )
    assert [e.event for e in browser.events] == ["message"]
    assert browser.texts[str(answer_id)] == "Let me note that."


async def test_a_reconnect_learns_which_rows_were_deleted_while_it_was_away(rows: Rows) -> None:
    """Rows gone without a `message` event the browser heard (it was offline) are listed out."""
    question = await rows.create(text="Hello", complete=True)
    answer = await rows.create(text="First answer.", complete=True)
    page = await rows.load_messages(None)
    browser, without_since = Browser(), Browser()
    cursor = browser.load_page(page)
    without_since.load_page(page)
    await rows.delete(answer)  # a regenerate while the browsers were away
    again = await rows.create(text="Second answer.", complete=True)

    stream = rows.relay(replace(cursor, since=str(question)))
    await browser.follow(stream, lambda b: str(again) in b.complete)
    present = [json.loads(e.data) for e in browser.events if e.event == "present"]
    assert present == [{"since": str(question), "ids": [str(question), str(again)], "older": []}]
    assert browser.events[0].event == "present"  # before the catch-up
    assert set(browser.texts) == {str(question), str(again)}

    # Without `since` (a first connection) there is no list, and nothing else could say it.
    await without_since.follow(rows.relay(cursor), lambda b: str(again) in b.complete)
    assert all(e.event != "present" for e in without_since.events)
    assert str(answer) in without_since.texts


async def test_sync_makes_the_worker_flush_before_the_relay_reads(rows: Rows) -> None:
    answer_id = await rows.create()
    async with rows.writer(answer_id, flush_interval=0) as writer:
        await writer.append("Hello, ")
        await writer.append("world")
        assert (await rows.get(answer_id)).text == ""  # deltas alone never write the row
        browser = Browser()
        await browser.follow(rows.relay(Cursor()), lambda b: str(answer_id) in b.texts)
        assert browser.texts[str(answer_id)] == "Hello, world"
        assert (await rows.get(answer_id)).text == "Hello, world"
        assert writer.writes == 1
        assert writer.flushed_end == len("Hello, world")


async def test_writes_are_coalesced_and_never_go_backwards(rows: Rows) -> None:
    """Interval flushes, sync requests, saves and finish never overlap, and only ever grow."""
    answer_id = await rows.create()
    written: list[int] = []
    in_flight = 0

    async def flush(text: str, fields: dict[str, Any]) -> None:
        nonlocal in_flight
        in_flight += 1
        assert in_flight == 1, "two writes of one answer overlapped"
        await asyncio.sleep(0.003)  # widen the window for an overlap
        await rows.write(answer_id, text, fields)
        written.append(len(text))
        in_flight -= 1

    writer = AnswerWriter(answer_id, topic=rows.topic, flush=flush, flush_interval=0.01)
    async with writer:
        for i in range(200):
            await writer.append("x")
            if i % 25 == 0:
                await pubsub.apublish(
                    control_topic(rows.topic), {"type": "sync", "id": str(answer_id)}
                )
            if i == 100:
                await writer.save(tool_calls=[])
            await asyncio.sleep(0.001)
        await writer.finish(complete=True)
    assert written == sorted(written)
    assert written[-1] == 200
    assert writer.writes == len(written) < 200  # coalesced: far fewer writes than deltas
    row = await rows.get(answer_id)
    assert (row.text, row.complete) == ("x" * 200, True)


async def test_by_default_writes_do_not_grow_with_the_answer(rows: Rows) -> None:
    """No safety interval by default: a short and a long answer are written the same times."""
    writes = []
    for deltas in (20, 400):
        answer_id = await rows.create()
        async with rows.writer(answer_id) as writer:
            for _ in range(deltas):
                await writer.append("x")
                await asyncio.sleep(0.014)  # the long one streams past the old 5 s interval
            assert (await rows.get(answer_id)).text == ""  # live text went out through pub/sub
            await writer.finish(complete=True)
        assert (await rows.get(answer_id)).text == "x" * deltas
        writes.append(writer.writes)
    assert writes == [1, 1]


async def test_the_safety_interval_flushes_without_any_request(rows: Rows) -> None:
    answer_id = await rows.create()
    async with rows.writer(answer_id, flush_interval=0.02) as writer:
        await writer.append("Saved by the interval")
        async with asyncio.timeout(WAIT):
            while (await rows.get(answer_id)).text != "Saved by the interval":
                await asyncio.sleep(0.01)
        writes = writer.writes
        await asyncio.sleep(0.1)
        assert writer.writes == writes  # nothing new to write: no write


async def test_save_and_finish_announce_the_new_state(rows: Rows) -> None:
    answer_id = await rows.create()
    async with pubsub.subscribe(rows.topic) as spy:
        async with rows.writer(answer_id, flush_interval=0) as writer:
            await writer.append("abc")
            await writer.save()
            await writer.finish(text="abc!", complete=True)
            with pytest.raises(RuntimeError, match="finished"):
                await writer.append("late")
        seen: list[tuple[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while len(seen) < 5:
                _topic, payload = await anext(spy)
                seen.append((payload["type"], payload.get("end", payload.get("offset"))))
    assert seen == [
        ("delta", 0),
        ("flushed", 3),
        ("message", None),
        ("flushed", 4),
        ("message", None),
    ]
    row = await rows.get(answer_id)
    assert (row.text, row.complete) == ("abc!", True)


async def test_finish_writes_again_what_a_cut_off_save_was_writing(rows: Rows) -> None:
    # A worker shutting down cancels the run while it saves a tool call: the last write keeps it.
    written: list[dict[str, Any]] = []
    saving = asyncio.Event()

    async def flush(text: str, fields: dict[str, Any]) -> None:
        written.append(fields)
        if "tool_calls" in fields and not saving.is_set():
            saving.set()
            await asyncio.Event().wait()

    calls = [{"id": "1", "name": "wait", "arguments": {}}]
    async with AnswerWriter(uuid.uuid4(), topic=rows.topic, flush=flush) as writer:
        save = asyncio.create_task(writer.save(tool_calls=calls))
        async with asyncio.timeout(WAIT):
            await saving.wait()
        save.cancel()
        with pytest.raises(asyncio.CancelledError):
            await save
        await writer.finish(complete=True, error="interrupted")

    assert written[-1] == {"tool_calls": calls, "complete": True, "error": "interrupted"}


async def test_a_big_delta_is_published_in_slices_that_fit_a_notify(rows: Rows) -> None:
    """A provider may send any size of piece; each live delta must stay under the payload cap."""
    answer_id = await rows.create()
    big = "é" * 3_500 + "🙂" * 10  # 7,040 bytes: over the cap as one delta
    async with pubsub.subscribe(rows.topic) as spy:
        async with rows.writer(answer_id, flush_interval=0) as writer:
            await writer.append("Hi ")
            await writer.append(big)
            assert writer.text == "Hi " + big
        deltas: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while sum(len(d["text"]) for d in deltas) < len("Hi " + big):
                _topic, payload = await anext(spy)
                if payload["type"] == "delta":
                    deltas.append(payload)
    assert all(len(d["text"]) <= 1_000 for d in deltas)
    assert len(deltas) >= 4
    ends = list(itertools.accumulate(len(d["text"]) for d in deltas))
    assert [d["offset"] for d in deltas] == [0, *ends[:-1]]
    assert "".join(d["text"] for d in deltas) == "Hi " + big


async def test_deltas_wait_for_no_publish_and_merge_behind_one_in_flight(rows: Rows) -> None:
    """The model's stream never waits for pub/sub; what piles up meanwhile goes out as one."""
    answer_id = await rows.create()
    tokens = [f"t{i} " for i in range(200)]
    async with pubsub.subscribe(rows.topic) as spy:
        async with rows.writer(answer_id, flush_interval=0) as writer:
            # The first delta goes out on its own, as soon as the loop is free.
            await writer.append(tokens[0])
            _topic, first = await asyncio.wait_for(anext(spy), WAIT)
            assert (first["type"], first["offset"], first["text"]) == ("delta", 0, tokens[0])
            for token in tokens[1:]:
                await writer.append(token)  # returns without a pub/sub round trip
            await writer.finish(complete=True)
        deltas: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while True:
                _topic, payload = await anext(spy)
                if payload["type"] != "delta":
                    break  # `flushed` and `message` come after every delta
                deltas.append(payload)
    assert len(deltas) < len(tokens) - 1
    ends = list(itertools.accumulate(len(d["text"]) for d in deltas))
    assert [d["offset"] for d in deltas] == [len(tokens[0]) + e for e in [0, *ends[:-1]]]
    assert tokens[0] + "".join(d["text"] for d in deltas) == "".join(tokens)
    assert (await rows.get(answer_id)).text == "".join(tokens)


async def test_a_failed_delta_publish_surfaces_at_the_next_append(
    rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pub/sub down mid-answer: the answer loop learns it (and ends the answer), not a log."""
    answer_id = await rows.create()

    failed = asyncio.Event()

    async def unreachable(topic: str, payload: dict[str, Any], **kwargs: Any) -> None:
        failed.set()
        raise ConnectionError("pub/sub is down")

    async with rows.writer(answer_id, flush_interval=0) as writer:
        monkeypatch.setattr(pubsub, "apublish", unreachable)
        await writer.append("Hello")
        await failed.wait()  # the publish runs, and fails, in the background
        with pytest.raises(ConnectionError, match="down"):
            await writer.append(" world")
        monkeypatch.undo()
        await writer.finish(complete=True, error="failed")
    row = await rows.get(answer_id)
    assert (row.text, row.complete) == ("Hello", True)


async def test_a_failed_delta_publish_does_not_stop_the_final_message(
    rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NOTIFY that fails after the last append: the row completes and browsers hear of it."""
    answer_id = await rows.create()
    real_apublish = pubsub.apublish
    failed = asyncio.Event()

    async def flaky(topic: str, payload: dict[str, Any], **kwargs: Any) -> None:
        if payload["type"] == "delta" and not failed.is_set():
            failed.set()
            raise ConnectionError("transient")
        await real_apublish(topic, payload, **kwargs)

    seen: list[str] = []
    async with pubsub.subscribe(rows.topic) as spy:
        async with rows.writer(answer_id, flush_interval=0) as writer:
            monkeypatch.setattr(pubsub, "apublish", flaky)
            await writer.append("Hello")
            await failed.wait()  # the delta's publish fails in the background
            await writer.finish(complete=True)
        async with asyncio.timeout(WAIT):
            while "message" not in seen:
                _topic, payload = await anext(spy)
                seen.append(payload["type"])
    assert seen == ["flushed", "message"]
    row = await rows.get(answer_id)
    assert (row.text, row.complete) == ("Hello", True)


async def test_a_sync_is_answered_while_the_model_keeps_streaming(
    rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`flushed` waits for the deltas before the `sync`, not for the stream to pause."""
    answer_id = await rows.create()
    real_apublish = pubsub.apublish
    loop = asyncio.get_running_loop()

    async def slow(topic: str, payload: dict[str, Any], **kwargs: Any) -> None:
        await asyncio.sleep(0.02)  # a busy database: publishing is slower than the tokens
        await real_apublish(topic, payload, **kwargs)

    flushed_at: float | None = None
    async with pubsub.subscribe(rows.topic) as spy:

        async def watch() -> None:
            nonlocal flushed_at
            async for _topic, payload in spy:
                if payload["type"] == "flushed":
                    flushed_at = loop.time()
                    return

        watcher = asyncio.create_task(watch())
        async with rows.writer(answer_id, flush_interval=0) as writer:
            monkeypatch.setattr(pubsub, "apublish", slow)
            await writer.append("a")
            await real_apublish(control_topic(rows.topic), {"type": "sync", "id": str(answer_id)})
            for _ in range(200):  # a second of tokens, one every 5 ms
                await writer.append("x")
                await asyncio.sleep(0.005)
            streamed_until = loop.time()
            await writer.finish(complete=True)
        await asyncio.wait_for(watcher, WAIT)
    assert flushed_at is not None
    assert flushed_at < streamed_until


async def test_leaving_the_writer_unsubscribes_whatever_happened_to_the_deltas(
    rows: Rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_id = await rows.create()

    async def down(topic: str, payload: dict[str, Any], **kwargs: Any) -> None:
        raise ConnectionError("down")

    subscribed: list[tuple[str, ...]] = []
    real_subscribe = pubsub.subscribe

    @contextlib.asynccontextmanager
    async def tracking_subscribe(*topics: str, **kwargs: Any) -> AsyncIterator[Any]:
        async with real_subscribe(*topics, **kwargs) as subscription:
            subscribed.append(topics)
            try:
                yield subscription
            finally:
                subscribed.remove(topics)

    monkeypatch.setattr(pubsub, "subscribe", tracking_subscribe)
    async with rows.writer(answer_id, flush_interval=0) as writer:
        assert subscribed == [(control_topic(rows.topic),)]
        monkeypatch.setattr(pubsub, "apublish", down)
        await writer.append("Hello")  # its publish fails in the background
    assert subscribed == []


async def test_relay_rereads_everything_after_a_resync(
    rows: Rows, caught_up: asyncio.Event
) -> None:
    """Lost pub/sub messages (listener reconnect, slow consumer) end in a re-read, not a gap."""
    answer_id = await rows.create(text="Hi")
    mid = str(answer_id)
    browser = Browser()
    async with rows.answering_syncs():  # the worker writing the answer
        stream = rows.relay(browser.load_page(await rows.load_messages(None)), sync_timeout=WAIT)
        assert await anext(stream) == "retry: 1000\n\n"
        reader = asyncio.create_task(anext(stream))
        # Its catch-up is over: what follows, only the resync can bring.
        await asyncio.wait_for(caught_up.wait(), WAIT)
        await rows.write(answer_id, "Hi there", {})  # its deltas were "lost"
        await pubsub.apublish(rows.topic, {"type": pubsub.RESYNC_TYPE, "reason": "test"})
        async with asyncio.timeout(WAIT):
            event = parse(await reader)
        assert event is not None
        browser.apply(event)
        assert browser.texts[mid] == "Hi there"
        await stream.aclose()  # type: ignore[attr-defined]


async def test_an_older_state_never_overwrites_a_newer_one(rows: Rows) -> None:
    """A zombie writer (e.g. a job run twice) cannot roll the row back or reopen it."""
    answer_id = await rows.create()
    async with rows.writer(answer_id, flush_interval=0) as new:
        await new.append("The full answer.")
        await new.finish(complete=True)
    async with rows.writer(answer_id, flush_interval=0) as zombie:
        await zombie.append("The")
        await zombie.flush()
    row = await rows.get(answer_id)
    assert (row.text, row.complete) == ("The full answer.", True)


async def test_stop_cancels_the_answer_and_keeps_the_partial_text(rows: Rows) -> None:
    answer_id = await rows.create()
    other_id = uuid.uuid4()
    started = asyncio.Event()

    async def tokens() -> AsyncIterator[str]:
        for i in range(10_000):
            if i == 5:
                started.set()
            yield f"t{i} "
            await asyncio.sleep(0.005)

    async def stop_when_started() -> None:
        await started.wait()
        await _request_stop(rows.topic, other_id)
        await asyncio.sleep(0.05)
        await _request_stop(rows.topic, answer_id)

    stopper = asyncio.create_task(stop_when_started())
    async with rows.writer(answer_id, flush_interval=0) as writer:
        async with writer.stoppable(), contextlib.aclosing(tokens()) as stream:
            async for token in stream:
                await writer.append(token)
        assert writer.stopped
        await writer.finish(complete=True)
    await stopper
    row = await rows.get(answer_id)
    assert row.complete
    assert row.text == writer.text
    assert 5 < len(row.text.split()) < 10_000
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_stop_before_the_scope_cancels_at_once(rows: Rows) -> None:
    answer_id = await rows.create()
    async with rows.writer(answer_id, flush_interval=0) as writer:
        await _request_stop(rows.topic, answer_id)
        async with asyncio.timeout(WAIT):
            while not writer.stopped:
                await asyncio.sleep(0.01)
        reached = False
        async with writer.stoppable():
            await asyncio.sleep(WAIT)
            reached = True
        assert not reached


async def test_relay_trims_overlaps_and_repairs_gaps(rows: Rows) -> None:
    """Deltas are de-duplicated by offset; a gap makes the relay ask for a flush and re-read."""
    answer_id = await rows.create(text="Hello")
    mid = str(answer_id)
    browser = Browser()
    cursor = browser.load_page(await rows.load_messages(None))
    async with rows.answering_syncs():  # the worker writing the answer
        stream = rows.relay(cursor, sync_timeout=WAIT)

        async with pubsub.subscribe(rows.topic, control_topic(rows.topic)) as spy:

            async def next_event() -> Event:
                async with asyncio.timeout(WAIT):
                    while True:
                        event = parse(await anext(stream))
                        if event is not None:
                            browser.apply(event)
                            return event

            async def publish(payload: dict[str, Any]) -> None:
                await pubsub.apublish(rows.topic, payload)

            # Catch-up: the relay asks for a flush of the incomplete row (the worker answers it).
            first = asyncio.create_task(next_event())
            async with asyncio.timeout(WAIT):
                while True:
                    _topic, payload = await anext(spy)
                    if payload["type"] == "sync":
                        assert payload["id"] == mid
                        break
            await publish({"type": "delta", "id": mid, "offset": 0, "text": "Hel"})  # old: dropped
            await publish({"type": "delta", "id": mid, "offset": 3, "text": "lo, w"})  # overlap
            event = await first
            assert json.loads(event.data) == {"id": mid, "offset": 5, "text": ", w"}

            # A gap: offset 10 while the browser holds 7 characters.
            gap = asyncio.create_task(next_event())
            await publish({"type": "delta", "id": mid, "offset": 10, "text": "ld!"})
            async with asyncio.timeout(WAIT):
                while True:
                    _topic, payload = await anext(spy)
                    if payload["type"] == "sync" and payload["id"] == mid:
                        break
            await rows.write(answer_id, "Hello, worl", {})
            await publish({"type": "flushed", "id": mid, "end": 11})
            await gap
            while browser.texts[mid] != "Hello, world!":
                await next_event()

            # Completion replaces the message; later stale deltas are ignored.
            await rows.write(answer_id, "Hello, world!", {"complete": True})
            await publish({"type": "message", "id": mid})
            event = await next_event()
            assert event.event == "message"
            assert mid in browser.complete

            # A deleted row is announced as removed.
            await rows.delete(answer_id)
            await publish({"type": "message", "id": mid})
            event = await next_event()
            assert (event.event, json.loads(event.data)) == ("removed", {"id": mid})
        await stream.aclose()  # type: ignore[attr-defined]


async def test_relay_holds_no_delta_back_and_merges_only_what_queued_behind_a_write(
    rows: Rows, caught_up: asyncio.Event
) -> None:
    """Coalescing never waits: a delta goes out at once, even right after another one; only the
    deltas that queued up while the stream was not being read leave together, as one event."""
    answer_id = await rows.create(text="")
    mid = str(answer_id)
    browser = Browser()
    cursor = browser.load_page(await rows.load_messages(None))
    async with rows.answering_syncs():  # the worker writing the answer
        stream = rows.relay(cursor, sync_timeout=WAIT, coalesce=True)

        async def next_event() -> Event:
            async with asyncio.timeout(WAIT):
                while True:
                    event = parse(await anext(stream))
                    if event is not None:
                        browser.apply(event)
                        return event

        assert await anext(stream) == "retry: 1000\n\n"
        pending = asyncio.create_task(next_event())
        # The relay's catch-up (its sync answered) is over: the delta is a live one.
        await asyncio.wait_for(caught_up.wait(), WAIT)
        await pubsub.apublish(rows.topic, {"type": "delta", "id": mid, "offset": 0, "text": "Hel"})
        first = await pending
        assert json.loads(first.data) == {"id": mid, "offset": 0, "text": "Hel"}
        # The next token, right behind the first: it is not held for a window either.
        pending = asyncio.create_task(next_event())
        await pubsub.apublish(rows.topic, {"type": "delta", "id": mid, "offset": 3, "text": "lo"})
        second = await pending
        assert json.loads(second.data) == {"id": mid, "offset": 3, "text": "lo"}

        # Nobody reads the stream (a write in flight): what arrives meanwhile queues up.
        async with pubsub.subscribe(rows.topic) as spy:
            for offset, text in ((5, ", "), (7, "world")):
                await pubsub.apublish(
                    rows.topic, {"type": "delta", "id": mid, "offset": offset, "text": text}
                )
            await rows.write(answer_id, "Hello, world", {"complete": True})
            await pubsub.apublish(rows.topic, {"type": "message", "id": mid})
            for _ in range(3):  # delivered to the relay's subscription too (the same fan-out)
                await asyncio.wait_for(anext(spy), WAIT)
        merged = (
            await next_event()
        )  # the queued deltas, as one event, before the message after them
        assert json.loads(merged.data) == {"id": mid, "offset": 5, "text": ", world"}
        final = await next_event()
        assert final.event == "message"
        assert browser.texts[mid] == "Hello, world"
        await stream.aclose()  # type: ignore[attr-defined]


async def test_relay_sends_one_event_per_delta_without_coalescing(rows: Rows) -> None:
    answer_id = await rows.create(text="")
    mid = str(answer_id)
    browser = Browser()
    async with rows.answering_syncs():  # the worker writing the answer
        stream = rows.relay(browser.load_page(await rows.load_messages(None)), sync_timeout=WAIT)
        assert await anext(stream) == "retry: 1000\n\n"
        async with pubsub.subscribe(rows.topic) as spy:
            await pubsub.apublish(
                rows.topic, {"type": "delta", "id": mid, "offset": 0, "text": "a"}
            )
            await pubsub.apublish(
                rows.topic, {"type": "delta", "id": mid, "offset": 1, "text": "b"}
            )
            for _ in range(2):
                await asyncio.wait_for(anext(spy), WAIT)
        events = []
        async with asyncio.timeout(WAIT):
            while len(events) < 2:
                event = parse(await anext(stream))
                if event is not None:
                    events.append(json.loads(event.data))
        assert events == [
            {"id": mid, "offset": 0, "text": "a"},
            {"id": mid, "offset": 1, "text": "b"},
        ]
        await stream.aclose()  # type: ignore[attr-defined]


async def test_relay_sends_conversation_events_and_keepalives(rows: Rows) -> None:
    topic = streaming.conversations_topic(None)
    assert topic == "chat:conversations:all"

    async def render_conversation(payload: dict[str, Any]) -> str | None:
        return None if payload["event"] == "ignored" else f"<li>{payload['id']}</li>"

    stream = relay(
        cursor=Cursor(),
        messages_topic=None,
        load_messages=rows.load_messages,
        load_message=rows.load_message,
        render_message=render,
        conversations_topic=topic,
        render_conversation=render_conversation,
        keepalive=0.05,
    )
    assert await anext(stream) == "retry: 1000\n\n"
    assert await anext(stream) == ": keep-alive\n\n"
    await pubsub.apublish(topic, {"type": "conversation", "id": "a", "event": "ignored"})
    await pubsub.apublish(topic, {"type": "conversation", "id": "b", "event": "created"})
    async with asyncio.timeout(WAIT):
        while (chunk := await anext(stream)).startswith(":"):
            pass
    assert chunk == "event: conversation\ndata: <li>b</li>\n\n"
    await stream.aclose()  # type: ignore[attr-defined]


async def test_relay_unsubscribes_when_the_client_disconnects(
    rows: Rows, monkeypatch: pytest.MonkeyPatch, caught_up: asyncio.Event
) -> None:
    active: list[tuple[str, ...]] = []
    real_subscribe = pubsub.subscribe

    @contextlib.asynccontextmanager
    async def tracking_subscribe(*topics: str) -> AsyncIterator[pubsub.Subscription]:
        active.append(topics)
        try:
            async with real_subscribe(*topics) as sub:
                yield sub
        finally:
            active.remove(topics)

    monkeypatch.setattr(pubsub, "subscribe", tracking_subscribe)
    stream = rows.relay(Cursor(), keepalive=WAIT)
    await anext(stream)
    assert active == [(rows.topic,)]
    # Django cancels the response task on disconnect; the pending read is interrupted.
    reader = asyncio.create_task(anext(stream))
    # Nothing to send: once its catch-up is over, the reader waits for events.
    await asyncio.wait_for(caught_up.wait(), WAIT)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await stream.aclose()  # type: ignore[attr-defined]
    assert active == []


def test_cursor_round_trips_and_last_event_id_wins() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    cursor = Cursor(after=a, partial=b, end=42)
    assert Cursor.parse(str(cursor)) == cursor
    assert Cursor.parse(str(Cursor(after=a))) == Cursor(after=a)
    assert Cursor.parse("-") == Cursor()
    assert Cursor.parse("not-a-uuid") is None
    assert Cursor.parse("") is None

    factory = RequestFactory()
    query = {"after": a, "partial": b, "end": "7"}
    assert Cursor.from_request(factory.get("/", query)) == Cursor(a, b, 7)
    fresher = Cursor(after=b)
    request = factory.get("/", query, headers={"Last-Event-ID": str(fresher)})
    assert Cursor.from_request(request) == fresher
    assert Cursor.from_request(factory.get("/", {"after": "1; DROP TABLE"})) == Cursor()
    # `since` comes from the query only, whatever Last-Event-ID says; a malformed one is ignored.
    request = factory.get("/", {**query, "since": a}, headers={"Last-Event-ID": str(fresher)})
    assert Cursor.from_request(request) == replace(fresher, since=a)
    assert Cursor.from_request(factory.get("/", {"since": "x"})) == Cursor()


def test_event_stream_response_has_sse_headers() -> None:
    async def events() -> AsyncIterator[str]:
        yield ": hi\n\n"

    response = streaming.event_stream_response(events())
    assert response["Content-Type"] == "text/event-stream"
    assert response["X-Accel-Buffering"] == "no"
    assert response["Cache-Control"] == "no-cache"


# ---------------------------------------------------------------------------------------------
# Publishers


async def _received(topic: str, publish: Any) -> tuple[str, dict[str, Any]]:
    async with pubsub.subscribe(topic) as subscription:
        await publish()
        async with asyncio.timeout(WAIT):
            return await anext(subscription)


def _in_transaction(call: Any) -> Any:
    """`call` inside a committed transaction on a thread's own connection, as an awaitable."""

    def run() -> None:
        try:
            with transaction.atomic():
                call()
        finally:
            connection.close()

    return lambda: asyncio.to_thread(run)


async def test_message_changed_names_the_message() -> None:
    conversation, message = uuid.uuid4(), uuid.uuid4()
    topic = streaming.messages_topic(conversation)
    expected = (topic, {"type": "message", "id": str(message)})

    sync = _in_transaction(lambda: streaming.message_changed(conversation, message))
    assert await _received(topic, sync) == expected
    assert (
        await _received(topic, lambda: streaming.amessage_changed(conversation, message))
        == expected
    )


async def test_conversation_changed_reaches_the_owner_s_list() -> None:
    conversation = uuid.uuid4()
    for owner, topic in ((7, "chat:conversations:7"), (None, "chat:conversations:all")):
        sync = _in_transaction(
            lambda o=owner: streaming.conversation_changed(o, conversation, "created")
        )
        payload = {"type": "conversation", "id": str(conversation), "event": "created"}
        assert await _received(topic, sync) == (topic, payload)
        payload["event"] = "deleted"
        published = await _received(
            topic, lambda o=owner: streaming.aconversation_changed(o, conversation, "deleted")
        )
        assert published == (topic, payload)


async def test_an_id_of_none_is_refused_not_announced() -> None:
    # A deleted instance's pk is None: announcing "None" would leave a ghost on every page.
    with pytest.raises(ValueError, match="before deleting"):
        await streaming.amessage_changed(uuid.uuid4(), None)
    with pytest.raises(ValueError, match="before deleting"):
        streaming.message_changed(uuid.uuid4(), None)
    with pytest.raises(ValueError, match="before deleting"):
        await streaming.aconversation_changed(1, None, "deleted")
    with pytest.raises(ValueError, match="'renamed'"):
        streaming.conversation_changed(1, uuid.uuid4(), "renamed")  # type: ignore[arg-type]
