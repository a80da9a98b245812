"""The generated app's view tests pass under settings real projects have (issue 17 items 3, 8)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import GeneratedProject

pytestmark = pytest.mark.e2e

# cookiecutter-django's defaults: every request in a transaction, static files by manifest (there
# WhiteNoise's CompressedManifestStaticFilesStorage, a subclass of Django's).
STRICT_SETTINGS = """\
from mysite.settings import *  # noqa: F403

DATABASES["default"]["ATOMIC_REQUESTS"] = True  # noqa: F405
STATIC_ROOT = {static_root!r}  # never collected: tests do not run collectstatic
STORAGES = {{
    "default": {{"BACKEND": "django.core.files.storage.FileSystemStorage"}},
    "staticfiles": {{
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
    }},
}}
"""


def test_view_tests_pass_with_atomic_requests_and_a_manifest_storage(
    generated_project: GeneratedProject, tmp_path: Path
) -> None:
    (tmp_path / "strict_settings.py").write_text(
        STRICT_SETTINGS.format(static_root=str(tmp_path / "static"))
    )

    done = generated_project.manage(
        "test",
        f"{generated_project.app_label}.tests.test_views",
        "--no-input",
        "--settings",
        "strict_settings",
        env={"PYTHONPATH": str(tmp_path)},
    )

    ran = re.search(r"Ran (\d+) tests?", done.stderr)
    assert ran and int(ran.group(1)) > 0, done.stderr
