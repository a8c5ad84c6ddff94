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


@pytest.fixture(autouse=True)
def audit_anchor_dir(settings, tmp_path):
    """Each test anchors its own audit trail: the database is rolled back after every test, so
    anchors written by one test must not be held against the next one's table."""
    settings.MEDAI_AUDIT_ANCHOR_DIR = tmp_path / "audit-anchors"
    return settings.MEDAI_AUDIT_ANCHOR_DIR


@pytest.fixture(scope="session", autouse=True)
def owner_empties_the_audit_table_between_tests():
    """pytest-django empties every table with one TRUNCATE after a transactional test; the audit
    table refuses TRUNCATE (migration 0005). The database owner lifts that trigger for exactly
    that statement, as any table owner could (the app's own role cannot: it owns nothing)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush
    table = "medai_site_auditevent"

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        sql = original(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        if table not in tables or not sql:
            return sql
        return [
            f"ALTER TABLE {table} DISABLE TRIGGER medai_audit_no_truncate",
            *sql,
            f"ALTER TABLE {table} ENABLE TRIGGER medai_audit_no_truncate",
        ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield
