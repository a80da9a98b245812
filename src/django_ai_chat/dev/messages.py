"""The runtime's translation catalogs: extract the msgids, update the .po files, compile the .mo.

    python -m django_ai_chat.dev.messages          # update locale/*/LC_MESSAGES/django.po + .mo
    python -m django_ai_chat.dev.messages --check  # exit 1 if a catalog is stale or incomplete

Pure Python, no GNU gettext: `makemessages` cannot read the generator's `*-tpl` files (Jinja
around Django templates and Python) nor put chat.js's msgids into the `django` domain, and a
clean clone (CI) has no `msgfmt`. The compiled `.mo` files are committed, so installing the
package (or a clean checkout) needs no build step; `tests/runtime/test_i18n.py` fails when one
is out of date with its `.po`, or a msgid of the sources has no translation.

Where msgids come from (the user interface only; prompts the model reads stay as written):

- templates: `{% translate %}` / `{% blocktranslate %}` in the generated app's and project's
  templates (`gen/`) and the runtime's own (`templates/`), read with Django's `templatize`;
- Python: `gettext`, `gettext_lazy`, `gettext_noop`, `ngettext`(`_lazy`), `pgettext`(`_lazy`)
  and `_` calls in the runtime's modules and the generated Python (`*.py-tpl`, the accounts app);
- chat.js: `django_ai_chat.i18n.js_messages`.

Longer than our usual modules: extraction and the .po/.mo formats in one file keep a tool no
deployed app imports out of the package's tree of runtime modules; GNU gettext is not needed.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import struct
import sys
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "LANGUAGES",
    "Entry",
    "compile_mo",
    "extract",
    "main",
    "parse_po",
    "render_po",
    "template_messages",
]

PACKAGE: Final = Path(__file__).resolve().parent.parent
LANGUAGES: Final = {
    "fr": ("French", "nplurals=2; plural=(n > 1);"),
    "de": ("German", "nplurals=2; plural=(n != 1);"),
}
"""The shipped locales beside English: name and gettext plural rule."""

# Where the user interface's strings live, relative to the package.
_TEMPLATE_GLOBS: Final = (
    "gen/app_template/templates/**/*.html-tpl",
    "gen/project_template/**/*.html",
    "gen/project_template/**/*.html-tpl",
    "gen/snippets/login/*.html-tpl",
    "templates/**/*.html",
)
_PYTHON_GLOBS: Final = (
    "*.py",
    "streaming/*.py",
    "tools/*.py",
    "templatetags/*.py",
    "gen/app_template/**/*.py-tpl",
    "gen/project_template/**/*.py",
    "gen/project_template/**/*.py-tpl",
)
_PYTHON_SKIP: Final = ("/tests/", "/migrations/")
_FUNCTIONS: Final = {
    "_": "s",
    "gettext": "s",
    "gettext_lazy": "s",
    "gettext_noop": "s",
    "ngettext": "sp",
    "ngettext_lazy": "sp",
    "pgettext": "cs",
    "pgettext_lazy": "cs",
    "npgettext": "csp",
    "npgettext_lazy": "csp",
}


@dataclass
class Entry:
    """One message of a catalog.

    Attributes:
        msgid: The English text.
        plural: The English plural (`ngettext`), else `None`.
        context: The `pgettext` context, else `None`.
        msgstr: The translation: one string, or the plural forms.
        fuzzy: Marked fuzzy (needs review; not compiled).
        sources: Where the msgid was found (package-relative paths).
    """

    msgid: str
    plural: str | None = None
    context: str | None = None
    msgstr: list[str] = field(default_factory=list)
    fuzzy: bool = False
    sources: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The msgid as a .mo file keys it (context, EOT, msgid when it has a context)."""
        return f"{self.context}\x04{self.msgid}" if self.context is not None else self.msgid

    @property
    def translated(self) -> bool:
        """Every form has a translation and none is fuzzy."""
        return bool(self.msgstr) and all(self.msgstr) and not self.fuzzy


