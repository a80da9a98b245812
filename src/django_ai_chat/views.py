"""The live stream of a conversation as a view: `ConversationStreamView`, server-sent events.

One GET per open page: the actor check, the catch-up from the database (the conversation's active
branch, bounded to its newest `history_limit` messages), then live deltas and message changes
(`streaming.relay`: a message that leaves the active branch reads as removed), plus the
sidebar's conversation events, gzip-compressed when the browser accepts it. The view holds no
database connection while it waits: each read runs in the request's thread and closes that
thread's connections afterwards (an open tab would otherwise keep a Postgres connection).
When the server process is told to stop (SIGTERM, SIGINT), every open stream ends at once, so
that the server can exit; browsers reconnect, with their cursor, to a process still serving.

Example (a generated app's `views.py`):
    ```python
    stream = login_required(
        ConversationStreamView.as_view(
            message_model=Message, message_template_name="chat/_message.html"
        )
    )
    ```

Subclass it to change a step: `get_conversation` (the authorisation point), `get_messages`,
`render_message`, `render_conversation`, `aget_actor`.

`SharedConversationView` is the read-only page of a share link (`AbstractShareLink`): a
snapshot, no stream. `AttachmentView` serves one attached file to the person whose conversation
it is in. `ToolApprovalView` takes the owner's decision on a tool call that waits for approval.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import (
    ImproperlyConfigured,
    ObjectDoesNotExist,
    PermissionDenied,
    ValidationError,
)
from django.db import connections, models, transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic.base import TemplateResponseMixin

from django_ai_chat import _shutdown, limits, streaming
from django_ai_chat.approvals import AbstractToolApproval, ApprovalError, decide_and_continue
from django_ai_chat.attachments import IMAGE_TYPES
from django_ai_chat.branches import BranchTree, attach_branches
from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.models import (
    AbstractAttachment,
    AbstractConversation,
    AbstractMessage,
    AbstractShareLink,
    conversation_model_of,
    signed_in,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from django_ai_chat.jobs import ChatJobs

__all__ = [
    "AttachmentView",
    "ConversationStreamView",
    "SharedConversationView",
    "ToolApprovalView",
]

_T = TypeVar("_T")
_MESSAGE = "message"  # a field of the concrete attachment model only


class ConversationStreamView(View):
    """Server-sent events: one conversation's messages (resumable) and the sidebar's changes.

    URL keyword argument `conversation_id` (absent or `None` on a page without a conversation:
    only conversation events then). The browser's cursor (`after`, `partial`, `end` query
    parameters, or `Last-Event-ID`) says what it already shows; see `streaming.relay`.

    Answers 404 for a conversation the actor may not see (or a malformed id), 403 to a visitor
    who is not signed in when conversations have owners, 405 to anything but GET. Async views
    refuse `ATOMIC_REQUESTS`, and a stream must not hold a transaction open: `as_view()` marks
    the view `transaction.non_atomic_requests` for every database.

    Attributes:
        message_model: The app's concrete `AbstractMessage` subclass (required); its
            `conversation` foreign key gives the conversation model.
        message_template_name: Template of one message (required), rendered with `message`;
            its element carries `id="message-<uuid>"`, `data-end` and `data-complete`.
        history_limit: Most messages a (re)connect sends: the newest ones. Rows newer than a
            cursor within them are all sent; the page's "earlier messages" link reaches the rest.
        coalesce: Merge the deltas already queued behind the one being sent into one event
            (never waiting for more; see `streaming.relay`); falsy: one event per delta.
    """

    http_method_names = ["get"]
    message_model: type[AbstractMessage] | None = None
    message_template_name: str | None = None
    history_limit: int = 50
    coalesce: bool | float = True
    language: str | None = None  # the request's, set by `get`

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        """The view function, marked `non_atomic_requests` for every configured database."""
        view = super().as_view(**initkwargs)
        for alias in connections:
            view = transaction.non_atomic_requests(using=alias)(view)
        return view

    async def get(
        self, request: HttpRequest, conversation_id: Any = None, **kwargs: Any
    ) -> StreamingHttpResponse | HttpResponse:
        """Check the actor, then stream (see the class docstring).

        Over `AI_CHAT_STREAM_LIMIT` open streams: HTTP 429 with the reason, no stream.
        """
        actor = await self.aget_actor()
        owner_field = self.conversation_model().owner_field
        if owner_field is not None and not signed_in(actor):
            raise PermissionDenied(translation.gettext("Sign in to follow a conversation."))
        # Messages render for as long as the stream lasts: in the language of the request
        # (LocaleMiddleware's), whatever the thread or task rendering them later.
        self.language = translation.get_language()

        def check() -> None:
            if conversation_id is not None:
                self.get_conversation(actor, conversation_id)

        # Also hands back the connection the session and user lookups opened.
        await self._released(check)
        _shutdown.watch_signals()  # here: servers install their own handlers as they start
        try:
            release = limits.reserve_stream(actor)
        except limits.LimitExceeded as refused:
            response = HttpResponse(str(refused), status=429, content_type="text/plain")
            response["Retry-After"] = str(refused.retry_after())
            return response
        events = streaming.relay(
            cursor=streaming.Cursor.from_request(request),
            messages_topic=(
                streaming.messages_topic(conversation_id) if conversation_id is not None else None
            ),
            load_messages=lambda after: self._aload_messages(conversation_id, after),
            load_message=lambda message_id: self._aload_message(conversation_id, message_id),
            render_message=self._arender_message,
            conversations_topic=streaming.conversations_topic(
                None if owner_field is None else actor.pk
            ),
            render_conversation=self._arender_conversation,
            coalesce=self.coalesce,
        )
        stream = streaming.event_stream_response(
            _releasing(_shutdown.until_stopping(events), release), request=request
        )
        # Also when the stream never started (its generator's `finally` would not run).
        stream._resource_closers.append(release)  # type: ignore[attr-defined]
        return stream

    # Steps to override -----------------------------------------------------------------------

    async def aget_actor(self) -> Any:
        """Who is watching: the request's user, or `None` when conversations have no owner."""
        if self.conversation_model().owner_field is None:
            return None
        return await self.request.auser()

    def get_conversation(self, actor: Any, conversation_id: Any) -> AbstractConversation:
        """The conversation, if `actor` may see it; else `Http404` (also for a malformed id).

        Runs in a thread (sync ORM is fine). The authorisation point of the stream.
        """
        conversations = self.conversation_model().objects
        try:
            return conversations.for_actor(actor).get(pk=conversation_id)
        except (ObjectDoesNotExist, ValueError, ValidationError) as error:
            raise Http404("No such conversation.") from error

    def get_messages(self, conversation_id: Any) -> QuerySet[AbstractMessage]:
        """All rows of the conversation (the stream orders and bounds them itself)."""
        return self._message_model().objects.in_conversation(conversation_id)

    def render_message(self, message: AbstractMessage) -> str:
        """The HTML of one message (runs in a thread: an edited template may query)."""
        if not self.message_template_name:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs message_template_name, e.g. "
                f'as_view(message_template_name="chat/_message.html").'
            )
        return render_to_string(self.message_template_name, {"message": message})

    def render_conversation(self, payload: dict[str, Any]) -> str | None:
        """The `data` of a `conversation` event (`None` skips it): what changed, as JSON.

        The browser re-fetches its sidebar; the event only says which conversation and how.
        """
        return json.dumps({"id": str(payload.get("id")), "event": payload.get("event")})

    # Mechanics -------------------------------------------------------------------------------

    def conversation_model(self) -> type[AbstractConversation]:
        """The model `message_model.conversation` points to."""
        return conversation_model_of(self._message_model())

    def _message_model(self) -> type[AbstractMessage]:
        if self.message_model is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs message_model, e.g. as_view(message_model=Message)."
            )
        return self.message_model

    async def _aload_messages(self, conversation_id: Any, after: str | None) -> list[Any]:
        def read() -> list[Any]:
            tree = self._message_model().objects.tree(conversation_id)
            path = tree.active_path()
            # Never more than `history_limit`, however long the conversation or old the cursor:
            # a (re)connect must not re-render it all.
            recent = path[-self.history_limit :] if self.history_limit else path
            shown = Q(id__in=recent, id__gt=after) if after else Q(id__in=recent)
            messages = self.get_messages(conversation_id).filter(id__in=path)
            rows = list(messages.filter(shown | Q(complete=False)).order_by("id"))
            attach_branches(rows, tree)
            return rows

        return await self._released(read)

    async def _aload_message(self, conversation_id: Any, message_id: str) -> Any:
        def read() -> Any:
            # A message off the active path (the person switched branch) reads as gone.
            tree = self._message_model().objects.tree(conversation_id)
            if not _on_active_path(tree, message_id):
                return None
            message = self.get_messages(conversation_id).filter(id=message_id).first()
            if message is not None:
                attach_branches([message], tree)
            return message

        return await self._released(read)

    async def _arender_message(self, message: Any) -> str:
        def render() -> str:
            with translation.override(self.language):
                return self.render_message(message)

        return await self._released(render)

    async def _arender_conversation(self, payload: dict[str, Any]) -> str | None:
        return self.render_conversation(payload)

    @staticmethod
    async def _released(read: Callable[[], _T]) -> _T:
        """`read()` in the request's thread, then close that thread's database connections.

        A stream stays open for as long as its tab; Django closes a request's connection only
        when the response ends, so without this every open tab would hold a connection.
        """

        def run() -> _T:
            try:
                return read()
            finally:
                connections.close_all()

        return await sync_to_async(run)()


