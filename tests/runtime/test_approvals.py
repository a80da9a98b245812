"""Tool approval: an answer pauses on a call that needs the user's approval, and goes on.

Through the public entry points (`Responder.respond` / `continue_approved`, the approval
queryset's `decide`, `ChatJobs.defer_approved` and a real worker) on real rows and a scripted
model that calls `tests.testapp`'s `create_note` (a `ModelTools` write tool: approval by default).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import AnonymousUser, Permission
from django.db import connection, connections, transaction
from django.http import Http404, HttpResponseBase
from django.test import RequestFactory, override_settings
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob
from pydantic_ai.messages import ModelRequest, ToolReturnPart

from django_ai_chat import pubsub
from django_ai_chat.answers import Responder
from django_ai_chat.approvals import ApprovalConflict, ApprovalExpired, decide_and_continue
from django_ai_chat.chat_api import ChatAPIView
from django_ai_chat.jobs import ChatJobs
from django_ai_chat.streaming import messages_topic
from django_ai_chat.testing import ScriptedLLM, ToolCall, make_user
from django_ai_chat.views import ToolApprovalView
from django_ai_chat.worker import Workers
from tests.testapp.models import Conversation, Message, Note, ToolApproval

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0  # upper bound for something to happen; never a speed assertion
T = TypeVar("T")


class ChatResponder(Responder):
    conversation_model = Conversation
    message_model = Message
    approval_model = ToolApproval
    model = "test:scripted"


class NoApprovals(ChatResponder):
    approval_model = None


responder = ChatResponder()
chat_jobs = ChatJobs(
    "approvals_test",
    responder,
    responses_queue="approvals_test_responses",
    conversations_queue="approvals_test_conversations",
)


async def db(function: Callable[[], T]) -> T:
    def run() -> T:
        try:
            return function()
        finally:
            connection.close()

    return await sync_to_async(run)()


@pytest.fixture(autouse=True)
async def _close_connections() -> AsyncIterator[None]:
    yield
    await sync_to_async(connections.close_all)()
    await db(_clear_jobs)


def _clear_jobs() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs WHERE task_name LIKE 'approvals_test.%%'")


def _writer(name: str) -> Any:
    user = make_user(name)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_note", "view_note"]))
    return type(user)._default_manager.get(pk=user.pk)  # permissions cache cleared


@pytest.fixture
async def alice() -> Any:
    return await db(lambda: _writer("alice"))


@pytest.fixture
async def bob() -> Any:
    return await db(lambda: _writer("bob"))


async def ask(actor: Any, text: str = "Remind me to call mum.") -> Message:
    conversation = await Conversation.objects.acreate(user=actor)
    return await Message.objects.acreate(conversation=conversation, text=text)


async def paused(scripted_llm: ScriptedLLM, actor: Any) -> tuple[Message, ToolApproval]:
    """A question whose answer paused on `create_note` (then says "Done.")."""
    scripted_llm.add_turns(
        ["I'll add it.", ToolCall("create_note", {"title": "Call mum", "priority": 2})],
        ["Done: it is on your list."],
    )
    question = await ask(actor)
    await responder.respond(question.pk, actor=actor)
    approval = await ToolApproval.objects.aget(message__response_to=question)
    return question, approval


def decide(approval_id: Any, actor: Any, *, approve: bool, reason: str = "") -> ToolApproval:
    """One decision the way both views take it: decided, continuation queued, announced."""
    (approval,) = decide_and_continue(
        ToolApproval.objects.all(), {approval_id: (approve, reason)}, actor, chat_jobs
    )
    return approval


def _queued() -> int:
    return ProcrastinateJob.objects.filter(task_name=chat_jobs.respond.name).count()


async def test_a_write_tool_pauses_the_answer_until_the_user_decides(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    question = await ask(alice)
    scripted_llm.add_turns(
        ["I'll add it.", ToolCall("create_note", {"title": "Call mum", "priority": 2})]
    )
    async with pubsub.subscribe(messages_topic(question.conversation_id)) as events:
        await responder.respond(question.pk, actor=alice)
        answer = await Message.objects.aget(response_to=question)
        async with asyncio.timeout(WAIT):
            async for _topic, payload in events:
                if payload == {"type": "message", "id": str(answer.pk)}:
                    break

    assert (answer.complete, answer.text, answer.error) == (False, "I'll add it.", "")
    assert [call["name"] for call in answer.tool_calls] == ["create_note"]
    assert answer.tool_results == []
    assert not await Note.objects.aexists()  # nothing ran
    approval = await ToolApproval.objects.aget(message=answer)
    assert (approval.status, approval.tool_name) == ("pending", "create_note")
    assert approval.arguments == {"title": "Call mum", "priority": 2}
    assert approval.rows == [("Title", "Call mum"), ("Priority", "2")]
    assert approval.is_pending
    assert approval.expires_at > timezone.now() + timedelta(hours=23)


async def test_approved_the_tool_runs_as_the_user_and_the_answer_goes_on(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    question, approval = await paused(scripted_llm, alice)

    decided = await db(lambda: decide(approval.pk, alice, approve=True))
    assert decided.batch_ready
    await responder.continue_approved(question.pk, approval.batch, actor=alice)

    note = await Note.objects.aget()
    assert (note.title, note.priority, note.owner_id) == ("Call mum", 2, alice.pk)
    answer = await Message.objects.aget(response_to=question)
    assert answer.complete and not answer.error
    assert answer.text == "I'll add it.\n\nDone: it is on your list."
    assert [call["name"] for call in answer.tool_calls] == ["create_note"]  # not twice
    [result] = answer.tool_results
    assert (result["name"], result["is_error"]) == ("create_note", False)
    assert answer.input_tokens == sum(u.input_tokens for u in scripted_llm.usages)
    assert (await ToolApproval.objects.aget(pk=approval.pk)).status == "approved"


async def test_denied_the_model_is_told_why_and_goes_on(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    question, approval = await paused(scripted_llm, alice)

    await db(lambda: decide(approval.pk, alice, approve=False, reason="  Not today.  "))
    await responder.continue_approved(question.pk, approval.batch, actor=alice)

    assert not await Note.objects.aexists()
    last = scripted_llm.requests[-1][-1]
    assert isinstance(last, ModelRequest)
    [told] = [part for part in last.parts if isinstance(part, ToolReturnPart)]
    assert told.content == (
        "The user denied this tool call; it was not run. Their reason: Not today."
    )
    answer = await Message.objects.aget(response_to=question)
    assert answer.complete and answer.text.endswith("Done: it is on your list.")
    assert answer.tool_results[0]["is_error"] is True
    stored = await ToolApproval.objects.aget(pk=approval.pk)
    assert (stored.status, stored.reason) == ("denied", "Not today.")


async def test_a_decision_cannot_be_replayed(scripted_llm: ScriptedLLM, alice: Any) -> None:
    _question, approval = await paused(scripted_llm, alice)
    await db(lambda: decide(approval.pk, alice, approve=False))

    with pytest.raises(ApprovalConflict, match="already denied"):
        await db(lambda: decide(approval.pk, alice, approve=True))
    assert (await ToolApproval.objects.aget(pk=approval.pk)).status == "denied"


async def test_only_the_owner_can_decide(scripted_llm: ScriptedLLM, alice: Any, bob: Any) -> None:
    _question, approval = await paused(scripted_llm, alice)

    for someone in (bob, AnonymousUser(), None):
        with pytest.raises(ToolApproval.DoesNotExist):
            await db(lambda someone=someone: decide(approval.pk, someone, approve=True))
    with pytest.raises(ToolApproval.DoesNotExist):
        await db(lambda: decide("not-a-uuid", alice, approve=True))
    assert not await ToolApproval.objects.for_actor(bob).aexists()
    assert (await ToolApproval.objects.aget(pk=approval.pk)).status == "pending"


async def test_an_expired_approval_is_refused_and_its_answer_ends_clearly(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    question, approval = await paused(scripted_llm, alice)
    await ToolApproval.objects.filter(pk=approval.pk).aupdate(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    with pytest.raises(ApprovalExpired, match="waited too long"):
        await db(lambda: decide(approval.pk, alice, approve=True))
    assert await responder.expire_approvals() == 1

    answer = await Message.objects.aget(response_to=question)
    assert answer.complete
    assert answer.error == responder.approval_expired_text
    assert (await ToolApproval.objects.aget(pk=approval.pk)).status == "expired"
    assert not await Note.objects.aexists()
    with pytest.raises(ApprovalConflict, match="already expired"):
        await db(lambda: decide(approval.pk, alice, approve=True))


@override_settings(AI_CHAT_APPROVAL_EXPIRES_AFTER=60.0)
async def test_the_expiry_follows_the_setting(scripted_llm: ScriptedLLM, alice: Any) -> None:
    _question, approval = await paused(scripted_llm, alice)
    assert approval.expires_at < timezone.now() + timedelta(seconds=61)


async def test_a_new_message_supersedes_the_waiting_call_and_the_model_is_told(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    question, approval = await paused(scripted_llm, alice)
    conversation = await Conversation.objects.aget(pk=question.conversation_id)

    def follow_up() -> Message:
        with transaction.atomic():
            message = Message.objects.create(conversation=conversation, text="Never mind.")
            chat_jobs.defer_response(message, alice)
        return message

    later = await db(follow_up)

    stored = await ToolApproval.objects.aget(pk=approval.pk)
    assert (stored.status, stored.reason) == ("denied", "superseded")
    answer = await Message.objects.aget(response_to=question)
    assert answer.complete and answer.error == responder.superseded_text
    with pytest.raises(ApprovalConflict):
        await db(lambda: decide(approval.pk, alice, approve=True))
    later = await Message.objects.select_related("conversation").aget(pk=later.pk)
    history = await responder.history(later)
    assert history[-2].text == f"I'll add it.\n\n[{responder.superseded_text}]"
    assert not await Note.objects.aexists()


async def test_a_retried_continuation_does_not_run_the_tool_again(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    question, approval = await paused(scripted_llm, alice)
    await db(lambda: decide(approval.pk, alice, approve=True))
    scripted_llm.add_turns(["Done again."])

    # A first run that stopped after the tool ran (its worker died) and the retry.
    await responder.continue_approved(question.pk, approval.batch, actor=alice)
    await Message.objects.filter(response_to=question).aupdate(complete=False)
    await responder.continue_approved(question.pk, approval.batch, actor=alice)

    assert await Note.objects.acount() == 1
    answer = await Message.objects.aget(response_to=question)
    assert answer.text == "I'll add it.\n\nDone again."  # from the pause, not appended twice
    assert len(answer.tool_results) == 1
    assert answer.tool_results[0]["is_error"] is False


async def test_without_an_approval_model_the_call_is_refused(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    scripted_llm.add_turns(
        [ToolCall("create_note", {"title": "Call mum"})], ["I could not add it."]
    )
    question = await ask(alice)

    await NoApprovals().respond(question.pk, actor=alice)

    answer = await Message.objects.aget(response_to=question)
    assert answer.complete and answer.text == "I could not add it."
    [result] = answer.tool_results
    assert result["is_error"] is True
    assert "needs the user's approval" in result["content"]
    assert not await Note.objects.aexists()


@override_settings(AI_CHAT_TOOL_APPROVAL={"create_note": False})
async def test_the_project_setting_lets_a_write_tool_run_at_once(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    scripted_llm.add_turns([ToolCall("create_note", {"title": "Call mum"})], ["Added."])
    question = await ask(alice)

    await responder.respond(question.pk, actor=alice)

    assert (await Message.objects.aget(response_to=question)).complete
    assert await Note.objects.acount() == 1
    assert not await ToolApproval.objects.aexists()


async def test_stop_ends_a_waiting_answer_as_stopped(scripted_llm: ScriptedLLM, alice: Any) -> None:
    question, approval = await paused(scripted_llm, alice)

    ended = await db(lambda: responder.settle_approvals(question.conversation_id, reason="stopped"))

    assert ended == 1
    answer = await Message.objects.aget(response_to=question)
    assert (answer.complete, answer.stopped, answer.error) == (True, True, "")
    assert (await ToolApproval.objects.aget(pk=approval.pk)).reason == "stopped"


# -- through the jobs and a real worker ---------------------------------------------------------


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    workers = Workers(
        chat_jobs.queues, shutdown_timeout=1, name="approvals", fetch_job_polling_interval=0.1
    )
    await workers.astart()
    try:
        yield workers
    finally:
        await workers.astop()


async def eventually(what: str, condition: Callable[[], Any]) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        if result := await db(condition):
            return result
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def test_the_job_pauses_and_the_decision_continues_it_once(
    scripted_llm: ScriptedLLM, alice: Any, workers: Workers
) -> None:
    scripted_llm.add_turns(
        ["I'll add it.", ToolCall("create_note", {"title": "Call mum"})], ["Added."]
    )

    def ask_and_defer() -> Message:
        with transaction.atomic():
            # Titled: no naming job takes a turn of the script.
            conversation = Conversation.objects.create(user=alice, title="Reminders")
            question = Message.objects.create(conversation=conversation, text="Remind me.")
            chat_jobs.defer_response(question, alice)
        return question

    question = await db(ask_and_defer)
    approval = await eventually(
        "the approval", lambda: ToolApproval.objects.filter(message__response_to=question).first()
    )
    assert not (await Message.objects.aget(response_to=question)).complete

    await db(lambda: decide(approval.pk, alice, approve=True))
    with pytest.raises(ApprovalConflict):  # a second tab, too late
        await db(lambda: decide(approval.pk, alice, approve=True))

    answer = await eventually(
        "the answer", lambda: Message.objects.filter(response_to=question, complete=True).first()
    )
    assert answer.text == "I'll add it.\n\nAdded."
    assert await Note.objects.acount() == 1


def _post_decision(approval_id: Any, actor: Any, data: dict[str, str], **headers: str) -> Any:
    """`ToolApprovalView` as a project mounts it, POSTed to by `actor` (CSRF: the middleware)."""
    view = ToolApprovalView.as_view(
        approval_model=ToolApproval, jobs=chat_jobs, template_name="approval_card.html"
    )
    request = RequestFactory().post("/", data, headers=headers)
    request.user = actor
    with override_settings(TEMPLATES=_CARD_TEMPLATES):
        return view(request, approval_id=approval_id)


_CARD_TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "loaders": [
                (
                    "django.template.loaders.locmem.Loader",
                    {
                        "approval_card.html": "{{ approval.tool_name }}: {{ approval.status }}"
                        "{% if error %} / {{ error }}{% endif %}"
                    },
                )
            ]
        },
    }
]


async def paused_twice(
    scripted_llm: ScriptedLLM, actor: Any
) -> tuple[Message, ToolApproval, ToolApproval]:
    """An answer that paused on two `create_note` calls of one model response (one batch)."""
    scripted_llm.add_turns(
        [ToolCall("create_note", {"title": "Milk"}), ToolCall("create_note", {"title": "Eggs"})]
    )
    question = await ask(actor)
    await responder.respond(question.pk, actor=actor)
    answer = await Message.objects.aget(response_to=question)
    first, second = [a async for a in ToolApproval.objects.filter(message=answer)]
    assert first.batch == second.batch
    return answer, first, second


async def test_one_call_decides_a_whole_batch_queues_it_once_and_announces_the_answer(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    answer, first, second = await paused_twice(scripted_llm, alice)

    async with pubsub.subscribe(messages_topic(answer.conversation_id)) as events:
        decided = await db(
            lambda: decide_and_continue(
                ToolApproval.objects.all(),
                {first.pk: (True, ""), second.pk: (False, "No eggs.")},
                alice,
                chat_jobs,
            )
        )
        async with asyncio.timeout(WAIT):
            async for _topic, payload in events:
                if payload == {"type": "message", "id": str(answer.pk)}:
                    break

    assert [(a.pk, a.status, a.reason) for a in decided] == [
        (first.pk, "approved", ""),
        (second.pk, "denied", "No eggs."),
    ]
    assert await db(_queued) == 1


async def test_a_refused_decision_rolls_back_the_others_taken_with_it(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    _answer, decided, waiting = await paused_twice(scripted_llm, alice)
    await db(lambda: decide(decided.pk, alice, approve=True))
    assert await db(_queued) == 0  # a call of the batch still waits

    with pytest.raises(ApprovalConflict):  # the last call decided, then a replay of the first
        await db(
            lambda: decide_and_continue(
                ToolApproval.objects.all(),
                {waiting.pk: (True, ""), decided.pk: (False, "")},
                alice,
                chat_jobs,
            )
        )

    assert (await ToolApproval.objects.aget(pk=waiting.pk)).is_pending
    assert await db(_queued) == 0  # the continuation its decision queued went with it


async def test_the_view_decides_once_and_queues_the_continuation(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    _question, approval = await paused(scripted_llm, alice)

    def post_twice() -> tuple[Any, Any, int]:
        first = _post_decision(approval.pk, alice, {"decision": "approve"}, hx_request="true")
        again = _post_decision(approval.pk, alice, {"decision": "deny"}, hx_request="true")
        return first, again, _queued()

    first, again, queued = await db(post_twice)

    assert (first.status_code, first.content.decode()) == (200, "create_note: approved")
    assert again.status_code == 409
    assert again.content.decode().startswith("create_note: approved / ")
    assert queued == 1


async def test_the_view_refuses_anyone_but_the_owner_and_a_decision_that_is_neither(
    scripted_llm: ScriptedLLM, alice: Any, bob: Any
) -> None:
    _question, approval = await paused(scripted_llm, alice)

    def posts() -> list[int]:
        refused = _post_decision(approval.pk, alice, {"decision": "maybe"}).status_code
        strangers = [_status(approval_id, bob) for approval_id in (approval.pk, "not-a-uuid")]
        return [refused, *strangers]

    assert await db(posts) == [400, 404, 404]
    assert (await ToolApproval.objects.aget(pk=approval.pk)).is_pending


async def test_without_htmx_the_view_redirects_where_the_person_came_from(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    _question, approval = await paused(scripted_llm, alice)

    response = await db(
        lambda: _post_decision(
            approval.pk, alice, {"decision": "deny", "reason": "No."}, referer="/chat/x/"
        )
    )

    assert (response.status_code, response["Location"]) == (302, "/chat/x/")
    assert (await ToolApproval.objects.aget(pk=approval.pk)).reason == "No."


@pytest.mark.parametrize(
    ("referer", "location"),
    [
        ("https://evil.example/chat/x/", "/"),
        ("//evil.example/chat/x/", "/"),
        ("javascript:alert(1)", "/"),
        ("http://testserver/chat/x/", "http://testserver/chat/x/"),
    ],
)
async def test_without_htmx_the_view_does_not_redirect_off_the_site(
    scripted_llm: ScriptedLLM, alice: Any, referer: str, location: str
) -> None:
    _question, approval = await paused(scripted_llm, alice)

    response = await db(
        lambda: _post_decision(approval.pk, alice, {"decision": "approve"}, referer=referer)
    )

    assert (response.status_code, response["Location"]) == (302, location)
    assert (await ToolApproval.objects.aget(pk=approval.pk)).status == "approved"


async def test_an_https_site_does_not_redirect_to_its_plain_http_referer(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    _question, approval = await paused(scripted_llm, alice)
    view = ToolApprovalView.as_view(approval_model=ToolApproval, jobs=chat_jobs)

    def post(referer: str) -> Any:
        request = RequestFactory().post(
            "/", {"decision": "approve"}, secure=True, headers={"referer": referer}
        )
        request.user = alice
        return view(request, approval_id=approval.pk)

    response = await db(lambda: post("http://testserver/chat/x/"))
    assert response["Location"] == "/"
    replayed = await db(lambda: post("https://testserver/chat/x/"))  # refused, redirected too
    assert replayed["Location"] == "https://testserver/chat/x/"


class ChatAPI(ChatAPIView):
    message_model = Message
    approval_model = ToolApproval
    jobs = chat_jobs


async def _turn(actor: Any, chat_id: Any, approval: ToolApproval, **answer: Any) -> Any:
    """An AI SDK turn (`addToolApprovalResponse`) answering `approval`, POSTed by `actor`."""
    part = {
        "type": f"tool-{approval.tool_name}",
        "toolCallId": approval.call_id,
        "state": "approval-responded",
        "approval": {"id": str(approval.pk), "approved": True, **answer},
    }
    body = {
        "id": str(chat_id),
        "trigger": "submit-message",
        "messages": [{"id": str(approval.message_id), "role": "assistant", "parts": [part]}],
    }
    request = RequestFactory().post("/", json.dumps(body), content_type="application/json")

    async def auser() -> Any:
        return actor

    request.auser = auser  # type: ignore[attr-defined]
    response: HttpResponseBase = await ChatAPI.as_view(endpoint="chat")(request)
    return response


async def test_an_ai_sdk_turn_decides_once_and_queues_the_continuation(
    scripted_llm: ScriptedLLM, alice: Any
) -> None:
    question, approval = await paused(scripted_llm, alice)

    streamed = await _turn(alice, question.conversation_id, approval)
    replayed = await _turn(alice, question.conversation_id, approval, approved=False)

    assert streamed.status_code == 200 and streamed.streaming  # the answer goes on (not read)
    assert replayed.status_code == 409
    assert "already approved" in json.loads(replayed.content)["error"]
    assert (await ToolApproval.objects.aget(pk=approval.pk)).status == "approved"
    assert await db(_queued) == 1


async def test_an_ai_sdk_turn_decides_only_a_call_of_its_own_conversation(
    scripted_llm: ScriptedLLM, alice: Any, bob: Any
) -> None:
    question, approval = await paused(scripted_llm, alice)
    elsewhere = await ask(alice, "Another chat.")
    bobs = await ask(bob, "Bob's chat.")

    statuses = [
        (await _turn(actor, chat_id, approval)).status_code
        for actor, chat_id in (
            (alice, elsewhere.conversation_id),  # hers, but not this conversation's call
            (bob, question.conversation_id),  # another user's conversation
            (bob, bobs.conversation_id),  # his conversation, another user's call
        )
    ]

    assert statuses == [404, 404, 404]
    assert (await ToolApproval.objects.aget(pk=approval.pk)).is_pending
    assert await db(_queued) == 0


def _status(approval_id: Any, actor: Any) -> int:
    try:
        return int(_post_decision(approval_id, actor, {"decision": "approve"}).status_code)
    except Http404:
        return 404
