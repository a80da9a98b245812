from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0008_message_thinking"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="summary",
            field=models.TextField(
                blank=True,
                default="",
                help_text="Summary of the conversation up to this message.",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="summary_count",
            field=models.PositiveIntegerField(
                default=0, help_text="Messages the summary covers (this one included)."
            ),
        ),
    ]
