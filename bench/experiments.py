"""Experiments: proposed runtime changes, tried on the generated project without editing `src/`.

`bin/bench --patch relay-leading,source-batch` copies this file into the generated project as
`bench_experiments.py` and imports it from the app's `models.py`, so the web and the worker
processes both load it; `BENCH_EXPERIMENTS` (set by the harness) says which patches apply.
They are measurements of proposals for the owner of `django_ai_chat/streaming.py`, not fixes:

* `relay-leading`: `_Relay._hold` sends a delta at once when none went out for that message in
  the last `coalesce` seconds and holds only those that follow within the window (today it holds
  every delta, the first one included, for up to `coalesce`).
* `source-batch`: `AnswerWriter.append` publishes at once when nothing was published for the
  message in the last `SOURCE_WINDOW` seconds, otherwise buffers and publishes the merged text at
  the end of the window: fewer NOTIFYs, less fan-out, fewer SSE events at high token rates.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django_ai_chat import streaming

SOURCE_WINDOW = float(os.environ.get("BENCH_SOURCE_WINDOW", "0.015"))
ENABLED = set(filter(None, os.environ.get("BENCH_EXPERIMENTS", "").split(",")))


def _relay_hold(self: Any, message_id: str, offset: int, text: str) -> list[str]:
    if self.coalesce <= 0:
        return [self._delta(message_id, offset, text)]
    held = self.held
    if held is not None and held[0] == message_id and held[1] + len(held[2]) == offset:
        self.held = (message_id, held[1], held[2] + text)
        return []
    chunks: list[str] = self.flush()
    now = asyncio.get_running_loop().time()
    last_sent: dict[str, float] = self.__dict__.setdefault("_bench_last_sent", {})
    last = last_sent.get(message_id, float("-inf"))
    if now - last >= self.coalesce:
        last_sent[message_id] = now
        return [*chunks, self._delta(message_id, offset, text)]
    self.held = (message_id, offset, text)
    self.held_since = last  # due `coalesce` after the last one sent
    return chunks


_relay_flush = streaming._Relay.flush


def _relay_flush_stamped(self: Any) -> list[str]:
    if self.held is not None:
        self.__dict__.setdefault("_bench_last_sent", {})[self.held[0]] = (
            asyncio.get_running_loop().time()
        )
    chunks: list[str] = _relay_flush(self)
    return chunks


_append = streaming.AnswerWriter.append
_write = streaming.AnswerWriter._write
_publish = streaming.AnswerWriter._publish


async def _source_append(self: Any, delta: str) -> None:
    if self._finished or not delta:
        await _append(self, delta)
        return
    loop = asyncio.get_running_loop()
    now = loop.time()
    state = self.__dict__.setdefault("_bench", {"last": float("-inf"), "pending": None})
    offset = len(self._text)
    self._text += delta
    if state["pending"] is not None:
        state["pending"][1] += delta
        return
    if now - state["last"] >= SOURCE_WINDOW:
        state["last"] = now
        payload = {"type": "delta", "id": self.message_id, "offset": offset, "text": delta}
        await _publish(self, payload)
        return
    state["pending"] = [offset, delta]

    async def publish_later() -> None:
        await asyncio.sleep(max(0.0, state["last"] + SOURCE_WINDOW - loop.time()))
        await _flush_pending(self)

    state["task"] = loop.create_task(publish_later())


async def _flush_pending(self: Any) -> None:
    state = self.__dict__.get("_bench")
    if not state or state["pending"] is None:
        return
    offset, text = state["pending"]
    state["pending"] = None
    state["last"] = asyncio.get_running_loop().time()
    await _publish(self, {"type": "delta", "id": self.message_id, "offset": offset, "text": text})


async def _source_write(self: Any, fields: dict[str, Any]) -> None:
    # A held delta goes out before the row (and its `flushed`/`message` events) moves past it.
    await _flush_pending(self)
    await _write(self, fields)


if "relay-leading" in ENABLED:
    streaming._Relay._hold = _relay_hold  # type: ignore[method-assign]
    streaming._Relay.flush = _relay_flush_stamped  # type: ignore[method-assign]
if "source-batch" in ENABLED:
    streaming.AnswerWriter.append = _source_append  # type: ignore[method-assign]
    streaming.AnswerWriter._write = _source_write  # type: ignore[method-assign]
