"""Issue 15: the scoped patient read is compiled once per access kind and process
(patients.selectors.PATIENT_READ) and decides exactly as the ORM queryset of the one access rule."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from medai_site import roles
from medai_site.errors import NotFound
from medai_site.models import AuditEvent
from patients import selectors
from patients.access import access_kind, visible_patients
from patients.selectors import PATIENT_READS, patient_get
from tests.factories import (
    BreakGlassGrantFactory,
    DoctorFactory,
    PatientFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewers(doctor_a, admin_user):
    return {
        "doctor in the care team": doctor_a,
        "doctor with a grant": DoctorFactory(),
        "doctor without": DoctorFactory(),
        "integration client": UserFactory(role=roles.INTEGRATION),
        "admin": admin_user,
        "no role": UserFactory(),
        "anonymous": AnonymousUser(),
    }


def test_every_kind_of_viewer_reads_what_the_access_rule_lets_them_see(viewers, team_a):
    mine = PatientFactory(care_teams=[team_a])
    granted = PatientFactory()
    BreakGlassGrantFactory(patient=granted, grantee=viewers["doctor with a grant"])
    viewers["integration client"].care_teams.add(team_a)
    for label, viewer in viewers.items():
        for patient in (mine, granted):
            visible = visible_patients(viewer).filter(pk=patient.pk).exists()
            try:
                read = patient_get(viewer=viewer, patient_id=patient.pk)
            except NotFound:
                assert not visible, label
            else:
                assert visible, label
                assert read == patient
                assert read.viewer_in_care_team == (
                    patient == mine and viewer in team_a.members.all()
                )
    # Every kind of access was exercised.
    assert {access_kind(v) for v in viewers.values()} >= {"doctor", "client", "admin", "none"}


def test_an_expired_grant_no_longer_opens_the_chart(doctor_a, monkeypatch):
    """The read's time is a parameter: a grant that expired is not baked in as valid."""
    patient = PatientFactory()
    grant = BreakGlassGrantFactory(patient=patient, grantee=doctor_a)
    assert patient_get(viewer=doctor_a, patient_id=patient.pk).emergency_grant == grant
    later = grant.expires_at + dt.timedelta(seconds=1)
    monkeypatch.setattr(selectors.timezone, "now", lambda: later)
    with pytest.raises(NotFound):
        patient_get(viewer=doctor_a, patient_id=patient.pk)
    denied = AuditEvent.objects.filter(action=AuditEvent.Action.DENIED, patient_id=patient.pk)
    assert denied.count() == 1


@pytest.mark.parametrize("patient_id", [2**63, -(2**63) - 1, "12abc", None, "0"])
def test_an_id_that_is_no_patient_is_not_found_and_audited(doctor_a, patient_id):
    with pytest.raises(NotFound):
        patient_get(viewer=doctor_a, patient_id=patient_id)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DENIED).count() == 1


def test_the_read_is_one_statement_compiled_once(doctor_a, team_a, monkeypatch):
    from medai_site.compiled_query import CompiledQuery

    patient = PatientFactory(care_teams=[team_a])
    patient_get(viewer=doctor_a, patient_id=patient.pk, audit=False)  # compiled (if not yet)

    def no_compile(self):
        raise AssertionError("compiled again")

    monkeypatch.setattr(CompiledQuery, "_compile", no_compile)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert patient_get(viewer=doctor_a, patient_id=patient.pk, audit=False) == patient
    assert len(queries) == 3


def test_the_compiled_statement_is_the_querysets(doctor_a):
    fresh, _ = selectors._patient_read_queryset(
        "doctor", doctor_a.pk, 1, timezone.now()
    ).query.sql_with_params()
    assert PATIENT_READS["doctor"].compiled()[0] == fresh
