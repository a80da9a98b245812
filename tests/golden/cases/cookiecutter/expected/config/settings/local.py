# ruff: noqa: E501
from .base import *  # noqa: F403
from .base import INSTALLED_APPS
from .base import MIDDLEWARE

# GENERAL
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/dev/ref/settings/#debug
DEBUG = True
# https://docs.djangoproject.com/en/dev/ref/settings/#secret-key
SECRET_KEY = "golden-tests-only-not-secret"
# https://docs.djangoproject.com/en/dev/ref/settings/#allowed-hosts
ALLOWED_HOSTS = ["localhost", "0.0.0.0", "127.0.0.1"]  # noqa: S104

# WhiteNoise (stands in for "whitenoise.runserver_nostatic", which is not installed here)
# ------------------------------------------------------------------------------
# http://whitenoise.evans.io/en/latest/django.html#using-whitenoise-in-development
INSTALLED_APPS = ["daphne", "django.contrib.humanize", *INSTALLED_APPS]


# django-debug-toolbar (stand-ins)
# ------------------------------------------------------------------------------
INSTALLED_APPS += ["django.contrib.flatpages"]
MIDDLEWARE += ["django.contrib.flatpages.middleware.FlatpageFallbackMiddleware"]

# Your stuff...
# ------------------------------------------------------------------------------
