"""Production hardening (issue 7): `check --deploy` is clean, CSRF guards every form, CSP is sent.

The production profile runs in a subprocess with dummy secrets (nothing here is a real key), an
empty SQLite file for the database and a broker URL that is never contacted.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("MEDAI_", "DJANGO_", "FIELD_", "BLIND_", "AUDIT_", "DATABASE_", "CELERY_")
        )
    }
    return {
        **clean,
        "MEDAI_PROFILE": "production",
        "MEDAI_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "medai_site.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "medai.hospital.example",
        "FIELD_ENCRYPTION_KEY": "rYq0O8lYbIEY1mRuHxMkTq4yAhG1Y4Pq0BqvJ1Hnj3c=",  # dummy
        "BLIND_INDEX_KEY": secrets.token_hex(32),
        "AUDIT_CHAIN_KEY": f"k1:{secrets.token_hex(32)}",
        "MEDAI_AUDIT_ANCHOR_DIR": str(tmp_path / "audit-anchors"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy-check.sqlite3'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/9",
        **overrides,
    }


def check_deploy(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_would_catch_a_weakened_setting(tmp_path):
    """The test above has teeth: switching HSTS off makes the same command fail."""
    result = check_deploy(tmp_path, DJANGO_HSTS_SECONDS="0")
    assert result.returncode != 0
    assert "security.W004" in result.stderr


def test_production_security_settings(tmp_path):
    names = [
        "DEBUG",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "X_FRAME_OPTIONS",
        "SESSION_COOKIE_AGE",
        "SESSION_EXPIRE_AT_BROWSER_CLOSE",
        "MIDDLEWARE",
    ]
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SESSION_COOKIE_AGE"] <= 15 * 60  # automatic log-off, 164.312(a)(2)(iii)
    assert values["SESSION_EXPIRE_AT_BROWSER_CLOSE"] is True
    for middleware in (
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "csp.middleware.CSPMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        # The form-body check serves the browser (passed over only by bearer API calls).
        "medai_site.browser_only.FormBodyMiddleware",
    ):
        assert middleware in values["MIDDLEWARE"]


# --- in this process: CSRF and the security headers ------------------------------------------


def test_page_forms_refuse_a_post_without_the_csrf_token(doctor_a, team_a):
    from patients.models import Patient

    client = Client(enforce_csrf_checks=True)
    client.force_login(doctor_a)
    form = client.get(reverse("patient_register"))
    assert 'name="csrfmiddlewaretoken"' in form.content.decode()
    response = client.post(
        reverse("patient_register"),
        {
            "mrn": "CSRF-0001",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "sex": "female",
            "birth_date": "1960-03-14",
            "care_teams": [team_a.pk],
        },
    )
    assert response.status_code == 403
    assert not Patient.objects.exists()


def test_session_authenticated_api_calls_need_the_csrf_token(doctor_a):
    """A browser session is no bearer token: DRF's session authentication enforces CSRF."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(doctor_a)
    response = client.post("/api/v1/patients", {"mrn": "CSRF-0002"}, "application/json")
    assert response.status_code == 403


def test_sign_in_form_carries_a_csrf_token():
    response = Client(enforce_csrf_checks=True).get(reverse("login"))
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()


@pytest.mark.parametrize("where", ["login", "dashboard", "not_found", "admin"])
def test_pages_send_csp_and_the_other_security_headers(client, doctor_a, admin_user, where):
    if where == "admin":
        client.force_login(admin_user)
        response = client.get(reverse("admin:index"))
    elif where == "login":
        response = client.get(reverse("login"))
    else:
        client.force_login(doctor_a)
        url = reverse("dashboard") if where == "dashboard" else "/patients/999999999/"
        response = client.get(url)
    assert response.status_code in (200, 404)
    csp = response["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
