"""Golden files: the generator run on fixed input projects, compared file by file and line by line.

Each `cases/<name>/` holds `input/` (a project), `args.txt` (the options), `expected/` (the tree
after `django-ai-chat gen <args> --yes`, without files copied verbatim from app_template) and
`expected_output.txt` (what the command printed). `pytest tests/golden --update-golden` rewrites
them; review the diff.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import django
import pytest

from django_ai_chat.gen.render import APP_TEMPLATE

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "input").is_dir())
# A case with an exit_code.txt is a refusal: it generates nothing to lint.
GENERATED = [c for c in CASES if not (CASES_DIR / c / "exit_code.txt").is_file()]
RUFF_CONFIG = Path(__file__).parent / "lint-generated.toml"
KNOWN_ISSUES = Path(__file__).parent / "generated-known-issues.txt"
# The case with every option on: its app holds every template's Python.
TYPED_CASE = "support_chat"
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff") or "ruff"
IGNORED = {"__pycache__", "db.sqlite3"}
# The generated migration and makemigrations' output are compared on the Django the goldens were
# made with; other versions may format them differently.
GOLDEN_DJANGO = (5, 2)
EXACT = django.VERSION[:2] == GOLDEN_DJANGO


def _copied_verbatim() -> set[bytes]:
    return {
        p.read_bytes()
        for p in APP_TEMPLATE.rglob("*")
        if p.is_file() and not p.name.endswith("-tpl") and "__pycache__" not in p.parts
    }


def _tree(root: Path, skip: set[bytes] = frozenset()) -> dict[str, str]:  # type: ignore[assignment]
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or IGNORED & set(rel.parts) or path.read_bytes() in skip:
            continue
        if not EXACT and re.fullmatch(r"[^/]+/migrations/0\d+_\w+\.py", rel.as_posix()):
            continue
        files[rel.as_posix()] = path.read_text()
    return files


def _portable(output: str) -> str:
    if EXACT:
        return output
    return re.sub(
        r"\nRunning: python manage\.py makemigrations[^\n]*\n(    [^\n]*\n)*", "\n", output
    )


def run_gen(project: Path, *args: str) -> tuple[int, str]:
    """`django-ai-chat gen <args>` in `project`, as a user would run it (no test settings)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "django_ai_chat.cli", "gen", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + (f"\n[stderr]\n{done.stderr}" if done.stderr else "")
    return done.returncode, output


def _args(case: str) -> list[str]:
    return shlex.split((CASES_DIR / case / "args.txt").read_text())


def _app_dir(case: str) -> Path:
    """The generated app in the case's expected tree (under `src/` in a src layout)."""
    expected = CASES_DIR / case / "expected"
    label = _app_label(case)
    return expected / label if (expected / label).is_dir() else expected / "src" / label


def _app_label(case: str) -> str:
    args = _args(case)
    return args[args.index("--domain") + 1] if "--domain" in args else "chat"


def _assert_same(expected: dict[str, str], actual: dict[str, str]) -> None:
    assert sorted(actual) == sorted(expected), "the generated file list changed"
    for name, text in expected.items():
        if actual[name] != text:
            diff = "".join(
                difflib.unified_diff(
                    text.splitlines(True), actual[name].splitlines(True), name, name
                )
            )
            pytest.fail(f"{name} differs from the golden file:\n{diff}")


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path, update_golden: bool) -> None:
    project = tmp_path / "project"
    shutil.copytree(CASES_DIR / case / "input", project)
    code, output = run_gen(project, *_args(case), "--yes")
    exit_code = CASES_DIR / case / "exit_code.txt"
    if exit_code.is_file():
        # A refusal: the output says what to do, and no file is written.
        assert code == int(exit_code.read_text()), output
        expected_output = CASES_DIR / case / "expected_output.txt"
        if update_golden:
            expected_output.write_text(output)
            return
        assert _tree(project) == _tree(CASES_DIR / case / "input")
        assert output == expected_output.read_text()
        return
    assert code == 0, output

    actual = _tree(project, _copied_verbatim())
    expected_dir = CASES_DIR / case / "expected"
    expected_output = CASES_DIR / case / "expected_output.txt"
    if update_golden:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for name, text in actual.items():
            (expected_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / name).write_text(text)
        expected_output.write_text(output)
        return
    _assert_same(_tree(expected_dir), actual)
    assert _portable(output) == _portable(expected_output.read_text())

    # Re-running on the generated project changes nothing.
    code, output = run_gen(project, *_args(case), "--check")
    assert code == 0, output
    statuses = set(re.findall(r"^  (\w+) ", output, re.M))
    assert statuses <= {"identical", "skip"}, output
    assert output.rstrip().endswith("In sync.")


