"""Translations: the shipped catalogs are complete and compiled, chat.js gets its catalog.

The completeness checks read the same sources as `python -m django_ai_chat.dev.messages`
(templates of the generator and the runtime, the runtime's and the generated Python, chat.js).
"""

from __future__ import annotations

import gettext
import json
import re
from html.parser import HTMLParser
from pathlib import Path

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


def test_js_plurals_come_as_the_languages_forms(tmp_path):
    script = tmp_path / "extra.js"
    script.write_text('ngettext("%(count)s token", "%(count)s tokens", n); gettext("Copy");')
    assert i18n.js_messages(script) == (
        ("%(count)s token", "%(count)s tokens"),
        ("Copy", None),
    )
    catalog = i18n.js_catalog("fr", source=script)
    assert catalog == {"%(count)s token": ["%(count)s jeton", "%(count)s jetons"], "Copy": "Copier"}
    assert i18n.js_catalog("en", source=script) == {}


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


# -- no user-visible text left untranslated in the templates -----------------------------------

_VISIBLE_ATTRIBUTES = {
    "aria-label",
    "aria-description",
    "aria-roledescription",
    "aria-valuetext",
    "placeholder",
    "title",
    "alt",
    "hx-confirm",
    "data-confirm",
}
_SKIPPED_ELEMENTS = {"script", "style", "svg", "code", "pre"}
_MARK = "\x00"


def _blank_template_syntax(source: str) -> str:
    # Comments go; translated blocks and every other tag or variable become a marker.
    source = re.sub(r"\{#.*?#\}|\[#.*?#\]", "", source, flags=re.S)
    source = re.sub(r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}", "", source, flags=re.S)
    source = re.sub(
        r"\{%\s*blocktrans(?:late)?\b.*?\{%\s*endblocktrans(?:late)?\s*%\}",
        _MARK,
        source,
        flags=re.S,
    )
    source = re.sub(r"\{%.*?%\}|\{\{.*?\}\}|\[\[.*?\]\]|\[%.*?%\]", _MARK, source, flags=re.S)
    # A tag whose name is computed (`<h{{ level }}>`) is still a tag.
    return re.sub(r"<(/?)([a-z]*)" + _MARK, r"<\1\2x", source)


