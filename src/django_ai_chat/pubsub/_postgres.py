"""Postgres backend of `django_ai_chat.pubsub`: LISTEN/NOTIFY on Django's database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from django.db import connections

from django_ai_chat.pubsub._batching import BatchingPublisher
from django_ai_chat.pubsub._codec import Outgoing, pack

if TYPE_CHECKING:
    import psycopg

LISTENER_APP_NAME: Final = "django_ai_chat.pubsub"
"""`application_name` of listening connections (how tests and operators find them)."""

_NOTIFY_ONE: Final = "SELECT pg_notify(%s, %s)"
_NOTIFY_MANY: Final = (
    "SELECT pg_notify(c, m) FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS b(c, m, i) "
    "ORDER BY i"
)


def _pg_params(using: str) -> dict[str, Any]:
    params = dict(connections[using].get_connection_params())
    # Django-specific entries that psycopg.connect() would reject or that only matter for the ORM.
    for key in ("cursor_factory", "context", "prepare_threshold", "server_side_binding", "pool"):
        params.pop(key, None)
    # libpq keepalives: without them a silently dead network (no FIN) would leave the listener,
    # and every subscriber, waiting forever.
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", 30)
    params.setdefault("keepalives_interval", 10)
    params.setdefault("keepalives_count", 3)
    return params


class PostgresBackend:
    """LISTEN/NOTIFY through database alias `using`."""

    def __init__(self, using: str, *, key: tuple[str, ...]) -> None:
        self._using = using
        self._key = key

    @property
    def key(self) -> tuple[str, ...]:
        """`("pg", alias, name, host, port)`."""
        return self._key

    def transport(self, channel: str) -> PgTransport:
        """A listening connection of its own (Django's connections cannot LISTEN for long)."""
        return PgTransport(self._using, channel)

    def async_publisher(self) -> AsyncPgPublisher:
        """One autocommit connection for the running event loop."""
        return AsyncPgPublisher(self._using)

    def publish(self, channel: str, data: str) -> None:
        """NOTIFY through Django's connection: transactional by nature."""
        with connections[self._using].cursor() as cursor:
            cursor.execute(_NOTIFY_ONE, [channel, data])


class PgTransport:
    """The listening side: one autocommit connection LISTENing on one channel."""

    def __init__(self, using: str, channel: str) -> None:
        self._using = using
        self._channel = channel
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def connect(self) -> None:
        """Connect and LISTEN."""
        import psycopg

        params = _pg_params(self._using)
        params["application_name"] = LISTENER_APP_NAME
        self._conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        await self._conn.execute(f'LISTEN "{self._channel}"')

    async def messages(self) -> AsyncIterator[str]:
        """Yield NOTIFY payloads until the connection fails."""
        assert self._conn is not None
        async for notify in self._conn.notifies():
            yield notify.payload

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _without_duplicates(messages: list[Outgoing]) -> list[list[Outgoing]]:
    # NOTIFY delivers identical payloads sent in one transaction only once; a batch is one
    # transaction, so split it where a message repeats to keep one publish = one delivery.
    if len(set(messages)) == len(messages):
        return [messages]
    chunks: list[list[Outgoing]] = [[]]
    seen: set[Outgoing] = set()
    for message in messages:
        if message in seen:
            chunks.append([])
            seen.clear()
        chunks[-1].append(message)
        seen.add(message)
    return chunks


class AsyncPgPublisher(BatchingPublisher):
    """One autocommit connection per event loop; a batch is one `pg_notify` statement."""

    def __init__(self, using: str) -> None:
        super().__init__()
        self._using = using
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def _send(self, messages: list[Outgoing]) -> None:
        for chunk in _without_duplicates(pack(messages)):
            await self._send_chunk(chunk)

    async def _send_chunk(self, messages: list[Outgoing]) -> None:
        import psycopg

        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(
                    **_pg_params(self._using), autocommit=True
                )
            try:
                if len(messages) == 1:
                    await self._conn.execute(_NOTIFY_ONE, messages[0])
                else:
                    channels, bodies = zip(*messages, strict=True)
                    await self._conn.execute(_NOTIFY_MANY, (list(channels), list(bodies)))
                return
            except psycopg.OperationalError:
                # The server closed an idle connection (restart, idle timeout): one fresh try.
                if attempt == 2 or not self._conn.closed:
                    raise

    async def close(self) -> None:
        """Stop sending and close the connection."""
        await super().close()
        if self._conn is not None:
            await self._conn.close()
