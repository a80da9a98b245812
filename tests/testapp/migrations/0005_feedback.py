from __future__ import annotations

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import django_ai_chat.models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0004_message_usage"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Feedback",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=django_ai_chat.models.new_id,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "rating",
                    models.CharField(
                        choices=[("up", "Thumbs up"), ("down", "Thumbs down")], max_length=4
                    ),
                ),
                ("note", models.TextField(blank=True, default="", max_length=2000)),
                ("inserted_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True, db_index=True)),
                (
                    "message",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="feedback",
                        to="testapp.message",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chat_feedback",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-updated_at"],
                "abstract": False,
                "constraints": [
                    models.UniqueConstraint(
                        fields=("message", "user"), name="testapp_feedback_once"
                    )
                ],
            },
        ),
    ]
