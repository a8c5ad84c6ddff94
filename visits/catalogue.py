"""The clinical catalogue: the one source of observation codes, units, decimals and ranges.

Everything else reads it: the ObservationDefinition rows (loaded from here by migrations, shown
read-only in the admin), entry validation, the chart and the visit form, the demo generator, and
the model engine, which receives :func:`plausible_ranges` as data (the app passes it in; the
engine's command line reads the copy shipped as ``predictions/ml/plausible_ranges.json``, written
by ``python -m visits.catalogue``). Conversions between units live beside it in
:mod:`visits.units`. This module imports nothing from Django, so all of them can use it.

Ranges are for adults. ``plausible`` bounds reject impossible values (a typo, a wrong unit);
``normal`` and ``critical`` bounds only flag. ``None`` means "no bound on that side".
Critical thresholds follow common hospital critical-value lists (e.g. SpO2 < 88 %, K+ > 6.5).
"""

from __future__ import annotations

import json
import sys
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
    # Other column names the same quantity goes by in exported tables (lower case), so a CSV given
    # to the engine's command line gets the same impossible-value rule as the app.
    aliases: tuple[str, ...] = ()


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
        aliases=("temperature",),
    ),
    Definition(
        "8867-4",
        "Heart rate",
        VITALS,
        "/min",
        (20, 250),
        (60, 100),
        (40, 130),
        decimals=0,
        # thalach: the UCI heart data's maximum heart rate achieved, a heart rate all the same
        aliases=("heart_rate", "thalach"),
    ),
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
        aliases=("trestbps",),  # resting systolic pressure in the UCI heart data
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
        aliases=("chol",),  # serum cholesterol in the UCI heart data
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
# A code by its display name or an alias, case-insensitively ("heart rate", "temperature").
BY_NAME = {key.casefold(): d.code for d in CATALOGUE for key in (d.display, *d.aliases, d.code)}
VITAL_CODES = tuple(d.code for d in CATALOGUE if d.category == VITALS)
LAB_CODES = tuple(d.code for d in CATALOGUE if d.category == LAB)
OBSERVATION_CODES = VITAL_CODES + LAB_CODES

# The order a clinician reads them in (the chart and the visit form): rate and pressure first.
# Height and BMI are not charted: they describe the patient more than the visit.
VITAL_READING_ORDER = ("8867-4", "8480-6", "8462-4", "8310-5", "9279-1", "2708-6", "29463-7")
LAB_READING_ORDER = (
    "2345-7",
    "4548-4",
    "6690-2",
    "1988-5",
    "718-7",
    "2160-0",
    "2951-2",
    "2823-3",
    "10839-9",
    "2524-7",
    "2093-3",
)

# Age in years is no observation, but the engine rejects impossible ages like impossible vitals.
AGE_PLAUSIBLE: tuple[float, float] = (0.0, 120.0)


def plausible_ranges() -> dict[str, tuple[float, float]]:
    """What the model engine treats as possible, keyed by its column names (without ``obs_``).

    Every code and alias with its plausible range, and ``age``. The engine blanks a value outside
    (a recording error), exactly as entry validation rejects it.
    """
    ranges: dict[str, tuple[float, float]] = {"age": AGE_PLAUSIBLE}
    for d in CATALOGUE:
        low, high = d.plausible
        if low is None or high is None:
            raise ValueError(f"{d.code}: the engine needs a closed plausible range")
        for key in (d.code, *d.aliases):
            ranges[key] = (float(low), float(high))
    return ranges


def plausible_ranges_json() -> str:
    """The engine's shipped copy (``predictions/ml/plausible_ranges.json``), byte for byte."""
    lines = [
        f"  {json.dumps(key)}: {json.dumps(list(bounds))}"
        for key, bounds in sorted(plausible_ranges().items())
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


if __name__ == "__main__":
    # python -m visits.catalogue > predictions/ml/plausible_ranges.json
    sys.stdout.write(plausible_ranges_json())
