"""Branches of a conversation: the tree its messages form, and the path the person follows.

Every message points at the one it follows (`AbstractMessage.parent`): an answer at its question,
a question at the answer before it. Editing a question adds a *sibling* (same parent) and
regenerating an answer adds a sibling answer; nothing is deleted. Among siblings the one with the
newest `activated_at` is *active*: the active path runs from the active root through the active
child of each message down to a leaf. It is derived from the rows alone, so it survives a reload,
is the same in every tab and needs no pointer to keep in step. One rule more: an answer under a
question is active only while it holds the question's one `response_to` slot, so a question being
answered again shows as waiting, and switching back to an old answer hands the slot to it.

Rows written before branches existed (and rows an app creates with a plain `objects.create`) have
neither `parent` nor `activated_at`: each follows the message before it in the conversation's
linear order (an answer right after its question), as the history always read them.
`link_linear_history` writes those links down; the branching operations call it first, so that a
new row sorted between old ones cannot change what they follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from django_ai_chat.streaming import path_changed

if TYPE_CHECKING:
    from django_ai_chat.models import AbstractMessage

__all__ = [
    "TREE_FIELDS",
    "BranchTree",
    "Branches",
    "Node",
    "announce_path_change",
    "attach_branches",
    "link_linear_history",
]

TREE_FIELDS: Final = ("id", "parent_id", "activated_at", "source", "response_to_id")
"""The columns `BranchTree.from_rows` reads (`QuerySet.values_list(*TREE_FIELDS)`)."""


@dataclass
class Node:
    """One message in the tree.

    Attributes:
        id: The message's id.
        parent: The id of the message it follows, `None` for a root (stored or implied).
        activated_at: When it was last made active (`None`: never, an old linear row).
        agent: Whether it is an answer.
        response_to: The question it answers (`response_to_id`), if any.
        children: Ids of the messages that follow it, oldest first.
    """

    id: Any
    parent: Any
    activated_at: datetime | None
    agent: bool
    response_to: Any = None
    children: list[Any] = field(default_factory=list)
    stored_parent: Any = None


class BranchTree:
    """The tree of one conversation's messages, built from `TREE_FIELDS` of its rows.

    Example:
        ```python
        tree = Message.objects.tree(conversation.pk)
        tree.active_path()  # ids, oldest first
        tree.siblings(message_id)  # ids of the messages it alternates with, itself included
        ```
    """

    def __init__(self, nodes: Iterable[Node]) -> None:
        ordered = sorted(nodes, key=_linear_key)
        self.nodes: dict[Any, Node] = {node.id: node for node in ordered}
        self.roots: list[Any] = []
        previous: Node | None = None
        for node in ordered:
            node.stored_parent = node.parent
            if node.parent is None and node.activated_at is None and previous is not None:
                node.parent = previous.id  # an old linear row: it follows the one before it
            if node.parent is None or node.parent not in self.nodes:
                node.parent = None
                self.roots.append(node.id)
            else:
                self.nodes[node.parent].children.append(node.id)
            previous = node
        # Siblings in the order they were written (ids are time-ordered), whatever they answer.
        self.roots.sort(key=str)
        for node in ordered:
            node.children.sort(key=str)

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]]) -> BranchTree:
        """A tree from `(id, parent_id, activated_at, source, response_to_id)` tuples."""
        return cls(
            Node(
                id=row[0],
                parent=row[1],
                activated_at=row[2],
                agent=str(row[3]) == "agent",
                response_to=row[4],
            )
            for row in rows
        )

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def parent_of(self, message_id: Any) -> Any:
        """The id of the message `message_id` follows (stored or implied), `None` for a root."""
        return self.nodes[message_id].parent

    def siblings(self, message_id: Any) -> list[Any]:
        """The ids of the messages sharing `message_id`'s parent, itself included, oldest first."""
        parent = self.nodes[message_id].parent
        return list(self.roots if parent is None else self.nodes[parent].children)

    def active_child(self, message_id: Any) -> Any:
        """The id of the active message after `message_id`, `None` at a leaf."""
        return self._active(self.nodes[message_id].children)

    def active_path(self) -> list[Any]:
        """The ids of the messages the person follows, oldest first (empty: no message)."""
        path: list[Any] = []
        current = self._active(self.roots)
        while current is not None:
            path.append(current)
            current = self._active(self.nodes[current].children)
        return path

    def path_to(self, message_id: Any) -> list[Any]:
        """The ids from the root to `message_id` (included), oldest first."""
        path: list[Any] = []
        current = message_id
        while current is not None:
            path.append(current)
            current = self.nodes[current].parent
        return path[::-1]

    def leaf(self) -> Any:
        """The last message of the active path, `None` for an empty conversation."""
        path = self.active_path()
        return path[-1] if path else None

    def unlinked(self) -> dict[Any, Any]:
        """Message id → the parent it follows by implication (old linear rows), to be stored."""
        return {
            node.id: node.parent
            for node in self.nodes.values()
            if node.stored_parent is None and node.parent is not None
        }

    def _active(self, candidates: list[Any]) -> Any:
        eligible = [pk for pk in candidates if self._may_be_active(pk)]
        if not eligible:
            return None
        return max(eligible, key=self._activation)

    def _may_be_active(self, message_id: Any) -> bool:
        # Under a question, an answer is active only while it holds the question's one
        # `response_to` slot: a regenerated question shows as waiting until its new answer
        # exists, and an old answer comes back only when `activate` hands the slot back.
        node = self.nodes[message_id]
        if not node.agent or node.parent is None:
            return True
        parent = self.nodes[node.parent]
        return parent.agent or node.response_to == parent.id

    def _activation(self, message_id: Any) -> tuple[int, datetime | None, str]:
        # Never activated (old linear rows) sorts before any activation; ties go to the newest.
        activated = self.nodes[message_id].activated_at
        return (0, None, str(message_id)) if activated is None else (1, activated, str(message_id))


