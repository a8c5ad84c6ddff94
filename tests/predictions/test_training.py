"""Training jobs: snapshot, labels, readable failures, immutable versions, the watchdog."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from medai_site.errors import Conflict
from predictions.ml.artifacts import file_sha256, load_model
from predictions.models import ActivationEvent, ModelVersion, PredictionTask, TrainingJob
from predictions.services.training import (
    MIN_TRAINING_VISITS,
    training_job_execute,
    training_job_start,
    training_job_watchdog,
)
from predictions.training_set import training_snapshot
from predictions.visit_records import differential_labels, labelled_visits, risk_labels
from tests.factories import PatientFactory
from visits.models import Diagnosis, Visit
from visits.services import ObservationInput, diagnosis_add, visit_create

from .conftest import train

pytestmark = pytest.mark.django_db


def make_visit(doctor, team, *diagnoses, status=Diagnosis.Status.CONFIRMED):
    """A visit with ``(code, rank)`` diagnoses, written through the services."""
    visit = visit_create(
        patient=PatientFactory(care_teams=[team]),
        attending=doctor,
        actor=doctor,
        request_advice=False,
        chief_complaint="chest pain",
        observations=[ObservationInput("8867-4", 88, "/min")],
    )
    for code, rank in diagnoses:
        diagnosis_add(visit=visit, code=code, rank=rank, status=status, actor=doctor)
    return visit


PRIMARY, SECONDARY = Diagnosis.Rank.PRIMARY, Diagnosis.Rank.SECONDARY


# --- labels --------------------------------------------------------------------------------------


def test_differential_labels_are_icd10_categories_with_rare_ones_grouped_as_other(doctor_a, team_a):
    frequent = [make_visit(doctor_a, team_a, ("J18.9", PRIMARY)) for _ in range(3)]
    frequent += [make_visit(doctor_a, team_a, ("J18.0", PRIMARY))]  # same category J18
    second = [make_visit(doctor_a, team_a, ("I10", PRIMARY)) for _ in range(2)]
    rare = make_visit(doctor_a, team_a, ("A41.9", PRIMARY), ("I10", SECONDARY))
    ids = [v.pk for v in (*frequent, *second, rare)]

    labels = differential_labels(ids, min_class_visits=2, max_classes=20)
    assert {labels[v.pk] for v in frequent} == {"J18"}
    assert {labels[v.pk] for v in second} == {"I10"}
    assert labels[rare.pk] == "other"  # the secondary I10 does not make it an I10 visit

    capped = differential_labels(ids, min_class_visits=2, max_classes=1)
    assert capped[frequent[0].pk] == "J18"  # the most frequent category keeps its own class
    assert capped[second[0].pk] == "other"


def test_only_visits_with_a_confirmed_primary_diagnosis_are_labelled(doctor_a, team_a):
    confirmed = make_visit(doctor_a, team_a, ("J18.9", PRIMARY))
    provisional = make_visit(
        doctor_a, team_a, ("J18.9", PRIMARY), status=Diagnosis.Status.PROVISIONAL
    )
    secondary_only = make_visit(doctor_a, team_a, ("J18.9", SECONDARY))
    labelled = set(labelled_visits().values_list("pk", flat=True))
    assert confirmed.pk in labelled
    assert provisional.pk not in labelled
    assert secondary_only.pk not in labelled


def test_cad_risk_labels_are_positive_for_any_confirmed_i20_to_i25(doctor_a, team_a):
    mi = make_visit(doctor_a, team_a, ("I21.9", PRIMARY))
    ihd_secondary = make_visit(doctor_a, team_a, ("I10", PRIMARY), ("I25.1", SECONDARY))
    hypertension = make_visit(doctor_a, team_a, ("I10", PRIMARY))
    heart_failure = make_visit(doctor_a, team_a, ("I50.9", PRIMARY))  # I50 is not I20–I25
    suspected = make_visit(
        doctor_a, team_a, ("I20.0", PRIMARY), status=Diagnosis.Status.PROVISIONAL
    )
    task = PredictionTask.objects.get(slug="cad-risk")
    visits = [mi, ihd_secondary, hypertension, heart_failure, suspected]
    labels = risk_labels([v.pk for v in visits], positive_prefixes=task.config["positive_prefixes"])
    assert [labels[v.pk] for v in visits] == ["1", "1", "0", "0", "0"]


# --- snapshot and the job's lifecycle --------------------------------------------------------------


def test_training_job_snapshots_visit_ids_hash_and_class_counts(population, admin_user):
    job = train("differential", actor=admin_user)

    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    assert (job.stage, job.percent, job.error) == ("done", 100, "")
    assert job.started_at <= job.finished_at
    snapshot = job.snapshot
    expected_ids = sorted(labelled_visits().values_list("pk", flat=True))
    assert snapshot["visit_ids"] == expected_ids
    assert snapshot["rows"] == len(expected_ids)
    assert re.fullmatch(r"[0-9a-f]{64}", snapshot["hash"])
    counts = snapshot["class_counts"]
    assert sum(counts.values()) == len(expected_ids)
    assert "other" in counts
    assert all(c == "other" or re.fullmatch(r"[A-Z]\d\d", c) for c in counts)
    task = PredictionTask.objects.get(slug="differential")
    assert all(n >= task.config["min_class_visits"] for c, n in counts.items() if c != "other")


def test_snapshot_hash_is_stable_and_changes_when_the_training_data_changes(population, doctor_a):
    task = PredictionTask.objects.get(slug="differential")
    _, first = training_snapshot(task)
    _, again = training_snapshot(task)
    assert first["hash"] == again["hash"]

    visit = Visit.objects.get(pk=first["visit_ids"][0])
    diagnosis = visit.diagnoses.get(rank=PRIMARY)
    Diagnosis.objects.filter(pk=diagnosis.pk).update(
        code="J18.9" if diagnosis.code != "J18.9" else "I10"
    )
    _, changed = training_snapshot(task)
    assert changed["hash"] != first["hash"]


def test_a_job_on_too_few_visits_fails_with_a_readable_reason(doctor_a, team_a):
    for _ in range(3):
        make_visit(doctor_a, team_a, ("J18.9", PRIMARY))
    job = train("differential")
    assert job.status == TrainingJob.Status.FAILED
    assert job.stage == "failed"
    assert job.error == (
        f"Only 3 visits have a confirmed primary diagnosis; at least {MIN_TRAINING_VISITS} are needed."
    )
    assert job.snapshot["rows"] == 3
    assert not ModelVersion.objects.exists()


def test_a_second_job_for_a_task_is_refused_while_one_is_queued(admin_user):
    task = PredictionTask.objects.get(slug="differential")
    job = training_job_start(task=task, actor=admin_user, trigger=TrainingJob.Trigger.ADMIN)
    assert (job.status, job.trigger, job.started_by) == ("queued", "admin", admin_user)
    with pytest.raises(Conflict, match="already queued or running"):
        training_job_start(task=task, actor=admin_user, trigger=TrainingJob.Trigger.ADMIN)


def test_a_redelivered_message_for_a_finished_or_live_job_does_nothing(population):
    job = train("differential")
    assert training_job_execute(job_id=job.pk).status == TrainingJob.Status.SUCCEEDED
    assert ModelVersion.objects.filter(task__slug="differential").count() == 1

    live = TrainingJob.objects.create(
        task=PredictionTask.objects.get(slug="cad-risk"),
        status=TrainingJob.Status.RUNNING,
        heartbeat_at=timezone.now(),
        attempts=1,
    )
    assert training_job_execute(job_id=live.pk).status == TrainingJob.Status.RUNNING
    live.refresh_from_db()
    assert live.attempts == 1  # the running worker keeps it; the duplicate did not start again


# --- the immutable version ------------------------------------------------------------------------


def test_model_version_records_artifact_schema_labels_libraries_data_hash_metrics_and_plots(
    population, admin_user
):
    job = train("differential", actor=admin_user)
    version = job.model_version

    path = Path(version.artifact_path)
    assert path.is_file()
    assert version.artifact_sha256 == file_sha256(path)
    assert version.artifact_size == path.stat().st_size
    model = load_model(path, version.artifact_sha256)
    assert version.label_map == {str(i): c for i, c in enumerate(model.classes)}
    assert "other" in version.label_map.values()
    assert version.feature_schema == model.feature_schema
    assert version.feature_schema  # non-empty
    assert {"numpy", "scikit-learn"} <= set(version.library_versions)
    assert version.data_hash == job.snapshot["hash"]
    assert version.algorithm == "logistic_regression"
    for metrics in (version.metrics, version.holdout_metrics):
        assert 0.5 < metrics["roc_auc"] <= 1
        assert 0 <= metrics["ece"] <= 1
    assert version.report["selected"]["name"] == "logistic_regression"
    assert version.report["similar_cases_index"]["sha256"]
    assert version.plots
    assert all(Path(p).is_file() for p in version.plots.values())
    assert version.created_by == admin_user
    assert version.training_job == job
    assert version.comparison["holdout_visits"] > 0


def test_risk_task_trains_a_binary_model_with_held_out_metrics(population):
    job = train("cad-risk")
    assert job.status == TrainingJob.Status.SUCCEEDED, job.error
    version = job.model_version
    assert version.label_map == {"0": "negative", "1": "positive"}
    assert set(job.snapshot["class_counts"]) == {"0", "1"}
    assert 0.5 < version.holdout_metrics["roc_auc"] <= 1


# --- the watchdog ----------------------------------------------------------------------------------


@pytest.fixture
def enqueued(monkeypatch):
    """Training messages the watchdog sends (the broker itself is exercised in tests/integration)."""
    from predictions.tasks import training_job_run

    sent: list[list[int]] = []
    monkeypatch.setattr(
        training_job_run, "apply_async", lambda args, **kwargs: sent.append(list(args))
    )
    return sent


def stale_job(attempts: int, slug: str = "differential") -> TrainingJob:
    long_ago = timezone.now() - timedelta(hours=1)
    return TrainingJob.objects.create(
        task=PredictionTask.objects.get(slug=slug),
        status=TrainingJob.Status.RUNNING,
        stage="fold 1/2: logistic_regression",
        percent=40,
        attempts=attempts,
        started_at=long_ago,
        heartbeat_at=long_ago,
    )


def test_watchdog_requeues_a_running_job_whose_heartbeat_stopped(settings, enqueued):
    settings.MEDAI_TRAINING_HEARTBEAT_TIMEOUT = 60
    job = stale_job(attempts=1)
    live = stale_job(attempts=1, slug="cad-risk")
    TrainingJob.objects.filter(pk=live.pk).update(heartbeat_at=timezone.now())

    assert training_job_watchdog() == {"requeued": 1, "failed": 0}
    job.refresh_from_db()
    assert (job.status, job.percent) == (TrainingJob.Status.QUEUED, 0)
    assert "requeued" in job.stage
    assert [job.pk] in enqueued
    live.refresh_from_db()
    assert live.status == TrainingJob.Status.RUNNING  # a beating job is left alone


def test_watchdog_fails_a_job_whose_worker_died_twice_with_a_reason(settings, enqueued):
    settings.MEDAI_TRAINING_HEARTBEAT_TIMEOUT = 60
    job = stale_job(attempts=2)
    assert training_job_watchdog() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.FAILED
    assert job.finished_at is not None
    assert job.error == (
        "The worker stopped responding 2 times (no heartbeat for 60 s); the job was abandoned."
    )


def test_watchdog_enqueues_a_job_that_never_reached_the_broker(settings, enqueued):
    settings.MEDAI_TRAINING_HEARTBEAT_TIMEOUT = 60
    job = TrainingJob.objects.create(task=PredictionTask.objects.get(slug="differential"))
    TrainingJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    training_job_watchdog()
    assert enqueued == [[job.pk]]


def test_a_requeued_job_runs_to_completion(population, settings, enqueued):
    settings.MEDAI_TRAINING_HEARTBEAT_TIMEOUT = 60
    job = stale_job(attempts=1)
    training_job_watchdog()
    finished = training_job_execute(job_id=job.pk)
    assert finished.status == TrainingJob.Status.SUCCEEDED, finished.error
    assert finished.attempts == 2
    assert ActivationEvent.objects.filter(to_version=finished.model_version).exists()
