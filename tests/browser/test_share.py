"""Sharing a read-only link in headless Chromium, as people use it.

The owner shares, someone in another browser opens the link and reads the snapshot (nothing to
type, click or stream), the owner goes on and later revokes the link, and the page is a 404.

Same real project, servers and fake provider as `test_chat_ui.py` (the session's `site`).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Site, Watch
from tests.browser.test_a11y import violations
from tests.browser.test_chat_ui import assert_clean, send, start_conversation, wait_for_answer

pytestmark = pytest.mark.browser


def create_link(page: Page) -> str:
    """Open the share dialog, create the link, return it (as the dialog shows it)."""
    page.get_by_role("button", name="Share conversation").click()
    dialog = page.get_by_role("dialog", name="Share a read-only link")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Create link").click()
    url = dialog.get_by_label("Link")
    expect(url).to_have_value(re.compile(r"/chat/shared/[A-Za-z0-9_-]{32}/$"))
    expect(url).to_be_focused()
    return url.input_value()


def test_the_owner_shares_a_snapshot_another_browser_reads_it_then_it_is_revoked(
    alice: tuple[Page, Watch], bob: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    start_conversation(page, "[say:The **capital** of France is Paris.]")
    wait_for_answer(page)
    link = create_link(page)
    page.keyboard.press("Escape")

    viewer, viewer_watch = bob
    viewer.goto(link)
    expect(viewer.locator("h1")).to_be_visible()
    expect(viewer.locator("[data-read-only]")).to_have_text("Read-only")
    expect(viewer.locator("[data-shared-message][data-source=agent] strong")).to_have_text(
        "capital"
    )
    expect(viewer.locator("[data-shared-message]")).to_have_count(2)
    # Read-only: nothing to type in, press or submit, no script and no live stream.
    for absent in ("textarea", "input", "button", "form", "script", "[data-composer]"):
        expect(viewer.locator(absent)).to_have_count(0)
    assert viewer.evaluate("window.djangoAiChat === undefined")  # no chat.js, no stream
    assert viewer.locator('meta[name="robots"]').get_attribute("content") == "noindex, nofollow"
    assert violations(viewer) == []

    # The owner goes on: the snapshot does not.
    send(page, "[say:Said after sharing.]")
    expect(page.locator("[data-message][data-source=agent]")).to_have_count(2)
    wait_for_answer(page)
    viewer.reload()
    expect(viewer.locator("[data-shared-message]")).to_have_count(2)
    expect(viewer.locator("body")).not_to_contain_text("Said after sharing")

    page.get_by_role("button", name="Share conversation").click()
    dialog = page.get_by_role("dialog", name="Share a read-only link")
    dialog.get_by_role("button", name="Revoke link").click()
    expect(dialog.get_by_role("button", name="Create link")).to_be_visible()

    response = viewer.goto(link)
    assert response is not None and response.status == 404
    expect(viewer.locator("body")).not_to_contain_text("capital")
    assert_clean(watch)
    assert viewer_watch.page_errors == []


def test_a_visitor_not_signed_in_is_asked_to_sign_in_first(
    alice: tuple[Page, Watch], browser: Browser, site: Site
) -> None:
    page, _ = alice
    start_conversation(page, "[say:Shared with colleagues only.]")
    wait_for_answer(page)
    link = create_link(page)

    context = browser.new_context()
    visitor = context.new_page()
    try:
        visitor.goto(link)
        expect(visitor).to_have_url(re.compile(r"/accounts/login/\?next=/chat/shared/"))
        expect(visitor.locator("body")).not_to_contain_text("colleagues")
    finally:
        context.close()


def test_another_user_can_neither_share_nor_revoke_a_conversation(
    alice: tuple[Page, Watch], bob: tuple[Page, Watch]
) -> None:
    page, _ = alice
    conversation = start_conversation(page, "[say:Alice's own.]")
    wait_for_answer(page)
    link = create_link(page)
    intruder, _ = bob
    intruder.goto("/chat/")
    csrf = next(c["value"] for c in intruder.context.cookies() if c["name"] == "csrftoken")
    headers = {"X-CSRFToken": csrf, "Referer": intruder.url, "HX-Request": "true"}

    for name in ("share", "unshare"):
        response = intruder.request.post(f"/chat/{conversation}/{name}/", headers=headers)
        assert response.status == 404, name
    # Alice's link still works (Bob, signed in, may read it: he was given the link).
    assert intruder.goto(link).status == 200  # type: ignore[union-attr]
