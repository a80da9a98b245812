"""A visitor signs up in a project made by `django-ai-chat new` and gets a streamed answer.

Everything is real but the LLM: the project's `manage.py chat_dev` (uvicorn with the job worker
inside), PostgreSQL, Chromium; the model is `openai:gpt-4o` pointed at the fake OpenAI server
(`fake_llm` and `browser` come from this directory's conftest).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.newproject import cli, dev_server, fresh_database, manage, project_env

pytestmark = pytest.mark.browser

ANSWER = "Hello from the fake model, streamed word by word to this page."
WAIT_MS = 30_000  # upper bound for something to appear; never a speed assertion


@pytest.fixture(scope="module")
def signup_site(tmp_path_factory: pytest.TempPathFactory, fake_llm: str) -> Iterator[str]:
    """A project made by plain `django-ai-chat new`, served by its `manage.py chat_dev`."""
    root = tmp_path_factory.mktemp("signup")
    created = cli("new", "signup_site", cwd=root)
    assert created.returncode == 0, created.stdout + created.stderr
    project = root / "signup_site"
    with fresh_database() as url:
        env = project_env(
            project,
            DATABASE_URL=url,
            OPENAI_API_KEY="sk-fake",
            OPENAI_BASE_URL=fake_llm,
        )
        env.pop("AI_CHAT_MODEL", None)
        migrated = manage(project, "migrate", "--noinput", env=env)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        with dev_server(Path(project), env) as base:
            yield base


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the conftest's headless Chromium."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_a_visitor_signs_up_and_gets_a_streamed_answer(signup_site: str, page: Page) -> None:
    page.goto(f"{signup_site}/chat/")
    expect(page).to_have_url(f"{signup_site}/accounts/login/?next=/chat/")
    page.get_by_role("link", name="Sign up").click()

    page.get_by_label("Email address").fill("new.user@example.com")
    page.get_by_label("Password", exact=True).fill("a-long-pass-phrase")
    page.get_by_label("Password confirmation").fill("a-long-pass-phrase")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(f"{signup_site}/chat/")
    page.get_by_role("textbox", name="Message").fill(f"Hi! [say:{ANSWER}] [tps:12]")
    page.get_by_role("button", name="Send").click()

    answer = page.locator('[data-message][data-source="agent"]').last
    # Seen while it is still being written: the words arrive as a stream, not all at once.
    expect(answer).to_have_attribute("data-complete", "false", timeout=WAIT_MS)
    expect(answer).to_contain_text("Hello from", timeout=WAIT_MS)
    expect(answer).to_have_attribute("data-complete", "true", timeout=WAIT_MS)
    expect(answer).to_contain_text(ANSWER)


def test_a_wrong_password_keeps_the_visitor_out(signup_site: str, page: Page) -> None:
    page.goto(f"{signup_site}/accounts/login/")
    page.get_by_label("Email address").fill("nobody@example.com")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_be_visible()
    page.goto(f"{signup_site}/chat/")
    expect(page).to_have_url(f"{signup_site}/accounts/login/?next=/chat/")
