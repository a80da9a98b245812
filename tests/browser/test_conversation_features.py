"""Conversation features in headless Chromium, as a person uses them.

Rating answers, searching conversations, choosing the model, long histories summarised, MCP tools.

Same real project, servers and fake provider as `test_chat_ui.py` (the session's `site`).
"""

from __future__ import annotations

import ast
import json
import random
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, Watch
from tests.browser.test_chat_ui import (
    assert_clean,
    message_id,
    send,
    start_conversation,
    wait_for_answer,
)
from tests.e2e.newproject import manage

pytestmark = pytest.mark.browser


def feedback_rows(site: Site, answer_id: str) -> list[dict[str, str]]:
    """The stored ratings of an answer, read by the project itself."""
    code = (
        "import json; from chat.models import Feedback; "
        f"print(json.dumps(list(Feedback.objects.filter(message_id={answer_id!r})"
        ".values('rating', 'note', 'user__email'))))"
    )
    result = manage(site.project, "shell", "-c", code, env=site.env, timeout=60)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return rows


def csrf_headers(page: Page) -> dict[str, str]:
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return {"X-CSRFToken": csrf, "Referer": page.url}


def test_an_answer_is_rated_changed_and_noted_and_the_rating_survives_a_reload(
    alice: tuple[Page, Watch], bob: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    start_conversation(page, "[say:The capital of France is Paris.]")
    answer = wait_for_answer(page)
    answer_id = message_id(answer)
    good = answer.get_by_role("button", name="Good answer")
    bad = answer.get_by_role("button", name="Bad answer")
    expect(good).to_have_attribute("aria-pressed", "false")

    good.click()
    expect(answer.get_by_role("button", name="Good answer")).to_have_attribute(
        "aria-pressed", "true"
    )
    answer.get_by_role("button", name="Bad answer").click()
    expect(bad).to_have_attribute("aria-pressed", "true")
    expect(good).to_have_attribute("aria-pressed", "false")

    answer.get_by_role("button", name="Add a note").click()
    dialog = page.get_by_role("dialog", name="What was wrong with this answer?")
    dialog.get_by_label("Note (optional)").fill("It should cite a source.")
    dialog.get_by_role("button", name="Save note").click()
    expect(answer.get_by_role("button", name="Edit note")).to_be_visible()
    assert feedback_rows(site, answer_id) == [
        {"rating": "down", "note": "It should cite a source.", "user__email": "alice@example.com"}
    ]

    page.reload()
    answer = page.locator(f"#message-{answer_id}")
    expect(answer.get_by_role("button", name="Bad answer")).to_have_attribute(
        "aria-pressed", "true"
    )
    answer.get_by_role("button", name="Bad answer").click()  # pressed again: taken back
    expect(answer.get_by_role("button", name="Bad answer")).to_have_attribute(
        "aria-pressed", "false"
    )
    expect(answer.get_by_role("button", name="Add a note")).to_have_count(0)
    assert feedback_rows(site, answer_id) == []

    # Another user cannot rate it, nor learn that it exists.
    bob_page, _ = bob
    bob_page.goto("/chat/")
    response = bob_page.request.post(
        f"/chat/messages/{answer_id}/feedback/",
        form={"rating": "up"},
        headers=csrf_headers(bob_page),
    )
    assert response.status == 404
    assert feedback_rows(site, answer_id) == []
    assert_clean(watch)


def test_the_sidebar_search_finds_a_conversation_by_its_messages_and_opens_it(
    alice: tuple[Page, Watch], bob: tuple[Page, Watch]
) -> None:
    page, watch = alice
    word = f"zanzibar{random.randrange(10**6)}"
    conversation = start_conversation(page, f"[say:Cloves grow on {word} <b>island</b>.]")
    wait_for_answer(page)
    page.goto("/chat/")

    page.get_by_role("searchbox", name="Search conversations").fill(word)
    results = page.get_by_role("list", name="Search results")
    hit = results.locator(f"[data-search-hit='{conversation}']")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark").first).to_have_text(word)
    expect(hit).to_contain_text("island")
    expect(hit.locator("b")).to_have_count(0)  # the message's markup is never HTML here
    hit.get_by_role("link").click()
    page.wait_for_url(f"**/chat/{conversation}/")

    # Another user searching for the same word finds nothing of Alice's.
    bob_page, _ = bob
    bob_page.goto("/chat/")
    bob_page.get_by_role("searchbox", name="Search conversations").fill(word)
    expect(bob_page.locator("[data-search-empty]")).to_be_visible()
    response = bob_page.request.get(f"/chat/search/?q={word}")
    assert response.status == 200 and conversation not in response.text()
    assert_clean(watch)


def conversation_model(site: Site, conversation_id: str) -> str:
    """The model a conversation chose (`""`: the responder's), read by the project itself."""
    code = (
        "from chat.models import Conversation; "
        f"print(repr(Conversation.objects.get(pk={conversation_id!r}).ai_model))"
    )
    result = manage(site.project, "shell", "-c", code, env=site.env, timeout=60)
    assert result.returncode == 0, result.stderr
    chosen: str = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    return chosen


def test_the_model_picker_keeps_the_choice_per_conversation_and_the_server_refuses_others(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    page.goto("/chat/")
    picker = page.get_by_label("Model", exact=True)
    expect(picker).to_have_value("openai:gpt-4o")  # the responder's model comes first

    picker.select_option(label="GPT-4o mini")
    send(page, "[say:Small and quick.]")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    conversation = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(wait_for_answer(page)).to_contain_text("Small and quick.")
    expect(page.get_by_label("Model", exact=True)).to_have_value("openai:gpt-4o-mini")
    assert conversation_model(site, conversation) == "openai:gpt-4o-mini"

    # A model outside AI_CHAT_MODELS is refused with a clear error; the text stays.
    response = page.request.post(
        f"/chat/{conversation}/send/",
        form={"text": "Use the expensive one", "model": "openai:o3-pro"},
        headers={**csrf_headers(page), "HX-Request": "true"},
    )
    assert response.status == 200
    body = response.text()
    assert "is not available here; choose one of: GPT-4o, GPT-4o mini." in body
    assert "Use the expensive one" in body
    assert conversation_model(site, conversation) == "openai:gpt-4o-mini"
    assert_clean(watch)


def test_a_long_history_is_summarised_behind_a_marker_that_shows_the_summary(
    alice: tuple[Page, Watch], bob: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    # Eight messages of 2,000 characters: 4,000 estimated tokens, the browser site's budget.
    code = (
        "from accounts.models import User; from chat.models import Conversation, Message\n"
        "alice = User.objects.get(email='alice@example.com')\n"
        "c = Conversation.objects.create(user=alice, title='A long talk')\n"
        "for i in range(4):\n"
        "    q = Message.objects.create(conversation=c, text=f'Question {i} ' + 'q' * 1990)\n"
        "    Message.objects.create(conversation=c, source='agent', response_to=q,\n"
        "                           text=f'Answer {i} ' + 'a' * 1990)\n"
        "print(c.pk)"
    )
    made = manage(site.project, "shell", "-c", code, env=site.env, timeout=60)
    assert made.returncode == 0, made.stderr
    conversation = made.stdout.strip().splitlines()[-1]
    page.goto(f"/chat/{conversation}/")
    expect(page.locator("[data-summary-marker]")).to_have_count(0)

    send(page, "[say:Noted.] Where were we?")
    wait_for_answer(page)

    # The answer's job queued the summary; it appears live, on the last message it covers.
    marker = page.locator("[data-summary-marker]")
    expect(marker).to_have_count(1, timeout=30_000)
    expect(marker).to_contain_text("Earlier messages summarised (")
    expect(marker.locator("[data-summary]")).not_to_be_visible()
    marker.locator("summary").click()
    expect(marker.locator("[data-summary]")).to_be_visible()
    holder = page.locator("[data-message]", has=page.locator("[data-summary-marker]"))
    assert holder.get_attribute("data-source") == "agent"

    page.reload()
    expect(page.locator("[data-summary-marker]")).to_have_count(1)

    bob_page, _ = bob
    response = bob_page.goto(f"/chat/{conversation}/")
    assert response is not None and response.status == 404
    assert_clean(watch)


def test_an_mcp_servers_tool_runs_as_the_user_and_one_without_permission_is_refused(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    start_conversation(page, "Who am I there? [tool:notes_whoami {}]")
    answer = wait_for_answer(page)
    card = answer.locator('[data-tool-card="notes_whoami"]')
    expect(card).to_contain_text("done")
    card.locator("summary").click()
    # The server read the user's identity from the header the setting templates.
    expect(card.locator('[data-tool-result="notes_whoami"] pre')).to_have_text(
        "user=alice@example.com"
    )

    send(page, "Now blow it up. [tool:notes_explode {}]")
    page.wait_for_function(
        "document.querySelectorAll('[data-messages] > [data-source=agent]').length === 2"
    )
    answer = wait_for_answer(page)
    card = answer.locator('[data-tool-card="notes_explode"]')
    expect(card).to_contain_text("failed")  # not offered to alice: refused, the answer goes on
    expect(answer).not_to_have_attribute("data-error", "true")
    assert_clean(watch)
