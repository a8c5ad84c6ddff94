"""Forecast tasks in the registry: trained through the training service, gated and promoted."""

from __future__ import annotations

import pytest
from celery.schedules import crontab

from medai_site.celery import app
from medai_site.models import AuditEvent
from predictions.models import ActivationEvent, PredictionTask, TrainingJob
from predictions.services.registry import version_rollback
from predictions.services.training import training_job_execute, training_monthly_pretrain_start

LONGITUDINAL = 260


@pytest.fixture
def followed(db, team_a, doctor_a):
    """A population with patients followed over years (chronic disease progression)."""
    from visits.demo import generate_population
    from visits.demo_import import population_import

    return population_import(
        population=generate_population(n_visits=30, seed=11, longitudinal_patients=LONGITUDINAL),
        teams=[team_a],
        attendings=[doctor_a],
    )


@pytest.fixture(autouse=True)
def quick_forecasts(settings):
    settings.MEDAI_FORECAST_ALGORITHMS = ["count_logistic_regression"]
    settings.MEDAI_FORECAST_CV_FOLDS = 2


def _run(slug: str, trigger: str = TrainingJob.Trigger.ADMIN, actor=None) -> TrainingJob:
    job = TrainingJob.objects.create(
        task=PredictionTask.objects.get(slug=slug), trigger=trigger, started_by=actor
    )
    return training_job_execute(job_id=job.pk)


def test_forecast_tasks_are_in_the_registry(db):
    tasks = PredictionTask.objects.filter(kind=PredictionTask.Kind.FORECAST)
    assert {t.slug for t in tasks} == {"ckd-forecast", "diabetes-forecast"}
    for task in tasks:
        assert task.config["codes"]
        assert task.config["horizon_days"] == 730
        assert task.intended_use
        assert task.limitations


def test_a_forecast_job_snapshots_meds_trains_and_becomes_active(followed, admin_user):
    job = _run("diabetes-forecast", actor=admin_user)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    task = PredictionTask.objects.get(slug="diabetes-forecast")
    version = task.active_version
    assert version is not None
    assert version.training_job_id == job.pk
    assert version.algorithm == "count_logistic_regression"
    assert version.feature_schema["kind"] == "forecast"
    assert job.snapshot["kind"] == "meds"
    assert job.snapshot["class_counts"]["true"] > 0
    assert version.data_hash == job.snapshot["hash"]
    assert version.holdout_metrics["roc_auc"] is not None
    assert version.report["selected"]["name"] == version.algorithm
    assert "baseline" in version.report
    event = task.activations.get()
    assert event.action == ActivationEvent.Action.AUTO_PROMOTE
    # The snapshot is an export: audited per patient, with the job's actor.
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.EXPORT, actor=admin_user, object_type="predictions.meds_export"
        ).count()
        == followed.patients
    )
    # The health check loads the forecast artifact like any other.
    from predictions.health import check_models

    assert check_models() == "ok"


def test_a_worse_forecast_is_not_promoted_and_rollback_works(followed, settings):
    first = _run("diabetes-forecast")
    assert first.status == TrainingJob.Status.SUCCEEDED, first.error
    task = PredictionTask.objects.get(slug="diabetes-forecast")
    champion = task.active_version
    # A challenger that cannot beat it: an absurdly strict AUC margin makes "not worse" impossible.
    settings.MEDAI_PROMOTION_AUC_MARGIN = -1.0
    second = _run("diabetes-forecast")
    task.refresh_from_db()
    assert task.active_version == champion
    challenger = second.model_version
    assert challenger.comparison["promote"] is False
    assert challenger.comparison["champion"]["roc_auc"] is not None
    # An admin may still promote it, then roll back to the champion.
    from predictions.services.registry import version_promote

    version_promote(version=challenger, reason="review", actor=None)
    version_rollback(task=task, reason="back", actor=None)
    task.refresh_from_db()
    assert task.active_version == champion


def test_nightly_job_fine_tunes_the_active_algorithm(followed):
    assert _run("diabetes-forecast").status == TrainingJob.Status.SUCCEEDED
    nightly = _run("diabetes-forecast", trigger=TrainingJob.Trigger.SCHEDULE)
    assert nightly.status == TrainingJob.Status.SUCCEEDED, nightly.error
    assert nightly.snapshot["mode"] == "finetune"
    assert nightly.model_version.report["mode"] == "finetune"
    assert nightly.model_version.algorithm == "count_logistic_regression"
    assert nightly.model_version.comparison["champion"]


def test_too_little_history_fails_the_job_clearly(db, team_a, doctor_a):
    from visits.demo import generate_population
    from visits.demo_import import population_import

    population_import(
        population=generate_population(n_visits=40, seed=2), teams=[team_a], attendings=[doctor_a]
    )
    job = _run("ckd-forecast")
    assert job.status == TrainingJob.Status.FAILED
    assert job.error  # the engine's or the service's words, e.g. "no subject has a usable..."
    assert "Traceback" not in job.error
    assert PredictionTask.objects.get(slug="ckd-forecast").active_version is None


def test_visit_advice_ignores_forecast_tasks(followed):
    from predictions.services.advice import _active_tasks

    assert _run("diabetes-forecast").status == TrainingJob.Status.SUCCEEDED
    assert all(t.kind != PredictionTask.Kind.FORECAST for t in _active_tasks())


def test_monthly_pretraining_queues_full_jobs_for_forecast_tasks(db, monkeypatch):
    monkeypatch.setattr("predictions.services.training._enqueue", lambda job_id: None)
    jobs = training_monthly_pretrain_start()
    assert {j.task.slug for j in jobs} == {"ckd-forecast", "diabetes-forecast"}
    assert {j.trigger for j in jobs} == {TrainingJob.Trigger.MONTHLY}


def test_beat_schedules_monthly_pretraining_and_nightly_training():
    from predictions import tasks

    monthly = app.conf.beat_schedule["forecast-monthly-pretraining"]
    assert monthly["task"] == tasks.training_monthly_pretrain_start.name
    assert isinstance(monthly["schedule"], crontab)
    assert monthly["schedule"].day_of_month == {1}
    nightly = app.conf.beat_schedule["nightly-training"]
    assert nightly["task"] == tasks.training_nightly_start.name
    assert nightly["schedule"].hour == {2}


def test_the_inline_prediction_api_refuses_forecast_tasks_clearly(db):
    from medai_site.errors import ModelUnavailable
    from predictions.services.serving import servable_version

    task = PredictionTask.objects.get(slug="ckd-forecast")
    with pytest.raises(ModelUnavailable, match="patient's course"):
        servable_version(task)
