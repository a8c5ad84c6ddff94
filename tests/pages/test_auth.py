"""Sign in/out, inactivity expiry with its message, roles, and the security headers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from medai_site.session_idle import LAST_ACTIVITY_KEY, MARKER_COOKIE, POLL_HEADER

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_sign_in_and_out(client, doctor_a):
    response = client.post(
        reverse("login"),
        {"username": "doctor_a", "password": "correct horse battery staple"},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    assert MARKER_COOKIE in client.cookies
    response = client.post(reverse("logout"), follow=True)
    assert b'name="password"' in response.content
    assert client.get(reverse("dashboard")).status_code == 302


def test_wrong_password_says_so(client, doctor_a):
    response = client.post(reverse("login"), {"username": "doctor_a", "password": "nope"})
    assert b"didn&#x27;t match" in response.content or b"didn't match" in response.content


def test_idle_session_is_ended_with_a_clear_message(client_a):
    """A session idle longer than SESSION_COOKIE_AGE is signed out, and the sign-in page says why."""
    client_a.get(reverse("dashboard"))
    session = client_a.session
    session[LAST_ACTIVITY_KEY] = time.time() - settings.SESSION_COOKIE_AGE - 5
    session.save()
    response = client_a.get(reverse("dashboard"))
    assert response.status_code == 302
    assert "expired=1" in response["Location"]
    page = client_a.get(response["Location"])
    minutes = settings.SESSION_COOKIE_AGE // 60
    assert f"Your session expired after {minutes} minutes of inactivity" in page.content.decode()
    assert client_a.get(reverse("dashboard")).status_code == 302  # really signed out


def test_expired_django_session_shows_the_message(client, doctor_a):
    """The server dropped the session (cookie age passed): the marker cookie tells the login page."""
    client.force_login(doctor_a)
    client.get(reverse("dashboard"))
    client.session.flush()
    client.cookies.pop(settings.SESSION_COOKIE_NAME)
    client.cookies[MARKER_COOKIE] = "1"
    response = client.get(reverse("patient_search"), follow=True)
    assert "session expired" in response.content.decode()


def test_polls_do_not_keep_the_session_alive(client_a):
    client_a.get(reverse("dashboard"))
    old = time.time() - 60
    session = client_a.session
    session[LAST_ACTIVITY_KEY] = old
    session.save()
    client_a.get(reverse("session_check"), headers={POLL_HEADER: "1"})
    assert client_a.session[LAST_ACTIVITY_KEY] == old
    client_a.get(reverse("dashboard"))
    assert client_a.session[LAST_ACTIVITY_KEY] > old


def test_htmx_poll_after_expiry_asks_the_browser_to_navigate(client_a):
    client_a.get(reverse("dashboard"))
    session = client_a.session
    session[LAST_ACTIVITY_KEY] = time.time() - settings.SESSION_COOKIE_AGE - 5
    session.save()
    response = client_a.get(
        reverse("session_check"), headers={POLL_HEADER: "1", "HX-Request": "true"}
    )
    assert "expired=1" in response["HX-Redirect"]


def test_session_settings_are_an_inactivity_timeout():
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_COOKIE_AGE == 15 * 60


def test_integration_client_gets_the_friendly_403(client, db):
    from medai_site import roles
    from tests.factories import UserFactory

    client.force_login(UserFactory(role=roles.INTEGRATION))
    response = client.get(reverse("dashboard"))
    assert response.status_code == 403
    assert b"You do not have access to this page" in response.content


def test_csp_allows_only_self(client_a):
    policy = client_a.get(reverse("dashboard"))["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy


def test_pages_load_no_external_or_inline_code(client_a):
    html = client_a.get(reverse("dashboard")).content.decode()
    assert '"allowEval": false' in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline script"
    assert " style=" not in html, "inline style attribute (CSP style-src 'self')"
    assert " on" + "click=" not in html
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not url.startswith(("http://", "https://", "//")), url


def test_templates_reference_no_cdn():
    for path in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        text = path.read_text()
        assert "cdn" not in text.lower(), path
        assert "https://" not in text, path


def test_htmx_is_vendored_with_its_licence():
    vendor = Path(settings.BASE_DIR, "static", "vendor", "htmx")
    assert (vendor / "htmx.min.js").stat().st_size > 10_000
    assert "BSD" in (vendor / "LICENSE").read_text() or "Zero" in (vendor / "LICENSE").read_text()
