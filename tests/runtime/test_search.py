"""Full-text search over an actor's conversations (`django_ai_chat.search`), on real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from django_ai_chat.search import search_conversations
from django_ai_chat.testing import make_user
from tests.testapp.models import Conversation, Message

pytestmark = pytest.mark.django_db


def chat(owner: Any, title: str, *texts: str) -> Conversation:
    conversation = Conversation.objects.create(user=owner, title=title)
    for text in texts:
        Message.objects.create(conversation=conversation, text=text)
    return conversation


def test_titles_and_messages_match_with_stemming_best_first_one_hit_per_conversation() -> None:
    alice = make_user("alice")
    trip = chat(alice, "Trip to Lisbon", "Which museums are open on Mondays?")
    invoices = chat(
        alice, "", "How do I pay invoices?", "Paying an invoice: open Billing.", "Unrelated."
    )
    chat(alice, "Groceries", "Milk and eggs")

    hits = search_conversations(Message, alice, "invoice")
    assert [hit.conversation for hit in hits] == [invoices]
    assert hits[0].title == "Untitled conversation"
    assert "<mark>invoice" in hits[0].snippet.lower()

    museum = search_conversations(Message, alice, "museum lisbon")  # both words, anywhere
    assert museum == []  # websearch: every word in the same row
    lisbon = search_conversations(Message, alice, "lisbon")
    assert [hit.conversation for hit in lisbon] == [trip]
    assert lisbon[0].title == "Trip to <mark>Lisbon</mark>"
    assert lisbon[0].snippet == "" and lisbon[0].message_id is None


def test_another_users_rows_never_appear() -> None:
    alice, bob = make_user("alice"), make_user("bob")
    chat(bob, "Secret merger", "The merger closes in May.")
    mine = chat(alice, "", "When does the merger close?")

    assert [hit.conversation for hit in search_conversations(Message, alice, "merger")] == [mine]
    assert search_conversations(Message, None, "merger") == []


def test_snippets_escape_the_text_and_mark_only_the_matches() -> None:
    alice = make_user("alice")
    chat(alice, "<b>bold</b> title", '<img src=x onerror="alert(1)"> if a < b && bold \ue000')

    [hit] = search_conversations(Message, alice, "bold")

    # PostgreSQL's headline leaves out what its parser reads as a tag; the rest is escaped.
    assert "<img" not in hit.snippet and "<b>" not in hit.title
    assert hit.snippet.startswith("if a &lt; b &amp;&amp; <mark>bold</mark>"), hit.snippet
    assert hit.title == "&lt;b&gt;<mark>bold</mark>&lt;/b&gt; title"


@pytest.mark.parametrize("text", ["", "   ", "the and of"])
def test_blank_text_or_only_stop_words_find_nothing(text: str) -> None:
    alice = make_user("alice")
    chat(alice, "The plan", "and of the")

    assert search_conversations(Message, alice, text) == []


def test_the_message_search_can_use_the_gin_index() -> None:
    alice = make_user("alice")
    chat(alice, "", "needle")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM testapp_message WHERE "
            "to_tsvector('english'::regconfig, COALESCE(text, '')) @@ "
            "websearch_to_tsquery('english'::regconfig, 'needle')"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "testapp_msg_search" in plan
