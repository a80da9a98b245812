from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0007_conversation_ai_model"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="thinking",
            field=models.TextField(
                blank=True,
                default="",
                help_text="The model's reasoning, as the provider streamed it.",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="thinking_seconds",
            field=models.FloatField(
                blank=True, help_text="How long the model thought before answering.", null=True
            ),
        ),
    ]
