"""The read-only FHIR R4 API (/fhir/r4): resources validate against fhir.resources' R4B classes,
search and paging, $everything, token + scope + care-team scoping (404 outside), OperationOutcome
for every error, 405 for writes, and an audit record for every resource returned."""

from __future__ import annotations

import pytest

from medai_site.api_auth import Scope
from medai_site.models import AuditEvent
from tests.predictions.interop.conftest import fhir_validate

pytestmark = pytest.mark.django_db
FHIR_JSON = "application/fhir+json"


def _ok(response, resource_type: str):
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == resource_type
    fhir_validate(body)
    for entry in body.get("entry", []):
        fhir_validate(entry["resource"])
    return body


def _outcome(response, status: int, code: str):
    assert response.status_code == status, response.content[:500]
    body = response.json()
    fhir_validate(body)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    return body


def test_metadata_is_public_and_a_valid_capability_statement(client):
    body = _ok(client.get("/fhir/r4/metadata"), "CapabilityStatement")
    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(resources) == {
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "AllergyIntolerance",
        "RiskAssessment",
    }
    assert resources["Patient"]["operation"][0]["name"] == "everything"
    assert {"patient", "code", "date"} <= {
        p["name"] for p in resources["Observation"]["searchParam"]
    }


def test_patient_read_maps_identity_and_is_audited(fhir_a, patient_a, doctor_a):
    before = AuditEvent.objects.count()
    body = _ok(fhir_a.get(f"/fhir/r4/Patient/{patient_a.pk}"), "Patient")
    assert body["identifier"][0]["value"] == "MRN-A-0001"
    assert body["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert body["name"][0] == {"use": "official", "family": "Lin", "given": ["Mei"]}
    assert (body["gender"], body["birthDate"]) == ("female", "1958-05-17")
    assert {"system": "phone", "value": "+1 555 0100"} in body["telecom"]
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert (event.action, event.interface, event.patient_id, event.actor_id) == (
        "view",
        "api",
        patient_a.pk,
        doctor_a.pk,
    )
    assert event.api_token_id is not None


def test_outside_the_care_team_is_a_404_operation_outcome(fhir_a, patient_b, recorded):
    _outcome(fhir_a.get(f"/fhir/r4/Patient/{patient_b.pk}"), 404, "not-found")
    denied = AuditEvent.objects.order_by("-id").first()
    assert (denied.action, denied.object_type) == ("denied", "patients.patient")
    body = _ok(fhir_a.get(f"/fhir/r4/Observation?patient={patient_b.pk}"), "Bundle")
    assert body["total"] == 0
    _outcome(fhir_a.get(f"/fhir/r4/Patient/{patient_b.pk}/$everything"), 404, "not-found")


def test_doctor_b_sees_none_of_patient_a(fhir_client_for, doctor_b, recorded):
    fhir_b = fhir_client_for(doctor_b)
    visit = recorded["visit"]
    for path in (
        f"Patient/{recorded['patient'].pk}",
        f"Encounter/{visit.pk}",
        f"Observation/{visit.observations.first().pk}",
        f"Condition/{visit.diagnoses.first().pk}",
        f"RiskAssessment/{recorded['advice'].pk}",
        f"AllergyIntolerance/{recorded['patient'].allergies.first().pk}",
    ):
        _outcome(fhir_b.get(f"/fhir/r4/{path}"), 404, "not-found")
    for kind in ("Patient", "Encounter", "Observation", "Condition", "RiskAssessment"):
        assert _ok(fhir_b.get(f"/fhir/r4/{kind}"), "Bundle")["total"] == 0


def test_patient_search_by_identifier(fhir_a, patient_a, patient_b):
    body = _ok(fhir_a.get("/fhir/r4/Patient?identifier=urn:medai:mrn|mrn-a-0001"), "Bundle")
    assert body["type"] == "searchset"
    assert [e["resource"]["id"] for e in body["entry"]] == [str(patient_a.pk)]
    assert body["entry"][0]["search"]["mode"] == "match"
    assert _ok(fhir_a.get("/fhir/r4/Patient?identifier=MRN-B-0001"), "Bundle")["total"] == 0
    by_national_id = _ok(fhir_a.get("/fhir/r4/Patient?identifier=ID-A-1"), "Bundle")
    assert by_national_id["total"] == 1


def test_observation_search_by_patient_code_and_date(fhir_a, recorded):
    patient = recorded["patient"].pk
    body = _ok(fhir_a.get(f"/fhir/r4/Observation?patient={patient}"), "Bundle")
    assert body["total"] == 5
    glucose = _ok(
        fhir_a.get(f"/fhir/r4/Observation?patient=Patient/{patient}&code=http://loinc.org|2345-7"),
        "Bundle",
    )
    assert glucose["total"] == 1
    quantity = glucose["entry"][0]["resource"]["valueQuantity"]
    assert quantity["unit"] == "mg/dL"
    assert abs(quantity["value"] - 126.11) < 0.01
    assert glucose["entry"][0]["resource"]["interpretation"][0]["coding"][0]["code"] == "H"
    bp = _ok(fhir_a.get(f"/fhir/r4/Observation?patient={patient}&code=8480-6,8462-4"), "Bundle")
    assert bp["total"] == 2
    today = recorded["visit"].observations.first().recorded_at.date()
    assert _ok(fhir_a.get(f"/fhir/r4/Observation?date={today:%Y-%m-%d}"), "Bundle")["total"] == 5
    assert _ok(fhir_a.get(f"/fhir/r4/Observation?date=gt{today:%Y-%m-%d}"), "Bundle")["total"] == 0
    assert _ok(fhir_a.get(f"/fhir/r4/Observation?date=lt{today:%Y}"), "Bundle")["total"] == 0
    vitals = _ok(fhir_a.get("/fhir/r4/Observation?category=vital-signs"), "Bundle")
    assert vitals["total"] == 4


def test_search_pages_with_links_and_audits_only_the_page(fhir_a, recorded):
    first = _ok(fhir_a.get("/fhir/r4/Observation?_count=2"), "Bundle")
    assert (first["total"], len(first["entry"])) == (5, 2)
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    assert "_offset=2" in links["next"]
    audited = AuditEvent.objects.filter(object_type="visits.observation", action="view")
    assert audited.count() == 2
    seen = [e["resource"]["id"] for e in first["entry"]]
    while "next" in links:
        page = _ok(fhir_a.get(links["next"]), "Bundle")
        seen += [e["resource"]["id"] for e in page["entry"]]
        links = {link["relation"]: link["url"] for link in page["link"]}
    assert len(seen) == len(set(seen)) == 5
    assert "previous" in links
    assert audited.count() == 5
    assert sorted(audited.values_list("object_id", flat=True)) == sorted(seen)


def test_encounter_condition_allergy_and_risk_assessment(fhir_a, recorded):
    visit, advice, patient = recorded["visit"], recorded["advice"], recorded["patient"]
    encounter = _ok(fhir_a.get(f"/fhir/r4/Encounter/{visit.pk}"), "Encounter")
    assert encounter["class"]["code"] == "AMB"
    assert encounter["status"] == "in-progress"
    assert encounter["reasonCode"][0]["text"] == "chest pain on exertion"
    conditions = _ok(fhir_a.get(f"/fhir/r4/Condition?patient={patient.pk}"), "Bundle")
    condition = conditions["entry"][0]["resource"]
    assert condition["code"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/icd-10",
        "code": "I20.9",
        "display": "Angina pectoris, unspecified",
    }
    assert condition["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert condition["encounter"]["reference"] == f"Encounter/{visit.pk}"
    allergies = _ok(fhir_a.get(f"/fhir/r4/AllergyIntolerance?patient={patient.pk}"), "Bundle")
    assert allergies["entry"][0]["resource"]["code"]["text"] == "penicillin"
    assert allergies["entry"][0]["resource"]["reaction"][0]["severity"] == "severe"
    risk = _ok(fhir_a.get(f"/fhir/r4/RiskAssessment/{advice.pk}"), "RiskAssessment")
    probabilities = {p["outcome"]["text"]: p["probabilityDecimal"] for p in risk["prediction"]}
    assert probabilities == {"Coronary artery disease": 0.71, "Angina pectoris": 0.62}
    assert "version 3" in risk["method"]["text"]
    assert len(risk["basis"]) == 5
    assert all(ref["reference"].startswith("Observation/") for ref in risk["basis"])
    searched = _ok(fhir_a.get(f"/fhir/r4/RiskAssessment?encounter={visit.pk}"), "Bundle")
    assert searched["entry"][0]["resource"]["basis"] == risk["basis"]


def test_everything_returns_the_whole_record_audited(fhir_a, recorded):
    patient = recorded["patient"]
    before = AuditEvent.objects.count()
    body = _ok(fhir_a.get(f"/fhir/r4/Patient/{patient.pk}/$everything"), "Bundle")
    assert body["type"] == "searchset"
    kinds = [e["resource"]["resourceType"] for e in body["entry"]]
    assert kinds[0] == "Patient"
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "Patient": 1,
        "Encounter": 1,
        "Observation": 5,
        "Condition": 1,
        "AllergyIntolerance": 1,
        "RiskAssessment": 1,
    }
    views = AuditEvent.objects.filter(pk__gt=0, action="view").order_by("-id")[: len(kinds)]
    assert AuditEvent.objects.count() - before == len(kinds)
    assert {v.patient_id for v in views} == {patient.pk}


def test_authentication_and_scope_errors_are_operation_outcomes(
    client, fhir_client_for, doctor_a, patient_a
):
    _outcome(client.get(f"/fhir/r4/Patient/{patient_a.pk}"), 401, "login")
    wrong = fhir_client_for(doctor_a, scopes=(Scope.VISITS_WRITE,))
    _outcome(wrong.get(f"/fhir/r4/Patient/{patient_a.pk}"), 403, "forbidden")
    bad_token = client.get(f"/fhir/r4/Patient/{patient_a.pk}", HTTP_AUTHORIZATION="Bearer nope")
    _outcome(bad_token, 401, "login")


def test_writes_are_405(fhir_a, patient_a):
    resource = {"resourceType": "Patient", "id": str(patient_a.pk), "gender": "male"}
    for method in ("post", "put", "patch", "delete"):
        response = getattr(fhir_a, method)(
            f"/fhir/r4/Patient/{patient_a.pk}", resource, format="json"
        )
        _outcome(response, 405, "not-supported")
        _outcome(
            getattr(fhir_a, method)("/fhir/r4/Patient", resource, format="json"),
            405,
            "not-supported",
        )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    _outcome(fhir_a.post("/fhir/r4/", bundle, format="json"), 405, "not-supported")
    patient_a.refresh_from_db()
    assert patient_a.sex == "female"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/fhir/r4/Observation?colour=red", 400, "invalid"),
        ("/fhir/r4/Observation?date=yesterday", 400, "invalid"),
        ("/fhir/r4/Observation?date=2024-13-45", 400, "invalid"),
        ("/fhir/r4/Observation?_count=100000", 400, "invalid"),
        ("/fhir/r4/Observation?_count=-1", 400, "invalid"),
        ("/fhir/r4/Observation?code=", 200, ""),
        ("/fhir/r4/Observation?patient=1&patient=2", 400, "invalid"),
        ("/fhir/r4/Observation?category=social-history", 400, "invalid"),
        ("/fhir/r4/Observation?_format=xml", 400, "invalid"),
        ("/fhir/r4/Medication", 404, "not-found"),
        ("/fhir/r4/Patient/99999999999999999999999", 404, "not-found"),
        ("/fhir/r4/Patient/1%27%20OR%201=1", 404, "not-found"),
        ("/fhir/r4/Patient/-1", 404, "not-found"),
        ("/fhir/r4/Patient?identifier=|", 400, "invalid"),
    ],
)
def test_hostile_and_malformed_requests(fhir_a, patient_a, path, status, code):
    response = fhir_a.get(path)
    if status == 200:
        assert response.status_code == 200
        return
    body = _outcome(response, status, code)
    assert "Traceback" not in body["issue"][0]["diagnostics"]


