"""Per-user quotas and rate limits, checked before an answer is queued.

Four limits, each off (`None`) by default, set in settings:

* `AI_CHAT_MESSAGE_LIMIT = (30, 3600)`: at most 30 messages sent per rolling hour;
* `AI_CHAT_DAILY_TOKEN_LIMIT = 200_000`: input + output tokens of the answers of the last 24 h;
* `AI_CHAT_ANSWER_LIMIT = 2`: questions waiting for or being answered at once;
* `AI_CHAT_STREAM_LIMIT = 10`: live streams (open chat tabs) at once, counted per web process.

Staff are exempt while `AI_CHAT_LIMITS_EXEMPT_STAFF` (default `True`); so is no-user mode (no
one to count for). `ChatJobs.defer_response` calls `check_answer_limits` inside the transaction
that wrote the question, so a refusal (`LimitExceeded`) rolls the question back: nothing is
stored, nothing queued, and the view gives the typed text back with the message and HTTP 429.

The checks of one user are serialised by a transaction-level advisory lock, so concurrent
requests cannot all see the same count and all pass: each one counts what the ones before it
committed.
"""

from __future__ import annotations

import contextlib
import math
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from django.db import connections, transaction
from django.db.models import F, Q
from django.utils import formats, timezone
from django.utils.translation import gettext, ngettext

from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.models import AbstractMessage, signed_in

__all__ = [
    "TOKEN_WINDOW",
    "LimitExceeded",
    "LimitName",
    "check_answer_limits",
    "exempt",
    "open_stream",
    "reserve_stream",
]

TOKEN_WINDOW: Final = timedelta(hours=24)
"""The rolling window of `AI_CHAT_DAILY_TOKEN_LIMIT`."""

_LOCK_NAMESPACE: Final = zlib.crc32(b"django_ai_chat.limits") - 2**31  # a signed int4

LimitName = Literal["messages", "tokens", "answers", "streams"]


class LimitExceeded(Exception):
    """A user is over one of their limits; `str()` is the message to show them.

    Attributes:
        limit: Which limit: `"messages"`, `"tokens"`, `"answers"` or `"streams"`.
        retry_at: When the user may try again; `None` when it depends on them (an answer
            finishing, a tab closed).
    """

    def __init__(self, limit: LimitName, message: str, *, retry_at: datetime | None = None):
        """Create the refusal (`message` is shown to the user as it is)."""
        super().__init__(message)
        self.limit: LimitName = limit
        self.retry_at = retry_at

    def retry_after(self, now: datetime | None = None, *, default: int = 10) -> int:
        """Whole seconds until `retry_at` (at least 1), for an HTTP `Retry-After` header.

        `default` when there is no `retry_at`: a time after which trying again is reasonable.
        """
        if self.retry_at is None:
            return default
        seconds = (self.retry_at - (now or timezone.now())).total_seconds()
        return max(1, math.ceil(seconds))


def exempt(actor: Any) -> bool:
    """Whether no limit applies to `actor`: nobody signed in (no-user mode), or staff."""
    if not signed_in(actor):
        return True
    return bool(ai_chat_settings.LIMITS_EXEMPT_STAFF and getattr(actor, "is_staff", False))


def check_answer_limits(actor: Any, message_model: type[AbstractMessage]) -> None:
    """Refuse another answer for `actor` when it would go over a limit.

    Call it inside the transaction that writes the question (the question itself counts), after
    writing it and before queueing its answer; `ChatJobs.defer_response` does.

    Raises:
        LimitExceeded: Over `AI_CHAT_MESSAGE_LIMIT`, `AI_CHAT_DAILY_TOKEN_LIMIT` or
            `AI_CHAT_ANSWER_LIMIT`; the message says when to try again.
        ConfigurationError: Outside a transaction (the check would not be race-safe), or a
            limit setting is malformed.
    """
    message_limit = _message_limit()
    token_limit = _positive("DAILY_TOKEN_LIMIT")
    answer_limit = _positive("ANSWER_LIMIT")
    if (message_limit is None and token_limit is None and answer_limit is None) or exempt(actor):
        return
    using = message_model._default_manager.db
    if not transaction.get_connection(using).in_atomic_block:
        raise ConfigurationError(
            "check_answer_limits() must run inside the transaction that writes the question "
            "(wrap it in transaction.atomic()): outside one, concurrent requests could all pass."
        )
    _lock(actor, using)
    now = timezone.now()
    mine = message_model._default_manager.for_actor(actor)
    if message_limit is not None:
        _check_messages(mine, *message_limit, now=now)
    if token_limit is not None:
        _check_tokens(mine, token_limit, now=now)
    if answer_limit is not None:
        _check_answers(mine, answer_limit)


_streams: dict[Any, int] = {}
_streams_lock = threading.Lock()


def reserve_stream(actor: Any) -> Callable[[], None]:
    """Count one more open live stream of `actor` (`AI_CHAT_STREAM_LIMIT`); returns its release.

    Counted in this process: with several web processes the limit holds per process. Calling
    the release more than once releases once.

    Raises:
        LimitExceeded: `actor` has `AI_CHAT_STREAM_LIMIT` streams open already.
    """
    limit = _positive("STREAM_LIMIT")
    if limit is None or exempt(actor):
        return lambda: None
    key = actor.pk
    with _streams_lock:
        if _streams.get(key, 0) >= limit:
            raise LimitExceeded(
                "streams",
                ngettext(
                    "You have %(count)s chat open already. "
                    "Close one of them, then reload this one.",
                    "You have %(count)s chats open already. "
                    "Close one of them, then reload this one.",
                    limit,
                )
                % {"count": limit},
            )
        _streams[key] = _streams.get(key, 0) + 1
    released = False

    def release() -> None:
        nonlocal released
        with _streams_lock:
            if released:
                return
            released = True
            _streams[key] -= 1
            if not _streams[key]:
                del _streams[key]

    return release


