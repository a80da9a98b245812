from __future__ import annotations

from django.apps import AppConfig


class DjangoAiChatConfig(AppConfig):
    """Registers the runtime: system checks, template tags, static files, tool autodiscovery."""

    name = "django_ai_chat"
    label = "django_ai_chat"
    verbose_name = "AI chat"

    def ready(self) -> None:
        """Register the checks and the `demo:` model; import every installed app's `ai_tools`."""
        from django.utils.module_loading import autodiscover_modules

        from django_ai_chat import checks  # noqa: F401  (registers the system checks)
        from django_ai_chat.dev import demo_model  # noqa: F401  (registers "demo:" in llm)

        # Every installed app may declare tools in an `ai_tools` module.
        autodiscover_modules("ai_tools")
