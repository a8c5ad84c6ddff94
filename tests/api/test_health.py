"""/healthz (liveness) and /readyz (database, broker, active models' artifacts)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from predictions.models import ModelVersion, PredictionTask

pytestmark = pytest.mark.django_db


def test_healthz_needs_no_credentials():
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_ok_when_database_broker_and_models_are(db):
    response = APIClient().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "models": "ok"},
    }


def test_readyz_503_names_the_broker_when_it_is_down(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"].startswith("failed")
    assert checks["database"] == "ok"


def test_readyz_503_names_the_model_whose_artifact_does_not_load(tmp_path):
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
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "differential v1" in response.json()["checks"]["models"]
    # A disabled task is not served, so its artifact does not block readiness.
    PredictionTask.objects.filter(pk=task.pk).update(enabled=False)
    assert APIClient().get("/readyz").status_code == 200


def test_readyz_503_when_the_database_check_fails(monkeypatch):
    def broken() -> str:
        raise ConnectionError("database down")

    monkeypatch.setitem(__import__("medai_site.health").health.CHECKS, "database", broken)
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failed: ConnectionError"
