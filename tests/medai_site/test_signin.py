"""Sign-in hardening: Argon2 hashes, password rules, lockout with admin unlock, 2FA for admins."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import AdminFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
ADMIN_LOGIN = "/admin/login/?next=/admin/"


def test_production_hasher_is_argon2():
    from django.conf import settings

    assert settings.PASSWORD_HASHERS[-3] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    with override_settings(PASSWORD_HASHERS=settings.PASSWORD_HASHERS[1:]):
        assert make_password("s3cret-enough").startswith("argon2$argon2id$")


def test_weak_passwords_are_rejected():
    for weak in ("password", "12345678", "short"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("a long passphrase nobody guesses")


def _admin_login(client, username, password, token=""):
    device = TOTPDevice.objects.filter(user__username=username).first()
    return client.post(
        ADMIN_LOGIN,
        {
            "username": username,
            "password": password,
            "otp_device": device.persistent_id if device else "",
            "otp_token": token,
        },
    )


def test_admin_needs_a_valid_second_factor(client):
    """Password alone does not open the admin; password + current TOTP code does."""
    admin = AdminFactory(username="secadmin")
    device = TOTPDevice.objects.get(user=admin)
    refused = _admin_login(client, "secadmin", PASSWORD, "000000")
    assert refused.status_code == 200  # the form again, with an error
    assert client.get("/admin/").status_code == 302
    device.refresh_from_db()
    device.throttle_reset()  # django-otp delays the next try after a failure; we "wait" it out
    accepted = _admin_login(client, "secadmin", PASSWORD, f"{totp(device.bin_key):06d}")
    assert accepted.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_staff_without_a_device_cannot_use_the_admin(client):
    """An admin account that never enrolled a second factor is refused, not waved through."""
    admin = AdminFactory(username="nodevice")
    TOTPDevice.objects.filter(user=admin).delete()
    client.force_login(admin)
    assert client.get("/admin/").status_code == 302


def test_lockout_after_repeated_failures_and_admin_unlock():
    from django.test import Client

    admin = AdminFactory(username="lockme")
    device = TOTPDevice.objects.get(user=admin)
    client = Client()
    for _ in range(5):
        _admin_login(client, "lockme", "wrong password", "000000")
    locked = _admin_login(client, "lockme", PASSWORD, f"{totp(device.bin_key):06d}")
    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in locked.content.decode()
    call_command("axes_reset_username", "lockme")
    device.refresh_from_db()
    unlocked = _admin_login(Client(), "lockme", PASSWORD, f"{totp(device.bin_key):06d}")
    assert unlocked.status_code == 302


def test_admin_signs_in_with_one_submit_without_choosing_a_device(client):
    """Password + code in one submit: no "Please select a device." round trip (issue 17)."""
    admin = AdminFactory(username="onesubmit")
    device = TOTPDevice.objects.get(user=admin)
    response = client.post(
        ADMIN_LOGIN,
        {"username": "onesubmit", "password": PASSWORD, "otp_token": f"{totp(device.bin_key):06d}"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.get("/admin/").status_code == 200


def test_admin_sign_in_never_uses_another_users_device(client):
    """A device id of someone else is ignored: the code is checked against the user's own."""
    AdminFactory(username="firstadmin")
    other = AdminFactory(username="otheradmin")
    other_device = TOTPDevice.objects.get(user=other)
    response = client.post(
        ADMIN_LOGIN,
        {
            "username": "firstadmin",
            "password": PASSWORD,
            "otp_device": other_device.persistent_id,
            "otp_token": f"{totp(other_device.bin_key):06d}",
        },
    )
    assert response.status_code == 200  # refused: the form again
    assert client.get("/admin/").status_code == 302
