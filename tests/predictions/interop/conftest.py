"""Fixtures for the FHIR API and import tests: a recorded visit with vitals, labs, a diagnosis
and computed advice for patient A (doctor A's care team); token clients issued by their owners."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from medai_site.api_auth import Scope, api_token_create


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Advice requests stay in the outbox; tests compute advice in-process where they need it."""
    monkeypatch.setattr("predictions.services.outbox.advice_request_dispatch", lambda **kw: True)


@pytest.fixture(autouse=True)
def fresh_throttle_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fhir_client_for(db) -> Callable[..., APIClient]:
    """A client with a bearer token the user issued for themselves (issue 12: owners issue)."""

    def make(user, scopes=(Scope.PATIENTS_READ,)) -> APIClient:
        secret = api_token_create(
            user=user, name="fhir client", scopes=list(scopes), days=30, actor=user
        )[1]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


@pytest.fixture
def fhir_a(fhir_client_for, doctor_a) -> APIClient:
    return fhir_client_for(doctor_a)


@pytest.fixture
def recorded(patient_a, doctor_a) -> dict[str, Any]:
    """A visit of patient A with vitals and labs, a primary diagnosis and advice with a risk."""
    from predictions.models import Advice, AdviceRequest
    from predictions.services.advice import advice_compute
    from visits.services import DiagnosisInput, ObservationInput, visit_record

    visit = visit_record(
        actor=doctor_a,
        patient=patient_a,
        chief_complaint="chest pain on exertion",
        observations=[
            ObservationInput("8867-4", 104),
            ObservationInput("8480-6", 150),
            ObservationInput("8462-4", 95),
            ObservationInput("8310-5", 38.2),
            ObservationInput("2345-7", 7.0, "mmol/L"),
        ],
        diagnoses=[DiagnosisInput("I20.9")],
    )
    for request in AdviceRequest.objects.filter(visit=visit):
        advice_compute(request_id=request.pk)
    advice = Advice.objects.get(visit=visit, superseded=False)
    payload = json.loads(advice.payload)
    payload["diagnoses"] = [
        {"code": "I20", "display": "Angina pectoris", "probability": 0.62, "rank": 1}
    ]
    payload["risks"] = [
        {"task": "cad", "name": "Coronary artery disease", "probability": 0.71, "version": 3}
    ]
    payload["models"] = [
        {"task": "cad", "task_name": "Coronary artery disease", "version": 3, "algorithm": "lr"}
    ]
    advice.payload = json.dumps(payload)
    advice.save(update_fields=["payload"])  # the payload is encrypted: saved through the model
    return {"visit": visit, "advice": advice, "patient": patient_a}


def fhir_validate(body: dict[str, Any]) -> Any:
    """Parse with the R4B classes of fhir.resources; a Bundle's entries are parsed too."""
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(body["resourceType"])
    return model.model_validate(body)