def _on_active_path(tree: BranchTree, message_id: str) -> bool:
    return any(str(pk) == message_id for pk in tree.active_path())


async def _releasing(events: AsyncIterator[str], release: Callable[[], None]) -> AsyncIterator[str]:
    try:
        async for event in events:
            yield event
    finally:
        release()
        aclose = getattr(events, "aclose", None)  # the relay unsubscribes there
        if aclose is not None:
            await aclose()


class SharedConversationView(TemplateResponseMixin, View):
    """The read-only page of a share link (URL kwarg `token`): a snapshot, nothing to act on.

    No composer, no actions, no live stream: the page shows the snapshot a
    `ShareLinkQuerySet.share` took. An unknown, revoked or malformed token is a 404. With
    `AI_CHAT_SHARE_REQUIRES_LOGIN` (the default) a visitor who is not signed in goes to the login
    page first (a project without users has nobody to sign in: the setting is ignored there).
    Every response says `X-Robots-Tag: noindex, nofollow` (the page's `<meta name="robots">`
    too), `Referrer-Policy: no-referrer` (the token is in the address: a link followed from the
    page must not carry it away) and `Cache-Control: no-store` (a revoked link must not live on
    in a cache).

    Attributes:
        share_model: The concrete `AbstractShareLink` subclass (required).
        template_name: The page (required); its context: `share` (the link), `title`,
            `messages` (`SharedMessage` list, oldest first) and `shared_at`.

    Override a step: `requires_sign_in()`, `get_share(token)`, `get_context_data(share)`.
    """

    share_model: type[AbstractShareLink] | None = None
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        """The shared page, the login page first, or a 404."""
        if self.requires_sign_in() and not signed_in(getattr(request, "user", None)):
            # Here, not at the top: projects without django.contrib.auth import this module too.
            from django.contrib.auth.views import redirect_to_login

            response: HttpResponse = redirect_to_login(request.get_full_path())
        else:
            share = self.get_share(token)
            response = self.render_to_response(self.get_context_data(share))
        return _unlisted(response)

    def requires_sign_in(self) -> bool:
        """Whether only signed-in people may read shared conversations (the setting)."""
        if conversation_model_of(self._share_model()).owner_field is None:
            return False
        return bool(ai_chat_settings.SHARE_REQUIRES_LOGIN)

    def get_share(self, token: str) -> AbstractShareLink:
        """The link with this token; `Http404` when there is none (the only check: the token)."""
        try:
            share: AbstractShareLink = self._share_model().objects.by_token(token)
        except ObjectDoesNotExist as error:
            raise Http404("No such shared conversation.") from error
        return share

    def get_context_data(self, share: AbstractShareLink) -> dict[str, Any]:
        """The template's context."""
        return {
            "share": share,
            "title": share.title,
            "messages": share.shared_messages,
            "shared_at": share.updated_at,
        }

    def _share_model(self) -> type[AbstractShareLink]:
        if self.share_model is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs share_model (an AbstractShareLink subclass)."
            )
        return self.share_model


