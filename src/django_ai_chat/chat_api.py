"""The chat as an HTTP API in the AI SDK's protocol: `ChatAPIView`, for `useChat` front-ends.

The endpoints (paths as the generated `urls.py` mounts them under the chat's route; the first
two are the ones `DefaultChatTransport({api: "<route>/api/chat/"})` calls by itself):

- `POST api/chat/`: a chat turn, the body `useChat` sends (`id`, `messages`, `trigger`,
  `messageId`): the last user message is stored and answered by the job, and the answer
  streams back as UI message stream chunks. A turn whose last message is the assistant's
  carries tool approval responses (`addToolApprovalResponse`): they are decided as the user,
  and the paused answer streams on from where it stopped (`submit_approvals`);
- `GET api/chat/<id>/stream`: resume, the running answer from its start (row + live deltas);
  204 when none runs;
- `POST api/chat/<id>/stop/`: stop the running answer (its text is kept), `{"stopped": bool}`;
- `GET api/chats/`: the actor's conversations, most recently active first;
- `GET api/chat/<id>/`: one conversation with its messages as `UIMessage`s
  (`useChat({messages})`); `DELETE` deletes it (204).

The answer is the same durable job the page uses: closing the tab or aborting the fetch does
not stop it (`stop/` does), and a reload resumes it exactly. Writes go through the generated
app's actions (`actions`, its `actions.py` module), reads through `for_actor`: another user's
conversation, or a malformed id, is a 404. A visitor who is not signed in gets 401 (JSON) when
conversations have owners. CSRF: these are ordinary Django views behind `CsrfViewMiddleware`;
a same-origin front-end sends the `csrftoken` cookie's value as `X-CSRFToken` (the `GET`
endpoints set that cookie). For token authentication override `aget_actor` and mount the
views with `csrf_exempt` (the README, "AI SDK front-ends", shows DRF and django-ninja).

Example (a generated app's `views.py` and `urls.py`):
    ```python
    class ChatAPI(ChatAPIView):
        message_model = Message
        actions = actions
        approval_model = ToolApproval  # tool calls that wait for the user's approval
        jobs = jobs.chat_jobs


    path("api/chat/", views.ChatAPI.as_view(endpoint="chat"), name="api_chat")
    ```
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, connections, transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.middleware.csrf import get_token
from django.utils.translation import gettext
from django.views import View
from pydantic_ai.ui.vercel_ai.response_types import ErrorChunk

from django_ai_chat import ai_sdk, pubsub, streaming
from django_ai_chat.approvals import AbstractToolApproval, ApprovalError, decide_and_continue
from django_ai_chat.forms import clean_message_text
from django_ai_chat.limits import LimitExceeded
from django_ai_chat.models import (
    AbstractConversation,
    AbstractMessage,
    conversation_model_of,
    signed_in,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from django_ai_chat.jobs import ChatJobs

__all__ = ["ChatAPIView", "ChatActions", "Endpoint"]

_T = TypeVar("_T")

Endpoint = Literal["chat", "stream", "stop", "chats", "conversation"]
"""Which endpoint a `ChatAPIView` serves (`as_view(endpoint=...)`)."""

_METHODS: dict[str, tuple[str, ...]] = {
    "chat": ("post",),
    "stream": ("get",),
    "stop": ("post",),
    "chats": ("get",),
    "conversation": ("get", "delete"),
}


class ChatActions(Protocol):
    """What `ChatAPIView` calls in the generated app's `actions.py` (the module fits)."""

    def get_conversation(self, actor: Any, conversation_id: Any) -> Any:
        """The actor's conversation; `DoesNotExist` otherwise."""

    def create_conversation(
        self, actor: Any, *, title: str | None = None, conversation_id: Any = None
    ) -> Any:
        """Start a conversation (with this id when given)."""

    def create_message(self, actor: Any, *, text: str, conversation_id: Any = None) -> Any:
        """Post a user message and have it answered."""

    def edit_message(self, actor: Any, message_id: Any, text: str) -> Any:
        """Replace a user message's text and answer it again."""

    def regenerate_response(self, actor: Any, message_id: Any) -> Any:
        """Answer a user message again; returns the user message."""

    def stop_response(self, actor: Any, conversation_id: Any) -> bool:
        """Stop the conversation's running answer."""

    def delete_conversation(self, actor: Any, conversation_id: Any) -> None:
        """Delete the conversation."""


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ChatAPIView(View):
    """The AI SDK endpoints of one chat app (see the module docstring for the list).

    Attributes:
        endpoint: Which endpoint this view serves (`as_view(endpoint="chat")`).
        message_model: The app's `AbstractMessage` subclass (required).
        actions: The app's actions module (required for the writing endpoints).
        history_limit: Most messages the conversation endpoint returns (the newest ones of the
            branch shown).
        conversations_limit: Most conversations the list returns.
        keepalive: Seconds of silence before a keep-alive comment on a stream.
        approval_model: The app's `AbstractToolApproval` subclass; with `jobs`, approval
            responses are taken (`submit_approvals`). `None`: refused (400).
        jobs: The app's `ChatJobs`, which queue the answer's continuation.
    """

    http_method_names = ["get", "post", "delete"]
    endpoint: Endpoint | None = None
    message_model: type[AbstractMessage] | None = None
    actions: ChatActions | None = None
    history_limit: int = 100
    conversations_limit: int = 100
    keepalive: float = streaming.KEEPALIVE_SECONDS
    approval_model: type[AbstractToolApproval] | None = None
    jobs: ChatJobs | None = None

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        """The view function, marked `non_atomic_requests` (streams hold no transaction)."""
        endpoint = initkwargs.get("endpoint", cls.endpoint)
        if endpoint not in _METHODS:
            raise ImproperlyConfigured(
                f"{cls.__name__}.as_view() needs endpoint= one of {', '.join(_METHODS)}, "
                f"not {endpoint!r}."
            )
        view = super().as_view(**initkwargs)
        for alias in connections:
            view = transaction.non_atomic_requests(using=alias)(view)
        return view

    async def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        """`stream`, `chats` or `conversation` (see the module docstring)."""
        return await self._serve("get", request, kwargs)

    async def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        """`chat` or `stop`."""
        return await self._serve("post", request, kwargs)

    async def delete(self, request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        """`conversation` (delete it)."""
        return await self._serve("delete", request, kwargs)

    async def _serve(
        self, method: str, request: HttpRequest, kwargs: dict[str, Any]
    ) -> HttpResponseBase:
        endpoint = self.endpoint or ""
        if method not in _METHODS.get(endpoint, ()):
            return self.http_method_not_allowed(request)
        actor = await self.aget_actor()
        if self.conversation_model().owner_field is not None and not signed_in(actor):
            await self._released(lambda: None)
            return _error(gettext("Sign in to use the chat."), 401)
        handler = getattr(self, f"_{method}_{endpoint}")
        try:
            response: HttpResponseBase = await handler(actor, **kwargs)
        except ObjectDoesNotExist:
            return _error(gettext("No such conversation."), 404)
        except _BadRequest as error:
            return _error(str(error), error.status)
        except ValidationError as error:
            return _error(" ".join(error.messages), 422)
        except LimitExceeded as refused:  # nothing was stored or queued
            limited = _error(str(refused), 429)
            limited["Retry-After"] = str(refused.retry_after())
            return limited
        return response

    # Steps to override -----------------------------------------------------------------------

    async def aget_actor(self) -> Any:
        """Who is asking: the request's user, or `None` when conversations have no owner.

        Override for token authentication (and mount the views with `csrf_exempt`).
        """
        if self.conversation_model().owner_field is None:
            return None
        return await self.request.auser()

    def get_conversation(self, actor: Any, conversation_id: Any) -> AbstractConversation:
        """The conversation if `actor` may see it; else `DoesNotExist` (a 404). Sync."""
        conversation: AbstractConversation = (
            self.conversation_model().objects.for_actor(actor).get(pk=conversation_id)
        )
        return conversation

    def get_conversations(self, actor: Any) -> QuerySet[AbstractConversation]:
        """The actor's conversations, most recently active first. Sync."""
        return self.conversation_model().objects.for_actor(actor).order_by("-updated_at")

    def conversation_data(self, conversation: AbstractConversation) -> dict[str, Any]:
        """One conversation as the list and the conversation endpoint show it."""
        return {
            "id": str(conversation.pk),
            "title": conversation.title,
            "createdAt": conversation.inserted_at.isoformat(),
            "updatedAt": conversation.updated_at.isoformat(),
        }

    def submit_approvals(
        self, actor: Any, conversation_id: uuid.UUID, message: dict[str, Any]
    ) -> Any:
        """A turn whose last message is the assistant's: its tool approval responses. Sync.

        Each part in state `approval-responded` is decided as `actor` (its `approval.id` is
        the stored request's; `approved` must be a boolean, `reason` goes to the model with a
        denial), the continuation queued and the answer announced, all in one transaction
        (`approvals.decide_and_continue`, as for the page's card). Returns the answer as the
        pause left it, which then streams on. Errors: no responses or no `approval_model` (400),
        a request not in this conversation of the actor's (404), decided or expired already
        (409).
        """
        if self.approval_model is None or self.jobs is None:
            raise _BadRequest("This chat does not take tool approvals: send a user message.")
        responses = _approval_responses(message)
        self.get_conversation(actor, conversation_id)
        # Decided among this conversation's only: a request of another one is missing (404).
        in_conversation = self.approval_model.objects.in_conversation(conversation_id)
        with transaction.atomic():
            try:
                decided = decide_and_continue(in_conversation, responses, actor, self.jobs)
            except ApprovalError as refused:
                raise _BadRequest(str(refused), 409) from None
            answers = {approval.message_id for approval in decided}
            if len(answers) != 1:  # rolls the decisions back
                raise _BadRequest("Send the approval responses of one answer at a time.")
            (answer_id,) = answers
            # Read before the commit: the continuation's job cannot have written anything yet.
            return ai_sdk.with_approvals(self._message_model().objects.all()).get(pk=answer_id)

    # Endpoints -------------------------------------------------------------------------------

    async def _post_chat(self, actor: Any) -> HttpResponseBase:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise _BadRequest("The body must be JSON, as useChat sends it.") from None
        if not isinstance(body, dict):
            raise _BadRequest("The body must be a JSON object with id, messages and trigger.")
        conversation_id = _uuid(body.get("id"))
        if conversation_id is None:
            raise _BadRequest(
                f"The chat id {body.get('id')!r} is not a UUID: give useChat an id such as "
                "crypto.randomUUID()."
            )
        trigger = body.get("trigger", "submit-message")
        messages = body.get("messages")
        last = messages[-1] if isinstance(messages, list) and messages else None
        if trigger not in ("submit-message", "regenerate-message"):
            raise _BadRequest(f"Unknown trigger {trigger!r}: submit-message or regenerate-message.")
        if trigger == "submit-message" and not isinstance(last, dict):
            raise _BadRequest("A submit-message turn needs messages, the last one the user's.")

        def turn() -> Any:
            if trigger == "regenerate-message":
                return self._regenerate(actor, conversation_id, body.get("messageId"))
            assert isinstance(last, dict)
            if last.get("role") == "assistant":
                return self.submit_approvals(actor, conversation_id, last)
            if last.get("role") != "user":
                raise _BadRequest("The last message must be the user's.")
            return self._submit(actor, conversation_id, last, body.get("messageId"))

        message = await self._released(turn)
        if message.source == AbstractMessage.Source.AGENT:  # approvals: the answer goes on
            held = ai_sdk.AnswerChunks(str(message.pk)).resumed(message)
            return self._stream(self._follow(conversation_id, str(message.pk), held))
        return self._stream(self._answer_to(conversation_id, str(message.pk)))

    async def _get_stream(self, actor: Any, conversation_id: Any) -> HttpResponseBase:
        def running() -> tuple[str, str] | None:
            self.get_conversation(actor, conversation_id)
            messages = self._message_model().objects.in_conversation(conversation_id)
            answer = messages.running().order_by("-id").first()
            if answer is not None and answer.response_to_id is not None:
                return "answer", str(answer.pk)
            waiting = messages.needing_response().order_by("-id").first()
            return None if waiting is None else ("question", str(waiting.pk))

        found = await self._released(running)
        if found is None:
            return HttpResponse(status=204)
        kind, message_id = found
        if kind == "answer":
            return self._stream(self._follow(conversation_id, message_id))
        return self._stream(self._answer_to(conversation_id, message_id))

    async def _post_stop(self, actor: Any, conversation_id: Any) -> HttpResponseBase:
        actions = self._actions()
        stopped = await self._released(lambda: actions.stop_response(actor, conversation_id))
        return JsonResponse({"stopped": bool(stopped)})

    async def _get_chats(self, actor: Any) -> HttpResponseBase:
        def read() -> list[dict[str, Any]]:
            rows = self.get_conversations(actor)[: self.conversations_limit]
            return [self.conversation_data(c) for c in rows]

        response = JsonResponse({"conversations": await self._released(read)})
        get_token(self.request)  # sets the csrftoken cookie a front-end sends back
        return response

    async def _get_conversation(self, actor: Any, conversation_id: Any) -> HttpResponseBase:
        def read() -> dict[str, Any]:
            conversation = self.get_conversation(actor, conversation_id)
            messages = ai_sdk.with_approvals(
                self._message_model().objects.in_conversation(conversation.pk)
            )
            # The branch the person follows (edits and regenerates keep other versions).
            newest = messages.on_active_path(conversation.pk)[-self.history_limit :]
            return {
                **self.conversation_data(conversation),
                "messages": [ai_sdk.ui_message(m) for m in newest],
            }

        response = JsonResponse(await self._released(read))
        get_token(self.request)
        return response

    async def _delete_conversation(self, actor: Any, conversation_id: Any) -> HttpResponseBase:
        actions = self._actions()
        await self._released(lambda: actions.delete_conversation(actor, conversation_id))
        return HttpResponse(status=204)

    # Mechanics -------------------------------------------------------------------------------

    def conversation_model(self) -> type[AbstractConversation]:
        """The model `message_model.conversation` points to."""
        return conversation_model_of(self._message_model())

    def _message_model(self) -> type[AbstractMessage]:
        if self.message_model is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs message_model, e.g. message_model = Message."
            )
        return self.message_model

    def _actions(self) -> ChatActions:
        if self.actions is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs actions: set `actions = actions` (the app's "
                "actions module) in the class body."
            )
        return self.actions

    def _submit(
        self, actor: Any, conversation_id: uuid.UUID, last: dict[str, Any], message_id: Any
    ) -> Any:
        text = clean_message_text(_text_of(last))
        actions = self._actions()
        edited = _uuid(message_id) or _uuid(last.get("id"))
        if edited is not None:
            mine = self._message_model().objects.for_actor(actor).in_conversation(conversation_id)
            if mine.filter(pk=edited, source=AbstractMessage.Source.USER).exists():
                # `sendMessage({messageId})`: the user edited one of their messages.
                return actions.edit_message(actor, edited, text)
        try:
            with transaction.atomic():
                self._conversation_for_turn(actor, conversation_id)
                return actions.create_message(actor, text=text, conversation_id=conversation_id)
        except IntegrityError:
            raise _BadRequest(
                gettext("This chat id was taken just now: start a new chat."), 409
            ) from None

    def _conversation_for_turn(self, actor: Any, conversation_id: uuid.UUID) -> None:
        """The actor's conversation, created with the client's id when it is new."""
        try:
            self.get_conversation(actor, conversation_id)
        except ObjectDoesNotExist:
            if self.conversation_model().objects.filter(pk=conversation_id).exists():
                raise  # someone else's: a 404, as for any id the actor may not see
            self._actions().create_conversation(actor, conversation_id=conversation_id)

    def _regenerate(self, actor: Any, conversation_id: uuid.UUID, message_id: Any) -> Any:
        self.get_conversation(actor, conversation_id)
        messages = self._message_model().objects.for_actor(actor).in_conversation(conversation_id)
        target = _uuid(message_id)
        if target is None or not messages.filter(pk=target).exists():
            questions = [
                m
                for m in messages.on_active_path(conversation_id)
                if m.source == AbstractMessage.Source.USER
            ]
            last = questions[-1] if questions else None
            if last is None:
                raise _BadRequest(gettext("Nothing to regenerate: this chat has no message yet."))
            target = last.pk
        return self._actions().regenerate_response(actor, target)

    def _stream(self, events: AsyncIterator[str]) -> StreamingHttpResponse:
        response = streaming.event_stream_response(events, request=self.request)
        for name, value in ai_sdk.HEADERS.items():
            response[name] = value
        return response

    async def _answer_to(self, conversation_id: Any, question_id: str) -> AsyncIterator[str]:
        """Wait for the job's answer to `question_id`, then follow it."""
        topic = streaming.messages_topic(conversation_id)
        messages = self._message_model().objects

        def answer() -> tuple[bool, str | None]:
            if not messages.filter(pk=question_id).exists():
                return False, None
            found = messages.filter(response_to_id=uuid.UUID(question_id)).values_list(
                "pk", flat=True
            )
            first = found.first()
            return True, None if first is None else str(first)

        async with pubsub.subscribe(topic) as events:
            exists, answer_id = await self._released(answer)
            while exists and answer_id is None:
                try:
                    await _next(events, self.keepalive)
                except TimeoutError:
                    yield ai_sdk.KEEPALIVE
                    continue
                except StopAsyncIteration:
                    return
                exists, answer_id = await self._released(answer)
            if answer_id is None:
                yield ai_sdk.encode(ErrorChunk(error_text=gettext("The message is gone.")))
                yield ai_sdk.DONE
                return
            async for event in self._followed(events, topic, conversation_id, answer_id):
                yield event

    async def _follow(
        self, conversation_id: Any, answer_id: str, held: ai_sdk.AnswerChunks | None = None
    ) -> AsyncIterator[str]:
        topic = streaming.messages_topic(conversation_id)
        async with pubsub.subscribe(topic) as events:
            async for event in self._followed(events, topic, conversation_id, answer_id, held):
                yield event

    def _followed(
        self,
        events: pubsub.Subscription,
        topic: str,
        conversation_id: Any,
        answer_id: str,
        held: ai_sdk.AnswerChunks | None = None,
    ) -> AsyncIterator[str]:
        messages = ai_sdk.with_approvals(
            self._message_model().objects.in_conversation(conversation_id)
        )

        async def load() -> Any:
            return await self._released(messages.filter(pk=answer_id).first)

        return ai_sdk.follow_answer(
            answer_id,
            topic=topic,
            events=events,
            load=load,
            keepalive=self.keepalive,
            state=held,
        )

    @staticmethod
    async def _released(read: Callable[[], _T]) -> _T:
        """`read()` in the request's thread, then close that thread's database connections.

        A stream lasts as long as the answer; without this it would hold a connection.
        """

        def run() -> _T:
            try:
                return read()
            finally:
                connections.close_all()

        return await sync_to_async(run)()


