"""Two-factor sign-in on the pages: enrolment, the code step of sign-in, turning it off.

Sign-in here is real POSTs to the login views: the conftest's force_login shortcut marks
sessions of users with a device as already verified.
"""

from __future__ import annotations

import base64

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from medai_site.two_factor import totp_device_create

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


def _code(device: TOTPDevice, drift: int = 0) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, drift=drift):06d}"


def _password(client, username, next_url=""):
    data = {"username": username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post(reverse("login"), data)


@pytest.fixture
def doctor_with_device(doctor_a):
    return totp_device_create(user=doctor_a, confirmed=True)


def test_enrolment_confirms_only_with_a_valid_code(client_a, doctor_a):
    page = client_a.get(reverse("two_factor")).content.decode()
    assert "Two-factor sign-in is off" in page
    assert client_a.post(reverse("two_factor"), {"action": "start"}).status_code == 302
    device = TOTPDevice.objects.get(user=doctor_a)
    assert device.confirmed is False
    page = client_a.get(reverse("two_factor"))
    key = base64.b32encode(device.bin_key).decode().rstrip("=")
    assert key in page.content.decode()
    assert "otpauth://totp/" in page.content.decode()
    assert page["Cache-Control"].startswith("max-age=0") or "no-store" in page["Cache-Control"]

    wrong = client_a.post(
        reverse("two_factor"), {"action": "confirm", "code": "000000", "password": PASSWORD}
    )
    assert wrong.status_code == 400
    assert "That code is not correct" in wrong.content.decode()
    device.refresh_from_db()
    assert device.confirmed is False
    device.throttle_reset()  # django-otp delays the next try after a failure
    good = client_a.post(
        reverse("two_factor"), {"action": "confirm", "code": _code(device), "password": PASSWORD}
    )
    assert good.status_code == 302
    device.refresh_from_db()
    assert device.confirmed is True
    # The enrolling session proved the code: it stays signed in.
    assert client_a.get(reverse("dashboard")).status_code == 200
    assert "Two-factor sign-in is on" in client_a.get(reverse("two_factor")).content.decode()


def test_unconfirmed_device_does_not_count(client, doctor_a):
    totp_device_create(user=doctor_a, confirmed=False)
    response = _password(client, "doctor_a")
    assert response["Location"] == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200


def test_doctor_without_a_device_signs_in_with_the_password_alone(client, doctor_a):
    response = _password(client, "doctor_a")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200


def test_doctor_with_a_device_needs_the_code(client, doctor_with_device, patient_a):
    chart = reverse("patient_chart", args=[patient_a.pk])
    response = _password(client, "doctor_a", next_url=chart)
    assert response.status_code == 302
    assert response["Location"] == reverse("login_verify")
    # Half-way: no page opens, the patient chart least of all.
    assert client.get(reverse("dashboard")).status_code == 302
    assert client.get(chart).status_code == 302
    assert client.get("/api/v1/patients").status_code in (401, 403)

    wrong = client.post(reverse("login_verify"), {"code": "000000"})
    assert wrong.status_code == 400
    assert client.get(reverse("dashboard")).status_code == 302
    doctor_with_device.refresh_from_db()
    doctor_with_device.throttle_reset()
    done = client.post(reverse("login_verify"), {"code": _code(doctor_with_device)})
    assert done.status_code == 302
    assert done["Location"] == chart
    assert client.get(reverse("dashboard")).status_code == 200
    assert client.get(chart).status_code == 200


def test_code_step_without_a_password_step_goes_back_to_sign_in(client, doctor_with_device):
    response = client.post(reverse("login_verify"), {"code": _code(doctor_with_device)})
    assert response["Location"] == reverse("login")
    assert client.get(reverse("dashboard")).status_code == 302


def test_too_many_wrong_codes_end_the_attempt(client, doctor_with_device):
    _password(client, "doctor_a")
    for _ in range(5):
        doctor_with_device.throttle_reset()
        client.post(reverse("login_verify"), {"code": "000000"})
    doctor_with_device.throttle_reset()
    late = client.post(reverse("login_verify"), {"code": _code(doctor_with_device)})
    assert late["Location"] == reverse("login")
    assert client.get(reverse("dashboard")).status_code == 302


def test_admin_signing_in_to_the_pages_needs_the_code(client, admin_user):
    device = TOTPDevice.objects.get(user=admin_user)
    response = _password(client, "hospital_admin")
    assert response["Location"] == reverse("login_verify")
    assert client.get(reverse("dashboard")).status_code == 302
    client.post(reverse("login_verify"), {"code": _code(device)})
    assert client.get(reverse("dashboard")).status_code == 200


def test_admin_without_a_device_cannot_sign_in_to_the_pages(client, admin_user):
    TOTPDevice.objects.filter(user=admin_user).delete()
    response = _password(client, "hospital_admin")
    assert response.status_code == 403
    assert "none is set up" in response.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302


def test_enrolling_elsewhere_stops_a_password_only_session(client_a, doctor_a):
    """A session signed in before the device was confirmed must now pass the code step."""
    assert client_a.get(reverse("dashboard")).status_code == 200
    device = totp_device_create(user=doctor_a, confirmed=True)
    response = client_a.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login_verify"))
    client_a.post(response["Location"], {"code": _code(device)})
    assert client_a.get(reverse("dashboard")).status_code == 200


def test_disable_needs_a_current_code(client, doctor_with_device):
    client.force_login(doctor_with_device.user)  # verified, as after a real sign-in
    wrong = client.post(
        reverse("two_factor"), {"action": "disable", "code": "123456", "password": PASSWORD}
    )
    assert wrong.status_code == 400
    assert TOTPDevice.objects.filter(pk=doctor_with_device.pk).exists()
    doctor_with_device.refresh_from_db()
    doctor_with_device.throttle_reset()
    ok = client.post(
        reverse("two_factor"),
        {"action": "disable", "code": _code(doctor_with_device), "password": PASSWORD},
    )
    assert ok.status_code == 302
    assert not TOTPDevice.objects.filter(user=doctor_with_device.user).exists()
    assert client.get(reverse("dashboard")).status_code == 200


def test_admins_cannot_turn_it_off(client_admin, admin_user):
    device = TOTPDevice.objects.get(user=admin_user)
    page = client_admin.get(reverse("two_factor")).content.decode()
    assert "cannot be turned off" in page
    refused = client_admin.post(
        reverse("two_factor"), {"action": "disable", "code": _code(device), "password": PASSWORD}
    )
    assert refused.status_code == 403
    assert TOTPDevice.objects.filter(user=admin_user, confirmed=True).exists()
