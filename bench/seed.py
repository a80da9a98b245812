"""Runs inside the generated project (cwd = project, DJANGO_SETTINGS_MODULE set); prints JSON.

python seed.py users <app> <n> <password>      → {"users": [[username, conversation_id], ...]}
python seed.py long <app> <username> <count>   → {"conversation": id}
python seed.py page <app> <username> <cid> <pages> <limit> → {"page_ms": [...]}
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.getcwd())

import django

django.setup()

from django.apps import apps  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402

ANSWER = (
    "Here is **what** to do, with a [link](https://example.com) and `inline code`:\n\n"
    "- install the package\n- run the migration\n- open the page\n\n"
    "```python\nprint('hello')\n```\n"
)


def users(app: str, n: int, password: str) -> dict[str, object]:
    user_model = get_user_model()
    conversation = apps.get_model(app, "Conversation")
    hashed = make_password(password)
    made = user_model.objects.bulk_create(
        [
            user_model(username=f"bench{i}", password=hashed, is_staff=True, is_active=True)
            for i in range(n)
        ]
    )
    # Titled up front: the naming job is a one-off per conversation, not part of the ladder.
    conversations = conversation.objects.bulk_create(
        [conversation(user=user, title=f"Bench {i}") for i, user in enumerate(made)]
    )
    return {"users": [[u.username, str(c.pk)] for u, c in zip(made, conversations, strict=True)]}


def long(app: str, username: str, count: int) -> dict[str, object]:
    user = get_user_model().objects.get(username=username)
    conversation = apps.get_model(app, "Conversation")
    message = apps.get_model(app, "Message")
    c = conversation.objects.create(user=user, title="Ten thousand messages")
    rows = []
    for i in range(count):
        agent = i % 2 == 1
        rows.append(
            message(
                conversation=c,
                source="agent" if agent else "user",
                text=ANSWER if agent else f"Question number {i}: how do I set this up?",
                complete=True,
            )
        )
    message.objects.bulk_create(rows, batch_size=2000)
    return {"conversation": str(c.pk)}


def page(app: str, username: str, cid: str, pages: int, limit: int) -> dict[str, object]:
    actions = __import__(f"{app}.actions", fromlist=["message_history"])
    user = get_user_model().objects.get(username=username)
    before = None
    times = []
    for _ in range(pages):
        start = time.perf_counter()
        rows = actions.message_history(user, cid, before=before, limit=limit)
        times.append((time.perf_counter() - start) * 1000)
        if not rows:
            break
        before = rows[-1].pk
    return {"page_ms": times}


if __name__ == "__main__":
    command, app_label, *rest = sys.argv[1:]
    if command == "users":
        out = users(app_label, int(rest[0]), rest[1])
    elif command == "long":
        out = long(app_label, rest[0], int(rest[1]))
    else:
        out = page(app_label, rest[0], rest[1], int(rest[2]), int(rest[3]))
    print("BENCH-JSON " + json.dumps(out))
