from __future__ import annotations

from pathlib import Path, PurePosixPath

from django_ai_chat.gen.manifest import Entry, digest
from django_ai_chat.gen.project import FileChange, Project

P = PurePosixPath


def test_statuses_of_created_files(tmp_path: Path) -> None:
    (tmp_path / "same.py").write_text("x = 1\n")
    (tmp_path / "edited.py").write_text("x = 2  # mine\n")
    project = Project(tmp_path)
    assert project.create_file(P("new.py"), "x = 1\n").status == "create"
    assert project.create_file(P("same.py"), "x = 1\n").status == "identical"
    # No record of what the generator wrote: the difference may be the user's, so it is kept.
    kept = project.create_file(P("edited.py"), "x = 1\n")
    assert kept.status == "outdated"
    assert not kept.writes
    assert project.read(P("edited.py")) == "x = 2  # mine\n"
    assert project.warnings == [] and project.notices == []
    assert [c.path for c in project.changed] == [P("new.py")]


def _generated(tmp_path: Path, name: str, base: str, disk: str) -> Entry:
    (tmp_path / name).write_text(disk)
    return Entry(digest(base), base)


BASE = "A = 1\n\nB = 2\n\nC = 3\n"


def test_a_re_run_never_changes_a_generated_file(tmp_path: Path) -> None:
    unedited = _generated(tmp_path, "unedited.py", BASE, BASE)
    edited = _generated(tmp_path, "edited.py", BASE, BASE.replace("A = 1", "A = 10"))
    project = Project(tmp_path)
    new = BASE.replace("C = 3", "C = 30")
    assert project.create_file(P("unedited.py"), new, record=unedited).status == "outdated"
    assert project.create_file(P("edited.py"), new, record=edited).status == "outdated"
    # Edited, and this version generates what it generated before: nothing to bring in.
    assert project.create_file(P("edited.py"), BASE, record=edited).status == "edited"
    assert project.changed == []


def test_upgrade_replaces_unedited_files_and_merges_edited_ones(tmp_path: Path) -> None:
    unedited = _generated(tmp_path, "unedited.py", BASE, BASE)
    edited = _generated(tmp_path, "edited.py", BASE, BASE.replace("A = 1", "A = 10"))
    clash = _generated(tmp_path, "clash.py", BASE, BASE.replace("C = 3", "C = 'mine'"))
    project = Project(tmp_path)
    new = BASE.replace("C = 3", "C = 30")

    def create(name: str, record: Entry) -> FileChange:
        return project.create_file(P(name), new, record=record, upgrade=True, label="v2")

    assert (create("unedited.py", unedited).status, project.read(P("unedited.py"))) == (
        "update",
        new,
    )
    merged = create("edited.py", edited)
    assert merged.status == "merge" and merged.writes
    assert merged.after == "A = 10\n\nB = 2\n\nC = 30\n"
    conflict = create("clash.py", clash)
    assert conflict.status == "conflict" and conflict.writes
    assert conflict.after == (
        "A = 1\n\nB = 2\n\n<<<<<<< yours\nC = 'mine'\n=======\nC = 30\n>>>>>>> v2\n"
    )


def test_upgrade_without_a_record_marks_every_difference(tmp_path: Path) -> None:
    (tmp_path / "old.py").write_text("A = 1\nB = 2\n")
    project = Project(tmp_path)
    change = project.create_file(P("old.py"), "A = 1\nB = 3\n", upgrade=True, label="v2")
    assert change.status == "conflict"
    assert change.after == "A = 1\n<<<<<<< yours\nB = 2\n=======\nB = 3\n>>>>>>> v2\n"


def test_a_verbatim_copy_is_replaced_whole_or_kept(tmp_path: Path) -> None:
    (tmp_path / "a.css").write_text("a{}\n")
    (tmp_path / "b.css").write_text("b{color:red}\n")
    project = Project(tmp_path)
    record = Entry(digest("a{}\n"), None)
    assert project.create_file(P("a.css"), "x{}\n", record=record, upgrade=True).status == "update"
    record = Entry(digest("b{}\n"), None)
    kept = project.create_file(P("b.css"), "x{}\n", record=record, upgrade=True)
    assert (kept.status, kept.writes) == ("outdated", False)


def test_a_file_no_longer_generated_is_deleted_unless_edited(tmp_path: Path) -> None:
    gone = _generated(tmp_path, "gone.py", BASE, BASE)
    mine = _generated(tmp_path, "mine.py", BASE, BASE + "D = 4\n")
    project = Project(tmp_path)
    deleted = project.remove_file(P("gone.py"), gone)
    assert deleted is not None and deleted.status == "delete" and deleted.writes
    assert project.read(P("gone.py")) is None
    kept = project.remove_file(P("mine.py"), mine)
    assert kept is not None and (kept.status, kept.writes) == ("edited", False)
    assert project.remove_file(P("absent.py"), gone) is None


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
