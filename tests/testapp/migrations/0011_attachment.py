from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

import django_ai_chat.attachments
import django_ai_chat.models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0010_sharelink"),
    ]

    operations = [
        migrations.CreateModel(
            name="Attachment",
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
                    "file",
                    models.FileField(
                        max_length=255,
                        storage=django_ai_chat.attachments.attachment_storage,
                        upload_to=django_ai_chat.attachments.attachment_upload_to,
                    ),
                ),
                (
                    "name",
                    models.CharField(help_text="The name it was uploaded under.", max_length=255),
                ),
                (
                    "content_type",
                    models.CharField(help_text="Read from the content.", max_length=100),
                ),
                ("size", models.PositiveBigIntegerField(help_text="Bytes.")),
                (
                    "text",
                    models.TextField(
                        blank=True, default="", help_text="Extracted text (PDF, text files)."
                    ),
                ),
                (
                    "pages",
                    models.PositiveIntegerField(blank=True, help_text="Pages of a PDF.", null=True),
                ),
                (
                    "sent_as",
                    models.CharField(
                        blank=True,
                        choices=[("file", "As a file"), ("text", "As text")],
                        default="",
                        max_length=4,
                    ),
                ),
                ("inserted_at", models.DateTimeField(auto_now_add=True)),
                (
                    "message",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attachments",
                        to="testapp.message",
                    ),
                ),
            ],
            options={
                "ordering": ["id"],
                "abstract": False,
            },
        ),
    ]
