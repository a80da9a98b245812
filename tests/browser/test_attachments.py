"""Attachments in headless Chromium, as a person uses them: the file button, a paste, the
thumbnails and chips, the model's echo, a refused file (the text kept), another user's 404.

Same real project, servers and fake provider as `test_chat_ui.py` (the session's `site`): the
fake OpenAI-compatible server says what it received (an image part for the image, the PDF's
text, since a compatible server gets PDFs as text).
"""

from __future__ import annotations

import base64
import re

import pytest
from playwright.sync_api import Page, expect

from django_ai_chat.testing import sample_pdf, sample_png
from tests.browser.conftest import Watch
from tests.browser.test_chat_ui import assert_clean, wait_for_answer

pytestmark = pytest.mark.browser

PNG = sample_png(96, 64)
PDF = sample_pdf("Minutes of the board meeting: the budget is approved.")

PASTE = """([name, b64, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const box = document.querySelector("[data-composer-input]");
  box.focus();
  const init = { clipboardData: transfer, bubbles: true, cancelable: true };
  box.dispatchEvent(new ClipboardEvent("paste", init));
}"""


def paste_file(page: Page, name: str, data: bytes, media_type: str) -> None:
    page.evaluate(PASTE, [name, base64.b64encode(data).decode(), media_type])


def test_an_image_and_a_pdf_by_button_and_paste_reach_the_model_and_show_in_the_bubble(
    alice: tuple[Page, Watch], bob: tuple[Page, Watch]
) -> None:
    page, watch = alice
    page.goto("/chat/")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files([{"name": "minutes.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    paste_file(page, "chart.png", PNG, "image/png")
    pending = page.get_by_role("list", name="Files to send")
    expect(pending.get_by_role("listitem")).to_have_count(2)
    expect(pending).to_contain_text("minutes.pdf")
    expect(pending).to_contain_text("chart.png")

    box = page.locator("[data-composer-input]")
    box.fill("What do these say?")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    answer = wait_for_answer(page)

    expect(answer).to_contain_text(f"chart.png as an image part (image/png, {len(PNG)} bytes)")
    expect(answer).to_contain_text("I received minutes.pdf as text: “Minutes of the board meeting:")
    question = page.locator("[data-messages] > [data-source=user] >> nth=-1")
    attached = question.get_by_role("list", name="Attached files")
    thumbnail = attached.locator("img[data-thumbnail]")
    expect(thumbnail).to_have_attribute("alt", "chart.png")
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 96", arg=thumbnail.element_handle()
    )
    chip = attached.locator("[data-file-chip]")
    expect(chip).to_contain_text("minutes.pdf")
    expect(chip).to_contain_text("PDF · 1 page")
    expect(question.locator("[data-sent-as-text]")).to_have_text("Sent to the model as text")
    expect(pending.get_by_role("listitem")).to_have_count(0)

    # The files are the owner's: another user gets a 404 for each.
    image_url = str(thumbnail.get_attribute("src"))
    pdf_url = str(chip.get_attribute("href"))
    assert page.request.get(image_url).status == 200
    bob_page, _ = bob
    bob_page.goto("/chat/")
    assert bob_page.request.get(image_url).status == 404
    assert bob_page.request.get(pdf_url).status == 404
    assert_clean(watch)


def test_a_refused_file_says_why_and_keeps_the_text_and_the_files(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    page.goto("/chat/")
    page.locator("[data-attach-input]").set_input_files(
        [
            {"name": "page.html", "mimeType": "text/html", "buffer": b"<html><script>1</script>"},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 no"},
        ]
    )
    box = page.locator("[data-composer-input]")
    box.fill("Please keep this text")
    box.press("Enter")

    error = page.locator("[data-composer-error]")
    expect(error).to_contain_text("'page.html' cannot be attached")
    expect(page.locator("[data-composer-input]")).to_have_value("Please keep this text")
    pending = page.get_by_role("list", name="Files to send")
    expect(pending.get_by_role("listitem")).to_have_count(2)  # given back, to remove one

    pending.get_by_role("button", name="Remove page.html").click()
    page.locator("[data-composer-input]").press("Enter")
    expect(page.locator("[data-composer-error]")).to_contain_text(
        "'broken.pdf' could not be read as a PDF"
    )
    expect(page.locator("[data-composer-input]")).to_have_value("Please keep this text")
    assert page.url.endswith("/chat/")  # nothing was sent
    assert_clean(watch)
