"""How a pub/sub message travels: its channel, its encoding, its size limit.

Every backend carries the same encoded text (the topic, a newline, compact JSON) on one of two
channels: control topics (`CONTROL_SUFFIX`) on `CONTROL_CHANNEL`, the rest on `CHANNEL`. Several
messages may travel packed in one notification (`pack`), joined by newlines: listeners read the
lines as topic, body, topic, body... (neither a topic nor compact JSON holds a raw newline).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

CHANNEL: Final = "django_ai_chat"
"""The Postgres NOTIFY channel / Redis channel every topic but control topics travels on."""

CONTROL_SUFFIX: Final = ":control"
"""Topics ending in this travel on `CONTROL_CHANNEL`: requests to workers, not data streams."""

CONTROL_CHANNEL: Final = "django_ai_chat_control"
"""The channel of control topics (`CONTROL_SUFFIX`)."""

MAX_PAYLOAD_BYTES: Final = 7_000
"""Largest encoded message (topic + JSON payload) accepted; Postgres NOTIFY stops at 8,000."""

QUEUE_SIZE: Final = 1_000
"""Messages buffered per subscription before its backlog is replaced by `RESYNC` messages."""

RESYNC_TYPE: Final = "resync"
"""`payload["type"]` of the message a subscriber receives when messages may have been lost."""

Message = tuple[str, dict[str, Any]]
"""A received message: `(topic, payload)`."""

Outgoing = tuple[str, str]
"""A message to send: `(channel, encoded message)`."""


def check_topic(topic: object) -> None:
    """Refuse a topic no subscriber could follow (`ValueError`)."""
    # Typed callers cannot pass a non-str, but the payload travels to other processes: refuse
    # early and clearly rather than deliver to nobody.
    if not isinstance(topic, str) or not topic or "\n" in topic or "\x00" in topic:
        raise ValueError(
            f"Invalid pub/sub topic {topic!r}: use a non-empty string without newlines, "
            "e.g. 'chat:messages:<id>'."
        )


def channel_of(topic: str) -> str:
    """The channel `topic` travels on."""
    return CONTROL_CHANNEL if topic.endswith(CONTROL_SUFFIX) else CHANNEL


def encode(topic: str, payload: Mapping[str, Any]) -> str:
    """The text that carries `(topic, payload)`; see `pubsub.publish` for the errors."""
    check_topic(topic)
    if not isinstance(payload, dict):
        # Mapping in the signature, so that TypedDicts fit; a dict at runtime, as JSON needs.
        raise TypeError(f"Pub/sub payload for {topic!r} must be a dict, got {type(payload)!r}.")
    try:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Pub/sub payload for {topic!r} is not JSON-serialisable: {exc}") from exc
    # The topic goes first, in clear, so a listener can skip decoding the JSON of topics nobody
    # in its process follows (every process receives every message).
    data = f"{topic}\n{body}"
    # A character is at most 4 UTF-8 bytes: short messages skip the encode().
    if len(data) * 4 > MAX_PAYLOAD_BYTES and len(data.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"Pub/sub message for {topic!r} is {len(data.encode())} bytes encoded; the limit is "
            f"{MAX_PAYLOAD_BYTES} (Postgres NOTIFY refuses 8,000). Publish ids or small deltas "
            "and let subscribers read the rest from the database."
        )
    return data


def pack(messages: list[Outgoing]) -> list[Outgoing]:
    """Join consecutive messages of one channel into as few notifications as the limit allows.

    Under load a batch holds the deltas of many answers; one notification each costs the server
    and every listening process a notification (and psycopg an object) per delta. Packed, the
    order of each channel's messages is kept.
    """
    if len(messages) < 2:
        return messages
    packed: list[Outgoing] = []
    channel, size = "", 0
    parts: list[str] = []
    for next_channel, data in messages:
        length = len(data) if data.isascii() else len(data.encode())
        if parts and (next_channel != channel or size + 1 + length > MAX_PAYLOAD_BYTES):
            packed.append((channel, "\n".join(parts)))
            parts, size = [], 0
        channel = next_channel
        size += length + (1 if parts else 0)
        parts.append(data)
    if parts:
        packed.append((channel, "\n".join(parts)))
    return packed
