from __future__ import annotations

from functools import partial

from django_ai_chat.gen.patch.settings import (
    add_to_list_setting_new,
    configure_new,
    defines,
    prepend_to_extension_new,
    star_imports,
)
from tests.gen.patch.tools import check_noop, check_transformed

add_apps = partial(
    add_to_list_setting_new, name="INSTALLED_APPS", values=["django_ai_chat", "chat"]
)
add_app = partial(add_to_list_setting_new, name="INSTALLED_APPS", values=["chat"], role="local")
add_ours = partial(add_to_list_setting_new, name="INSTALLED_APPS", values=["django_ai_chat"])
add_daphne = partial(add_to_list_setting_new, name="INSTALLED_APPS", values=["daphne"], first=True)
api_key = partial(
    configure_new,
    name="OPENAI_API_KEY",
    code='# The key.\nOPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")\n',
    imports=["os"],
)


# Left alone: anything not a single literal list of strings at module level.


def test_apps_from_another_module_are_left_alone() -> None:
    check_noop(add_apps, "from .base import *\n", recognised=False)


def test_installed_apps_augmented_by_something_computed_is_left_alone() -> None:
    check_noop(add_apps, "INSTALLED_APPS = ['a']\nINSTALLED_APPS += extra()\n", recognised=False)


def test_installed_apps_only_extending_another_modules_list_is_left_alone() -> None:
    check_noop(add_apps, "INSTALLED_APPS = [*INSTALLED_APPS, 'x']\n", recognised=False)


def test_a_part_of_the_sum_that_is_not_a_literal_is_left_alone() -> None:
    source = "A = ['a']\nLOCAL_APPS = env.list('APPS')\nINSTALLED_APPS = A + LOCAL_APPS\n"
    check_noop(add_apps, source, recognised=False)


def test_a_part_of_the_sum_assigned_twice_is_left_alone() -> None:
    source = "A = ['a']\nA = ['b']\nINSTALLED_APPS = A + ['c']\n"
    check_noop(add_apps, source, recognised=False)


def test_computed_installed_apps_is_left_alone() -> None:
    check_noop(add_apps, "INSTALLED_APPS = base.INSTALLED_APPS + ['x']\n", recognised=False)


def test_installed_apps_with_a_non_string_is_left_alone() -> None:
    check_noop(add_apps, "INSTALLED_APPS = ['a', *EXTRA]\n", recognised=False)


def test_installed_apps_assigned_inside_if_too_is_left_alone() -> None:
    source = "INSTALLED_APPS = ['a']\nif DEBUG:\n    INSTALLED_APPS = ['a', 'debug_toolbar']\n"
    check_noop(add_apps, source, recognised=False)


def test_invalid_python_is_left_alone() -> None:
    check_noop(add_apps, "INSTALLED_APPS = [\n", recognised=False)


def test_apps_already_listed_change_nothing() -> None:
    check_noop(add_apps, "INSTALLED_APPS = [\n    'chat',\n    'django_ai_chat',\n]\n")


# Transformed.


def test_apps_are_appended_in_the_files_quote_style() -> None:
    check_transformed(
        add_apps,
        """\
        INSTALLED_APPS = [
            'django.contrib.admin',
        ]
        """,
        """\
        INSTALLED_APPS = [
            'django.contrib.admin',
            'django_ai_chat',
            'chat',
        ]
        """,
    )


def test_only_missing_apps_are_added_to_a_tuple() -> None:
    check_transformed(
        add_apps,
        'INSTALLED_APPS = ("chat",)\n',
        'INSTALLED_APPS = ("chat", "django_ai_chat")\n',
    )


def test_an_empty_list_gets_the_apps() -> None:
    check_transformed(
        add_apps, "INSTALLED_APPS = []\n", 'INSTALLED_APPS = ["django_ai_chat", "chat"]\n'
    )


def test_daphne_goes_first() -> None:
    check_transformed(
        add_daphne,
        "INSTALLED_APPS = [\n    'django.contrib.staticfiles',\n]\n",
        "INSTALLED_APPS = [\n    'daphne',\n    'django.contrib.staticfiles',\n]\n",
    )


def test_a_comment_after_the_last_app_stays_with_it() -> None:
    check_transformed(
        add_apps,
        "INSTALLED_APPS = [\n    'a',  # ours\n]\n",
        "INSTALLED_APPS = [\n    'a',  # ours\n    'django_ai_chat',\n    'chat',\n]\n",
    )


def test_middleware_uses_the_same_patcher() -> None:
    middleware = partial(
        add_to_list_setting_new, name="MIDDLEWARE", values=["django_htmx.middleware.HtmxMiddleware"]
    )
    check_transformed(
        middleware,
        "MIDDLEWARE = [\n    'x.Middleware',\n]\n",
        "MIDDLEWARE = [\n    'x.Middleware',\n    'django_htmx.middleware.HtmxMiddleware',\n]\n",
    )


def test_configure_new_leaves_star_importing_settings_alone() -> None:
    check_noop(api_key, "from .base import *\n", recognised=False)


