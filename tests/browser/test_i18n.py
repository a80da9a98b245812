"""The chat in French: the page follows the browser's language, server and JavaScript strings.

A context with `locale="fr-FR"` sends `Accept-Language: fr-FR`; the `new` project's
LocaleMiddleware picks French, the templates translate, `{% ai_chat_i18n %}` gives chat.js its
French catalog, and runtime texts (a failed answer's error, a quota refusal) come back French.
A context without a locale still gets English.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, Site
from tests.e2e.newproject import manage

pytestmark = pytest.mark.browser

CAROL = "carol.i18n@example.com"

# Carol's day of usage: one answer of 20 million tokens, past the site's daily quota.
OVER_QUOTA = f"""
from accounts.models import User
from chat.models import Conversation, Message
user = User.objects.create_user({CAROL!r}, {PASSWORD!r})
conversation = Conversation.objects.create(user=user, title="Gros volume")
question = Message.objects.create(conversation=conversation, source="user", text="Bonjour")
Message.objects.create(
    conversation=conversation, source="agent", text="Salut", response_to=question,
    complete=True, input_tokens=10_000_000, output_tokens=10_000_000,
)
"""


def _french(browser: Browser, site: Site) -> tuple[Page, list[str]]:
    context = browser.new_context(
        base_url=site.base_url, locale="fr-FR", viewport={"width": 1280, "height": 860}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(20_000)
    return page, errors


def _log_in(page: Page, email: str) -> None:
    page.goto("/accounts/login/?next=/chat/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    # "Log in" is also Django's msgid: its admin's French ("Connexion") comes first.
    expect(page.locator("h1")).not_to_have_text("Log in")
    expect(page.get_by_text("Pas encore de compte ?")).to_be_visible()
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url("**/chat/")


def _send(page: Page, text: str) -> None:
    box = page.locator("[data-composer-input]")
    box.fill(text)
    box.press("Enter")


@pytest.fixture
def french(browser: Browser, site: Site) -> Iterator[tuple[Page, list[str]]]:
    page, errors = _french(browser, site)
    _log_in(page, "alice@example.com")
    yield page, errors
    page.context.close()


def test_the_chat_follows_the_browsers_language(french):
    page, errors = french
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    # Server-rendered: the sidebar, the empty state, the composer.
    # The button to start one: a conversation of an earlier test not yet named is listed
    # under the same words ("Nouvelle discussion" is also the untitled one's label).
    expect(page.locator("a[href='/chat/']").get_by_text("Nouvelle discussion")).to_be_visible()
    expect(page.get_by_text("Comment puis-je vous aider aujourd’hui ?")).to_be_visible()
    expect(page.locator("[data-composer-input]")).to_have_attribute("placeholder", "Message…")
    expect(page.get_by_role("button", name="Envoyer")).to_be_visible()
    # Made by chat.js from its catalog: the reconnection indicator.
    expect(page.locator("[data-connection-status]")).to_have_text("Connexion perdue. Reconnexion…")

    _send(page, "Un bloc de code [tps:40][say:Voici :\n\n```python\nprint(1)\n```\n]")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    answer = page.locator("[data-messages] > [data-source=agent]").last
    expect(answer).to_have_attribute("data-complete", "true", timeout=30_000)
    # The code block's header is chat.js's: its Copy button, then "Copied".
    copy_code = answer.locator("[data-code-header] [data-copy=code]")
    expect(copy_code).to_have_attribute("aria-label", "Copier le code")
    expect(copy_code).to_have_text("Copier")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy_code.click()
    expect(copy_code).to_have_text("Copié")
    expect(answer.get_by_role("button", name="Régénérer")).to_be_visible()
    expect(page.get_by_role("button", name="Supprimer la conversation")).to_be_visible()

    # A failed answer: the runtime's error text, stored in English, shown in French.
    _send(page, "Échoue, s’il te plaît. [error:500]")
    failed = page.locator("[data-messages] > [data-source=agent]").last
    expect(failed.locator("[data-answer-error]")).to_contain_text(
        "Une erreur s’est produite pendant la génération de cette réponse.", timeout=30_000
    )
    expect(failed.get_by_role("button", name="Réessayer")).to_be_visible()

    # chat.js's own error notice when a request cannot reach the server.
    page.route(re.compile(r"/send/$"), lambda route: route.abort())
    _send(page, "Ce message ne partira pas")
    notice = page.locator("[data-chat-notice]")
    expect(notice).to_contain_text("La requête n’a pas pu aboutir (pas de connexion)")
    expect(page.locator("[data-composer-input]")).to_have_value("Ce message ne partira pas")
    assert errors == []


def test_a_quota_refusal_is_french(browser, site):
    made = manage(site.project, "shell", "-c", OVER_QUOTA, env=site.env)
    assert made.returncode == 0, made.stdout + made.stderr
    page, errors = _french(browser, site)
    try:
        _log_in(page, CAROL)
        _send(page, "Encore une question")
        error = page.locator("[data-composer-error]")
        expect(error).to_contain_text(
            re.compile(r"Vous avez utilisé 10\s000\s000 jetons en 24 heures")
        )
        expect(error).to_contain_text("Vous pourrez envoyer ce message")
        expect(page.locator("[data-composer-input]")).to_have_value("Encore une question")
        assert errors == []
    finally:
        page.context.close()


def test_english_stays_the_default(alice):
    page, _ = alice
    page.goto("/chat/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("a[href='/chat/']").get_by_text("New chat")).to_be_visible()
    expect(page.locator("[data-connection-status]")).to_have_text("Connection lost. Reconnecting…")