async def _next(events: pubsub.Subscription, timeout: float) -> Any:
    return await asyncio.wait_for(anext(events), timeout)


def _text_of(message: dict[str, Any]) -> str:
    parts = message.get("parts")
    if not isinstance(parts, list):
        raise _BadRequest("The user message has no parts: send it as useChat does.")
    texts = [
        str(part.get("text", ""))
        for part in parts
        if isinstance(part, dict) and part.get("type") == "text"
    ]
    return "".join(texts)


def _approval_responses(message: dict[str, Any]) -> dict[uuid.UUID, tuple[bool, str]]:
    """The decisions an assistant message carries: approval id → (approved, reason)."""
    responses: dict[uuid.UUID, tuple[bool, str]] = {}
    parts = message.get("parts")
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("state") != "approval-responded":
            continue
        approval = part.get("approval")
        if not isinstance(approval, dict):
            approval = {}
        approval_id, approved = _uuid(approval.get("id")), approval.get("approved")
        # Strictly a boolean: this field is what lets a write run.
        if approval_id is None or not isinstance(approved, bool):
            raise _BadRequest("An approval response needs approval.id and approved: true/false.")
        responses[approval_id] = (approved, str(approval.get("reason") or ""))
    if not responses:
        raise _BadRequest("The last message must be the user's, or carry approval responses.")
    return responses


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)
