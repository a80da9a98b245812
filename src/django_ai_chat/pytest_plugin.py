"""Moved to `django_ai_chat.testing.pytest_plugin`; this path keeps old `pytest_plugins` working."""

from __future__ import annotations

from django_ai_chat.testing.pytest_plugin import no_real_llm_requests, scripted_llm

__all__ = ["no_real_llm_requests", "scripted_llm"]
