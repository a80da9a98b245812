"""Files people attach to their messages: what is accepted, where it is kept, what the model gets.

Accepted kinds (`AI_CHAT_ATTACHMENT_TYPES`, every one by default): images (PNG, JPEG, WebP,
GIF), PDF, and plain text, Markdown or CSV. The type is read from the content, never from the
name or the browser's claim alone: an image or a PDF must start with its format's signature,
and a text file must be a text extension holding UTF-8 without NUL bytes (an HTML page named
`notes.txt` is stored, and served, as plain text). PDF text is extracted with `pypdf` at upload,
so an unreadable PDF (damaged, encrypted) is refused then, with the message still in the box.

Files live in Django's storage API (`attachment_storage()`: `STORAGES[AI_CHAT_ATTACHMENT_STORAGE]`,
the default storage unless set), under names of our own (`ai_chat/attachments/<yyyy>/<mm>/<uuid>
.<ext>`): nothing a person typed becomes a path, and django-storages backends work unchanged.
They are read back through the storage too (`read_bytes`), never from a filesystem path.

The model gets an image or a PDF as the file itself (pydantic-ai's `BinaryContent`) where its
provider reads such files (`accepts_file`), else the text extracted from it, announced by a
header line naming the file; text files always go as text.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Final, cast

from django.core.exceptions import ValidationError
from django.core.files.storage import DefaultStorage, Storage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import empty
from django.utils.translation import gettext as _

from django_ai_chat.conf import ai_chat_settings

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

__all__ = [
    "DOCUMENT_TYPES",
    "IMAGE_TYPES",
    "TEXT_TYPES",
    "ChatFile",
    "Upload",
    "accepts_file",
    "attachment_storage",
    "attachment_upload_to",
    "format_size",
    "kind_of",
    "read_upload",
    "sniff",
]

logger = logging.getLogger(__name__)

IMAGE_TYPES: Final = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""Images a person may attach; served inline (never SVG: it can carry script)."""

DOCUMENT_TYPES: Final = ("application/pdf",)
"""Documents a person may attach; their text is extracted at upload."""

TEXT_TYPES: Final = ("text/plain", "text/markdown", "text/csv")
"""Text files a person may attach (by extension, checked to be UTF-8 text)."""

_TEXT_EXTENSIONS: Final = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
}
_EXTENSIONS: Final = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
}
_NAME_MAX_LENGTH: Final = 255


