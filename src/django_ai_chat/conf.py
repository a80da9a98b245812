"""Typed access to the `AI_CHAT_*` settings, with their defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings

__all__ = ["Settings", "ai_chat_settings"]


class Settings:
    """Defaults for every `AI_CHAT_<NAME>` setting; `ai_chat_settings.NAME` reads the live value."""

    MODEL: str | None = None
    """Model string (`provider:model`) overriding every responder's `model`; `None`: theirs."""

    MODELS: Any = None
    """Models a person may choose per conversation (the composer's picker, shown for 2 or more).

    `{"openai:gpt-4o": "GPT-4o", "anthropic:claude-sonnet-4-6": "Claude Sonnet"}`, or a list
    of model strings or `(model, label)` pairs; `None`: only the responder's model (no picker).
    A conversation's choice is checked against this list when it is made and when it is used.
    """

    HISTORY_TOKEN_BUDGET: int | None = 16_000
    """Estimated tokens (characters / 4) of history sent with a question; `None`: no budget.

    Over it (or over the responder's `history_limit` messages), the older turns are summarised
    by a job (`<app>.summarize`) and the summary is sent in their place; the most recent turns,
    up to half the budget, stay verbatim. `None` turns summaries off: the history is then the
    newest `history_limit` messages.
    """

    MCP_SERVERS: Mapping[str, Mapping[str, Any]] = {}
    """MCP servers whose tools the model may call as the user (see `django_ai_chat.tools.mcp`).

    Name → options: `command`/`args`/`env` (stdio) or `url`/`headers` (streamable HTTP), and
    `permission`, `tools` (per tool `permission`, `approval`), `approval`, `include`, `prefix`,
    `timeout`. Needs `pip install "django-ai-chat[mcp]"`.
    """

    MAX_ROUNDS: int = 10
    """Model requests per answer before the loop stops with a `max_rounds` error."""

    FIRST_TOKEN_TIMEOUT: float | None = 90.0
    """Seconds a model request may take to send its first text or tool call; `None`: no bound.

    Reasoning models think before they speak: raise it for them rather than disable it.
    """

    IDLE_TIMEOUT: float | None = 60.0
    """Seconds a streaming reply may go silent between two pieces of text; `None`: no bound."""

    ANSWER_TIMEOUT: float | None = 600.0
    """Seconds one answer may take in all, tool calls included; `None`: no bound."""

    TOOL_APPROVAL: Mapping[str, bool] = {}
    """Tool name -> whether its calls wait for the user's approval, over the tool's own choice.

    By default the write tools of `ModelTools` (create, update, destroy) and `@tool(approval=
    True)` ask; e.g. `{"destroy_note": True, "create_note": False}`.
    """

    APPROVAL_EXPIRES_AFTER: float = 86_400.0
    """Seconds a tool call waits for approval before it expires (the answer then says so)."""

    PUBSUB_URL: str | None = None
    """`None`: Postgres LISTEN/NOTIFY on the default database. `redis://…`: Redis pub/sub."""

    OPENAI_BASE_URL: str | None = None
    """Base URL of an OpenAI-compatible server; falls back to the `OPENAI_BASE_URL` env var."""

    OLLAMA_BASE_URL: str = "http://localhost:11434/v1"
    """Where `ollama:` model strings are served."""

    FLUSH_INTERVAL: float | None = None
    """Seconds between safety flushes of a streaming answer to the database; `None`: none.

    By default an answer's row is written when it starts, when a browser catches up (`sync`,
    on every SSE (re)connect), on tool calls and results, on stop and at the end: the same
    number of writes for 20 tokens or 4,000, whatever the duration. Live text reaches browsers
    through pub/sub, not the row. The trade-off: when a worker process dies mid-answer (killed,
    machine lost) the text streamed since the last of those writes is lost with it; the rescue
    job still retries the answer (which starts over) or, after the last attempt, completes it
    with an error, so nothing stays "Responding…". Set a number of seconds (e.g. `5.0`) to
    bound that loss, at the cost of one more write per interval of streaming.
    """

    SHARE_REQUIRES_LOGIN: bool = True
    """Whether only signed-in people may open a conversation's share link (default: yes).

    `False` makes share links public: anyone who has one reads the snapshot, as on the peers'
    public share pages. Ignored in no-user mode (nobody can sign in there).
    """

    MAX_MESSAGE_LENGTH: int = 20_000
    """Longest user message accepted, in characters."""

    MAX_ATTACHMENTS: int = 5
    """Most files attached to one message; `0` turns attachments off (no button)."""

    MAX_ATTACHMENT_SIZE: int = 10 * 1024 * 1024
    """Largest attached file, in bytes (10 MiB). Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` does not
    count files; a proxy in front may have its own limit (nginx: `client_max_body_size`)."""

    ATTACHMENT_TYPES: tuple[str, ...] = (
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/gif",
        "application/pdf",
        "text/plain",
        "text/markdown",
        "text/csv",
    )
    """Media types a person may attach (a subset of these; each is checked on the content)."""

    ATTACHMENT_STORAGE: str | None = None
    """Alias in `settings.STORAGES` where attachments are kept; `None`: `"default"`."""

    ATTACHMENT_TEXT_LIMIT: int = 50_000
    """Characters of a file's text sent to the model (PDFs read as text, text files)."""

    TOOLS_EXTRACTOR: str | None = None
    """Dotted path of a callable replacing `django_ai_chat.ui.extract_tools` in the UI."""

    DEMO_DELAY: float = 0.03
    """Seconds between the words the offline demo model (`demo:`) streams."""

    STALLED_AFTER: float = 30.0
    """Seconds without a heartbeat after which a job worker counts as dead.

    Workers send a heartbeat every `STALLED_AFTER / 3` seconds; the periodic rescue
    (`RESCUE_CRON`) retries the jobs of a dead worker, or ends an answer that stalled twice.
    """

    RESCUE_CRON: str = "* * * * * */15"
    """How often the stalled-job rescue runs (cron; the 6th field is seconds)."""

    PRICES: Mapping[str, Mapping[str, Any]] = {}
    """Prices per model overriding the `genai-prices` table (see `django_ai_chat.pricing`).

    Keys: `"<provider>:<model>"` or `"<model>"` as the provider names it; values: US dollars per
    million tokens under genai-prices' `ModelPrice` keys (`input_mtok`, `output_mtok`,
    `cache_read_mtok`, `cache_write_mtok`, ...).
    """

    MESSAGE_LIMIT: tuple[int, float] | None = None
    """`(messages, seconds)`: most messages a user may send per rolling window; `None`: no limit.

    See `django_ai_chat.limits` (all limits: checked before an answer is queued, HTTP 429).
    """

    DAILY_TOKEN_LIMIT: int | None = None
    """Most input + output tokens of a user's answers over the last 24 hours; `None`: no limit."""

    ANSWER_LIMIT: int | None = None
    """Most questions of a user waiting for or being answered at once; `None`: no limit."""

    STREAM_LIMIT: int | None = None
    """Most live streams (open chats) of a user at once, per web process; `None`: no limit."""

    LIMITS_EXEMPT_STAFF: bool = True
    """Whether staff users (`is_staff`) are exempt from every limit."""

    def __getattribute__(self, name: str) -> Any:
        if name.isupper():
            return getattr(django_settings, f"AI_CHAT_{name}", object.__getattribute__(self, name))
        return object.__getattribute__(self, name)


ai_chat_settings = Settings()
