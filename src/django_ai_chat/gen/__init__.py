"""The generator: `ChatOptions` → in-memory `Project` change set → diff, confirm, write.

Entry points: `django-ai-chat gen` and `manage.py gen_chat`; both call
`django_ai_chat.cli.gen.generate`.
"""
