"""django-ai-chat: a complete AI chat feature for Django projects, and the runtime it imports."""

from __future__ import annotations

__version__ = "0.1.0"
