"""The demo population enters the database through the bulk services, like any other record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from medai_site.models import AuditEvent
from patients.models import Patient
from patients.selectors import patient_search
from visits.demo import generate_population
from visits.demo_import import OPEN_WINDOW, population_import
from visits.models import Diagnosis, Observation, Visit

pytestmark = pytest.mark.django_db


def test_population_import_is_searchable_audited_and_splits_open_from_closed(
    team_a, doctor_a, team_b, doctor_b
):
    population = generate_population(n_visits=300, seed=2, end=timezone.now())  # one open
    report = population_import(
        population=population, teams=[team_a, team_b], attendings=[doctor_a, doctor_b]
    )
    assert (report.patients, report.visits) == (len(population.patients), 300)
    assert report.observations == Observation.objects.count() > 0
    assert report.diagnoses == Diagnosis.objects.count() >= 300
    # Round-robin over the teams; each team's doctor attends its patients' visits.
    first, second = population.patients[:2]
    stored = Patient.objects.get(mrn=first.mrn)
    assert list(stored.care_teams.all()) == [team_a]
    assert set(Visit.objects.filter(patient=stored).values_list("attending", flat=True)) == {
        doctor_a.pk
    }
    # Blind indexes work: the doctor finds their patient by name, the other team's doctor not.
    name = f"{first.given_name} {first.family_name}"
    assert stored in patient_search(viewer=doctor_a, query=name)
    assert stored not in patient_search(viewer=doctor_b, query=name)
    assert Patient.objects.get(mrn=second.mrn).care_teams.get() == team_b
    # Every patient and visit creation is in the audit trail.
    created = AuditEvent.objects.filter(action=AuditEvent.Action.CREATE)
    assert created.filter(object_type="patients.patient").count() == report.patients
    assert created.filter(object_type="visits.visit").count() == 300
    # Recent visits stay open with provisional diagnoses; older ones are closed and confirmed.
    recent = timezone.now() - OPEN_WINDOW
    assert Visit.objects.filter(status=Visit.Status.OPEN).count() == 1
    for visit in Visit.objects.prefetch_related("diagnoses"):
        if visit.start <= recent - timedelta(minutes=1):
            assert visit.status == Visit.Status.CLOSED
            assert {d.status for d in visit.diagnoses.all()} == {Diagnosis.Status.CONFIRMED}
        elif visit.start > recent + timedelta(minutes=1):
            assert visit.status == Visit.Status.OPEN
            assert visit.end is None
            assert {d.status for d in visit.diagnoses.all()} == {Diagnosis.Status.PROVISIONAL}
