"""Patients over the API: register, read, update, search, cursor pagination, care-team scoping."""

from __future__ import annotations

import pytest

from medai_site.models import AuditEvent
from patients.models import Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NEW_PATIENT = {
    "mrn": "api-0001",
    "sex": "female",
    "given_name": "Grace",
    "family_name": "Hopper",
    "birth_date": "1956-12-09",
    "phone": "+1 555 0199",
    "national_id": "NID-778899",
    "allergies": [{"substance": "Penicillin", "reaction": "rash", "severity": "severe"}],
}


def test_register_patient_joins_the_callers_teams_and_is_readable(api_a, team_a):
    response = api_a.post("/api/v1/patients", NEW_PATIENT, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["mrn"] == "API-0001"
    assert body["care_teams"] == [{"id": team_a.pk, "name": team_a.name}]
    assert body["allergies"][0]["substance"] == "penicillin"
    assert api_a.get(f"/api/v1/patients/{body['id']}").json()["national_id"] == "NID-778899"


def test_register_into_a_team_the_caller_is_not_in_is_400(api_a, team_b):
    response = api_a.post(
        "/api/v1/patients", {**NEW_PATIENT, "care_team_ids": [team_b.pk]}, format="json"
    )
    assert response.status_code == 400
    assert "care_team_ids" in response.json()["error"]["fields"]


def test_register_without_any_team_is_400(client_for, db):
    from tests.factories import DoctorFactory

    response = client_for(DoctorFactory()).post("/api/v1/patients", NEW_PATIENT, format="json")
    assert response.status_code == 400


def test_duplicate_mrn_is_409(api_a, patient_a):
    response = api_a.post("/api/v1/patients", {**NEW_PATIENT, "mrn": patient_a.mrn}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"mrn": ["Already in use."]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"birth_date": "1980-02-30"}, "birth_date"),
        ({"birth_date": 19800101}, "birth_date"),
        ({"sex": "robot"}, "sex"),
        ({"mrn": "no spaces allowed"}, "mrn"),
        ({"email": "not-an-email"}, "email"),
        ({"given_name": "x" * 101}, "given_name"),
        ({"given_name": None}, "given_name"),
        ({"allergies": "peanuts"}, "allergies"),
        ({"care_team_ids": [2**70]}, "care_team_ids"),
    ],
)
def test_invalid_patient_input_is_400_naming_the_field(api_a, change, field):
    response = api_a.post("/api/v1/patients", {**NEW_PATIENT, **change}, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert not Patient.objects.filter(mrn="API-0001").exists()


def test_update_changes_only_the_fields_sent(api_a, patient_a):
    response = api_a.patch(
        f"/api/v1/patients/{patient_a.pk}", {"phone": "+44 20 7946 0000"}, format="json"
    )
    assert response.status_code == 200
    patient_a.refresh_from_db()
    assert patient_a.phone == "+44 20 7946 0000"
    assert patient_a.given_name == "Mei"


def test_update_to_an_mrn_in_use_is_409(api_a, patient_a, team_a):
    other = PatientFactory(care_teams=[team_a])
    response = api_a.patch(f"/api/v1/patients/{patient_a.pk}", {"mrn": other.mrn}, format="json")
    assert response.status_code == 409


def test_other_teams_patient_is_404_for_read_update_and_visits(api_a, patient_b):
    for method, url in [
        ("get", f"/api/v1/patients/{patient_b.pk}"),
        ("patch", f"/api/v1/patients/{patient_b.pk}"),
        ("get", f"/api/v1/patients/{patient_b.pk}/visits"),
        ("post", f"/api/v1/patients/{patient_b.pk}/visits"),
    ]:
        response = getattr(api_a, method)(url, {}, format="json")
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["code"] == "not_found"


def test_unknown_and_huge_ids_are_404(api_a):
    for patient_id in (999999, 2**63 - 1, 10**30):
        assert api_a.get(f"/api/v1/patients/{patient_id}").status_code == 404


def test_list_shows_only_the_callers_patients_and_only_summary_fields(api_a, patient_a, patient_b):
    response = api_a.get("/api/v1/patients")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["id"] for r in rows] == [patient_a.pk]
    assert set(rows[0]) == {"id", "mrn", "name", "sex", "birth_date"}
    assert rows[0]["name"] == "Mei Lin"


def test_cursor_pagination_walks_every_row_once(api_a, team_a):
    created = {PatientFactory(care_teams=[team_a]).pk for _ in range(7)}
    seen, url = [], "/api/v1/patients?page_size=3"
    while url:
        body = api_a.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(created)


@pytest.mark.parametrize("page_size", ["0", "abc", "201", "-1"])
def test_bad_page_size_is_400(api_a, page_size):
    assert api_a.get(f"/api/v1/patients?page_size={page_size}").status_code == 400


def test_bad_cursor_is_404(api_a):
    assert api_a.get("/api/v1/patients?cursor=garbage").status_code == 404


@pytest.mark.parametrize(
    "query",
    ["MRN00000000", "ada lovelace", "Lovelace", "+1 555 0100000", "ID-0000000"],
)
def test_search_by_mrn_name_phone_and_national_id(api_a, team_a, query):
    patient = PatientFactory(
        care_teams=[team_a],
        mrn="MRN00000000",
        given_name="Ada",
        family_name="Lovelace",
        phone="+1 555 0100000",
        national_id="ID-0000000",
    )
    PatientFactory(care_teams=[team_a], given_name="Someone", family_name="Else")
    response = api_a.post("/api/v1/patients/search", {"q": query}, format="json")
    assert [r["id"] for r in response.json()] == [patient.pk]
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.SEARCH_HIT, patient_id=patient.pk
    ).exists()


def test_search_never_finds_another_teams_patient(api_a, patient_b):
    response = api_a.post("/api/v1/patients/search", {"q": patient_b.mrn}, format="json")
    assert response.json() == []


def test_search_terms_are_not_accepted_in_the_url(api_a, patient_a):
    """PHI stays out of URLs: a ?q= on the list is ignored, not a search."""
    listed = api_a.get("/api/v1/patients", {"q": "no such name"}).json()["results"]
    assert [r["id"] for r in listed] == [patient_a.pk]


def test_read_is_audited_as_api(api_a, patient_a):
    api_a.get(f"/api/v1/patients/{patient_a.pk}")
    event = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW).get()
    assert (event.patient_id, event.interface) == (patient_a.pk, AuditEvent.Interface.API)
