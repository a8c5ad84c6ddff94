"""Bad input (issue 7): hostile, malformed and oversized input gets a clear 4xx and no side effect.

Script tags are stored as text and escaped wherever they are rendered; SQL fragments are stored as
text; bodies above DATA_UPLOAD_MAX_MEMORY_SIZE, invalid UTF-8, hostile JSON and wrong content
types are refused before anything is written (row counts unchanged).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from medai_site.api_auth import Scope, api_token_create
from patients.models import Allergy, Patient
from patients.services import patient_create
from predictions.models import AdviceRequest
from visits.models import Observation, ObservationDefinition, Visit
from visits.services import ObservationInput, visit_create

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('pwned')</script>"
IMG = '"><img src=x onerror=alert(1)>'
SQL = "Robert'); DROP TABLE patients_patient;--"
SQL_OR = "x' OR '1'='1"
TOO_BIG = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024


def row_counts() -> dict[str, int]:
    models = (Patient, Allergy, Visit, Observation, AdviceRequest)
    return {m.__name__: m.objects.count() for m in models}


@pytest.fixture
def unchanged() -> Iterator[None]:
    """The test body may send anything; afterwards, not one domain row has been written."""
    before = row_counts()
    yield
    assert row_counts() == before


@pytest.fixture
def api(doctor_a) -> APIClient:
    secret = api_token_create(
        user=doctor_a,
        name="hostile client",
        scopes=[s for s in Scope.values if s != Scope.MODELS_MANAGE],  # a doctor's role
        days=1,
        actor=doctor_a,
    )[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def page(client, doctor_a):
    client.force_login(doctor_a)
    return client


@pytest.fixture
def hostile_patient(team_a, doctor_a) -> Patient:
    patient = patient_create(
        mrn="XSS-0001",
        sex="female",
        given_name=SCRIPT,
        family_name=IMG,
        birth_date=dt.date(1970, 1, 1),
        address=SQL,
        care_teams=[team_a],
        actor=doctor_a,
    )
    visit_create(
        patient=patient,
        attending=doctor_a,
        chief_complaint=f"{SCRIPT} {SQL}",
        plan=IMG,
        observations=[ObservationInput("8867-4", 80)],
        actor=doctor_a,
        request_advice=False,
    )
    return patient


def register_data(team, **overrides: str) -> dict[str, object]:
    return {
        "mrn": "FORM-0001",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "sex": "female",
        "birth_date": "1960-03-14",
        "care_teams": [team.pk],
        **overrides,
    }


def assert_escaped(html: str) -> None:
    assert SCRIPT not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html


# --- script tags: escaped in every rendered page ---------------------------------------------


def test_script_tags_are_escaped_on_chart_visit_search_and_dashboard(page, hostile_patient):
    """Names and free text with markup render as text on every page that shows them."""
    visit = hostile_patient.visits.get()
    urls = [
        reverse("patient_chart", args=[hostile_patient.pk]),
        reverse("visit_detail", args=[visit.pk]),
        reverse("visit_edit", args=[visit.pk]),
        reverse("dashboard"),
    ]
    for url in urls:
        response = page.get(url)
        assert response.status_code == 200, url
        assert_escaped(response.content.decode())
    results = page.post(reverse("patient_search"), {"q": "XSS-0001"})
    assert results.status_code == 200
    assert_escaped(results.content.decode())


def test_script_tags_are_escaped_in_the_admin(client, admin_user, hostile_patient):
    client.force_login(admin_user)
    visit = hostile_patient.visits.get()
    for url in (
        reverse("admin:patients_patient_changelist"),
        reverse("admin:patients_patient_change", args=[hostile_patient.pk]),
        reverse("admin:visits_visit_change", args=[visit.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert SCRIPT not in html, url
        assert "<img src=x" not in html, url


def test_a_refused_form_echoes_markup_escaped(page, team_a, unchanged):
    response = page.post(
        reverse("patient_register"),
        register_data(team_a, mrn=SCRIPT, given_name=SCRIPT, birth_date="not a date"),
    )
    assert response.status_code == 400
    assert_escaped(response.content.decode())


def test_icd10_search_echoes_its_query_escaped(page):
    response = page.get(reverse("icd10_search"), {"q": SCRIPT})
    assert response.status_code == 200
    assert SCRIPT not in response.content.decode()


# --- SQL fragments are text --------------------------------------------------------------------


def test_sql_fragments_are_stored_verbatim_through_page_and_api(page, api, team_a):
    response = page.post(
        reverse("patient_register"),
        register_data(team_a, given_name=SQL, family_name=SQL_OR, address=SQL),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = Patient.objects.get(mrn="FORM-0001")
    assert (stored.given_name, stored.family_name, stored.address) == (SQL, SQL_OR, SQL)

    created = api.post(
        f"/api/v1/patients/{stored.pk}/visits",
        {"chief_complaint": SQL, "plan": SCRIPT},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["chief_complaint"] == SQL
    assert created["Content-Type"] == "application/json"  # never rendered as HTML
    # Search treats the fragment as a value: no error, no rows beyond the exact match.
    for query in (SQL_OR, "%", "' OR 1=1 --"):
        assert api.post("/api/v1/patients/search", {"q": query}, format="json").status_code == 200
        assert page.post(reverse("patient_search"), {"q": query}).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM patients_patient")
        assert cursor.fetchone() == (1,)


# --- oversized bodies --------------------------------------------------------------------------


def test_data_upload_limit_is_set_and_sane():
    assert 64 * 1024 <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= 10 * 1024 * 1024


def test_oversized_page_form_is_400(page, team_a, unchanged):
    response = page.post(reverse("patient_register"), register_data(team_a, address="a" * TOO_BIG))
    assert response.status_code == 400


def test_form_with_too_many_fields_is_400(page, team_a, unchanged):
    extra = {f"field{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = page.post(reverse("patient_register"), {**register_data(team_a), **extra})
    assert response.status_code == 400


def test_oversized_api_body_is_413_in_the_error_shape(api, unchanged):
    body = b'{"mrn": "BIG-0001", "given_name": "' + b"a" * TOO_BIG + b'"}'
    response = api.post("/api/v1/patients", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_oversized_field_within_the_body_limit_is_400_naming_it(api, unchanged):
    response = api.post(
        "/api/v1/patients",
        {"mrn": "BIG-0002", "sex": "female", "given_name": "a" * 100_000, "family_name": "b"},
        format="json",
    )
    assert response.status_code == 400
    assert "given_name" in response.json()["error"]["fields"]


# --- invalid UTF-8 -------------------------------------------------------------------------------


def test_invalid_utf8_json_is_400(api, unchanged):
    response = api.post(
        "/api/v1/patients",
        b'{"mrn": "UTF-0001", "given_name": "\xff\xfe"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_invalid_utf8_urlencoded_form_is_400(page, team_a, unchanged):
    body = (
        b"mrn=UTF-0001&given_name=%FF%FE&family_name=x&sex=female&birth_date=1970-01-01"
        b"&care_teams=" + str(team_a.pk).encode()
    )
    response = page.post(
        reverse("patient_register"), body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400


def test_invalid_utf8_multipart_form_is_400(page, team_a, unchanged):
    boundary = "medaiboundary"
    fields = {**register_data(team_a, care_teams=str(team_a.pk)), "given_name": b"\xff\xfe"}
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="'
            + name.encode()
            + b'"\r\n\r\n'
            + (value if isinstance(value, bytes) else str(value).encode())
            + b"\r\n"
            for name, value in fields.items()
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    response = page.post(
        reverse("patient_register"), body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert response.status_code == 400


def test_invalid_utf8_in_a_search_query_is_harmless(page, api):
    """Undecodable bytes in a search: a clear 400 on the page, harmless on the API list."""
    assert (
        page.post(
            reverse("patient_search"), b"q=%FF%FE", content_type="application/x-www-form-urlencoded"
        ).status_code
        == 400
    )
    assert api.get("/api/v1/patients?q=%FF%FE").status_code == 200


# --- hostile JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"mrn": ', "parse_error"),
        (b"[" * 100_000 + b"]" * 100_000, "parse_error"),  # deep nesting: RecursionError inside
        (b'{"mrn": NaN}', "parse_error"),
        (b'"just a string"', "invalid"),
        (b'{"mrn": "NUL-0001", "given_name": "a\\u0000b"}', "invalid"),
        (b'{"mrn": "T-0001", "allergies": "penicillin"}', "invalid"),
        (b'{"mrn": "T-0002", "allergies": [{"substance": []}]}', "invalid"),
    ],
    ids=[
        "truncated",
        "deeply-nested",
        "nan",
        "not-an-object",
        "nul-char",
        "str-for-list",
        "nested",
    ],
)
def test_hostile_json_is_400_in_the_error_shape(api, unchanged, body, code):
    response = api.post("/api/v1/patients", body, content_type="application/json")
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == code
    assert "ErrorDetail" not in error["message"]  # a sentence, not a Python repr


def test_non_finite_observation_is_400(api, team_a):
    patient = patient_create(
        mrn="INF-0001",
        sex="male",
        given_name="Inf",
        family_name="Inity",
        birth_date=dt.date(1970, 1, 1),
        care_teams=[team_a],
        actor=None,
    )
    before = row_counts()
    for value in ("1e400", "-1e400", "Infinity", "NaN"):
        body = f'{{"observations": [{{"code": "8867-4", "value": {value}}}]}}'.encode()
        response = api.post(
            f"/api/v1/patients/{patient.pk}/visits", body, content_type="application/json"
        )
        assert response.status_code == 400, (value, response.content[:300])
    assert row_counts() == before


# --- wrong content types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "application/xml", "multipart/form-data"],
)
def test_api_refuses_other_content_types_with_415(api, unchanged, content_type):
    body = "mrn=CT-0001&given_name=x" if "form" in content_type else "<patient/>"
    if content_type.startswith("multipart"):
        content_type += "; boundary=b"
        body = '--b\r\nContent-Disposition: form-data; name="mrn"\r\n\r\nCT-0001\r\n--b--\r\n'
    response = api.post("/api/v1/patients", body, content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml"])
def test_page_forms_refuse_other_content_types_with_415(page, team_a, unchanged, content_type):
    response = page.post(reverse("patient_register"), '{"mrn": "CT-0002"}', content_type)
    assert response.status_code == 415


def test_visit_form_refuses_json(page, hostile_patient, unchanged):
    response = page.post(
        reverse("visit_new", args=[hostile_patient.pk]),
        {"chief_complaint": "cough"},
        content_type="application/json",
    )
    assert response.status_code == 415


def test_bodiless_posts_still_work(page, hostile_patient):
    """Closing a visit and signing out post no body: the content-type rule leaves them alone."""
    visit = hostile_patient.visits.get()
    assert page.post(reverse("visit_close", args=[visit.pk])).status_code == 302
    visit.refresh_from_db()
    assert visit.status == Visit.Status.CLOSED
    assert page.post(reverse("logout")).status_code == 302


# --- ids and parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("big", ["99999999999999999999999", "9223372036854775808"])
def test_out_of_range_ids_are_404(page, api, big):
    assert page.get(f"/patients/{big}/").status_code == 404
    assert page.get(f"/visits/{big}/").status_code == 404
    assert api.get(f"/api/v1/patients/{big}").status_code == 404
    assert api.get(f"/api/v1/visits/{big}").status_code == 404


def test_hostile_observation_values_on_the_visit_form_are_400(page, hostile_patient, unchanged):
    data = {"visit_type": "outpatient", "chief_complaint": "cough"}
    for d in ObservationDefinition.objects.exclude(alternative_units=[]):
        data["unit_" + d.code.replace("-", "_")] = d.unit
    for value in (SCRIPT, "1e400", "nan", SQL_OR):
        data["obs_8867_4"] = value
        response = page.post(reverse("visit_new", args=[hostile_patient.pk]), data)
        assert response.status_code == 400, value
        assert SCRIPT not in response.content.decode()
