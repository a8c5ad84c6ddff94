"""A version's report in displayable pieces for the model pages, and its plot files.

The report is what the engine wrote (``ModelVersion.report``/``metrics``/``holdout_metrics``);
this module only picks and orders it (the rows themselves come from predictions/selectors.py). Plot files are served only when registered on a version and
inside ``MODEL_ARTIFACT_DIR``: a crafted name can never reach another file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from medai_site.errors import NotFound

from .models import ModelVersion
from .wording import class_display

PLOT_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}
# Metric keys shown in the summary tables, in reading order.
SUMMARY_METRICS = ("roc_auc", "accuracy", "balanced_accuracy", "top3_accuracy", "brier", "ece")
SUBGROUP_METRICS = ("n", "accuracy", "roc_auc", "brier", "top3_accuracy", "sensitivity")


@dataclass(frozen=True)
class SubgroupRow:
    group: str
    level: str
    metrics: dict[str, Any]


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
