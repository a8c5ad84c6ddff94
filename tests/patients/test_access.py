"""Care-team scoping: a doctor's lists and lookups return only their care teams' patients."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from medai_site.errors import NotFound
from medai_site.models import AuditEvent
from patients.access import can_see_patient, visible_patients
from patients.selectors import patient_get, patient_list, patient_search
from tests.factories import DoctorFactory, PatientFactory, UserFactory, VisitFactory
from visits.selectors import problem_list, visit_get, visit_list

pytestmark = pytest.mark.django_db


@pytest.fixture
def pa(team_a):
    return PatientFactory(given_name="Alma", family_name="Able", care_teams=[team_a])


@pytest.fixture
def pb(team_b):
    return PatientFactory(given_name="Boris", family_name="Baker", care_teams=[team_b])


def test_doctor_lists_only_their_teams_patients(doctor_a, doctor_b, pa, pb):
    assert list(patient_list(viewer=doctor_a)) == [pa]
    assert list(patient_list(viewer=doctor_b)) == [pb]


def test_doctor_search_does_not_find_other_teams_patients(doctor_a, pa, pb):
    assert list(patient_search(viewer=doctor_a, query="Boris Baker")) == []
    assert list(patient_search(viewer=doctor_a, query=pb.mrn)) == []
    assert list(patient_list(viewer=doctor_a, query="Boris")) == []
    assert list(patient_search(viewer=doctor_a, query="Alma Able")) == [pa]


def test_doctor_get_of_other_teams_patient_is_not_found_and_audited_as_denied(doctor_a, pa, pb):
    with pytest.raises(NotFound):
        patient_get(viewer=doctor_a, patient_id=pb.pk)
    denied = AuditEvent.objects.get(action=AuditEvent.Action.DENIED)
    assert (denied.actor, denied.patient_id) == (doctor_a, pb.pk)
    assert patient_get(viewer=doctor_a, patient_id=pa.pk) == pa
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, patient_id=pa.pk).exists()


def test_a_patient_in_two_teams_is_seen_by_both(doctor_a, doctor_b, team_a, team_b):
    shared = PatientFactory(care_teams=[team_a, team_b])
    assert can_see_patient(doctor_a, shared.pk)
    assert can_see_patient(doctor_b, shared.pk)
    assert list(visible_patients(doctor_a)) == [shared]  # no duplicate row for two teams


def test_users_outside_every_team_see_nothing(pa, pb):
    loner = DoctorFactory()
    assert list(patient_list(viewer=loner)) == []
    assert list(patient_list(viewer=AnonymousUser())) == []
    assert list(patient_list(viewer=UserFactory())) == []  # no role at all


def test_admin_and_superuser_see_every_patient(admin_user, pa, pb):
    superuser = UserFactory(is_superuser=True)
    assert set(patient_list(viewer=admin_user)) == {pa, pb}
    assert set(patient_list(viewer=superuser)) == {pa, pb}
    assert patient_get(viewer=admin_user, patient_id=pb.pk) == pb


def test_visit_list_and_get_are_scoped_through_the_patients_care_team(doctor_a, admin_user, pa, pb):
    va, vb = VisitFactory(patient=pa, attending=doctor_a), VisitFactory(patient=pb)
    assert list(visit_list(viewer=doctor_a)) == [va]
    assert list(visit_list(viewer=doctor_a, patient_id=pb.pk)) == []
    assert visit_get(viewer=doctor_a, visit_id=va.pk) == va
    with pytest.raises(NotFound):
        visit_get(viewer=doctor_a, visit_id=vb.pk)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DENIED, actor=doctor_a).exists()
    assert set(visit_list(viewer=admin_user)) == {va, vb}


def test_attending_a_visit_does_not_grant_access_without_care_team(doctor_a, pb):
    """Access follows the care team, not who once attended the visit."""
    visit = VisitFactory(patient=pb, attending=doctor_a)
    assert list(visit_list(viewer=doctor_a)) == []
    with pytest.raises(NotFound):
        visit_get(viewer=doctor_a, visit_id=visit.pk)


def test_problem_list_is_scoped(doctor_a, pb):
    from visits.services import diagnosis_add

    visit = VisitFactory(patient=pb)
    diagnosis_add(visit=visit, code="J18.9", status="confirmed", actor=None)
    assert list(problem_list(viewer=doctor_a, patient_id=pb.pk)) == []
