"""The real cookiecutter-django template, rendered by `cookiecutter`: an opt-in shape.

Its code is not ours to commit, so it comes from a local copy at a pinned release, given by
the environment variable `AI_CHAT_COOKIECUTTER_DJANGO`; without it the shape is skipped, saying
why. To populate the cache once (on a machine that reaches GitHub and PyPI):

    git clone --depth 1 --branch 2026.8.18 \\
        https://github.com/cookiecutter/cookiecutter-django ~/.cache/cookiecutter-django-2026.8.18
    .venv/bin/pip install cookiecutter  # the renderer
    .venv/bin/pip install -r requirements-of-the-render.txt  # see REQUIREMENTS below

then run, offline from then on:

    AI_CHAT_COOKIECUTTER_DJANGO=~/.cache/cookiecutter-django-2026.8.18 \\
        PATH=$PWD/.venv/bin:$PATH .venv/bin/python -m pytest tests/e2e/test_real_projects.py \\
        -k cookiecutter_django

The template's post-generation hook runs `uv add -r requirements/….txt` (which resolves
against PyPI) and then deletes `requirements/`: the render runs with a stand-in `uv` that keeps
those files aside instead (`<work>/requirements/`), so it needs no network; the rendered
`pyproject.toml` then lists only `django` (the hook would have added the rest).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN

ENV = "AI_CHAT_COOKIECUTTER_DJANGO"
RELEASE = "2026.8.18"
"""The template release the shape is pinned to (a tag of cookiecutter-django)."""
CONTEXT = ("project_slug=acme", "username_type=email", "use_whitenoise=y")
"""Answers to the template's questions (`--no-input`: the rest are its defaults)."""
REQUIREMENTS = {
    "environ": "django-environ",
    "model_utils": "django-model-utils",
    "allauth": "django-allauth[mfa]",
    "crispy_forms": "django-crispy-forms",
    "crispy_bootstrap5": "crispy-bootstrap5",
    "django_redis": "django-redis",
    "whitenoise": "whitenoise",
    "argon2": "argon2-cffi",
    "slugify": "python-slugify",
    "PIL": "Pillow",
    "debug_toolbar": "django-debug-toolbar",
    "django_extensions": "django-extensions",
    "factory": "factory-boy",
    "werkzeug": "Werkzeug",
}
"""Modules the rendered project imports (settings, its tests) → the package that has them.

The release pins them in its `requirements/base.txt` and `requirements/local.txt`.
"""

_UV = """\
#!/bin/sh
# Stand-in for uv during the template's post-generation hook: keep the requirements files.
while [ $# -gt 0 ]; do
  if [ "$1" = "-r" ]; then cp "$(dirname "$2")"/*.txt "$UV_STUB_KEEP/"; shift; fi
  shift
done
"""


def unavailable() -> str | None:
    """Why the shape cannot run here (a skip reason), or `None`."""
    template = os.environ.get(ENV)
    if not template:
        return f"opt-in: set {ENV} to a copy of cookiecutter-django {RELEASE} (see {__name__})"
    path = Path(template).expanduser()
    if not (path / "cookiecutter.json").is_file():
        return f"{ENV}={template!r} is not a cookiecutter-django checkout (no cookiecutter.json)"
    if (path / ".git").exists():
        tag = subprocess.run(
            ["git", "-C", str(path), "describe", "--tags", "--exact-match"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if tag != RELEASE:
            return f"{ENV}={template!r} is at {tag or 'no tag'!r}, not the pinned {RELEASE!r}"
    if not (BIN / "cookiecutter").is_file():
        return f"`cookiecutter` is not installed in {str(BIN.parent)!r}: pip install cookiecutter"
    missing = [pip for module, pip in REQUIREMENTS.items() if not importlib.util.find_spec(module)]
    if missing:
        return "the rendered project's requirements are missing: pip install " + " ".join(
            f"{name!r}" for name in missing
        )
    return None


def render(work: Path) -> Path:
    """Render the template (hooks included) under `work`; returns the project's directory."""
    template = Path(os.environ[ENV]).expanduser()
    stub = work / "bin"
    stub.mkdir()
    (stub / "uv").write_text(_UV)
    (stub / "uv").chmod(0o755)
    keep = work / "requirements"
    keep.mkdir()
    config = work / "cookiecutter.yaml"
    # Its replay file and clones stay in the test's directory, not the user's home.
    config.write_text(
        f"cookiecutters_dir: {work / 'cookiecutters'}\nreplay_dir: {work / 'replay'}\n"
    )
    out = work / "rendered"
    done = subprocess.run(
        [BIN / "cookiecutter", template, "--no-input", "--output-dir", out, *CONTEXT],
        env={
            **os.environ,
            "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}",
            "UV_STUB_KEEP": str(keep),
            "COOKIECUTTER_CONFIG": str(config),
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"cookiecutter exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return out / "acme"
