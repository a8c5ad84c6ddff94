"""A real client drives the API: generated from the live /api/schema/ at test time, never committed.

openapi-python-client writes a typed client package into a temporary directory; the test imports
it from there and uses it as an integrating hospital system would: register a patient, post a
visit with vitals and labs, request advice (202), poll, and read the advice back. There is no
worker in this test: the advice request is computed in-process with ``advice_compute``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from medai_site.api_auth import Scope, api_token_create
from predictions.services.advice import advice_compute
from tests.factories import CareTeamFactory, DoctorFactory

PACKAGE = "medai_client"


@pytest.fixture
def generated_client(live_server, tmp_path, monkeypatch):
    schema = tmp_path / "schema.json"
    with urllib.request.urlopen(f"{live_server.url}/api/schema/?format=json", timeout=30) as r:  # noqa: S310 (the live test server's own URL)
        schema.write_bytes(r.read())
    config = tmp_path / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\nproject_name_override: medai-client\n")
    out = tmp_path / "generated" / PACKAGE
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # The generator formats its output with ruff, which it looks up on PATH: use the venv's.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    monkeypatch.syspath_prepend(str(out.parent))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    yield importlib.import_module(PACKAGE)
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_generated_client_registers_a_patient_posts_a_visit_and_reads_advice(
    generated_client, live_server
):
    doctor = DoctorFactory(username="lab_gateway_doctor")
    CareTeamFactory(name="Emergency", members=[doctor])
    token = api_token_create(
        user=doctor,
        name="EHR",
        scopes=[s for s in Scope.values if s != Scope.MODELS_MANAGE],
        days=1,
        actor=doctor,
    )[1]

    def module(name: str):
        return importlib.import_module(f"{PACKAGE}.{name}")

    models = module("models")
    client = generated_client.AuthenticatedClient(base_url=live_server.url, token=token)

    created = module("api.patients.patients_create").sync_detailed(
        client=client,
        body=models.PatientCreateRequest(
            mrn="EHR-123456",
            sex=models.SexEnum.FEMALE,
            given_name="Rosalind",
            family_name="Franklin",
            birth_date=__import__("datetime").date(1958, 4, 16),
            allergies=[models.AllergyRequest(substance="penicillin")],
        ),
        idempotency_key="ehr-register-1",
    )
    assert created.status_code == 201, created.content
    patient = created.parsed
    assert isinstance(patient, models.PatientDetail)
    assert patient.mrn == "EHR-123456"

    visit = module("api.visits.patient_visits_create").sync(
        patient.id,
        client=client,
        body=models.VisitCreateRequest(
            visit_type=models.VisitTypeEnum.EMERGENCY,
            chief_complaint="fever, cough and confusion",
            observations=[
                models.ObservationInputRequest(code="8310-5", value=39.2),
                models.ObservationInputRequest(code="8867-4", value=118),
                models.ObservationInputRequest(code="9279-1", value=26),
                models.ObservationInputRequest(code="8480-6", value=96),
                models.ObservationInputRequest(code="2708-6", value=89),
                models.ObservationInputRequest(code="2345-7", value=6.1, unit="mmol/L"),
            ],
            diagnoses=[models.DiagnosisInputRequest(code="J18.9")],
        ),
    )
    assert isinstance(visit, models.VisitDetail), visit
    assert {o.code for o in visit.observations} >= {"8310-5", "2345-7"}

    impossible = module("api.visits.patient_visits_create").sync_detailed(
        patient.id,
        client=client,
        body=models.VisitCreateRequest(
            observations=[models.ObservationInputRequest(code="8867-4", value=900)]
        ),
    )
    assert impossible.status_code == 400
    assert isinstance(impossible.parsed, models.Error)
    assert "8867-4" in impossible.parsed.error.fields.additional_properties

    queued = module("api.advice.visit_advice_request").sync_detailed(visit.id, client=client)
    assert queued.status_code == 202
    request = queued.parsed
    assert request.status == models.AdviceRequestStatusEnum.PENDING

    advice_compute(request_id=request.id)  # what the worker does

    polled = module("api.advice.advice_requests_retrieve").sync(request.id, client=client)
    assert polled.status == models.AdviceRequestStatusEnum.DONE
    state = module("api.advice.visit_advice_retrieve").sync(visit.id, client=client)
    assert state.status == models.AdviceStateStatusEnum.DONE
    assert state.advice is not None
    assert {a.rule for a in state.advice.alerts}  # the clinical rules fired on these vitals

    stranger = DoctorFactory(username="other_doctor")
    CareTeamFactory(name="Dermatology", members=[stranger])
    other_token = api_token_create(
        user=stranger,
        name="other",
        scopes=[s for s in Scope.values if s != Scope.MODELS_MANAGE],  # a doctor's role
        days=1,
        actor=stranger,
    )[1]
    other = generated_client.AuthenticatedClient(base_url=live_server.url, token=other_token)
    hidden = module("api.patients.patients_retrieve").sync_detailed(patient.id, client=other)
    assert hidden.status_code == 404
