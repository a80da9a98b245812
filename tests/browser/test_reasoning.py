"""Reasoning in headless Chromium: the model's thinking streams into a "Thinking" section above
the answer, folds away when the answer starts, resumes after a reload without duplication, and
stays on the stored message.

Same real project, servers and fake provider as `test_chat_ui.py`: `[think:N]` makes the fake
OpenAI-compatible server stream N tokens of `reasoning_content` before its answer (40 tokens a
second in these tests).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, Watch
from tests.browser.test_chat_ui import (
    LAST_AGENT,
    RECORD_ANSWERED,
    assert_clean,
    message_id,
    start_conversation,
    wait_for_answer,
)

pytestmark = pytest.mark.browser

# What the page showed of the newest answer at the first frame its thinking had text: whether
# the Thinking section was open and whether any of the answer's own text was there yet.
FIRST_THOUGHT = """
async () => {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    const answers = document.querySelectorAll('[data-messages] > [data-source=agent]');
    const el = answers[answers.length - 1];
    const thoughts = el?.querySelector('[data-thinking-body]');
    if (thoughts && thoughts.textContent.trim()) {
      const section = el.querySelector('[data-thinking]');
      return {
        open: section.open,
        hidden: section.hidden,
        answer: el.querySelector('[data-body]').textContent.trim(),
      };
    }
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  return null;
}
"""

# The fake server's reasoning filler (`_THINKING_TEXT` of `django_ai_chat.testing`).
THOUGHT = "The person wants an answer they can read while it streams."


def test_thinking_streams_into_an_open_section_then_folds_when_the_answer_comes(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    page.context.add_init_script(RECORD_ANSWERED)
    start_conversation(page, "Think it over first. [think:100] [tokens:30]")
    first = page.evaluate(FIRST_THOUGHT)
    # While the model thinks, its thoughts show (open), before any word of the answer.
    assert first == {"open": True, "hidden": False, "answer": ""}
    answer = page.locator(LAST_AGENT)
    section = answer.locator("[data-thinking]")
    expect(section.locator("summary")).to_contain_text("Thinking…")
    expect(answer).to_have_attribute("aria-busy", "true")

    # The answer's first words fold the section away; the thoughts stay inside it.
    expect(answer.locator("[data-body]")).not_to_have_text("", timeout=20_000)
    expect(section).not_to_have_attribute("open", "")
    wait_for_answer(page)
    page.wait_for_function("window.answered.length > 0")
    detail = page.evaluate("window.answered[0]")
    stored = site.message(detail["messageId"])
    assert THOUGHT in str(stored["thinking"])
    assert detail["streamedThinking"] == stored["thinking"]
    assert detail["streamedText"] == stored["text"]
    assert stored["thinking_seconds"]
    expect(section).not_to_have_attribute("open", "")
    expect(section.locator("summary")).to_have_text(re.compile(r"Thought for \d+ seconds?"))
    # The thoughts are not the answer: copying and the announcement take the answer only.
    expect(answer.locator("[data-body]")).not_to_contain_text(THOUGHT)

    # Keyboard: the summary takes the focus and Enter opens the stored thoughts.
    summary = section.locator("summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(section).to_have_attribute("open", "")
    expect(section.locator("[data-thinking-body]")).to_contain_text(THOUGHT)
    assert_clean(watch)


def test_a_reload_mid_thinking_resumes_the_thoughts_without_duplication(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    page.context.add_init_script(RECORD_ANSWERED)
    start_conversation(page, "Think for a while. [think:200] [tokens:20]")
    answer = page.locator(LAST_AGENT)
    expect(answer.locator("[data-thinking-body]")).to_contain_text("The person", timeout=20_000)
    expect(answer).to_have_attribute("data-complete", "false")
    assert answer.locator("[data-body]").inner_text().strip() == ""
    page.reload()

    # The reloaded page shows the thoughts the row held, then catches up from its cursor.
    expect(page.locator(LAST_AGENT).locator("[data-thinking]")).to_be_visible()
    page.wait_for_function("window.answered.length > 0", timeout=30_000)
    detail = page.evaluate("window.answered[0]")
    stored = site.message(detail["messageId"])
    assert stored["complete"] is True
    assert detail["streamedThinking"] == stored["thinking"]
    assert detail["streamedText"] == stored["text"]
    # The model's 200 words of thought, none lost or doubled at the reload's seam.
    assert len(str(stored["thinking"]).split()) == 200
    assert_clean(watch)


def test_a_stored_answer_shows_its_thinking_folded_with_how_long_it_took(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    start_conversation(page, "Short thought. [think:12] [say:Forty-two.]")
    answer = wait_for_answer(page)
    stored = site.message(message_id(answer))
    page.reload()

    answer = page.locator(LAST_AGENT)
    expect(answer.locator("[data-body]")).to_have_text("Forty-two.")
    section = answer.locator("[data-thinking]")
    expect(section).to_be_visible()
    expect(section).not_to_have_attribute("open", "")
    expect(section.locator("summary")).to_have_text(re.compile(r"Thought for \d+ seconds?"))
    # Folded, the thoughts are out of sight (and of the accessibility tree) until asked for.
    expect(section.locator("[data-thinking-body]")).to_be_hidden()
    section.locator("summary").click()
    expect(section.locator("[data-thinking-body]")).to_contain_text(
        str(stored["thinking"]).split(".")[0]
    )
    # A stored answer carries no raw script for the stream.
    expect(answer.locator('script[type="application/json"]')).to_have_count(0)

    # An answer without reasoning has no section at all.
    start_conversation(page, "No thinking. [say:Plain.]")
    plain = wait_for_answer(page)
    expect(plain.locator("[data-thinking]")).to_have_count(0)
    assert_clean(watch)
