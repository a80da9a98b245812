"""The generated chat UI in headless Chromium, against a real project, server and worker.

Every test sends real messages through the page; the fake OpenAI-compatible server answers
according to directives in them (`[tokens:N]` N filler tokens, `[say:TEXT]` exactly TEXT,
`[tool:NAME {}]` a tool call first).
"""

from __future__ import annotations

import contextlib
import random
import re
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, Watch, dedent
from tests.e2e.newproject import manage

pytestmark = pytest.mark.browser

AGENT = "[data-messages] > [data-source=agent]"
LAST_AGENT = f"{AGENT} >> nth=-1"

# Records, once per animation frame until the last answer is complete, how much of it the page
# showed while it streamed; `flags` are JS expressions checked on every frame (e.g. "was a
# table shown?").
WATCH_ANSWER = """
async (flags) => {
  const frames = [];
  const seen = {};
  for (;;) {
    const answers = document.querySelectorAll('[data-messages] > [data-source=agent]');
    const el = answers[answers.length - 1];
    if (el) {
      const body = el.querySelector('[data-body]');
      // data-end: characters received so far (the rendered text may shrink by a trailing space)
      const length = Number(el.dataset.end);
      const shown = body ? body.textContent.trim().length > 0 : false;
      if (el.dataset.complete === 'false' && shown && frames[frames.length - 1] !== length) {
        frames.push(length);
      }
      for (const [name, expression] of Object.entries(flags)) {
        if (el.dataset.complete === 'false' && eval(expression)) seen[name] = true;
      }
      if (el.dataset.complete === 'true') return { frames, seen };
    }
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
}
"""

RECORD_ANSWERED = """
window.answered = [];
document.addEventListener('chat:answered', (event) => window.answered.push(event.detail));
"""


def send(page: Page, text: str) -> None:
    """Type `text` in the composer and press Enter, as a person would."""
    box = page.locator("[data-composer-input]")
    box.fill(text)
    box.press("Enter")


def start_conversation(page: Page, text: str) -> str:
    """Open a new chat, send `text`; returns the new conversation's id (from the URL)."""
    page.goto("/chat/")
    send(page, text)
    page.wait_for_url(re.compile(r"/chat/[0-9a-f-]{36}/$"))
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def wait_for_answer(page: Page) -> Any:
    """Wait until the newest answer is complete; returns its locator."""
    answer = page.locator(LAST_AGENT)
    expect(answer).to_have_attribute("data-complete", "true", timeout=30_000)
    return answer


def message_id(locator: Any) -> str:
    return str(locator.get_attribute("id")).removeprefix("message-")


def assert_clean(watch: Watch) -> None:
    assert watch.page_errors == []
    assert watch.dialogs == []


# -- streaming -----------------------------------------------------------------------------------


