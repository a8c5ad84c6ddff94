"""Synthetic clinical population: patients, visits, observations and diagnoses.

Pure Python (numpy, pandas, stdlib) so the model engine and tests can use it without a database;
the ``load_synthetic`` management command writes a :class:`Population` into the database.

The data is deliberately messy in the ways real records are: labs are measured only when a
clinician would plausibly order them, some vitals are entered in alternative units (°F, lb,
mmol/L - the unit actually used is recorded with the value), free text has synonyms, negations,
abbreviations, typos and inconsistent case and is sometimes sparse or misleading, conditions
overlap in their signs, some visits carry a secondary diagnosis, chronic conditions recur for the
same patient and the odd visit is an exact duplicate of another.

Everything is drawn from one ``numpy`` generator seeded by ``seed``: the same seed (and the same
``end``) gives identical output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ALTERNATIVE_UNITS",
    "CANONICAL_UNITS",
    "CONDITIONS",
    "LAB_CODES",
    "OBSERVATION_CODES",
    "PLAUSIBLE_RANGES",
    "VISIT_TYPES",
    "VITAL_CODES",
    "Population",
    "SyntheticAllergy",
    "SyntheticObservation",
    "SyntheticPatient",
    "SyntheticVisit",
    "canonical_value",
    "generate_population",
    "population_frame",
]


# --------------------------------------------------------------------------------------------
# Public data classes
# --------------------------------------------------------------------------------------------


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
    unit: str  # UCUM unit as recorded (may be an alternative unit, see canonical_value)


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


# --------------------------------------------------------------------------------------------
# Catalogues
# --------------------------------------------------------------------------------------------

CONDITIONS: dict[str, str] = {
    "J06.9": "Acute upper respiratory infection, unspecified",
    "J18.9": "Pneumonia, unspecified",
    "I10": "Essential (primary) hypertension",
    "E11.9": "Type 2 diabetes mellitus without complications",
    "I21.9": "Acute myocardial infarction, unspecified",
    "I25.1": "Atherosclerotic heart disease",
    "J45.9": "Asthma, unspecified",
    "J44.1": "Chronic obstructive pulmonary disease with acute exacerbation, unspecified",
    "N39.0": "Urinary tract infection, site not specified",
    "K35.8": "Acute appendicitis, other and unspecified",
    "A09": "Other gastroenteritis and colitis of infectious and unspecified origin",
    "I50.9": "Heart failure, unspecified",
    "G43.9": "Migraine, unspecified",
    "A41.9": "Sepsis, unspecified",
    "D50.9": "Iron deficiency anaemia, unspecified",
}

VISIT_TYPES = ("outpatient", "inpatient", "emergency", "telemedicine")

VITAL_CODES = (
    "8310-5",
    "8867-4",
    "9279-1",
    "8480-6",
    "8462-4",
    "2708-6",
    "29463-7",
    "8302-2",
    "39156-5",
)
LAB_CODES = (
    "2345-7",
    "2093-3",
    "6690-2",
    "718-7",
    "2160-0",
    "1988-5",
    "10839-9",
    "2951-2",
    "2823-3",
    "4548-4",
    "2524-7",
)
OBSERVATION_CODES = VITAL_CODES + LAB_CODES

CANONICAL_UNITS: dict[str, str] = {
    "8310-5": "Cel",
    "8867-4": "/min",
    "9279-1": "/min",
    "8480-6": "mm[Hg]",
    "8462-4": "mm[Hg]",
    "2708-6": "%",
    "29463-7": "kg",
    "8302-2": "cm",
    "39156-5": "kg/m2",
    "2345-7": "mg/dL",
    "2093-3": "mg/dL",
    "6690-2": "10*3/uL",
    "718-7": "g/dL",
    "2160-0": "mg/dL",
    "1988-5": "mg/L",
    "10839-9": "ng/mL",
    "2951-2": "mmol/L",
    "2823-3": "mmol/L",
    "4548-4": "%",
    "2524-7": "mmol/L",
}

# code -> (alternative unit, multiply-by factor to canonical or None for temperature)
ALTERNATIVE_UNITS: dict[str, str] = {
    "8310-5": "[degF]",
    "29463-7": "[lb_av]",
    "2345-7": "mmol/L",
    "2093-3": "mmol/L",
}

_LB_TO_KG = 0.45359237
_GLUCOSE_MMOL_TO_MG = 18.016
_CHOLESTEROL_MMOL_TO_MG = 38.67

# Every generated value lies in these ranges after conversion to the canonical unit.
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "8310-5": (34.0, 42.0),
    "8867-4": (35.0, 190.0),
    "9279-1": (8.0, 45.0),
    "8480-6": (70.0, 230.0),
    "8462-4": (40.0, 135.0),
    "2708-6": (70.0, 100.0),
    "29463-7": (35.0, 200.0),
    "8302-2": (140.0, 205.0),
    "39156-5": (13.0, 65.0),
    "2345-7": (40.0, 600.0),
    "2093-3": (90.0, 400.0),
    "6690-2": (1.0, 40.0),
    "718-7": (5.0, 19.0),
    "2160-0": (0.3, 8.0),
    "1988-5": (0.1, 400.0),
    "10839-9": (0.001, 50.0),
    "2951-2": (118.0, 155.0),
    "2823-3": (2.6, 6.8),
    "4548-4": (4.0, 15.0),
    "2524-7": (0.4, 15.0),
}

_DECIMALS: dict[str, int] = {
    "8310-5": 1,
    "8867-4": 0,
    "9279-1": 0,
    "8480-6": 0,
    "8462-4": 0,
    "2708-6": 0,
    "29463-7": 1,
    "8302-2": 0,
    "39156-5": 1,
    "2345-7": 0,
    "2093-3": 0,
    "6690-2": 1,
    "718-7": 1,
    "2160-0": 2,
    "1988-5": 1,
    "10839-9": 3,
    "2951-2": 0,
    "2823-3": 1,
    "4548-4": 1,
    "2524-7": 1,
}
_ALT_DECIMALS = {"8310-5": 1, "29463-7": 1, "2345-7": 1, "2093-3": 2}
# Probability that a measured value is entered in the alternative unit.
_ALT_UNIT_P = {"8310-5": 0.15, "29463-7": 0.2, "2345-7": 0.3, "2093-3": 0.3}


def canonical_value(code: str, value: float, unit: str) -> float:
    """Convert ``value`` recorded in ``unit`` to the canonical UCUM unit of ``code``."""
    canonical = CANONICAL_UNITS.get(code)
    if canonical is None:
        raise ValueError(f"unknown observation code {code!r}")
    if unit == canonical:
        return float(value)
    if unit == ALTERNATIVE_UNITS.get(code):
        if code == "8310-5":
            return (float(value) - 32.0) * 5.0 / 9.0
        if code == "29463-7":
            return float(value) * _LB_TO_KG
        if code == "2345-7":
            return float(value) * _GLUCOSE_MMOL_TO_MG
        if code == "2093-3":
            return float(value) * _CHOLESTEROL_MMOL_TO_MG
    raise ValueError(f"unit {unit!r} is not valid for observation {code}")


def _to_alternative(code: str, values: np.ndarray) -> np.ndarray:
    if code == "8310-5":
        return values * 9.0 / 5.0 + 32.0
    if code == "29463-7":
        return values / _LB_TO_KG
    if code == "2345-7":
        return values / _GLUCOSE_MMOL_TO_MG
    return values / _CHOLESTEROL_MMOL_TO_MG


# --------------------------------------------------------------------------------------------
# Condition specifications
# --------------------------------------------------------------------------------------------

# Baseline (healthy adult) distribution of every generated quantity: ("n", mean, sd) or
# ("ln", median, sigma). Condition specs override the centre; a per-visit severity interpolates
# between baseline and condition centre so conditions overlap.
_BASE: dict[str, tuple[str, float, float]] = {
    "8310-5": ("n", 36.8, 0.3),
    "8867-4": ("n", 77.0, 11.0),
    "9279-1": ("n", 16.0, 2.0),
    "8480-6": ("n", 124.0, 13.0),
    "8462-4": ("n", 77.0, 9.0),
    "2708-6": ("n", 97.6, 1.2),
    "2345-7": ("n", 96.0, 13.0),
    "2093-3": ("n", 190.0, 35.0),
    "6690-2": ("n", 7.0, 1.8),
    "718-7": ("n", 13.3, 1.0),
    "2160-0": ("ln", 0.85, 0.18),
    "1988-5": ("ln", 2.0, 0.8),
    "10839-9": ("ln", 0.01, 0.6),
    "2951-2": ("n", 139.5, 2.4),
    "2823-3": ("n", 4.2, 0.35),
    "4548-4": ("n", 5.4, 0.35),
    "2524-7": ("ln", 1.1, 0.3),
}

_VITAL_GEN = ("8310-5", "8867-4", "9279-1", "8480-6", "8462-4", "2708-6")


@dataclass(frozen=True)
class _Spec:
    weight: float  # relative prevalence
    age: tuple[float, float]
    female: float
    chronic: bool
    visit_types: tuple[float, float, float, float]  # outpatient, inpatient, emergency, tele
    values: dict[str, tuple[float, float]]  # code -> (centre, sd) in the baseline's kind
    labs: dict[str, float]  # code -> probability measured (default _LAB_DEFAULT_P)
    secondary: dict[str, float]
    weight_shift: float = 0.0
    confusers: tuple[str, ...] = ()


_LAB_DEFAULT_P = 0.04

_SPECS: dict[str, _Spec] = {
    "J06.9": _Spec(
        0.14,
        (38, 15),
        0.55,
        False,
        (0.62, 0.0, 0.10, 0.28),
        {
            "8310-5": (37.6, 0.6),
            "8867-4": (86, 12),
            "9279-1": (17, 2.2),
            "6690-2": (8.6, 2.6),
            "1988-5": (9.0, 0.9),
        },
        {"6690-2": 0.15, "1988-5": 0.15},
        {"J45.9": 0.05},
        confusers=("J18.9", "J45.9"),
    ),
    "J18.9": _Spec(
        0.07,
        (63, 18),
        0.47,
        False,
        (0.28, 0.32, 0.38, 0.02),
        {
            "8310-5": (38.4, 0.8),
            "8867-4": (102, 15),
            "9279-1": (23, 4),
            "2708-6": (92.5, 2.8),
            "8480-6": (122, 16),
            "6690-2": (14.0, 4.2),
            "1988-5": (90.0, 0.7),
            "2524-7": (1.6, 0.4),
            "2160-0": (1.0, 0.3),
            "2951-2": (136.5, 3.5),
        },
        {
            "6690-2": 0.9,
            "1988-5": 0.85,
            "718-7": 0.8,
            "2160-0": 0.75,
            "2951-2": 0.75,
            "2823-3": 0.75,
            "2524-7": 0.35,
            "2345-7": 0.45,
        },
        {"J44.1": 0.06, "E11.9": 0.08, "I50.9": 0.05},
        confusers=("J06.9", "J44.1", "A41.9"),
    ),
    "I10": _Spec(
        0.12,
        (60, 12),
        0.5,
        True,
        (0.74, 0.01, 0.05, 0.20),
        {
            "8480-6": (156, 15),
            "8462-4": (95, 9),
            "8867-4": (80, 11),
            "2160-0": (1.0, 0.22),
            "2093-3": (208, 38),
        },
        {
            "2160-0": 0.55,
            "2823-3": 0.5,
            "2951-2": 0.5,
            "2093-3": 0.5,
            "2345-7": 0.4,
            "4548-4": 0.12,
        },
        {"E11.9": 0.18, "I25.1": 0.05},
        weight_shift=6,
        confusers=("G43.9", "I25.1"),
    ),
    "E11.9": _Spec(
        0.10,
        (58, 12),
        0.45,
        True,
        (0.74, 0.02, 0.04, 0.20),
        {"2345-7": (180, 55), "4548-4": (8.2, 1.4), "2093-3": (205, 38), "8480-6": (134, 15)},
        {"2345-7": 0.9, "4548-4": 0.85, "2093-3": 0.6, "2160-0": 0.6, "2823-3": 0.3, "2951-2": 0.3},
        {"I10": 0.4, "I25.1": 0.08},
        weight_shift=13,
        confusers=("N39.0", "D50.9"),
    ),
    "I21.9": _Spec(
        0.03,
        (66, 12),
        0.33,
        False,
        (0.0, 0.42, 0.58, 0.0),
        {
            "8867-4": (96, 20),
            "8480-6": (136, 26),
            "8462-4": (82, 14),
            "2708-6": (95.0, 2.5),
            "9279-1": (20, 3.5),
            "10839-9": (2.5, 1.3),
            "2345-7": (138, 40),
            "6690-2": (10.0, 2.6),
            "2093-3": (215, 40),
        },
        {
            "10839-9": 0.95,
            "718-7": 0.85,
            "6690-2": 0.8,
            "2160-0": 0.85,
            "2823-3": 0.85,
            "2951-2": 0.8,
            "2345-7": 0.7,
            "2093-3": 0.45,
            "1988-5": 0.3,
            "2524-7": 0.2,
        },
        {"I10": 0.4, "E11.9": 0.25, "I25.1": 0.3},
        weight_shift=4,
        confusers=("I25.1", "A09"),
    ),
    "I25.1": _Spec(
        0.06,
        (67, 10),
        0.35,
        True,
        (0.72, 0.08, 0.10, 0.10),
        {"8480-6": (138, 16), "8867-4": (72, 11), "10839-9": (0.02, 0.8), "2093-3": (222, 42)},
        {
            "2093-3": 0.65,
            "10839-9": 0.35,
            "2345-7": 0.4,
            "4548-4": 0.3,
            "2160-0": 0.5,
            "718-7": 0.3,
        },
        {"I10": 0.45, "E11.9": 0.2},
        weight_shift=5,
        confusers=("I21.9", "I50.9"),
    ),
    "J45.9": _Spec(
        0.06,
        (36, 15),
        0.58,
        True,
        (0.55, 0.05, 0.25, 0.15),
        {
            "9279-1": (22, 4),
            "2708-6": (94.3, 2.4),
            "8867-4": (100, 14),
            "6690-2": (8.6, 2.4),
            "1988-5": (5.0, 0.8),
        },
        {"6690-2": 0.25, "1988-5": 0.2},
        {"J06.9": 0.08},
        confusers=("J44.1", "J06.9"),
    ),
    "J44.1": _Spec(
        0.05,
        (70, 9),
        0.45,
        True,
        (0.22, 0.33, 0.42, 0.03),
        {
            "9279-1": (24, 4),
            "2708-6": (89.5, 3.4),
            "8867-4": (98, 14),
            "8310-5": (37.3, 0.6),
            "6690-2": (11.5, 3.5),
            "1988-5": (28.0, 0.9),
            "718-7": (14.3, 1.3),
        },
        {
            "6690-2": 0.7,
            "1988-5": 0.6,
            "718-7": 0.6,
            "2160-0": 0.5,
            "2951-2": 0.5,
            "2823-3": 0.5,
            "2524-7": 0.2,
        },
        {"I10": 0.25, "I50.9": 0.1, "I25.1": 0.1},
        weight_shift=-4,
        confusers=("J18.9", "I50.9", "J45.9"),
    ),
    "N39.0": _Spec(
        0.07,
        (45, 20),
        0.82,
        False,
        (0.6, 0.02, 0.18, 0.2),
        {"8310-5": (37.4, 0.7), "8867-4": (86, 12), "6690-2": (10.8, 3.0), "1988-5": (24.0, 0.9)},
        {"6690-2": 0.45, "1988-5": 0.35, "2160-0": 0.35, "2345-7": 0.2},
        {"E11.9": 0.1},
        confusers=("K35.8", "A41.9"),
    ),
    "K35.8": _Spec(
        0.03,
        (32, 13),
        0.45,
        False,
        (0.02, 0.48, 0.5, 0.0),
        {"8310-5": (37.9, 0.6), "8867-4": (98, 14), "6690-2": (14.3, 3.5), "1988-5": (45.0, 0.8)},
        {
            "6690-2": 0.95,
            "1988-5": 0.85,
            "718-7": 0.8,
            "2160-0": 0.6,
            "2951-2": 0.6,
            "2823-3": 0.6,
            "2524-7": 0.15,
        },
        {},
        confusers=("A09", "N39.0"),
    ),
    "A09": _Spec(
        0.07,
        (40, 17),
        0.52,
        False,
        (0.45, 0.03, 0.32, 0.2),
        {
            "8310-5": (37.6, 0.7),
            "8867-4": (95, 14),
            "8480-6": (114, 14),
            "6690-2": (10.0, 3.0),
            "1988-5": (14.0, 0.9),
            "2951-2": (135.5, 3.5),
            "2823-3": (3.7, 0.45),
            "2160-0": (1.1, 0.3),
        },
        {"6690-2": 0.4, "1988-5": 0.35, "2951-2": 0.5, "2823-3": 0.5, "2160-0": 0.5},
        {},
        confusers=("K35.8", "N39.0"),
    ),
    "I50.9": _Spec(
        0.05,
        (74, 10),
        0.47,
        True,
        (0.35, 0.33, 0.27, 0.05),
        {
            "2708-6": (92.0, 3.0),
            "9279-1": (22, 4),
            "8867-4": (92, 16),
            "8480-6": (130, 22),
            "2160-0": (1.4, 0.35),
            "2951-2": (135.0, 4.0),
            "10839-9": (0.04, 0.8),
            "718-7": (12.5, 1.4),
        },
        {
            "2160-0": 0.85,
            "2951-2": 0.85,
            "2823-3": 0.85,
            "718-7": 0.75,
            "10839-9": 0.55,
            "6690-2": 0.6,
            "2345-7": 0.4,
            "1988-5": 0.25,
        },
        {"I10": 0.4, "I25.1": 0.3, "E11.9": 0.25},
        weight_shift=10,
        confusers=("J44.1", "J18.9", "D50.9"),
    ),
    "G43.9": _Spec(
        0.06,
        (36, 11),
        0.75,
        True,
        (0.55, 0.02, 0.23, 0.2),
        {"8480-6": (127, 14), "8867-4": (80, 12)},
        {"6690-2": 0.05},
        {},
        confusers=("I10",),
    ),
    "A41.9": _Spec(
        0.03,
        (68, 15),
        0.47,
        False,
        (0.0, 0.55, 0.45, 0.0),
        {
            "8310-5": (38.7, 1.0),
            "8867-4": (116, 16),
            "9279-1": (25, 5),
            "8480-6": (94, 16),
            "8462-4": (56, 10),
            "2708-6": (93.0, 3.5),
            "6690-2": (16.5, 6.0),
            "1988-5": (150.0, 0.55),
            "2524-7": (3.4, 0.45),
            "2160-0": (1.6, 0.4),
            "2951-2": (136.0, 4.0),
            "2345-7": (140, 40),
        },
        {
            "6690-2": 0.95,
            "1988-5": 0.85,
            "2524-7": 0.9,
            "2160-0": 0.9,
            "2951-2": 0.85,
            "2823-3": 0.85,
            "718-7": 0.85,
            "2345-7": 0.7,
            "10839-9": 0.2,
        },
        {"N39.0": 0.25, "J18.9": 0.25, "E11.9": 0.15},
        confusers=("J18.9", "N39.0"),
    ),
    "D50.9": _Spec(
        0.05,
        (42, 18),
        0.78,
        True,
        (0.8, 0.01, 0.04, 0.15),
        {"718-7": (9.4, 1.3), "8867-4": (90, 13), "8480-6": (115, 13)},
        {"718-7": 0.95, "6690-2": 0.6, "2160-0": 0.3, "1988-5": 0.2},
        {},
        weight_shift=-3,
        confusers=("I50.9", "E11.9"),
    ),
}

_CODES = tuple(CONDITIONS)
_PREVALENCE = np.array([_SPECS[c].weight for c in _CODES])
_PREVALENCE = _PREVALENCE / _PREVALENCE.sum()

_PMH_ABBREV = {
    "I10": "HTN",
    "E11.9": "T2DM",
    "I25.1": "IHD",
    "J45.9": "asthma",
    "J44.1": "COPD",
    "I50.9": "CCF",
    "D50.9": "iron deficiency",
    "G43.9": "migraines",
    "I21.9": "previous MI",
    "N39.0": "recurrent UTIs",
}

# --------------------------------------------------------------------------------------------
# Free text
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    complaints: tuple[str, ...]
    symptoms: tuple[str, ...]  # associated symptoms
    negatives: tuple[str, ...]  # things the patient denies
    durations: tuple[str, ...]
    exam: tuple[str, ...]
    plan: tuple[str, ...]
    extra: tuple[str, ...] = ()


_ACUTE = (
    "2 days",
    "3 days",
    "since yesterday",
    "x3/7",
    "24 hours",
    "several hours",
    "4 days",
    "about a week",
    "since this morning",
    "48h",
    "5/7",
)
_HYPERACUTE = (
    "1 hour",
    "2 hours",
    "30 minutes",
    "since this morning",
    "3 hrs",
    "overnight",
    "since waking",
    "40 min",
)
_CHRONIC = (
    "several weeks",
    "3 months",
    "a few months",
    "6 weeks",
    "over a year",
    "2/12",
    "longstanding",
    "months",
)

_TEXT: dict[str, _Text] = {
    "J06.9": _Text(
        (
            "sore throat",
            "runny nose",
            "cough and cold",
            "blocked nose",
            "scratchy throat",
            "cold symptoms",
            "sneezing, sore throat",
            "mild fever and cough",
            "coryza",
            "cough",
        ),
        (
            "nasal congestion",
            "rhinorrhoea",
            "dry cough",
            "mild headache",
            "hoarse voice",
            "low grade fever",
            "sneezing",
            "myalgia",
            "sore throat",
        ),
        ("shortness of breath", "chest pain", "productive sputum", "rigors", "ear pain"),
        _ACUTE,
        (
            "Pharynx mildly erythematous, no exudate. Chest clear.",
            "Mild tonsillar erythema. Lungs clear bilaterally.",
            "Nasal mucosa swollen. No lymphadenopathy. Chest clear.",
            "Well, afebrile. Chest clear.",
        ),
        (
            "Supportive care, fluids, paracetamol. Return if worse.",
            "Symptomatic treatment, no antibiotics indicated.",
            "Safety-netting advice given. Rest and fluids.",
        ),
        ("Kids at home unwell too.", "Works in an office, colleagues sick.", ""),
    ),
    "J18.9": _Text(
        (
            "cough with fever",
            "productive cough",
            "shortness of breath",
            "fever and chills",
            "cough, green sputum",
            "pleuritic chest pain",
            "SOB and fever",
            "cough",
            "fever",
        ),
        (
            "productive cough",
            "purulent sputum",
            "fever",
            "rigors",
            "pleuritic chest pain",
            "breathlessness",
            "night sweats",
            "fatigue",
            "reduced appetite",
        ),
        ("haemoptysis", "leg swelling", "recent travel", "wheeze"),
        _ACUTE,
        (
            "Crackles right base, bronchial breathing.",
            "Reduced air entry left lower zone, dull to percussion.",
            "Coarse crepitations at bases. Tachypnoeic.",
            "Febrile, crackles R mid zone.",
        ),
        (
            "CXR, start amoxicillin + clarithromycin. CURB-65 calculated.",
            "Admit, IV antibiotics, oxygen to target sats.",
            "Oral antibiotics, review in 48h, CXR in 6 weeks.",
        ),
        ("Smoker.", "Recent flu-like illness.", "Lives alone.", ""),
    ),
    "I10": _Text(
        (
            "high blood pressure",
            "BP check",
            "headache",
            "elevated BP at pharmacy",
            "hypertension follow-up",
            "dizziness",
            "routine review",
            "med review",
            "raised BP",
        ),
        (
            "occasional headaches",
            "mild dizziness",
            "no symptoms",
            "tinnitus",
            "home readings elevated",
            "poor sleep",
        ),
        ("chest pain", "visual disturbance", "shortness of breath", "palpitations", "weakness"),
        _CHRONIC,
        (
            "BP elevated on repeat measurement. Heart sounds normal. No oedema.",
            "Fundi not examined. HS I+II+0.",
            "Well. No focal neurology. Peripheral pulses present.",
        ),
        (
            "Start amlodipine 5 mg, lifestyle advice, recheck in 4 weeks.",
            "Increase ramipril, U&E in 2 weeks.",
            "Home BP monitoring, review in clinic.",
            "Salt reduction, exercise.",
        ),
        ("Family history of stroke.", "Drinks 20 units/week.", "Stressful job.", ""),
    ),
    "E11.9": _Text(
        (
            "high sugar",
            "polyuria",
            "excessive thirst",
            "diabetes review",
            "tiredness",
            "blurred vision",
            "frequent urination",
            "glucose follow-up",
            "sugar check",
        ),
        (
            "polydipsia",
            "polyuria",
            "fatigue",
            "weight loss",
            "blurred vision",
            "tingling in feet",
            "recurrent thrush",
            "nocturia",
        ),
        ("vomiting", "abdominal pain", "chest pain", "foot ulcers"),
        _CHRONIC,
        (
            "BMI raised. Feet: sensation intact, pulses present.",
            "Monofilament normal. No retinopathy reported.",
            "Acanthosis nigricans noted. Feet intact.",
        ),
        (
            "Metformin titration, dietitian referral, HbA1c in 3 months.",
            "Add gliclazide, structured education.",
            "Annual review bloods, foot check, retinal screening.",
        ),
        ("Sedentary.", "Mother had diabetes.", "Shift worker, irregular meals.", ""),
    ),
    "I21.9": _Text(
        (
            "chest pain",
            "crushing chest pain",
            "chest tightness",
            "left arm pain and sweating",
            "chest pressure",
            "epigastric pain",
            "collapse",
            "central chest pain",
            "CP",
        ),
        (
            "radiation to left arm",
            "radiation to jaw",
            "diaphoresis",
            "nausea",
            "breathlessness",
            "sweating",
            "feeling of impending doom",
            "lightheadedness",
        ),
        ("pleuritic component", "fever", "cough", "trauma"),
        _HYPERACUTE,
        (
            "Pale, clammy. HS normal. Chest clear.",
            "Diaphoretic, distressed. No murmurs.",
            "Bibasal crackles. JVP not raised.",
            "Anxious, sweaty, BP as charted.",
        ),
        (
            "ECG: ST elevation anterior leads. Aspirin 300 mg, cath lab activated.",
            "Serial troponins, dual antiplatelet, cardiology review.",
            "Primary PCI pathway, GTN, morphine, oxygen if hypoxic.",
        ),
        ("Ex-smoker.", "Known hypercholesterolaemia.", "Father had MI at 55.", ""),
    ),
    "I25.1": _Text(
        (
            "exertional chest pain",
            "chest tightness on exertion",
            "angina",
            "cardiology follow-up",
            "chest discomfort walking uphill",
            "breathless on exertion",
            "chest pain",
            "review",
        ),
        (
            "pain relieved by rest",
            "relieved by GTN",
            "exertional dyspnoea",
            "reduced exercise tolerance",
            "tightness when cold",
        ),
        ("rest pain", "syncope", "palpitations", "orthopnoea"),
        _CHRONIC,
        (
            "HS normal, no murmurs. Chest clear. No oedema.",
            "Well at rest. Peripheral pulses palpable.",
            "Carotid bruit R. HS normal.",
        ),
        (
            "Optimise statin, GTN spray, exercise tolerance test.",
            "Continue aspirin, bisoprolol; CT coronary angiogram.",
            "Cardiology referral, lipid profile.",
        ),
        ("Previous stent 2019.", "Smoker 30 pack-years.", "Hyperlipidaemia.", ""),
    ),
    "J45.9": _Text(
        (
            "wheeze",
            "shortness of breath",
            "chest tightness",
            "night cough",
            "asthma attack",
            "wheezing and cough",
            "inhaler not helping",
            "SOB",
            "cough",
        ),
        (
            "wheeze",
            "nocturnal cough",
            "chest tightness",
            "using reliever more often",
            "triggered by cold air",
            "worse with exercise",
            "hay fever",
        ),
        ("fever", "sputum", "chest pain", "ankle swelling"),
        (*_ACUTE, "a few weeks"),
        (
            "Widespread expiratory wheeze.",
            "Prolonged expiration, scattered wheeze. Speaking full sentences.",
            "Mild wheeze, good air entry.",
            "Chest clear today.",
        ),
        (
            "Salbutamol nebs, prednisolone 40 mg 5 days.",
            "Step up to ICS/LABA, inhaler technique reviewed.",
            "Asthma action plan updated, peak flow diary.",
        ),
        ("Cat at home.", "Childhood asthma.", "Non-smoker.", ""),
    ),
    "J44.1": _Text(
        (
            "worsening breathlessness",
            "increased sputum",
            "SOB",
            "COPD flare",
            "wheeze and cough",
            "can't catch breath",
            "productive cough",
            "breathlessness",
            "chest infection",
        ),
        (
            "increased sputum volume",
            "sputum purulence",
            "wheeze",
            "breathless at rest",
            "reduced exercise tolerance",
            "using accessory muscles",
            "cough",
        ),
        ("chest pain", "haemoptysis", "leg swelling", "fever"),
        _ACUTE,
        (
            "Hyperexpanded chest, widespread wheeze, reduced air entry.",
            "Pursed lip breathing, coarse crackles.",
            "Tachypnoeic, quiet chest bilaterally.",
        ),
        (
            "Nebulised bronchodilators, prednisolone, doxycycline. Target sats 88-92%.",
            "Controlled oxygen, ABG, CXR.",
            "Rescue pack started, pulmonary rehab referral.",
        ),
        ("Ex-smoker 40 pack-years.", "Home oxygen.", "2 exacerbations this year.", ""),
    ),
    "N39.0": _Text(
        (
            "burning urination",
            "dysuria",
            "urinary frequency",
            "pain passing urine",
            "cloudy urine",
            "suprapubic pain",
            "urgency",
            "UTI symptoms",
            "smelly urine",
        ),
        (
            "dysuria",
            "frequency",
            "urgency",
            "suprapubic discomfort",
            "haematuria",
            "offensive smelling urine",
            "low grade fever",
        ),
        ("loin pain", "vaginal discharge", "vomiting", "rigors"),
        _ACUTE,
        (
            "Suprapubic tenderness. No renal angle tenderness.",
            "Abdomen soft, mildly tender suprapubically.",
            "Urine dip: nitrites +, leucocytes ++.",
        ),
        (
            "Nitrofurantoin 3 days, MSU sent.",
            "Trimethoprim, fluids, return if loin pain.",
            "Urine culture, empirical antibiotics.",
        ),
        ("Previous UTI last year.", "Sexually active.", ""),
    ),
    "K35.8": _Text(
        (
            "abdominal pain",
            "right lower quadrant pain",
            "RLQ pain",
            "pain around umbilicus moving to right",
            "abdominal pain and vomiting",
            "stomach ache",
            "fever and abdominal pain",
            "tummy pain",
        ),
        (
            "periumbilical pain migrating to RIF",
            "anorexia",
            "nausea",
            "vomiting",
            "pain worse on movement",
            "low grade fever",
        ),
        ("diarrhoea", "urinary symptoms", "vaginal bleeding", "previous similar episodes"),
        (*_HYPERACUTE, "since yesterday", "24 hours"),
        (
            "Tender RIF, guarding, rebound positive.",
            "McBurney's point tenderness, Rovsing's sign positive.",
            "Localised peritonism right iliac fossa.",
        ),
        (
            "Surgical review, NBM, IV fluids, appendicectomy.",
            "Ultrasound abdomen, surgical referral.",
            "CT abdomen, IV antibiotics, theatre.",
        ),
        ("No previous surgery.", ""),
    ),
    "A09": _Text(
        (
            "diarrhoea",
            "vomiting and diarrhea",
            "loose stools",
            "stomach cramps",
            "food poisoning",
            "D&V",
            "abdominal pain",
            "vomiting",
            "diarrhea",
        ),
        (
            "watery diarrhoea",
            "vomiting",
            "crampy abdominal pain",
            "nausea",
            "fever",
            "unable to keep fluids down",
            "feeling weak",
        ),
        ("blood in stool", "recent antibiotics", "foreign travel", "localised pain"),
        _ACUTE,
        (
            "Abdomen soft, diffusely tender, bowel sounds active.",
            "Dry mucous membranes. Abdomen soft, non-tender.",
            "Mild generalised tenderness, no guarding.",
        ),
        (
            "Oral rehydration, antiemetic, stool sample if persists.",
            "IV fluids, check U&E.",
            "Hygiene advice, return if bloody stool.",
        ),
        ("Ate at a restaurant 2 days ago.", "Household contacts similar.", ""),
    ),
    "I50.9": _Text(
        (
            "shortness of breath",
            "swollen legs",
            "ankle swelling",
            "breathless lying flat",
            "weight gain and SOB",
            "orthopnoea",
            "fatigue",
            "SOB",
            "breathlessness",
        ),
        (
            "orthopnoea",
            "paroxysmal nocturnal dyspnoea",
            "ankle oedema",
            "weight gain",
            "reduced exercise tolerance",
            "fatigue",
            "nocturia",
        ),
        ("chest pain", "fever", "productive cough", "palpitations"),
        ("1 week", "2 weeks", "several days", "10 days", "a few weeks", "5/7"),
        (
            "Pitting oedema to knees, raised JVP, bibasal crackles.",
            "S3 gallop, bilateral crackles, sacral oedema.",
            "Bilateral ankle oedema, fine basal crackles.",
        ),
        (
            "IV furosemide, fluid restriction, daily weights, echo.",
            "Increase diuretic, BNP, heart failure nurse.",
            "Optimise ACEi/beta-blocker, U&E in 1 week.",
        ),
        ("Known LV impairment.", "Previous MI.", "Poor compliance with tablets.", ""),
    ),
    "G43.9": _Text(
        (
            "headache",
            "migraine",
            "throbbing headache",
            "headache with nausea",
            "one-sided headache",
            "visual aura and headache",
            "light sensitivity",
            "bad headache",
        ),
        (
            "photophobia",
            "phonophobia",
            "nausea",
            "visual aura",
            "unilateral throbbing",
            "similar previous episodes",
            "worse with activity",
        ),
        ("fever", "neck stiffness", "weakness", "thunderclap onset", "head injury"),
        ("6 hours", "since yesterday", "overnight", "2 days", "12 hours", "recurrent for years"),
        (
            "Neuro exam normal. No neck stiffness. Fundi normal.",
            "Photophobic, otherwise normal neurology.",
            "GCS 15, cranial nerves intact.",
        ),
        (
            "Triptan, NSAID, antiemetic; headache diary.",
            "Propranolol prophylaxis, review 8 weeks.",
            "Analgesia, dark room, safety-net red flags.",
        ),
        ("Triggered by stress and poor sleep.", "On combined pill.", "Mother has migraines.", ""),
    ),
    "A41.9": _Text(
        (
            "fever",
            "confusion",
            "feeling very unwell",
            "rigors",
            "fever and low BP",
            "drowsy",
            "fever and shortness of breath",
            "collapse",
            "unwell",
        ),
        (
            "rigors",
            "confusion",
            "reduced urine output",
            "vomiting",
            "mottled skin",
            "breathlessness",
            "lethargy",
        ),
        ("chest pain", "rash", "neck stiffness", "recent surgery"),
        ("12 hours", "since yesterday", "24 hours", "2 days", "overnight", "since this morning"),
        (
            "Flushed, warm peripheries, tachycardic.",
            "Cool peripheries, CRT 4s, confused.",
            "Mottled knees, hypotensive, drowsy.",
        ),
        (
            "Sepsis six: blood cultures, lactate, IV antibiotics, fluids, oxygen, urine output.",
            "Fluid resuscitation, broad-spectrum antibiotics, ICU review.",
            "Source control, cultures, IV piperacillin-tazobactam.",
        ),
        ("Nursing home resident.", "Immunosuppressed.", "Recent UTI.", ""),
    ),
    "D50.9": _Text(
        (
            "fatigue",
            "tiredness",
            "pale",
            "shortness of breath on exertion",
            "dizziness",
            "low energy",
            "palpitations",
            "tired all the time",
            "hair loss",
        ),
        (
            "fatigue",
            "exertional breathlessness",
            "pallor",
            "heavy periods",
            "brittle nails",
            "cold intolerance",
            "reduced concentration",
        ),
        ("weight loss", "melaena", "rectal bleeding", "night sweats"),
        _CHRONIC,
        (
            "Conjunctival pallor. Koilonychia.",
            "Pale. Flow murmur. Abdomen soft.",
            "Pallor, otherwise unremarkable.",
        ),
        (
            "Ferrous sulfate 200 mg daily, recheck FBC 4 weeks.",
            "Iron studies, coeliac screen, GI referral if no cause.",
            "IV iron considered; gynae referral for menorrhagia.",
        ),
        ("Vegetarian diet.", "Menorrhagia.", "Blood donor.", ""),
    ),
}

_GENERIC_COMPLAINTS = (
    "feeling unwell",
    "review",
    "follow up",
    "referred by GP",
    "pain",
    "not feeling right",
    "general weakness",
    "check-up",
    "unwell",
)
_SPARSE_HISTORY = (
    "see triage notes",
    "as above",
    "hx per pt",
    "nil else",
    "see referral letter",
    "",
    "Hx limited, language barrier.",
    "pt poor historian",
)
_SHARED_DURATIONS = (
    "2 days",
    "a few days",
    "1 week",
    "since yesterday",
    "several days",
    "a couple of weeks",
    "3/7",
    "some time",
    "1 day",
    "1/52",
)
_SHARED_NEGATIVES = (
    "fever",
    "chest pain",
    "vomiting",
    "shortness of breath",
    "headache",
    "rash",
    "leg swelling",
    "cough",
    "urinary symptoms",
    "weight loss",
    "diarrhoea",
    "palpitations",
    "abdominal pain",
    "recent travel",
    "sick contacts",
)
_SHARED_EXTRA = (
    "Non-smoker.",
    "Lives with family.",
    "Independent with ADLs.",
    "Smoker.",
    "Drinks socially.",
    "NKDA per pt.",
    "Works as a teacher.",
    "Retired.",
    "Lives alone.",
    "Ex-smoker.",
    "Compliant with meds.",
    "",
)
_OPENINGS = (
    "Pt c/o {cc}",
    "Patient reports {cc}",
    "Presents with {cc}",
    "{age}{sx} with {cc}",
    "Complains of {cc}",
    "C/o {cc}",
    "{age} y/o {sex} presenting with {cc}",
    "{cc}",
)
_NEG_FORMS = ("Denies {x}.", "No {x}.", "Nil {x}.", "Negative for {x}.", "No h/o {x}.")

# --------------------------------------------------------------------------------------------
# Names, contact details, allergies
# --------------------------------------------------------------------------------------------

_EN_FEMALE = (
    "Olivia",
    "Emma",
    "Amelia",
    "Sophie",
    "Charlotte",
    "Grace",
    "Emily",
    "Hannah",
    "Jessica",
    "Lucy",
    "Chloe",
    "Ella",
    "Isabel",
    "Mia",
    "Ruby",
    "Sarah",
    "Rachel",
    "Margaret",
    "Susan",
    "Helen",
    "Karen",
    "Laura",
    "Rebecca",
    "Joanne",
    "Catherine",
    "Patricia",
    "Linda",
    "Elizabeth",
    "Anne",
    "Victoria",
    "Megan",
    "Alice",
    "Harriet",
    "Eleanor",
    "Jennifer",
    "Barbara",
    "Dorothy",
    "Jean",
    "Kathleen",
    "Natalie",
)
_EN_MALE = (
    "Oliver",
    "George",
    "Harry",
    "Jack",
    "Thomas",
    "James",
    "William",
    "Daniel",
    "David",
    "Michael",
    "Richard",
    "Robert",
    "John",
    "Peter",
    "Paul",
    "Andrew",
    "Mark",
    "Stephen",
    "Christopher",
    "Matthew",
    "Samuel",
    "Joseph",
    "Benjamin",
    "Edward",
    "Henry",
    "Charles",
    "Anthony",
    "Kevin",
    "Brian",
    "Gary",
    "Ian",
    "Alan",
    "Graham",
    "Simon",
    "Adam",
    "Luke",
    "Ryan",
    "Nathan",
    "Patrick",
    "Frank",
)
_EN_FAMILY = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Hughes",
    "Edwards",
    "Turner",
    "Harris",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Morris",
    "Moore",
    "Clark",
    "Lee",
    "King",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "Scott",
    "Young",
    "Mitchell",
    "Bennett",
    "Carter",
    "Shaw",
    "Murphy",
    "O'Brien",
    "Fletcher",
    "Kelly",
    "Price",
)
_ZH_FEMALE = (
    "Mei",
    "Xiu Ying",
    "Li Na",
    "Jing",
    "Fang",
    "Yan",
    "Hui",
    "Ling",
    "Xin Yi",
    "Yu Tong",
    "Zi Han",
    "Hong",
    "Min",
    "Lan",
    "Qian",
    "Ying",
    "Xiao Hong",
    "Shu Fen",
    "Wen",
    "Jia Hui",
    "Yue",
    "Ting",
    "Dan",
    "Lei Lei",
)
_ZH_MALE = (
    "Wei",
    "Jun",
    "Hao",
    "Lei",
    "Qiang",
    "Ming",
    "Jian",
    "Yong",
    "Tao",
    "Bo",
    "Hao Ran",
    "Zi Xuan",
    "Yu Hang",
    "Jie",
    "Peng",
    "Chao",
    "Gang",
    "Bin",
    "Xiang",
    "Zhi Qiang",
    "Kai",
    "Long",
    "Feng",
    "Liang",
)
_ZH_FAMILY = (
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Lin",
    "Gao",
    "Luo",
    "Zheng",
    "Liang",
    "Xie",
    "Tang",
    "Han",
    "Cao",
    "Deng",
    "Feng",
    "Song",
    "Ye",
)
_STREETS = (
    "High Street",
    "Station Road",
    "Church Lane",
    "Victoria Road",
    "Park Avenue",
    "Mill Lane",
    "Queen Street",
    "King's Road",
    "Green Lane",
    "Manor Way",
    "Elm Grove",
    "Oak Close",
    "Riverside Drive",
    "Castle Street",
    "London Road",
    "Nanjing Road",
    "Chapel Street",
    "Orchard Way",
    "The Crescent",
    "North Street",
)
_CITIES = (
    ("London", "E"),
    ("Manchester", "M"),
    ("Leeds", "LS"),
    ("Bristol", "BS"),
    ("Birmingham", "B"),
    ("Sheffield", "S"),
    ("Liverpool", "L"),
    ("Nottingham", "NG"),
    ("Cambridge", "CB"),
    ("Oxford", "OX"),
    ("Edinburgh", "EH"),
    ("Glasgow", "G"),
    ("Cardiff", "CF"),
    ("Newcastle", "NE"),
    ("Leicester", "LE"),
)
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_RELATIONS = (
    "spouse",
    "daughter",
    "son",
    "partner",
    "mother",
    "father",
    "sister",
    "brother",
    "friend",
    "wife",
    "husband",
)
_NI_LETTERS = "ABCEGHJKLMNPRSTWXYZ"

# substance -> (reactions, severity weights mild/moderate/severe)
_ALLERGENS: tuple[tuple[str, float, tuple[str, ...], tuple[float, float, float]], ...] = (
    ("Penicillin", 0.30, ("rash", "urticaria", "anaphylaxis", "angioedema"), (0.45, 0.35, 0.2)),
    ("Amoxicillin", 0.08, ("rash", "urticaria"), (0.6, 0.35, 0.05)),
    ("Sulfonamides", 0.1, ("rash", "Stevens-Johnson syndrome", "fever"), (0.55, 0.3, 0.15)),
    ("Aspirin", 0.08, ("bronchospasm", "urticaria", "GI bleeding"), (0.4, 0.4, 0.2)),
    ("NSAIDs", 0.1, ("bronchospasm", "angioedema", "dyspepsia"), (0.45, 0.4, 0.15)),
    ("Latex", 0.06, ("contact dermatitis", "urticaria", "anaphylaxis"), (0.5, 0.3, 0.2)),
    ("Codeine", 0.07, ("nausea", "pruritus", "vomiting"), (0.7, 0.3, 0.0)),
    ("Peanuts", 0.06, ("anaphylaxis", "urticaria", "lip swelling"), (0.2, 0.4, 0.4)),
    ("Shellfish", 0.05, ("urticaria", "vomiting", "anaphylaxis"), (0.4, 0.4, 0.2)),
    ("Iodinated contrast", 0.04, ("urticaria", "flushing", "bronchospasm"), (0.5, 0.35, 0.15)),
    ("Morphine", 0.03, ("pruritus", "nausea", "hypotension"), (0.6, 0.35, 0.05)),
    ("Erythromycin", 0.03, ("GI upset", "rash"), (0.7, 0.3, 0.0)),
)
_ALLERGEN_P = np.array([a[1] for a in _ALLERGENS])
_ALLERGEN_P = _ALLERGEN_P / _ALLERGEN_P.sum()
_SEVERITIES = ("mild", "moderate", "severe")

# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

_DAYS = 730  # visits spread over the last two years
_DUPLICATE_RATE = 0.006
_MISCODED_RATE = 0.04


def _default_end() -> datetime:
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


def _pick(options: tuple[str, ...], u: float) -> str:
    return options[int(u * len(options))]


def generate_population(
    *,
    n_visits: int,
    seed: int = 0,
    visits_per_patient: float = 1.6,
    end: datetime | None = None,
) -> Population:
    """Generate ``n_visits`` visits for about ``n_visits / visits_per_patient`` patients.

    ``end`` (aware) is the latest possible visit start; it defaults to the start of the current
    UTC day, and visits spread over the two years before it. All dates are relative to ``end``,
    so the same seed and ``end`` give identical output.
    """
    if n_visits < 1:
        raise ValueError("n_visits must be positive")
    if visits_per_patient < 1:
        raise ValueError("visits_per_patient must be at least 1")
    end = _default_end() if end is None else end.astimezone(UTC)
    rng = np.random.default_rng(seed)

    n_dup = round(n_visits * _DUPLICATE_RATE) if n_visits >= 50 else 0
    n_unique = n_visits - n_dup
    n_pat = max(1, min(n_unique, math.ceil(n_unique / visits_per_patient)))

    # --- patients: index condition drives age, sex, body size and recurrence -----------------
    n_cond = len(_CODES)
    index_cond = rng.choice(n_cond, size=n_pat, p=_PREVALENCE)
    age_mean = np.array([_SPECS[c].age[0] for c in _CODES])[index_cond]
    age_sd = np.array([_SPECS[c].age[1] for c in _CODES])[index_cond]
    age_now = np.clip(age_mean + age_sd * rng.standard_normal(n_pat), 20.0, 95.0)
    female = rng.random(n_pat) < np.array([_SPECS[c].female for c in _CODES])[index_cond]
    height = np.where(
        female, 163.0 + 6.5 * rng.standard_normal(n_pat), 176.5 + 7.0 * rng.standard_normal(n_pat)
    )
    height = np.clip(height, 145.0, 200.0)
    bmi0 = 26.0 + np.array([_SPECS[c].weight_shift for c in _CODES])[index_cond] / 3.0
    bmi0 = np.clip(bmi0 + 4.2 * rng.standard_normal(n_pat), 16.5, 50.0)
    weight0 = bmi0 * (height / 100.0) ** 2
    chronic = np.array([_SPECS[c].chronic for c in _CODES])

    # --- visits: one per patient, extra visits go preferentially to chronic patients ----------
    extra = n_unique - n_pat
    w = np.where(chronic[index_cond], 3.0, 1.0)
    visit_patient = np.concatenate(
        [np.arange(n_pat), rng.choice(n_pat, size=extra, p=w / w.sum())]
    ).astype(np.int64)
    is_first = np.zeros(n_unique, dtype=bool)
    is_first[:n_pat] = True
    p_idx = index_cond[visit_patient]
    recur_p = np.where(chronic[p_idx], 0.65, 0.15)
    same = is_first | (rng.random(n_unique) < recur_p)
    new_cond = rng.choice(n_cond, size=n_unique, p=_PREVALENCE)
    cond = np.where(same, p_idx, new_cond)

    offset_s = rng.random(n_unique) * _DAYS * 86400.0
    # visit type per condition
    vt_probs = np.array([_SPECS[c].visit_types for c in _CODES])
    vt_probs = vt_probs / vt_probs.sum(axis=1, keepdims=True)
    cum = np.cumsum(vt_probs, axis=1)[cond]
    vtype = (rng.random(n_unique)[:, None] > cum).sum(axis=1).clip(0, 3)
    # time of day: office hours for outpatient/telemedicine, any time for acute care
    day_start = np.floor(offset_s / 86400.0) * 86400.0
    office = (vtype == 0) | (vtype == 3)
    office_sec = (8.0 + 9.5 * rng.random(n_unique)) * 3600.0
    offset_s = np.where(office, day_start + office_sec, offset_s)
    offset_s = np.round(offset_s / 60.0) * 60.0  # whole minutes
    duration_min = np.select(
        [vtype == 0, vtype == 1, vtype == 2, vtype == 3],
        [
            10 + 30 * rng.random(n_unique),
            (1.5 + 8 * rng.random(n_unique)) * 1440,
            60 + 420 * rng.random(n_unique),
            8 + 20 * rng.random(n_unique),
        ],
    ).round()
    no_end = rng.random(n_unique) < 0.03

    # severity: correlated shift of all signs between baseline (0) and condition centre (1)
    severity = 1.0 + 0.4 * rng.standard_normal(n_unique)
    severity += np.select([vtype == 1, vtype == 2, vtype == 3], [0.25, 0.15, -0.3], 0.0)
    severity = np.clip(severity, 0.0, 1.8)
    atypical = rng.random(n_unique) < 0.18
    severity = np.where(atypical, severity * 0.35, severity)

    age_visit = age_now[visit_patient] - (_DAYS * 86400.0 - offset_s) / (365.25 * 86400.0)
    female_v = female[visit_patient]

    # --- secondary diagnoses -------------------------------------------------------------------
    secondaries: list[list[int]] = [[] for _ in range(n_unique)]
    u_sec = rng.random((n_unique, 4))
    for ci, code in enumerate(_CODES):
        idx = np.flatnonzero(cond == ci)
        for j, (sec_code, p) in enumerate(_SPECS[code].secondary.items()):
            sj = _CODES.index(sec_code)
            for i in idx[u_sec[idx, j % 4] < p]:
                secondaries[i].append(sj)
    # chronic index condition carried as secondary when the visit is about something else
    carry = (~same) & chronic[p_idx] & (u_sec[:, 3] < 0.55) & (p_idx != cond)
    for i in np.flatnonzero(carry):
        if p_idx[i] not in secondaries[i]:
            secondaries[i].append(int(p_idx[i]))
    has_sec = np.zeros((n_unique, n_cond), dtype=bool)
    for i, secs in enumerate(secondaries):
        for s in secs:
            has_sec[i, s] = True

    # --- observations (canonical units) ------------------------------------------------------
    values: dict[str, np.ndarray] = {}
    for code in _VITAL_GEN + LAB_CODES:
        kind, base_c, base_sd = _BASE[code]
        centre = np.full(n_unique, base_c)
        sd = np.full(n_unique, base_sd)
        for ci, c in enumerate(_CODES):
            spec = _SPECS[c].values.get(code)
            if spec is None:
                continue
            m = cond == ci
            if kind == "n":
                centre[m] = base_c + severity[m] * (spec[0] - base_c)
            else:
                log_c = np.log(base_c)
                sev = np.minimum(severity[m], 1.15)  # no extrapolation far into the tail
                centre[m] = np.exp(log_c + sev * (np.log(spec[0]) - log_c))
            sd[m] = spec[1]
        z = rng.standard_normal(n_unique)
        values[code] = centre + sd * z if kind == "n" else centre * np.exp(sd * z)

    # demographic and comorbidity effects
    values["8480-6"] += 0.45 * (age_visit - 50.0) + 14.0 * has_sec[:, _CODES.index("I10")]
    values["8462-4"] += 0.1 * (age_visit - 50.0) + 7.0 * has_sec[:, _CODES.index("I10")]
    e11 = has_sec[:, _CODES.index("E11.9")]
    values["2345-7"] += e11 * (40.0 + 30.0 * rng.random(n_unique))
    values["4548-4"] += e11 * (1.5 + 1.0 * rng.random(n_unique))
    values["718-7"] += np.where(female_v, 0.0, 1.5)
    values["2160-0"] *= np.where(female_v, 1.0, 1.2) * (1.0 + np.clip(age_visit - 60, 0, None) / 80)
    values["2708-6"] -= np.clip(age_visit - 70, 0, None) * 0.05
    values["8867-4"] += 3.0 * np.clip(values["8310-5"] - 37.2, 0, None)  # fever -> tachycardia
    sepsis = cond == _CODES.index("A41.9")
    hypo = sepsis & (rng.random(n_unique) < 0.12)
    values["8310-5"] = np.where(hypo, 35.3 + 0.5 * rng.standard_normal(n_unique), values["8310-5"])
    leuko = sepsis & (rng.random(n_unique) < 0.1)
    values["6690-2"] = np.where(leuko, 2.8 + 0.7 * rng.standard_normal(n_unique), values["6690-2"])
    values["8462-4"] = np.minimum(values["8462-4"], values["8480-6"] - 20.0)
    values["29463-7"] = weight0[visit_patient] * (1.0 + 0.02 * rng.standard_normal(n_unique))
    values["29463-7"] += np.where(cond == _CODES.index("I50.9"), 3.0 * severity, 0.0)
    values["8302-2"] = height[visit_patient] + rng.normal(0.0, 0.6, n_unique)

    for code in values:
        values[code] = _fold_into_range(code, values[code], rng)

    # which observations were measured
    vt_vital_p = np.array(
        [
            [0.93, 0.95, 0.8, 0.93, 0.93, 0.85],  # outpatient
            [0.99, 0.99, 0.97, 0.99, 0.99, 0.98],  # inpatient
            [0.97, 0.99, 0.93, 0.98, 0.98, 0.97],  # emergency
            [0.25, 0.35, 0.1, 0.45, 0.45, 0.2],
        ]
    )  # telemedicine
    vital_p = vt_vital_p[vtype]
    measured: dict[str, np.ndarray] = {}
    for j, code in enumerate(_VITAL_GEN):
        measured[code] = rng.random(n_unique) < vital_p[:, j]
    measured["8462-4"] = measured["8480-6"]  # BP is a pair
    measured["29463-7"] = rng.random(n_unique) < np.where(vtype == 3, 0.3, 0.6)
    measured["8302-2"] = measured["29463-7"] & (rng.random(n_unique) < 0.55)
    lab_scale = np.array([1.0, 1.05, 1.05, 0.2])[vtype]
    for code in LAB_CODES:
        p = np.full(n_unique, _LAB_DEFAULT_P)
        for ci, c in enumerate(_CODES):
            if code in _SPECS[c].labs:
                p[cond == ci] = _SPECS[c].labs[code]
        if code in ("2345-7", "4548-4"):
            p = np.where(e11, np.maximum(p, 0.5), p)
        measured[code] = rng.random(n_unique) < p * lab_scale
    height_m = values["8302-2"] / 100.0
    values["39156-5"] = np.clip(values["29463-7"] / (height_m * height_m), 13.0, 65.0)
    measured["39156-5"] = measured["8302-2"] & (rng.random(n_unique) < 0.8)

    # recorded values and units (rounded as a clinician or analyser would)
    obs_columns: list[tuple[str, list[float], list[str]]] = []
    for code in OBSERVATION_CODES:
        canon = np.round(values[code], _DECIMALS[code])
        unit_canon = CANONICAL_UNITS[code]
        alt_unit = ALTERNATIVE_UNITS.get(code)
        if alt_unit is None:
            recorded = canon
            units_alt = np.zeros(n_unique, dtype=bool)
        else:
            units_alt = rng.random(n_unique) < _ALT_UNIT_P[code]
            alt_vals = np.round(_to_alternative(code, values[code]), _ALT_DECIMALS[code])
            back = np.array([canonical_value(code, a, alt_unit) for a in (44.0, 1.0)])
            slope = back[0] - back[1]  # conversions are affine: canonical = a * alt + b
            alt_back = (alt_vals - 1.0) * slope / 43.0 + back[1]
            lo, hi = PLAUSIBLE_RANGES[code]
            units_alt &= (alt_back >= lo) & (alt_back <= hi)  # rounding must not leave range
            recorded = np.where(units_alt, alt_vals, canon)
        recorded = np.where(measured[code], recorded, np.nan)
        obs_columns.append(
            (code, recorded.tolist(), [alt_unit if a else unit_canon for a in units_alt.tolist()])
        )

    # --- free text ---------------------------------------------------------------------------
    u = rng.random((n_unique, 24))
    texts = _free_text(cond, u, age_visit, female_v, secondaries, values, measured, atypical)
    texts = _mess_text(texts, rng)

    # coding noise: a few visits are coded as a look-alike condition (real labels are imperfect)
    coded = cond.copy()
    for i in np.flatnonzero(rng.random(n_unique) < _MISCODED_RATE).tolist():
        confusers = _SPECS[_CODES[cond[i]]].confusers
        if confusers:
            coded[i] = _CODES.index(confusers[int(u[i, 1] * len(confusers))])
            if coded[i] in secondaries[i]:
                secondaries[i].remove(coded[i])

    # --- patients ----------------------------------------------------------------------------
    patients = _patients(rng, n_pat, female, age_now, end, index_cond)

    # --- assemble visits in chronological order, with a few exact duplicates ----------------
    order = np.argsort(offset_s, kind="stable")
    dup_src = set(rng.choice(n_unique, size=n_dup, replace=False).tolist()) if n_dup else set()
    window_start = end - timedelta(days=_DAYS)
    offsets = offset_s.tolist()
    durations = duration_min.tolist()
    no_end_l = no_end.tolist()
    vt_l = vtype.tolist()
    cond_l = coded.tolist()
    pat_l = visit_patient.tolist()
    visits: list[SyntheticVisit] = []
    key = 0
    for i in order.tolist():
        obs = tuple(
            SyntheticObservation(code, vals[i], units[i])
            for code, vals, units in obs_columns
            if vals[i] == vals[i]
        )
        start = window_start + timedelta(seconds=offsets[i])
        visit_end = None if no_end_l[i] else start + timedelta(minutes=durations[i])
        cc, hist, exam, plan = texts[i]
        for _ in range(2 if i in dup_src else 1):
            key += 1
            visits.append(
                SyntheticVisit(
                    key=key,
                    patient_key=pat_l[i] + 1,
                    start=start,
                    end=visit_end,
                    visit_type=VISIT_TYPES[vt_l[i]],
                    chief_complaint=cc,
                    history=hist,
                    physical_exam=exam,
                    plan=plan,
                    observations=obs,
                    primary_diagnosis=_CODES[cond_l[i]],
                    secondary_diagnoses=tuple(_CODES[s] for s in secondaries[i]),
                )
            )
    return Population(patients=tuple(patients), visits=tuple(visits))


def _fold_into_range(code: str, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move out-of-range draws just inside the plausible range (no pile-up on the bound)."""
    lo, hi = PLAUSIBLE_RANGES[code]
    margin = 0.04 * (hi - lo)
    jitter = rng.random(v.shape[0]) * margin
    return np.where(v > hi, hi - jitter, np.where(v < lo, lo + jitter, v))