def _unlisted(response: HttpResponse) -> HttpResponse:
    # A shared page is for the people given its link: not for search engines, other sites'
    # logs (Referer) or caches.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    add_never_cache_headers(response)
    return response


class AttachmentView(View):
    """One attached file, for the person whose conversation holds it (anyone else: 404).

    URL keyword argument `attachment_id`. Images (PNG, JPEG, WebP, GIF: never SVG) are served
    inline, with `?download=1` as a download; every other file always as a download
    (`Content-Disposition: attachment`), so nothing a person uploaded runs as a page of this
    site. Every response says `X-Content-Type-Options: nosniff`, a `sandbox` content security
    policy and `Cache-Control: private`. The file is read through its storage (any Django
    storage backend), never from a path, and is never a `MEDIA_URL` link.

    Attributes:
        attachment_model: The app's concrete `AbstractAttachment` subclass (required).
    """

    http_method_names = ["get", "head"]
    attachment_model: type[AbstractAttachment] | None = None

    def get(self, request: HttpRequest, attachment_id: Any, **kwargs: Any) -> HttpResponse:
        """The file, or 404 (not the actor's, a malformed id, or gone from the storage)."""
        attachment = self.get_attachment(self.get_actor(), attachment_id)
        try:
            with attachment.file.open("rb") as file:
                # Read whole (at most AI_CHAT_MAX_ATTACHMENT_SIZE): a file iterator would be
                # consumed synchronously under ASGI, which Django warns about.
                data = file.read()
        except OSError as error:  # FileNotFoundError among them
            raise Http404("This file is no longer stored.") from error
        inline = attachment.content_type in IMAGE_TYPES and request.GET.get("download") != "1"
        response = HttpResponse(data, content_type=attachment.content_type)
        response["Content-Disposition"] = content_disposition_header(
            not inline, attachment.name
        ) or ("inline" if inline else "attachment")
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cross-Origin-Resource-Policy"] = "same-origin"
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def get_actor(self) -> Any:
        """Who asks: the request's user, or `None` when conversations have no owner."""
        return _actor_of(self.request, self._attachment_model())

    def get_attachment(self, actor: Any, attachment_id: Any) -> AbstractAttachment:
        """The attachment, if `actor` may see it; else `Http404`. The authorisation point."""
        try:
            return self._attachment_model().objects.for_actor(actor).get(pk=attachment_id)
        except (ObjectDoesNotExist, ValueError, ValidationError) as error:
            raise Http404("No such file.") from error

    def _attachment_model(self) -> type[AbstractAttachment]:
        if self.attachment_model is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs attachment_model, "
                "e.g. as_view(attachment_model=Attachment)."
            )
        return self.attachment_model