def test_streamed_text_appears_in_several_steps_before_completion(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    start_conversation(page, "Tell me something long. [tokens:160]")
    growth = page.evaluate(WATCH_ANSWER, {})

    # The page showed the answer growing, frame after frame, before the final HTML arrived.
    frames = growth["frames"]
    assert len(frames) >= 5, frames
    assert frames == sorted(set(frames)), frames
    answer = wait_for_answer(page)
    assert "Streaming answers arrive token by token" in answer.inner_text()
    expect(answer.locator("[data-responding]")).to_have_count(0)
    assert_clean(watch)


def test_markdown_table_and_highlighted_code_render_while_streaming_and_after(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    markdown = dedent(
        """
        Here is a table:

        | Fruit | Count |
        |-------|-------|
        | apple | 3 |
        | pear | 5 |

        And some code:

        ```python
        def greet(name):
            return "hi " + name
        ```

        That is all.
        """
    )
    start_conversation(page, f"[tps:20][say:{markdown}]")
    growth = page.evaluate(
        WATCH_ANSWER,
        {
            "table": "!!body.querySelector('table td')",
            "code": "!!body.querySelector('pre')",
            # highlight.js colours the block while it streams, not only in the final HTML
            "highlighted": "!!body.querySelector('.highlight .hljs-keyword')",
            # the last look of the finished block while the answer still streamed
            "streamed": "(window.streamedCode = body.querySelector('.highlight')?.outerHTML,"
            " body.textContent.includes('That is'))",
        },
    )
    # Formatted while streaming (marked + DOMPurify in the browser), not raw pipes and fences.
    assert growth["seen"] == {"table": True, "code": True, "highlighted": True, "streamed": True}

    answer = wait_for_answer(page)
    table = answer.locator("table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("th").first).to_have_text("Fruit")
    keyword = answer.locator(".highlight .hljs-keyword", has_text="def")
    expect(keyword).to_have_count(1)
    color = keyword.evaluate("el => getComputedStyle(el).color")
    body_color = answer.locator("[data-body] p").first.evaluate("el => getComputedStyle(el).color")
    assert color != body_color
    # No style jump when the server's HTML replaces the streamed one: the block is the same.
    final = answer.locator(".highlight").evaluate("el => el.outerHTML")
    assert final == page.evaluate("window.streamedCode")
    assert_clean(watch)


def test_tool_calls_show_as_cards_with_arguments_and_a_collapsible_result(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    start_conversation(page, 'Which chats do I have? [tool:chat_list_conversations {"limit": 5}]')
    answer = wait_for_answer(page)
    card = answer.locator('[data-tool-card="chat_list_conversations"]')
    expect(card.locator('[data-tool-call="chat_list_conversations"]')).to_have_text(
        "chat_list_conversations"
    )
    expect(card).to_contain_text("done")
    result = card.locator('[data-tool-result="chat_list_conversations"]')
    expect(result).to_be_hidden()
    card.locator("summary").click()
    expect(card.locator("[data-tool-arguments] dt")).to_have_text(["limit"])
    expect(card.locator("[data-tool-arguments] dd")).to_have_text(["5"])
    expect(result).to_be_visible()
    expect(result.locator("pre")).to_contain_text('"title"')
    card.locator("summary").click()
    expect(result).to_be_hidden()
    assert_clean(watch)


def test_reload_mid_answer_ends_with_exactly_the_models_text(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    page.context.add_init_script(RECORD_ANSWERED)
    start_conversation(page, "A long answer, please. [tokens:240]")
    answer = page.locator(LAST_AGENT)
    expect(answer.locator("[data-body]")).to_contain_text("Streaming answers", timeout=20_000)
    expect(answer).to_have_attribute("data-complete", "false")
    page.reload()

    # The reloaded page shows what the database held, then catches up over the stream.
    page.wait_for_function("window.answered.length > 0", timeout=30_000)
    detail = page.evaluate("window.answered[0]")
    stored = site.message(detail["messageId"])
    assert stored["complete"] is True
    assert stored["stopped"] is False
    assert len(str(stored["text"])) > 500
    assert detail["streamedText"] == stored["text"]
    assert_clean(watch)


def test_a_web_server_restart_mid_answer_continues_without_gap_or_duplicate(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    page.context.add_init_script(RECORD_ANSWERED)
    # 15 s of answer: still streaming when the server is back, so the resumed stream is tested.
    start_conversation(page, "Keep talking while the server restarts. [tokens:600]")
    answer = page.locator(LAST_AGENT)
    expect(answer.locator("[data-body]")).to_contain_text("Streaming answers", timeout=20_000)

    site.stop_server()
    expect(page.locator("[data-chat-root]")).to_have_attribute("data-connected", "false")
    status = page.locator("[data-connection-status]")
    expect(status).to_be_visible()
    expect(status).to_contain_text("Reconnecting")
    site.start_server()

    page.wait_for_function("window.answered.length > 0", timeout=40_000)
    detail = page.evaluate("window.answered[0]")
    stored = site.message(detail["messageId"])
    assert stored["complete"] is True
    assert detail["streamedText"] == stored["text"]
    assert page.locator("[data-chat-root]").get_attribute("data-connected") == "true"
    expect(status).to_be_hidden()
    assert watch.page_errors == []


def test_stop_keeps_the_partial_text_and_marks_the_answer_stopped(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    page.context.add_init_script(RECORD_ANSWERED)
    start_conversation(page, "Talk until I stop you. [tokens:600]")
    answer = page.locator(LAST_AGENT)
    expect(answer.locator("[data-body]")).to_contain_text("Streaming answers", timeout=20_000)
    stop = page.locator("[data-stop]")
    expect(stop).to_be_visible()
    stop.click()

    expect(answer).to_have_attribute("data-complete", "true")
    expect(answer).to_have_attribute("data-stopped", "true")
    expect(answer.locator("[data-stopped-badge]")).to_have_text("Stopped")
    expect(stop).to_be_hidden()
    stored = site.message(message_id(answer))
    assert stored["stopped"] is True
    text = str(stored["text"])
    assert text.startswith("Streaming answers arrive token by token")
    # Far fewer than the 600 tokens asked for: the answer really was cut short.
    assert len(text.split()) < 500
    page.wait_for_function("window.answered.length > 0")
    assert page.evaluate("window.answered[0].streamedText") == text
    assert answer.locator("[data-body]").inner_text().split() == text.split()
    assert_clean(watch)


# -- conversation management ----------------------------------------------------------------


def test_composer_keeps_the_text_with_an_inline_error_and_shift_enter_adds_a_line(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    page.goto("/chat/")
    box = page.locator("[data-composer-input]")
    expect(box).to_be_focused()
    box.press("Enter")
    expect(page.locator("[data-composer-error]")).to_have_text("Message cannot be empty")
    expect(page.locator("[data-composer-input]")).to_have_attribute("aria-invalid", "true")

    too_long = "x" * 20_001
    page.locator("[data-composer-input]").fill(too_long)
    page.locator("[data-composer-input]").press("Enter")
    expect(page.locator("[data-composer-error]")).to_contain_text("20000")
    expect(page.locator("[data-composer-input]")).to_have_value(too_long)
    expect(page.locator("[data-composer-input]")).to_be_focused()
    assert page.url.endswith("/chat/")

    box = page.locator("[data-composer-input]")
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    assert_clean(watch)


def test_a_message_too_big_for_the_server_keeps_the_text_with_a_clear_error(
    alice: tuple[Page, Watch],
) -> None:
    # Past Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) the view never runs: the server answers
    # 400 and htmx swaps nothing, so the page alone can say what happened.
    page, _ = alice
    page.goto("/chat/")
    huge = "x" * 3_000_000
    box = page.locator("[data-composer-input]")
    box.fill(huge)
    box.press("Enter")
    expect(page.locator("[data-composer-error]")).to_contain_text("too large")
    expect(box).to_have_attribute("aria-invalid", "true")
    assert box.input_value() == huge
    assert page.url.endswith("/chat/")


def test_rename_regenerate_and_delete_with_confirmation(alice: tuple[Page, Watch]) -> None:
    page, watch = alice
    conversation = start_conversation(page, "[say:First answer.]")
    first = wait_for_answer(page)
    first_id = message_id(first)

    page.get_by_role("button", name="Rename conversation").click()
    dialog = page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill("Renamed by Alice")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("[data-conversation-title]")).to_have_text("Renamed by Alice")
    item = page.locator(f"[data-conversation-item='{conversation}']")
    expect(item).to_have_text("Renamed by Alice")
    expect(item.locator("a")).to_have_attribute("aria-current", "page")

    first.get_by_role("button", name="Regenerate").click()
    expect(page.locator(f"#message-{first_id}")).to_have_count(0)
    again = wait_for_answer(page)
    assert message_id(again) != first_id
    expect(again).to_contain_text("First answer.")

    page.get_by_role("button", name="Delete conversation").click()
    confirm = page.get_by_role("dialog", name="Delete conversation?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(item).to_be_visible()

    page.get_by_role("button", name="Delete conversation").click()
    confirm.get_by_role("button", name="Delete").click()
    page.wait_for_url(re.compile(r"/chat/$"))
    expect(page.locator(f"[data-conversation-item='{conversation}']")).to_have_count(0)
    assert page.request.get(f"/chat/{conversation}/").status == 404
    assert_clean(watch)


def test_the_title_from_the_naming_job_appears_live_in_header_and_sidebar(
    alice: tuple[Page, Watch],
) -> None:
    page, watch = alice
    conversation = start_conversation(page, "Tell me about titles. [tokens:60]")
    title = page.locator("[data-conversation-title]")
    # A placeholder until the first exchange is over.
    expect(page.locator(LAST_AGENT)).to_have_attribute("data-complete", "false")
    expect(title).to_have_text("New chat")
    wait_for_answer(page)

    # The first exchange makes the conversation due for a title (models.TITLE_AFTER_MESSAGES);
    # the naming job runs in the worker and the page learns of it over its stream, no reload.
    expect(title).not_to_have_text("New chat", timeout=30_000)
    named = title.inner_text()
    assert named.strip()
    item = page.locator(f"[data-conversation-item='{conversation}']")
    expect(item).to_have_attribute("data-title", named)
    assert page.title().startswith(named)
    assert_clean(watch)


def test_long_conversations_open_on_their_latest_messages_and_load_earlier_ones(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    code = dedent(
        """
        from accounts.models import User
        from chat.models import Conversation, Message
        alice = User.objects.get(email="alice@example.com")
        conversation = Conversation.objects.create(user=alice, title="A long history")
        question = None
        for i in range(60):
            if i % 2 == 0:
                question = Message.objects.create(
                    conversation=conversation, text=f"Message number {i}", source="user"
                )
            else:
                Message.objects.create(
                    conversation=conversation, text=f"Message number {i}", source="agent",
                    response_to=question,
                )
        print(conversation.pk)
        """
    )
    made = manage(site.project, "shell", "-c", code, env=site.env, timeout=60)
    assert made.returncode == 0, made.stderr
    conversation = made.stdout.strip().splitlines()[-1]

    page.goto(f"/chat/{conversation}/")
    shown = page.locator("[data-messages] > [data-message]")
    expect(shown).to_have_count(50)
    expect(shown.first.locator("[data-body]")).to_have_text("Message number 10")
    expect(shown.last).to_contain_text("Message number 59")

    page.get_by_role("button", name="Load earlier messages").click()
    expect(shown).to_have_count(60)
    expect(shown.first.locator("[data-body]")).to_have_text("Message number 0")
    texts = [text.strip() for text in shown.locator("[data-body]").all_inner_texts()]
    assert texts == [f"Message number {i}" for i in range(60)]
    expect(page.get_by_role("button", name="Load earlier messages")).to_have_count(0)
    assert_clean(watch)


# -- authorisation -------------------------------------------------------------------------------


def test_another_user_gets_404_on_the_conversation_page_its_stream_and_its_posts(
    alice: tuple[Page, Watch], bob: tuple[Page, Watch]
) -> None:
    alice_page, _ = alice
    conversation = start_conversation(alice_page, "[say:Only for Alice.]")
    wait_for_answer(alice_page)

    bob_page, _ = bob
    own = bob_page.goto("/chat/")
    assert own is not None and own.status == 200
    expect(bob_page.locator("[data-conversations]")).not_to_contain_text("Only for Alice")

    page_response = bob_page.goto(f"/chat/{conversation}/")
    assert page_response is not None and page_response.status == 404
    assert "Only for Alice" not in bob_page.content()

    stream = bob_page.request.get(f"/chat/{conversation}/stream/")
    assert stream.status == 404
    panel = bob_page.request.get(f"/chat/panel/?conversation={conversation}")
    assert panel.status == 404

    csrf = next(c["value"] for c in bob_page.context.cookies() if c["name"] == "csrftoken")
    headers = {"X-CSRFToken": csrf, "Referer": bob_page.url}
    for action in ("send", "stop", "rename", "delete"):
        response = bob_page.request.post(
            f"/chat/{conversation}/{action}/",
            form={"text": "hi", "title": "mine now"},
            headers=headers,
        )
        assert response.status == 404, action
    assert bob_page.request.get("/chat/not-a-uuid/").status == 404

    # Alice still has her conversation, untouched.
    alice_page.reload()
    expect(alice_page.locator("[data-messages]")).to_contain_text("Only for Alice.")


# -- embedding -----------------------------------------------------------------------------------


def test_the_component_works_embedded_in_a_host_page(alice: tuple[Page, Watch]) -> None:
    page, watch = alice
    page.goto("/host/")
    component = page.locator("[data-chat-root][data-mode=component]")
    expect(component).to_be_visible()
    # The host keeps its own look: the chat's CSS has no global reset.
    assert "serif" in page.locator("h1").evaluate("el => getComputedStyle(el).fontFamily")

    send(page, "[say:Hello from inside the host page.]")
    page.wait_for_function("window.chatNavigations.length === 1")
    conversation = page.evaluate("window.chatNavigations[0]")
    assert re.fullmatch(r"[0-9a-f-]{36}", conversation)
    assert page.url.endswith("/host/")
    component = page.locator("[data-chat-root][data-mode=component]")
    expect(component).to_have_attribute("data-conversation-id", conversation)
    answer = wait_for_answer(page)
    expect(answer).to_contain_text("Hello from inside the host page.")

    component.locator("a[data-navigate='']").click()
    page.wait_for_function("window.chatNavigations.length === 2")
    assert page.evaluate("window.chatNavigations[1]") is None
    expect(page.locator("[data-chat-root] [data-messages] > *")).to_have_count(0)

    page.locator(f"[data-conversation-item='{conversation}'] a").click()
    page.wait_for_function("window.chatNavigations.length === 3")
    assert page.evaluate("window.chatNavigations[2]") == conversation
    expect(page.locator(AGENT)).to_contain_text("Hello from inside the host page.")
    assert page.url.endswith("/host/")
    assert_clean(watch)


def test_the_mobile_drawer_opens_and_closes(alice_mobile: tuple[Page, Watch]) -> None:
    page, watch = alice_mobile
    page.goto("/chat/")
    sidebar = page.locator("[data-sidebar]")
    opener = page.locator("[data-drawer-open]")
    expect(opener).to_be_visible()
    expect(sidebar).to_be_hidden()

    opener.click()
    expect(sidebar).to_be_visible()
    expect(opener).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(opener).to_have_attribute("aria-expanded", "false")

    opener.click()
    expect(sidebar).to_be_visible()
    page.locator("[data-drawer-close]").click()
    expect(sidebar).to_be_hidden()

    opener.click()
    expect(sidebar).to_be_visible()
    page.mouse.click(375, 400)  # on the dimmed page beside the drawer
    expect(sidebar).to_be_hidden()
    assert_clean(watch)


# -- safety --------------------------------------------------------------------------------------

HOSTILE = (
    'Look: <script>window.pwned = "script"</script> '
    '<img src="x" onerror="window.pwned = \'onerror\'"> '
    "<a href=\"javascript:window.pwned = 'link'\">click me</a> "
    "<svg onload=\"window.pwned = 'svg'\"></svg> "
    "<iframe src=\"javascript:parent.pwned = 'iframe'\"></iframe> "
    "the end"
)


def test_a_hostile_answer_executes_nothing(alice: tuple[Page, Watch]) -> None:
    page, watch = alice
    page.context.add_init_script("window.pwned = null;")
    start_conversation(page, f"[tps:20][say:{HOSTILE}]")
    page.evaluate(WATCH_ANSWER, {})
    answer = wait_for_answer(page)
    expect(answer).to_contain_text("the end")
    links = answer.locator("a", has_text="click me")
    if links.count():
        links.first.click()
    assert page.evaluate("window.pwned") is None
    assert (
        answer.locator(
            "script:not([type='application/json']), iframe, svg[onload], [onerror]"
        ).count()
        == 0
    )
    assert answer.locator("a[href^='javascript' i]").count() == 0
    # The person's own message shows the markup as text.
    expect(page.locator("[data-messages] > [data-source=user]")).to_contain_text("<script>")
    assert watch.dialogs == []
    assert watch.page_errors == []


def test_a_streaming_answer_loads_no_image_the_model_names(alice: tuple[Page, Watch]) -> None:
    # A prompt-injected model can put data in an image URL: an image that loads by itself
    # leaks it (the final server-rendered HTML shows images as links; so must the stream).
    page, watch = alice
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    start_conversation(
        page,
        '[tps:20][say:Leak <img src="/leak-img?secret=1"> '
        '<picture><source srcset="/leak-srcset?secret=2"><img alt=p></picture> '
        '<table background="/leak-bg?secret=3"><tr><td>t</td></tr></table> '
        '<video poster="/leak-poster?secret=4"></video> the end]',
    )
    page.evaluate(WATCH_ANSWER, {})
    answer = wait_for_answer(page)
    expect(answer).to_contain_text("the end")
    assert [url for url in requested if "/leak-" in url] == []
    assert_clean(watch)


# -- cost ----------------------------------------------------------------------------------------


def _sse_events(response: httpx.Response, answer_done: str) -> tuple[list[tuple[str, str]], int]:
    """`(event, data)` for each SSE event, until one whose data contains all of `answer_done`;
    and the number of bytes they took, uncompressed."""
    events: list[tuple[str, str]] = []
    buffer = b""
    size = 0
    for chunk in response.iter_bytes():
        buffer += chunk
        size += len(chunk)
        while b"\n\n" in buffer:
            raw, buffer = buffer.split(b"\n\n", 1)
            lines = raw.decode().split("\n")
            name = next((line[7:] for line in lines if line.startswith("event: ")), "")
            data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
            events.append((name, data))
            if name == "message" and all(part in data for part in answer_done.split("|")):
                return events, size - len(buffer)
    return events, size - len(buffer)


def _prose(words: int, seed: int) -> str:
    """Markdown paragraphs of made-up words: no repetition for compression to feed on."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgkqjxz"
    made = [
        "".join(rng.choices(letters, weights=range(26, 0, -1), k=rng.randint(2, 9)))
        for _ in range(words)
    ]
    paragraphs = [" ".join(made[i : i + 60]) + "." for i in range(0, words, 60)]
    return "\n\n".join(paragraphs)


def test_sse_bytes_for_a_long_answer_stay_within_3x_the_rendered_message(
    alice: tuple[Page, Watch], site: Site
) -> None:
    page, watch = alice
    conversation = start_conversation(page, "[say:Ready.]")
    wait_for_answer(page)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}

    # 600 tokens at 40 tokens/s, the pace of a real model.
    send(page, f"[tps:40][say:{_prose(600, seed=4)}]")
    question = page.locator("[data-messages] > [data-source=user] >> nth=-1")
    expect(question).to_contain_text("[tps:40]")
    url = f"{site.base_url}/chat/{conversation}/stream/?after={message_id(question)}"
    headers = {"Accept-Encoding": "gzip"}
    with (
        httpx.Client(cookies=cookies, headers=headers, timeout=60) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        events, plain = _sse_events(response, 'data-source="agent"|data-complete="true"')
        wire = response.num_bytes_downloaded

    final = events[-1][1]
    rendered = len(final.encode())
    deltas = sum(1 for event, _ in events if event == "delta")
    print(
        f"\nSSE for a 600-token answer: {wire} bytes on the wire ({plain} uncompressed) in "
        f"{len(events)} events, {deltas} of them deltas; final message {rendered} bytes; "
        f"ratio {wire / rendered:.2f} ({plain / rendered:.2f} uncompressed)"
    )
    assert deltas > 10  # it did stream, in many pieces
    assert wire <= 3 * rendered
    assert_clean(watch)


def _client_connections(database_url: str) -> int:
    # Connections that serve requests and jobs: the pub/sub listeners are one per process.
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "AND application_name <> 'django_ai_chat.pubsub'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_open_streams_hold_no_database_connection(alice: tuple[Page, Watch], site: Site) -> None:
    page, _ = alice
    conversation = start_conversation(page, "[say:Keep me open.]")
    wait_for_answer(page)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    before = _client_connections(site.env["DATABASE_URL"])
    streams = 30
    with (
        httpx.Client(cookies=cookies, timeout=60) as client,
        contextlib.ExitStack() as open_streams,
    ):
        for _ in range(streams):
            response = open_streams.enter_context(
                client.stream("GET", f"{site.base_url}/chat/{conversation}/stream/")
            )
            assert response.status_code == 200
            lines = response.iter_lines()
            # The catch-up has read the rows once the first message arrives.
            assert any(line == "event: message" for line in lines)
        during = _client_connections(site.env["DATABASE_URL"])
    # One connection per open tab would exhaust Postgres (100 by default) at 100 tabs.
    assert during - before < streams // 3, (before, during)
