from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

from django_ai_chat.gen.apply import CHANGES, IN_SYNC, ISSUES, WARNINGS, Mode, apply
from django_ai_chat.gen.manifest import Entry, digest
from django_ai_chat.gen.project import Project

P = PurePosixPath


def _project(tmp_path: Path) -> Project:
    (tmp_path / "settings.py").write_text("A = 1\n")
    project = Project(tmp_path)
    project.create_file(P("chat/models.py"), "class M: ...\n")
    project.update_file(P("settings.py"), lambda s: s + "B = 2\n")
    project.add_notice("Next: migrate")
    return project


def _apply(project: Project, **mode: bool) -> tuple[int, str]:
    out = io.StringIO()
    code = apply(project, Mode(**mode), out=out, confirm=lambda prompt: False)
    return code, out.getvalue()


def test_yes_writes_and_prints_statuses_diff_and_notices(tmp_path: Path) -> None:
    code, output = _apply(_project(tmp_path), yes=True)
    assert code == IN_SYNC
    assert (tmp_path / "chat/models.py").read_text() == "class M: ...\n"
    assert (tmp_path / "settings.py").read_text() == "A = 1\nB = 2\n"
    assert output == (
        "  create     chat/models.py\n"
        "  update     settings.py\n"
        "\n--- a/settings.py\n+++ b/settings.py\n@@ -1 +1,2 @@\n A = 1\n+B = 2\n"
        "\nWrote 2 file(s).\n"
        "\nNext: migrate\n"
    )


def test_declining_the_confirmation_writes_nothing(tmp_path: Path) -> None:
    code, output = _apply(_project(tmp_path))
    assert code == CHANGES
    assert "Aborted: nothing written." in output
    assert not (tmp_path / "chat").exists()
    assert (tmp_path / "settings.py").read_text() == "A = 1\n"


def test_dry_run_shows_new_files_too_and_writes_nothing(tmp_path: Path) -> None:
    code, output = _apply(_project(tmp_path), dry_run=True)
    assert code == IN_SYNC
    assert "--- /dev/null\n+++ b/chat/models.py\n@@ -0,0 +1 @@\n+class M: ...\n" in output
    assert output.endswith("Dry run: 2 file(s) would change; nothing written.\n")
    assert not (tmp_path / "chat").exists()


def test_check_exit_codes(tmp_path: Path) -> None:
    assert _apply(_project(tmp_path), check=True)[0] == CHANGES
    in_sync = Project(tmp_path)
    assert _apply(in_sync, check=True) == (IN_SYNC, "\nIn sync.\n")
    in_sync.add_warning("kept your edit")
    assert _apply(in_sync, check=True)[0] == WARNINGS
    in_sync.add_task("makemigrations", "chat")
    assert _apply(in_sync, check=True)[0] == CHANGES
    assert not (tmp_path / "chat").exists()


def test_issues_block_every_write(tmp_path: Path) -> None:
    project = _project(tmp_path)
    project.add_issue("chat/ is not a package")
    code, output = _apply(project, yes=True)
    assert code == ISSUES
    assert "issue: chat/ is not a package" in output
    assert not (tmp_path / "chat").exists()


def test_an_edited_generated_file_is_kept_and_check_stays_in_sync(tmp_path: Path) -> None:
    (tmp_path / "responder.py").write_text("PROMPT = 'mine'\n")
    generated = "PROMPT = 'generated'\n"

    def project() -> Project:
        p = Project(tmp_path)
        p.create_file(P("responder.py"), generated, record=Entry(digest(generated), generated))
        return p

    code, output = _apply(project(), yes=True)
    assert code == IN_SYNC
    assert "  edited     responder.py\n" in output
    assert "(generated)" not in output
    assert (tmp_path / "responder.py").read_text() == "PROMPT = 'mine'\n"
    assert _apply(project(), check=True)[0] == IN_SYNC
    code, output = _apply(project(), dry_run=True)
    assert "--- responder.py (yours)\n+++ responder.py (generated)\n" in output


def test_warnings_give_exit_code_2_in_every_mode(tmp_path: Path) -> None:
    def project() -> Project:
        p = Project(tmp_path)
        p.add_warning("1 generated file(s) ... were kept")
        return p

    for mode in ({"yes": True}, {"check": True}, {"dry_run": True}):
        code, output = _apply(project(), **mode)
        assert code == WARNINGS, mode
        assert "\nwarning: 1 generated file(s) ... were kept\n" in output
    assert _apply(project(), yes=True)[1].endswith("Nothing to change: see the warnings above.\n")
    # Changes and declined writes win over warnings; issues win over everything.
    changed = _project(tmp_path)
    changed.add_warning("w")
    assert _apply(changed, check=True)[0] == CHANGES
    assert _apply(changed)[0] == CHANGES
    changed.add_issue("i")
    assert _apply(changed, check=True)[0] == ISSUES


def test_deletes_and_merges_are_diffed_and_written(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text("A = 1\n")
    (tmp_path / "edited.py").write_text("A = 2\n\nB = 1\n")
    project = Project(tmp_path)
    project.remove_file(P("old.py"), Entry(digest("A = 1\n"), "A = 1\n"))
    base = "A = 1\n\nB = 1\n"
    project.create_file(
        P("edited.py"), "A = 1\n\nB = 3\n", record=Entry(digest(base), base), upgrade=True
    )
    code, output = _apply(project, yes=True)
    assert code == IN_SYNC
    assert output.startswith("  merge      edited.py\n  delete     old.py\n")
    assert "--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-A = 1\n" in output
    assert "--- a/edited.py\n+++ b/edited.py\n" in output
    assert not (tmp_path / "old.py").exists()
    assert (tmp_path / "edited.py").read_text() == "A = 2\n\nB = 3\n"


def test_tasks_run_after_the_write_in_the_project(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text(
        "import pathlib, sys\nprint('args', *sys.argv[1:])\n"
        "print(pathlib.Path('chat/models.py').read_text().strip())\n"
    )
    project = _project(tmp_path)
    project.add_task("makemigrations", "chat")
    code, output = _apply(project, yes=True)
    assert code == IN_SYNC
    assert "Running: python manage.py makemigrations chat\n    args makemigrations chat\n" in output
    assert "    class M: ...\n" in output


def test_a_failing_task_is_reported(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("import sys\nsys.exit('boom')\n")
    project = _project(tmp_path)
    project.add_task("makemigrations", "chat")
    code, output = _apply(project, yes=True)
    assert code == CHANGES
    assert "    boom\n" in output
    assert "error: `python manage.py makemigrations chat` failed (exit 1)" in output


def test_colour_only_on_a_terminal(tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    apply(_project(tmp_path), Mode(yes=True), out=out)
    assert "\033[32m  create     chat/models.py\033[0m" in out.getvalue()


def test_dry_run_shows_minified_new_files_by_size(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.create_file(P("chat/static/chat/chat.css"), "a{b:c}" * 300 + "\n")
    assert _apply(project, dry_run=True)[0] == IN_SYNC
    output = _apply(project, dry_run=True)[1]
    assert "+++ b/chat/static/chat/chat.css (1801 bytes, minified: not shown)\n" in output
    assert "a{b:c}" not in output
