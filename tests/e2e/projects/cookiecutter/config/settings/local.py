import os

from .base import *  # noqa: F403
from .base import INSTALLED_APPS
from .base import MIDDLEWARE

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = True
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "!!!SET DJANGO_SECRET_KEY!!!")
ALLOWED_HOSTS = ["localhost", "0.0.0.0", "127.0.0.1"]  # noqa: S104

# CACHES
# ------------------------------------------------------------------------------
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "",
    },
}

# EMAIL
# ------------------------------------------------------------------------------
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# django-debug-toolbar in the real template (not installed here): the same `+=` shapes
# ------------------------------------------------------------------------------
INSTALLED_APPS += ["django.contrib.admindocs"]
MIDDLEWARE += ["django.contrib.admindocs.middleware.XViewMiddleware"]
INTERNAL_IPS = ["127.0.0.1", "10.0.2.2"]

# Your stuff...
# ------------------------------------------------------------------------------
