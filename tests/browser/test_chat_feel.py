"""How the chat looks and feels (issue 12): each item tested by what a person would notice.

Several items share one page session where they can: page loads are the slow part of this suite.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Watch
from tests.browser.test_chat_ui import AGENT, LAST_AGENT, assert_clean, send, wait_for_answer

pytestmark = pytest.mark.browser

LAST_USER = "[data-messages] > [data-source=user] >> nth=-1"


def _box(page: Page, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return {key: round(value) for key, value in box.items()}


def test_a_new_chat_streams_in_place_as_prose_with_stop_in_the_place_of_send(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    page.goto("/chat/")
    expect(page.locator("[data-conversation-title]")).to_have_text("New chat")
    page.evaluate("window.notReloaded = true")
    composer = _box(page, "[data-composer-box]")
    text_box = _box(page, "[data-composer-input]")
    send_button = _box(page, "[data-send]")

    send(page, "Tell me a long story. [tokens:400]")
    # The first message of a new chat: the address changes, the page is not reloaded.
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    answer = page.locator(LAST_AGENT)
    expect(answer.locator("[data-body]")).to_contain_text("Streaming answers", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("[data-conversation-title]")).to_have_text("New chat")

    # While it answers, Stop stands where Send was and the text box keeps its size.
    stop = page.locator("[data-stop]")
    expect(stop).to_be_visible()
    expect(page.locator("[data-send]")).to_be_hidden()
    assert _box(page, "[data-stop]") == send_button
    assert _box(page, "[data-composer-box]") == composer
    assert _box(page, "[data-composer-input]") == text_box

    # The answer is prose across the column (no bubble, no avatar); the question sits compact
    # on the right.
    column = _box(page, "[data-messages]")
    body = answer.locator("[data-body]").bounding_box()
    assert body is not None and body["width"] >= column["width"] - 2
    expect(page.locator("[data-chat-root] .chat-bubble, [data-chat-root] .avatar")).to_have_count(0)
    question = page.locator(LAST_USER).locator("[data-body]").bounding_box()
    assert question is not None
    assert question["width"] < column["width"] / 2
    assert abs(question["x"] + question["width"] - (column["x"] + column["width"])) <= 2

    stop.click()
    expect(answer).to_have_attribute("data-complete", "true")
    expect(page.locator("[data-send]")).to_be_visible()
    expect(stop).to_be_hidden()
    assert _box(page, "[data-send]") == send_button
    assert _box(page, "[data-composer-box]") == composer
    assert _box(page, "[data-composer-input]") == text_box

    # Back and forward show what the address says.
    page.go_back()
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator("[data-messages] > [data-message]")).to_have_count(0)
    assert_clean(watch)


def _clipboard(page: Page) -> Any:
    return page.evaluate("navigator.clipboard.readText()")


def test_copy_buttons_put_code_answers_and_questions_on_the_clipboard(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/chat/")
    send(page, "[say:Run this:\n\n```python\nprint('hi')\n```\n\nThen smile.]")
    answer = wait_for_answer(page)

    answer.get_by_role("button", name="Copy code").click()
    expect(answer.get_by_role("button", name="Copy code")).to_contain_text("Copied")
    assert _clipboard(page) == "print('hi')"
    answer.get_by_role("button", name="Copy answer").click()
    copied = _clipboard(page)
    assert copied.startswith("Run this:") and copied.endswith("Then smile.")
    assert "print('hi')" in copied and "Copy" not in copied
    page.locator(LAST_USER).get_by_role("button", name="Copy message").click()
    assert _clipboard(page).startswith("[say:Run this:")
    assert_clean(watch)


def test_a_failed_answer_is_an_inline_error_with_retry(alice: tuple[Page, Watch]) -> None:
    page, watch = alice
    page.goto("/chat/")
    send(page, "This will fail. [error:500]")
    answer = wait_for_answer(page)
    error = answer.locator("[data-answer-error]")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    first = answer.get_attribute("id")

    error.get_by_role("button", name="Retry").click()
    expect(page.locator(f"#{first}")).to_have_count(0)
    again = wait_for_answer(page)
    assert again.get_attribute("id") != first
    # The scripted provider fails again: a new answer, with its own error and Retry.
    expect(again.locator("[data-answer-error]").get_by_role("button", name="Retry")).to_be_visible()
    expect(page.locator(AGENT)).to_have_count(1)
    assert_clean(watch)


def test_narrow_phones_and_the_dark_theme(alice_mobile: tuple[Page, Watch]) -> None:
    page, watch = alice_mobile
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto("/chat/")
    code = "x = 1  # " + "long " * 30
    markdown = f"| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\n{code}\n```"
    send(page, f"[say:{markdown}]")
    wait_for_answer(page)
    # Nothing is wider than the screen: long code scrolls inside its block.
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 320
    for selector in ("[data-composer-box]", "[data-send]", "[data-drawer-open]"):
        box = _box(page, selector)
        assert box["x"] >= 0 and box["x"] + box["width"] <= 320, selector

    def colours() -> Any:
        return page.evaluate(
            """() => {
              const root = getComputedStyle(document.querySelector('[data-chat-root]'));
              const keyword = document.querySelector('.highlight .hljs-comment');
              return [root.backgroundColor, root.color, getComputedStyle(keyword).color];
            }"""
        )

    light = colours()
    page.emulate_media(color_scheme="dark")
    dark = colours()
    assert all(a != b for a, b in zip(light, dark, strict=True)), (light, dark)
    assert_clean(watch)
