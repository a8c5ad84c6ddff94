"""Model monitoring's writes: the only writer of MonitoringSnapshot and ModelAlert.

``monitoring_run`` (nightly, and on demand from the admin) stores one snapshot per active model
version, computed by predictions/monitoring.py (forecast tasks: predictions/forecast_monitoring.py). Each watch/act reason becomes a ModelAlert for
admins, raised once until acknowledged; with ``MEDAI_MONITORING_AUTO_DISABLE`` an ``act``
switches the task off through the registry's kill switch, with the reason recorded.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from medai_site.errors import Conflict
from predictions.forecast_monitoring import forecast_snapshot_compute
from predictions.ml.errors import EngineError
from predictions.models import ModelAlert, MonitoringSnapshot, PredictionTask
from predictions.monitoring import snapshot_compute

from . import registry

logger = logging.getLogger(__name__)


def monitoring_run(
    *, task_id: int | None = None, now: datetime | None = None
) -> list[MonitoringSnapshot]:
    """One snapshot per task with an active version (only ``task_id`` when given)."""
    tasks = PredictionTask.objects.filter(active_version__isnull=False).select_related(
        "active_version__training_job"
    )
    if task_id is not None:
        tasks = tasks.filter(pk=task_id)
    snapshots = []
    for task in tasks.order_by("slug"):
        try:
            snapshots.append(snapshot_take(task=task, now=now))
        except EngineError as exc:
            # An unusable artifact is the registry's and the advice path's concern; monitoring
            # reports it and moves on to the other tasks.
            logger.warning("monitoring of %s skipped: %s", task.slug, type(exc).__name__)
    return snapshots


def snapshot_take(
    *, task: PredictionTask, now: datetime | None = None, window_days: int | None = None
) -> MonitoringSnapshot:
    """Compute and store one snapshot of ``task``'s active version; raise its alerts."""
    if task.active_version is None:
        raise Conflict(f"{task} has no active model to monitor.")
    window_days = window_days or settings.MEDAI_MONITORING_WINDOW_DAYS
    # Forecast tasks: predicted-risk drift and live performance as outcomes become known.
    compute = (
        forecast_snapshot_compute if task.kind == PredictionTask.Kind.FORECAST else snapshot_compute
    )
    computed = compute(task=task, now=now or timezone.now(), window_days=window_days)
    version, status, alerts = computed["version"], computed["status"], computed["alerts"]
    with transaction.atomic():
        snapshot = MonitoringSnapshot.objects.create(
            task=task,
            version=version,
            window_days=window_days,
            status=status,
            input_drift=computed["input_drift"],
            output_drift=computed["output_drift"],
            performance=computed["performance"],
            alerts=alerts,
        )
        open_alerts = set(
            ModelAlert.objects.filter(version=version, acknowledged_at__isnull=True).values_list(
                "key", "severity"
            )
        )
        ModelAlert.objects.bulk_create(
            ModelAlert(
                task=task,
                version=version,
                snapshot=snapshot,
                severity=a["severity"],
                key=a["key"][:80],
                message=a["message"],
            )
            for a in alerts
            if (a["key"][:80], a["severity"]) not in open_alerts
        )
    logger.info(
        "monitoring snapshot %s: %s v%s is %s (%d alerts)",
        snapshot.pk,
        task.slug,
        version.number,
        status,
        len(alerts),
    )
    if status == MonitoringSnapshot.Status.ACT and settings.MEDAI_MONITORING_AUTO_DISABLE:
        _auto_disable(task, snapshot, alerts)
    return snapshot


def alert_acknowledge(*, alert: ModelAlert, actor: object) -> ModelAlert:
    if alert.acknowledged_at is None:
        ModelAlert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=timezone.now(), acknowledged_by=actor
        )
        alert.refresh_from_db()
    return alert


def _auto_disable(task: PredictionTask, snapshot: MonitoringSnapshot, alerts: list[dict]) -> None:
    task.refresh_from_db(fields=["enabled"])
    if not task.enabled:
        return
    reasons = "; ".join(a["message"] for a in alerts if a["severity"] == "act")
    try:
        registry.task_set_enabled(
            task=task,
            enabled=False,
            reason=(
                f"Switched off automatically by monitoring (snapshot {snapshot.pk}, status act, "
                f"MEDAI_MONITORING_AUTO_DISABLE on): {reasons}"
            ),
            actor=None,
        )
    except Conflict:
        return  # switched off by someone else meanwhile
    logger.warning("monitoring switched %s off (snapshot %s)", task.slug, snapshot.pk)
