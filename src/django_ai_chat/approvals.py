"""Tool approval (human in the loop): the stored request to run one tool call, and its decision.

When the model calls a tool that needs the user's approval (`tools.needs_approval`), the answer
pauses: the responder stores one `AbstractToolApproval` row per waiting call (the same `batch`
for the calls of one model response), with what the run needs to go on (`run_state`), and the
job ends: no worker waits for a person. The owner of the conversation decides each call
(`ToolApprovalQuerySet.decide`); once no call of the batch is pending, a job continues the
answer (`ChatJobs.defer_approved`): approved calls run as the user, the model is told of denied
ones, and the answer goes on at the same offset. `decide_and_continue` is that whole step, the
one both front-ends take (the page's card, an AI SDK turn): decide, queue, announce.

A decision is taken once: `decide` locks the row and updates it only while it is pending, so a
replayed or concurrent second decision raises `ApprovalConflict`; a request older than
`AI_CHAT_APPROVAL_EXPIRES_AFTER` raises `ApprovalExpired` (and the periodic rescue job ends its
answer with the responder's `approval_expired_text`).

The generated app subclasses the model, adding `message` (a foreign key to the answer, with
`related_name="approvals"`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext

from django_ai_chat import streaming
from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.models import new_id, signed_in

if TYPE_CHECKING:
    from django_ai_chat.jobs import ChatJobs

__all__ = [
    "REASON_MAX_LENGTH",
    "AbstractToolApproval",
    "ApprovalConflict",
    "ApprovalError",
    "ApprovalExpired",
    "ToolApprovalQuerySet",
    "decide_and_continue",
    "default_expiry",
]

REASON_MAX_LENGTH: Final = 2000
"""Longest reason a person may give with a denial, in characters."""

_MESSAGE: Final = "message"  # the foreign key to the answer, declared by subclasses

_A = TypeVar("_A", bound="AbstractToolApproval")


class ApprovalError(Exception):
    """A decision that cannot be taken; `str()` says why, for the person who tried."""


class ApprovalConflict(ApprovalError):
    """The call was decided already (a replayed or concurrent decision)."""


class ApprovalExpired(ApprovalError):
    """The call waited longer than `AI_CHAT_APPROVAL_EXPIRES_AFTER`; it will not run."""


def default_expiry(now: datetime | None = None) -> datetime:
    """When a request made `now` expires (`AI_CHAT_APPROVAL_EXPIRES_AFTER` seconds later)."""
    return (now or timezone.now()) + timedelta(
        seconds=float(ai_chat_settings.APPROVAL_EXPIRES_AFTER)
    )


def _conversation_owner_field(model: type[models.Model]) -> str | None:
    message_model = model._meta.get_field(_MESSAGE).related_model
    conversation_model = message_model._meta.get_field("conversation").related_model  # type: ignore[union-attr]
    owner: str | None = getattr(conversation_model, "owner_field", "user")
    return owner


def _uuid(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class ToolApprovalQuerySet(models.QuerySet[_A]):
    """Approval requests, scoped with `for_actor`; `decide` records a decision, once."""

    def for_actor(self, actor: Any) -> Self:
        """The requests of the conversations `actor` owns (all of them in no-user mode).

        Only the conversation's owner may see or decide its requests; `None` or an anonymous
        user sees none when there are owners.
        """
        owner_field = _conversation_owner_field(self.model)
        if owner_field is None:
            return self.all()
        if not signed_in(actor):
            return self.none()
        return self.filter(**{f"{_MESSAGE}__conversation__{owner_field}": actor})

    def pending(self) -> Self:
        """The requests still waiting for a decision (expired ones included until swept)."""
        return self.filter(status=AbstractToolApproval.Status.PENDING)

    def overdue(self, now: datetime | None = None) -> Self:
        """Pending requests past their `expires_at`."""
        return self.pending().filter(expires_at__lte=now or timezone.now())

    def in_conversation(self, conversation_id: Any) -> Self:
        """The requests of one conversation's answers."""
        return self.filter(**{f"{_MESSAGE}__conversation_id": conversation_id})

    def decide(self, approval_id: Any, actor: Any, *, approve: bool, reason: str = "") -> _A:
        """Approve or deny the request `approval_id` as `actor`, once.

        Takes the row's lock, then updates it only while it is pending, so two decisions (a
        double click, a replayed POST, two tabs) cannot both win. Call it inside the transaction
        that defers the continuation (`ChatJobs.defer_approved`). `reason` is kept for a denial
        (cut to `REASON_MAX_LENGTH`) and told to the model.

        Returns:
            The decided request; its `batch_ready` says whether no call of its batch waits any
            more (the answer can go on).

        Raises:
            DoesNotExist: No such request among `actor`'s in this queryset (another user's, a
                malformed id).
            ApprovalConflict: It was decided (or expired, or superseded) already.
            ApprovalExpired: It waited longer than `AI_CHAT_APPROVAL_EXPIRES_AFTER`.
        """
        key = _uuid(approval_id)
        if key is None:
            raise self.model.DoesNotExist(f"No tool approval {approval_id!r}.")
        status = AbstractToolApproval.Status
        with transaction.atomic(using=self.db):
            approval = self.for_actor(actor).select_for_update(of=("self",)).get(pk=key)
            if approval.status != status.PENDING:
                raise ApprovalConflict(
                    gettext("This action was already %(state)s; it cannot be decided again.")
                    % {"state": approval.state_text()}
                )
            now = timezone.now()
            if approval.expires_at <= now:
                raise ApprovalExpired(
                    gettext("This action waited too long for approval and expired; it was not run.")
                )
            fields = {
                "status": status.APPROVED if approve else status.DENIED,
                "reason": "" if approve else reason.replace("\x00", "").strip()[:REASON_MAX_LENGTH],
                "decided_at": now,
                "updated_at": now,
            }
            updated = self.filter(pk=approval.pk, status=status.PENDING).update(**fields)
            if not updated:  # pragma: no cover - the row lock makes this unreachable
                raise ApprovalConflict(gettext("This action was already decided."))
            for name, value in fields.items():
                setattr(approval, name, value)
            approval.batch_ready = not self.filter(batch=approval.batch).pending().exists()
        return approval