def _free_text(
    cond: np.ndarray,
    u: np.ndarray,
    age: np.ndarray,
    female: np.ndarray,
    secondaries: list[list[int]],
    values: dict[str, np.ndarray],
    measured: dict[str, np.ndarray],
    atypical: np.ndarray,
) -> list[tuple[str, str, str, str]]:
    """Chief complaint, history, examination and plan per visit.

    Atypical presentations (mild signs) also get vaguer or misleading text, as in real notes.
    """
    out: list[tuple[str, str, str, str]] = []
    hard = atypical.tolist()
    ul = u.tolist()
    ages = np.floor(age).astype(int).tolist()
    fem = female.tolist()
    cond_l = cond.tolist()
    for i, ci in enumerate(cond_l):
        r = ul[i]
        code = _CODES[ci]
        t = _TEXT[code]
        spec = _SPECS[code]
        # chief complaint: usually typical, sometimes a confuser's or generic
        p_conf, p_gen, p_sparse, p_decoy = (
            (0.5, 0.8, 0.35, 0.8) if hard[i] else (0.25, 0.38, 0.18, 0.5)
        )
        if r[0] < p_conf and spec.confusers:
            ct = _TEXT[_pick(spec.confusers, r[1])]
            cc = _pick(ct.complaints, r[2])
        elif r[0] < p_gen:
            cc = _pick(_GENERIC_COMPLAINTS, r[2])
        else:
            cc = _pick(t.complaints, r[2])
        # history of present illness
        if r[3] < p_sparse:
            history = _pick(_SPARSE_HISTORY, r[4])
        else:
            sex_word = "female" if fem[i] else "male"
            opening = _pick(_OPENINGS, r[4]).format(
                cc=cc, age=ages[i], sx="F" if fem[i] else "M", sex=sex_word
            )
            durations = t.durations if r[5] < 0.5 else _SHARED_DURATIONS
            parts = [f"{opening} for {_pick(durations, (r[5] * 10) % 1)}."]
            n_sym = int(r[6] * 3.0)  # 0-2 associated symptoms
            syms: list[str] = []
            for k in range(n_sym):
                src = t.symptoms
                if spec.confusers and (r[7 + k] * 10.0) % 1.0 < p_decoy:
                    src = _TEXT[_pick(spec.confusers, (r[7 + k] * 100.0) % 1.0)].symptoms
                s = _pick(src, r[7 + k])
                if s not in syms:
                    syms.append(s)
            if syms:
                lead = _pick(("Associated with", "Also reports", "Some", "With", "+"), r[9])
                parts.append(f"{lead} {' and '.join(syms)}.")
            if r[10] < 0.7:
                neg = _pick(t.negatives if r[11] < 0.35 else _SHARED_NEGATIVES, (r[11] * 10) % 1)
                parts.append(_pick(_NEG_FORMS, r[12]).format(x=neg))
            if r[13] < 0.25 and spec.confusers:  # a misleading symptom from a confuser
                decoy = _TEXT[_pick(spec.confusers, r[14])].symptoms
                parts.append(f"Mentions {_pick(decoy, r[15])}.")
            if r[16] < 0.5:
                extra = _pick(t.extra if r[17] < 0.4 else _SHARED_EXTRA, (r[17] * 10) % 1)
                if extra:
                    parts.append(extra)
            pmh = [_PMH_ABBREV[_CODES[s]] for s in secondaries[i] if _CODES[s] in _PMH_ABBREV]
            if pmh and r[18] < 0.7:
                parts.append(f"PMH: {', '.join(pmh)}.")
            history = " ".join(parts)
        # examination mentions measured abnormal vitals sometimes
        exam = _pick(t.exam, r[19])
        if r[20] < 0.3 and measured["8310-5"][i] and values["8310-5"][i] >= 38.0:
            exam = f"Febrile. {exam}"
        if r[21] < 0.05:
            exam = "Not examined (telephone)." if r[22] < 0.5 else ""
        plan = _pick(t.plan, r[23])
        out.append((cc, history, exam, plan))
    return out


