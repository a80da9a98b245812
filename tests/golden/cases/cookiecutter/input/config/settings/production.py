# ruff: noqa: E501
import os

from .base import *  # noqa: F403
from .base import DATABASES
from .base import INSTALLED_APPS

# GENERAL
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/dev/ref/settings/#secret-key
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
# https://docs.djangoproject.com/en/dev/ref/settings/#allowed-hosts
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "example.com").split(",")

# DATABASES
# ------------------------------------------------------------------------------
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "60"))

# django-anymail (stand-in)
# ------------------------------------------------------------------------------
INSTALLED_APPS += ["django.contrib.redirects"]

# Your stuff...
# ------------------------------------------------------------------------------
