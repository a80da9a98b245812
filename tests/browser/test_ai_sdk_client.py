"""The AI SDK's own client code (the `ai` npm package, in Node) against our AI SDK endpoints.

`ai_sdk_client/client.mjs` does what a React app's `useChat` does underneath:
`DefaultChatTransport` sends a turn or reconnects for a resume, `readUIMessageStream` builds
the assistant `UIMessage` from the chunks. The project is the browser tests' (made by
`django-ai-chat new`, which turns `--api ai-sdk` on), served by uvicorn with its worker and the
fake OpenAI-compatible server; the `ai` version is pinned by `ai_sdk_client/package-lock.json`
and installed from the npm registry on first use (`npm ci`).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.browser.conftest import PASSWORD, USERS, Site
from tests.browser.node import HERE, node, npm_installed

pytestmark = pytest.mark.browser

CLIENT = HERE / "ai_sdk_client" / "client.mjs"
# A known answer, streamed word by word at 40 tokens/s: long enough to reload or stop inside.
ANSWER = " ".join(f"Word{n} of the answer that streams while the page reloads." for n in range(6))


@dataclass
class Account:
    """A signed-in user's HTTP session on the site (cookies for Node, a client for checks)."""

    client: httpx.Client
    base: str

    @property
    def cookie(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.client.cookies.items())

    @property
    def csrf(self) -> str:
        return str(self.client.cookies["csrftoken"])

    def node(
        self,
        scenario: str,
        chat_id: str,
        text: str = "",
        after: int = 0,
        on: str = "text",
        **answer: Any,
    ) -> dict[str, Any]:
        """Run one scenario of `client.mjs` (`answer`: `approved`, `reason`); its JSON report."""
        args = {
            **answer,
            "base": f"{self.base}/chat/api/chat/",
            "cookie": self.cookie,
            "csrf": self.csrf,
            "chatId": chat_id,
            "scenario": scenario,
            "text": text,
            "afterChars": after,
            "on": on,
        }
        done = subprocess.run(
            [node(), str(CLIENT), json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    def stored(self, chat_id: str) -> dict[str, Any]:
        """The conversation as the load endpoint gives it (`useChat({messages})`)."""
        response = self.client.get(f"/chat/api/chat/{chat_id}/")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


def _sign_in(site: Site, email: str) -> Account:
    client = httpx.Client(base_url=site.base_url, timeout=30)
    client.get("/accounts/login/")
    signed = client.post(
        "/accounts/login/",
        data={
            "username": email,
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
    )
    assert signed.status_code == 302, signed.text
    return Account(client, site.base_url)


@pytest.fixture(scope="module", autouse=True)
def _ai_package() -> None:
    npm_installed(CLIENT.parent)


@pytest.fixture(scope="module")
def alice_api(site: Site) -> Account:
    return _sign_in(site, USERS[0])


@pytest.fixture(scope="module")
def bob_api(site: Site) -> Account:
    return _sign_in(site, USERS[1])


def _text(message: dict[str, Any]) -> str:
    return "".join(p["text"] for p in message["parts"] if p["type"] == "text")


def _answer(conversation: dict[str, Any]) -> dict[str, Any]:
    answers = [m for m in conversation["messages"] if m["role"] == "assistant"]
    return answers[-1]


def test_a_plain_answer_streams_as_ui_message_chunks(alice_api: Account) -> None:
    chat_id = str(uuid.uuid4())

    report = alice_api.node("send", chat_id, "Hello [say:Hi from Django, streamed.] [tps:200]")

    first = report["first"]
    assert first["errors"] == []
    assert first["types"][0] == "start"
    assert first["types"][-2:] == ["text-end", "finish"]
    assert "text-delta" in first["types"]
    assert first["text"] == "Hi from Django, streamed."
    stored = alice_api.stored(chat_id)
    assert first["message"]["id"] == _answer(stored)["id"]
    assert stored["messages"][0]["role"] == "user"
    assert _answer(stored)["metadata"]["complete"] is True


def test_a_tool_call_becomes_a_tool_part_before_the_text_after_it(alice_api: Account) -> None:
    chat_id = str(uuid.uuid4())

    report = alice_api.node(
        "send", chat_id, 'Which chats? [tool:chat_list_conversations {"limit": 2}] [tps:200]'
    )

    parts = report["first"]["message"]["parts"]
    tool = parts[0]
    assert tool["type"] == "tool-chat_list_conversations"
    assert tool["state"] == "output-available"
    assert tool["input"] == {"limit": 2}
    assert chat_id in json.dumps(tool["output"])
    assert parts[1]["type"] == "text"
    assert "The tool `chat_list_conversations` returned" in parts[1]["text"]
    # The conversation, loaded again, has the same parts in the same order.
    loaded = _answer(alice_api.stored(chat_id))["parts"]
    assert [(p["type"], p.get("state")) for p in loaded] == [
        (p["type"], p.get("state")) for p in parts
    ]
    assert loaded[0]["output"] == tool["output"]
    assert loaded[1]["text"] == parts[1]["text"]


def test_a_reload_mid_answer_resumes_with_exactly_the_models_text(alice_api: Account) -> None:
    chat_id = str(uuid.uuid4())

    report = alice_api.node("resume", chat_id, f"Tell me [say:{ANSWER}] [tps:40]", after=30)

    first, resumed = report["first"], report["resumed"]
    assert first["stoppedEarly"] is True
    assert first["message"]["metadata"]["complete"] is False  # the reload came mid-answer
    assert resumed is not None, "the resume found no running answer (204)"
    assert resumed["message"]["id"] == first["message"]["id"]
    assert resumed["types"][0] == "start"
    assert resumed["types"][-1] == "finish"
    assert resumed["text"] == ANSWER
    assert _text(_answer(alice_api.stored(chat_id))) == ANSWER


def test_the_models_thinking_arrives_as_reasoning_parts_before_the_text(
    alice_api: Account,
) -> None:
    chat_id = str(uuid.uuid4())

    report = alice_api.node("send", chat_id, "Think [think:12] [say:Thought it through.] [tps:200]")

    first = report["first"]
    assert first["errors"] == []
    types = first["types"]
    assert types.index("reasoning-start") < types.index("reasoning-end") < types.index("text-start")
    assert "reasoning-delta" in types  # one or many: what the row held when the stream caught up
    assert first["reasoning"].startswith("The person wants an answer")
    assert len(first["reasoning"].split()) == 12
    assert first["text"] == "Thought it through."
    parts = first["message"]["parts"]
    assert [p["type"] for p in parts] == ["reasoning", "text"]
    assert parts[0]["state"] == "done"
    # Loaded again (useChat's initial messages): the same reasoning part first.
    loaded = _answer(alice_api.stored(chat_id))["parts"]
    assert [p["type"] for p in loaded] == ["reasoning", "text"]
    assert loaded[0]["text"] == first["reasoning"]


def test_a_reload_mid_thought_resumes_with_exactly_the_models_reasoning(
    alice_api: Account,
) -> None:
    chat_id = str(uuid.uuid4())

    report = alice_api.node(
        "resume",
        chat_id,
        "Ponder [think:40] [say:Done pondering.] [tps:40]",
        after=30,
        on="reasoning",
    )

    first, resumed = report["first"], report["resumed"]
    assert first["stoppedEarly"] is True and first["text"] == ""  # the reload came mid-thought
    assert resumed is not None, "the resume found no running answer (204)"
    assert resumed["message"]["id"] == first["message"]["id"]
    assert len(resumed["reasoning"].split()) == 40  # exactly once: a replay from the start
    assert resumed["reasoning"].startswith(first["reasoning"])
    assert resumed["text"] == "Done pondering."
    assert _answer(alice_api.stored(chat_id))["parts"][0]["text"] == resumed["reasoning"]


def test_nothing_to_resume_is_a_204_the_transport_reads_as_no_stream(alice_api: Account) -> None:
    chat_id = str(uuid.uuid4())
    alice_api.node("send", chat_id, "Hi [say:Done.] [tps:200]")

    assert alice_api.node("reconnect", chat_id)["resumed"] is None


def test_stop_ends_the_open_stream_and_keeps_the_text(alice_api: Account) -> None:
    chat_id = str(uuid.uuid4())

    report = alice_api.node("stop", chat_id, f"Go on [say:{ANSWER}] [tps:20]", after=20)

    assert report["stopStatus"] == 200
    assert report["stopBody"] == {"stopped": True}
    first = report["first"]
    assert first["types"][-1] == "finish"
    assert first["message"]["metadata"]["stopped"] is True
    assert 20 <= len(first["text"]) < len(ANSWER)
    assert ANSWER.startswith(first["text"])
    answer = _answer(alice_api.stored(chat_id))
    assert answer["metadata"] == first["message"]["metadata"]
    assert _text(answer) == first["text"]


def test_a_provider_error_is_an_error_chunk_and_stays_on_the_message(alice_api: Account) -> None:
    chat_id = str(uuid.uuid4())

    report = alice_api.node("send", chat_id, "Fail please [error:500]")

    first = report["first"]
    assert first["types"][-2:] == ["error", "finish"]
    assert first["errors"] == ["I hit an error while generating this response. Please try again."]
    assert _answer(alice_api.stored(chat_id))["metadata"]["error"] == first["errors"][0]


def test_another_users_chat_id_is_a_404_everywhere(alice_api: Account, bob_api: Account) -> None:
    chat_id = str(uuid.uuid4())
    alice_api.node("send", chat_id, "Mine [say:Private.] [tps:200]")

    sent = bob_api.node("send", chat_id, "Let me in")
    resumed = bob_api.node("reconnect", chat_id)

    assert "No such conversation" in sent["error"]
    assert "No such conversation" in resumed["error"]
    headers = {"X-CSRFToken": bob_api.csrf}
    for method, path in [
        ("GET", f"/chat/api/chat/{chat_id}/"),
        ("GET", f"/chat/api/chat/{chat_id}/stream"),
        ("POST", f"/chat/api/chat/{chat_id}/stop/"),
        ("DELETE", f"/chat/api/chat/{chat_id}/"),
    ]:
        assert bob_api.client.request(method, path, headers=headers).status_code == 404, path
    assert chat_id not in bob_api.client.get("/chat/api/chats/").text
    assert len(alice_api.stored(chat_id)["messages"]) == 2  # Bob's tries wrote nothing


def test_the_api_needs_a_session_and_a_csrf_token(site: Site, alice_api: Account) -> None:
    anonymous = httpx.Client(base_url=site.base_url)
    assert anonymous.get("/chat/api/chats/").status_code == 401
    body = {"id": str(uuid.uuid4()), "messages": [], "trigger": "submit-message"}
    # Signed in but without the token: Django's CSRF protection refuses the turn.
    assert alice_api.client.post("/chat/api/chat/", json=body).status_code == 403


NOTE = 'Note it. [tool:browser_note {{"text": "{}"}}] [tps:200]'


def _tool_part(message: dict[str, Any]) -> dict[str, Any]:
    (part,) = [p for p in message["parts"] if p["type"] == "tool-browser_note"]
    return part


def test_a_call_needing_approval_asks_and_the_approval_goes_on_in_the_same_message(
    alice_api: Account, site: Site
) -> None:
    """useChat's human-in-the-loop: `tool-approval-request`, `addToolApprovalResponse`, and
    the next turn (sent automatically) streams the rest of the same assistant message."""
    chat_id = str(uuid.uuid4())
    before = len(site.approved_notes())

    report = alice_api.node("approve", chat_id, NOTE.format("sdk milk"), approved=True)

    first, second = report["first"], report["second"]
    assert first["errors"] == [] and "error" not in report
    assert first["types"][-3:] == ["tool-input-available", "tool-approval-request", "finish"]
    asked = _tool_part(first["message"])
    assert asked["state"] == "approval-requested" and asked["input"] == {"text": "sdk milk"}
    assert report["sendsAutomatically"] is True  # what useChat's sendAutomaticallyWhen checks
    assert second["errors"] == []
    assert second["message"]["id"] == first["message"]["id"]
    done = _tool_part(second["message"])
    assert (done["state"], done["output"]) == ("output-available", "noted")
    assert "returned: noted" in second["text"]
    assert second["text"].count("returned: noted") == 1
    assert site.approved_notes()[before:] == ["alice@example.com: sdk milk"]
    # Loaded again: the same parts; the decision cannot be sent twice.
    loaded = _answer(alice_api.stored(chat_id))
    assert _tool_part(loaded)["state"] == "output-available"
    assert _text(loaded) == second["text"]
    replay = alice_api.client.post(
        "/chat/api/chat/",
        json={
            "id": chat_id,
            "trigger": "submit-message",
            "messages": [
                {
                    **first["message"],
                    "parts": [
                        {
                            **asked,
                            "state": "approval-responded",
                            "approval": {**asked["approval"], "approved": True},
                        }
                    ],
                }
            ],
        },
        headers={"X-CSRFToken": alice_api.csrf},
    )
    assert replay.status_code == 409, replay.text
    assert site.approved_notes()[before:] == ["alice@example.com: sdk milk"]


def test_a_denied_call_ends_denied_and_the_model_hears_the_reason(
    alice_api: Account, site: Site
) -> None:
    chat_id = str(uuid.uuid4())
    before = len(site.approved_notes())
    asked = alice_api.node("send", chat_id, NOTE.format("sdk car"))["first"]["message"]
    # While it waits, the conversation loads with the request (a reload of a useChat page).
    waiting = _tool_part(_answer(alice_api.stored(chat_id)))
    assert waiting["state"] == "approval-requested"
    assert waiting["approval"]["id"] == _tool_part(asked)["approval"]["id"]

    report = alice_api.node(
        "approve", str(uuid.uuid4()), NOTE.format("sdk boat"), approved=False, reason="Not mine"
    )

    denied = report["second"]
    assert _tool_part(denied["message"])["state"] == "output-denied"
    assert "denied this tool call" in denied["text"] and "Not mine" in denied["text"]
    assert site.approved_notes()[before:] == []
    alice_api.client.post(
        f"/chat/api/chat/{chat_id}/stop/", headers={"X-CSRFToken": alice_api.csrf}
    )


def test_an_approval_of_another_users_call_is_a_404(alice_api: Account, bob_api: Account) -> None:
    chat_id = str(uuid.uuid4())
    asked = alice_api.node("send", chat_id, NOTE.format("sdk secret"))["first"]["message"]
    part = _tool_part(asked)
    responded = {
        **part,
        "state": "approval-responded",
        "approval": {**part["approval"], "approved": True},
    }

    for account, chat in ((bob_api, chat_id), (bob_api, str(uuid.uuid4()))):
        response = account.client.post(
            "/chat/api/chat/",
            json={
                "id": chat,
                "trigger": "submit-message",
                "messages": [{**asked, "parts": [responded]}],
            },
            headers={"X-CSRFToken": account.csrf},
        )
        assert response.status_code == 404, response.text
    assert _tool_part(_answer(alice_api.stored(chat_id)))["state"] == "approval-requested"
    alice_api.client.post(
        f"/chat/api/chat/{chat_id}/stop/", headers={"X-CSRFToken": alice_api.csrf}
    )
