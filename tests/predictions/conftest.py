"""Fixtures for the Django side of the model lifecycle: a synthetic population and trained models.

``trained`` (both default tasks trained and active, restored from one build per session) lives in
tests/predictions/trained.py, shared with the API and integration tests.
"""

from __future__ import annotations

import pytest

from tests.predictions.trained import N_VISITS, clear_all_caches, train

__all__ = ["N_VISITS", "clear_all_caches", "train"]


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
