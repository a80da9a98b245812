"""Test doubles for the LLM provider, shipped so generated apps can test offline.

* `ScriptedLLM`: a pydantic-ai model playing a script of turns (text deltas and tool calls).
* `register_model` / `unregister_model`: name models for `"test:<name>"` model strings (the
  registry lives in `django_ai_chat.llm`, which never imports this kit).
* `DemoModel`: the offline `"demo:"` model (a Markdown answer, streamed at a human pace).
* `FakeOpenAIServer`: an OpenAI-compatible chat-completions server over real HTTP + SSE; also
  `python -m django_ai_chat.testing --port 8900 --ttft 0.2 --tps 50 --tokens 100`
  (`FakeOpenAIApp` is its ASGI app, to serve or wrap yourself).
* `block_real_llm_requests()`: makes HTTP requests to non-loopback hosts fail (the pytest fixture
  lives in `django_ai_chat.pytest_plugin`).
* `sample_png()`, `sample_pdf(text)`: small real files for attachment tests.
* `make_user(name)`: a user of the project's user model, whatever its username and required
  fields.
"""

from __future__ import annotations

from django_ai_chat.dev.demo_model import DemoModel
from django_ai_chat.llm import register_model, registered_model, unregister_model
from django_ai_chat.testing._fake_openai import FakeOpenAIApp, FakeOpenAIServer, emit_schedule
from django_ai_chat.testing._files import sample_pdf, sample_png
from django_ai_chat.testing._llm_guard import RealLLMRequestBlocked, block_real_llm_requests
from django_ai_chat.testing._scripted import (
    ReportedUsage,
    ScriptedLLM,
    ScriptExhausted,
    Thinking,
    ToolCall,
    Turn,
)
from django_ai_chat.testing._users import make_user

__all__ = [
    "DemoModel",
    "FakeOpenAIApp",
    "FakeOpenAIServer",
    "RealLLMRequestBlocked",
    "ReportedUsage",
    "ScriptExhausted",
    "ScriptedLLM",
    "Thinking",
    "ToolCall",
    "Turn",
    "block_real_llm_requests",
    "emit_schedule",
    "make_user",
    "register_model",
    "registered_model",
    "sample_pdf",
    "sample_png",
    "unregister_model",
]
