"""The ObservationDefinition catalogue MedAI ships with: LOINC codes, UCUM units and ranges.

Ranges are for adults. ``plausible`` bounds reject impossible values (a typo, a wrong unit);
``normal`` and ``critical`` bounds only flag. ``None`` means "no bound on that side".
Critical thresholds follow common hospital critical-value lists (e.g. SpO2 < 88 %, K+ > 6.5).
"""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[float | None, float | None]


@dataclass(frozen=True)
class Definition:
    code: str
    display: str
    category: str  # "vital" | "lab"
    unit: str  # canonical UCUM unit
    plausible: Range
    normal: Range
    critical: Range
    decimals: int = 1
    alternative_units: tuple[str, ...] = ()


VITALS = "vital"
LAB = "lab"

CATALOGUE: tuple[Definition, ...] = (
    Definition(
        "8310-5",
        "Body temperature",
        VITALS,
        "Cel",
        (25, 45),
        (36.1, 37.5),
        (35.0, 40.0),
        alternative_units=("[degF]",),
    ),
    Definition("8867-4", "Heart rate", VITALS, "/min", (20, 250), (60, 100), (40, 130), decimals=0),
    Definition(
        "9279-1", "Respiratory rate", VITALS, "/min", (4, 70), (12, 20), (8, 30), decimals=0
    ),
    Definition(
        "8480-6",
        "Systolic blood pressure",
        VITALS,
        "mm[Hg]",
        (50, 300),
        (90, 139),
        (80, 180),
        decimals=0,
    ),
    Definition(
        "8462-4",
        "Diastolic blood pressure",
        VITALS,
        "mm[Hg]",
        (20, 200),
        (60, 89),
        (40, 120),
        decimals=0,
    ),
    Definition(
        "2708-6", "Oxygen saturation", VITALS, "%", (50, 100), (95, 100), (88, None), decimals=0
    ),
    Definition(
        "29463-7",
        "Body weight",
        VITALS,
        "kg",
        (0.5, 350),
        (None, None),
        (None, None),
        alternative_units=("[lb_av]",),
    ),
    Definition(
        "8302-2", "Body height", VITALS, "cm", (40, 250), (None, None), (None, None), decimals=0
    ),
    Definition("39156-5", "Body mass index", VITALS, "kg/m2", (8, 90), (18.5, 24.9), (None, None)),
    Definition(
        "2345-7",
        "Glucose",
        LAB,
        "mg/dL",
        (10, 2000),
        (70, 99),
        (40, 400),
        decimals=0,
        alternative_units=("mmol/L",),
    ),
    Definition(
        "2093-3",
        "Total cholesterol",
        LAB,
        "mg/dL",
        (30, 1000),
        (100, 199),
        (None, None),
        decimals=0,
        alternative_units=("mmol/L",),
    ),
    Definition(
        "6690-2", "White blood cell count", LAB, "10*3/uL", (0.1, 500), (4.0, 11.0), (2.0, 30.0)
    ),
    Definition("718-7", "Hemoglobin", LAB, "g/dL", (2, 25), (12.0, 17.5), (7.0, 20.0)),
    Definition(
        "2160-0", "Creatinine", LAB, "mg/dL", (0.1, 30), (0.6, 1.3), (None, 10.0), decimals=2
    ),
    Definition("1988-5", "C-reactive protein", LAB, "mg/L", (0, 600), (0, 5), (None, None)),
    Definition("10839-9", "Troponin I", LAB, "ng/mL", (0, 500), (0, 0.04), (None, 0.5), decimals=3),
    Definition("2951-2", "Sodium", LAB, "mmol/L", (90, 200), (135, 145), (120, 160), decimals=0),
    Definition("2823-3", "Potassium", LAB, "mmol/L", (1.0, 10.0), (3.5, 5.1), (2.5, 6.5)),
    Definition("4548-4", "Hemoglobin A1c", LAB, "%", (2, 20), (4.0, 5.6), (None, None)),
    Definition("2524-7", "Lactate", LAB, "mmol/L", (0, 30), (0.5, 2.0), (None, 4.0)),
)

BY_CODE = {d.code: d for d in CATALOGUE}
