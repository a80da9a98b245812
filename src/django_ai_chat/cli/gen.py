"""`django-ai-chat gen`: generate the chat app into the Django project in this directory.

Generates a complete AI chat into an existing Django project: models, actions, jobs, responder,
tools, views, templates, worker command and tests in a new app, plus the settings, URLconf and
dependency changes they need. Shows the changes, asks before writing (unless --yes), and is safe
to re-run: a re-run never changes a generated file; `--upgrade` brings them to this version,
merging your edits in. Works before
`django_ai_chat` is in INSTALLED_APPS (afterwards `python manage.py gen_chat` is the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django_ai_chat.gen.apply import ISSUES, Mode, Output, apply
from django_ai_chat.gen.chat import gen_chat
from django_ai_chat.gen.errors import GeneratorError
from django_ai_chat.gen.manifest import MANIFEST_NAME, Manifest, replay_arguments
from django_ai_chat.gen.options import EXAMPLES, ChatOptions, add_arguments
from django_ai_chat.gen.project import Project
from django_ai_chat.gen.target import Target, find_root, setup_django, source_dir

__all__ = ["DESCRIPTION", "EPILOG", "add_arguments", "generate", "run"]

DESCRIPTION = """\
Generate a complete AI chat into an existing Django project: models, actions, jobs, responder,
tools, views, templates, worker command and tests in a new app, plus the settings, URLconf and
dependency changes it needs. Shows the changes, asks before writing (unless --yes) and is safe
to re-run: generated files are never changed by a re-run. After upgrading django-ai-chat,
--upgrade updates the generated files you did not edit and merges the new version into the ones
you did (conflicts marked inline, as `copier update` does)."""
EPILOG = EXAMPLES


def run(args: argparse.Namespace) -> int:
    """Find `manage.py`, configure Django as it would, and run the generator."""
    try:
        root = find_root(Path.cwd())
        setup_django(root, app_labels=(str(getattr(args, "domain", "chat")).strip(),))
    except GeneratorError as error:
        sys.stderr.write(f"error: {error}\n")
        return ISSUES
    return generate(args, root=root)


def generate(ns: argparse.Namespace, *, root: Path, out: Output = sys.stdout) -> int:
    """Generate into the project at `root`, whose Django settings are already configured.

    The run both entry points share (`run` above, `manage.py gen_chat`).

    Returns:
        The exit code (see `django_ai_chat.gen.apply`).
    """
    try:
        if ns.upgrade:
            ns = _replayed(ns, root=root, out=out)
        opts = ChatOptions.from_namespace(ns, root=root)
    except GeneratorError as error:
        sys.stderr.write(f"error: {error}\n")
        return ISSUES
    target = Target.from_django(root)
    out.write(_summary(opts) + "\n\n")
    project = gen_chat(Project(root), opts, target)
    return apply(project, Mode(yes=opts.yes, dry_run=opts.dry_run, check=opts.check), out=out)


def _replayed(ns: argparse.Namespace, *, root: Path, out: Output) -> argparse.Namespace:
    """`ns` with the options recorded in the app's manifest where none was given.

    As `copier update` replays the recorded answers, `gen --upgrade` alone regenerates with the
    options the app was made with (a missing `--live` would otherwise drop the UI files). The
    app is `--domain`'s, or the only app in `root` with a manifest.

    Raises:
        GeneratorError: the manifest cannot be read.
    """
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = vars(parser.parse_args([]))
    domain = str(ns.domain)
    home = source_dir(root)  # `src/` in a src layout: where the app was generated
    if domain == defaults["domain"] and not (home / domain / MANIFEST_NAME).is_file():
        found = sorted(p.parent.name for p in home.glob(f"*/{MANIFEST_NAME}"))
        domain = found[0] if len(found) == 1 else domain
    try:
        manifest = Manifest.read(home / domain)
    except ValueError as error:
        raise GeneratorError(
            f"{domain}/{error}: restore it from version control, or delete it to upgrade as an "
            "app without a manifest (every file that differs is then treated as edited)."
        ) from None
    if manifest is None:
        return ns
    values = vars(ns).copy()
    replayed = []
    for name, value in replay_arguments(manifest.options).items():
        if values.get(name) == defaults.get(name) and value != defaults.get(name):
            values[name] = value
            replayed.append(name)
    if replayed:
        flags = [
            f"--{name.replace('_', '-')}" + ("" if values[name] is True else f" {values[name]}")
            for name in sorted(replayed)
        ]
        out.write(f"Options from {domain}/{MANIFEST_NAME}: {' '.join(flags)}\n")
    return argparse.Namespace(**values)


def _summary(opts: ChatOptions) -> str:
    ui = [name for name, on in (("page", opts.live), ("component", opts.live_component)) if on]
    route = f"/{opts.route}/" if opts.route else "/"
    parts = [
        f"app {opts.app_label!r}",
        f"model {opts.model}",
        f"user {opts.user_model}" if opts.user_model else "no user model",
        f"UI: {' + '.join(ui)} at {route}" if ui else "no UI",
    ]
    if opts.extensions:
        parts.append(f"extensions: {', '.join(opts.extensions)}")
    if opts.api:
        parts.append(f"API: {opts.api} at {route}api/")
    return "django-ai-chat gen: " + ", ".join(parts)
