"""Fixtures for the operations tests: one small model trained once per session, no database.

The model is fitted by the engine directly on a synthetic frame (one algorithm, two folds) and
registered per test as a ModelVersion whose training snapshot is the same synthetic population
imported into the test's database; the window population is imported beside it and dated into
the monitoring window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

REFERENCE_VISITS = 300
WINDOW_VISITS = 150
REFERENCE_SEED = 7
# Fixed dates keep the synthetic population, and so the model, identical between runs.
REFERENCE_END_DAYS_AGO = 90


def _reference_population():
    from visits.demo import generate_population

    end = (timezone.now() - timedelta(days=REFERENCE_END_DAYS_AGO)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return generate_population(n_visits=REFERENCE_VISITS, seed=REFERENCE_SEED, end=end)


@pytest.fixture(scope="session")
def engine_model(tmp_path_factory):
    """A differential model fitted on the reference population (pure engine, seconds)."""
    from predictions.ml.artifacts import save_model
    from predictions.ml.pipeline import ModelSpec, train
    from predictions.visit_records import CATEGORICAL_COLUMNS, TEXT_COLUMNS
    from visits.demo import population_frame

    frame = population_frame(_reference_population())
    counts = frame["diagnosis_category"].value_counts()
    frequent = set(counts[counts >= 20].index)
    frame["label"] = frame["diagnosis_category"].where(
        frame["diagnosis_category"].isin(frequent), "other"
    )
    frame = frame.drop(columns=["visit_id", "diagnosis_code", "diagnosis_category"])
    from visits.catalogue import plausible_ranges

    spec = ModelSpec(
        target="label",
        group="patient_id",
        categorical=CATEGORICAL_COLUMNS,
        text=TEXT_COLUMNS,
        plausible=plausible_ranges(),  # as the app trains (predictions.training)
    )
    result = train(frame, spec, algorithms=["logistic_regression"], cv=2, seed=0)
    info = save_model(result.model, tmp_path_factory.mktemp("ops-model") / "model.joblib")
    return result.model, info, result


@dataclass
class Monitored:
    task: object
    version: object
    reference_ids: list[int]


def import_population(population, team, doctor) -> list[int]:
    from visits.demo_import import population_import
    from visits.models import Visit

    before = set(Visit.objects.values_list("pk", flat=True))
    population_import(population=population, teams=[team], attendings=[doctor])
    return sorted(set(Visit.objects.values_list("pk", flat=True)) - before)


def import_window(team, doctor, *, seed: int) -> list[int]:
    """A population like the reference one (other patients), dated into the last days."""
    from visits.demo import generate_population
    from visits.models import Visit

    ids = import_population(
        generate_population(n_visits=WINDOW_VISITS, seed=seed, end=timezone.now()), team, doctor
    )
    start = timezone.now() - timedelta(days=1)
    Visit.objects.filter(pk__in=ids).update(start=start, end=start + timedelta(hours=1))
    return ids


def to_fahrenheit(visit_ids: list[int]) -> None:
    """The feed starts sending temperatures in Fahrenheit labelled as Celsius."""
    from visits.models import Observation

    Observation.objects.filter(visit_id__in=visit_ids, definition__code="8310-5").update(
        value=F("value") * 9 / 5 + 32
    )


@pytest.fixture
def monitored(db, engine_model, team_a, doctor_a) -> Monitored:
    """The differential task with the engine model active; its snapshot = the reference visits."""
    from predictions.ml.artifacts import clear_cache
    from predictions.models import ActivationEvent, ModelVersion, PredictionTask, TrainingJob
    from predictions.services import registry

    clear_cache()
    from predictions.services.training import output_reference_summary

    model, info, result = engine_model
    task = PredictionTask.objects.get(slug="differential")
    reference_ids = import_population(_reference_population(), team_a, doctor_a)
    job = TrainingJob.objects.create(
        task=task,
        status=TrainingJob.Status.SUCCEEDED,
        snapshot={"visit_ids": reference_ids, "rows": len(reference_ids)},
    )
    version = ModelVersion.objects.create(
        task=task,
        number=1,
        training_job=job,
        algorithm=model.algorithm,
        artifact_path=str(info.path),
        artifact_sha256=info.sha256,
        artifact_size=info.size_bytes,
        feature_schema=model.feature_schema,
        label_map={str(i): c for i, c in enumerate(model.classes)},
        data_hash="0" * 64,
        holdout_metrics={"accuracy": 0.6, "roc_auc": 0.85, "brier": 0.5},
        # As the training service stores it: the reference monitoring compares outputs with.
        report={"output_reference": output_reference_summary(task, model.classes, result)},
    )
    registry.version_activate(
        version=version, action=ActivationEvent.Action.AUTO_PROMOTE, reason="test", actor=None
    )
    task.refresh_from_db()
    return Monitored(task=task, version=version, reference_ids=reference_ids)