@contextlib.contextmanager
def open_stream(actor: Any) -> Iterator[None]:
    """`reserve_stream` for the duration of a block.

    Raises:
        LimitExceeded: `actor` has `AI_CHAT_STREAM_LIMIT` streams open already.
    """
    release = reserve_stream(actor)
    try:
        yield
    finally:
        release()


def _lock(actor: Any, using: str) -> None:
    # Held until the transaction ends: the next check of this user counts what this one wrote.
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_LOCK_NAMESPACE, str(actor.pk)]
        )


def _check_messages(mine: Any, limit: int, window: float, *, now: datetime) -> None:
    since = now - timedelta(seconds=window)
    sent = list(
        mine.filter(source=AbstractMessage.Source.USER, inserted_at__gte=since)
        .order_by("inserted_at")
        .values_list("inserted_at", flat=True)
    )
    if len(sent) <= limit:
        return
    # Enough of the oldest must leave the window for this one to fit.
    retry_at = sent[len(sent) - limit - 1] + timedelta(seconds=window)
    raise LimitExceeded(
        "messages",
        ngettext(
            "You have sent %(count)s message in %(window)s, the most allowed. "
            "You can send this one %(when)s.",
            "You have sent %(count)s messages in %(window)s, the most allowed. "
            "You can send this one %(when)s.",
            limit,
        )
        % {"count": limit, "window": _duration(window), "when": _when(retry_at, now)},
        retry_at=retry_at,
    )


def _check_tokens(mine: Any, limit: int, *, now: datetime) -> None:
    answers = list(
        mine.filter(source=AbstractMessage.Source.AGENT, inserted_at__gte=now - TOKEN_WINDOW)
        .annotate(tokens=F("input_tokens") + F("output_tokens"))
        .filter(tokens__gt=0)
        .order_by("inserted_at")
        .values_list("inserted_at", "tokens")
    )
    used = sum(tokens for _, tokens in answers)
    if used < limit:
        return
    retry_at = now + TOKEN_WINDOW
    for inserted_at, tokens in answers:
        used -= tokens
        if used < limit:
            retry_at = inserted_at + TOKEN_WINDOW
            break
    raise LimitExceeded(
        "tokens",
        gettext(
            "You have used %(count)s tokens in 24 hours, the most allowed. "
            "You can send this message %(when)s."
        )
        % {
            "count": formats.number_format(limit, force_grouping=True),
            "when": _when(retry_at, now),
        },
        retry_at=retry_at,
    )


def _check_answers(mine: Any, limit: int) -> None:
    waiting = (
        mine.filter(source=AbstractMessage.Source.USER)
        .filter(Q(response__isnull=True) | Q(response__complete=False))
        .count()
    )
    if waiting <= limit:
        return
    raise LimitExceeded(
        "answers",
        ngettext(
            "%(count)s of your messages is being answered already, the most at once. "
            "Send this one when an answer has finished.",
            "%(count)s of your messages are being answered already, the most at once. "
            "Send this one when an answer has finished.",
            limit,
        )
        % {"count": limit},
    )


def _positive(name: str) -> int | None:
    value = getattr(ai_chat_settings, name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(
            f"AI_CHAT_{name} must be a whole number of at least 0 or None, not {value!r}."
        )
    return value


def _message_limit() -> tuple[int, float] | None:
    value: Any = ai_chat_settings.MESSAGE_LIMIT
    if value is None:
        return None
    try:
        count, window = value
        if isinstance(count, bool) or not isinstance(count, int) or count < 0 or window <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError(
            "AI_CHAT_MESSAGE_LIMIT must be (messages, seconds), e.g. (30, 3600) for 30 messages "
            f"an hour, or None; not {value!r}."
        ) from None
    return count, float(window)


def _duration(seconds: float) -> str:
    # Said after "in": German translators give the dative ("in 2 Tagen").
    if seconds >= 86400 and seconds % 86400 == 0:
        days = int(seconds // 86400)
        return ngettext("%(count)s day", "%(count)s days", days) % {"count": days}
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return ngettext("%(count)s hour", "%(count)s hours", hours) % {"count": hours}
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return ngettext("%(count)s minute", "%(count)s minutes", minutes) % {"count": minutes}
    whole = seconds == int(seconds)
    # A fraction of a second reads as a plural ("1.5 seconds").
    said = ngettext("%(count)s second", "%(count)s seconds", int(seconds) if whole else 2)
    return said % {"count": formats.localize(int(seconds) if whole else seconds)}


def _when(retry_at: datetime, now: datetime) -> str:
    seconds = max(1, math.ceil((retry_at - now).total_seconds()))
    if seconds < 60:
        return ngettext("in %(count)s second", "in %(count)s seconds", seconds) % {"count": seconds}
    if seconds <= 90 * 60:
        minutes = math.ceil(seconds / 60)
        return ngettext("in %(count)s minute", "in %(count)s minutes", minutes) % {"count": minutes}
    local, today = (
        (timezone.localtime(retry_at), timezone.localtime(now))
        if timezone.is_aware(retry_at)
        else (retry_at, now)
    )
    time = formats.time_format(local, "TIME_FORMAT")
    if local.date() == today.date():
        return gettext("at %(time)s") % {"time": time}
    return gettext("tomorrow at %(time)s") % {"time": time}
