"""Probes beyond issue 12's findings, played as an attacker would after the fixes (see the
session's report): each pins what it found, so a regression fails here."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from medai_site import roles
from medai_site.api_auth import Scope, api_token_create
from medai_site.errors import Forbidden
from medai_site.models import ApiToken, AuditEvent
from patients.models import BreakGlassGrant
from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def _bearer(user, scopes) -> APIClient:
    _, secret = api_token_create(user=user, name="probe", scopes=scopes, days=1, actor=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.mark.parametrize("method", ["head", "options"])
def test_head_and_options_need_the_reading_scope(doctor_a, team_a, method):
    """Scope escalation through the methods nobody declares: HEAD is a GET, OPTIONS too."""
    PatientFactory(care_teams=[team_a])
    narrow = _bearer(doctor_a, [Scope.VISITS_WRITE])
    assert getattr(narrow, method)("/api/v1/patients").status_code == 403
    reader = _bearer(doctor_a, [Scope.PATIENTS_READ])
    assert getattr(reader, method)("/api/v1/patients").status_code == 200


def test_a_person_cannot_give_their_own_token_a_scope_beyond_their_role(doctor_a):
    browser = Client()
    browser.force_login(doctor_a)
    response = browser.post(
        reverse("api_tokens"),
        {
            "action": "create",
            "name": "escalate",
            "scopes": ["patients:read", "models:manage"],
            "days": "7",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_an_account_with_a_personal_role_is_not_an_integration_client(admin_user, doctor_a):
    """A doctor also put in the integration-client group is still a person: no admin token."""
    doctor_a.groups.add(*_groups(roles.INTEGRATION))
    with pytest.raises(Forbidden):
        api_token_create(
            user=doctor_a, name="x", scopes=[Scope.PATIENTS_READ], days=1, actor=admin_user
        )


def test_bulk_deactivation_bypassing_signals_still_locks_the_token_out(doctor_a, team_a):
    """QuerySet.update sends no signal, so the token is not revoked — but it cannot be used."""
    PatientFactory(care_teams=[team_a])
    api = _bearer(doctor_a, [Scope.PATIENTS_READ])
    get_user_model().objects.filter(pk=doctor_a.pk).update(is_active=False)
    assert api.get("/api/v1/patients").status_code == 401


def test_a_filler_reason_reveals_nothing_about_the_mrn(doctor_a, team_b):
    """Break-the-glass validates the reason before looking the MRN up: no existence oracle."""
    known = PatientFactory(mrn="MRN-PROBE-01", care_teams=[team_b])
    browser = Client()
    browser.force_login(doctor_a)
    answers = [
        browser.post(
            reverse("break_glass"),
            {"mrn": mrn, "category": "emergency_treatment", "reason": "aaaaaaaaaa"},
        )
        for mrn in (known.mrn, "MRN-PROBE-99")
    ]
    assert [a.status_code for a in answers] == [400, 400]
    assert "No patient has this MRN" not in answers[1].content.decode()
    assert not BreakGlassGrant.objects.exists()


def test_a_revoked_token_stays_dead_when_the_role_comes_back(doctor_a, team_a):
    api = _bearer(doctor_a, [Scope.PATIENTS_READ])
    group = _groups(roles.DOCTOR).get()
    doctor_a.groups.remove(group)
    doctor_a.groups.add(group)
    assert api.get("/api/v1/patients").status_code == 401


def test_an_admin_reading_through_a_token_is_attributed_to_that_token(admin_user, team_a):
    patient = PatientFactory(care_teams=[team_a])
    token, secret = api_token_create(
        user=admin_user, name="admin script", scopes=[Scope.PATIENTS_READ], days=1, actor=admin_user
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get(f"/api/v1/patients/{patient.pk}").status_code == 200
    assert AuditEvent.objects.filter(
        actor=admin_user, patient_id=patient.pk, api_token=token
    ).exists()


def test_integration_client_has_no_emergency_access(team_a, team_b):
    gateway = UserFactory(role=roles.INTEGRATION)
    team_a.members.add(gateway)
    outside = PatientFactory(care_teams=[team_b])
    api = APIClient()
    _, secret = api_token_create(
        user=gateway, name="gw", scopes=[Scope.PATIENTS_READ], days=1, actor=None
    )
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get(f"/api/v1/patients/{outside.pk}").status_code == 404


def _groups(*names):
    from django.contrib.auth.models import Group

    return Group.objects.filter(name__in=names)
