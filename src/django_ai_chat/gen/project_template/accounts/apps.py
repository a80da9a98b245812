from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users who log in with their email address and a password."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