# -- extraction ---------------------------------------------------------------------------------


def extract(package: Path = PACKAGE) -> dict[str, Entry]:
    """Every msgid of the user interface, keyed as in a .mo file, in source order."""
    from django_ai_chat.i18n import CHAT_JS, js_messages

    found: dict[str, Entry] = {}

    def add(entry: Entry, source: str) -> None:
        kept = found.setdefault(entry.key, entry)
        if source not in kept.sources:
            kept.sources.append(source)

    for path in _files(package, _TEMPLATE_GLOBS):
        for entry in template_messages(path.read_text(encoding="utf-8")):
            add(entry, _relative(path, package))
    for path in _files(package, _PYTHON_GLOBS):
        if any(part in f"/{_relative(path, package)}" for part in _PYTHON_SKIP):
            continue
        for entry in python_messages(path.read_text(encoding="utf-8")):
            add(entry, _relative(path, package))
    js_source = CHAT_JS.resolve()
    js_path = package / js_source.relative_to(PACKAGE) if package != PACKAGE else js_source
    for msgid, plural in js_messages(js_path):
        add(Entry(msgid, plural), _relative(js_path, package))
    return found


def _files(package: Path, patterns: Iterable[str]) -> list[Path]:
    seen: dict[Path, None] = {}
    for pattern in patterns:
        for path in sorted(package.glob(pattern)):
            seen.setdefault(path, None)
    return list(seen)


def _relative(path: Path, package: Path) -> str:
    return path.relative_to(package).as_posix()