def test_configure_new_leaves_a_defined_setting_alone() -> None:
    check_noop(api_key, "import os\nOPENAI_API_KEY = 'from-vault'\n")


def test_configure_new_appends_the_block_and_imports_os_first() -> None:
    check_transformed(
        api_key,
        '''\
        """Settings."""

        from pathlib import Path

        DEBUG = True
        ''',
        '''\
        """Settings."""

        import os
        from pathlib import Path

        DEBUG = True

        # The key.
        OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
        ''',
    )


def test_configure_new_matches_single_quotes() -> None:
    check_transformed(
        api_key,
        "import os\n\nX = 'a'\n",
        "import os\n\nX = 'a'\n\n# The key.\n"
        "OPENAI_API_KEY = os.environ.get('OPENAI_API_KEY', '')\n",
    )


def test_apps_already_added_by_augmentation_change_nothing() -> None:
    check_noop(
        add_apps,
        """\
        INSTALLED_APPS = ['a']
        INSTALLED_APPS += ['django_ai_chat']
        INSTALLED_APPS.append('chat')
        """,
    )


# The shapes real projects use.

COOKIECUTTER = """\
DJANGO_APPS = [
    "django.contrib.auth",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "crispy_forms",
]

LOCAL_APPS = [
    "myproject.users",
    # Your stuff: custom apps go here
]
# https://docs.djangoproject.com/en/dev/ref/settings/#installed-apps
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS
"""


def test_a_sum_of_lists_gets_ours_in_third_party_and_the_app_in_local() -> None:
    ours = COOKIECUTTER.replace('"crispy_forms",\n', '"crispy_forms",\n    "django_ai_chat",\n')
    check_transformed(add_ours, COOKIECUTTER, ours)
    app = ours.replace('"myproject.users",\n', '"myproject.users",\n    "chat",\n')
    check_transformed(add_app, ours, app)
    daphne = app.replace("DJANGO_APPS = [\n", 'DJANGO_APPS = [\n    "daphne",\n')
    check_transformed(add_daphne, app, daphne)


def test_a_sum_without_telling_names_gets_everything_in_its_last_part() -> None:
    check_transformed(
        add_apps,
        "BASE = ['a']\nINSTALLED_APPS = BASE + ['b']\n",
        "BASE = ['a']\nINSTALLED_APPS = BASE + ['b', 'django_ai_chat', 'chat']\n",
    )
    check_transformed(
        add_daphne,
        "BASE = ('a',)\nINSTALLED_APPS = BASE + ('b',)\n",
        "BASE = ('daphne', 'a')\nINSTALLED_APPS = BASE + ('b',)\n",
    )


def test_augmented_installed_apps_gets_the_apps_in_its_definition() -> None:
    check_transformed(
        add_apps,
        """\
        INSTALLED_APPS = [
            'a',
        ]
        INSTALLED_APPS += ['debug_toolbar']
        if DEBUG:
            INSTALLED_APPS.append('django_extensions')
        INSTALLED_APPS = [*INSTALLED_APPS, 'x']
        """,
        """\
        INSTALLED_APPS = [
            'a',
            'django_ai_chat',
            'chat',
        ]
        INSTALLED_APPS += ['debug_toolbar']
        if DEBUG:
            INSTALLED_APPS.append('django_extensions')
        INSTALLED_APPS = [*INSTALLED_APPS, 'x']
        """,
    )


def test_the_defining_file_is_told_apart_from_one_that_extends() -> None:
    assert defines(COOKIECUTTER, "INSTALLED_APPS")
    extending = "from .base import *  # noqa\n\nINSTALLED_APPS = ['whitenoise', *INSTALLED_APPS]\n"
    assert not defines(extending, "INSTALLED_APPS")
    assert not defines("INSTALLED_APPS += ['x']\n", "INSTALLED_APPS")
    source = (
        "from .base import *\ntry:\n    from config.local import *\nexcept ImportError:\n    pass\n"
    )
    assert star_imports(source) == [(0, "config.local"), (1, "base")]


prepend_daphne = partial(prepend_to_extension_new, name="INSTALLED_APPS", value="daphne")


def test_daphne_goes_before_the_apps_a_later_file_puts_first() -> None:
    check_transformed(
        prepend_daphne,
        """\
        from .base import *  # noqa: F403

        INSTALLED_APPS = ["whitenoise.runserver_nostatic", *INSTALLED_APPS]  # noqa: F405
        """,
        """\
        from .base import *  # noqa: F403

        INSTALLED_APPS = ["daphne", "whitenoise.runserver_nostatic", *INSTALLED_APPS]  # noqa: F405
        """,
    )


def test_prepending_needs_a_line_that_puts_apps_first() -> None:
    check_noop(prepend_daphne, "INSTALLED_APPS = [*INSTALLED_APPS, 'x']\n", recognised=False)
    check_noop(prepend_daphne, "INSTALLED_APPS = ['a']\n", recognised=False)
