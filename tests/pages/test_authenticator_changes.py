"""Issue 12, point 7: adding or removing an authenticator needs the current password (and, to
remove it, the current code), and every change or refused attempt is audited."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from medai_site.models import AuditEvent

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def _code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key):06d}"


def _events(user, action):
    return AuditEvent.objects.filter(actor=user, action=action, object_type="otp_totp.totpdevice")


def test_adding_an_authenticator_requires_the_current_password(client_a, doctor_a):
    client_a.post(reverse("two_factor"), {"action": "start"})
    device = TOTPDevice.objects.get(user=doctor_a)
    url = reverse("two_factor")
    for password in ("", "guessed wrong"):
        refused = client_a.post(
            url, {"action": "confirm", "code": _code(device), "password": password}
        )
        assert refused.status_code == 400
        device.refresh_from_db()
        assert device.confirmed is False
    assert "not your current password" in refused.content.decode()
    assert _events(doctor_a, "denied").count() == 2  # each refused attempt
    added = client_a.post(url, {"action": "confirm", "code": _code(device), "password": PASSWORD})
    assert added.status_code == 302
    device.refresh_from_db()
    assert device.confirmed is True
    assert _events(doctor_a, "create").get().object_id == str(device.pk)


def test_removing_an_authenticator_requires_the_current_password_and_code(client, doctor_a):
    device = TOTPDevice.objects.create(user=doctor_a, name="authenticator", confirmed=True)
    client.force_login(doctor_a)
    url = reverse("two_factor")
    no_password = client.post(url, {"action": "disable", "code": _code(device), "password": "x"})
    assert no_password.status_code == 400
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    device.throttle_reset()
    no_code = client.post(url, {"action": "disable", "code": "000000", "password": PASSWORD})
    assert no_code.status_code == 400
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert _events(doctor_a, "denied").count() == 2
    device.throttle_reset()
    removed = client.post(url, {"action": "disable", "code": _code(device), "password": PASSWORD})
    assert removed.status_code == 302
    assert not TOTPDevice.objects.filter(user=doctor_a).exists()
    assert _events(doctor_a, "delete").get().object_id == str(device.pk)


def test_a_code_used_to_sign_in_cannot_be_replayed_to_remove_the_authenticator(client, doctor_a):
    """Probe: someone who watched the sign-in (password + code) replays the same code at once."""
    device = TOTPDevice.objects.create(user=doctor_a, name="authenticator", confirmed=True)
    client.post(reverse("login"), {"username": "doctor_a", "password": PASSWORD})
    code = _code(device)
    assert client.post(reverse("login_verify"), {"code": code}).status_code == 302
    replay = client.post(
        reverse("two_factor"), {"action": "disable", "code": code, "password": PASSWORD}
    )
    assert replay.status_code == 400
    assert TOTPDevice.objects.filter(pk=device.pk, confirmed=True).exists()


def test_guessing_the_password_on_the_authenticator_form_counts_towards_lockout(
    settings, client_a, doctor_a
):
    """Probe: a borrowed session cannot brute-force the password through this form."""
    from axes.models import AccessAttempt

    client_a.post(reverse("two_factor"), {"action": "start"})
    device = TOTPDevice.objects.get(user=doctor_a)
    for n in range(settings.AXES_FAILURE_LIMIT):
        client_a.post(
            reverse("two_factor"),
            {"action": "confirm", "code": _code(device), "password": f"guess {n}"},
        )
    assert AccessAttempt.objects.filter(username="doctor_a").get().failures_since_start >= (
        settings.AXES_FAILURE_LIMIT
    )
    locked = client_a.post(
        reverse("two_factor"), {"action": "confirm", "code": _code(device), "password": PASSWORD}
    )
    assert locked.status_code == 429  # django-axes' lockout answer, as at sign-in
    device.refresh_from_db()
    assert device.confirmed is False
