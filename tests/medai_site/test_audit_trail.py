"""The audit trail: append-only in the database, hash-chained, verifiable, reportable per patient/user."""

from __future__ import annotations

import csv
import io
import itertools

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from medai_site.audit import audit_record, audit_verify
from medai_site.models import AuditEvent
from patients.selectors import patient_get
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _as_superuser_without_trigger(sql: str, params: list) -> None:
    """What only someone bypassing the application could do: switch the trigger off and tamper."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SET CONSTRAINTS ALL IMMEDIATE"
        )  # fire the test transaction's deferred FK checks
        cursor.execute("ALTER TABLE medai_site_auditevent DISABLE TRIGGER medai_audit_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE medai_site_auditevent ENABLE TRIGGER medai_audit_append_only")


@pytest.fixture
def trail(doctor_a, team_a):
    patient = PatientFactory(care_teams=[team_a])
    for _ in range(3):
        patient_get(viewer=doctor_a, patient_id=patient.pk)
    return list(AuditEvent.objects.order_by("id"))


def test_every_record_chains_to_the_previous(trail):
    assert trail[0].prev_hash == "0" * 64 or AuditEvent.objects.filter(pk__lt=trail[0].pk).exists()
    for before, after in itertools.pairwise(trail):
        assert after.prev_hash == before.hash
    assert audit_verify() == (len(trail), [])
    call_command("audit_verify")


def test_database_refuses_update_and_delete(trail):
    for sql in (
        "UPDATE medai_site_auditevent SET action = 'view' WHERE id = %s",
        "DELETE FROM medai_site_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [trail[1].pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=trail[1].pk).delete()
    assert AuditEvent.objects.count() == len(trail)


def test_verification_detects_an_altered_record(trail):
    _as_superuser_without_trigger(
        "UPDATE medai_site_auditevent SET actor_id = NULL WHERE id = %s", [trail[1].pk]
    )
    _, problems = audit_verify()
    assert [(p.event_id, "altered" in p.problem) for p in problems] == [(trail[1].pk, True)]
    with pytest.raises(CommandError, match="Audit trail broken"):
        call_command("audit_verify")


def test_verification_detects_a_deleted_record(trail):
    _as_superuser_without_trigger("DELETE FROM medai_site_auditevent WHERE id = %s", [trail[1].pk])
    _, problems = audit_verify()
    assert [p.event_id for p in problems] == [trail[2].pk]
    assert "missing" in problems[0].problem


def test_denied_attempts_are_recorded(doctor_a, team_b):
    outsider = PatientFactory(care_teams=[team_b])
    with pytest.raises(Exception, match="not found"):
        patient_get(viewer=doctor_a, patient_id=outsider.pk)
    denied = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert (denied.actor, denied.patient_id) == (doctor_a, outsider.pk)


def test_admin_report_and_csv_export_per_patient_and_user(client, admin_user, doctor_a, team_a):
    patient = PatientFactory(mrn="MRN-AUD-0001", care_teams=[team_a])
    patient_get(viewer=doctor_a, patient_id=patient.pk)
    audit_record(actor=doctor_a, action=AuditEvent.Action.VIEW, patient_id=999999)
    client.force_login(admin_user)
    page = client.get("/admin/medai_site/auditevent/report/", {"mrn": "mrn-aud-0001"})
    assert page.status_code == 200
    assert page.context["count"] == 1
    export = client.get(
        "/admin/medai_site/auditevent/report/", {"username": "doctor_a", "format": "csv"}
    )
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert {r["patient_id"] for r in rows} == {str(patient.pk), "999999"}
    assert all(r["user"] == "doctor_a" for r in rows)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, actor=admin_user).count() == 2
    assert audit_verify()[1] == []


def test_lists_of_patients_record_a_view_of_each_and_keep_the_chain(client, doctor_a, team_a):
    """A page of names is an access to each patient on it; the bulk insert stays chained."""
    from tests.factories import VisitFactory

    patients = [PatientFactory(care_teams=[team_a]) for _ in range(3)]
    for patient in patients:  # the dashboard lists patients with visits
        VisitFactory(patient=patient, attending=doctor_a)
    client.force_login(doctor_a)
    assert client.get("/").status_code == 200
    viewed = set(
        AuditEvent.objects.filter(actor=doctor_a, action=AuditEvent.Action.VIEW).values_list(
            "patient_id", flat=True
        )
    )
    assert {p.pk for p in patients} <= viewed
    assert audit_verify()[1] == []


def test_issuing_and_revoking_api_tokens_is_audited(admin_user):
    from medai_site import roles
    from medai_site.api_auth import Scope, api_token_create, api_token_revoke
    from tests.factories import UserFactory

    gateway = UserFactory(role=roles.INTEGRATION)
    token, secret = api_token_create(
        user=gateway, name="lab", scopes=[Scope.PATIENTS_READ], days=1, actor=admin_user
    )
    api_token_revoke(token=token, actor=admin_user)
    events = AuditEvent.objects.filter(actor=admin_user, object_type="medai_site.apitoken")
    assert list(events.order_by("id").values_list("action", flat=True)) == ["create", "update"]
    assert not AuditEvent.objects.filter(object_id__contains=secret[-8:]).exists()


def test_care_team_membership_changes_in_the_admin_are_audited(
    client, admin_user, team_a, doctor_b
):
    client.force_login(admin_user)
    url = f"/admin/patients/careteam/{team_a.pk}/change/"
    members = [*team_a.members.values_list("pk", flat=True), doctor_b.pk]
    response = client.post(url, {"name": team_a.name, "members": members})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(
        actor=admin_user, object_type="patients.careteam", object_id=str(team_a.pk)
    ).exists()
