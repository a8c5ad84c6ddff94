"""API authentication: hashed, expiring, revocable, scoped tokens; sessions with CSRF; throttling."""

from __future__ import annotations

import datetime as dt
import hashlib
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from medai_site.api_auth import Scope, api_token_create, api_token_revoke
from medai_site.errors import Conflict, InvalidInput
from medai_site.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def gateway(db):
    """An integration-client account: no person behind it, so an admin or operator issues its
    tokens."""
    from medai_site import roles
    from tests.factories import UserFactory

    return UserFactory(username="lab_gateway", role=roles.INTEGRATION)


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_token_is_stored_only_as_its_sha256(doctor_a):
    token, secret = api_token_create(
        user=doctor_a, name="lab", scopes=[Scope.PATIENTS_READ], days=7, actor=doctor_a
    )
    assert secret.startswith("medai_")
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for value in ApiToken.objects.values().get().values())


def test_valid_token_authenticates_as_its_user(doctor_a, token_for):
    response = _bearer(token_for(doctor_a)).get("/api/v1/patients")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer medai_not-a-real-token", "Bearer", "Bearer a b", "Token abc", "Bearer \u00e9"],
)
def test_bad_credentials_are_401_in_the_error_shape(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/patients")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_no_credentials_is_401_naming_the_bearer_scheme(db):
    response = APIClient().get("/api/v1/patients")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_expired_token_is_refused(doctor_a):
    token, secret = api_token_create(
        user=doctor_a, name="lab", scopes=DOCTOR_SCOPES, days=1, actor=doctor_a
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = _bearer(secret).get("/api/v1/patients")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_revoked_token_is_refused_and_cannot_be_revoked_twice(doctor_a):
    token, secret = api_token_create(
        user=doctor_a, name="lab", scopes=DOCTOR_SCOPES, days=1, actor=doctor_a
    )
    api_token_revoke(token=token, actor=None)
    assert _bearer(secret).get("/api/v1/patients").status_code == 401
    with pytest.raises(Conflict):
        api_token_revoke(token=token, actor=None)


def test_inactive_users_token_is_refused(doctor_a, token_for):
    secret = token_for(doctor_a)
    doctor_a.is_active = False
    doctor_a.save()
    assert _bearer(secret).get("/api/v1/patients").status_code == 401


@pytest.mark.parametrize(
    ("scopes", "days"), [([], 10), (["patients:everything"], 10), ([Scope.PATIENTS_READ], 0)]
)
def test_token_creation_validates_scopes_and_lifetime(doctor_a, scopes, days):
    with pytest.raises(InvalidInput):
        api_token_create(user=doctor_a, name="x", scopes=scopes, days=days, actor=doctor_a)


def test_last_used_is_recorded(doctor_a):
    token, secret = api_token_create(
        user=doctor_a, name="lab", scopes=DOCTOR_SCOPES, days=1, actor=doctor_a
    )
    _bearer(secret).get("/api/v1/patients")
    token.refresh_from_db()
    assert token.last_used_at is not None


DOCTOR_SCOPES = [s for s in Scope.values if s != Scope.MODELS_MANAGE]


def test_token_cannot_carry_a_scope_beyond_its_users_role(doctor_a):
    with pytest.raises(InvalidInput, match="may not manage"):
        api_token_create(user=doctor_a, name="x", scopes=Scope.values, days=1, actor=doctor_a)


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("get", "/api/v1/patients", Scope.PATIENTS_READ),
        ("post", "/api/v1/patients", Scope.PATIENTS_WRITE),
        ("post", "/api/v1/patients/{patient}/visits", Scope.VISITS_WRITE),
        ("get", "/api/v1/patients/{patient}/visits", Scope.PATIENTS_READ),
        ("post", "/api/v1/visits/{visit}/advice", Scope.ADVICE_REQUEST),
        ("post", "/api/v1/models/differential/training-jobs", Scope.MODELS_MANAGE),
    ],
)
def test_each_operation_needs_its_scope(client_for, doctor_a, patient_a, method, path, scope):
    from tests.factories import VisitFactory

    visit = VisitFactory(patient=patient_a, attending=doctor_a)
    url = path.format(patient=patient_a.pk, visit=visit.pk)
    if scope == Scope.MODELS_MANAGE:  # a token never grants more than its user's role allows
        doctor_a.user_permissions.add(Permission.objects.get(codename="add_trainingjob"))
    others = [s for s in DOCTOR_SCOPES if s != scope]
    response = getattr(client_for(doctor_a, others), method)(url, {}, format="json")
    assert response.status_code == 403
    assert scope in response.json()["error"]["message"]
    response = getattr(client_for(doctor_a, [scope]), method)(url, {}, format="json")
    assert response.status_code != 403