class _Literals(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skipping: list[str] = []
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self.skipping.append(tag)
        for name, value in attrs:
            shown = name in _VISIBLE_ATTRIBUTES or (
                name == "value" and tag == "input" and ("type", "submit") in attrs
            )
            if shown and value and _words(value):
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self.skipping and _words(data):
            self.found.append(data.replace(_MARK, " ").strip())


def _words(text: str) -> bool:
    return bool(re.search(r"[^\W\d_]{2,}", text.replace(_MARK, " ")))


def _template_files() -> list[Path]:
    return messages._files(messages.PACKAGE, messages._TEMPLATE_GLOBS)


@pytest.mark.parametrize(
    "path", _template_files(), ids=lambda p: p.relative_to(messages.PACKAGE).as_posix()
)
def test_templates_translate_every_visible_text(path):
    parser = _Literals()
    parser.feed(_blank_template_syntax(path.read_text(encoding="utf-8")))
    assert not parser.found, (
        f"{path.name}: wrap these in {{% translate %}} / {{% blocktranslate %}}: {parser.found}"
    )


def test_the_lint_sees_literals():
    parser = _Literals()
    parser.feed(
        _blank_template_syntax(
            '<p>Hello {{ name }}</p><button aria-label="Close">{% translate "x" %}</button>'
            '<p>{% translate "Fine" %} {{ n }}</p><svg><text>ok</text></svg>'
        )
    )
    assert parser.found == ["Hello", "<button aria-label='Close'>"]


# -- runtime messages follow the active language ------------------------------------------------


# Errors a person reads (a form's, an action's): what the views show under the composer or a
# dialog. Raised with a literal (or an f-string) they stay English in every language. Matched on
# the text: the generator's `*.py-tpl` files hold Jinja, which no Python tokenizer reads.
_LITERAL_ERROR = re.compile(r"""\bValidationError\(\s*(?:[rRbBuU]?[fF]?[rR]?)(["'])""")
_PYTHON_SOURCES = ("**/*.py", "gen/**/*.py-tpl")


def _literal_errors(source: str) -> list[str]:
    """`ValidationError("…")` / `ValidationError(f"…")` calls: a message not passed to gettext."""
    return [
        f"line {source.count(chr(10), 0, match.start()) + 1}: "
        f"{source[match.start() : match.start() + 60]!r}"
        for match in _LITERAL_ERROR.finditer(source)
    ]


@pytest.mark.parametrize(
    "path",
    sorted(
        {
            path
            for pattern in _PYTHON_SOURCES
            for path in messages.PACKAGE.glob(pattern)
            if "/migrations/" not in path.as_posix() and "/tests/" not in path.as_posix()
        }
    ),
    ids=lambda path: path.relative_to(messages.PACKAGE).as_posix(),
)
def test_errors_a_person_reads_go_through_gettext(path):
    found = _literal_errors(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: wrap these messages in gettext (`_`): {found}"


def test_the_error_lint_sees_literals():
    source = (
        'raise ValidationError("Plain.", code="x")\n'
        'raise forms.ValidationError(f"{name!r} is bad.")\n'
        'raise ValidationError(_("Fine."))\n'
        "raise ValidationError(message)\n"
    )
    assert [line.split(":")[0] for line in _literal_errors(source)] == ["line 1", "line 2"]


def test_attachment_errors_are_translated():
    from django.core.exceptions import ValidationError
    from django.core.files.uploadedfile import SimpleUploadedFile

    from django_ai_chat.attachments import read_upload
    from django_ai_chat.forms import clean_attachments

    page = SimpleUploadedFile("page.html", b"<!doctype html><p>hi</p>", "text/html")
    with translation.override("fr"), pytest.raises(ValidationError) as wrong:
        read_upload(page)
    assert wrong.value.messages == [
        "'page.html' ne peut pas être joint : seulement images (PNG, JPEG, WebP, GIF), PDF, "
        "fichiers texte, Markdown ou CSV."
    ]
    broken = SimpleUploadedFile("broken.pdf", b"%PDF-1.4 nothing else", "application/pdf")
    with translation.override("de"), pytest.raises(ValidationError) as unreadable:
        read_upload(broken)
    assert unreadable.value.messages[0].startswith("'broken.pdf' konnte nicht als PDF gelesen")
    files = [SimpleUploadedFile(f"{n}.txt", b"hi", "text/plain") for n in range(9)]
    with translation.override("fr"), pytest.raises(ValidationError) as many:
        clean_attachments(files)
    assert many.value.messages[0].startswith("Trop de fichiers (9)")


def test_form_errors_are_translated():
    from django.core.exceptions import ValidationError

    from django_ai_chat.forms import clean_message_text, clean_title

    with translation.override("fr"), pytest.raises(ValidationError) as blank:
        clean_message_text("   ")
    assert blank.value.messages == ["Le message ne peut pas être vide"]
    with translation.override("de"), pytest.raises(ValidationError) as long:
        clean_title("x" * 500)
    assert long.value.messages[0].startswith("Der Titel ist zu lang (500 Zeichen;")


def test_limit_messages_are_translated_with_plurals_and_local_times():
    from datetime import UTC, datetime, timedelta

    from django.utils import timezone

    from django_ai_chat import limits

    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    with translation.override("fr"), timezone.override("UTC"):
        assert limits._duration(3600) == "1 heure"
        assert limits._duration(7200) == "2 heures"
        assert limits._when(now + timedelta(seconds=30), now) == "dans 30 secondes"
        assert limits._when(now + timedelta(hours=13), now) == "demain à 01:00"
    with translation.override("de"):
        assert limits._when(now + timedelta(minutes=1), now) == "in 1 Minute"
        assert limits._duration(2 * 86400) == "2 Tagen"
    with translation.override("en"):
        assert limits._when(now + timedelta(seconds=1), now) == "in 1 second"


def test_usage_is_said_in_the_active_language():
    from django_ai_chat.ui import UsageView

    with translation.override("de"):
        assert str(UsageView(tokens=1234)) == "1.234 Tokens"
    with translation.override("en"):
        assert str(UsageView(tokens=1)) == "1 token"


def test_stored_error_texts_are_msgids_of_the_catalog():
    from django_ai_chat.answers import Responder

    with translation.override("fr"):
        assert translation.gettext(Responder.error_text).startswith(
            "Une erreur s\u2019est produite"
        )
    # Stored as written: the class attribute itself is the English msgid.
    assert Responder.error_text.startswith("I hit an error")


def test_chat_js_shows_no_literal_text():
    # Text put on the page straight from a string literal, not through gettext.
    source = i18n.CHAT_JS.read_text(encoding="utf-8")
    shown = re.compile(
        r"""(?:\.(?:textContent|innerText|placeholder|title|ariaLabel)\s*=\s*"""
        r"""|setAttribute\(\s*"(?:aria-label|title|placeholder|aria-description)"\s*,\s*)"""
        r"""(?:["'`])[^"'`]*[A-Za-z]{2}"""
    )
    found = [m.group(0) for m in shown.finditer(source)]
    assert not found, f"chat.js: wrap these in gettext(): {found}"
