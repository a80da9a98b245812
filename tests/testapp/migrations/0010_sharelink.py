from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

import django_ai_chat.models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0009_message_summary"),
    ]

    operations = [
        migrations.CreateModel(
            name="ShareLink",
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
                    "token",
                    models.CharField(
                        default=django_ai_chat.models.new_share_token,
                        editable=False,
                        max_length=64,
                        unique=True,
                    ),
                ),
                ("title", models.CharField(blank=True, default="", max_length=120)),
                (
                    "messages",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="The shared messages, copied when shared.",
                    ),
                ),
                ("inserted_at", models.DateTimeField(auto_now_add=True)),
                (
                    "updated_at",
                    models.DateTimeField(
                        auto_now=True, db_index=True, help_text="When the snapshot was taken."
                    ),
                ),
                (
                    "conversation",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="share_link",
                        to="testapp.conversation",
                    ),
                ),
            ],
            options={
                "ordering": ["-updated_at"],
                "abstract": False,
            },
        ),
    ]