def decide_and_continue(
    approvals: ToolApprovalQuerySet[_A],
    decisions: Mapping[Any, tuple[bool, str]],
    actor: Any,
    jobs: ChatJobs,
) -> list[_A]:
    """Take `actor`'s decisions on waiting calls, queue the answers' continuations, announce them.

    The one path of a decision, whichever front-end sends it (`views.ToolApprovalView`, the
    page's card; `ChatAPIView.submit_approvals`, an AI SDK turn). In one transaction: each call
    is decided (`ToolApprovalQuerySet.decide`, among `approvals` only), its answer's
    continuation queued once no call of its batch waits (`ChatJobs.defer_approved`: one job per
    batch), and each answer decided on announced once (`streaming.message_changed`, sent at
    commit: every open page re-renders it, the card goes). A decision that cannot be taken rolls
    back all of them: nothing is decided, queued or announced.

    Args:
        approvals: The requests the decisions may be about, e.g.
            `ToolApproval.objects.in_conversation(cid)`; `decide` keeps `actor`'s of them.
        decisions: Request id → `(approve, reason)`, decided in this order; `reason` is told to
            the model with a denial.
        actor: Who decides: the conversation's owner (`None` in no-user mode).
        jobs: The app's `ChatJobs`, which queue the continuations.

    Returns:
        The decided requests, in the order of `decisions`.

    Raises:
        DoesNotExist: A request not among `actor`'s in `approvals` (another user's, another
            conversation's, a malformed id).
        ApprovalConflict: A request was decided (or expired, or superseded) already: a replay.
        ApprovalExpired: A request waited longer than `AI_CHAT_APPROVAL_EXPIRES_AFTER`.
    """
    decided: list[_A] = []
    with transaction.atomic():
        for approval_id, (approve, reason) in decisions.items():
            approval = approvals.decide(approval_id, actor, approve=approve, reason=reason)
            jobs.defer_approved(approval, actor)
            decided.append(approval)
        announced = set()
        for approval in decided:
            if approval.message_id not in announced:
                announced.add(approval.message_id)
                answer = getattr(approval, _MESSAGE)
                streaming.message_changed(answer.conversation_id, answer.pk)
    return decided


class AbstractToolApproval(models.Model):
    """One tool call that waits for (or got) the user's approval before it runs.

    Subclass it, adding `message` (a foreign key to the message model, the answer that paused,
    `related_name="approvals"`).

    Attributes:
        call_id: The model's id for the call.
        tool_name: The tool called.
        arguments: The arguments the model sent (JSON).
        description: The arguments as `[label, value]` pairs a person reads.
        status: `pending`, `approved`, `denied` or `expired`.
        reason: Why it was denied (the user's words, or `superseded` / `stopped`).
        batch: Shared by the calls of one paused round; the answer goes on once all are decided.
        run_state: What the paused run needs to go on (its model messages, the answer's text
            length and tool lists at the pause, its usage so far).
        decided_at: When it was decided; `None` while pending.
        expires_at: When it stops waiting.
        ran_at: When the approved call started running (it runs at most once).
        result: The approved call's result once it ran (`{"value": ...}`), for a retried run.
    """

    class Status(models.TextChoices):
        """Where a request stands."""

        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    call_id = models.CharField(max_length=200)
    tool_name = models.CharField(max_length=100)
    arguments = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    description = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    reason = models.TextField(blank=True, default="", max_length=REASON_MAX_LENGTH)
    batch = models.UUIDField(default=new_id, db_index=True)
    run_state = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(default=default_expiry)
    ran_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    inserted_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ToolApprovalQuerySet.as_manager()

    batch_ready: bool = False
    """Set by `decide`: no call of this batch waits any more."""

    if TYPE_CHECKING:
        message_id: Any

    class Meta:
        """Subclasses extend it: `class Meta(AbstractToolApproval.Meta): ...`."""

        abstract = True
        ordering = ["inserted_at", "id"]

    def __str__(self) -> str:
        return f"{self.tool_name} ({self.status})"

    @property
    def is_pending(self) -> bool:
        """Whether it still waits for a decision (and has not expired)."""
        return self.status == self.Status.PENDING and self.expires_at > timezone.now()

    @property
    def rows(self) -> list[tuple[str, str]]:
        """`description` as `(label, value)` pairs, for templates."""
        return [(str(label), str(value)) for label, value in self.description or []]

    def state_text(self) -> str:
        """The status in words, in the current language ("approved", "denied", ...)."""
        return {
            self.Status.PENDING: gettext("pending"),
            self.Status.APPROVED: gettext("approved"),
            self.Status.DENIED: gettext("denied"),
            self.Status.EXPIRED: gettext("expired"),
        }.get(self.Status(self.status), self.status)
