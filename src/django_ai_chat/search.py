"""Full-text search over an actor's conversations: their titles and messages, with snippets.

PostgreSQL's own text search (`SearchVector` / `websearch_to_tsquery`), so that a GIN index on
the same expression answers it: the generated `models.py` declares
`GinIndex(SearchVector("text", config=SEARCH_CONFIG))` on messages and the same on titles, and
`search_config` on the conversation model names the configuration both use (its stemming and
stop words: `"english"`, `"french"`, `"simple"` for none). Changing it means a migration of
those indexes.

Every hit is one of the actor's conversations (`for_actor` on both querysets): another user's
rows never appear, whatever the query. Snippets come from `SearchHeadline`; the text around
the matches is escaped here and only the `<mark>` elements are ours, so a message holding HTML
shows as text.

Example:
    ```python
    hits = search_conversations(Message, request.user, "invoice march")
    for hit in hits:
        print(hit.conversation.pk, hit.title, hit.snippet)  # title and snippet: safe HTML
    ```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector
from django.db.models import Subquery
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from django_ai_chat.models import AbstractConversation, AbstractMessage, _conversation_model

__all__ = ["QUERY_MAX_LENGTH", "SearchHit", "search_conversations"]

QUERY_MAX_LENGTH: Final = 200
"""Longest query searched, in characters (the rest is ignored)."""

# Private-use characters mark the matches in PostgreSQL's headline: the text between them is
# escaped like the rest, and a message that contains one gets a misplaced highlight, never HTML.
_START: Final = "\ue000"
_STOP: Final = "\ue001"
_CONVERSATION: str = "conversation"  # declared by the concrete message model
_MARKS = re.compile(f"([{_START}{_STOP}])")


@dataclass(frozen=True)
class SearchHit:
    """One conversation that matches, best first.

    Attributes:
        conversation: The conversation (the actor's).
        title: Its title as safe HTML, the matched words in `<mark>` (escaped otherwise).
        snippet: An excerpt of its best matching message as safe HTML (`""` when only the title
            matched).
        message_id: That message's id (`None` when only the title matched).
        rank: PostgreSQL's `ts_rank` of the best match (higher is better).
    """

    conversation: AbstractConversation
    title: SafeString
    snippet: SafeString
    message_id: Any
    rank: float


def search_conversations(
    message_model: type[AbstractMessage],
    actor: Any,
    text: str,
    *,
    limit: int = 20,
    untitled: str = "Untitled conversation",
) -> list[SearchHit]:
    """The actor's conversations whose title or messages match `text`, best first.

    `text` is read as a web search (`websearch_to_tsquery`: words, `"a phrase"`, `-word`,
    `or`); blank text or only stop words find nothing. One hit per conversation: its title
    (highlighted when it matched) and the best matching message's snippet.

    Args:
        message_model: The app's concrete message model (its conversation model is the one its
            `conversation` foreign key points to).
        actor: Whose conversations are searched (`for_actor`).
        text: What the person typed.
        limit: Most hits returned.
        untitled: The title shown for a conversation without one.
    """
    text = text.strip()[:QUERY_MAX_LENGTH]
    if not text or limit <= 0:
        return []
    conversation_model = _conversation_model(message_model)
    config = conversation_model.search_config
    query = SearchQuery(text, search_type="websearch", config=config)

    in_text = SearchVector("text", config=config)
    matching = message_model.objects.for_actor(actor).annotate(search=in_text).filter(search=query)
    # The best message per conversation, then only those few get a headline (it reads the text).
    best = (
        matching.annotate(rank=SearchRank(in_text, query))
        .order_by("conversation_id", "-rank", "-id")
        .distinct("conversation_id")
        .values("id")
    )
    messages = (
        message_model.objects.filter(id__in=Subquery(best))
        .annotate(
            rank=SearchRank(in_text, query),
            headline=SearchHeadline(
                "text",
                query,
                config=config,
                start_sel=_START,
                stop_sel=_STOP,
                max_words=24,
                min_words=10,
            ),
        )
        .select_related(_CONVERSATION)
        .order_by("-rank", "-id")[:limit]
    )

    in_title = SearchVector("title", config=config)
    titles = (
        conversation_model.objects.for_actor(actor)
        .annotate(search=in_title)
        .filter(search=query)
        .annotate(
            rank=SearchRank(in_title, query),
            headline=SearchHeadline(
                "title", query, config=config, start_sel=_START, stop_sel=_STOP, highlight_all=True
            ),
        )
        .order_by("-rank", "-updated_at")[:limit]
    )

    hits: dict[Any, SearchHit] = {}
    for conversation in titles:
        hits[conversation.pk] = SearchHit(
            conversation=conversation,
            title=_highlighted(conversation.headline),
            snippet=SafeString(""),
            message_id=None,
            # A word of the title says more about a conversation than one in a long message.
            rank=2 * conversation.rank,
        )
    for message in messages:
        owner = message.conversation
        found = hits.get(owner.pk)
        hits[owner.pk] = SearchHit(
            conversation=found.conversation if found else owner,
            title=found.title if found else escape(owner.title or untitled),
            snippet=_highlighted(message.headline),
            message_id=message.pk,
            rank=max(found.rank if found else 0.0, message.rank),
        )
    ordered = sorted(
        hits.values(), key=lambda hit: (hit.rank, hit.conversation.updated_at), reverse=True
    )
    return ordered[:limit]


def _highlighted(headline: str) -> SafeString:
    """PostgreSQL's headline as HTML: every piece escaped, the matches wrapped in `<mark>`."""
    parts: list[str] = []
    marked = False
    # One line: a snippet of several paragraphs reads as one in the sidebar.
    for piece in _MARKS.split(" ".join((headline or "").split())):
        if piece == _START:
            marked = True
        elif piece == _STOP:
            marked = False
        elif piece:
            parts.append(format_html("<mark>{}</mark>", piece) if marked else escape(piece))
    return mark_safe("".join(parts))  # every piece above is escaped