_STRING: Final = r"""u?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_TEMPLATIZED: Final = re.compile(
    rf"\b(n?p?gettext)\(((?:\s*{_STRING}\s*,?)+)",
)


def template_messages(source: str) -> list[Entry]:
    """The msgids of a Django template's `{% translate %}` and `{% blocktranslate %}` tags.

    Jinja around it (the generator's `[% %]`, `[[ ]]`) is text to Django's lexer.
    """
    from django.utils.translation.template import templatize

    entries = []
    for name, arguments in _TEMPLATIZED.findall(templatize(source)):
        strings = [ast.literal_eval(s) for s in re.findall(_STRING, arguments)]
        entries.append(_entry(_shape(name), strings))
    return entries


def _shape(name: str) -> str:
    return ("c" if "p" in name else "") + "s" + ("p" if name.startswith("n") else "")


def _entry(shape: str, strings: list[str]) -> Entry:
    values = dict(zip(shape, strings, strict=False))
    return Entry(values["s"], plural=values.get("p"), context=values.get("c"))


def python_messages(source: str) -> list[Entry]:
    """The msgids of a Python module's gettext calls whose arguments are string literals.

    Tokenised rather than parsed: the generator's `*.py-tpl` files hold Jinja too.
    """
    entries = []
    tokens = [
        t
        for t in _tokens(source)
        if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT)
    ]
    for i, token in enumerate(tokens[:-2]):
        shape = _FUNCTIONS.get(token.string) if token.type == tokenize.NAME else None
        if shape is None or tokens[i + 1].string != "(":
            continue
        if i and tokens[i - 1].string == "def":
            continue
        strings = list(_literal_arguments(tokens[i + 2 :], len(shape)))
        if len(strings) == len(shape):
            entries.append(_entry(shape, strings))
    return entries


def _tokens(source: str) -> Iterator[tokenize.TokenInfo]:
    try:
        yield from tokenize.generate_tokens(io.StringIO(source).readline)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return


def _literal_arguments(tokens: list[tokenize.TokenInfo], wanted: int) -> Iterator[str]:
    # Adjacent literals are one string ("a" "b"); f-strings and names are not msgids.
    current: list[str] = []
    for token in tokens:
        if token.type == tokenize.STRING and not re.match(r"(?i)[rbu]*f", token.string):
            current.append(ast.literal_eval(token.string))
            continue
        if token.string in (",", ")") and current:
            yield "".join(current)
            wanted -= 1
            current = []
            if token.string == ")" or not wanted:
                return
            continue
        return


# -- .po files ----------------------------------------------------------------------------------


def parse_po(text: str) -> tuple[str, dict[str, Entry]]:
    """A .po file's header (the msgstr of msgid "") and entries keyed as in a .mo file."""
    entries: dict[str, Entry] = {}
    header = ""
    for block in re.split(r"\n\s*\n", text.strip()):
        entry, is_header = _parse_block(block)
        if is_header:
            header = entry.msgstr[0] if entry.msgstr else ""
        elif entry.msgid:
            entries[entry.key] = entry
    return header, entries


def _parse_block(block: str) -> tuple[Entry, bool]:
    fields: dict[str, str] = {}
    current = ""
    fuzzy = False
    sources: list[str] = []
    seen_msgid = False
    for raw in block.splitlines():
        line = raw.strip()
        if line.startswith("#,"):
            fuzzy = fuzzy or "fuzzy" in line
            continue
        if line.startswith("#:"):
            sources.extend(line[2:].split())
            continue
        if line.startswith("#~"):
            return Entry(""), False  # obsolete
        if line.startswith("#") or not line:
            continue
        match = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(.*)$", line)
        if match:
            current = match.group(1)
            seen_msgid = seen_msgid or current == "msgid"
            fields[current] = _unquote(match.group(2))
        else:
            fields[current] += _unquote(line)
    plural = fields.get("msgid_plural")
    if plural is not None:
        forms = sorted((int(k[7:-1]), v) for k, v in fields.items() if k.startswith("msgstr["))
        msgstr = [v for _, v in forms]
    else:
        msgstr = [fields.get("msgstr", "")]
    entry = Entry(
        fields.get("msgid", ""),
        plural=plural,
        context=fields.get("msgctxt"),
        msgstr=msgstr,
        fuzzy=fuzzy,
        sources=sources,
    )
    return entry, seen_msgid and entry.msgid == "" and entry.context is None


def _unquote(quoted: str) -> str:
    value = ast.literal_eval(quoted)
    if not isinstance(value, str):
        raise ValueError(f"not a .po string: {quoted}")
    return value


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    lines = escaped.split("\n")
    parts = [line + "\\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    if len(parts) <= 1 and len(escaped) < 70:
        return f'"{parts[0] if parts else ""}"'
    return '""\n' + "\n".join(f'"{part}"' for part in parts)


def _header(language: str) -> str:
    _, plural_forms = LANGUAGES[language]
    return (
        "Project-Id-Version: django-ai-chat\n"
        f"Language: {language}\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        f"Plural-Forms: {plural_forms}\n"
    )


def render_po(language: str, msgids: dict[str, Entry], existing: dict[str, Entry]) -> str:
    """The .po file of `language`: every extracted msgid, with the translations kept.

    Msgids no longer in the sources are dropped; new ones get an empty translation.
    """
    name, plural_forms = LANGUAGES[language]
    nplurals = int(re.search(r"nplurals=(\d+)", plural_forms).group(1))  # type: ignore[union-attr]
    out = [
        f"# {name} translations of django-ai-chat's user interface.",
        "# Updated by `python -m django_ai_chat.dev.messages`; edit the msgstr lines only.",
        'msgid ""',
        "msgstr " + _quote(_header(language)),
        "",
    ]
    for key, source in msgids.items():
        kept = existing.get(key)
        msgstr = kept.msgstr if kept else []
        if source.plural is not None:
            msgstr = (msgstr + [""] * nplurals)[:nplurals]
        else:
            msgstr = msgstr[:1] or [""]
        out.append("#: " + " ".join(source.sources))
        if kept and kept.fuzzy:
            out.append("#, fuzzy")
        if "%(" in source.msgid or "%s" in source.msgid:
            out.append("#, python-format")
        if source.context is not None:
            out.append("msgctxt " + _quote(source.context))
        out.append("msgid " + _quote(source.msgid))
        if source.plural is not None:
            out.append("msgid_plural " + _quote(source.plural))
            out.extend(f"msgstr[{i}] " + _quote(form) for i, form in enumerate(msgstr))
        else:
            out.append("msgstr " + _quote(msgstr[0]))
        out.append("")
    return "\n".join(out)


def compile_mo(header: str, entries: Iterable[Entry]) -> bytes:
    """A GNU .mo file of the translated, non-fuzzy entries (what `msgfmt` writes, no hash)."""
    catalog = {"": header}
    for entry in entries:
        if not entry.translated:
            continue
        key = entry.key if entry.plural is None else f"{entry.key}\0{entry.plural}"
        catalog[key] = "\0".join(entry.msgstr)
    keys = sorted(catalog, key=lambda k: k.encode())
    ids = strs = b""
    offsets = []
    for key in keys:
        encoded_id, encoded_str = key.encode(), catalog[key].encode()
        offsets.append((len(ids), len(encoded_id), len(strs), len(encoded_str)))
        ids += encoded_id + b"\0"
        strs += encoded_str + b"\0"
    count = len(keys)
    keys_start = 7 * 4
    values_start = keys_start + count * 8
    ids_start = values_start + count * 8
    strs_start = ids_start + len(ids)
    table = b"".join(struct.pack("<2I", length, ids_start + o) for o, length, _, _ in offsets)
    table += b"".join(struct.pack("<2I", length, strs_start + o) for _, _, o, length in offsets)
    head = struct.pack("<7I", 0x950412DE, 0, count, keys_start, values_start, 0, 0)
    return head + table + ids + strs


# -- command ------------------------------------------------------------------------------------


def _po_path(language: str, package: Path) -> Path:
    return package / "locale" / language / "LC_MESSAGES" / "django.po"


def update(package: Path = PACKAGE, *, write: bool = True) -> list[str]:
    """Bring every locale's .po and .mo up to date; returns what was (or would be) changed."""
    msgids = extract(package)
    changed = []
    for language in LANGUAGES:
        po_path = _po_path(language, package)
        old = po_path.read_text(encoding="utf-8") if po_path.exists() else ""
        _, existing = parse_po(old) if old else ("", {})
        new = render_po(language, msgids, existing)
        header, entries = parse_po(new)
        mo = compile_mo(header, entries.values())
        mo_path = po_path.with_suffix(".mo")
        if new != old:
            changed.append(str(po_path.relative_to(package)))
        if not mo_path.exists() or mo_path.read_bytes() != mo:
            changed.append(str(mo_path.relative_to(package)))
        if write:
            po_path.parent.mkdir(parents=True, exist_ok=True)
            po_path.write_text(new, encoding="utf-8")
            mo_path.write_bytes(mo)
    return changed


def untranslated(package: Path = PACKAGE) -> dict[str, list[str]]:
    """Per locale, the msgids of the sources without a (non-fuzzy) translation."""
    msgids = extract(package)
    missing: dict[str, list[str]] = {}
    for language in LANGUAGES:
        po_path = _po_path(language, package)
        _, entries = parse_po(po_path.read_text(encoding="utf-8")) if po_path.exists() else ("", {})
        missing[language] = [
            key for key in msgids if key not in entries or not entries[key].translated
        ]
    return missing


def main(argv: list[str] | None = None) -> int:
    """Update the catalogs, or with `--check` only say whether they are current and complete."""
    parser = argparse.ArgumentParser(prog="python -m django_ai_chat.dev.messages")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_I18N=True)
    django.setup()
    changed = update(write=not args.check)
    for path in changed:
        print(("stale: " if args.check else "wrote: ") + path)
    missing = untranslated()
    for language, keys in missing.items():
        for key in keys:
            print(f"untranslated ({language}): {key!r}")
    return 1 if (args.check and changed) or any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