_KEYBOARD_NEIGHBOURS = {
    "a": "sq",
    "e": "wr",
    "i": "uo",
    "o": "ip",
    "n": "bm",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "h": "gj",
    "l": "k",
    "c": "xv",
    "d": "sf",
    "p": "o",
    "u": "yi",
    "m": "n",
}


def _typo(text: str, rng: np.random.Generator) -> str:
    if len(text) < 4:
        return text
    pos = int(rng.integers(1, len(text) - 1))
    kind = int(rng.integers(0, 4))
    if kind == 0:  # swap
        return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]
    if kind == 1:  # drop
        return text[:pos] + text[pos + 1 :]
    if kind == 2:  # double
        return text[:pos] + text[pos] + text[pos:]
    near = _KEYBOARD_NEIGHBOURS.get(text[pos].lower())
    if not near:
        return text[:pos] + text[pos + 1 :]
    return text[:pos] + near[int(rng.integers(0, len(near)))] + text[pos + 1 :]


def _mess_text(
    texts: list[tuple[str, str, str, str]], rng: np.random.Generator
) -> list[tuple[str, str, str, str]]:
    n = len(texts)
    case = rng.random(n)
    typo_cc = rng.random(n) < 0.06
    typo_h = rng.random(n) < 0.12
    out = []
    for i, (cc, hist, exam, plan) in enumerate(texts):
        if case[i] < 0.08:
            cc = cc.upper()
        elif case[i] < 0.45:
            cc = cc.lower()
        elif case[i] < 0.8:
            cc = cc[:1].upper() + cc[1:]
        if typo_cc[i]:
            cc = _typo(cc, rng)
        if typo_h[i]:
            hist = _typo(hist, rng)
            if rng.random() < 0.3:
                hist = _typo(hist, rng)
        if case[i] > 0.97:
            hist = hist.lower()
        out.append((cc, hist, exam, plan))
    return out


