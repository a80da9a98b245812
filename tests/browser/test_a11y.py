"""Accessibility in headless Chromium: axe-core finds nothing serious, the keyboard does it all.

axe-core (the engine behind Lighthouse's and most CI accessibility checks) runs in the page
through `axe-playwright-python`, which ships axe-core's script in its wheel (no download at test
time). A serious or critical violation on the chat page (light and dark), the component, the
accounts pages or a shared conversation fails the test with the rule, its help text and the
elements it found.

Same real project, servers and fake provider as `test_chat_ui.py` (the session's `site`).
"""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Site, Watch
from tests.browser.test_chat_ui import start_conversation, wait_for_answer

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
