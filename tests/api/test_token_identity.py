"""Issue 12, point 5: who may issue a token, and every audit row made through one names it.

A person creates their own tokens (Account → API tokens, with their password); an admin issues
tokens for integration-client accounts only, so an admin can no longer mint a doctor's token and
act as that doctor.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from medai_site import roles
from medai_site.api_auth import Scope, api_token_create
from medai_site.audit import audit_verify
from medai_site.errors import Forbidden
from medai_site.models import ApiToken, AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


@pytest.fixture
def gateway(team_a):
    account = UserFactory(username="lab_gateway", role=roles.INTEGRATION)
    team_a.members.add(account)
    return account


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_admin_cannot_mint_a_token_for_a_doctor(admin_user, doctor_a, gateway):
    with pytest.raises(Forbidden, match="created by that person"):
        api_token_create(
            user=doctor_a, name="x", scopes=[Scope.PATIENTS_READ], days=1, actor=admin_user
        )
    with pytest.raises(Forbidden):  # nor an operator at the command line
        api_token_create(user=doctor_a, name="x", scopes=[Scope.PATIENTS_READ], days=1, actor=None)
    with pytest.raises(Forbidden, match="Only a hospital administrator"):  # nor a colleague
        api_token_create(
            user=gateway, name="x", scopes=[Scope.PATIENTS_READ], days=1, actor=doctor_a
        )
    # The admin form does not even offer the doctor.
    browser = Client()
    browser.force_login(admin_user)
    form = browser.get("/admin/medai_site/apitoken/add/").content.decode()
    assert f'value="{gateway.pk}"' in form
    assert f'value="{doctor_a.pk}"' not in form
    response = browser.post(
        "/admin/medai_site/apitoken/add/",
        {"user": doctor_a.pk, "name": "impersonation", "scopes": ["patients:read"], "days": 30},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.filter(user=doctor_a).exists()


def test_token_records_who_created_it(admin_user, doctor_a, gateway):
    own, _ = api_token_create(
        user=doctor_a, name="mine", scopes=[Scope.PATIENTS_READ], days=1, actor=doctor_a
    )
    issued, _ = api_token_create(
        user=gateway, name="lab", scopes=[Scope.PATIENTS_READ], days=1, actor=admin_user
    )
    operator, _ = api_token_create(
        user=gateway, name="lab 2", scopes=[Scope.PATIENTS_READ], days=1, actor=None
    )
    assert (own.created_by, issued.created_by, operator.created_by) == (
        doctor_a,
        admin_user,
        None,
    )


def test_audit_rows_made_through_a_token_record_the_token_id(doctor_a, patient_a, client):
    token, secret = api_token_create(
        user=doctor_a, name="script", scopes=[Scope.PATIENTS_READ], days=1, actor=doctor_a
    )
    assert _bearer(secret).get(f"/api/v1/patients/{patient_a.pk}").status_code == 200
    through_token = AuditEvent.objects.filter(patient_id=patient_a.pk, api_token=token)
    assert through_token.filter(actor=doctor_a, action="view", interface="api").exists()
    # The same doctor's own session leaves rows without a token: the two are told apart.
    session = APIClient()
    session.force_login(doctor_a)
    assert session.get(f"/api/v1/patients/{patient_a.pk}").status_code == 200
    newest = AuditEvent.objects.filter(patient_id=patient_a.pk).order_by("-id").first()
    assert newest.api_token_id is None
    # The token id is part of the chained, keyed hash: rewriting it breaks verification.
    assert audit_verify()[1] == []
    from tests.medai_site.test_audit_integrity import _as_owner_without_triggers

    row = through_token.first()
    _as_owner_without_triggers(
        ("UPDATE medai_site_auditevent SET api_token_id = NULL WHERE id = %s", [row.pk])
    )
    assert [p.event_id for p in audit_verify()[1]] == [row.pk]


def test_a_person_creates_and_revokes_their_own_tokens_on_a_page(doctor_a, doctor_b):
    browser = Client()
    browser.force_login(doctor_a)
    url = reverse("api_tokens")
    page = browser.get(url).content.decode()
    assert "models:manage" not in page  # beyond a doctor's role
    wrong = browser.post(
        url,
        {
            "action": "create",
            "name": "ward script",
            "scopes": ["patients:read"],
            "days": "7",
            "password": "not my password",
        },
    )
    assert wrong.status_code == 400
    assert "not your current password" in wrong.content.decode()
    assert not ApiToken.objects.exists()
    made = browser.post(
        url,
        {
            "action": "create",
            "name": "ward script",
            "scopes": ["patients:read"],
            "days": "7",
            "password": PASSWORD,
        },
    )
    assert made.status_code == 200
    assert "no-store" in made["Cache-Control"]
    secret = made.context["secret"]
    token = ApiToken.objects.get()
    assert (token.user, token.created_by, token.scopes) == (doctor_a, doctor_a, ["patients:read"])
    assert _bearer(secret).get("/api/v1/patients").status_code == 200
    assert secret not in browser.get(url).content.decode()  # shown once
    # Another doctor can neither see nor revoke it.
    other = Client()
    other.force_login(doctor_b)
    assert "ward script" not in other.get(url).content.decode()
    other.post(url, {"action": "revoke", "token": token.pk})
    token.refresh_from_db()
    assert token.revoked_at is None
    browser.post(url, {"action": "revoke", "token": token.pk})
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _bearer(secret).get("/api/v1/patients").status_code == 401
