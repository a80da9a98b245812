"""Validation of what a person posts: the same messages and codes for actions and forms."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from django_ai_chat.forms import (
    FeedbackForm,
    MessageForm,
    RenameForm,
    clean_feedback_note,
    clean_message_text,
    clean_model_choice,
    clean_title,
)
from django_ai_chat.models import FEEDBACK_NOTE_MAX_LENGTH, TITLE_MAX_LENGTH


def code_of(call: object, value: object) -> tuple[str | None, str]:
    with pytest.raises(ValidationError) as raised:
        call(value)  # type: ignore[operator]
    return raised.value.code, raised.value.messages[0]


def test_message_text_is_kept_exactly_as_typed() -> None:
    assert clean_message_text("  Hello\n") == "  Hello\n"


@pytest.mark.parametrize("text", ["", "   ", "\n\t", None, 3])
def test_blank_message(text: object) -> None:
    assert code_of(clean_message_text, text) == ("blank", "Message cannot be empty")


def test_message_with_nul() -> None:
    assert code_of(clean_message_text, "a\x00b") == (
        "null_characters",
        "Message cannot contain NUL characters.",
    )


@override_settings(AI_CHAT_MAX_MESSAGE_LENGTH=10)
def test_too_long_message_names_the_limit() -> None:
    assert clean_message_text("x" * 10) == "x" * 10
    assert code_of(clean_message_text, "x" * 11) == (
        "max_length",
        "Message is too long (11 characters; the limit is 10).",
    )


def test_title_is_stripped() -> None:
    assert clean_title("  Plans  ") == "Plans"


@pytest.mark.parametrize(
    ("title", "code"),
    [(" ", "blank"), (None, "blank"), ("Pla\x00ns", "null_characters")],
)
def test_invalid_titles(title: object, code: str) -> None:
    assert code_of(clean_title, title)[0] == code


def test_too_long_title() -> None:
    assert clean_title("x" * TITLE_MAX_LENGTH) == "x" * TITLE_MAX_LENGTH
    too_long = "x" * (TITLE_MAX_LENGTH + 1)
    assert code_of(clean_title, too_long) == (
        "max_length",
        f"Title is too long ({TITLE_MAX_LENGTH + 1} characters; the limit is {TITLE_MAX_LENGTH}).",
    )


def test_forms_validate_with_the_same_functions() -> None:
    form = MessageForm({"text": "  Hi  "})
    assert form.is_valid() and form.cleaned_data["text"] == "  Hi  "
    form = MessageForm({"text": "Hi\x00"})
    assert not form.is_valid()
    assert form.errors.as_data()["text"][0].code == "null_characters"
    assert not MessageForm({}).is_valid()

    rename = RenameForm({"title": " Trip "})
    assert rename.is_valid() and rename.cleaned_data["title"] == "Trip"
    rename = RenameForm({"title": ""})
    assert not rename.is_valid()
    assert rename.errors["title"] == ["Title cannot be empty."]
    assert f'maxlength="{TITLE_MAX_LENGTH}"' in str(rename["title"])


def test_feedback_form_takes_a_rating_or_none_and_strips_the_note() -> None:
    form = FeedbackForm({"rating": "down", "note": "  Wrong.  "})
    assert form.is_valid() and form.cleaned_data == {"rating": "down", "note": "Wrong."}
    assert FeedbackForm({}).is_valid()  # no rating: take it back

    unknown = FeedbackForm({"rating": "meh"})
    assert not unknown.is_valid()
    assert unknown.errors["rating"] == ["Unknown rating 'meh': choose thumbs up or thumbs down."]
    long_note = FeedbackForm({"rating": "up", "note": "x" * (FEEDBACK_NOTE_MAX_LENGTH + 1)})
    assert not long_note.is_valid() and long_note.has_error("note", code="max_length")
    with pytest.raises(ValidationError):
        clean_feedback_note("a\x00b")


def test_message_form_checks_the_model_against_the_choices() -> None:
    choices = [("openai:gpt-4o", "GPT-4o"), ("openai:gpt-4o-mini", "GPT-4o mini")]
    chosen = MessageForm({"text": "Hi", "model": "openai:gpt-4o-mini"}, models=choices)
    assert chosen.is_valid() and chosen.cleaned_data["model"] == "openai:gpt-4o-mini"
    assert MessageForm({"text": "Hi"}, models=choices).is_valid()  # blank: the conversation's

    refused = MessageForm({"text": "Hi", "model": "openai:o3"}, models=choices)
    assert not refused.is_valid()
    assert refused.errors["model"] == [
        "Model 'openai:o3' is not available here; choose one of: GPT-4o, GPT-4o mini."
    ]
    assert "model" not in MessageForm({"text": "Hi", "model": "x"}).fields  # no choices given
    assert clean_model_choice(" ", choices) == ""
