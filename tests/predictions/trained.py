"""The trained state shared by every test package: a 400-visit synthetic population and both
default tasks trained on it, built once per session and restored into each test that asks.

A plugin (``pytest_plugins`` in tests/conftest.py), not a conftest: a session fixture that another
test module imports becomes a second fixture definition with a cache of its own, so the
predictions, API and integration tests each rebuilt this state (import and two trainings) once
per session. Defined here once, every package shares the one build.

Training runs the real engine on a small population with one algorithm and two folds, so a
trained task takes seconds (speed is measured in tests/bench, not here).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from predictions.models import ModelVersion, PredictionTask, TrainingJob
from predictions.selectors import serving_tasks_forget

N_VISITS = 400  # enough for seven frequent categories at min_class_visits=30


def clear_all_caches() -> None:
    """Loaded models and similar-case indexes are cached per process; tests start cold."""
    from predictions.ml.artifacts import clear_cache
    from predictions.services.advice import finished_forget, versions_forget
    from predictions.similar_cases import similar_index

    clear_cache()
    similar_index.cache_clear()
    versions_forget()
    serving_tasks_forget()
    finished_forget()


def train(slug: str, *, actor=None) -> TrainingJob:
    """Run one training job for ``slug`` in-process (the worker calls the same service)."""
    from predictions.services.training import training_job_execute

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


@dataclass
class _Snapshot:
    """Rows the trained state added (table -> columns, rows), the tasks' activations, artifacts."""

    inserted: dict[str, tuple[list[str], list[tuple]]]
    active_versions: dict[int, int | None]
    versions: dict[str, int]
    artifact_dir: Path


def _integer_pk_tables() -> list[tuple[str, str]]:
    from django.apps import apps
    from django.db import models

    tables = []
    for model in apps.get_models(include_auto_created=True):
        pk = model._meta.pk
        if isinstance(pk, models.AutoField | models.BigAutoField) and not model._meta.proxy:
            tables.append((model._meta.db_table, pk.column))
    return sorted(set(tables))


def _restore_migration_rows(connection) -> None:
    """Put back the rows migrations wrote (roles, prediction tasks) if a transactional test
    flushed them before this session fixture was first needed: session fixtures are built before
    a test's own database setup restores them (``serialized_rollback``). Done inside the build's
    rolled-back transaction, and before the build's "rows written" baseline, so the snapshot
    never carries them."""
    from django.contrib.auth.models import Group

    serialized = getattr(connection, "_test_serialized_contents", None)
    if serialized and not Group.objects.exists():
        connection.creation.deserialize_db_from_string(serialized)


@pytest.fixture(scope="session")
def trained_snapshot(django_db_setup, django_db_blocker, tmp_path_factory) -> _Snapshot:
    """Build the trained state once per session, keep its rows, and roll the database back.

    Importing 400 visits and training two models takes seconds; restoring the rows they wrote
    takes milliseconds. The build runs in a transaction that is rolled back, so the database the
    other tests see stays as migrations left it; the rows are copied verbatim (ciphertext and
    blind indexes included), and sequences only ever grow, so restored ids never collide.
    """
    from django.db import connection, transaction
    from django.test import override_settings

    from tests.factories import CareTeamFactory, DoctorFactory
    from visits.demo import generate_population
    from visits.demo_import import population_import

    artifact_dir = tmp_path_factory.mktemp("trained") / "models"
    with (
        django_db_blocker.unblock(),
        override_settings(
            MEDAI_TRAINING_ALGORITHMS=["logistic_regression"],
            MEDAI_TRAINING_CV_FOLDS=2,
            MODEL_ARTIFACT_DIR=artifact_dir,
        ),
        transaction.atomic(),
    ):
        _restore_migration_rows(connection)
        tables = _integer_pk_tables()
        with connection.cursor() as cursor:
            before = {}
            for table, pk in tables:
                cursor.execute(f'SELECT COALESCE(MAX("{pk}"), 0) FROM "{table}"')  # noqa: S608 - table names from the app registry
                before[table] = cursor.fetchone()[0]
        doctor = DoctorFactory(username="trained_population_doctor")
        team = CareTeamFactory(name="Trained population", members=[doctor])
        population_import(
            population=generate_population(n_visits=N_VISITS, seed=7),
            teams=[team],
            attendings=[doctor],
        )
        versions = {}
        for slug in ("differential", "cad-risk"):
            job = train(slug)
            assert job.status == TrainingJob.Status.SUCCEEDED, job.error
            versions[slug] = job.model_version.pk
        inserted = {}
        with connection.cursor() as cursor:
            for table, pk in tables:
                cursor.execute(f'SELECT * FROM "{table}" WHERE "{pk}" > %s', [before[table]])  # noqa: S608
                rows = cursor.fetchall()
                if rows:
                    inserted[table] = ([c.name for c in cursor.description], rows)
        active = dict(PredictionTask.objects.values_list("pk", "active_version_id"))
        transaction.set_rollback(True)
    clear_all_caches()
    return _Snapshot(inserted, active, versions, artifact_dir)


@pytest.fixture
def trained(trained_snapshot, db, settings) -> Trained:
    """Both default tasks trained and active, on a 400-visit population (restored, not rebuilt).

    The rows are inserted inside the test's own transaction (rolled back after it), and the
    artifacts are copied into the test's model directory, so a test may break them freely.
    """
    from django.db import connection, transaction

    snapshot = trained_snapshot
    model_dir = Path(settings.MODEL_ARTIFACT_DIR)
    shutil.copytree(snapshot.artifact_dir, model_dir, dirs_exist_ok=True)
    # One transaction: the foreign keys are checked at its end, when every table is restored
    # (a transactional test, e.g. with real workers, would otherwise commit table by table).
    # COPY, not one INSERT per row: ~5,700 rows, restored into every test that asks for them.
    # It fires the same insert triggers and leaves the same deferred foreign-key checks.
    with transaction.atomic(), connection.cursor() as cursor:
        for table, (columns, rows) in snapshot.inserted.items():
            names = ", ".join(f'"{c}"' for c in columns)
            with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(_relocated(row, snapshot.artifact_dir, model_dir))
    for task_id, version_id in snapshot.active_versions.items():
        PredictionTask.objects.filter(pk=task_id).update(active_version_id=version_id)
    # The same task and version ids as the last test's, with artifacts in this test's directory.
    serving_tasks_forget()
    return Trained(
        differential=ModelVersion.objects.get(pk=snapshot.versions["differential"]),
        risk=ModelVersion.objects.get(pk=snapshot.versions["cad-risk"]),
    )


def _relocated(row: tuple, old: Path, new: Path) -> tuple:
    """Artifact paths (in versions' columns and JSON) moved to the test's own copy.

    JSON values come back from the driver as Python objects; they go in again as JSON text.
    """

    def relocate(value: object) -> object:
        if isinstance(value, dict | list):
            value = json.dumps(value)
        if isinstance(value, str):
            return value.replace(str(old), str(new))
        return value

    return tuple(relocate(value) for value in row)
