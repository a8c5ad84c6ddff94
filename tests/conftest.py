"""Shared fixtures. Tests run against the real PostgreSQL (MEDAI_PROFILE=test, see README).

Two care teams with a doctor each, a patient in each team, an admin and signed-in clients: one
definition each, used by every test package.
"""

from __future__ import annotations

import datetime as dt

import pytest

# ``trained`` / ``trained_snapshot``: one definition for every package, so one build per session.
pytest_plugins = ["tests.predictions.trained"]


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


@pytest.fixture
def patient_a(team_a):
    """Mei Lin, in team A (doctor_a's), allergic to penicillin."""
    from patients.services import AllergyInput, patient_create

    return patient_create(
        mrn="MRN-A-0001",
        sex="female",
        given_name="Mei",
        family_name="Lin",
        birth_date=dt.date(1958, 5, 17),
        phone="+1 555 0100",
        national_id="ID-A-1",
        care_teams=[team_a],
        allergies=[AllergyInput(substance="Penicillin", reaction="rash", severity="severe")],
        actor=None,
    )


@pytest.fixture
def patient_b(team_b):
    """Tom Berg, in team B (doctor_b's): outside doctor_a's care."""
    from patients.services import patient_create

    return patient_create(
        mrn="MRN-B-0001",
        sex="male",
        given_name="Tom",
        family_name="Berg",
        birth_date=dt.date(1970, 1, 2),
        care_teams=[team_b],
        actor=None,
    )


@pytest.fixture
def client_admin(client, admin_user):
    """The test client, signed in as the hospital admin (second factor included)."""
    client.force_login(admin_user)
    return client


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A transactional test must also ask for ``serialized_rollback``: without it, the flush after
    it re-runs post_migrate (content types, permissions), and the next test that restores the
    serialized database then fails on duplicate keys (seen in a full run, never in a file alone)."""
    bare = [
        item.nodeid
        for item in items
        if (marker := item.get_closest_marker("django_db")) is not None
        and marker.kwargs.get("transaction")
        and not marker.kwargs.get("serialized_rollback")
    ]
    if bare:
        raise pytest.UsageError(
            "transaction=True without serialized_rollback=True: " + ", ".join(bare[:5])
        )


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


@pytest.fixture(autouse=True)
def _request_context_restored():
    """A task body called in-process sets the worker's audit interface and request id for the
    rest of its context (a worker process keeps them); restore them so the next test's audit rows
    name their own interface."""
    from medai_site.request_context import current_interface, current_request_id

    interface, request_id = current_interface.get(), current_request_id.get()
    yield
    current_interface.set(interface)
    current_request_id.set(request_id)


@pytest.fixture(autouse=True)
def _catalogue_read_afresh():
    """Each test reads the observation catalogue from its database (the process cache,
    visits.selectors.observation_definitions_by_code, would outlive a transactional test's
    flush and a test that edits a range)."""
    from visits.selectors import observation_definitions_forget

    observation_definitions_forget()
    yield
    observation_definitions_forget()
