"""Issue 12, point 4: access needs a clinical role AND care-team membership, checked in one
place for pages and API; losing a role or the account revokes its API tokens (audited)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from medai_site import roles
from medai_site.accounts import user_deactivate, user_roles_set
from medai_site.api_auth import Scope, api_token_create
from medai_site.models import ApiToken, AuditEvent
from patients.access import visible_patients
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
DOCTOR_SCOPES = [s for s in Scope.values if s != Scope.MODELS_MANAGE]


@pytest.fixture
def patient(team_a):
    return PatientFactory(care_teams=[team_a])


def _token(user) -> tuple[ApiToken, APIClient]:
    token, secret = api_token_create(
        user=user, name="script", scopes=DOCTOR_SCOPES, days=30, actor=user
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return token, client


def _revocations(token: ApiToken):
    return AuditEvent.objects.filter(
        object_type="medai_site.apitoken", object_id=str(token.pk), action="update"
    )


def test_user_removed_from_doctor_group_cannot_use_token_or_session_api(doctor_a, patient):
    """The reviewer's finding: still in the care team, no longer a doctor → no patient data
    through tokens or the session API, exactly as the pages (403) already refused."""
    token, api = _token(doctor_a)
    session = APIClient()
    session.force_login(doctor_a)
    assert session.get(f"/api/v1/patients/{patient.pk}").status_code == 200
    # Taken out of the group directly (as a script or another app would): the token is revoked
    # by the signal; and even a token that somehow stayed live would find nobody.
    doctor_a.groups.remove(Group.objects.get(name=roles.DOCTOR))
    assert doctor_a.care_teams.exists()  # still listed in the care team
    assert api.get(f"/api/v1/patients/{patient.pk}").status_code == 401
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=None)  # the belt without the braces
    assert api.get(f"/api/v1/patients/{patient.pk}").status_code == 403
    assert session.get(f"/api/v1/patients/{patient.pk}").status_code == 403
    assert (
        session.patch(
            f"/api/v1/patients/{patient.pk}", {"phone": "+1 555 0199"}, format="json"
        ).status_code
        == 403
    )
    assert not visible_patients(doctor_a).exists()  # the one rule, for every selector
    pages = Client()
    pages.force_login(doctor_a)
    assert pages.get(f"/patients/{patient.pk}/").status_code == 403


def test_removing_a_role_through_the_service_revokes_tokens_and_is_audited(doctor_a, admin_user):
    token, api = _token(doctor_a)
    user_roles_set(user=doctor_a, roles=[], actor=admin_user)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _revocations(token).get().actor == admin_user
    assert AuditEvent.objects.filter(
        object_type="auth.user", object_id=str(doctor_a.pk), actor=admin_user
    ).exists()
    assert api.get("/api/v1/patients").status_code == 401


def test_adding_a_role_revokes_nothing(doctor_a, admin_user):
    token, _ = _token(doctor_a)
    user_roles_set(user=doctor_a, roles=[roles.DOCTOR, roles.INTEGRATION], actor=admin_user)
    token.refresh_from_db()
    assert token.revoked_at is None


def test_removing_a_role_in_the_admin_user_form_revokes_tokens(doctor_a, admin_user):
    from django.contrib.auth.models import User

    admin_user.user_permissions.add(*_perms(User, "change"))
    token, _ = _token(doctor_a)
    browser = Client()
    browser.force_login(admin_user)
    url = f"/admin/auth/user/{doctor_a.pk}/change/"
    form = browser.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update(
        {
            "groups": [],  # the doctor role unticked
            "user_permissions": [],
            "is_active": "on",
            "date_joined_0": form.initial["date_joined"].strftime("%Y-%m-%d"),
            "date_joined_1": form.initial["date_joined"].strftime("%H:%M:%S"),
        }
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = browser.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    token.refresh_from_db()
    assert token.revoked_at is not None
    revocation = _revocations(token).get()
    assert (revocation.actor, revocation.interface) == (admin_user, "admin")


def test_removing_a_member_from_the_role_group_in_the_admin_revokes_tokens(doctor_a, admin_user):
    """Roles can be edited from the group's side too (group.user_set)."""
    group = Group.objects.get(name=roles.DOCTOR)
    token, _ = _token(doctor_a)
    group.user_set.remove(doctor_a)
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_deactivating_a_user_revokes_tokens_audited(doctor_a, admin_user):
    token, api = _token(doctor_a)
    user_deactivate(user=doctor_a, actor=admin_user)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _revocations(token).get().actor == admin_user
    doctor_a.is_active = True  # reactivated: the old token stays dead
    doctor_a.save()
    assert api.get("/api/v1/patients").status_code == 401


def test_deactivating_in_the_admin_user_form_revokes_tokens(doctor_a):
    """Any save of an inactive account (admin form, shell) revokes what is left."""
    token, _ = _token(doctor_a)
    doctor_a.is_active = False
    doctor_a.save(update_fields=["is_active"])
    token.refresh_from_db()
    assert token.revoked_at is not None


def _perms(model, action):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(
        content_type__app_label=model._meta.app_label,
        codename__in=[f"{action}_{model._meta.model_name}", f"view_{model._meta.model_name}"],
    )
