"""Idempotency-Key on creating POSTs: a retry creates nothing and returns the same response."""

from __future__ import annotations

import pytest

from medai_site.models import IdempotencyRecord
from patients.models import Patient
from predictions.models import AdviceRequest, TrainingJob
from tests.api.conftest import vitals
from visits.models import Visit

pytestmark = pytest.mark.django_db

PATIENT = {
    "mrn": "IDEM-0001",
    "sex": "male",
    "given_name": "Alan",
    "family_name": "Turing",
    "birth_date": "1954-06-07",
}


def test_retried_patient_create_returns_the_same_response_and_creates_once(api_a):
    first = api_a.post("/api/v1/patients", PATIENT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    retry = api_a.post("/api/v1/patients", PATIENT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == retry.status_code == 201
    assert first.json() == retry.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert Patient.objects.count() == 1


def test_same_key_with_another_body_is_409(api_a):
    api_a.post("/api/v1/patients", PATIENT, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    response = api_a.post(
        "/api/v1/patients",
        {**PATIENT, "given_name": "Someone"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-2",
    )
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert Patient.objects.count() == 1


def test_keys_are_per_client(api_a, api_b):
    api_a.post("/api/v1/patients", PATIENT, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    response = api_b.post(
        "/api/v1/patients",
        {**PATIENT, "mrn": "IDEM-0002"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="shared",
    )
    assert response.status_code == 201
    assert Patient.objects.count() == 2


def test_a_failed_request_leaves_no_key_behind(api_a):
    bad = api_a.post(
        "/api/v1/patients", {**PATIENT, "sex": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert bad.status_code == 400
    assert not IdempotencyRecord.objects.exists()
    good = api_a.post("/api/v1/patients", PATIENT, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert good.status_code == 201


def test_record_holds_no_phi(api_a):
    api_a.post("/api/v1/patients", PATIENT, format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    record = IdempotencyRecord.objects.get()
    stored = " ".join(str(v) for v in IdempotencyRecord.objects.values().get().values())
    assert "Turing" not in stored
    assert "IDEM-0001" not in stored
    assert record.status_code == 201
    assert len(record.request_hash) == 64


def test_retried_visit_create_and_advice_request_create_once(api_a, patient_a):
    url = f"/api/v1/patients/{patient_a.pk}/visits"
    body = {"observations": vitals()}
    first = api_a.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="v-1")
    retry = api_a.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="v-1")
    assert first.json()["id"] == retry.json()["id"]
    assert Visit.objects.count() == 1
    visit_id = first.json()["id"]
    before = AdviceRequest.objects.count()
    a = api_a.post(f"/api/v1/visits/{visit_id}/advice", HTTP_IDEMPOTENCY_KEY="a-1")
    b = api_a.post(f"/api/v1/visits/{visit_id}/advice", HTTP_IDEMPOTENCY_KEY="a-1")
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] == b.json()["id"]
    assert AdviceRequest.objects.count() == before + 1


def test_retried_training_start_is_not_a_conflict(client_for, admin_user):
    api = client_for(admin_user)
    url = "/api/v1/models/differential/training-jobs"
    first = api.post(url, HTTP_IDEMPOTENCY_KEY="t-1")
    retry = api.post(url, HTTP_IDEMPOTENCY_KEY="t-1")
    assert first.status_code == retry.status_code == 202
    assert TrainingJob.objects.count() == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_malformed_keys_are_400(api_a, key):
    response = api_a.post(
        "/api/v1/patients",
        PATIENT,
        format="json",
        HTTP_IDEMPOTENCY_KEY=key.encode().decode("latin-1"),
    )
    assert response.status_code == 400
    assert not Patient.objects.exists()
