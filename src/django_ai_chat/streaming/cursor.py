"""What a browser already holds of a conversation (`Cursor`), and what `relay` needs of a row.

The cursor travels as query parameters on (re)connect (`after`, `partial`, `end`, `thinking`)
and as the SSE `id:` field, `<after>` or `<after>/<partial>:<end>` (`:<thinking>` added when the
browser holds reasoning of `partial`), which EventSource sends back as `Last-Event-ID`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = ["Cursor", "StreamedMessage"]


class StreamedMessage(Protocol):
    """What `relay` needs of a message row (a generated `Message` instance fits)."""

    @property
    def id(self) -> Any:
        """Primary key (a UUID v7 or its string)."""

    @property
    def text(self) -> str:
        """The text the row holds."""

    @property
    def complete(self) -> bool:
        """`False` while an agent answer is still streaming."""


@dataclass(frozen=True)
class Cursor:
    """What the browser already holds, sent on (re)connect.

    Attributes:
        after: Id of the newest message the browser shows (`None`: none).
        partial: Id of an incomplete message the browser is streaming, if any.
        end: How many characters of `partial` the browser holds.
        thinking: How many characters of `partial`'s reasoning (`thinking`) it holds.
        since: On a reconnect, the id of the oldest message the browser shows: the stream then
            lists the ids still there from it on (a `present` event), so rows deleted while it
            was away go from the page too. Not part of the SSE `id:` form.
    """

    after: str | None = None
    partial: str | None = None
    end: int = 0
    since: str | None = None
    thinking: int = 0

    def __str__(self) -> str:
        """The SSE `id:` form: `<after>` or `<after>/<partial>:<end>[:<thinking>]`.

        `-` stands for no `after`; `:<thinking>` only when the browser holds reasoning, so a
        cursor without any reads as it did before reasoning existed.
        """
        head = self.after or "-"
        if not self.partial:
            return head
        tail = f":{self.thinking}" if self.thinking else ""
        return f"{head}/{self.partial}:{self.end}{tail}"

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """Parse the `str()` form (as EventSource sends it back in `Last-Event-ID`).

        Returns:
            The cursor, or `None` when `value` is empty or malformed.
        """
        if not value:
            return None
        head, _, tail = value.strip().partition("/")
        partial, _, ends = tail.partition(":")
        end, _, thinking = ends.partition(":")
        return cls._make(None if head == "-" else head, partial or None, end or "0", thinking)

    @classmethod
    def from_query(cls, query: Any) -> Cursor:
        """Read the query parameters `after`, `partial`, `end`, `thinking` and `since`.

        Malformed values are ignored.
        """
        made = cls._make(
            query.get("after") or None,
            query.get("partial") or None,
            query.get("end"),
            query.get("thinking"),
        )
        return replace(made or cls(), since=_since(query.get("since")))

    @classmethod
    def from_request(cls, request: HttpRequest) -> Cursor:
        """The cursor of an SSE request: `Last-Event-ID` when present, else query parameters.

        EventSource reconnects with the page's original URL, whose query parameters are stale
        by then, and the last `id:` it received in `Last-Event-ID`, which is current.
        """
        query = cls.from_query(request.GET)
        parsed = cls.parse(request.headers.get("Last-Event-ID"))
        return query if parsed is None else replace(parsed, since=query.since)

    @classmethod
    def _make(
        cls, after: str | None, partial: str | None, end: Any, thinking: Any = None
    ) -> Cursor | None:
        try:
            return cls(
                after=uuid_str(after) if after else None,
                partial=uuid_str(partial) if partial else None,
                end=max(0, int(end or 0)) if partial else 0,
                thinking=max(0, int(thinking or 0)) if partial else 0,
            )
        except (TypeError, ValueError):
            return None


def _since(value: str | None) -> str | None:
    try:
        return uuid_str(value) if value else None
    except ValueError:
        return None


def uuid_str(value: object) -> str:
    """The canonical lowercase form of a UUID (`ValueError` when `value` is not one)."""
    # Canonical lowercase form: string order then equals UUID v7 (time) order.
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
