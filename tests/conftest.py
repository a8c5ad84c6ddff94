"""Shared fixtures. Tests run against the real PostgreSQL (MEDAI_PROFILE=test, see README)."""

from __future__ import annotations

import pytest


@pytest.fixture
def team_a(db):
    from tests.factories import CareTeamFactory, DoctorFactory

    doctor = DoctorFactory(username="doctor_a")
    return CareTeamFactory(name="Cardiology", members=[doctor])


@pytest.fixture
def team_b(db):
    from tests.factories import CareTeamFactory, DoctorFactory

    doctor = DoctorFactory(username="doctor_b")
    return CareTeamFactory(name="Respiratory", members=[doctor])


@pytest.fixture
def doctor_a(team_a):
    return team_a.members.get()


@pytest.fixture
def doctor_b(team_b):
    return team_b.members.get()


@pytest.fixture
def admin_user(db):
    from tests.factories import AdminFactory

    return AdminFactory(username="hospital_admin")


@pytest.fixture(autouse=True)
def force_login_completes_second_factor(monkeypatch):
    """client.force_login stands for a finished sign-in, second factor included.

    A user with a confirmed TOTP device is marked verified in the session exactly as
    django_otp.login() does after a correct code. The real password + code flow, and the admin
    refusing an unverified session, are tested in tests/medai_site/test_signin.py.
    """
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    original = Client.force_login

    def force_login(self, user, backend=None):
        original(self, user, backend)
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is not None:
            session = self.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()

    monkeypatch.setattr(Client, "force_login", force_login)
