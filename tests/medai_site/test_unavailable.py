"""The database or broker unreachable: 503 with Retry-After and a transient error code (API), a
"please try again" page that keeps the form input (pages); nothing half-saved. The real outage
(a PostgreSQL connection cut under gunicorn) is tests/integration/test_faults.py."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.urls import reverse
from kombu.exceptions import OperationalError as BrokerUnreachable

from medai_site.errors import RETRY_AFTER_SECONDS, transient_error
from tests.api.conftest import vitals
from visits import services as visit_services
from visits.models import Visit

pytestmark = pytest.mark.django_db
FORM = {
    "visit_type": "outpatient",
    "chief_complaint": "cough",
    "unit_8310_5": "Cel",
    "unit_29463_7": "kg",
    "unit_2345_7": "mg/dL",
    "unit_2093_3": "mg/dL",
}
DRIVER_TEXT = 'connection to server at "db.internal" (10.1.2.3), port 5432 failed'


@pytest.fixture
def client_a(client, doctor_a):
    client.force_login(doctor_a)
    return client


@pytest.fixture
def api_a(doctor_a):
    from rest_framework.test import APIClient

    from medai_site.api_auth import Scope, api_token_create

    scopes = [s for s in Scope if s != Scope.MODELS_MANAGE]
    token = api_token_create(user=doctor_a, name="t", scopes=scopes, days=1, actor=doctor_a)[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def database_drops(monkeypatch):
    """The connection drops inside the visit's transaction (after the visit row was written)."""

    def drop(**kwargs):
        raise OperationalError(f"server closed the connection unexpectedly; {DRIVER_TEXT}")

    monkeypatch.setattr(visit_services, "visit_event_record", drop)


def test_transient_errors_are_the_database_and_broker_being_unreachable():
    assert transient_error(OperationalError("x"))
    assert transient_error(BrokerUnreachable("x"))
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = OperationalError("x")
    assert transient_error(wrapped)
    assert not transient_error(ValueError("a bug"))
    assert not transient_error(None)


def test_api_answers_503_with_retry_after_in_its_error_shape(api_a, patient_a, database_drops):
    response = api_a.post(
        f"/api/v1/patients/{patient_a.pk}/visits",
        {"chief_complaint": "chest pain", "observations": vitals()},
        format="json",
        HTTP_IDEMPOTENCY_KEY="visit-retry-1",
    )
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    error = response.json()["error"]
    assert error["code"] == "temporarily_unavailable"
    assert "Retry" in error["message"]
    assert "db.internal" not in response.content.decode()
    assert not Visit.objects.exists()  # rolled back: nothing half-saved


def test_the_retry_with_the_same_key_succeeds_once_the_database_is_back(
    api_a, patient_a, monkeypatch
):
    calls = []
    real = visit_services.visit_event_record

    def first_call_drops(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(visit_services, "visit_event_record", first_call_drops)
    body = {"chief_complaint": "chest pain", "observations": vitals()}
    url = f"/api/v1/patients/{patient_a.pk}/visits"
    first = api_a.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 503
    again = api_a.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201, again.json()
    assert Visit.objects.count() == 1


def test_a_page_shows_please_try_again_and_keeps_the_form_input(
    client_a, patient_a, database_drops
):
    data = {**FORM, "chief_complaint": "crushing chest pain <since dawn>", "obs_8867_4": "131"}
    client_a.raise_request_exception = False  # as in production: the handler answers
    response = client_a.post(reverse("visit_new", args=[patient_a.pk]), data)
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert "please try again" in html
    # Every field comes back (escaped) in a form that re-sends it to the same address.
    assert 'value="crushing chest pain &lt;since dawn&gt;"' in html
    assert 'name="obs_8867_4" value="131"' in html
    assert '<form method="post" action="">' in html
    assert "db.internal" not in html
    assert not Visit.objects.exists()


def test_the_session_store_unreachable_is_a_503_page_not_a_500(client_a, monkeypatch):
    """The database fails before any view runs (the session is read in the middleware)."""
    from django.contrib.sessions.backends.db import SessionStore

    def unreachable(self):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(SessionStore, "load", unreachable)
    client_a.raise_request_exception = False
    response = client_a.get(reverse("dashboard"))
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    api = client_a.get("/api/v1/patients")
    assert api.status_code == 503
    assert api.json()["error"]["code"] == "temporarily_unavailable"


def test_a_bug_is_still_a_500(client_a, patient_a, monkeypatch):
    def bug(**kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(visit_services, "visit_event_record", bug)
    client_a.raise_request_exception = False
    response = client_a.post(reverse("visit_new", args=[patient_a.pk]), FORM)
    assert response.status_code == 500
    assert "Retry-After" not in response
