"""Browser-only middleware (medai_site.browser_only): passed over by bearer API calls, and only
by them; security headers and the request id stay on every response."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.module_loading import import_string
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_loads(monkeypatch) -> list[str]:
    """The paths for which the session middleware ran (it loads the session there)."""
    seen: list[str] = []
    original = SessionMiddleware.process_request

    def spy(self, request):
        seen.append(request.path)
        return original(self, request)

    monkeypatch.setattr(SessionMiddleware, "process_request", spy)
    return seen


def _security_headers(response) -> None:
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response
    assert response["X-Request-ID"]


def test_a_bearer_api_call_skips_the_session_but_keeps_the_security_headers(
    api_a, patient_a, session_loads
):
    response = api_a.get(f"/api/v1/patients/{patient_a.pk}")
    assert response.status_code == 200
    assert session_loads == []
    assert "Set-Cookie" not in response
    _security_headers(response)


def test_a_refused_bearer_call_keeps_the_security_headers(session_loads):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = client.get("/api/v1/patients")
    assert response.status_code == 401
    assert session_loads == []
    _security_headers(response)


def test_a_session_api_call_and_a_bearer_page_request_run_the_browser_middleware(
    client, doctor_a, session_loads
):
    client.force_login(doctor_a)
    assert client.get("/api/v1/patients").status_code == 200  # session-authenticated API call
    bearer_page = client.get("/patients/", HTTP_AUTHORIZATION="Bearer anything")
    assert bearer_page.status_code == 200  # a page: the session, not the header, signs in
    assert session_loads == ["/api/v1/patients", "/patients/"]


def test_csrf_still_guards_pages_when_a_bearer_header_is_sent(doctor_a):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(doctor_a)
    response = browser.post(
        "/patients/new/", {"given_name": "X"}, HTTP_AUTHORIZATION="Bearer forged"
    )
    assert response.status_code == 403


def test_the_wrapped_middleware_are_still_what_django_and_the_packages_check_for():
    classes = [import_string(path) for path in settings.MIDDLEWARE]
    assert any(issubclass(c, SessionMiddleware) for c in classes)
    assert any(issubclass(c, CsrfViewMiddleware) for c in classes)
    csrf = next(c for c in classes if issubclass(c, CsrfViewMiddleware))
    assert hasattr(csrf, "process_view")  # the hook CSRF protection runs in
    assert settings.MIDDLEWARE[-1] == "medai_site.browser_only.AxesMiddleware"  # axes: last
