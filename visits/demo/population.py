"""A demo population (patients and their visits) and its tabular view for the model engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from visits.catalogue import BY_CODE, OBSERVATION_CODES
from visits.units import canonical_value


@dataclass(frozen=True, slots=True)
class SyntheticAllergy:
    substance: str
    reaction: str
    severity: str  # mild | moderate | severe


@dataclass(frozen=True, slots=True)
class SyntheticPatient:
    key: int
    mrn: str
    given_name: str
    family_name: str
    sex: str  # female | male
    birth_date: date
    phone: str
    email: str
    address: str
    national_id: str
    emergency_contact: str
    allergies: tuple[SyntheticAllergy, ...]


@dataclass(frozen=True, slots=True)
class SyntheticObservation:
    code: str
    value: float
    unit: str  # UCUM unit as recorded (may be an alternative unit, see visits.units)


@dataclass(frozen=True, slots=True)
class SyntheticVisit:
    key: int
    patient_key: int
    start: datetime  # timezone-aware UTC
    end: datetime | None
    visit_type: str  # outpatient | inpatient | emergency | telemedicine
    chief_complaint: str
    history: str
    physical_exam: str
    plan: str
    observations: tuple[SyntheticObservation, ...]
    primary_diagnosis: str  # ICD-10, dotted
    secondary_diagnoses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Population:
    patients: tuple[SyntheticPatient, ...]
    visits: tuple[SyntheticVisit, ...]


def population_frame(population: Population, *, reference_date: Any = None) -> pd.DataFrame:
    """One row per visit, observations converted to canonical units.

    Columns: ``patient_id`` (str), ``visit_id`` (str), ``age`` (years, float; at the visit's
    start, or at ``reference_date`` when given), ``sex``, ``visit_type``, ``chief_complaint``,
    ``history``, ``obs_<code>`` for every code in :data:`OBSERVATION_CODES` (NaN when not
    measured), ``diagnosis_code`` (primary ICD-10) and ``diagnosis_category`` (its first three
    characters).
    """
    births = {p.key: p for p in population.patients}
    ref: date | None = None
    if reference_date is not None:
        ref = reference_date.date() if isinstance(reference_date, datetime) else reference_date
    n = len(population.visits)
    obs = {code: np.full(n, np.nan) for code in OBSERVATION_CODES}
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "patient_id",
            "visit_id",
            "age",
            "sex",
            "visit_type",
            "chief_complaint",
            "history",
            "diagnosis_code",
        )
    }
    for i, v in enumerate(population.visits):
        p = births[v.patient_key]
        at = ref if ref is not None else v.start.date()
        rows["patient_id"].append(str(v.patient_key))
        rows["visit_id"].append(str(v.key))
        rows["age"].append((at - p.birth_date).days / 365.25)
        rows["sex"].append(p.sex)
        rows["visit_type"].append(v.visit_type)
        rows["chief_complaint"].append(v.chief_complaint)
        rows["history"].append(v.history)
        rows["diagnosis_code"].append(v.primary_diagnosis)
        for o in v.observations:
            col = obs.get(o.code)
            if col is not None:
                col[i] = (
                    o.value
                    if o.unit == BY_CODE[o.code].unit
                    else canonical_value(o.code, o.value, o.unit)
                )
    frame = pd.DataFrame(
        {
            k: rows[k]
            for k in (
                "patient_id",
                "visit_id",
                "age",
                "sex",
                "visit_type",
                "chief_complaint",
                "history",
            )
        }
    )
    for code in OBSERVATION_CODES:
        frame[f"obs_{code}"] = obs[code]
    frame["diagnosis_code"] = rows["diagnosis_code"]
    frame["diagnosis_category"] = frame["diagnosis_code"].str[:3]
    return frame