@pytest.mark.parametrize("case", GENERATED)
def test_generated_code_is_lint_clean(case: str) -> None:
    app = _app_dir(case)
    if not any(app.rglob("*.py")):
        pytest.skip(f"{case}: the app templates render no Python yet")
    done = subprocess.run(
        [RUFF, "check", "--no-cache", "--config", str(RUFF_CONFIG), "."],
        cwd=app,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _known_issues(kind: str) -> set[str]:
    lines = KNOWN_ISSUES.read_text().splitlines()
    prefix = f"{kind}: "
    return {line.removeprefix(prefix) for line in lines if line.startswith(prefix)}


def _against_known(kind: str, found: set[str], output: str) -> None:
    """Fail on problems not listed in `generated-known-issues.txt`.

    A listed problem that is gone is not a failure (whoever fixes a template deletes its line,
    and the format check sees one case at a time).
    """
    new = sorted(found - _known_issues(kind))
    assert not new, (
        f"the generated code has {kind} problems not in {KNOWN_ISSUES.name} (fix the template; if "
        "you cannot now, add these lines there):\n"
        + "\n".join(f"{kind}: {n}" for n in new)
        + f"\n\n{output}"
    )


@pytest.mark.parametrize("case", GENERATED)
def test_generated_code_is_formatted(case: str) -> None:
    app_label = _app_label(case)
    app = _app_dir(case)
    done = subprocess.run(
        [RUFF, "format", "--diff", "--no-cache", "--config", str(RUFF_CONFIG), "."],
        cwd=app,
        capture_output=True,
        text=True,
        check=False,
    )
    found = {
        path.replace(app_label, "{app}") for path in re.findall(r"^--- (\S+)$", done.stdout, re.M)
    }
    assert done.returncode == 0 or found, done.stdout + done.stderr
    _against_known("ruff format", found, done.stdout)


_MYPY_INI = """\
[mypy]
strict = True
plugins = mypy_django_plugin.main
# Django's admin classes are not subscriptable at runtime (without django-stubs-ext's
# monkeypatch, which a generated app cannot assume), so `ModelAdmin[Conversation]` is not an
# option for generated code.
[mypy-{app}.admin]
disallow_any_generics = False

[mypy.plugins.django-stubs]
django_settings_module = typecheck_settings
"""

# The app alone, in a minimal project: the user's own settings are not what is checked.
_SETTINGS = """\
SECRET_KEY = "typecheck"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "procrastinate.contrib.django",
    "django_htmx",
    "django_ai_chat",
    "{app}",
]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": "typecheck"}}}}
ROOT_URLCONF = "{app}.urls"
"""


@pytest.mark.skipif(not EXACT, reason="django-stubs' view of the app is checked on Django 5.2")
def test_generated_code_passes_mypy_strict(tmp_path: Path) -> None:
    app_label = _app_label(TYPED_CASE)
    shutil.copytree(CASES_DIR / TYPED_CASE / "expected" / app_label, tmp_path / app_label)
    (tmp_path / "typecheck_settings.py").write_text(_SETTINGS.format(app=app_label))
    (tmp_path / "mypy.ini").write_text(_MYPY_INI.format(app=app_label))
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "MYPYPATH")}
    env["PYTHONPATH"] = str(tmp_path)
    # A cache outside tmp_path: the runtime and Django's stubs are the bulk of the work.
    cache = Path(__file__).parents[2] / ".mypy_cache" / "generated"
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), app_label],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = {
        f"{path}: {message}".replace(app_label, "{app}")
        for path, message in re.findall(r"^([^:\n]+\.py):\d+: error: (.*)$", done.stdout, re.M)
    }
    assert done.returncode == 0 or found, done.stdout + done.stderr
    _against_known("mypy", found, done.stdout)
