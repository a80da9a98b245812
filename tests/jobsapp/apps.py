from __future__ import annotations

from django.apps import AppConfig


class JobsAppConfig(AppConfig):
    """A chat app's jobs on `tests.testapp`'s chat models: `django_ai_chat.jobs` tested."""

    name = "tests.jobsapp"
    label = "jobsapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the tasks with procrastinate, as a generated app's ready() does.
        from . import jobs  # noqa: F401
