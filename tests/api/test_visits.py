"""Visits over the API: one request with vitals, labs and diagnoses; ranges; update; close; list."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from predictions.models import AdviceRequest
from tests.api.conftest import vitals
from tests.factories import VisitFactory
from visits.catalogue import CATALOGUE
from visits.models import Diagnosis, Visit

pytestmark = pytest.mark.django_db


def _create(api, patient, **body):
    return api.post(f"/api/v1/patients/{patient.pk}/visits", body, format="json")


def test_create_visit_with_vitals_labs_and_diagnoses_in_one_request(api_a, patient_a, doctor_a):
    response = _create(
        api_a,
        patient_a,
        visit_type="emergency",
        chief_complaint="crushing chest pain",
        observations=[
            *vitals(),
            {"code": "10839-9", "value": 0.9},
            {"code": "2345-7", "value": 7.2, "unit": "mmol/L"},
        ],
        diagnoses=[
            {"code": "I21.9", "status": "provisional"},
            {"code": "E11", "rank": "secondary"},
        ],
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["attending"]["username"] == doctor_a.username
    assert body["chief_complaint"] == "crushing chest pain"
    observations = {o["code"]: o for o in body["observations"]}
    assert observations["10839-9"]["interpretation"] == "HH"
    assert observations["2345-7"]["value"] == pytest.approx(129.72, abs=0.01)  # mmol/L → mg/dL
    assert observations["2345-7"]["entered_unit"] == "mmol/L"
    assert [d["code"] for d in body["diagnoses"]] == ["I21.9", "E11"]
    # Advice is requested in the same transaction (the outbox).
    assert AdviceRequest.objects.filter(visit_id=body["id"]).count() == 1


@pytest.mark.parametrize("definition", [d for d in CATALOGUE if d.plausible[1] is not None])
def test_every_plausible_range_applies(api_a, patient_a, definition):
    impossible = definition.plausible[1] * 10 + 1
    response = _create(
        api_a, patient_a, observations=[{"code": definition.code, "value": impossible}]
    )
    assert response.status_code == 400
    assert definition.code in response.json()["error"]["fields"]
    assert not Visit.objects.exists()


@pytest.mark.parametrize(
    ("observation", "field"),
    [
        ({"code": "8867-4", "value": "fast"}, "observations"),
        ({"code": "8867-4", "value": 10**400}, None),
        ({"code": "8867-4", "value": True}, "observations"),
        ({"code": "8867-4", "value": None}, "observations"),
        ({"code": "0000-0", "value": 1}, "0000-0"),
        ({"code": "8310-5", "value": 98.6, "unit": "kg"}, "8310-5"),
        ({"value": 1}, "observations"),
    ],
)
def test_bad_observations_are_400(api_a, patient_a, observation, field):
    response = _create(api_a, patient_a, observations=[observation])
    assert response.status_code == 400, response.content
    if field:
        assert field in response.json()["error"]["fields"]
    assert not Visit.objects.exists()


@pytest.mark.parametrize("raw", [b"1e400", b"-1e400", b"NaN", b"Infinity"])
def test_non_finite_observation_values_are_400(api_a, patient_a, raw):
    body = b'{"observations": [{"code": "8867-4", "value": ' + raw + b"}]}"
    response = api_a.generic(
        "POST", f"/api/v1/patients/{patient_a.pk}/visits", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert not Visit.objects.exists()


def test_duplicate_observation_codes_are_400(api_a, patient_a):
    response = _create(
        api_a,
        patient_a,
        observations=[{"code": "8867-4", "value": 80}, {"code": "8867-4", "value": 90}],
    )
    assert response.status_code == 400


def test_invalid_diagnosis_rolls_back_the_whole_visit(api_a, patient_a):
    response = _create(api_a, patient_a, observations=vitals(), diagnoses=[{"code": "XYZ.123"}])
    assert response.status_code == 400
    assert not Visit.objects.exists()


@pytest.mark.parametrize(
    "start", ["2024-13-01T00:00:00Z", "yesterday", "2024-01-01T10:00:00", 12345]
)
def test_invalid_or_naive_start_is_400(api_a, patient_a, start):
    assert _create(api_a, patient_a, start=start).status_code == 400


def test_read_visit_with_observations_and_diagnoses(api_a, patient_a):
    visit_id = _create(
        api_a, patient_a, observations=vitals(), diagnoses=[{"code": "J18.9"}]
    ).json()["id"]
    body = api_a.get(f"/api/v1/visits/{visit_id}").json()
    assert body["patient"]["mrn"] == patient_a.mrn
    assert len(body["observations"]) == 6
    assert body["advice_url"] == f"/api/v1/visits/{visit_id}/advice"
    assert "phone" not in body["patient"]


def test_update_visit_text_and_replace_an_observation(api_a, patient_a):
    visit_id = _create(api_a, patient_a, observations=vitals()).json()["id"]
    response = api_a.patch(
        f"/api/v1/visits/{visit_id}",
        {"plan": "chest x-ray", "observations": [{"code": "8867-4", "value": 72}]},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["plan"] == "chest x-ray"
    assert {o["code"]: o["value"] for o in body["observations"]}["8867-4"] == 72
    assert AdviceRequest.objects.filter(visit_id=visit_id).count() == 2


def test_update_with_an_impossible_vital_is_400_and_changes_nothing(api_a, patient_a):
    visit_id = _create(api_a, patient_a, observations=vitals(), plan="rest").json()["id"]
    response = api_a.patch(
        f"/api/v1/visits/{visit_id}",
        {"plan": "changed", "observations": [{"code": "2708-6", "value": 140}]},
        format="json",
    )
    assert response.status_code == 400
    assert Visit.objects.get(pk=visit_id).plan == "rest"


def test_close_then_edit_or_close_again_is_409(api_a, patient_a):
    visit_id = _create(api_a, patient_a).json()["id"]
    response = api_a.post(f"/api/v1/visits/{visit_id}/close", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    assert api_a.post(f"/api/v1/visits/{visit_id}/close", {}, format="json").status_code == 409
    response = api_a.patch(f"/api/v1/visits/{visit_id}", {"plan": "x"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_close_with_end_before_start_is_400(api_a, patient_a):
    visit_id = _create(api_a, patient_a).json()["id"]
    response = api_a.post(
        f"/api/v1/visits/{visit_id}/close", {"end": "2000-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400


def test_add_and_confirm_a_diagnosis(api_a, patient_a):
    visit_id = _create(api_a, patient_a).json()["id"]
    response = api_a.post(f"/api/v1/visits/{visit_id}/diagnoses", {"code": "j189"}, format="json")
    assert response.status_code == 201
    diagnosis = response.json()
    assert diagnosis["code"] == "J18.9"
    again = api_a.post(f"/api/v1/visits/{visit_id}/diagnoses", {"code": "J18.9"}, format="json")
    assert again.status_code == 409
    response = api_a.patch(
        f"/api/v1/visits/{visit_id}/diagnoses/{diagnosis['id']}",
        {"status": "confirmed"},
        format="json",
    )
    assert response.json()["status"] == "confirmed"
    assert Diagnosis.objects.get().status == "confirmed"
    missing = api_a.patch(
        f"/api/v1/visits/{visit_id}/diagnoses/999999", {"status": "confirmed"}, format="json"
    )
    assert missing.status_code == 404


def test_other_teams_visit_is_404_everywhere(api_a, patient_b, doctor_b):
    visit = VisitFactory(patient=patient_b, attending=doctor_b)
    for method, url in [
        ("get", f"/api/v1/visits/{visit.pk}"),
        ("patch", f"/api/v1/visits/{visit.pk}"),
        ("post", f"/api/v1/visits/{visit.pk}/close"),
        ("post", f"/api/v1/visits/{visit.pk}/diagnoses"),
        ("get", f"/api/v1/visits/{visit.pk}/advice"),
        ("post", f"/api/v1/visits/{visit.pk}/advice"),
    ]:
        assert getattr(api_a, method)(url, {}, format="json").status_code == 404, (method, url)


def test_list_visits_per_patient_with_filters(api_a, patient_a, doctor_a):
    now = timezone.now()
    old = VisitFactory(patient=patient_a, attending=doctor_a, start=now - dt.timedelta(days=40))
    recent = VisitFactory(
        patient=patient_a,
        attending=doctor_a,
        start=now - dt.timedelta(days=1),
        visit_type="emergency",
    )
    closed = VisitFactory(
        patient=patient_a, attending=doctor_a, start=now - dt.timedelta(days=2), status="closed"
    )
    url = f"/api/v1/patients/{patient_a.pk}/visits"

    def ids(**params):
        response = api_a.get(url, params)
        assert response.status_code == 200, response.json()
        return [v["id"] for v in response.json()["results"]]

    assert ids() == [recent.pk, closed.pk, old.pk]
    assert ids(visit_type="emergency") == [recent.pk]
    assert ids(status="closed") == [closed.pk]
    since = (now - dt.timedelta(days=10)).isoformat()
    assert ids(start_from=since) == [recent.pk, closed.pk]
    assert ids(start_to=since) == [old.pk]


@pytest.mark.parametrize(
    "params", [{"start_from": "last week"}, {"visit_type": "spa"}, {"status": ""}, {"start_to": ""}]
)
def test_bad_visit_filters_are_400(api_a, patient_a, params):
    response = api_a.get(f"/api/v1/patients/{patient_a.pk}/visits", params)
    assert response.status_code == 400


def test_observation_definitions_list_the_catalogue(api_a):
    body = api_a.get("/api/v1/observation-definitions").json()
    codes = {d["code"]: d for d in body}
    assert set(codes) == {d.code for d in CATALOGUE}
    assert codes["8867-4"]["plausible_low"] == 20


def test_icd10_search_and_lookup(api_a):
    hits = api_a.get("/api/v1/icd10", {"q": "pneumonia", "limit": 5}).json()
    assert 0 < len(hits) <= 5
    assert all("neumonia" in h["display"] for h in hits)
    assert api_a.get("/api/v1/icd10", {"q": "I21"}).json()[0]["code"].startswith("I21")
    assert api_a.get("/api/v1/icd10/i219").json() == {
        "code": "I21.9",
        "display": "Acute myocardial infarction, unspecified",
    }
    assert api_a.get("/api/v1/icd10/NOTACODE").status_code == 404
    assert api_a.get("/api/v1/icd10", {"q": " "}).json() == []
    assert api_a.get("/api/v1/icd10").status_code == 400
    assert api_a.get("/api/v1/icd10", {"q": "x", "limit": 1000}).status_code == 400


def test_free_text_limits_and_emergency_triage_are_the_pages_own(api_a, patient_a):
    from visits.services import VISIT_TEXT_LIMITS

    limit = VISIT_TEXT_LIMITS["chief_complaint"]
    long = _create(api_a, patient_a, chief_complaint="x" * (limit + 1), observations=vitals())
    assert long.status_code == 400
    assert long.json()["error"]["fields"]["chief_complaint"] == [
        f"Too long: at most {limit} characters."
    ]
    assert _create(api_a, patient_a, chief_complaint="x" * limit).status_code == 201

    no_triage = _create(
        api_a,
        patient_a,
        visit_type="emergency",
        chief_complaint="chest pain",
        observations=[{"code": "8867-4", "value": 118}],
    )
    assert no_triage.status_code == 400
    error = no_triage.json()["error"]
    assert "triage vital signs" in error["message"]
    assert set(error["fields"]) == {"9279-1", "2708-6", "8480-6", "8310-5"}


def test_the_medication_list_is_recorded_encrypted_returned_and_limited(api_a, patient_a):
    from django.db import connection

    from visits.services import VISIT_TEXT_LIMITS

    created = _create(api_a, patient_a, chief_complaint="cough", medications="metformin 500 mg bd")
    assert created.status_code == 201
    visit_id = created.json()["id"]
    detail = api_a.get(f"/api/v1/visits/{visit_id}").json()
    assert detail["medications"] == "metformin 500 mg bd"
    with connection.cursor() as cursor:
        cursor.execute("SELECT medications FROM visits_visit WHERE id = %s", [visit_id])
        (stored,) = cursor.fetchone()
    assert "metformin" not in stored  # encrypted at rest

    limit = VISIT_TEXT_LIMITS["medications"]
    long = _create(api_a, patient_a, chief_complaint="cough", medications="x" * (limit + 1))
    assert long.status_code == 400
    assert long.json()["error"]["fields"]["medications"] == [
        f"Too long: at most {limit} characters."
    ]


def test_a_visit_is_recorded_while_the_shared_cache_is_down(api_a, patient_a, caplog):
    """Production's cache is Redis (settings: MEDAI_CACHE_URL). In a Redis outage rate limiting
    fails open, so recording continues as the outbox intends (issue 18); the outage is logged."""
    import socket

    from django.test import override_settings

    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    redis_down = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{dead}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with override_settings(CACHES=redis_down):
        response = _create(api_a, patient_a, chief_complaint="cough", observations=vitals())
    assert response.status_code == 201, response.json()
    assert Visit.objects.filter(pk=response.json()["id"]).exists()
    assert "rate limit not applied: the cache is unavailable" in caplog.text
