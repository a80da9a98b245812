"""Translations: the shipped catalogs are complete and compiled, chat.js gets its catalog.

The completeness checks read the same sources as `python -m django_ai_chat.dev.messages`
(templates of the generator and the runtime, the runtime's and the generated Python, chat.js).
"""

from __future__ import annotations

import gettext
import json
import re

import pytest
from django.template import Context, Template
from django.utils import translation

from django_ai_chat import i18n
from django_ai_chat.dev import messages

LANGUAGES = sorted(messages.LANGUAGES)


@pytest.fixture(scope="module")
def msgids() -> dict[str, messages.Entry]:
    return messages.extract()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_msgid_has_a_translation(language, msgids):
    po = messages.PACKAGE / "locale" / language / "LC_MESSAGES" / "django.po"
    _, entries = messages.parse_po(po.read_text(encoding="utf-8"))
    missing = [key for key in msgids if key not in entries or not entries[key].translated]
    assert not missing, (
        f"untranslated in {language}: {missing}; add them to {po} "
        "(`python -m django_ai_chat.dev.messages` lists them)"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalog_matches_its_po(language, msgids):
    po = messages.PACKAGE / "locale" / language / "LC_MESSAGES" / "django.po"
    header, entries = messages.parse_po(po.read_text(encoding="utf-8"))
    assert set(entries) == set(msgids), "stale .po: run `python -m django_ai_chat.dev.messages`"
    expected = messages.compile_mo(header, entries.values())
    assert po.with_suffix(".mo").read_bytes() == expected, (
        "stale .mo: run `python -m django_ai_chat.dev.messages`"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_survive_translation(language):
    po = messages.PACKAGE / "locale" / language / "LC_MESSAGES" / "django.po"
    _, entries = messages.parse_po(po.read_text(encoding="utf-8"))
    placeholder = re.compile(r"%\(\w+\)[sd]|%[sd]")
    for entry in entries.values():
        wanted = sorted(placeholder.findall(entry.msgid))
        for form in entry.msgstr:
            # A singular form may say "one" instead of its count (French "une minute").
            found = sorted(placeholder.findall(form))
            assert found == wanted or (entry.plural and set(found) <= set(wanted)), (
                f"{language}: {entry.msgid!r} -> {form!r}"
            )


def test_stdlib_reads_the_compiled_catalog():
    mo = messages.PACKAGE / "locale" / "fr" / "LC_MESSAGES" / "django.mo"
    with mo.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    assert catalog.gettext("Copy") == "Copier"
    assert catalog.plural(0) == 0 and catalog.plural(2) == 1


def test_js_messages_are_read_from_chat_js():
    found = dict(i18n.js_messages())
    assert "Copy" in found and "Connection lost. Reconnecting…" in found
    # Every call of the helper in chat.js has a literal msgid the server can find.
    source = i18n.CHAT_JS.read_text(encoding="utf-8")
    calls = re.findall(r"(?<!function )\bn?gettext\(\s*(.{0,30})", source)
    assert calls and all(call.startswith('"') for call in calls), calls


def test_js_catalog_follows_the_active_language(settings):
    with translation.override("fr"):
        catalog = i18n.js_catalog()
    assert catalog["Copy"] == "Copier"
    with translation.override("de"):
        assert i18n.js_catalog()["Copied"] == "Kopiert"
    with translation.override("en"):
        assert "Copy" not in i18n.js_catalog()  # chat.js shows the msgid as written


def test_catalog_tag_renders_escaped_json():
    template = Template("{% load ai_chat %}{% ai_chat_i18n %}")
    with translation.override("fr"):
        html = template.render(Context())
    match = re.fullmatch(r'<script type="application/json" data-chat-i18n>(.*)</script>', html)
    assert match, html
    assert "<" not in match.group(1)
    data = json.loads(match.group(1))
    assert data["language"] == "fr"
    assert data["catalog"]["Sign in again"] == "Reconnectez-vous"