class ToolApprovalView(View):
    """POST: the conversation's owner approves or denies one tool call that waits (`decide`).

    URL keyword argument `approval_id`; form fields `decision` (`"approve"` or `"deny"`) and
    `reason` (optional, told to the model with a denial). The decision, the continuation's job
    and the answer's announcement (every open page re-renders it: the card goes) are one
    transaction (`approvals.decide_and_continue`, as for an AI SDK turn). htmx requests get the
    card back (`template_name`, context `approval`, `error`): decided, or with why it could not
    be (decided already, expired) and status 409; others are redirected (`get_success_url`).
    Anyone but the owner, or a malformed id: 404.

    Attributes:
        approval_model: The app's concrete `AbstractToolApproval` subclass (required).
        jobs: The app's `ChatJobs` (required).
        template_name: The card's template (required for htmx requests).
    """

    http_method_names = ["post"]
    approval_model: type[AbstractToolApproval] | None = None
    jobs: ChatJobs | None = None
    template_name: str = ""

    def post(self, request: HttpRequest, approval_id: Any, **kwargs: Any) -> HttpResponse:
        """Decide the call, or explain why not."""
        model, jobs = self._configured()
        decision = request.POST.get("decision", "")
        if decision not in ("approve", "deny"):
            return HttpResponse("Send decision=approve or decision=deny.", status=400)
        actor = self.get_actor()
        error = ""
        try:
            (approval,) = decide_and_continue(
                model.objects.all(),
                {approval_id: (decision == "approve", request.POST.get("reason", ""))},
                actor,
                jobs,
            )
        except ObjectDoesNotExist as missing:
            raise Http404("No such tool call waits for you.") from missing
        except ApprovalError as refused:
            error = str(refused)
            approval = model.objects.for_actor(actor).get(pk=approval_id)
        if request.headers.get("HX-Request") != "true":
            return redirect(self.get_success_url(approval))
        html = render_to_string(
            self.template_name, {"approval": approval, "error": error}, request=request
        )
        return HttpResponse(html, status=409 if error else 200)

    def get_actor(self) -> Any:
        """Who decides: the request's user, or `None` when conversations have no owner."""
        return _actor_of(self.request, self._configured()[0])

    def get_success_url(self, approval: AbstractToolApproval) -> str:
        """Where a request without htmx goes after deciding (override: the conversation).

        The page the person came from (`Referer`) when it is on this site, else `/`: a
        Referer naming another host (or plain HTTP on an HTTPS site) is not followed.
        """
        referer = self.request.headers.get("Referer", "")
        if referer and url_has_allowed_host_and_scheme(
            referer,
            allowed_hosts={self.request.get_host()},
            require_https=self.request.is_secure(),
        ):
            return referer
        return "/"

    def _configured(self) -> tuple[type[AbstractToolApproval], ChatJobs]:
        if self.approval_model is None or self.jobs is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} needs approval_model and jobs, e.g. "
                "as_view(approval_model=ToolApproval, jobs=jobs.chat_jobs)."
            )
        return self.approval_model, self.jobs


def _actor_of(request: HttpRequest, model: type[models.Model]) -> Any:
    """The request's user, or `None` when the conversations of `model.message` have no owner."""
    message_model = model._meta.get_field(_MESSAGE).related_model
    if not (isinstance(message_model, type) and issubclass(message_model, AbstractMessage)):
        raise ImproperlyConfigured(f"{model.__name__}.message must point to a message model.")
    if conversation_model_of(message_model).owner_field is None:
        return None
    return request.user
