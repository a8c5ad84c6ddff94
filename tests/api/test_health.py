"""/healthz (liveness) and /readyz (this web process can serve: database and migrations only)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from medai_site import health
from predictions.models import ModelVersion, PredictionTask

pytestmark = pytest.mark.django_db


def test_healthz_needs_no_credentials():
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_ok_when_the_database_answers_and_every_migration_is_applied(db):
    response = APIClient().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}


def test_readyz_stays_ready_while_the_broker_is_down(settings):
    """Visits are recorded while Redis is away (the outbox): readiness must not cut them off."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    assert APIClient().get("/readyz").status_code == 200


def test_readyz_ignores_a_model_whose_artifact_does_not_load(tmp_path):
    """The artifact belongs to the advice pipeline's health (the worker uses it), not readiness."""
    task = PredictionTask.objects.get(slug="differential")
    version = ModelVersion.objects.create(
        task=task,
        number=1,
        algorithm="logistic_regression",
        artifact_path=str(tmp_path / "missing.joblib"),
        artifact_sha256="0" * 64,
        artifact_size=1,
        data_hash="0" * 64,
    )
    PredictionTask.objects.filter(pk=task.pk).update(active_version=version)
    assert APIClient().get("/readyz").status_code == 200


def test_readyz_503_when_a_migration_is_not_applied(monkeypatch):
    class Pending:
        app_label, name = "visits", "0099_future"

    monkeypatch.setattr(health, "_migrated", False)
    monkeypatch.setattr(
        health.MigrationExecutor, "migration_plan", lambda self, targets: [(Pending, False)]
    )
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "migrations": "failed"},
    }


DRIVER_TEXT = 'connection to server at "db.internal" (10.1.2.3), port 5432 failed: server closed'


@pytest.fixture
def database_down(monkeypatch):
    def broken() -> str:
        raise ConnectionError(DRIVER_TEXT)

    monkeypatch.setitem(health.CHECKS, "database", broken)


def test_readyz_tells_anonymous_callers_only_status_and_check_names(database_down, caplog):
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "failed"}}
    assert "db.internal" not in response.content.decode()
    assert "5432" not in response.content.decode()
    # The operator finds the driver's own text in the log.
    assert any("db.internal" in r.getMessage() for r in caplog.records)


def test_readyz_gives_staff_the_reason(database_down, admin_client):
    response = admin_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["details"] == {"database": "ConnectionError"}
