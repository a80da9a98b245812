"""Screenshots for the README (desktop, phone, dark, embedded, attachments, reasoning, branches),
with the offline demo model.

Opt-in, because it writes files: `SCREENSHOTS_DIR=docs/screenshots .venv/bin/python -m pytest
tests/browser/test_screenshots.py`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from django_ai_chat.testing import sample_pdf, sample_png
from tests.browser.conftest import USERS, Site, _open

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.environ.get("SCREENSHOTS_DIR"), reason="SCREENSHOTS_DIR is not set"),
]


@pytest.fixture
def demo_site(site: Site) -> Iterator[Site]:
    """The same project answering with the offline demo model (`AI_CHAT_MODEL=demo:`)."""
    model = site.env["AI_CHAT_MODEL"]
    site.stop_server()
    site.stop_worker()
    site.env["AI_CHAT_MODEL"] = "demo:"
    site.start_worker()
    site.start_server()
    yield site
    site.stop_server()
    site.stop_worker()
    site.env["AI_CHAT_MODEL"] = model
    site.start_worker()
    site.start_server()


def _chat(page: Page, text: str, title: str) -> str:
    page.goto("/chat/")
    box = page.locator("[data-composer-input]")
    box.fill(text)
    box.press("Enter")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    answer = page.locator("[data-messages] > [data-source=agent] >> nth=-1")
    expect(answer).to_have_attribute("data-complete", "true", timeout=60_000)
    page.get_by_role("button", name="Rename conversation").click()
    dialog = page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill(title)
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("[data-conversation-title]")).to_have_text(title)
    return page.url


def test_screenshots_for_the_readme(
    browser: Browser, demo_site: Site, sessions: dict[str, Path]
) -> None:
    out = Path(os.environ["SCREENSHOTS_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    state = sessions[USERS[0]]

    context, page, watch = _open(browser, demo_site, state, viewport={"width": 1280, "height": 800})
    _chat(page, "Which conversations do I have?", "Planning the spring release")
    url = _chat(page, "What can this chat do?", "Trying the offline demo")
    page.goto(url)
    # The question, the tool badge and the start of the answer.
    question = page.locator("[data-messages] > [data-source=user] >> nth=-1")
    question.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=out / "desktop.png")

    page.goto("/host/")
    expect(page.locator("[data-chat-root][data-mode=component]")).to_be_visible()
    page.screenshot(path=out / "component.png", full_page=True)
    assert watch.page_errors == []
    context.close()

    context, page, watch = _open(
        browser,
        demo_site,
        state,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page.goto(url)
    page.screenshot(path=out / "mobile.png")
    page.locator("[data-drawer-open]").click()
    expect(page.locator("[data-sidebar]")).to_be_visible()
    page.wait_for_timeout(400)  # the drawer's slide-in transition, for the picture only
    page.screenshot(path=out / "mobile-drawer.png")
    assert watch.page_errors == []
    context.close()

    # The dark theme follows the browser's preference (prefers-color-scheme).
    context, page, watch = _open(
        browser, demo_site, state, viewport={"width": 1280, "height": 800}, color_scheme="dark"
    )
    page.goto(url)
    question = page.locator("[data-messages] > [data-source=user] >> nth=-1")
    question.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=out / "desktop-dark.png")
    assert watch.page_errors == []
    context.close()


def _last(page: Page, source: str) -> Locator:
    return page.locator(f"[data-messages] > [data-source={source}] >> nth=-1")


def _rename(page: Page, title: str) -> None:
    page.get_by_role("button", name="Rename conversation").click()
    dialog = page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill(title)
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("[data-conversation-title]")).to_have_text(title)


def test_attachments_screenshot_for_the_readme(
    browser: Browser, demo_site: Site, sessions: dict[str, Path]
) -> None:
    # A message with an image thumbnail and a PDF chip, and the demo model's echo of them.
    out = Path(os.environ["SCREENSHOTS_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    context, page, watch = _open(
        browser, demo_site, sessions[USERS[0]], viewport={"width": 1280, "height": 800}
    )
    page.goto("/chat/")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files(
        [
            {"name": "sales-chart.png", "mimeType": "image/png", "buffer": sample_png(320, 200)},
            {
                "name": "board-minutes.pdf",
                "mimeType": "application/pdf",
                "buffer": sample_pdf("Minutes of the board meeting: the budget is approved."),
            },
        ]
    )
    box = page.locator("[data-composer-input]")
    box.fill("What do these two files say?")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    expect(_last(page, "agent")).to_have_attribute("data-complete", "true", timeout=60_000)
    _rename(page, "Board minutes and the sales chart")
    question = _last(page, "user")
    expect(question.locator("[data-thumbnail]")).to_be_visible()
    page.wait_for_function("document.querySelector('[data-thumbnail]').complete")
    question.evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=out / "attachments.png")
    assert watch.page_errors == []
    context.close()


def test_reasoning_screenshot_for_the_readme(
    browser: Browser, demo_site: Site, sessions: dict[str, Path]
) -> None:
    # The demo model thinks before it answers: its thoughts, opened, above the answer.
    out = Path(os.environ["SCREENSHOTS_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    context, page, watch = _open(
        browser, demo_site, sessions[USERS[0]], viewport={"width": 1280, "height": 800}
    )
    page.goto("/chat/")
    box = page.locator("[data-composer-input]")
    box.fill("How should I plan the spring release?")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    answer = _last(page, "agent")
    expect(answer).to_have_attribute("data-complete", "true", timeout=60_000)
    _rename(page, "A release plan, thought through")
    section = answer.locator("[data-thinking]")
    expect(section.locator("summary")).to_contain_text("Thought for")
    section.locator("summary").click()
    expect(section).to_have_attribute("open", "")
    page.wait_for_timeout(300)  # the chevron's turn, for the picture only
    _last(page, "user").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)  # no hover highlight on the summary in the picture
    page.screenshot(path=out / "reasoning.png")
    assert watch.page_errors == []
    context.close()


def test_branches_screenshot_for_the_readme(
    browser: Browser, demo_site: Site, sessions: dict[str, Path]
) -> None:
    # A question asked again by an edit, its answer regenerated: switchers on both (2/2).
    out = Path(os.environ["SCREENSHOTS_DIR"])
    out.mkdir(parents=True, exist_ok=True)
    context, page, watch = _open(
        browser, demo_site, sessions[USERS[0]], viewport={"width": 1280, "height": 1180}
    )
    page.goto("/chat/")
    box = page.locator("[data-composer-input]")
    box.fill("Which city should host the team offsite?")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    expect(_last(page, "agent")).to_have_attribute("data-complete", "true", timeout=60_000)
    _rename(page, "Offsite: edited and regenerated")
    question = _last(page, "user")
    question.get_by_role("button", name="Edit message").click()
    question.get_by_label("Edit your message").fill("Which city in Europe should host the offsite?")
    question.get_by_label("Edit your message").press("Enter")
    expect(_last(page, "user").locator("[data-branches]")).to_contain_text("Version 2 of 2")
    expect(_last(page, "agent")).to_have_attribute("data-complete", "true", timeout=60_000)
    _last(page, "agent").get_by_role("button", name="Regenerate").click()
    answer = _last(page, "agent")
    expect(answer.locator("[data-branches]")).to_contain_text("Version 2 of 2", timeout=60_000)
    expect(answer).to_have_attribute("data-complete", "true", timeout=60_000)
    expect(answer).to_contain_text("answer number 2")
    _last(page, "user").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)  # the long demo answer: tall enough for both switchers
    page.screenshot(path=out / "branches.png")
    assert watch.page_errors == []
    context.close()
