"""Translations of the chat's user interface: the catalog chat.js reads.

The runtime ships `locale/<language>/LC_MESSAGES/django.po` (and the compiled `.mo`) for every
msgid of its templates, of the generated templates, of chat.js and of its runtime messages, so
`pip install -U django-ai-chat` updates the translations of apps generated earlier too. Django
finds them as it finds any installed app's, after the project's `LOCALE_PATHS` (a project may
override a translation there).

chat.js shows its strings through `gettext` / `ngettext` / `interpolate`. Its catalog is not a
`JavaScriptCatalog` URL but a JSON script the chat's HTML carries (`{% ai_chat_i18n %}`): an
embedded component then works on any host page without a route of its own and without meeting
the host's own `django.gettext`, and the strings follow the request's active language like the
rest of the page. The msgids are read from chat.js itself (double-quoted literals in
`gettext("…")` and `ngettext("…", "…", n)` calls), so the file stays their one source.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Final

from django.utils import translation
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import trans_real

__all__ = ["CHAT_JS", "LOCALE_DIR", "catalog_script", "js_catalog", "js_messages"]

CHAT_JS: Final = Path(__file__).parent / "static" / "django_ai_chat" / "chat.js"
"""The shipped chat.js, the source of the JavaScript msgids."""

LOCALE_DIR: Final = Path(__file__).parent / "locale"
"""The runtime's translations (`<language>/LC_MESSAGES/django.po` and `.mo`)."""

_LITERAL = r'"(?:[^"\\\n]|\\.)*"'
_CALL = re.compile(rf"\b(n?gettext)\(\s*({_LITERAL})(?:\s*,\s*({_LITERAL}))?")


@functools.cache
def js_messages(source: Path = CHAT_JS) -> tuple[tuple[str, str | None], ...]:
    """The msgids of a script's `gettext` / `ngettext` calls, in order, each once.

    Args:
        source: The script (chat.js by default).

    Returns:
        `(msgid, plural)` pairs; `plural` is `None` for a `gettext` call.
    """
    found: dict[str, str | None] = {}
    for name, singular, plural in _CALL.findall(source.read_text(encoding="utf-8")):
        # A double-quoted JavaScript literal without template syntax reads as a JSON string.
        msgid = json.loads(singular)
        found.setdefault(msgid, json.loads(plural) if name == "ngettext" and plural else None)
    return tuple(found.items())


def js_catalog(
    language: str | None = None, *, source: Path = CHAT_JS
) -> dict[str, str | list[str]]:
    """chat.js's msgids translated into `language` (default: the active one).

    Args:
        language: A language code such as `"fr"`; `None` for the active language.
        source: The script whose msgids to translate (chat.js by default).

    Returns:
        msgid → translation (a list of the plural forms for an `ngettext` msgid), only the
        msgids that have a translation: chat.js shows the others as written.
    """
    language = language or translation.get_language() or "en"
    return dict(_catalog(language, source))


@functools.lru_cache(maxsize=64)
def _catalog(language: str, source: Path) -> tuple[tuple[str, str | list[str]], ...]:
    entries: list[tuple[str, str | list[str]]] = []
    with translation.override(language):
        for msgid, plural in js_messages(source):
            if plural is None:
                text = translation.gettext(msgid)
                if text != msgid:
                    entries.append((msgid, text))
                continue
            # The language's forms in gettext's order: each form's own count is unknown here,
            # so probe counts until every form has shown up (the same rule picks them in JS).
            forms: dict[int, str] = {}
            for count in (1, 2, 5, 0, 11, 21, 22, 25, 101, 102):
                forms.setdefault(_plural_index(count), translation.ngettext(msgid, plural, count))
            ordered = [forms[i] for i in sorted(forms)]
            if ordered != [msgid, plural]:
                entries.append((msgid, ordered))
    return tuple(entries)


def _plural_index(count: int) -> int:
    # The active catalog's plural rule, as its .mo header gives it.
    active = trans_real.translation(translation.get_language())
    plural = getattr(active, "plural", None)
    return int(plural(count)) if plural else int(count != 1)


def catalog_script() -> SafeString:
    """The `<script type="application/json" data-chat-i18n>` chat.js reads its catalog from.

    Returns:
        Safe HTML: the active language and `js_catalog()`, escaped as `json_script` does.
    """
    language = translation.get_language() or "en"
    payload = json.dumps(
        {"language": language, "catalog": js_catalog(language)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # json_script's escaping, without its id: a page may hold several chats.
    escaped = payload.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")
    return format_html(
        '<script type="application/json" data-chat-i18n>{}</script>', mark_safe(escaped)
    )