def test_session_calls_work_and_need_csrf_for_writes(doctor_a, patient_a):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(doctor_a)
    assert client.get("/api/v1/patients").status_code == 200
    response = client.patch(
        f"/api/v1/patients/{patient_a.pk}", {"phone": "+1 555 0100"}, format="json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_session_doctor_may_not_manage_models_but_admin_may(doctor_a, admin_user):
    doctor = APIClient()
    doctor.force_login(doctor_a)
    assert doctor.post("/api/v1/models/differential/training-jobs").status_code == 403
    admin = APIClient()
    admin.force_login(admin_user)
    assert admin.post("/api/v1/models/differential/training-jobs").status_code == 202


def test_throttling_is_per_client_with_retry_after(settings, client_for, doctor_a, doctor_b):
    settings.MEDAI_API_RATE = "3/min"
    first, second = client_for(doctor_a), client_for(doctor_b)
    for _ in range(3):
        assert first.get("/api/v1/patients").status_code == 200
    throttled = first.get("/api/v1/patients")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0
    assert second.get("/api/v1/patients").status_code == 200  # another client's own budget


def test_anonymous_calls_are_throttled_per_ip(settings, db):
    settings.MEDAI_API_ANON_RATE = "2/min"
    client = APIClient()
    codes = [client.get("/api/v1/patients").status_code for _ in range(3)]
    assert codes == [401, 401, 401]  # authentication is checked first, then nothing leaks


def test_create_api_token_command_prints_the_secret_once(gateway):
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_token",
        "--user",
        "lab_gateway",
        "--scopes",
        "patients:read,visits:write",
        "--days",
        "30",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.scopes == ["patients:read", "visits:write"]
    assert 29 <= (token.expires_at - timezone.now()).days <= 30
    assert secret not in err.getvalue()
    assert _bearer(secret).get("/api/v1/patients").status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ["--user", "nobody", "--scopes", "patients:read"],
        ["--user", "lab_gateway", "--scopes", "bogus"],
        ["--user", "lab_gateway", "--scopes", "patients:read", "--days", "1000"],
    ],
)
def test_create_api_token_command_rejects_bad_input(gateway, args):
    with pytest.raises(CommandError):
        call_command("create_api_token", *args, stdout=StringIO(), stderr=StringIO())


def test_admin_creates_a_token_showing_the_secret_once_and_revokes_it(admin_user, gateway):
    from django.contrib.messages import get_messages
    from django.test import Client

    browser = Client()
    browser.force_login(admin_user)
    response = browser.post(
        "/admin/medai_site/apitoken/add/",
        {"user": gateway.pk, "name": "lab gateway", "scopes": ["patients:read"], "days": 30},
    )
    assert response.status_code == 302, response.content[:2000]
    token = ApiToken.objects.get()
    assert token.created_by == admin_user
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    secret = next(m.split(": ", 1)[1] for m in messages if "shown once" in m)
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.scopes == ["patients:read"]
    browser.post(
        "/admin/medai_site/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _bearer(secret).get("/api/v1/patients").status_code == 401


@pytest.mark.django_db
def test_session_owing_its_second_factor_is_anonymous_to_the_api(client, doctor_a, patient_a):
    """A browser session that passed the password but not the TOTP code gets no API access."""
    from django_otp import DEVICE_ID_SESSION_KEY

    from medai_site.two_factor import totp_device_create

    totp_device_create(user=doctor_a, confirmed=True)
    client.force_login(doctor_a)  # the test fixture completes the second factor...
    assert client.get(f"/api/v1/patients/{patient_a.pk}").status_code == 200
    session = client.session
    del session[DEVICE_ID_SESSION_KEY]  # ...undo it: password only
    session.save()
    assert client.get(f"/api/v1/patients/{patient_a.pk}").status_code in (401, 403)
