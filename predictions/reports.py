"""Reads for the model pages: a version's report in displayable pieces, its plot files, jobs.

The report is what the engine wrote (``ModelVersion.report``/``metrics``/``holdout_metrics``);
this module only picks and orders it. Plot files are served only when registered on a version and
inside ``MODEL_ARTIFACT_DIR``: a crafted name can never reach another file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from medai_site.errors import NotFound
from visits.icd10 import icd10_lookup

from .models import ModelVersion, PredictionTask, TrainingJob
from .visit_records import OTHER_CLASS

PLOT_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}
# Metric keys shown in the summary tables, in reading order.
SUMMARY_METRICS = ("roc_auc", "accuracy", "balanced_accuracy", "top3_accuracy", "brier", "ece")
SUBGROUP_METRICS = ("n", "accuracy", "roc_auc", "brier", "top3_accuracy", "sensitivity")


@dataclass(frozen=True)
class SubgroupRow:
    group: str
    level: str
    metrics: dict[str, Any]


def training_jobs_recent(*, task: PredictionTask, limit: int = 5) -> QuerySet[TrainingJob]:
    return TrainingJob.objects.filter(task=task).select_related("started_by")[:limit]


def training_job_running(*, task: PredictionTask) -> TrainingJob | None:
    return (
        TrainingJob.objects.filter(
            task=task, status__in=[TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING]
        )
        .order_by("-created_at")
        .first()
    )


def class_display(label: str) -> str:
    """'j18' (the engine's normalised class) -> 'J18 Pneumonia, organism unspecified'."""
    if label == OTHER_CLASS:
        return "Other (less frequent diagnoses)"
    if label in ("0", "1"):
        return label
    try:
        code, display = icd10_lookup(label.upper())
    except Exception:
        return label
    return f"{code} {display}"


def subgroup_rows(metrics: dict[str, Any]) -> list[SubgroupRow]:
    rows = []
    for group, levels in (metrics.get("subgroups") or {}).items():
        for level, values in levels.items():
            rows.append(SubgroupRow(group=group, level=level, metrics=values))
    return rows


def subgroup_keys(rows: list[SubgroupRow]) -> list[str]:
    """The subgroup metrics this report has (binary and multi-class tasks differ)."""
    return [k for k in SUBGROUP_METRICS if any(k in row.metrics for row in rows)]


def per_class_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"label": class_display(label), **values}
        for label, values in (metrics.get("per_class") or {}).items()
    ]


def plot_path(*, version: ModelVersion, name: str) -> Path:
    """The registered plot file ``name`` of ``version``; NotFound for anything else."""
    registered = (version.plots or {}).get(name)
    if not registered:
        raise NotFound("Plot not found.")
    root = Path(settings.MODEL_ARTIFACT_DIR).resolve()
    path = Path(registered)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root) or path.suffix.lower() not in PLOT_TYPES:
        raise NotFound("Plot not found.")
    if not path.is_file():
        raise NotFound("Plot not found.")
    return path


def plot_names(version: ModelVersion) -> list[str]:
    order = {"roc": 0, "calibration": 1, "confusion_matrix": 2}
    return sorted((version.plots or {}).keys(), key=lambda n: (order.get(n, 9), n))
