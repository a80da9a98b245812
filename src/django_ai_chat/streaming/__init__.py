"""The live-answer protocol, both ends: `AnswerWriter` (worker) and `relay` (SSE view).

An agent answer is one database row that grows while the model streams. The worker publishes
every piece of text at once as a `delta` on the conversation's topic, but writes the row only
now and then (`AnswerWriter`). A browser follows through an SSE stream (`relay`) that subscribes
first, asks the worker to flush (`sync`), reads the rows, sends what the browser lacks beyond
its cursor and then forwards live deltas, de-duplicated by offset. A reload, a dropped
connection or a restarted web server therefore ends with exactly the model's text: no gap, no
duplicate. See `docs/architecture.md`.

Modules: `protocol` (the pub/sub payloads, spelled once), `topics` (topic names and the
announcements generated code publishes), `writer` (`AnswerWriter`, worker side), `cursor`
(what a browser holds), `relay` (SSE side), `http` (SSE framing, the response, gzip). Import
from this package: the names below are the public API.
"""

from __future__ import annotations

from django_ai_chat.streaming.cursor import Cursor, StreamedMessage
from django_ai_chat.streaming.http import event_stream_response
from django_ai_chat.streaming.protocol import ConversationEvent
from django_ai_chat.streaming.relay import KEEPALIVE_SECONDS, SYNC_TIMEOUT_SECONDS, relay
from django_ai_chat.streaming.topics import (
    aconversation_changed,
    amessage_changed,
    control_topic,
    conversation_changed,
    conversations_topic,
    message_changed,
    messages_topic,
    path_changed,
    request_stop,
)
from django_ai_chat.streaming.writer import DELTA_SLICE_CHARS, AnswerWriter, FlushCallback

__all__ = [
    "DELTA_SLICE_CHARS",
    "KEEPALIVE_SECONDS",
    "SYNC_TIMEOUT_SECONDS",
    "AnswerWriter",
    "ConversationEvent",
    "Cursor",
    "FlushCallback",
    "StreamedMessage",
    "aconversation_changed",
    "amessage_changed",
    "control_topic",
    "conversation_changed",
    "conversations_topic",
    "event_stream_response",
    "message_changed",
    "messages_topic",
    "path_changed",
    "relay",
    "request_stop",
]
