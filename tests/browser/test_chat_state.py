"""The chat never shows a stale or foreign state (issue 12, "Wrong today").

- A send after the session ended (logged out in another tab), or any response that is not the
  chat's own (a CSRF 403, a 500 page, a proxy's error page), keeps the typed text and says what to
  do: nothing foreign is swapped into the chat.
- A row the server deletes or replaces disappears from every open page, also from a page that was
  disconnected when it happened.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.conftest import PASSWORD, USERS, Site, Watch
from tests.browser.test_chat_ui import (
    LAST_AGENT,
    assert_clean,
    message_id,
    send,
    start_conversation,
    wait_for_answer,
)
from tests.e2e.newproject import manage

pytestmark = pytest.mark.browser

# What a login form, a CSRF failure, a server error or a proxy would put on the page.
FOREIGN = "input[name=password], :text('CSRF'), :text('Server Error'), :text('Bad Gateway')"


def _log_out_in_another_tab(page: Page) -> None:
    other = page.context.new_page()
    other.goto("/accounts/logout/")
    other.get_by_role("button", name=re.compile("log out", re.IGNORECASE)).click()
    other.wait_for_load_state()
    other.close()


@pytest.fixture
def own_session(browser: Browser, site: Site) -> Iterator[Page]:
    """Alice on a session of her own: logging it out must not end the other tests' session."""
    context = browser.new_context(base_url=site.base_url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    _sign_in(page)
    page.wait_for_url("**/chat/")
    yield page
    context.close()


def _sign_in(page: Page, url: str = "/accounts/login/?next=/chat/") -> None:
    if url:
        page.goto(url)
    page.fill("input[name=username]", USERS[0])
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_a_send_after_the_session_ended_keeps_the_text_and_asks_to_sign_in_again(
    own_session: Page,
) -> None:
    page = own_session
    conversation = start_conversation(page, "[say:Hello.]")
    wait_for_answer(page)
    _log_out_in_another_tab(page)

    box = page.locator("[data-composer-input]")
    send(page, "A question typed with care")
    notice = page.locator("[data-chat-notice]")
    expect(notice).to_contain_text("signed out")
    expect(box).to_have_value("A question typed with care")
    expect(page.locator(f"[data-chat-root] >> {FOREIGN}")).to_have_count(0)
    expect(page.locator("[data-composer]")).to_have_count(1)

    # The link signs in and comes back to this conversation, with the text still typed.
    link = notice.get_by_role("link", name="Sign in again")
    assert f"next=%2Fchat%2F{conversation}%2F" in str(link.get_attribute("href"))
    link.click()
    _sign_in(page, url="")
    page.wait_for_url(f"**/chat/{conversation}/")
    expect(page.locator("[data-composer-input]")).to_have_value("A question typed with care")
    page.locator("[data-composer-input]").press("Enter")
    expect(
        page.locator("[data-messages] > [data-source=user] >> nth=-1 >> [data-body]")
    ).to_have_text("A question typed with care")
    # Sent: the draft kept for the sign-in is gone, a reload shows an empty composer.
    wait_for_answer(page)
    page.reload()
    expect(page.locator("[data-composer-input]")).to_have_value("")


# What a CSRF failure, a server error page and a proxy's page look like to the chat.
NOT_THE_CHATS = [
    (403, "<!doctype html><h1>Forbidden (403)</h1><p>CSRF verification failed.</p>", "reload"),
    (500, "<!doctype html><html><body><h1>Server Error (500)</h1></body></html>", "500"),
    (200, "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>", "unexpected"),
]


def _serving(status: int, body: str) -> Callable[[Route], None]:
    def answer(route: Route) -> None:
        route.fulfill(status=status, body=body, content_type="text/html")

    return answer


def test_a_response_that_is_not_the_chats_is_never_swapped_in(alice: tuple[Page, Watch]) -> None:
    page, watch = alice
    start_conversation(page, "[say:Hello.]")
    wait_for_answer(page)
    box = page.locator("[data-composer-input]")
    notice = page.locator("[data-chat-notice]")
    for status, body, says in NOT_THE_CHATS:
        page.route(re.compile(r"/send/$"), _serving(status, body))
        send(page, f"Keep me ({status})")
        expect(notice).to_contain_text(re.compile(says, re.IGNORECASE))
        expect(box).to_have_value(f"Keep me ({status})")
        expect(page.locator(f"[data-chat-root] >> {FOREIGN}")).to_have_count(0)
        expect(page.locator("[data-composer]")).to_have_count(1)
        page.unroute(re.compile(r"/send/$"))

    # Once the server answers as the chat again, the same text goes out and the notice goes.
    box.press("Enter")
    expect(
        page.locator("[data-messages] > [data-source=user] >> nth=-1 >> [data-body]")
    ).to_have_text("Keep me (200)")
    expect(notice).to_be_hidden()
    assert watch.page_errors == []


def test_a_replaced_answer_disappears_from_every_open_page(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    conversation = start_conversation(page, "[say:The first answer.]")
    first = message_id(wait_for_answer(page))
    other = page.context.new_page()
    other.goto(f"/chat/{conversation}/")
    expect(other.locator(f"#message-{first}")).to_be_visible()

    # Live: regenerated on one page, the old answer goes from the other.
    page.locator(LAST_AGENT).get_by_role("button", name="Regenerate").click()
    expect(other.locator(f"#message-{first}")).to_have_count(0)
    expect(other.locator(LAST_AGENT)).to_have_attribute("data-complete", "true")
    second = message_id(wait_for_answer(page))
    expect(other.locator(LAST_AGENT)).to_have_id(f"message-{second}")

    # Disconnected: the web server is down while the answer is replaced; on reconnect the page
    # drops it too (it never heard the message event).
    site.stop_server()
    regenerate = (
        "from accounts.models import User; from chat import actions; "
        f"actions.regenerate_response(User.objects.get(email={USERS[0]!r}), {second!r})"
    )
    done = manage(site.project, "shell", "-c", regenerate, env=site.env, timeout=60)
    assert done.returncode == 0, done.stderr
    site.start_server()
    expect(other.locator(f"#message-{second}")).to_have_count(0, timeout=30_000)
    expect(other.locator(LAST_AGENT)).to_have_attribute("data-complete", "true", timeout=30_000)
    expect(other.locator("[data-messages] > [data-source=agent]")).to_have_count(1)
    other.close()
    assert_clean(watch)
