"""Issue 12, finding 3: registering a patient (page, API) or changing an MRN must not be an
MRN-existence oracle: everything else is validated first, a conflict is audited as a denied probe
naming the actor, and conflicts are rate-limited per user. Each test fails on the main before."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from medai_site.api_auth import api_token_create
from medai_site.models import AuditEvent
from patients.models import Patient
from patients.services import MRN_PROBE, MRN_PROBE_PAUSED
from tests.factories import DoctorFactory

pytestmark = pytest.mark.django_db
UNKNOWN_MRN = "MRN-NOBODY-9"


def _form(team, mrn: str, **extra) -> dict:
    return {
        "mrn": mrn,
        "given_name": "Ada",
        "family_name": "Probe",
        "sex": "female",
        "birth_date": "1980-02-03",
        "care_teams": [team.pk],
        "allergy_0_substance": "",
        "allergy_1_substance": "",
        "allergy_2_substance": "",
        **extra,
    }


def _api(user, scopes=("patients:read", "patients:write")) -> APIClient:
    client = APIClient()
    _, secret = api_token_create(user=user, name="probe", scopes=list(scopes), days=1, actor=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _body(mrn: str, **extra) -> dict:
    return {
        "mrn": mrn,
        "sex": "male",
        "given_name": "Ada",
        "family_name": "Probe",
        "birth_date": "1980-02-03",
        **extra,
    }


def _probes(actor=None, object_id=MRN_PROBE):
    events = AuditEvent.objects.filter(action="denied", object_id=object_id)
    return events.filter(actor=actor) if actor is not None else events


def test_finding3_registration_page_answers_other_errors_before_the_mrn(
    client, doctor_a, team_a, patient_b
):
    """patient_b is outside doctor_a's care: an existing MRN and an unknown one answer alike."""
    client.force_login(doctor_a)
    duplicated = {"allergy_0_substance": "Latex", "allergy_1_substance": "latex "}
    answers = []
    for mrn in (patient_b.mrn, UNKNOWN_MRN):
        response = client.post(reverse("patient_register"), _form(team_a, mrn, **duplicated))
        html = response.content.decode()
        assert response.status_code == 400
        assert "Listed twice." in html
        assert "Already in use." not in html
        answers.append(response.context["form"].errors.get_json_data())
    assert answers[0] == answers[1]
    assert not _probes().exists()  # the MRN was never looked at


def test_finding3_registration_api_answers_other_errors_before_the_mrn(doctor_a, patient_b):
    api = _api(doctor_a)
    allergies = [{"substance": "latex"}, {"substance": "Latex"}]
    answers = [
        api.post("/api/v1/patients", _body(mrn, allergies=allergies), format="json")
        for mrn in (patient_b.mrn, UNKNOWN_MRN)
    ]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["error"]["fields"] == {"substance": ["Listed twice."]}
    assert not _probes().exists()


def test_finding3_changing_an_mrn_answers_other_errors_before_the_mrn(
    doctor_a, patient_a, patient_b
):
    api = _api(doctor_a)
    response = api.patch(
        f"/api/v1/patients/{patient_a.pk}",
        {"mrn": patient_b.mrn, "birth_date": "2999-01-01"},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"birth_date"}
    assert Patient.objects.get(pk=patient_a.pk).mrn == "MRN-A-0001"
    assert not _probes().exists()


def test_finding3_an_mrn_conflict_is_audited_as_a_denied_probe_naming_the_actor(
    client, doctor_a, team_a, patient_a, patient_b
):
    client.force_login(doctor_a)
    page = client.post(reverse("patient_register"), _form(team_a, patient_b.mrn.lower()))
    assert page.context["form"].errors["mrn"] == ["Already in use."]
    api = _api(doctor_a)
    # An idempotent create runs in a transaction the conflict rolls back: the record survives.
    created = api.post(
        "/api/v1/patients", _body(patient_b.mrn), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert created.status_code == 409
    changed = api.patch(f"/api/v1/patients/{patient_a.pk}", {"mrn": patient_b.mrn}, format="json")
    assert changed.status_code == 409
    probes = list(_probes().order_by("id"))
    assert [(p.actor, p.patient_id, p.interface) for p in probes] == [
        (doctor_a, patient_b.pk, "page"),
        (doctor_a, patient_b.pk, "api"),
        (doctor_a, patient_b.pk, "api"),
    ]
    assert probes[1].api_token_id is not None


def test_finding3_mrn_conflicts_are_rate_limited_per_user(
    settings, client, doctor_a, team_a, patient_b
):
    settings.MEDAI_MRN_CONFLICT_LIMIT = 3
    api = _api(doctor_a)
    for _ in range(3):
        assert api.post("/api/v1/patients", _body(patient_b.mrn), format="json").status_code == 409
    # Paused: whatever the MRN, so the pause itself tells nothing about it.
    for mrn in (patient_b.mrn, UNKNOWN_MRN):
        limited = api.post("/api/v1/patients", _body(mrn), format="json")
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert "paused" in limited.json()["error"]["message"]
        assert 0 < int(limited["Retry-After"]) <= 3600
    assert not Patient.objects.filter(mrn=UNKNOWN_MRN).exists()
    client.force_login(doctor_a)
    page = client.post(reverse("patient_register"), _form(team_a, UNKNOWN_MRN))
    assert "try again after" in page.content.decode()
    assert _probes(doctor_a).count() == 3
    assert _probes(doctor_a, MRN_PROBE_PAUSED).count() == 3
    # Per user: a colleague is not paused.
    colleague = DoctorFactory()
    team_a.members.add(colleague)
    answer = _api(colleague).post("/api/v1/patients", _body(UNKNOWN_MRN), format="json")
    assert answer.status_code == 201
