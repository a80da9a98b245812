"""The pub/sub payloads of live answers, spelled once: their types, fields and constructors.

Payloads on a conversation's messages topic (`chat:messages:<conversation_id>`):

| type | fields | sent by | meaning |
|---|---|---|---|
| `message` | `id` | actions, worker | a row was created or changed state: re-read it |
| `delta` | `id`, `offset`, `text` | worker | `text` appended to message `id` at `offset` |
| `flushed` | `id`, `end` | worker | the row now holds the first `end` characters |
| `resync` | `reason` | pub/sub itself | messages may have been lost: re-read the rows |

On its control topic (`<topic>:control`, requests to the worker): `sync` (`id`: flush now,
reply `flushed`) and `stop` (`id`: cancel the answer, keep its text). On a user's
conversations topic: `conversation` (`id`, `event`: `created`, `updated` or `deleted`).

JSON, never HTML, always small. Constructors take ids as any object and send their `str()`.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias, TypedDict

from django_ai_chat.pubsub import RESYNC_TYPE

__all__ = [
    "CONVERSATION",
    "CONVERSATION_EVENTS",
    "DELTA",
    "FLUSHED",
    "MESSAGE",
    "RESYNC",
    "STOP",
    "SYNC",
    "ConversationEvent",
    "ConversationPayload",
    "DeltaPayload",
    "FlushedPayload",
    "MessagePayload",
    "StopPayload",
    "SyncPayload",
    "conversation",
    "delta",
    "flushed",
    "message",
    "stop",
    "sync",
]

MESSAGE: Final = "message"
DELTA: Final = "delta"
FLUSHED: Final = "flushed"
SYNC: Final = "sync"
STOP: Final = "stop"
CONVERSATION: Final = "conversation"
RESYNC: Final = RESYNC_TYPE

ConversationEvent: TypeAlias = Literal["created", "updated", "deleted"]
"""What happened to a conversation, as announced on its owner's conversations topic."""

CONVERSATION_EVENTS: Final = ("created", "updated", "deleted")


class MessagePayload(TypedDict):
    """`{"type": "message", "id"}`: re-read message `id`."""

    type: Literal["message"]
    id: str


class DeltaPayload(TypedDict):
    """`{"type": "delta", "id", "offset", "text"}`: text appended at a character offset."""

    type: Literal["delta"]
    id: str
    offset: int
    text: str


class FlushedPayload(TypedDict):
    """`{"type": "flushed", "id", "end"}`: the row holds `end` characters."""

    type: Literal["flushed"]
    id: str
    end: int


class SyncPayload(TypedDict):
    """`{"type": "sync", "id"}` (control): flush message `id` now."""

    type: Literal["sync"]
    id: str


class StopPayload(TypedDict):
    """`{"type": "stop", "id"}` (control): stop the answer `id`."""

    type: Literal["stop"]
    id: str


class ConversationPayload(TypedDict):
    """`{"type": "conversation", "id", "event"}`: a conversation list changed."""

    type: Literal["conversation"]
    id: str
    event: ConversationEvent


def message(message_id: object) -> MessagePayload:
    """The `message` payload of `message_id`."""
    return {"type": "message", "id": str(message_id)}


def delta(message_id: object, offset: int, text: str) -> DeltaPayload:
    """The `delta` payload: `text` at character `offset` of `message_id`."""
    return {"type": "delta", "id": str(message_id), "offset": offset, "text": text}


def flushed(message_id: object, end: int) -> FlushedPayload:
    """The `flushed` payload: the row of `message_id` holds `end` characters."""
    return {"type": "flushed", "id": str(message_id), "end": end}


def sync(message_id: object) -> SyncPayload:
    """The `sync` request for `message_id`."""
    return {"type": "sync", "id": str(message_id)}


def stop(message_id: object) -> StopPayload:
    """The `stop` request for `message_id`."""
    return {"type": "stop", "id": str(message_id)}


def conversation(conversation_id: object, event: ConversationEvent) -> ConversationPayload:
    """The `conversation` payload.

    Raises:
        ValueError: `event` is not one of `ConversationEvent`.
    """
    if event not in CONVERSATION_EVENTS:
        raise ValueError(
            f"Unknown conversation event {event!r}: use 'created', 'updated' or 'deleted'."
        )
    return {"type": "conversation", "id": str(conversation_id), "event": event}