def _patients(
    rng: np.random.Generator,
    n: int,
    female: np.ndarray,
    age_now: np.ndarray,
    end: datetime,
    index_cond: np.ndarray,
) -> list[SyntheticPatient]:
    chinese = rng.random(n) < 0.4
    u = rng.random((n, 16)).tolist()
    mrn_numbers = (rng.choice(90_000_000, size=n, replace=False) + 10_000_000).tolist()
    phone_digits = rng.integers(0, 10**9, size=n).tolist()
    contact_digits = rng.integers(0, 10**9, size=n).tolist()
    birth_offsets = np.floor(age_now * 365.25).astype(int).tolist()
    n_allergies = rng.choice(4, size=n, p=[0.74, 0.19, 0.05, 0.02]).tolist()
    # asthma patients more often aspirin/NSAID sensitive
    asthma = (index_cond == _CODES.index("J45.9")).tolist()
    allergen_idx = rng.choice(len(_ALLERGENS), size=(n, 3), p=_ALLERGEN_P).tolist()
    nid_numbers = rng.permutation(n).tolist()
    end_date = end.date()
    fem = female.tolist()
    ch = chinese.tolist()
    used_emails: set[str] = set()
    patients = []
    for i in range(n):
        r = u[i]
        if ch[i]:
            given = _pick(_ZH_FEMALE if fem[i] else _ZH_MALE, r[0])
            family = _pick(_ZH_FAMILY, r[1])
        else:
            given = _pick(_EN_FEMALE if fem[i] else _EN_MALE, r[0])
            family = _pick(_EN_FAMILY, r[1])
        birth = end_date - timedelta(days=birth_offsets[i])
        d = phone_digits[i]
        phone = (
            f"+44 7{d // 10**6 % 1000:03d} {d % 10**6:06d}"
            if r[2] < 0.6
            else f"07{d // 10**6 % 1000:03d} {d % 10**6:06d}"
        )
        local = f"{given.replace(' ', '').lower()}.{family.replace(chr(39), '').lower()}"
        email = f"{local}@{_pick(_EMAIL_DOMAINS, r[3])}"
        if email in used_emails or r[4] < 0.5:
            email = f"{local}{birth.year % 100:02d}{i % 1000}@{_pick(_EMAIL_DOMAINS, r[3])}"
        used_emails.add(email)
        city, area = _pick(_CITIES, r[5])
        house = 1 + int(r[6] * 180)
        postcode = (
            f"{area}{1 + int(r[7] * 20)} {int(r[8] * 10)}"
            f"{chr(65 + int(r[9] * 26))}{chr(65 + int(r[10] * 26))}"
        )
        flat = f"Flat {1 + int(r[11] * 12)}, " if r[11] < 0.15 else ""
        address = f"{flat}{house} {_pick(_STREETS, r[12])}, {city} {postcode}"
        # unique national id: a bijection of the patient index onto 0..10**7-1
        serial = (nid_numbers[i] * 7919 + 123457) % 10**7
        if ch[i]:  # PRC resident id: region, birth date, sequence, ISO 7064 check digit
            body = f"{110000 + serial // 1000:06d}{birth:%Y%m%d}{serial % 1000:03d}"
            national_id = body + _cn_check_digit(body)
        else:  # UK National Insurance style: the first letter carries the top digit
            national_id = (
                f"{_NI_LETTERS[serial // 10**6]}"
                f"{_NI_LETTERS[int(r[14] * len(_NI_LETTERS))]}"
                f"{serial % 10**6:06d}{'ABCD'[serial % 4]}"
            )
        rel = _pick(_RELATIONS, r[15])
        if ch[i]:
            cname = f"{_pick(_ZH_FAMILY, r[1])} {_pick(_ZH_FEMALE + _ZH_MALE, r[14])}"
        else:
            cname = f"{_pick(_EN_FEMALE + _EN_MALE, r[14])} {family}"
        c = contact_digits[i]
        emergency_contact = f"{cname} ({rel}) 07{c // 10**6 % 1000:03d} {c % 10**6:06d}"
        allergies: list[SyntheticAllergy] = []
        k = n_allergies[i]
        if asthma[i] and k == 0 and r[8] < 0.15:
            allergies.append(SyntheticAllergy("Aspirin", "bronchospasm", "moderate"))
        seen = {a.substance for a in allergies}
        for j in range(k):
            substance, _, reactions, sev_w = _ALLERGENS[allergen_idx[i][j]]
            if substance in seen:
                continue
            seen.add(substance)
            ra = r[(j * 3 + 2) % 16]
            reaction = _pick(reactions, ra)
            if reaction in ("anaphylaxis", "Stevens-Johnson syndrome", "angioedema"):
                severity = "severe"
            else:
                rs = r[(j * 5 + 7) % 16]
                severity = (
                    "mild"
                    if rs < sev_w[0]
                    else ("moderate" if rs < sev_w[0] + sev_w[1] else "severe")
                )
            allergies.append(SyntheticAllergy(substance, reaction, severity))
        patients.append(
            SyntheticPatient(
                key=i + 1,
                mrn=f"MRN{mrn_numbers[i]:08d}",
                given_name=given,
                family_name=family,
                sex="female" if fem[i] else "male",
                birth_date=birth,
                phone=phone,
                email=email,
                address=address,
                national_id=national_id,
                emergency_contact=emergency_contact,
                allergies=tuple(allergies),
            )
        )
    return patients


def _cn_check_digit(body17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(body17, weights, strict=True))
    return "10X98765432"[total % 11]


# --------------------------------------------------------------------------------------------
# Tabular view for the model engine
# --------------------------------------------------------------------------------------------


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
                    if o.unit == CANONICAL_UNITS[o.code]
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
