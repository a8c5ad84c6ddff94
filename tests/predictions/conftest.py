"""Fixtures for the Django side of the model lifecycle: a synthetic population and trained models.

Training runs the real engine on a small population with one algorithm and two folds, so a
trained task takes seconds (speed is measured in tests/bench, not here).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from predictions.models import ModelVersion, PredictionTask, TrainingJob

N_VISITS = 400  # enough for seven frequent categories at min_class_visits=30


def clear_all_caches() -> None:
    """Loaded models and similar-case indexes are cached per process; tests start cold."""
    from predictions.advice import _similar_index
    from predictions.ml.artifacts import clear_cache

    clear_cache()
    _similar_index.cache_clear()


@pytest.fixture(autouse=True)
def fast_training(settings, tmp_path):
    """One quick algorithm, two folds, artifacts in the test's own directory."""
    settings.MEDAI_TRAINING_ALGORITHMS = ["logistic_regression"]
    settings.MEDAI_TRAINING_CV_FOLDS = 2
    settings.MODEL_ARTIFACT_DIR = tmp_path / "models"
    clear_all_caches()
    yield
    clear_all_caches()


@pytest.fixture
def population(db, team_a, doctor_a):
    """A synthetic population (closed visits with confirmed diagnoses), imported in bulk."""
    from visits.demo import generate_population
    from visits.demo_import import population_import

    return population_import(
        population=generate_population(n_visits=N_VISITS, seed=7),
        teams=[team_a],
        attendings=[doctor_a],
    )


def train(slug: str, *, actor=None) -> TrainingJob:
    """Run one training job for ``slug`` in-process (the worker calls the same service)."""
    from predictions.training import training_job_execute

    job = TrainingJob.objects.create(
        task=PredictionTask.objects.get(slug=slug), trigger=TrainingJob.Trigger.ADMIN
    )
    if actor is not None:
        TrainingJob.objects.filter(pk=job.pk).update(started_by=actor)
    return training_job_execute(job_id=job.pk)


@dataclass
class Trained:
    differential: ModelVersion
    risk: ModelVersion


@pytest.fixture
def trained(population) -> Trained:
    """Both default tasks trained once and active."""
    versions = {}
    for slug in ("differential", "cad-risk"):
        job = train(slug)
        assert job.status == TrainingJob.Status.SUCCEEDED, job.error
        versions[slug] = job.model_version
    return Trained(differential=versions["differential"], risk=versions["cad-risk"])
