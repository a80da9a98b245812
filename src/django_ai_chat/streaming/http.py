"""SSE over HTTP: event framing and the streaming response, gzip-compressed when accepted."""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from django.http import HttpRequest, StreamingHttpResponse

__all__ = ["event_stream_response"]

RETRY_MS: Final = 1000
"""The reconnection delay the stream asks EventSource for."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def sse(event: str, data: str, event_id: str | None = None) -> str:
    """One SSE event: `event:`, optional `id:`, one `data:` line per line of `data`."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return "\n".join(lines) + "\n\n"


def event_stream_response(
    events: AsyncIterator[str], *, request: HttpRequest | None = None
) -> StreamingHttpResponse:
    """Wrap `relay(...)` in a `StreamingHttpResponse` with the headers SSE needs.

    Given the `request`, the stream is gzip-compressed when the browser accepts it: one gzip
    stream flushed after every event (so nothing waits in a buffer), in which the framing that
    every event repeats (event name, cursor, message id, JSON keys) costs a few bytes.
    """
    from django.http import StreamingHttpResponse

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    body: AsyncIterator[str] | AsyncIterator[bytes] = events
    if request is not None:
        headers["Vary"] = "Accept-Encoding"
        if _ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")):
            headers["Content-Encoding"] = "gzip"
            body = _gzip(events)
    return StreamingHttpResponse(body, content_type="text/event-stream", headers=headers)


_ACCEPTS_GZIP = re.compile(r"\bgzip\b")


async def _gzip(events: AsyncIterator[str]) -> AsyncIterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
    try:
        async for chunk in events:
            yield compressor.compress(chunk.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    finally:
        # A client that goes away closes the relay at once, which ends its subscription.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
