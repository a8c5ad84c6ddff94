"""A request's log lines carry its request id and no PHI (canary name in the record and query)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.conf import settings
from django.test import Client

from medai_site.log_context import RequestContextFilter
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
CANARY = "Zyxwquorra"


@pytest.fixture
def json_log():
    """The production handler's filter and JSON formatter on the root logger, into a buffer."""
    from pythonjsonlogger.json import JsonFormatter

    config = settings.LOGGING["formatters"]["json"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(JsonFormatter(config["format"], rename_fields=config["rename_fields"]))
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_failing_page_logs_its_request_id_and_no_phi(json_log, doctor_a, team_a, monkeypatch):
    PatientFactory(given_name=CANARY, family_name=CANARY, care_teams=[team_a])

    def broken_search(**kwargs):
        raise RuntimeError("search backend unavailable")

    monkeypatch.setattr("patients.views.patient_search", broken_search)
    client = Client(raise_request_exception=False)
    client.force_login(doctor_a)

    response = client.post("/patients/", {"q": CANARY})

    assert response.status_code == 500
    request_id = response["X-Request-ID"]
    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    page_errors = [line for line in lines if line["message"].startswith("page error")]
    assert page_errors, lines
    assert all(line["request_id"] == request_id for line in page_errors)
    assert page_errors[0]["interface"] == "page"
    assert CANARY not in json_log.getvalue()
