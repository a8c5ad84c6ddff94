# Monitoring snapshots and model alerts (issue 8: operations view).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0002_default_tasks"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="MonitoringSnapshot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("computed_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("window_days", models.PositiveSmallIntegerField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("ok", "OK: behaving as on the day it was promoted"),
                            ("watch", "Watch: something moved, look at it"),
                            ("act", "Act: the model may be unsafe to use as is"),
                        ],
                        default="ok",
                        max_length=8,
                    ),
                ),
                ("input_drift", models.JSONField(blank=True, default=dict)),
                ("output_drift", models.JSONField(blank=True, default=dict)),
                ("performance", models.JSONField(blank=True, default=dict)),
                ("alerts", models.JSONField(blank=True, default=list)),
                (
                    "task",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="snapshots",
                        to="predictions.predictiontask",
                    ),
                ),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="snapshots",
                        to="predictions.modelversion",
                    ),
                ),
            ],
            options={
                "ordering": ["-computed_at", "-id"],
                "indexes": [
                    models.Index(fields=["task", "-computed_at"], name="snapshot_task_latest")
                ],
            },
        ),
        migrations.CreateModel(
            name="ModelAlert",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("severity", models.CharField(choices=[("watch", "Watch"), ("act", "Act")], max_length=8)),
                ("key", models.CharField(max_length=80)),
                ("message", models.TextField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("acknowledged_at", models.DateTimeField(blank=True, null=True)),
                (
                    "acknowledged_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "snapshot",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="model_alerts",
                        to="predictions.monitoringsnapshot",
                    ),
                ),
                (
                    "task",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="alerts",
                        to="predictions.predictiontask",
                    ),
                ),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="alerts",
                        to="predictions.modelversion",
                    ),
                ),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
    ]
