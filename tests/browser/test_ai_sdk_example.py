"""The example React app (`examples/react-chat`: Vite + `@ai-sdk/react`'s `useChat`) in Chromium.

Built with its locked npm packages and served by `vite preview`, which proxies the chat API and
the log-in pages to the browser tests' project (made by `django-ai-chat new`): one origin, so
the session cookie and the CSRF token work as they would behind one reverse proxy. A person
logs in, sends, watches the answer stream, reloads in the middle (the answer resumes and ends
with exactly the model's text) and stops another answer (its text is kept).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, USERS, Site, _stop
from tests.browser.node import npm_installed
from tests.e2e.newproject import free_port, wait_for_http

pytestmark = pytest.mark.browser

EXAMPLE = Path(__file__).parents[2] / "examples" / "react-chat"
ANSWER = " ".join(f"Part{n} of a reply the example app streams and resumes." for n in range(8))
WAIT_MS = 30_000  # upper bound for something to appear; never a speed assertion


@pytest.fixture(scope="module")
def example(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example app, built and served by `vite preview` in front of the project."""
    npm_installed(EXAMPLE)
    out = tmp_path_factory.mktemp("react-chat") / "dist"
    vite = str(EXAMPLE / "node_modules" / ".bin" / "vite")
    built = subprocess.run(
        [vite, "build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "warn"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    port = free_port()
    env = {**os.environ, "DJANGO_URL": site.base_url}
    # --bypass-lock: a developer's own `vite preview` of the example must not refuse this one.
    preview = ["preview", "--outDir", str(out), "--strictPort", "--bypass-lock"]
    server = subprocess.Popen(
        [vite, *preview, "--host", "127.0.0.1", "--port", str(port)],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/", server)  # type: ignore[arg-type]
        yield base
    finally:
        _stop(server)  # type: ignore[arg-type]


@pytest.fixture
def page(browser: Browser, example: str) -> Iterator[Page]:
    """Alice, logged in through the project's own log-in page (proxied), on the example app."""
    context = browser.new_context(base_url=example)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto("/")
    page.get_by_role("link", name="Log in").click()
    page.fill("input[name=username]", USERS[0])
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{example}/")
    yield page
    context.close()


def _answer(page: Page) -> object:
    return page.locator('[data-role="assistant"]').last


def test_send_stream_reload_mid_answer_and_resume(page: Page) -> None:
    page.get_by_role("textbox", name="Message").fill(f"Tell me [say:{ANSWER}] [tps:12]")
    page.get_by_role("button", name="Send").click()

    answer = page.locator('[data-role="assistant"]').last
    expect(answer).to_contain_text("Part0", timeout=WAIT_MS)  # streaming…
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    assert "Part7" not in answer.inner_text()  # …and not done yet: reload in the middle
    expect(page).to_have_url(re.compile(r"\?chat="))
    page.reload()

    answer = page.locator('[data-role="assistant"]').last
    expect(page.get_by_role("button", name="Stop")).to_be_visible()  # resumed, still running
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=WAIT_MS)
    assert answer.locator(".text").inner_text() == ANSWER
    expect(
        page.get_by_role("navigation", name="Conversations").get_by_role("link")
    ).not_to_have_count(0)


def test_stop_keeps_the_text_so_far(page: Page) -> None:
    page.get_by_role("textbox", name="Message").fill(f"Go on [say:{ANSWER}] [tps:10]")
    page.get_by_role("button", name="Send").click()
    answer = page.locator('[data-role="assistant"]').last
    expect(answer).to_contain_text("Part0", timeout=WAIT_MS)

    page.get_by_role("button", name="Stop").click()

    # The server stopped it: the open stream ends by itself, marked stopped, text kept.
    expect(answer).to_have_attribute("data-stopped", "true")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    shown = answer.locator(".text").inner_text()
    assert shown.startswith("Part0") and ANSWER.startswith(shown) and shown != ANSWER
    page.reload()  # what the server kept: the same text
    answer = page.locator('[data-role="assistant"]').last
    expect(answer).to_have_attribute("data-stopped", "true")
    assert answer.locator(".text").inner_text() == shown
