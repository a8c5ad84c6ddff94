"""Every enabled task's active artifact loads: part of the advice pipeline's health.

A missing file, a failed sha256 or library-version check is reported naming the task and version
(never a path), on the Operations page (predictions/views.py). Not part of the web's readiness
(/readyz): a model the worker cannot use stops advice for that task, not visit recording.
"""

from __future__ import annotations

from medai_site.health import OK, ReadinessFailure

from .ml.artifacts import load_model
from .ml.timeline.artifacts import load_forecast_model
from .models import PredictionTask


def check_models() -> str:
    failed = []
    tasks = PredictionTask.objects.filter(enabled=True, active_version__isnull=False)
    for task in tasks.select_related("active_version").order_by("slug"):
        version = task.active_version
        try:
            if task.kind == PredictionTask.Kind.FORECAST:
                load_forecast_model(version.artifact_path, version.artifact_sha256)
            else:
                load_model(version.artifact_path, version.artifact_sha256)
        except Exception as exc:  # any reason the worker could not use it counts
            failed.append(f"{task.slug} v{version.number} ({type(exc).__name__})")
    if failed:
        raise ReadinessFailure("artifact does not load: " + ", ".join(failed))
    return OK
