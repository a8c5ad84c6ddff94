"""Import a demo population (visits.demo) into the database through the bulk services.

Patients go through :func:`patients.services.patients_bulk_import` and visits through
:func:`visits.services.visits_bulk_import`: the same validation as entry (observations converted,
range-checked and flagged by ``observation_validate``), encryption, blind indexes and audit trail
as every other write, in batched INSERTs (3,000 visits in a few seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from patients.models import CareTeam
from patients.services import AllergyInput, PatientInput, patients_bulk_import

from .demo import Population
from .models import Diagnosis, Visit
from .services import DiagnosisInput, ObservationInput, VisitImport, visits_bulk_import

OPEN_WINDOW = timedelta(days=2)  # visits this recent stay open, with a provisional diagnosis


@dataclass(frozen=True)
class ImportReport:
    patients: int
    visits: int
    observations: int
    diagnoses: int


@transaction.atomic
def population_import(
    *, population: Population, teams: list[CareTeam], attendings: list[object]
) -> ImportReport:
    """Patients are spread over ``teams`` round-robin; ``attendings[i]`` works in ``teams[i]``."""
    team_of = {sp.key: i % len(teams) for i, sp in enumerate(population.patients)}
    patients = patients_bulk_import(
        patients=[
            PatientInput(
                mrn=p.mrn,
                sex=p.sex,
                given_name=p.given_name,
                family_name=p.family_name,
                birth_date=p.birth_date,
                phone=p.phone,
                email=p.email,
                address=p.address,
                national_id=p.national_id,
                emergency_contact=p.emergency_contact,
                care_teams=(teams[team_of[p.key]],),
                allergies=tuple(
                    AllergyInput(a.substance, reaction=a.reaction, severity=a.severity)
                    for a in p.allergies
                ),
            )
            for p in population.patients
        ],
        actor=None,
    )
    by_key = {sp.key: patient for sp, patient in zip(population.patients, patients, strict=True)}

    now = timezone.now()
    visits = []
    for sv in population.visits:
        recent = now - sv.start < OPEN_WINDOW
        status = Diagnosis.Status.PROVISIONAL if recent else Diagnosis.Status.CONFIRMED
        secondary = [c for c in dict.fromkeys(sv.secondary_diagnoses) if c != sv.primary_diagnosis]
        visits.append(
            VisitImport(
                patient=by_key[sv.patient_key],
                attending=attendings[team_of[sv.patient_key]],
                start=sv.start,
                end=None if recent else sv.end,
                visit_type=sv.visit_type,
                status=Visit.Status.OPEN if recent else Visit.Status.CLOSED,
                observations=tuple(
                    ObservationInput(o.code, o.value, o.unit) for o in sv.observations
                ),
                diagnoses=(
                    DiagnosisInput(sv.primary_diagnosis, Diagnosis.Rank.PRIMARY, status),
                    *(DiagnosisInput(c, Diagnosis.Rank.SECONDARY, status) for c in secondary),
                ),
                text={
                    "chief_complaint": sv.chief_complaint,
                    "history_present_illness": sv.history,
                    "physical_exam": sv.physical_exam,
                    "plan": sv.plan,
                },
            )
        )
    report = visits_bulk_import(visits=visits, actor=None)
    return ImportReport(
        patients=len(patients),
        visits=len(report.visits),
        observations=report.observations,
        diagnoses=report.diagnoses,
    )
