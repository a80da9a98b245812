from __future__ import annotations

from functools import partial

from django_ai_chat.gen.patch.settings import add_to_list_setting_new, configure_new
from tests.gen.patch.tools import check_noop, check_transformed

add_apps = partial(
    add_to_list_setting_new, name="INSTALLED_APPS", values=["django_ai_chat", "chat"]
)
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


def test_augmented_installed_apps_is_left_alone() -> None:
    check_noop(add_apps, "INSTALLED_APPS = ['a']\nINSTALLED_APPS += ['b']\n", recognised=False)


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
