"""`Manifest`: what the generator wrote into an app, so an upgrade can tell edits from templates.

The generator keeps `<app>/.django-ai-chat.json` (copier keeps `.copier-answers.yml`): the package
version and the options of the last run that wrote into the app, and per generated file the
SHA-256 of the content it wrote and, for files rendered from templates, that content itself, the
*base* of the three-way merge `gen --upgrade` does (base = what version N wrote, ours = the file
on disk, theirs = what this version writes). One JSON file rather than a directory of pristine
`.py` copies: the project's linters, type checker, test runner and `collectstatic` would pick
those up. Contents are stored as lists of lines so that a template change shows as a readable
line diff in the project's history. Files copied verbatim (vendored static assets) keep only
their hash: they are replaced whole, never merged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django_ai_chat.gen.options import ChatOptions
from django_ai_chat.gen.render import RenderedFile

MANIFEST_NAME = ".django-ai-chat.json"
"""The manifest's file name, inside the generated app's directory."""

_ABOUT = (
    "Written by `django-ai-chat gen`: the version, the options and what it generated into this "
    "app, so `gen --upgrade` can tell your edits from template changes. Commit it; do not edit it."
)

RECORDED_OPTIONS = ("app_label", "route", "provider", "user_model", "live", "live_component")
"""The `ChatOptions` fields kept in the manifest (with `extensions` and, when set, `api`),
replayed by `--upgrade`."""


def digest(content: str) -> str:
    """The SHA-256 hex digest of `content` (UTF-8), as stored in the manifest."""
    return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One generated file as the generator wrote it."""

    sha256: str
    content: str | None
    """The content written (the merge base); `None` for files copied verbatim."""

    @classmethod
    def of(cls, file: RenderedFile) -> Entry:
        """The entry recording `file` as written now."""
        return cls(digest(file.content), file.content if file.templated else None)

    def matches(self, content: str) -> bool:
        """Whether `content` is exactly what the generator wrote (the user has not edited it)."""
        return digest(content) == self.sha256


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest of one app: version, options, and an `Entry` per generated file.

    Paths are relative to the app directory, POSIX style.
    """

    version: str
    options: dict[str, Any]
    files: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Manifest:
        """Parse a manifest file's text.

        Raises:
            ValueError: the text is not a manifest this version can read.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise ValueError("not a django-ai-chat manifest")
        files: dict[str, Entry] = {}
        for path, raw in data["files"].items():
            if not isinstance(raw, dict) or not isinstance(raw.get("sha256"), str):
                raise ValueError(f"bad entry for {path!r}")
            lines = raw.get("lines")
            content = "".join(lines) if isinstance(lines, list) else None
            if content is not None and digest(content) != raw["sha256"]:
                content = None  # a hand-edited base is no base: merge as if there were none
            files[str(path)] = Entry(raw["sha256"], content)
        options = data.get("options")
        return cls(
            str(data.get("version", "")), options if isinstance(options, dict) else {}, files
        )

    @classmethod
    def read(cls, app_dir: Path) -> Manifest | None:
        """The manifest in `app_dir`; `None` when absent.

        Raises:
            ValueError: the manifest exists but cannot be read.
        """
        path = app_dir / MANIFEST_NAME
        if not path.is_file():
            return None
        try:
            return cls.parse(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path.name} cannot be read ({error})") from None

    def render(self) -> str:
        """The manifest file's text: stable key order, one line of content per JSON line."""
        files: dict[str, dict[str, Any]] = {}
        for path, entry in sorted(self.files.items()):
            files[path] = {"sha256": entry.sha256}
            if entry.content is not None:
                files[path]["lines"] = entry.content.splitlines(keepends=True)
        data = {
            "about": _ABOUT,
            "version": self.version,
            "options": self.options,
            "files": files,
        }
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def recorded_options(opts: ChatOptions) -> dict[str, Any]:
    """The options of `opts` the manifest keeps."""
    recorded: dict[str, Any] = {name: getattr(opts, name) for name in RECORDED_OPTIONS}
    recorded["extensions"] = list(opts.extensions)
    if opts.api:
        recorded["api"] = opts.api  # only when set: manifests of apps without it stay as they were
    return recorded


def replay_arguments(options: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded options as `argparse` namespace values of the generator's arguments."""
    values: dict[str, Any] = {}
    if isinstance(options.get("app_label"), str):
        values["domain"] = options["app_label"]
    if isinstance(options.get("route"), str):
        values["route"] = f"/{options['route']}"
    if isinstance(options.get("provider"), str):
        values["provider"] = options["provider"]
    if isinstance(options.get("user_model"), str):
        values["user"] = options["user_model"]
    for flag in ("live", "live_component"):
        if options.get(flag) is True:
            values[flag] = True
    if isinstance(options.get("api"), str):
        values["api"] = options["api"]
    extensions = options.get("extensions")
    if isinstance(extensions, list) and extensions:
        values["extend"] = ",".join(str(e) for e in extensions)
    return values
