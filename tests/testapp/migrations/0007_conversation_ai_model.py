from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0006_message_search"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="ai_model",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Chosen from AI_CHAT_MODELS; empty: the responder's model.",
                max_length=100,
            ),
        ),
    ]
