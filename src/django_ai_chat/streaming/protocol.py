"""The pub/sub payloads of live answers, spelled once: their types, fields and constructors.

Payloads on a conversation's messages topic (`chat:messages:<conversation_id>`):

| type | fields | sent by | meaning |
|---|---|---|---|
| `message` | `id` | actions, worker | a row was created or changed state: re-read it |
| `delta` | `id`, `offset`, `text` | worker | `text` appended to message `id` at `offset` |
| `thinking` | `id`, `offset`, `text` | worker | the same for the message's `thinking` |
| `flushed` | `id`, `end`, (`thinking`) | worker | the row holds `end` characters (and `thinking`) |
| `resync` | `reason` | pub/sub itself | messages may have been lost: re-read the rows |

On its control topic (`<topic>:control`, requests to the worker): `sync` (`id`: flush now,
reply `flushed`) and `stop` (`id`: cancel the answer, keep its text). On a user's
conversations topic: `conversation` (`id`, `event`: `created`, `updated` or `deleted`).

JSON, never HTML, always small. Constructors take ids as any object and send their `str()`.
"""

from __future__ import annotations

from typing import Final, Literal, NotRequired, TypeAlias, TypedDict

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
    "THINKING",
    "ConversationEvent",
    "ConversationPayload",
    "DeltaPayload",
    "FlushedPayload",
    "MessagePayload",
    "StopPayload",
    "SyncPayload",
    "ThinkingPayload",
    "conversation",
    "delta",
    "flushed",
    "message",
    "stop",
    "sync",
    "thinking",
]

MESSAGE: Final = "message"
DELTA: Final = "delta"
THINKING: Final = "thinking"
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


class ThinkingPayload(TypedDict):
    """`{"type": "thinking", "id", "offset", "text"}`: reasoning appended at a character offset.

    Offsets count in the message's `thinking`, apart from its `text`: the two grow side by
    side and a browser holds (and its cursor names) how much of each it has.
    """

    type: Literal["thinking"]
    id: str
    offset: int
    text: str


class FlushedPayload(TypedDict):
    """`{"type": "flushed", "id", "end"}`: the row holds `end` characters.

    `thinking`, when the answer has any: the row holds that many characters of it too.
    """

    type: Literal["flushed"]
    id: str
    end: int
    thinking: NotRequired[int]


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


def thinking(message_id: object, offset: int, text: str) -> ThinkingPayload:
    """The `thinking` payload: reasoning `text` at character `offset` of `message_id`'s."""
    return {"type": "thinking", "id": str(message_id), "offset": offset, "text": text}


def flushed(message_id: object, end: int, thinking: int = 0) -> FlushedPayload:
    """The `flushed` payload: the row of `message_id` holds `end` (and `thinking`) characters."""
    payload: FlushedPayload = {"type": "flushed", "id": str(message_id), "end": end}
    if thinking:
        payload["thinking"] = thinking
    return payload


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
