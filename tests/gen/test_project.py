from __future__ import annotations

from pathlib import Path, PurePosixPath

from django_ai_chat.gen.project import Project

P = PurePosixPath


def test_statuses_of_created_files(tmp_path: Path) -> None:
    (tmp_path / "same.py").write_text("x = 1\n")
    (tmp_path / "edited.py").write_text("x = 2  # mine\n")
    project = Project(tmp_path)
    assert project.create_file(P("new.py"), "x = 1\n").status == "create"
    assert project.create_file(P("same.py"), "x = 1\n").status == "identical"
    conflict = project.create_file(P("edited.py"), "x = 1\n")
    assert conflict.status == "conflict"
    assert not conflict.writes
    assert project.warnings == []
    assert project.notices == [
        "edited.py differs from what the generator writes: kept yours "
        "(`--dry-run` shows the difference)."
    ]
    assert [c.path for c in project.changed] == [P("new.py")]


def test_updates_accumulate_against_the_disk_content(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text("A = 1\n")
    project = Project(tmp_path)
    project.update_file(P("settings.py"), lambda s: s + "B = 2\n")
    change = project.update_file(P("settings.py"), lambda s: s + "C = 3\n")
    assert (change.status, change.before, change.after) == (
        "update",
        "A = 1\n",
        "A = 1\nB = 2\nC = 3\n",
    )
    # A patcher that declines after an update keeps the update, and is told it declined.
    assert project.update_file(P("settings.py"), lambda s: None).status == "skip"
    assert project.files[P("settings.py")].status == "update"
    assert project.files[P("settings.py")].after == "A = 1\nB = 2\nC = 3\n"


def test_unrecognised_or_absent_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "urls.py").write_text("urlpatterns = make()\n")
    project = Project(tmp_path)
    assert project.update_file(P("urls.py"), lambda s: None).status == "skip"
    assert project.update_file(P("missing.py"), lambda s: s).status == "skip"
    assert project.update_file(P("urls.py"), lambda s: s).status == "identical"
    assert project.changed == []


def test_feedback_is_deduplicated_where_it_repeats(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.add_notice("run migrate")
    project.add_notice("run migrate")
    project.add_task("makemigrations", "chat")
    project.add_task("makemigrations", "chat")
    assert project.notices == ["run migrate"]
    assert len(project.tasks) == 1
