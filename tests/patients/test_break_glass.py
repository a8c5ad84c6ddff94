"""Break-the-glass: stated, time-limited emergency access outside the care team, then reviewed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from medai_site.errors import Conflict, Forbidden, InvalidInput, NotFound
from medai_site.models import AuditEvent
from patients.break_glass import (
    active_grant,
    break_glass_open,
    break_glass_review,
    grants_awaiting_review,
)
from patients.models import BreakGlassGrant
from patients.selectors import patient_get, patient_list
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
REASON = "Unconscious in ED, regular physician unreachable"
CATEGORY = "unconscious_patient"


@pytest.fixture
def outside_patient(team_b):
    return PatientFactory(mrn="MRN-BG-0001", care_teams=[team_b])


def test_grant_opens_the_chart_only_with_a_stated_reason(doctor_a, outside_patient):
    with pytest.raises(NotFound):
        patient_get(viewer=doctor_a, patient_id=outside_patient.pk)
    with pytest.raises(InvalidInput):
        break_glass_open(
            viewer=doctor_a, mrn=outside_patient.mrn, category=CATEGORY, reason="urgent"
        )
    grant = break_glass_open(viewer=doctor_a, mrn="mrn-bg-0001", category=CATEGORY, reason=REASON)
    assert patient_get(viewer=doctor_a, patient_id=outside_patient.pk) == outside_patient
    assert active_grant(viewer=doctor_a, patient_id=outside_patient.pk) == grant
    assert grant.reason == REASON
    assert AuditEvent.objects.filter(
        actor=doctor_a, object_type="patients.breakglassgrant", patient_id=outside_patient.pk
    ).exists()


def test_grant_expires(doctor_a, outside_patient):
    grant = break_glass_open(
        viewer=doctor_a, mrn=outside_patient.mrn, category=CATEGORY, reason=REASON
    )
    BreakGlassGrant.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(NotFound):
        patient_get(viewer=doctor_a, patient_id=outside_patient.pk)
    assert outside_patient not in patient_list(viewer=doctor_a)
    assert active_grant(viewer=doctor_a, patient_id=outside_patient.pk) is None


def test_grant_is_personal(doctor_a, doctor_b, outside_patient, team_a):
    """Another doctor of the grantee's team gains nothing from the grant."""
    from tests.factories import DoctorFactory

    colleague = DoctorFactory(username="colleague")
    team_a.members.add(colleague)
    break_glass_open(viewer=doctor_a, mrn=outside_patient.mrn, category=CATEGORY, reason=REASON)
    with pytest.raises(NotFound):
        patient_get(viewer=colleague, patient_id=outside_patient.pk)


def test_unknown_mrn_and_non_doctors_are_refused(doctor_a, admin_user):
    with pytest.raises(NotFound):
        break_glass_open(viewer=doctor_a, mrn="MRN-NOPE-1", category=CATEGORY, reason=REASON)
    assert AuditEvent.objects.filter(
        actor=doctor_a, action=AuditEvent.Action.DENIED, object_id="MRN-NOPE-1"
    ).exists()  # probing MRNs leaves a trace
    with pytest.raises(Forbidden):
        break_glass_open(viewer=admin_user, mrn="MRN-NOPE-1", category=CATEGORY, reason=REASON)


def test_review_list_until_signed_off_by_someone_else(doctor_a, admin_user, outside_patient):
    grant = break_glass_open(
        viewer=doctor_a, mrn=outside_patient.mrn, category=CATEGORY, reason=REASON
    )
    assert list(grants_awaiting_review()) == [grant]
    with pytest.raises(InvalidInput):
        break_glass_review(grant=grant, reviewer=doctor_a)
    break_glass_review(grant=grant, reviewer=admin_user, note="Appropriate")
    assert list(grants_awaiting_review()) == []
    with pytest.raises(Conflict):
        break_glass_review(grant=grant, reviewer=admin_user)


def test_admin_review_list_and_sign_off_action(client, doctor_a, admin_user, outside_patient):
    grant = break_glass_open(
        viewer=doctor_a, mrn=outside_patient.mrn, category=CATEGORY, reason=REASON
    )
    client.force_login(admin_user)
    page = client.get("/admin/patients/breakglassgrant/")
    assert page.status_code == 200
    assert str(grant.patient) in page.content.decode()
    response = client.post(
        "/admin/patients/breakglassgrant/",
        {"action": "sign_off", "_selected_action": [grant.pk]},
        follow=True,
    )
    assert response.status_code == 200
    grant.refresh_from_db()
    assert grant.reviewed_by == admin_user
