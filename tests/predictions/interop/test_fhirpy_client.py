"""A real FHIR client (fhirpy) reads a patient, its observations and its risk assessment from the
live server over HTTP with a doctor's own token, and is refused outside the care team."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from medai_site.api_auth import Scope, api_token_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_fhirpy_reads_patient_observations_and_risk(live_server, recorded, doctor_a, patient_b):
    secret = api_token_create(
        user=doctor_a, name="fhirpy", scopes=[Scope.PATIENTS_READ], days=1, actor=doctor_a
    )[1]
    client = SyncFHIRClient(f"{live_server.url}/fhir/r4", authorization=f"Bearer {secret}")
    patient_id = recorded["patient"].pk

    patient = client.reference("Patient", patient_id).to_resource()
    assert patient["identifier"][0]["value"] == "MRN-A-0001"
    assert patient["name"][0]["family"] == "Lin"

    found = client.resources("Patient").search(identifier="MRN-A-0001").fetch()
    assert [p.id for p in found] == [str(patient_id)]

    observations = client.resources("Observation").search(patient=patient_id).limit(2).fetch_all()
    assert sorted(o["code"]["coding"][0]["code"] for o in observations) == [
        "2345-7",
        "8310-5",
        "8462-4",
        "8480-6",
        "8867-4",
    ]
    heart = client.resources("Observation").search(patient=patient_id, code="8867-4").first()
    assert heart["valueQuantity"]["value"] == 104

    risk = client.resources("RiskAssessment").search(patient=patient_id).first()
    assert risk["prediction"][0]["probabilityDecimal"] == 0.71
    assert risk["subject"]["reference"] == f"Patient/{patient_id}"

    with pytest.raises(ResourceNotFound):
        client.reference("Patient", patient_b.pk).to_resource()
