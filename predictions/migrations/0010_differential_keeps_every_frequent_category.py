"""The differential task keeps every category with enough visits (max_classes 20 -> 40).

With the demo's longitudinal cohort (``seed_demo --longitudinal``, default 300 patients) the
labelled visits span 23 ICD-10 categories; a cap of 20 put the three rarest, acute myocardial
infarction, appendicitis and sepsis, into "other", so the model could never suggest them.
"""

from django.db import migrations

MAX_CLASSES = 40


def raise_cap(apps, schema_editor):
    PredictionTask = apps.get_model("predictions", "PredictionTask")
    for task in PredictionTask.objects.filter(slug="differential"):
        if task.config.get("max_classes", 20) < MAX_CLASSES:
            task.config = {**task.config, "max_classes": MAX_CLASSES}
            task.save(update_fields=["config"])


class Migration(migrations.Migration):
    dependencies = [("predictions", "0009_forecast_task_kind")]
    operations = [migrations.RunPython(raise_cap, migrations.RunPython.noop)]