def sniff(head: bytes, name: str) -> str | None:
    """The media type `head` (a file's first bytes) says it is, or `None` for none we accept.

    `name` only tells text files apart (a text extension and UTF-8 text without NUL bytes).
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.lstrip(b"\r\n\t ")[:5] == b"%PDF-":
        return "application/pdf"
    text_type = _TEXT_EXTENSIONS.get(PurePath(name).suffix.lower())
    if text_type and b"\x00" not in head:
        try:
            # The head may cut a character in two: only a complete prefix must decode.
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.start < len(head) - 3:
                return None
        return text_type
    return None


def kind_of(media_type: str) -> str:
    """`"image"`, `"pdf"` or `"text"`: how the UI shows a file of `media_type`."""
    if media_type in IMAGE_TYPES:
        return "image"
    if media_type in DOCUMENT_TYPES:
        return "pdf"
    return "text"


def format_size(size: int) -> str:
    """`size` bytes as a person reads it: "512 B", "12.3 KB", "4.0 MB"."""
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} KB"
    return f"{size / 1_000_000:.1f} MB"


@dataclass(frozen=True)
class Upload:
    """An accepted upload, ready to store: its clean name, sniffed type, size and text.

    Attributes:
        file: The uploaded file (rewound).
        name: The name it was uploaded under, without any directory, at most 255 characters.
        media_type: What its content is (`sniff`), not what the browser said.
        size: Bytes.
        text: Its text (text files, PDFs), `""` for images.
        pages: Pages of a PDF, else `None`.
    """

    file: UploadedFile[bytes]
    name: str
    media_type: str
    size: int
    text: str
    pages: int | None = None


def read_upload(upload: UploadedFile[bytes]) -> Upload:
    """Check one uploaded file against the `AI_CHAT_ATTACHMENT_*` settings and read its text.

    Raises:
        ValidationError: Too big (`code="too_big"`), not an accepted type (`"wrong_type"`), an
            unreadable PDF (`"unreadable"`) or a text file that is not UTF-8 (`"unreadable"`).
    """
    name = _clean_name(upload.name or "file")
    size = int(upload.size or 0)
    limit = int(ai_chat_settings.MAX_ATTACHMENT_SIZE)
    if size > limit:
        raise ValidationError(
            _("%(name)s is too big (%(size)s; the limit is %(limit)s).")
            % {"name": repr(name), "size": format_size(size), "limit": format_size(limit)},
            code="too_big",
        )
    upload.seek(0)
    head = upload.read(2048)
    media_type = sniff(head, name)
    allowed = tuple(ai_chat_settings.ATTACHMENT_TYPES)
    if media_type is None or media_type not in allowed:
        raise _wrong_type(name, allowed)
    text, pages = "", None
    if media_type in DOCUMENT_TYPES:
        upload.seek(0)
        text, pages = _pdf_text(upload.read(), name)
    elif media_type in TEXT_TYPES:
        upload.seek(0)
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError(
                _("%(name)s is not UTF-8 text: save it as UTF-8 and attach it again.")
                % {"name": repr(name)},
                code="unreadable",
            ) from None
        if "\x00" in text:
            raise _wrong_type(name, allowed)
    upload.seek(0)
    return Upload(upload, name, media_type, size, text, pages)


def _pdf_text(data: bytes, name: str) -> tuple[str, int]:
    # Imported here: a project that never receives a PDF never pays for the import.
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    unreadable = ValidationError(
        _(
            "%(name)s could not be read as a PDF (damaged or password-protected): "
            "export it again, or attach it as text."
        )
        % {"name": repr(name)},
        code="unreadable",
    )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise unreadable
        pages = [page.extract_text() or "" for page in reader.pages]
    except ValidationError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        # pypdf raises more than its own errors on a damaged file.
        logger.info("Unreadable PDF %r: %s", name, error)
        raise unreadable from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    return text.replace("\x00", ""), len(pages)


def _clean_name(name: str) -> str:
    # Only the last part of whatever path a browser sends; no control characters.
    base = PurePath(name.replace("\\", "/")).name
    base = "".join(c for c in base if c.isprintable()).strip() or "file"
    if len(base) > _NAME_MAX_LENGTH:
        suffix = PurePath(base).suffix[:16]
        base = base[: _NAME_MAX_LENGTH - len(suffix)] + suffix
    return base


def _wrong_type(name: str, allowed: tuple[str, ...]) -> ValidationError:
    return ValidationError(
        _("%(name)s cannot be attached: %(accepted)s only.")
        % {"name": repr(name), "accepted": _accepted_list(allowed)},
        code="wrong_type",
    )


def _accepted_list(allowed: tuple[str, ...]) -> str:
    labels = []
    if any(t in allowed for t in IMAGE_TYPES):
        labels.append(_("images (PNG, JPEG, WebP, GIF)"))
    if any(t in allowed for t in DOCUMENT_TYPES):
        labels.append(_("PDF"))
    if any(t in allowed for t in TEXT_TYPES):
        labels.append(_("text, Markdown or CSV files"))
    return ", ".join(labels) or _("no files")


class _AttachmentStorage(DefaultStorage):
    """The storage of attachments, looked up when first used (again after `STORAGES` changes).

    Lazy so that a model field can name it at import time.
    """

    def _setup(self) -> None:
        self._wrapped = storages[ai_chat_settings.ATTACHMENT_STORAGE or "default"]


_storage = _AttachmentStorage()


@receiver(setting_changed)
def _reset_storage(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STORAGES", "AI_CHAT_ATTACHMENT_STORAGE"):
        _storage._wrapped = empty  # type: ignore[assignment]  # LazyObject's "unset"


def attachment_storage() -> Storage:
    """Where attachments are stored: `STORAGES[AI_CHAT_ATTACHMENT_STORAGE or "default"]`.

    A `FileField(storage=attachment_storage)` calls it; the storage itself is resolved lazily.
    """
    return cast(Storage, _storage)


def attachment_upload_to(instance: Any, filename: str) -> str:
    """The storage name of a new attachment: `ai_chat/attachments/<yyyy>/<mm>/<uuid>.<ext>`.

    Only the extension of the sniffed type survives from the upload (nothing a person typed
    becomes part of a path).
    """
    media_type = getattr(instance, "content_type", "") or ""
    extension = _EXTENSIONS.get(media_type) or mimetypes.guess_extension(media_type) or ""
    now = datetime.now(tz=UTC)
    return f"ai_chat/attachments/{now:%Y/%m}/{instance.pk}{extension}"


def accepts_file(model: str, media_type: str) -> bool:
    """Whether the provider of `model` (a model string) reads a `media_type` file itself.

    Images: every provider (vision models; a text-only one answers with an error). PDFs:
    Anthropic, Google, OpenAI's own API, and the demo and test models; OpenAI-compatible
    servers (a base URL set), Ollama and other prefixes get the PDF's text. Text files always go
    as text.
    """
    if media_type in IMAGE_TYPES:
        return True
    if media_type not in DOCUMENT_TYPES:
        return False
    provider = model.partition(":")[0].lower() if ":" in model else ""
    if provider in ("anthropic", "google", "gemini", "google-gla", "google-vertex", "test"):
        return True
    if provider == "openai":
        return not (ai_chat_settings.OPENAI_BASE_URL or os.environ.get("OPENAI_BASE_URL"))
    return False


@dataclass(frozen=True)
class ChatFile:
    """A file of a user turn, as `loop` sends it to the model.

    Attributes:
        name: The name it was attached under.
        media_type: Its type (`sniff`).
        size: Bytes.
        data: The file (images and PDFs sent as files), else `b""`.
        text: Its text (text files, PDFs sent as text), else `""`.
        as_text: Send `text` (with a header naming the file) instead of `data`.
    """

    name: str
    media_type: str
    size: int
    data: bytes = b""
    text: str = ""
    as_text: bool = True

    def header(self) -> str:
        """The line that introduces the file to the model (and that the demo model echoes)."""
        how = "its text follows" if self.as_text else "the file follows"
        size = format_size(self.size)
        return f"[Attached file: {self.name} · {self.media_type} · {size} · {how}]"
