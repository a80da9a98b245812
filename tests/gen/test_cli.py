"""The two entry points, run as a user runs them (subprocesses in a fresh project)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from django_ai_chat.cli import build_parser

CASES = Path(__file__).parent.parent / "golden" / "cases"


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(CASES / "startproject" / "input", tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_help_lists_every_option_and_the_seeds_examples() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    gen = subparsers.choices["gen"]  # type: ignore[index]
    text = gen.format_help()
    for option in (
        "--user",
        "--domain",
        "--route",
        "--provider",
        "--extend",
        "--live",
        "--live-component",
        "--yes",
        "--dry-run",
        "--check",
    ):
        assert option in text
    assert "openai|anthropic|gemini|ollama" in text
    assert "--domain support_chat --route /support/chat" in text
    assert "exit codes: 0" in text


def test_outside_a_project_it_says_where_to_run(tmp_path: Path) -> None:
    done = run(tmp_path, "-m", "django_ai_chat.cli", "gen")
    assert done.returncode == 3
    assert "No manage.py in" in done.stderr and "run the generator from your Django" in done.stderr


def test_broken_settings_are_reported(project: Path) -> None:
    (project / "mysite" / "settings.py").write_text("import not_a_module\n")
    done = run(project, "-m", "django_ai_chat.cli", "gen")
    assert done.returncode == 3
    assert "Loading the settings 'mysite.settings' failed" in done.stderr


def test_bad_options_write_nothing(project: Path) -> None:
    before = (project / "mysite" / "settings.py").read_text()
    done = run(project, "-m", "django_ai_chat.cli", "gen", "--provider", "mistral", "--yes")
    assert done.returncode == 3
    assert done.stderr == (
        "error: Unknown --provider 'mistral'; choose one of: openai, anthropic, gemini, ollama.\n"
    )
    assert (project / "mysite" / "settings.py").read_text() == before
    assert not (project / "chat").exists()


def test_dry_run_and_check_write_nothing(project: Path) -> None:
    dry = run(project, "-m", "django_ai_chat.cli", "gen", "--live", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+++ b/chat/urls.py" in dry.stdout and "+    'chat',\n" in dry.stdout
    check = run(project, "-m", "django_ai_chat.cli", "gen", "--live", "--check")
    assert check.returncode == 1
    assert "Out of sync:" in check.stdout
    assert not (project / "chat").exists()


def test_without_yes_and_without_a_terminal_nothing_is_written(project: Path) -> None:
    done = run(project, "-m", "django_ai_chat.cli", "gen", "--live")
    assert done.returncode == 1
    assert "pass --yes" in done.stdout and "Aborted: nothing written." in done.stdout
    assert not (project / "chat").exists()


def test_manage_py_gen_chat_is_the_same_engine(project: Path) -> None:
    assert run(project, "-m", "django_ai_chat.cli", "gen", "--live", "--yes").returncode == 0
    done = run(project, "manage.py", "gen_chat", "--live", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("django-ai-chat gen: app 'chat'")
    assert done.stdout.rstrip().endswith("In sync.")
    assert "--live-component" in run(project, "manage.py", "gen_chat", "--help").stdout


def test_upgrade_replays_the_recorded_options(project: Path) -> None:
    args = ("-m", "django_ai_chat.cli", "gen")
    generated = run(project, *args, "--live", "--domain", "support", "--route", "/help", "--yes")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # No option given: the app, its route and its UI come from support/.django-ai-chat.json.
    done = run(project, *args, "--upgrade", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(
        "Options from support/.django-ai-chat.json: "
        "--domain support --live --route /help --user auth.User\n"
    )
    assert "app 'support'" in done.stdout and "UI: page at /help/" in done.stdout
    assert done.stdout.rstrip().endswith("In sync.")
    # Without --upgrade nothing is replayed: the default app 'chat' does not exist.
    assert run(project, *args, "--check").returncode == 1


def test_an_unreadable_manifest_stops_an_upgrade(project: Path) -> None:
    assert run(project, "-m", "django_ai_chat.cli", "gen", "--live", "--yes").returncode == 0
    (project / "chat" / ".django-ai-chat.json").write_text("{not json")
    done = run(project, "-m", "django_ai_chat.cli", "gen", "--upgrade", "--yes")
    assert done.returncode == 3
    assert done.stderr.startswith("error: chat/.django-ai-chat.json cannot be read (")
    assert "restore it from version control, or delete it" in done.stderr


def test_a_refusal_says_what_to_paste_and_the_rerun_completes(tmp_path: Path) -> None:
    shutil.copytree(CASES / "refusal" / "input", tmp_path, dirs_exist_ok=True)
    settings = tmp_path / "mysite" / "settings.py"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    refused = run(tmp_path, "-m", "django_ai_chat.cli", "gen", "--live", "--yes")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "Cannot add chat to INSTALLED_APPS in mysite/settings.py" in refused.stdout
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before

    # Paste the lines exactly as printed: those before "..." open the list, the others close it.
    block = refused.stdout.split("Add to INSTALLED_APPS in mysite/settings.py")[1]
    lines = block.split("\n\n")[0].splitlines()[1:]
    head, tail = lines[: lines.index("    ...")], lines[lines.index("    ...") + 1 :]
    text = settings.read_text()
    text = text.replace("INSTALLED_APPS = [\n", "INSTALLED_APPS = [\n" + "\n".join(head) + "\n")
    text = text.replace("\n] + _plugin_apps()", "\n" + "\n".join(tail) + "\n] + _plugin_apps()")
    settings.write_text(text)

    done = run(tmp_path, "-m", "django_ai_chat.cli", "gen", "--live", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "chat" / "migrations" / "0001_initial.py").is_file()
    check = run(tmp_path, "-m", "django_ai_chat.cli", "gen", "--live", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.rstrip().endswith("In sync.")


def test_a_src_layout_is_loaded_through_manage_py_and_upgrades_replay_its_app(
    tmp_path: Path,
) -> None:
    shutil.copytree(CASES / "src_layout" / "input", tmp_path, dirs_exist_ok=True)
    args = ("-m", "django_ai_chat.cli", "gen")
    done = run(tmp_path, *args, "--live", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "src" / "chat" / "views.py").is_file()
    upgrade = run(tmp_path, *args, "--upgrade", "--check")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert upgrade.stdout.startswith("Options from chat/.django-ai-chat.json: --live")
    assert upgrade.stdout.rstrip().endswith("In sync.")


def test_new_demo_and_gen_share_one_declaration_of_the_chat_options() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    commands = subparsers.choices  # type: ignore[attr-defined]

    def option(command: str, flag: str) -> tuple[object, ...]:
        action = next(a for a in commands[command]._actions if flag in a.option_strings)
        return (action.default, action.metavar, action.choices, action.help)

    for flag in ("--provider", "--domain", "--route", "--live-component"):
        assert option("new", flag) == option("gen", flag), flag
    assert option("demo", "--provider")[:3] == option("gen", "--provider")[:3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--provider", "mistral"), "Unknown --provider 'mistral'; choose one of: openai,"),
        (("--domain", "Chat"), "--domain 'Chat' is not a valid app label"),
        (("--route", "/a b"), "--route '/a b' is not a plain URL path"),
        (("--route", "/"), "--route '/' is not a plain URL path below the site root"),
    ],
)
def test_new_refuses_what_gen_refuses_with_the_same_words(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    done = run(tmp_path, "-m", "django_ai_chat.cli", "new", "my_site", *args)

    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "my_site").exists()
