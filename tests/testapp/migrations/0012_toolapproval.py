from __future__ import annotations

import django.core.serializers.json
import django.db.models.deletion
from django.db import migrations, models

import django_ai_chat.approvals
import django_ai_chat.models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0011_attachment"),
    ]

    operations = [
        migrations.CreateModel(
            name="ToolApproval",
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
                ("call_id", models.CharField(max_length=200)),
                ("tool_name", models.CharField(max_length=100)),
                (
                    "arguments",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                    ),
                ),
                (
                    "description",
                    models.JSONField(
                        blank=True,
                        default=list,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("approved", "Approved"),
                            ("denied", "Denied"),
                            ("expired", "Expired"),
                        ],
                        db_index=True,
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("reason", models.TextField(blank=True, default="", max_length=2000)),
                ("batch", models.UUIDField(db_index=True, default=django_ai_chat.models.new_id)),
                (
                    "run_state",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                    ),
                ),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                (
                    "expires_at",
                    models.DateTimeField(default=django_ai_chat.approvals.default_expiry),
                ),
                ("ran_at", models.DateTimeField(blank=True, null=True)),
                (
                    "result",
                    models.JSONField(
                        blank=True,
                        encoder=django.core.serializers.json.DjangoJSONEncoder,
                        null=True,
                    ),
                ),
                ("inserted_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "message",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="approvals",
                        to="testapp.message",
                    ),
                ),
            ],
            options={
                "ordering": ["inserted_at", "id"],
                "abstract": False,
            },
        ),
    ]
