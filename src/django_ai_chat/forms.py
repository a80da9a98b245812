"""What a person may post: a message's text and a conversation's title, validated once.

The generated actions validate through `clean_message_text` and `clean_title`, and the views
through `MessageForm` and `RenameForm`, so a script calling an action and a browser posting a form
get the same errors (same messages, same codes).

Example:
    ```python
    form = MessageForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors["text"][0])
    actions.create_message(request.user, text=form.cleaned_data["text"])
    ```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from django_ai_chat.attachments import Upload, read_upload
from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.models import FEEDBACK_NOTE_MAX_LENGTH, TITLE_MAX_LENGTH, AbstractFeedback

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

__all__ = [
    "FeedbackForm",
    "MessageForm",
    "RenameForm",
    "clean_attachments",
    "clean_feedback_note",
    "clean_message_text",
    "clean_model_choice",
    "clean_title",
]


def clean_message_text(text: Any, *, allow_blank: bool = False) -> str:
    """`text` as a user message stores it: unchanged (never trimmed), or a `ValidationError`.

    `allow_blank`: a message with files attached may have no text (then `""`).

    Raises:
        ValidationError: Blank (`code="blank"`), holds a NUL character (`"null_characters"`:
            PostgreSQL cannot store it) or is longer than `AI_CHAT_MAX_MESSAGE_LENGTH`
            (`"max_length"`).
    """
    if allow_blank and (text is None or (isinstance(text, str) and not text.strip())):
        return ""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(_("Message cannot be empty"), code="blank")
    if "\x00" in text:
        # A person never types it, a script might.
        raise ValidationError(_("Message cannot contain NUL characters."), code="null_characters")
    limit = ai_chat_settings.MAX_MESSAGE_LENGTH
    if len(text) > limit:
        raise ValidationError(
            _("Message is too long (%(length)s characters; the limit is %(limit)s).")
            % {"length": len(text), "limit": limit},
            code="max_length",
        )
    return text


def clean_title(text: Any) -> str:
    """A title a person chose, stripped of surrounding whitespace, or a `ValidationError`.

    Raises:
        ValidationError: Blank (`code="blank"`), holds a NUL character (`"null_characters"`) or
            is longer than `TITLE_MAX_LENGTH` (`"max_length"`).
    """
    title = text.strip() if isinstance(text, str) else ""
    if not title:
        raise ValidationError(_("Title cannot be empty."), code="blank")
    if "\x00" in title:
        raise ValidationError(_("Title cannot contain NUL characters."), code="null_characters")
    if len(title) > TITLE_MAX_LENGTH:
        raise ValidationError(
            _("Title is too long (%(length)s characters; the limit is %(limit)s).")
            % {"length": len(title), "limit": TITLE_MAX_LENGTH},
            code="max_length",
        )
    return title


def clean_attachments(files: Sequence[UploadedFile[bytes] | Upload | None]) -> list[Upload]:
    """The files attached to one message, each checked (`attachments.read_upload`), in order.

    An `Upload` (checked already, e.g. by `MessageForm`) is kept as it is; it still counts.

    Raises:
        ValidationError: More than `AI_CHAT_MAX_ATTACHMENTS` (`code="too_many"`), or one of
            them too big, of a type not accepted, or unreadable (its message names the file).
    """
    present = [f for f in files if f is not None]
    limit = int(ai_chat_settings.MAX_ATTACHMENTS)
    if len(present) > limit:
        if limit <= 0:
            raise ValidationError(_("Files cannot be attached here."), code="too_many")
        raise ValidationError(
            _("Too many files (%(count)s): attach at most %(limit)s to one message.")
            % {"count": len(present), "limit": limit},
            code="too_many",
        )
    return [file if isinstance(file, Upload) else read_upload(file) for file in present]


def clean_model_choice(value: Any, choices: Sequence[tuple[str, str]]) -> str:
    """`value` if it is one of the models in `choices` (`(model, label)` pairs), or `""` if blank.

    Raises:
        ValidationError: Not one of them (`code="invalid_choice"`), naming the allowed labels.
    """
    model = value.strip() if isinstance(value, str) else ""
    if not model:
        return ""
    if model not in {choice for choice, _ in choices}:
        allowed = ", ".join(label for _, label in choices)
        raise ValidationError(
            _("Model %(model)s is not available here; choose one of: %(allowed)s.")
            % {"model": repr(model), "allowed": allowed},
            code="invalid_choice",
        )
    return model


def clean_feedback_note(text: Any) -> str:
    """A note left with a rating, stripped (`""` when there is none), or a `ValidationError`.

    Raises:
        ValidationError: Holds a NUL character (`"null_characters"`) or is longer than
            `FEEDBACK_NOTE_MAX_LENGTH` (`"max_length"`).
    """
    note = text.strip() if isinstance(text, str) else ""
    if "\x00" in note:
        raise ValidationError(_("The note cannot contain NUL characters."), code="null_characters")
    if len(note) > FEEDBACK_NOTE_MAX_LENGTH:
        raise ValidationError(
            _("The note is too long (%(length)s characters; the limit is %(limit)s).")
            % {"length": len(note), "limit": FEEDBACK_NOTE_MAX_LENGTH},
            code="max_length",
        )
    return note


class _CleanedField(forms.CharField):
    """A text field validated by one function only (its messages and codes, nothing added)."""

    def __init__(self, cleaner: Callable[[Any], str], **kwargs: Any) -> None:
        super().__init__(strip=False, **kwargs)
        self.cleaner = cleaner

    def clean(self, value: Any) -> str:
        return self.cleaner(self.to_python(value))


class _MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class _AttachmentsField(forms.FileField):
    """Any number of files under one name, validated by `clean_attachments` only."""

    widget = _MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Upload]:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return clean_attachments(files)


class MessageForm(forms.Form):
    """A user message: `text`, validated by `clean_message_text` (kept exactly as typed).

    `files` (the form's second argument, `request.FILES`) under the name `attachments`: checked
    by `clean_attachments`; `cleaned_data["attachments"]` is a list of `attachments.Upload`. With
    files attached the text may be blank.

    With `models` (the `(model, label)` pairs a person may choose, `Responder.get_models()`),
    also `model`: blank keeps the conversation's, anything else must be one of them
    (`clean_model_choice`).
    """

    text = _CleanedField(clean_message_text, widget=forms.Textarea, required=False)
    attachments = _AttachmentsField(required=False)

    def __init__(
        self, *args: Any, models: Sequence[tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if models is not None:
            choices = list(models)
            self.fields["model"] = _CleanedField(
                lambda value: clean_model_choice(value, choices), required=False
            )

    def clean(self) -> dict[str, Any]:
        """Blank text is fine when files are attached (and only then)."""
        cleaned = super().clean() or {}
        widget = self.fields["attachments"].widget
        sent = widget.value_from_datadict(self.data, self.files, self.add_prefix("attachments"))
        if self.has_error("text", code="blank") and sent:
            del self.errors["text"]
            cleaned["text"] = ""
        return cleaned


class RenameForm(forms.Form):
    """A conversation's new title: `title`, validated by `clean_title` (stripped)."""

    title = _CleanedField(clean_title, max_length=TITLE_MAX_LENGTH)


class FeedbackForm(forms.Form):
    """A rating of an answer: `rating` (`"up"`, `"down"`, or `""` to remove it) and a `note`."""

    rating = forms.ChoiceField(
        choices=[("", _lazy("No rating")), *AbstractFeedback.Rating.choices],
        required=False,
        error_messages={
            "invalid_choice": _lazy("Unknown rating %(value)r: choose thumbs up or thumbs down.")
        },
    )
    note = _CleanedField(clean_feedback_note, required=False)
