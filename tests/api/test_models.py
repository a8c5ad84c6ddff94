"""The model registry over the API: list with metrics, training jobs (202 + poll), promote/rollback."""

from __future__ import annotations

import pytest

from medai_site.api_auth import Scope
from predictions.models import ActivationEvent, ModelVersion, PredictionTask, TrainingJob
from predictions.services.registry import version_activate

pytestmark = pytest.mark.django_db


def _version(task: PredictionTask, number: int) -> ModelVersion:
    return ModelVersion.objects.create(
        task=task,
        number=number,
        algorithm="logistic_regression",
        artifact_path=f"/nonexistent/v{number}.joblib",
        artifact_sha256="0" * 64,
        artifact_size=1,
        data_hash="1" * 64,
        metrics={"roc_auc": 0.8 + number / 100, "roc_auc_ci": [0.7, 0.9]},
        holdout_metrics={"roc_auc": 0.79},
        library_versions={"scikit-learn": "1.5.0"},
    )


@pytest.fixture
def task():
    return PredictionTask.objects.get(slug="differential")


@pytest.fixture
def admin_api(client_for, admin_user):
    return client_for(admin_user)


def test_list_tasks_with_versions_and_metrics(api_a, task):
    v1 = _version(task, 1)
    version_activate(version=v1, action="promote", reason="first", actor=None)
    body = api_a.get("/api/v1/models").json()
    differential = next(t for t in body if t["slug"] == "differential")
    assert differential["active_version_id"] == v1.pk
    assert differential["versions"][0]["metrics"]["roc_auc"] == pytest.approx(0.81)
    assert differential["versions"][0]["is_active"] is True
    assert api_a.get("/api/v1/models/differential").json()["slug"] == "differential"
    assert api_a.get("/api/v1/models/nope").status_code == 404


def test_start_training_is_202_then_poll_and_a_second_start_is_409(admin_api, task):
    response = admin_api.post("/api/v1/models/differential/training-jobs")
    assert response.status_code == 202
    job = response.json()
    assert (job["status"], job["trigger"], job["task"]) == ("queued", "api", "differential")
    assert response["Location"] == job["poll_url"] == f"/api/v1/training-jobs/{job['id']}"
    TrainingJob.objects.filter(pk=job["id"]).update(status="running", stage="features", percent=40)
    polled = admin_api.get(job["poll_url"]).json()
    assert (polled["status"], polled["percent"]) == ("running", 40)
    assert admin_api.post("/api/v1/models/differential/training-jobs").status_code == 409
    assert admin_api.get("/api/v1/training-jobs/999999").status_code == 404


def test_training_needs_the_models_scope(client_for, admin_user):
    reader = client_for(admin_user, [Scope.PATIENTS_READ])
    assert reader.post("/api/v1/models/differential/training-jobs").status_code == 403
    assert reader.get("/api/v1/models").status_code == 200


def test_promote_and_rollback_for_admins(admin_api, task):
    v1, v2 = _version(task, 1), _version(task, 2)
    version_activate(version=v1, action="auto_promote", reason="first", actor=None)
    response = admin_api.post(
        "/api/v1/models/differential/promote",
        {"version_id": v2.pk, "reason": "better on the new hold-out"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["to_version_id"] == v2.pk
    task.refresh_from_db()
    assert task.active_version_id == v2.pk

    again = admin_api.post(
        "/api/v1/models/differential/promote", {"version_id": v2.pk, "reason": "x"}, format="json"
    )
    assert again.status_code == 409

    response = admin_api.post(
        "/api/v1/models/differential/rollback", {"reason": "drift seen"}, format="json"
    )
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.active_version_id == v1.pk
    assert ActivationEvent.objects.filter(action="rollback").exists()


def test_promote_validation(admin_api, task):
    other = _version(PredictionTask.objects.get(slug="cad-risk"), 1)
    url = "/api/v1/models/differential/promote"
    assert (
        admin_api.post(url, {"version_id": other.pk, "reason": "x"}, format="json").status_code
        == 404
    )
    assert (
        admin_api.post(url, {"version_id": 2**70, "reason": "x"}, format="json").status_code == 400
    )
    assert admin_api.post(url, {"version_id": other.pk}, format="json").status_code == 400
    nothing = admin_api.post("/api/v1/models/differential/rollback", {"reason": "x"}, format="json")
    assert nothing.status_code == 409


def test_doctors_may_not_promote_or_roll_back_even_with_the_scope(api_a, task):
    v1 = _version(task, 1)
    response = api_a.post(
        "/api/v1/models/differential/promote", {"version_id": v1.pk, "reason": "x"}, format="json"
    )
    assert response.status_code == 403
    rollback = api_a.post("/api/v1/models/differential/rollback", {"reason": "x"}, format="json")
    assert rollback.status_code == 403
