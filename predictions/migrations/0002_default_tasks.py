from django.db import migrations

TASKS = [
    {
        "slug": "differential",
        "name": "Differential diagnosis",
        "kind": "differential",
        "config": {"min_class_visits": 30, "max_classes": 20},
        "intended_use": (
            "Ranks likely primary diagnoses (ICD-10 categories) for an adult visit from its vital "
            "signs, laboratory results, demographics and free-text complaint, to prompt the doctor "
            "to consider alternatives. Decision support only: the doctor makes the diagnosis."
        ),
        "limitations": (
            "Learns only this hospital's confirmed diagnoses; rare conditions are grouped as "
            "'other' and cannot be suggested. Not validated for children or pregnancy. "
            "Abstains when the visit is unlike its training data."
        ),
    },
    {
        "slug": "cad-risk",
        "name": "Coronary artery disease risk",
        "kind": "risk",
        "config": {"positive_prefixes": ["I20", "I21", "I22", "I23", "I24", "I25"],
                   "label": "coronary artery disease (I20–I25)"},
        "intended_use": (
            "Estimates the probability that the visit's confirmed diagnosis will be coronary "
            "artery disease (ICD-10 I20–I25), to flag patients who may need cardiac work-up."
        ),
        "limitations": "Not a substitute for ECG, troponin pathways or angiography.",
    },
]


def create_tasks(apps, schema_editor):
    PredictionTask = apps.get_model("predictions", "PredictionTask")
    for task in TASKS:
        PredictionTask.objects.get_or_create(slug=task["slug"], defaults=task)


class Migration(migrations.Migration):
    dependencies = [("predictions", "0001_initial")]
    operations = [migrations.RunPython(create_tasks, migrations.RunPython.noop)]
