"""Forecast tasks are monitored: predicted-risk drift and live AUC/Brier as outcomes become known."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from predictions.models import ModelVersion, MonitoringSnapshot, PredictionTask, TrainingJob
from predictions.services.monitoring import monitoring_run, snapshot_take
from predictions.services.training import training_job_execute

SLUG = "diabetes-forecast"


@pytest.fixture
def monitored_forecast(db, team_a, doctor_a, settings):
    from visits.demo import generate_population
    from visits.demo_import import population_import

    population_import(
        population=generate_population(n_visits=30, seed=11, longitudinal_patients=260),
        teams=[team_a],
        attendings=[doctor_a],
    )
    settings.MEDAI_FORECAST_ALGORITHMS = ["count_logistic_regression"]
    settings.MEDAI_FORECAST_CV_FOLDS = 2
    job = TrainingJob.objects.create(
        task=PredictionTask.objects.get(slug=SLUG), trigger=TrainingJob.Trigger.ADMIN
    )
    job = training_job_execute(job_id=job.pk)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    return PredictionTask.objects.select_related("active_version").get(slug=SLUG)


def test_a_forecast_snapshot_has_risk_drift_and_waits_for_outcomes(monitored_forecast):
    task = monitored_forecast
    version = task.active_version
    reference = version.report["output_reference"]["score"]
    assert len(reference) == version.comparison["holdout_visits"]
    snapshot = snapshot_take(task=task, window_days=3650)
    drift = snapshot.output_drift["checks"]["predicted risk"]
    assert drift["n_reference"] == len(reference)
    assert drift["n_window"] == snapshot.input_drift["window_n"] > 0
    assert snapshot.output_drift["probabilities"]["reference_source"].startswith("risks given")
    # Trained just now: every forecast at its data cut is still within its two-year horizon, and
    # nothing was diagnosed after it, so nothing is known and no AUC is claimed.
    performance = snapshot.performance
    assert performance["n"] == 0
    assert performance["pending"] > 0
    assert performance["roc_auc"]["value"] is None


def test_live_auc_and_brier_with_cis_once_outcomes_are_known(monitored_forecast, settings):
    task = monitored_forecast
    version = task.active_version
    # As if the version had been trained three years ago: the demo's later diagnoses are the
    # outcomes of its forecasts, and the two-year horizon has passed for everyone.
    ModelVersion.objects.filter(pk=version.pk).update(
        created_at=timezone.now() - timedelta(days=3 * 365)
    )
    snapshots = monitoring_run(task_id=task.pk)
    assert [s.task_id for s in snapshots] == [task.pk]
    performance = snapshots[0].performance
    assert performance["pending"] == 0
    assert performance["positives"] > 0
    assert performance["negatives"] > 0
    assert performance["n"] == performance["positives"] + performance["negatives"]
    auc, brier = performance["roc_auc"], performance["brier"]
    assert 0.0 <= auc["value"] <= 1.0
    assert auc["ci"][0] <= auc["value"] <= auc["ci"][1]
    assert brier["ci"][0] <= brier["value"] <= brier["ci"][1]
    assert performance["reference"]["roc_auc"] == version.holdout_metrics["roc_auc"]


def test_a_live_auc_far_below_the_promotion_figure_raises_an_alert(monitored_forecast):
    task = monitored_forecast
    version = task.active_version
    ModelVersion.objects.filter(pk=version.pk).update(
        created_at=timezone.now() - timedelta(days=3 * 365),
        holdout_metrics={**version.holdout_metrics, "roc_auc": 1.5},  # unreachable on purpose
    )
    task.refresh_from_db()
    snapshot = snapshot_take(task=PredictionTask.objects.get(pk=task.pk))
    assert snapshot.performance["n"] >= 30
    assert snapshot.status in (MonitoringSnapshot.Status.WATCH, MonitoringSnapshot.Status.ACT)
    assert any(a["key"] == "performance:roc_auc" for a in snapshot.alerts)


def test_the_monitoring_page_shows_the_forecast_task(monitored_forecast, admin_user, client):
    snapshot_take(task=monitored_forecast, window_days=3650)
    client.force_login(admin_user)
    page = client.get("/admin/predictions/monitoringsnapshot/").content.decode()
    assert monitored_forecast.name in page
    assert "Live ROC AUC" in page
