"""Branches: the tree of a conversation's messages, its active path, and what the model is sent.

Through `Message.objects` (`MessageQuerySet`) and `Responder.history_messages` on real rows
(`tests.testapp`), and the migration's `link_linear_history` on rows written without links.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from django_ai_chat.answers import Responder
from django_ai_chat.branches import BranchTree, attach_branches, link_linear_history
from django_ai_chat.testing import make_user
from tests.testapp.models import Conversation, Message

pytestmark = pytest.mark.django_db


class BranchResponder(Responder):
    conversation_model = Conversation
    message_model = Message
    model = "test:scripted"


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]


def active(conversation: Conversation) -> list[str]:
    return texts(Message.objects.on_active_path(conversation.pk))


def answer(question: Message, text: str) -> Message:
    made = Message.objects.create_answer(question, text=text)
    assert made is not None
    return made


@pytest.fixture
def conversation() -> Conversation:
    return Conversation.objects.create(user=make_user("alice"), title="Branches")


def test_questions_and_answers_form_one_path(conversation: Conversation) -> None:
    q1 = Message.objects.add_question(conversation, text="Q1")
    answer(q1, "A1")
    q2 = Message.objects.add_question(conversation, text="Q2")
    answer(q2, "A2")
    assert active(conversation) == ["Q1", "A1", "Q2", "A2"]
    assert q2.parent_id is not None


def test_a_question_sent_while_another_waits_follows_its_answer(
    conversation: Conversation,
) -> None:
    q1 = Message.objects.add_question(conversation, text="Q1")
    Message.objects.add_question(conversation, text="Q2")
    answer(q1, "A1")
    assert active(conversation) == ["Q1", "A1", "Q2"]


def test_an_edit_is_a_sibling_question_and_the_old_branch_stays(
    conversation: Conversation,
) -> None:
    q1 = Message.objects.add_question(conversation, text="Q1")
    answer(q1, "A1")
    q2 = Message.objects.add_question(conversation, text="Q2")
    answer(q2, "A2")
    edited = Message.objects.add_sibling(q2, text="Q2 edited")
    answer(edited, "A2 again")
    assert active(conversation) == ["Q1", "A1", "Q2 edited", "A2 again"]
    assert Message.objects.filter(conversation=conversation).count() == 6

    Message.objects.activate(q2)  # switch back: the old branch, as it was left
    assert active(conversation) == ["Q1", "A1", "Q2", "A2"]
    Message.objects.activate(edited)
    assert active(conversation) == ["Q1", "A1", "Q2 edited", "A2 again"]


def test_a_regenerated_answer_keeps_the_old_one_as_a_sibling(conversation: Conversation) -> None:
    q1 = Message.objects.add_question(conversation, text="Q1")
    old = answer(q1, "A1")
    assert Message.objects.detach_answer(q1) == old
    new = answer(q1, "A1 again")
    assert active(conversation) == ["Q1", "A1 again"]
    tree = Message.objects.tree(conversation.pk)
    assert tree.siblings(new.pk) == [old.pk, new.pk]

    Message.objects.activate(old)
    assert active(conversation) == ["Q1", "A1"]
    Message.objects.add_question(conversation, text="Q2")  # follows the answer switched to
    assert active(conversation) == ["Q1", "A1", "Q2"]


def test_a_question_answered_again_waits_and_switching_hands_the_answer_slot_over(
    conversation: Conversation,
) -> None:
    q1 = Message.objects.add_question(conversation, text="Q1")
    old = answer(q1, "A1")
    Message.objects.detach_answer(q1)
    # The old answer is still the newest activated child, but no longer answers Q1.
    assert active(conversation) == ["Q1"]
    assert list(Message.objects.needing_response()) == [q1]
    new = answer(q1, "A1 again")

    Message.objects.activate(old)
    assert active(conversation) == ["Q1", "A1"]
    assert Message.objects.get(pk=new.pk).response_to_id is None
    assert Message.objects.get(pk=old.pk).response_to_id == q1.pk
    assert Message.objects.create_answer(q1, text="a duplicate job") is None
    Message.objects.activate(new)
    assert active(conversation) == ["Q1", "A1 again"]
    assert Message.objects.get(pk=old.pk).response_to_id is None


def test_attach_branches_says_where_each_message_stands(conversation: Conversation) -> None:
    q1 = Message.objects.add_question(conversation, text="Q1")
    answer(q1, "A1")
    edited = Message.objects.add_sibling(q1, text="Q1 edited")
    shown = Message.objects.on_active_path(conversation.pk)
    attach_branches(shown, Message.objects.tree(conversation.pk))
    assert shown[0].pk == edited.pk
    assert shown[0].branches is not None
    assert (shown[0].branches.index, shown[0].branches.count) == (2, 2)
    assert shown[0].branches.previous == q1.pk and shown[0].branches.next is None


def test_only_questions_have_sibling_questions(conversation: Conversation) -> None:
    from django.core.exceptions import ValidationError

    q1 = Message.objects.add_question(conversation, text="Q1")
    with pytest.raises(ValidationError):
        Message.objects.add_sibling(answer(q1, "A1"), text="no")


def test_the_history_the_model_is_sent_is_the_active_branch(conversation: Conversation) -> None:
    q1 = Message.objects.add_question(conversation, text="Q1")
    old = answer(q1, "A1")
    Message.objects.detach_answer(q1)
    answer(q1, "A1 again")
    q2 = Message.objects.add_question(conversation, text="Q2")
    answer(q2, "A2")
    edited = Message.objects.add_sibling(q2, text="Q2 edited")

    history = async_to_sync(BranchResponder().history_messages)
    assert texts(history(edited)) == ["Q1", "A1 again", "Q2 edited"]

    Message.objects.activate(old)
    q3 = Message.objects.add_question(conversation, text="Q3")
    assert texts(history(q3)) == ["Q1", "A1", "Q3"]


def test_rows_written_without_links_read_linearly_and_the_migration_links_them(
    conversation: Conversation,
) -> None:
    # As before branches: plain rows, an answer right after its question.
    q1 = Message.objects.create(conversation=conversation, text="Q1")
    q2 = Message.objects.create(conversation=conversation, text="Q2")  # sent while Q1 waited
    a1 = Message.objects.create(
        conversation=conversation, text="A1", source="agent", response_to=q1
    )
    a2 = Message.objects.create(
        conversation=conversation, text="A2", source="agent", response_to=q2
    )
    assert active(conversation) == ["Q1", "A1", "Q2", "A2"]

    assert link_linear_history(Message) == 4 - 1  # the first is a root
    parents = dict(Message.objects.values_list("pk", "parent_id"))
    assert parents == {q1.pk: None, a1.pk: q1.pk, q2.pk: a1.pk, a2.pk: q2.pk}
    assert active(conversation) == ["Q1", "A1", "Q2", "A2"]
    assert link_linear_history(Message) == 0

    # An old row edited: the branch starts where it stood.
    Message.objects.add_sibling(q2, text="Q2 edited")
    assert active(conversation) == ["Q1", "A1", "Q2 edited"]


def test_a_tree_of_no_message_has_an_empty_path() -> None:
    tree = BranchTree([])
    assert tree.active_path() == [] and tree.leaf() is None and len(tree) == 0
