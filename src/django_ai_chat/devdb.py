"""Moved to `django_ai_chat.dev.devdb` (developer tooling); this path keeps old imports working."""

from __future__ import annotations

from django_ai_chat.dev.devdb import PostgresNotFound, ThrowawayPostgres, find_bin_dir, start

__all__ = ["PostgresNotFound", "ThrowawayPostgres", "find_bin_dir", "start"]
