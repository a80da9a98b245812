from __future__ import annotations

from functools import partial

from django_ai_chat.gen.patch.deps import add_pyproject_dependencies_new, add_requirements_new
from tests.gen.patch.tools import check_noop

WANTED = ["django-ai-chat[openai]>=0.1.0", "daphne>=4.1"]
pyproject = partial(add_pyproject_dependencies_new, requirements=WANTED)
requirements = partial(add_requirements_new, requirements=WANTED)


def test_poetry_projects_are_left_alone() -> None:
    check_noop(pyproject, '[tool.poetry.dependencies]\ndjango = "^5.2"\n', recognised=False)


def test_a_project_without_dependencies_is_left_alone() -> None:
    check_noop(pyproject, '[project]\nname = "x"\n', recognised=False)


def test_invalid_toml_is_left_alone() -> None:
    check_noop(pyproject, "[project\n", recognised=False)


def test_listed_packages_are_not_added_again_whatever_their_spelling() -> None:
    check_noop(pyproject, '[project]\ndependencies = ["Django_AI.chat[anthropic]", "Daphne"]\n')
    check_noop(requirements, "django-ai-chat==0.1.0  # pinned\ndaphne\n")


def test_dependencies_are_appended_keeping_comments_and_layout() -> None:
    before = (
        '[project]\nname = "x"\ndependencies = [\n    "Django>=5.2",  # web\n]\n\n[tool.x]\na = 1\n'
    )
    after = pyproject(before)
    assert after == (
        '[project]\nname = "x"\ndependencies = [\n    "Django>=5.2",  # web\n'
        '    "django-ai-chat[openai]>=0.1.0",\n    "daphne>=4.1",\n]\n\n[tool.x]\na = 1\n'
    )
    assert pyproject(after) == after


def test_requirements_get_one_line_each() -> None:
    after = requirements("-r base.txt\nDjango>=5.2")
    assert after == "-r base.txt\nDjango>=5.2\ndjango-ai-chat[openai]>=0.1.0\ndaphne>=4.1\n"
    assert requirements(after) == after


def test_a_django_pin_outside_the_supported_versions_conflicts() -> None:
    from django_ai_chat.gen.patch.deps import conflicting, requirements_lines

    lines = requirements_lines(
        "-r base.txt\n"
        "Django==5.1.2  # pinned\n"
        "django[argon2]>=4.2,<5.0\n"
        "django==5.2.8  # https://www.djangoproject.com/\n"
        "Django>=5.2,<6.1\n"
        "Django~=5.1.0\n"
        "Django\n"
        "djangorestframework==3.14\n"
    )
    assert conflicting(lines, "django", ">=5.2") == [
        "Django==5.1.2",
        "django[argon2]>=4.2,<5.0",
        "Django~=5.1.0",
    ]
