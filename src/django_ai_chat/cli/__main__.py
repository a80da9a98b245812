"""`python -m django_ai_chat.cli`: the `django-ai-chat` console script."""

from __future__ import annotations

import sys

from django_ai_chat.cli import main

sys.exit(main())
