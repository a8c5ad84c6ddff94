"""Fast responses: a constant number of queries, and no decryption the response does not need."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.conftest import vitals
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
MAX_QUERIES = 8  # auth (token, user's roles), scoping + page, last_used bookkeeping


@pytest.fixture
def decrypted(monkeypatch):
    """Every plaintext decrypted while the fixture is active."""
    from medai_site import encrypted_fields

    seen: list[str] = []
    original = encrypted_fields.decrypt_token

    def spy(token: str) -> str:
        value = original(token)
        seen.append(value)
        return value

    monkeypatch.setattr(encrypted_fields, "decrypt_token", spy)
    return seen


def _count(api, url) -> int:
    api.get(url)  # warm: token last_used_at, caches
    with CaptureQueriesContext(connection) as queries:
        assert api.get(url).status_code == 200
    return len(queries)


def test_patient_list_query_count_does_not_grow_with_rows(
    api_a, team_a, django_assert_max_num_queries
):
    for _ in range(5):
        PatientFactory(care_teams=[team_a])
    few = _count(api_a, "/api/v1/patients")
    for _ in range(45):
        PatientFactory(care_teams=[team_a])
    with django_assert_max_num_queries(MAX_QUERIES):
        api_a.get("/api/v1/patients")
    assert _count(api_a, "/api/v1/patients") == few


def test_patient_list_decrypts_only_what_it_returns(api_a, team_a, decrypted):
    patients = [PatientFactory(care_teams=[team_a], address="1 Secret Road") for _ in range(5)]
    decrypted.clear()
    rows = api_a.get("/api/v1/patients").json()["results"]
    assert len(rows) == 5
    assert len(decrypted) == 3 * 5  # given name, family name, date of birth per row
    for patient in patients:
        assert patient.phone not in decrypted
        assert patient.national_id not in decrypted
    assert "1 Secret Road" not in decrypted


def _visit(api, patient, n_allergies=0) -> int:
    body = {"observations": vitals(), "diagnoses": [{"code": "J18.9"}], "plan": "rest"}
    return api.post(f"/api/v1/patients/{patient.pk}/visits", body, format="json").json()["id"]


def test_visit_detail_query_count_is_constant(api_a, team_a, client_for, doctor_a):
    from visits.services import ObservationInput, visit_update

    small = PatientFactory(care_teams=[team_a])
    big = PatientFactory(care_teams=[team_a])
    small_id, big_id = _visit(api_a, small), _visit(api_a, big)
    from patients.services import allergy_add
    from visits.models import Visit

    for i in range(10):
        allergy_add(patient=big, substance=f"substance {i}", actor=None)
    labs = ["2345-7", "2093-3", "6690-2", "718-7", "2160-0", "1988-5", "2951-2", "2823-3"]
    values = [100, 180, 7, 14, 1, 3, 140, 4]
    visit_update(
        visit=Visit.objects.get(pk=big_id),
        actor=doctor_a,
        observations=[ObservationInput(c, v) for c, v in zip(labs, values, strict=True)],
    )
    few = _count(api_a, f"/api/v1/visits/{small_id}")
    many = _count(api_a, f"/api/v1/visits/{big_id}")
    assert few == many <= MAX_QUERIES + 4  # + audit insert, observations, diagnoses, allergies


def test_visit_detail_does_not_decrypt_patient_contact_data(api_a, team_a, decrypted):
    patient = PatientFactory(
        care_teams=[team_a], address="1 Secret Road", emergency_contact="Mum 555 0000"
    )
    visit_id = _visit(api_a, patient)
    decrypted.clear()
    assert api_a.get(f"/api/v1/visits/{visit_id}").status_code == 200
    for secret in (patient.phone, patient.national_id, "1 Secret Road", "Mum 555 0000"):
        assert secret not in decrypted
    assert patient.given_name in decrypted
