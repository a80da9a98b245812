"""A second process for the pub/sub tests: `python -m tests.runtime._pubsub_peer publish|subscribe`.

Environment: `PEER_DB_NAME` (the test database), `PEER_PUBSUB_URL` (empty for Postgres).
`publish TOPIC N`: publishes `{"n": i}` for i in range(N), sync, then exits.
`subscribe TOPIC N`: prints `ready`, then one JSON line per message received, exits after N.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from django_ai_chat import pubsub  # noqa: E402

settings.DATABASES["default"]["NAME"] = os.environ["PEER_DB_NAME"]
connection.settings_dict["NAME"] = os.environ["PEER_DB_NAME"]
settings.AI_CHAT_PUBSUB_URL = os.environ.get("PEER_PUBSUB_URL") or None


async def _subscribe(topic: str, count: int) -> None:
    async with pubsub.subscribe(topic) as messages:
        print("ready", flush=True)
        received = 0
        async for got_topic, payload in messages:
            print(json.dumps([got_topic, payload]), flush=True)
            received += 1
            if received == count:
                return


def main() -> None:
    command, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if command == "publish":
        for i in range(count):
            pubsub.publish(topic, {"n": i, "text": "héllo"})
        connection.close()
    else:
        asyncio.run(_subscribe(topic, count))


if __name__ == "__main__":
    main()
