from __future__ import annotations

from django_ai_chat.jobs import ChatJobs

from .responder import responder

chat_jobs = ChatJobs("jobsapp", responder)
