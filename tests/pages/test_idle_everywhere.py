"""Issue 12, point 7: the idle limit holds for session-authenticated API calls and the admin too,
and background polls never keep a session alive — nor can a poll's marking be used to dodge it."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.urls import reverse
from rest_framework.test import APIClient

from medai_site.session_idle import LAST_ACTIVITY_KEY, POLL_HEADER

pytestmark = pytest.mark.django_db


def _idle(client, seconds: float | None = None) -> None:
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - (seconds or settings.SESSION_COOKIE_AGE + 5)
    session.save()


def test_idle_session_is_refused_on_the_session_api(doctor_a, patient_a):
    api = APIClient()
    api.force_login(doctor_a)
    assert api.get(f"/api/v1/patients/{patient_a.pk}").status_code == 200
    _idle(api)
    expired = api.get(f"/api/v1/patients/{patient_a.pk}")
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "session_expired"
    assert api.get("/api/v1/patients").status_code in (401, 403)  # really signed out


def test_idle_session_is_refused_in_the_admin(client_admin):
    assert client_admin.get("/admin/").status_code == 200
    _idle(client_admin)
    expired = client_admin.get("/admin/patients/patient/")
    assert expired.status_code == 302
    assert "expired=1" in expired["Location"]
    assert client_admin.get("/admin/").status_code == 302  # signed out


def test_session_api_calls_by_the_user_count_as_activity(doctor_a):
    api = APIClient()
    api.force_login(doctor_a)
    api.get("/api/v1/patients")
    _idle(api, seconds=60)
    before = api.session[LAST_ACTIVITY_KEY]
    api.get("/api/v1/patients")
    assert api.session[LAST_ACTIVITY_KEY] > before


def test_background_polls_do_not_refresh_activity_even_without_the_header(client_a, visit_a):
    """The advice panel and the training progress bar are polls by nature (marked on the server):
    a poll that forgot its header still keeps nothing alive."""
    client_a.get(reverse("dashboard"))
    _idle(client_a, seconds=60)
    before = client_a.session[LAST_ACTIVITY_KEY]
    assert client_a.get(reverse("advice_panel", args=[visit_a.pk])).status_code == 200
    assert client_a.session[LAST_ACTIVITY_KEY] == before
    _idle(client_a)  # ...and past the limit the poll itself is refused
    assert client_a.get(reverse("advice_panel", args=[visit_a.pk])).status_code == 302


def test_poll_header_on_a_normal_page_does_not_dodge_the_idle_limit(client_a, patient_a):
    """Marking a request as a poll only withholds activity; it never exempts it from expiry."""
    chart = reverse("patient_chart", args=[patient_a.pk])
    client_a.get(chart)
    _idle(client_a)
    dodging = client_a.get(chart, headers={POLL_HEADER: "1"})
    assert dodging.status_code == 302
    assert "expired=1" in dodging["Location"]
    api = APIClient()
    api.force_login(patient_a.care_teams.get().members.get())
    _idle(api)
    assert api.get("/api/v1/patients", headers={POLL_HEADER: "1"}).status_code == 401


def test_polls_keep_working_within_the_limit_but_the_session_ends_on_time(client_a, visit_a):
    """Polling every few seconds for longer than the limit, with no user activity, ends it."""
    client_a.get(reverse("dashboard"))
    _idle(client_a, seconds=settings.SESSION_COOKIE_AGE - 30)
    panel = reverse("advice_panel", args=[visit_a.pk])
    assert client_a.get(panel, headers={POLL_HEADER: "1"}).status_code == 200
    _idle(client_a, seconds=settings.SESSION_COOKIE_AGE + 1)  # time passes, polls continue
    ended = client_a.get(panel, headers={POLL_HEADER: "1", "HX-Request": "true"})
    assert "expired=1" in ended["HX-Redirect"]


def test_token_calls_are_not_tied_to_a_session(doctor_a):
    """A bearer-token call carries no session: the idle clock neither applies nor moves."""
    from medai_site.api_auth import Scope, api_token_create

    _, secret = api_token_create(
        user=doctor_a, name="script", scopes=[Scope.PATIENTS_READ], days=1, actor=doctor_a
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    api.force_login(doctor_a)  # a stale browser session alongside the token
    _idle(api)
    assert api.get("/api/v1/patients").status_code == 200
