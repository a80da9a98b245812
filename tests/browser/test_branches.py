"""Branches in headless Chromium: edit a message, regenerate an answer, switch versions.

Same real project, servers and fake provider as `test_chat_ui.py` (the session's `site`).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import USERS, Site, Watch
from tests.browser.test_chat_ui import (
    AGENT,
    LAST_AGENT,
    assert_clean,
    message_id,
    send,
    start_conversation,
    wait_for_answer,
)
from tests.e2e.newproject import manage

pytestmark = pytest.mark.browser

USER = "[data-messages] > [data-source=user]"


def test_an_edit_is_a_new_version_every_tab_follows_and_the_old_one_comes_back(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    conversation = start_conversation(page, "[say:Paris.] Capital of France?")
    wait_for_answer(page)
    send(page, "[say:Lyon.] And the second city?")
    expect(page.locator(AGENT)).to_have_count(2)
    second = wait_for_answer(page)
    expect(second).to_contain_text("Lyon.")
    original = page.locator(f"{USER} >> nth=-1")
    original_id = message_id(original)
    other = page.context.new_page()
    other.goto(f"/chat/{conversation}/")
    expect(other.locator(f"#message-{original_id}")).to_be_visible()

    original.get_by_role("button", name="Edit message").click()
    box = original.get_by_label("Edit your message")
    expect(box).to_be_focused()
    box.fill("[say:Marseille.] And the largest city after Paris?")
    box.press("Enter")

    # The new version replaces the old one, with its own answer, here and in the other tab.
    for tab in (page, other):
        expect(tab.locator(f"#message-{original_id}")).to_have_count(0)
        edited = tab.locator(f"{USER} >> nth=-1")
        expect(edited).to_contain_text("largest city after Paris")
        expect(edited.locator("[data-branches]")).to_contain_text("Version 2 of 2")
        expect(tab.locator(LAST_AGENT)).to_contain_text("Marseille.", timeout=30_000)
        expect(tab.locator(AGENT)).to_have_count(2)
    wait_for_answer(page)

    # Back to the first version, by keyboard: it comes back with its answer, in both tabs.
    previous = page.locator(f"{USER} >> nth=-1").get_by_role("button", name="Previous version")
    previous.focus()
    page.keyboard.press("Enter")
    for tab in (page, other):
        restored = tab.locator(f"#message-{original_id}")
        expect(restored).to_contain_text("And the second city?")
        expect(restored.locator("[data-branches]")).to_contain_text("Version 1 of 2")
        expect(tab.locator(LAST_AGENT)).to_contain_text("Lyon.")
        expect(tab.locator(USER)).to_have_count(2)
    # The focus stays on the switcher, now the restored version's (its "next" arrow).
    expect(
        page.locator(f"#message-{original_id}").get_by_role("button", name="Next version")
    ).to_be_focused()

    # The choice is stored: a reload shows the same branch.
    page.reload()
    expect(page.locator(f"#message-{original_id}")).to_contain_text("And the second city?")
    expect(page.locator(LAST_AGENT)).to_contain_text("Lyon.")
    expect(page.get_by_text("largest city after Paris")).to_have_count(0)
    other.close()
    assert_clean(watch)


def test_escape_cancels_an_edit_and_a_blank_one_is_refused_in_place(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    start_conversation(page, "[say:Noted.] Remember the milk.")
    wait_for_answer(page)
    question = page.locator(f"{USER} >> nth=-1")
    edit = question.get_by_role("button", name="Edit message")

    edit.click()
    box = question.get_by_label("Edit your message")
    box.fill("Something else entirely")
    box.press("Escape")
    expect(box).to_be_hidden()
    expect(question.locator("[data-body]")).to_have_text("[say:Noted.] Remember the milk.")
    expect(edit).to_be_focused()

    edit.click()
    expect(box).to_have_value("[say:Noted.] Remember the milk.")  # the edit cancelled is gone
    box.fill("   ")
    box.press("Enter")
    error = question.locator("[data-edit-error]")
    expect(error).to_contain_text("Message cannot be empty")
    expect(box).to_be_focused()
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(page.locator(USER)).to_have_count(1)
    expect(page.locator("[data-branches]")).to_have_count(0)
    assert_clean(watch)


def test_regenerate_keeps_the_previous_answer_behind_the_switcher(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    start_conversation(page, "[say:First take.] Say something.")
    first_id = message_id(wait_for_answer(page))

    page.locator(LAST_AGENT).get_by_role("button", name="Regenerate").click()
    expect(page.locator(f"#message-{first_id}")).to_have_count(0)
    again = wait_for_answer(page)
    assert message_id(again) != first_id
    expect(again.locator("[data-branches]")).to_contain_text("Version 2 of 2")

    again.get_by_role("button", name="Previous version").click()
    restored = page.locator(f"#message-{first_id}")
    expect(restored).to_be_visible()
    expect(restored.locator("[data-branches]")).to_contain_text("Version 1 of 2")
    expect(page.locator(AGENT)).to_have_count(1)
    page.reload()
    expect(page.locator(f"#message-{first_id}")).to_be_visible()
    assert_clean(watch)


def test_a_page_whose_stream_was_down_during_a_switch_shows_the_branch_switched_to(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    conversation = start_conversation(page, "[say:Old answer.] A question")
    wait_for_answer(page)
    question = page.locator(f"{USER} >> nth=-1")
    original_id = message_id(question)
    question.get_by_role("button", name="Edit message").click()
    question.get_by_label("Edit your message").fill("[say:New answer.] A question, edited")
    question.get_by_label("Edit your message").press("Enter")
    expect(page.locator(LAST_AGENT)).to_contain_text("New answer.", timeout=30_000)
    wait_for_answer(page)

    # Switched back while the web server is down: the page never hears it live.
    site.stop_server()
    switch = (
        "from accounts.models import User; from chat import actions; "
        f"actions.switch_branch(User.objects.get(email={USERS[0]!r}), {original_id!r})"
    )
    done = manage(site.project, "shell", "-c", switch, env=site.env, timeout=60)
    assert done.returncode == 0, done.stderr
    site.start_server()
    expect(page.locator(f"#message-{original_id}")).to_be_visible(timeout=30_000)
    expect(page.locator(LAST_AGENT)).to_contain_text("Old answer.")
    expect(page.get_by_text("A question, edited")).to_have_count(0)
    assert page.url.rstrip("/").endswith(conversation)
    assert_clean(watch)
