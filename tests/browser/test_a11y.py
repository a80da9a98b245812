"""Accessibility in headless Chromium: axe-core finds nothing serious, the keyboard does it all.

axe-core (the engine behind Lighthouse's and most CI accessibility checks) runs in the page
through `axe-playwright-python`, which ships axe-core's script in its wheel (no download at test
time). A serious or critical violation on the chat page (light and dark), the component, the
accounts pages, a shared conversation, the composer with files chosen, a message with
attachments or an answer's Thinking section fails the test with the rule, its help text and the
elements it found.

Same real project, servers and fake provider as `test_chat_ui.py` (the session's `site`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from django_ai_chat.testing import sample_pdf, sample_png
from tests.browser.conftest import Site, Watch
from tests.browser.test_chat_ui import assert_clean, start_conversation, wait_for_answer

pytestmark = pytest.mark.browser

_AXE = Axe()
BLOCKING = {"serious", "critical"}


def violations(page: Page) -> list[str]:
    """The serious and critical axe-core violations of the page, one readable line each."""
    # Mid-transition (a dialog fading in) colours are half-transparent: judge the settled page.
    page.wait_for_function(
        "() => document.getAnimations().every((a) => a.playState !== 'running'"
        " || a.effect?.getTiming().iterations === Infinity)"
    )
    results: Any = _AXE.run(page)
    found = []
    for violation in results.response["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:5]]
        found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} @ {targets}")
    return found


def test_the_chat_page_has_no_serious_violations_light(alice: tuple[Page, Watch]) -> None:
    page, _ = alice
    start_conversation(page, 'Chats? [tool:chat_list_conversations {"limit": 2}]')
    answer = wait_for_answer(page)
    answer.locator("summary").first.click()  # an open tool card
    answer.get_by_role("button", name="Good answer").click()
    expect(answer.get_by_role("button", name="Add a note")).to_be_visible()
    assert violations(page) == []

    page.get_by_label("Search conversations").fill("zzzz-no-such-words")
    expect(page.locator("[data-search-empty]")).to_be_visible()
    assert violations(page) == []

    for opener, name in (("Rename conversation", "Rename conversation"), ("Add a note", None)):
        page.get_by_role("button", name=opener).first.click()
        dialog = page.locator("dialog[open]")
        expect(dialog).to_be_visible()
        assert violations(page) == [], name or opener
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()


def test_the_mobile_drawer_has_no_serious_violations(alice_mobile: tuple[Page, Watch]) -> None:
    page, _ = alice_mobile
    page.goto("/chat/")
    page.locator("[data-drawer-open]").click()
    expect(page.locator("[data-sidebar]")).to_be_visible()
    assert violations(page) == []


def test_the_chat_page_has_no_serious_violations_dark(
    browser: Browser, site: Site, sessions: dict[str, Any]
) -> None:
    context = browser.new_context(
        base_url=site.base_url,
        storage_state=sessions["alice@example.com"],
        color_scheme="dark",
        viewport={"width": 1280, "height": 860},
    )
    page = context.new_page()
    try:
        start_conversation(page, "[say:Dark: `code`, a [link](https://example.com), **bold**.]")
        wait_for_answer(page)
        assert violations(page) == []
        page.get_by_label("Search conversations").fill("Dark")
        expect(page.locator("[data-search-hit]").first).to_be_visible()
        assert violations(page) == []
    finally:
        context.close()


def test_the_component_has_no_serious_violations(alice: tuple[Page, Watch]) -> None:
    page, _ = alice
    page.goto("/host/")
    page.locator("[data-chat-root][data-mode=component]").wait_for()
    assert violations(page) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_share_dialog_and_the_shared_page_have_no_serious_violations(
    browser: Browser, site: Site, sessions: dict[str, Any], scheme: str
) -> None:
    context = browser.new_context(
        base_url=site.base_url,
        storage_state=sessions["alice@example.com"],
        color_scheme=scheme,  # type: ignore[arg-type]
        viewport={"width": 1280, "height": 860},
    )
    page = context.new_page()
    try:
        start_conversation(page, "[say:A **shared** answer with `code`.]")
        wait_for_answer(page)
        page.get_by_role("button", name="Share conversation").click()
        dialog = page.get_by_role("dialog", name="Share a read-only link")
        dialog.get_by_role("button", name="Create link").click()
        link = dialog.get_by_label("Link")
        expect(link).to_be_focused()
        assert violations(page) == []
        page.goto(link.input_value())
        expect(page.locator("[data-shared-message]")).to_have_count(2)
        assert violations(page) == []
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_attachments_and_reasoning_have_no_serious_violations(
    browser: Browser, site: Site, sessions: dict[str, Any], scheme: str
) -> None:
    context = browser.new_context(
        base_url=site.base_url,
        storage_state=sessions["alice@example.com"],
        color_scheme=scheme,  # type: ignore[arg-type]
        viewport={"width": 1280, "height": 860},
    )
    page = context.new_page()
    try:
        page.goto("/chat/")
        # The composer with files chosen: a thumbnail, a PDF and a text file, each removable.
        with page.expect_file_chooser() as chooser:
            page.get_by_role("button", name="Attach files").click()
        chooser.value.set_files(
            [
                {"name": "chart.png", "mimeType": "image/png", "buffer": sample_png(96, 64)},
                {"name": "minutes.pdf", "mimeType": "application/pdf", "buffer": sample_pdf()},
                {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"Buy milk.\n"},
            ]
        )
        pending = page.get_by_role("list", name="Files to send")
        expect(pending.get_by_role("listitem")).to_have_count(3)
        assert violations(page) == []

        # The sent message's thumbnail and chips; the answer's Thinking section, open and folded.
        box = page.locator("[data-composer-input]")
        box.fill("What do these say? [think:40] [tokens:20]")
        box.press("Enter")
        page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
        question = page.locator("[data-messages] > [data-source=user]").last
        expect(
            question.get_by_role("list", name="Attached files").get_by_role("listitem")
        ).to_have_count(3)
        answer = page.locator("[data-messages] > [data-source=agent]").last
        expect(answer.locator("[data-thinking-body]")).not_to_have_text("", timeout=20_000)
        answer = wait_for_answer(page)
        assert violations(page) == []
        answer.locator("[data-thinking] > summary").click()
        expect(answer.locator("[data-thinking]")).to_have_attribute("open", "")
        assert violations(page) == []
    finally:
        context.close()


def test_the_branch_switcher_and_the_edit_form_have_no_serious_violations(
    alice: tuple[Page, Watch],
) -> None:
    page, _ = alice
    page.goto("/chat/")
    box = page.locator("[data-composer-input]")
    box.fill("[say:First.] A question")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    wait_for_answer(page)
    question = page.locator("[data-messages] > [data-source=user]").last
    question.get_by_role("button", name="Edit message").click()
    edit = question.get_by_label("Edit your message")
    edit.fill("   ")
    edit.press("Enter")  # refused: the error shows under the text, described by it
    expect(question.locator("[data-edit-error]")).to_be_visible()
    assert violations(page) == []
    edit.fill("[say:Second.] The question, edited")
    edit.press("Enter")
    switcher = page.locator("[data-messages] > [data-source=user]").last.locator("[data-branches]")
    expect(switcher).to_contain_text("Version 2 of 2")
    wait_for_answer(page)
    assert violations(page) == []


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/"])
def test_the_accounts_pages_have_no_serious_violations(
    browser: Browser, site: Site, path: str
) -> None:
    for scheme in ("light", "dark"):
        context = browser.new_context(base_url=site.base_url, color_scheme=scheme)  # type: ignore[arg-type]
        page = context.new_page()
        try:
            page.goto(path)
            assert violations(page) == [], scheme
        finally:
            context.close()


# -- the keyboard alone ---------------------------------------------------------------------

FOCUSED = "document.activeElement"
LAST_IN_SIDEBAR = """(() => {
  const controls = [...document.querySelectorAll(
    "[data-sidebar] :is(a[href], button, input, select, textarea, [tabindex='0'])"
  )].filter((el) => !el.disabled && el.checkVisibility());
  return controls.at(-1) === document.activeElement;
})()"""

RECORD_ANNOUNCEMENTS = """
window.announced = [];
new MutationObserver((records) => {
  for (const record of records) {
    const node = record.target.nodeType === 1 ? record.target : record.target.parentElement;
    const text = node?.matches("[data-announcer]") && node.textContent;
    if (text) window.announced.push(text);
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def focused(page: Page, selector: str) -> bool:
    return bool(page.evaluate(f"!!{FOCUSED}?.matches({selector!r})"))


def tab_to(page: Page, selector: str, *, key: str = "Tab", most: int = 40) -> None:
    """Press Tab (or `key`) until the focus is on `selector`, as a keyboard user would."""
    for _ in range(most):
        if focused(page, selector):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{selector} never got the focus with {key}")


def test_send_and_stop_with_the_keyboard_keep_the_focus_in_the_composer(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    page.add_init_script(RECORD_ANNOUNCEMENTS)
    page.goto("/chat/")
    box = page.locator("[data-composer-input]")
    expect(box).to_be_focused()

    page.keyboard.type("Talk for a while. [tokens:400]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    box = page.locator("[data-composer-input]")
    expect(box).to_be_focused()
    answer = page.locator("[data-message][data-source=agent]").last
    expect(answer.locator("[data-body]")).to_contain_text("Streaming answers", timeout=20_000)
    page.keyboard.press("Escape")  # in the text box: stops the answer
    expect(answer).to_have_attribute("data-stopped", "true")
    expect(box).to_be_focused()

    # Tab to Stop and press it: when it goes away, the focus is back in the composer.
    page.keyboard.type("And again. [tokens:400]")
    page.keyboard.press("Enter")
    expect(page.locator("[data-message][data-source=agent]")).to_have_count(2)
    answer = page.locator("[data-message][data-source=agent]").last
    expect(answer.locator("[data-body]")).to_contain_text("Streaming answers", timeout=20_000)
    tab_to(page, "[data-stop]")
    page.keyboard.press("Enter")
    expect(answer).to_have_attribute("data-stopped", "true")
    expect(page.locator("[data-composer-input]")).to_be_focused()

    # Hundreds of tokens, a handful of announcements: "responding", then each answer once.
    announced = page.evaluate("window.announced")
    assert 2 <= len(announced) <= 6, announced
    assert any(text.startswith("Answer stopped.") for text in announced), announced
    assert_clean(watch)


def test_a_finished_answer_is_announced_once_and_rated_with_the_keyboard(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    page.add_init_script(RECORD_ANNOUNCEMENTS)
    start_conversation(page, "[say:Paris is the capital of France.]")
    answer = wait_for_answer(page)
    page.wait_for_function(
        "window.announced.some((t) => t === 'Answer: Paris is the capital of France.')"
    )
    assert page.evaluate("window.announced.filter((t) => t.startsWith('Answer')).length") == 1

    tab_to(page, f"#{answer.get_attribute('id')} [data-rate=up]", key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(answer.get_by_role("button", name="Good answer")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert focused(page, "[data-rate=up]")  # the swapped-in button has the focus again
    assert_clean(watch)


def test_conversations_are_opened_from_the_sidebar_with_the_keyboard(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    first = start_conversation(page, "[say:First conversation.]")
    wait_for_answer(page)
    start_conversation(page, "[say:Second conversation.]")
    wait_for_answer(page)

    tab_to(page, f"[data-conversation-item='{first}'] a")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/chat/{first}/")
    expect(page.locator("[data-message][data-source=agent]")).to_contain_text("First conversation.")
    expect(page.locator("[data-composer-input]")).to_be_focused()
    assert_clean(watch)


def test_the_mobile_drawer_opens_holds_and_returns_the_focus(
    alice_mobile: tuple[Page, Watch],
) -> None:
    page, watch = alice_mobile
    page.goto("/chat/")
    expect(page.locator("[data-composer-input]")).to_be_focused()
    tab_to(page, "[data-drawer-open]", key="Shift+Tab")
    page.keyboard.press("Enter")
    sidebar = page.locator("[data-sidebar]")
    expect(sidebar).to_be_visible()
    assert page.evaluate(f"!!{FOCUSED}?.closest('[data-sidebar]')")

    # The page behind the open drawer is inert: Tab goes through the drawer's controls and never
    # lands there. It stops at the drawer's last control: one Tab more leaves the document for
    # the browser's own UI, where no key reaches the page (how many controls there are depends
    # on how many conversations earlier tests left).
    for _ in range(12):
        if page.evaluate(LAST_IN_SIDEBAR):
            break
        page.keyboard.press("Tab")
        assert page.evaluate(f"!!{FOCUSED}?.closest('[data-sidebar]')")

    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(page.locator("[data-drawer-open]")).to_be_focused()
    assert not page.evaluate("document.querySelector('.drawer-content').inert")
    assert_clean(watch)
