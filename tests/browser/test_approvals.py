"""Tool approval in the browser: the card, Approve / Deny, reloads, two tabs, a dead worker.

The site's `browser_note` tool (`conftest.HOST_TOOLS`, `@tool(approval=True)`) writes one line per
call it makes, with the user it ran as; the fake provider calls it on `[tool:browser_note …]`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import USERS, Site, Watch, _open
from tests.browser.test_chat_ui import LAST_AGENT, assert_clean, message_id, start_conversation

pytestmark = pytest.mark.browser

CARD = f"{LAST_AGENT} >> [data-approval]"


def ask_for_a_note(page: Page, text: str) -> str:
    """Start a conversation whose answer waits on `browser_note(text)`; its id."""
    conversation = start_conversation(page, f'Note it. [tool:browser_note {{"text": "{text}"}}]')
    card = page.locator(CARD)
    expect(card).to_be_visible(timeout=30_000)
    expect(card).to_contain_text("browser_note")
    expect(card.locator("[data-approval-arguments]")).to_contain_text("Text")
    expect(card.locator("[data-approval-arguments]")).to_contain_text(text)
    expect(page.locator(LAST_AGENT)).to_have_attribute("data-awaiting-approval", "true")
    expect(page.locator(LAST_AGENT).locator("[data-awaiting]")).to_be_visible()
    return conversation


def wait_for_completion(page: Page) -> None:
    expect(page.locator(LAST_AGENT)).to_have_attribute("data-complete", "true", timeout=30_000)


def test_approved_the_tool_runs_as_the_user_and_the_answer_goes_on(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    before = len(site.approved_notes())
    ask_for_a_note(page, "buy milk")
    assert site.approved_notes()[before:] == []  # nothing ran yet
    # Nothing runs: Send is back (a new message would supersede the call), Stop is not.
    expect(page.locator("[data-composer] [data-send]")).to_be_visible()

    page.locator(f"{CARD} >> [data-approve]").click()

    wait_for_completion(page)
    answer = page.locator(LAST_AGENT)
    expect(answer.locator("[data-approval]")).to_have_count(0)
    expect(answer.locator("[data-body]")).to_contain_text("returned: noted")
    expect(answer.locator('[data-tool-card="browser_note"]')).to_contain_text("done")
    assert site.approved_notes()[before:] == ["alice@example.com: buy milk"]
    assert_clean(watch)


def test_denied_the_model_is_told_why_and_nothing_runs(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    before = len(site.approved_notes())
    ask_for_a_note(page, "sell the car")

    page.locator(f"{CARD} >> [data-approval-reason]").fill("Not my car")
    page.locator(f"{CARD} >> [data-deny]").click()

    wait_for_completion(page)
    body = page.locator(LAST_AGENT).locator("[data-body]")
    expect(body).to_contain_text("denied this tool call")
    expect(body).to_contain_text("Not my car")
    assert site.approved_notes()[before:] == []
    assert_clean(watch)


def test_a_reload_while_pending_shows_the_card_and_it_still_works(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    before = len(site.approved_notes())
    ask_for_a_note(page, "water the plants")

    page.reload()
    card = page.locator(CARD)
    expect(card).to_be_visible()  # rendered by the server from the stored request
    expect(card).to_contain_text("water the plants")
    card.locator("[data-approve]").click()

    wait_for_completion(page)
    assert site.approved_notes()[before:] == ["alice@example.com: water the plants"]
    assert_clean(watch)


@pytest.fixture
def alice_second_tab(
    browser: Browser, site: Site, sessions: dict[str, object]
) -> Iterator[tuple[Page, Watch]]:
    context, page, watch = _open(
        browser,
        site,
        sessions[USERS[0]],  # type: ignore[arg-type]
        viewport={"width": 1280, "height": 860},
    )
    yield page, watch
    context.close()


def test_a_second_tab_sees_the_card_and_its_approval_ends_it_in_both(
    alice: tuple[Page, Watch], alice_second_tab: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    other, other_watch = alice_second_tab
    before = len(site.approved_notes())
    conversation = ask_for_a_note(page, "call the plumber")

    other.goto(f"/chat/{conversation}/")
    expect(other.locator(CARD)).to_be_visible()
    other.locator(f"{CARD} >> [data-approve]").click()

    for tab in (other, page):  # the first tab learns it over its live stream
        wait_for_completion(tab)
        expect(tab.locator(LAST_AGENT).locator("[data-approval]")).to_have_count(0)
        expect(tab.locator(LAST_AGENT).locator("[data-body]")).to_contain_text("returned: noted")
    assert site.approved_notes()[before:] == ["alice@example.com: call the plumber"]
    assert_clean(watch)
    assert_clean(other_watch)


def test_another_user_cannot_decide(
    alice: tuple[Page, Watch], bob: tuple[Page, Watch], site: Site
) -> None:
    page, _watch = alice
    intruder, _ = bob
    ask_for_a_note(page, "secret")
    approval = str(page.locator(CARD).get_attribute("data-approval"))
    intruder.goto("/chat/")
    token = intruder.evaluate("document.querySelector('[name=csrfmiddlewaretoken]')?.value")
    response = intruder.request.post(
        f"/chat/approvals/{approval}/",
        form={"decision": "approve", "csrfmiddlewaretoken": str(token)},
        headers={"HX-Request": "true", "X-CSRFToken": str(token)},
    )
    assert response.status == 404
    page.locator(f"{CARD} >> [data-deny]").click()  # leaves nothing waiting for other tests
    wait_for_completion(page)


def test_a_worker_killed_while_pending_completes_the_answer_once_after_a_restart(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    before = len(site.approved_notes())
    ask_for_a_note(page, "pay the rent")
    answer_id = message_id(page.locator(LAST_AGENT))
    assert site.worker is not None
    site.worker.kill()  # SIGKILL: no handover, no goodbye
    site.worker.wait(15)
    try:
        page.locator(f"{CARD} >> [data-approve]").click()
        expect(page.locator(LAST_AGENT).locator("[data-approval]")).to_have_count(0)
        time.sleep(1)  # no worker: the decision is stored and its job waits
        assert site.message(answer_id)["complete"] is False
        assert site.approved_notes()[before:] == []
    finally:
        site.start_worker()

    wait_for_completion(page)
    row = site.message(answer_id)
    assert row["complete"] is True and row["error"] == ""
    assert str(row["text"]).count("returned: noted") == 1
    assert site.approved_notes()[before:] == ["alice@example.com: pay the rent"]
    page.reload()
    expect(page.locator(LAST_AGENT).locator("[data-body]")).to_contain_text("returned: noted")
    assert_clean(watch)