def test_patient_id_in_everything_path_cannot_be_spoofed(fhir_a, patient_b):
    _outcome(fhir_a.get("/fhir/r4/Patient/abc/$everything"), 404, "not-found")
    _outcome(fhir_a.get(f"/fhir/r4/Patient/{patient_b.pk}/$everything"), 404, "not-found")


def test_session_of_a_signed_in_doctor_reads_too(client, doctor_a, patient_a):
    client.force_login(doctor_a)
    _ok(client.get(f"/fhir/r4/Patient/{patient_a.pk}"), "Patient")


def test_idle_session_on_fhir_is_a_401_operation_outcome_not_a_redirect(
    client, doctor_a, patient_a
):
    """/fhir/ is an API for the idle limit (medai_site.session_idle): a 401, never the sign-in page."""
    import time

    from django.conf import settings

    from medai_site.session_idle import LAST_ACTIVITY_KEY

    client.force_login(doctor_a)
    _ok(client.get(f"/fhir/r4/Patient/{patient_a.pk}"), "Patient")
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - settings.SESSION_COOKIE_AGE - 5
    session.save()
    expired = client.get(f"/fhir/r4/Patient/{patient_a.pk}")
    assert expired["Content-Type"].startswith(FHIR_JSON)
    _outcome(expired, 401, "login")
    _outcome(client.get(f"/fhir/r4/Patient/{patient_a.pk}"), 401, "login")  # signed out


def test_bearer_calls_to_fhir_leave_sessions_alone(fhir_a, patient_a):
    response = fhir_a.get(f"/fhir/r4/Patient/{patient_a.pk}")
    _ok(response, "Patient")
    assert "sessionid" not in response.cookies
    assert "medai_signed_in" not in response.cookies
