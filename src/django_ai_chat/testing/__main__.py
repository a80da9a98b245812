"""`python -m django_ai_chat.testing --port 8900 --ttft 0.2 --tps 50`: the fake OpenAI server."""

from __future__ import annotations

from django_ai_chat.testing._fake_openai import main

main()
