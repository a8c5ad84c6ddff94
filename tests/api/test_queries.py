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


# Issue 15: SQL statements per request, counted without the test transaction's savepoints (in
# production the outermost atomic block is a BEGIN/COMMIT, not captured either), each request
# as a new transaction would run (no audit lane held from an earlier request of the test).
# Was 8: the token's query also reads its user's roles (no auth_group query per request); then 7;
# then 5 with the patient's allergies and care teams in the patient's own statement; now the
# audit lane's lock and its head are read in one round trip.
PATIENT_READ_STATEMENTS = (
    4  # token + roles, patient (+ allergies, care teams), audit (lock + head, insert)
)
# Was 34, then 23, then 22: no re-read, no FK re-checks, no deletes, no roles; then 14: no
# constraint-check queries (decided in Python), no get_or_create for the advice request, no
# separate allergy/care-team queries; now 11: the catalogue cached per process, the audit lane's
# lock and head in one round trip. (The dispatch's UPDATE runs after the response.)
VISIT_CREATE_STATEMENTS = 11  # token, patient, visit, observations, audit (lock + head, insert),
# event, advice request, diagnosis, its audit (head, insert)
# Savepoints are round trips too in production (the test transaction only adds the outermost):
# the event subscriber's and the diagnosis insert's (it catches a duplicate); none for the
# visit, its constraint checks, the diagnosis service inside the visit's, or the audit records
# (a record that fails fails the caller's transaction: what it audits must not commit without it).
VISIT_CREATE_SAVEPOINTS = 2


def _as_new_transaction() -> None:
    """Forget the audit lane an earlier request of this test's transaction took, as a new
    transaction would (the lock is re-entrant, so taking it again succeeds)."""
    from medai_site import audit

    setattr(connection, audit._HELD_LANE, None)


def _statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_patient_read_statement_count(api_a, team_a):
    patient = PatientFactory(care_teams=[team_a])
    api_a.get(f"/api/v1/patients/{patient.pk}")  # warm: token last_used_at
    _as_new_transaction()
    with CaptureQueriesContext(connection) as queries:
        assert api_a.get(f"/api/v1/patients/{patient.pk}").status_code == 200
    assert len(_statements(queries)) <= PATIENT_READ_STATEMENTS, _statements(queries)
    # No prefetch queries: allergies and care teams are read with the patient.
    assert not any(
        s.startswith(('SELECT "patients_allergy"', "SELECT (")) for s in _statements(queries)
    )
    assert not any("auth_group" in s and "apitoken" not in s for s in _statements(queries))


def test_visit_create_statement_count_and_no_reread(api_a, team_a):
    patient = PatientFactory(care_teams=[team_a])
    labs = [{"code": "2345-7", "value": 100}, {"code": "2093-3", "value": 180}]
    body = {
        "observations": vitals() + labs,  # 8 observations
        "diagnoses": [{"code": "J18.9"}],
        "chief_complaint": "cough",
    }
    url = f"/api/v1/patients/{patient.pk}/visits"
    api_a.post(url, body, format="json")
    _as_new_transaction()
    with CaptureQueriesContext(connection) as queries:
        response = api_a.post(url, body, format="json")
    assert response.status_code == 201, response.content
    statements = _statements(queries)
    assert len(statements) <= VISIT_CREATE_STATEMENTS, statements
    assert not any(s.startswith('SELECT "visits_visit"') for s in statements)  # not re-read
    assert not any(s.startswith("DELETE") for s in statements)
    assert not any('"_check"' in s for s in statements)  # constraints decided in Python
    assert not any(s.startswith('SELECT "predictions_advicerequest"') for s in statements)
    assert not any("visits_observationdefinition" in s for s in statements)  # catalogue cached
    # The lane's lock and head: one round trip, two statements (the head read after the lock).
    (lock,) = [s for s in statements if "pg_try_advisory_xact_lock" in s]
    assert "; SELECT NULLIF" in lock
    assert 'ORDER BY "id" DESC LIMIT 1' in lock
    savepoints = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) <= 1 + VISIT_CREATE_SAVEPOINTS, savepoints  # + the test's own


def test_visit_created_answers_exactly_what_a_read_returns(api_a, team_a):
    """The 201 is built from the visit in memory; it must equal the stored visit's detail."""
    patient = PatientFactory(care_teams=[team_a])
    labs = [{"code": "2093-3", "value": 4.2, "unit": "mmol/L"}, {"code": "2345-7", "value": 100}]
    body = {
        "observations": [*labs, *vitals()],  # out of order: the answer sorts them by code
        "diagnoses": [{"code": "R50.9", "rank": "secondary"}, {"code": "J18.9"}],
        "chief_complaint": "cough",
        "plan": "rest",
    }
    created = api_a.post(f"/api/v1/patients/{patient.pk}/visits", body, format="json")
    assert created.status_code == 201
    read = api_a.get(f"/api/v1/visits/{created.json()['id']}")
    assert created.json() == read.json()


def test_patient_read_carries_allergies_and_care_teams_as_the_prefetch_did(api_a, team_a):
    """Read with the patient (JSON rows): the reaction decrypted, both lists in model order."""
    from patients.services import allergy_add
    from tests.factories import CareTeamFactory, DoctorFactory

    other = CareTeamFactory(name="AAA first by name", members=[DoctorFactory()])
    patient = PatientFactory(care_teams=[team_a, other])
    for substance, reaction in (("sulfa", "hives"), ("amoxicillin", "rash and swelling")):
        allergy_add(patient=patient, substance=substance, reaction=reaction, actor=None)
    body = api_a.get(f"/api/v1/patients/{patient.pk}").json()
    assert [(a["substance"], a["reaction"]) for a in body["allergies"]] == [
        ("amoxicillin", "rash and swelling"),
        ("sulfa", "hives"),
    ]
    assert body["care_teams"] == [
        {"id": other.pk, "name": other.name},
        {"id": team_a.pk, "name": team_a.name},
    ]


def test_detail_answers_built_by_represent_equal_the_serializers_own(api_a, team_a):
    """medai_site.api_output.represent (fields built once per thread) answers exactly what a
    fresh serializer's ``.data`` would, for the visit and patient details, every time."""
    import threading

    from medai_site.api_output import represent
    from patients.api.views import PatientDetailSerializer
    from patients.selectors import patient_get
    from tests.factories import DoctorFactory
    from visits.api.views import VisitDetailSerializer
    from visits.selectors import visit_get

    patient = PatientFactory(care_teams=[team_a])
    visit_ids = [_visit(api_a, patient), _visit(api_a, PatientFactory(care_teams=[team_a]))]
    viewer = DoctorFactory()
    team_a.members.add(viewer)
    for visit_id in visit_ids:
        visit = visit_get(viewer=viewer, visit_id=visit_id, audit=False)
        assert represent(VisitDetailSerializer, visit) == VisitDetailSerializer(visit).data
    read = patient_get(viewer=viewer, patient_id=patient.pk, audit=False)
    assert represent(PatientDetailSerializer, read) == PatientDetailSerializer(read).data
    # One serializer per thread: another thread builds its own.
    seen: list[object] = []

    def other() -> None:
        from medai_site import api_output

        api_output.represent(PatientDetailSerializer, read)
        seen.append(api_output._local.serializers[PatientDetailSerializer])

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    from medai_site import api_output

    assert seen
    assert seen[0] is not api_output._local.serializers[PatientDetailSerializer]
