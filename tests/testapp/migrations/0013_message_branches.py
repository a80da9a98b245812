from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

from django_ai_chat.branches import link_linear_history


def _link(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Existing rows follow the message before them, as they always read: written down, so that
    # new branched rows sort among them without changing what they follow.
    link_linear_history(apps.get_model("testapp", "Message"))


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0012_toolapproval"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="activated_at",
            field=models.DateTimeField(
                blank=True, help_text="The newest among siblings is on the active path.", null=True
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                help_text="The message this one follows (its siblings share it).",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="children",
                to="testapp.message",
            ),
        ),
        migrations.RunPython(_link, migrations.RunPython.noop),
    ]