@dataclass(frozen=True)
class Branches:
    """Where a message stands among its siblings, for the "2/3" switcher.

    Attributes:
        index: Its position, from 1.
        count: How many siblings there are (itself included).
        previous: The id of the sibling before it, `None` for the first.
        next: The id of the sibling after it, `None` for the last.
    """

    index: int
    count: int
    previous: Any = None
    next: Any = None

    def __bool__(self) -> bool:
        return self.count > 1


def attach_branches(messages: Iterable[AbstractMessage], tree: BranchTree) -> None:
    """Set `message.branches` (a `Branches`) on each of `messages` for the templates."""
    for message in messages:
        if message.pk not in tree:
            continue
        siblings = tree.siblings(message.pk)
        index = siblings.index(message.pk)
        message.branches = Branches(
            index=index + 1,
            count=len(siblings),
            previous=siblings[index - 1] if index > 0 else None,
            next=siblings[index + 1] if index + 1 < len(siblings) else None,
        )


@contextmanager
def announce_path_change(message_model: Any, conversation_id: Any) -> Iterator[None]:
    """Tell open pages which messages a branch operation took off or put on the active path.

    Wrap the operation (an edit, a regenerate, a switch) in it, inside the action's
    transaction: the announcements go out at commit (`streaming.path_changed`).

    Example:
        ```python
        with transaction.atomic(), announce_path_change(Message, conversation.pk):
            Message.objects.activate(message)
        ```
    """
    messages = message_model._default_manager
    before = messages.tree(conversation_id).active_path()
    yield
    path_changed(conversation_id, before, messages.tree(conversation_id).active_path())


def link_linear_history(message_model: Any, conversation_id: Any = None) -> int:
    """Store the implied parent of every old linear row (of one conversation, or of all).

    Each such message gets as `parent` the message before it in the conversation's linear order
    (an answer right after its question), which is what it followed already: the active path does
    not change. Usable in a data migration: `message_model` is a concrete message model or its
    historical version (`apps.get_model`), hence untyped. Returns the rows linked.
    """
    rows = message_model._default_manager.all()
    if conversation_id is not None:
        rows = rows.filter(conversation_id=conversation_id)
    conversations = (
        [conversation_id]
        if conversation_id is not None
        else list(
            rows.filter(parent__isnull=True, activated_at__isnull=True)
            .values_list("conversation_id", flat=True)
            .distinct()
        )
    )
    linked = 0
    for one in conversations:
        tree = BranchTree.from_rows(rows.filter(conversation_id=one).values_list(*TREE_FIELDS))
        changes = [message_model(pk=pk, parent_id=parent) for pk, parent in tree.unlinked().items()]
        message_model._default_manager.bulk_update(changes, ["parent"], batch_size=500)
        linked += len(changes)
    return linked


def _linear_key(node: Node) -> tuple[str, bool, str]:
    # How messages read before branches: by id (UUID v7, time-ordered), an answer right after
    # its question even when a later question was sent first.
    return (str(node.response_to or node.id), node.agent, str(node.id))
