"""The chart's "Download record (FHIR)": a valid Bundle of the patient's record, only for those
who may see the patient, audited as viewed and as exported."""

from __future__ import annotations

import json

import pytest

from medai_site.models import AuditEvent
from tests.predictions.interop.conftest import fhir_validate

pytestmark = pytest.mark.django_db


def test_chart_links_the_download_and_it_is_a_valid_bundle(client, doctor_a, recorded):
    patient = recorded["patient"]
    client.force_login(doctor_a)
    chart = client.get(f"/patients/{patient.pk}/")
    url = f"/patients/{patient.pk}/record.fhir.json"
    assert url.encode() in chart.content
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    assert "attachment" in response["Content-Disposition"]
    assert "MRN" not in response["Content-Disposition"]
    assert response["Cache-Control"] == "no-store"
    body = json.loads(response.content)
    fhir_validate(body)
    assert body["type"] == "collection"
    kinds = sorted({e["resource"]["resourceType"] for e in body["entry"]})
    assert kinds == [
        "AllergyIntolerance",
        "Condition",
        "Encounter",
        "Observation",
        "Patient",
        "RiskAssessment",
    ]
    for entry in body["entry"]:
        fhir_validate(entry["resource"])
    export = AuditEvent.objects.filter(action="export", patient_id=patient.pk)
    assert export.count() == 1
    assert export.get().interface == "page"
    assert AuditEvent.objects.filter(action="view", patient_id=patient.pk).count() >= len(
        body["entry"]
    )


def test_outside_the_care_team_is_not_found(client, doctor_b, recorded):
    client.force_login(doctor_b)
    response = client.get(f"/patients/{recorded['patient'].pk}/record.fhir.json")
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="export").exists()


def test_signed_out_is_sent_to_sign_in(client, recorded):
    response = client.get(f"/patients/{recorded['patient'].pk}/record.fhir.json")
    assert response.status_code == 302
    assert "/login" in response["Location"] or "sign" in response["Location"]
