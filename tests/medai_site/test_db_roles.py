"""Issue 12, point 1: the app runs under a database role that owns nothing and may only INSERT
and SELECT audit records; migrations (and the grants) run under the owner role.

The test creates such a role in the test database's cluster with the shipped command, connects
the app as it, and drives pages and the API; then proves UPDATE, DELETE, TRUNCATE and disabling
the audit triggers are refused by privileges.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection
from django.urls import reverse
from rest_framework.test import APIClient

from medai_site.audit import audit_verify
from medai_site.models import AuditEvent

ROLE = f"medai_app_test_{os.getpid()}"
PASSWORD = "app-role-test-password"  # the test cluster trusts local connections; set anyway


@contextmanager
def connected_as(role: str) -> Iterator[None]:
    """Point the default connection at ``role`` (as web, worker, beat and relay would be)."""
    settings_dict = connection.settings_dict
    saved = settings_dict["USER"], settings_dict.get("PASSWORD", "")
    connection.close()
    settings_dict["USER"], settings_dict["PASSWORD"] = role, PASSWORD
    try:
        yield
    finally:
        connection.close()
        settings_dict["USER"], settings_dict["PASSWORD"] = saved


@pytest.fixture
def app_role(monkeypatch) -> Iterator[str]:
    """Committed, so a second connection (as the role) sees it; the test database's content
    after migrations (roles, content types) is restored around the test like every other
    transactional test's."""
    monkeypatch.setenv("MEDAI_TEST_APP_ROLE_PASSWORD", PASSWORD)
    out = StringIO()
    call_command(
        "db_grant_app_role",
        ROLE,
        "--create",
        "--password-env",
        "MEDAI_TEST_APP_ROLE_PASSWORD",
        stdout=out,
    )
    assert "may only insert and read audit records" in out.getvalue()
    try:
        yield ROLE
    finally:
        with connection.cursor() as cursor:  # as the owner again
            cursor.execute(f'DROP OWNED BY "{ROLE}"')
            cursor.execute(f'DROP ROLE "{ROLE}"')


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_app_works_under_a_role_with_only_insert_and_select_on_the_audit_table(
    app_role, client, monkeypatch
):
    from medai_site.api_auth import Scope, api_token_create
    from tests.factories import CareTeamFactory, DoctorFactory

    doctor = DoctorFactory(username="role_doctor")
    team = CareTeamFactory(name="Role team", members=[doctor])
    before = AuditEvent.objects.count()
    with connected_as(app_role):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] == app_role
        # Pages: sign-in session, register a patient, open the chart.
        client.force_login(doctor)
        registered = client.post(
            reverse("patient_register"),
            {
                "mrn": "ROLE-0001",
                "given_name": "Ada",
                "family_name": "Ng",
                "sex": "female",
                "birth_date": "1980-02-03",
                "care_teams": [team.pk],
            },
        )
        assert registered.status_code == 302
        assert "Ada Ng" in client.get(registered["Location"]).content.decode()
        # API: the doctor's own token, a read of the record.
        _, secret = api_token_create(
            user=doctor, name="role client", scopes=[Scope.PATIENTS_READ], days=1, actor=doctor
        )
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        listed = api.get("/api/v1/patients")
        assert listed.status_code == 200
        assert [p["mrn"] for p in listed.json()["results"]] == ["ROLE-0001"]
        # The trail grew and verifies, all read and written as the app role.
        assert AuditEvent.objects.count() > before
        assert audit_verify()[1] == []

        # What the app role may not do to the audit trail, whatever the triggers say.
        for sql in (
            "UPDATE medai_site_auditevent SET action = 'view'",
            "DELETE FROM medai_site_auditevent",
            "TRUNCATE medai_site_auditevent",
            "ALTER TABLE medai_site_auditevent DISABLE TRIGGER USER",
            "CREATE TABLE medai_site_sneaky (id int)",
        ):
            with (
                pytest.raises(ProgrammingError, match=r"permission denied|must be owner"),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql)
    assert AuditEvent.objects.count() > before  # nothing was removed


def test_grants_refuse_a_role_that_owns_tables(db):
    """The owner (who runs migrations) can never be mistaken for the app role."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()
    with pytest.raises(CommandError, match="must not be the role running migrations"):
        call_command("db_grant_app_role", owner, stdout=StringIO())


def test_grant_statements_can_be_printed_for_a_dba(db):
    out = StringIO()
    call_command("db_grant_app_role", "medai_app", "--sql", stdout=out)
    sql = out.getvalue()
    assert 'GRANT SELECT, INSERT ON TABLE "medai_site_auditevent" TO "medai_app";' in sql
    assert 'GRANT SELECT ON TABLE "django_migrations" TO "medai_app";' in sql
    assert "TRUNCATE" not in sql
