"""Topic names of live answers, and the announcements generated code publishes on them.

`chat:messages:<conversation_id>` carries a conversation's message events, its control topic
`chat:messages:<conversation_id>:control` the requests to the worker (`sync`, `stop`), and
`chat:conversations:<user_id>` (`...:all` in no-user mode) a user's conversation list.
"""

from __future__ import annotations

from collections.abc import Iterable

from django_ai_chat import pubsub
from django_ai_chat.streaming import protocol
from django_ai_chat.streaming.protocol import ConversationEvent

__all__ = [
    "aconversation_changed",
    "amessage_changed",
    "control_topic",
    "conversation_changed",
    "conversations_topic",
    "message_changed",
    "messages_topic",
    "path_changed",
    "request_stop",
]


def messages_topic(conversation_id: object) -> str:
    """The pub/sub topic of one conversation's messages: `chat:messages:<conversation_id>`."""
    return f"chat:messages:{conversation_id}"


def conversations_topic(user_id: object | None) -> str:
    """The pub/sub topic of a user's conversation list (`None`: no-user mode, `...:all`)."""
    return f"chat:conversations:{'all' if user_id is None else user_id}"


def control_topic(topic: str) -> str:
    """The topic of requests to the worker answering on `topic` (`sync`, `stop`)."""
    return f"{topic}{pubsub.CONTROL_SUFFIX}"


def request_stop(topic: str, message_id: object) -> None:
    """Ask the worker streaming message `message_id` on `topic` to stop; the text so far stays.

    Sync; inside `transaction.atomic()` the request goes out at commit (see `pubsub.publish`).
    """
    pubsub.publish(control_topic(topic), protocol.stop(message_id))


def message_changed(conversation_id: object, message_id: object) -> None:
    """Announce that message `message_id` was created, changed or deleted: pages re-read it.

    Sync; inside `transaction.atomic()` it goes out at commit, and never for a rolled-back
    write (see `pubsub.publish`). For a deletion, take the ids before deleting: Django sets a
    deleted instance's `pk` to `None`.

    Raises:
        ValueError: An id is `None` (e.g. read from an instance after `delete()`).
    """
    pubsub.publish(messages_topic(_id(conversation_id)), protocol.message(_id(message_id)))


async def amessage_changed(conversation_id: object, message_id: object) -> None:
    """Async `message_changed`, published at once (on its own connection: no transaction)."""
    payload = protocol.message(_id(message_id))
    await pubsub.apublish(messages_topic(_id(conversation_id)), payload)


def path_changed(
    conversation_id: object, before: Iterable[object], after: Iterable[object]
) -> None:
    """Announce a switch of branch: the messages that left or joined the active path.

    `before` and `after` are the path's ids around the change (`BranchTree.active_path`); open
    pages drop the messages that left and show the ones that joined. Sync and transactional,
    like `message_changed`.
    """
    changed = set(map(str, before)) ^ set(map(str, after))
    for message_id in sorted(changed):
        message_changed(conversation_id, message_id)


def conversation_changed(
    owner_id: object | None, conversation_id: object, event: ConversationEvent
) -> None:
    """Announce to the owner's conversation lists (`None`: no-user mode) that one changed.

    Sync, transactional like `message_changed`; for `"deleted"`, call it before the delete
    (or with ids taken before it).

    Raises:
        ValueError: `conversation_id` is `None`, or `event` is not one of `ConversationEvent`.
    """
    payload = protocol.conversation(_id(conversation_id), event)
    pubsub.publish(conversations_topic(owner_id), payload)


async def aconversation_changed(
    owner_id: object | None, conversation_id: object, event: ConversationEvent
) -> None:
    """Async `conversation_changed`, published at once."""
    payload = protocol.conversation(_id(conversation_id), event)
    await pubsub.apublish(conversations_topic(owner_id), payload)


def _id(value: object) -> str:
    # A deleted instance's pk is None: announcing "None" would leave a ghost on every page.
    if value is None:
        raise ValueError(
            "Cannot announce a change of id None: take the id before deleting the row "
            "(Django sets a deleted instance's pk to None)."
        )
    return str(value)
