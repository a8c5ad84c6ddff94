"""A synthetic longitudinal population in MEDS form, for tests and benchmarks (pure Python).

Patients are followed for 1-10 years from a random start between 2010 and 2016. Hidden states
drift year by year with noise and respond to treatment:

* blood pressure rises with age at a patient-specific rate; hypertension (I10) is diagnosed when a
  clinic reading is high (detection is imperfect), and treatment lowers it with variable adherence;
* HbA1c drifts upwards faster with a higher BMI; prediabetes (R73.03) and type 2 diabetes (E11.9)
  are diagnosed when it is *measured* high (it is measured rarely in people not known to be at
  risk), metformin lowers it;
* kidney function declines at a rate driven by blood pressure, HbA1c and age; creatinine (and the
  eGFR computed from it) is measured when a lab panel is ordered; CKD stage 3 (N18.3) is diagnosed
  when eGFR is below 60 on a measurement, diabetic nephropathy (E11.21) when the patient is
  diabetic with albuminuria or CKD;
* heart failure (I50.9) strikes with a hazard that rises with systolic pressure, age, diabetes and
  CKD; NT-proBNP, dyspnoea and oedema appear in the months before, but not for every patient.

Around this are the usual frictions: visits at irregular intervals, missed visits, loss to
follow-up, lab panels ordered only sometimes, unrelated acute problems (colds, back pain, reflux,
anxiety), diagnoses re-coded only on some later visits, and most patients never progressing.

The outcome depends on the *current* hidden levels, which last values and recent trends expose:
a count/recency baseline gets a fair chance here, so nothing makes the sequence models win by
construction. The held-out check of the product is on data nobody here generated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

START_YEARS = (2010, 2016)
DAY = np.timedelta64(1, "D")

SBP, DBP = "LOINC/8480-6", "LOINC/8462-4"
HBA1C, GLUCOSE = "LOINC/4548-4", "LOINC/2345-7"
CREATININE, EGFR = "LOINC/2160-0", "LOINC/33914-3"
ALBUMIN, NTPROBNP = "LOINC/14959-1", "LOINC/33762-6"
WEIGHT, BMI, HEART_RATE = "LOINC/29463-7", "LOINC/39156-5", "LOINC/8867-4"
HYPERTENSION, PREDIABETES, DIABETES = "ICD10/I10", "ICD10/R73.03", "ICD10/E11.9"
NEPHROPATHY, CKD, HEART_FAILURE = "ICD10/E11.21", "ICD10/N18.3", "ICD10/I50.9"
OBESITY, LIPIDS = "ICD10/E66.9", "ICD10/E78.5"
ACE_INHIBITOR, CALCIUM_BLOCKER = "RxNorm/29046", "RxNorm/17767"
METFORMIN, DIURETIC, STATIN = "RxNorm/6809", "RxNorm/4603", "RxNorm/83367"
ACUTE_PROBLEMS = ("ICD10/J06.9", "ICD10/M54.5", "ICD10/K21.9", "ICD10/F41.1", "ICD10/R51.9")
DYSPNOEA, OEDEMA = "ICD10/R06.0", "ICD10/R60.0"

# Outcome code sets of the three standard tasks (prefixes; see labels.TaskDefinition).
TASK_CODES = {
    "ckd": ("ICD10/N18",),
    "heart_failure": ("ICD10/I50",),
    "diabetes": ("ICD10/E11",),
}


@dataclass
class _Patient:
    """Hidden state of one patient, updated day by day between visits."""

    sex: str
    age: float
    bmi: float
    sbp: float
    sbp_rate: float
    hba1c: float
    hba1c_rate: float
    egfr: float
    egfr_rate: float
    adherence: float
    diagnosed: dict[str, bool]
    treated: set[str]
    hf: bool = False
    hf_onset_days: float | None = None


def _egfr_to_creatinine(egfr: float, age: float, female: bool) -> float:
    """Inverse of the 2021 CKD-EPI equation (race-free) for creatinine above the knee."""
    kappa, alpha = (0.7, -1.2) if female else (0.9, -1.2)
    base = egfr / (142 * 0.9938**age * (1.012 if female else 1.0))
    return kappa * base ** (1 / alpha)


def _creatinine_to_egfr(creatinine: float, age: float, female: bool) -> float:
    kappa = 0.7 if female else 0.9
    alpha = -0.241 if female else -0.302
    ratio = creatinine / kappa
    value = 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.2 * 0.9938**age
    return value * (1.012 if female else 1.0)


def _new_patient(rng: np.random.Generator) -> _Patient:
    age = float(rng.uniform(30, 80))
    bmi = float(np.clip(rng.normal(28, 5), 17, 50))
    return _Patient(
        sex=str(rng.choice(["F", "M"])),
        age=age,
        bmi=bmi,
        sbp=float(rng.normal(118 + 0.45 * (age - 40) + 0.4 * (bmi - 27), 12)),
        sbp_rate=float(rng.normal(0.8, 1.6)),
        hba1c=float(np.clip(rng.normal(5.3 + 0.02 * (bmi - 27) + 0.006 * (age - 50), 0.4), 4.3, 9)),
        hba1c_rate=float(max(0.0, rng.normal(0.04 + 0.012 * (bmi - 27), 0.07))),
        egfr=float(np.clip(rng.normal(108 - 0.8 * (age - 30), 12), 35, 130)),
        egfr_rate=float(rng.normal(-0.6, 0.6)),
        adherence=float(rng.beta(4, 2)),
        diagnosed={},
        treated=set(),
    )


def _advance(p: _Patient, days: float, rng: np.random.Generator) -> None:
    """Move the hidden state forward by ``days``: drift, noise, treatment, complications."""
    years = days / 365.25
    p.age += years
    on_bp = bool(p.treated & {ACE_INHIBITOR, CALCIUM_BLOCKER})
    p.sbp += p.sbp_rate * years + rng.normal(0, 2.5 * math.sqrt(years))
    p.hba1c += p.hba1c_rate * years + rng.normal(0, 0.12 * math.sqrt(years))
    if METFORMIN in p.treated:
        p.hba1c -= 0.25 * p.adherence * years
    p.hba1c = float(np.clip(p.hba1c, 4.2, 13))
    p.bmi = float(np.clip(p.bmi + rng.normal(0.1, 0.5) * years, 16, 55))
    effective_sbp = p.sbp - (12 * p.adherence if on_bp else 0)
    decline = (
        p.egfr_rate
        - 0.05 * max(0.0, effective_sbp - 130)
        - 0.9 * max(0.0, p.hba1c - 6.5)
        - 0.02 * max(0.0, p.age - 60)
    )
    if ACE_INHIBITOR in p.treated:
        decline *= 1 - 0.3 * p.adherence
    p.egfr = float(
        np.clip(p.egfr + decline * years + rng.normal(0, 1.2 * math.sqrt(years)), 5, 140)
    )
    if not p.hf:
        hazard = math.exp(
            -4.9
            + 0.035 * (effective_sbp - 130)
            + 0.045 * (p.age - 60)
            + 0.35 * max(0.0, p.hba1c - 6.0)
            + 0.02 * max(0.0, 60 - p.egfr)
            + 0.03 * (p.bmi - 28)
        )
        if rng.random() < 1 - math.exp(-hazard * years):
            p.hf = True
            p.hf_onset_days = 0.0
    elif p.hf_onset_days is not None:
        p.hf_onset_days += days


def generate_events(n_subjects: int, *, seed: int = 0, first_subject_id: int = 1) -> pd.DataFrame:
    """A MEDS events frame (``subject_id``, ``time``, ``code``, ``numeric_value``, ``text_value``)."""
    root = np.random.default_rng(seed)
    rows: list[tuple[int, np.datetime64 | None, str, float, str | None]] = []
    for offset in range(n_subjects):
        subject = first_subject_id + offset
        rng = np.random.default_rng(root.integers(0, 2**63))
        rows.extend(_simulate(subject, rng))
    frame = pd.DataFrame(
        rows, columns=["subject_id", "time", "code", "numeric_value", "text_value"]
    )
    frame["time"] = pd.to_datetime(frame["time"]).astype("datetime64[us]")
    frame["numeric_value"] = frame["numeric_value"].astype(float)
    return frame


def _simulate(subject: int, rng: np.random.Generator) -> list[tuple[Any, ...]]:
    p = _new_patient(rng)
    start = np.datetime64(f"{rng.integers(*START_YEARS)}-01-01") + int(rng.integers(0, 365)) * DAY
    birth = start - int(p.age * 365.25) * DAY
    follow_years = float(rng.uniform(1.0, 10.0))
    out: list[tuple[Any, ...]] = [
        (subject, None, f"GENDER/{p.sex}", math.nan, None),
        (subject, birth, "MEDS_BIRTH", math.nan, None),
    ]
    # Prevalent conditions at the first visit are known history, recorded then.
    t = 0.0
    visit_gap = float(rng.uniform(90, 240))  # this patient's habitual interval, days
    first = True
    while t <= follow_years * 365.25:
        when = start + int(t) * DAY + np.timedelta64(int(rng.integers(8, 18)), "h")
        symptomatic = p.hf and p.hf_onset_days is not None and p.hf_onset_days > 20
        emergency = symptomatic and rng.random() < 0.25
        missed = not first and not symptomatic and rng.random() < 0.18
        if not missed:
            out.extend(_visit(subject, when, p, rng, first=first, emergency=emergency))
            first = False
        gap = rng.gamma(4.0, visit_gap / 4.0)
        if p.diagnosed.get(DIABETES) or p.diagnosed.get(HEART_FAILURE) or p.diagnosed.get(CKD):
            gap *= 0.7  # chronic disease: seen more often
        gap = float(np.clip(gap, 14, 720))
        _advance(p, gap, rng)
        t += gap
    return out


def _visit(
    subject: int,
    when: np.datetime64,
    p: _Patient,
    rng: np.random.Generator,
    *,
    first: bool,
    emergency: bool,
) -> list[tuple[Any, ...]]:
    female = p.sex == "F"
    rows: list[tuple[Any, ...]] = [
        (subject, when, "VISIT/emergency" if emergency else "VISIT/outpatient", math.nan, None)
    ]

    def measure(code: str, value: float, digits: int = 1) -> None:
        rows.append((subject, when, code, round(float(value), digits), None))

    def diagnose(code: str, prob: float = 1.0) -> None:
        if not p.diagnosed.get(code) and rng.random() < prob:
            p.diagnosed[code] = True
            rows.append((subject, when, code, math.nan, None))
        elif p.diagnosed.get(code) and rng.random() < 0.55:  # problem list re-coded at some visits
            rows.append((subject, when, code, math.nan, None))

    on_bp = bool(p.treated & {ACE_INHIBITOR, CALCIUM_BLOCKER})
    sbp = p.sbp - (12 * p.adherence if on_bp else 0) + rng.normal(0, 8)
    if p.hf:
        sbp -= 5
    measure(SBP, sbp, 0)
    measure(DBP, 0.55 * sbp + rng.normal(8, 6), 0)
    measure(HEART_RATE, rng.normal(74 + (8 if p.hf else 0), 10), 0)
    if rng.random() < 0.7:
        weight = p.bmi * (1.62 if female else 1.76) ** 2 + (3 if p.hf else 0)
        measure(WEIGHT, weight + rng.normal(0, 1.0))
        measure(BMI, p.bmi + rng.normal(0, 0.3))
    at_risk = bool(p.diagnosed.get(PREDIABETES) or p.diagnosed.get(DIABETES) or p.bmi > 30)
    if rng.random() < (0.75 if at_risk else 0.22):
        hba1c = p.hba1c + rng.normal(0, 0.15)
        measure(HBA1C, hba1c)
        measure(GLUCOSE, 18 * hba1c - 5 + rng.normal(0, 12), 0)
        if hba1c >= 6.5 and rng.random() < 0.8:
            diagnose(DIABETES)
        elif 5.7 <= hba1c < 6.5 and rng.random() < 0.6:
            diagnose(PREDIABETES)
    panel_prob = 0.65 if (p.diagnosed.get(HYPERTENSION) or p.diagnosed.get(DIABETES)) else 0.3
    if rng.random() < panel_prob:
        egfr_measured = p.egfr * math.exp(rng.normal(0, 0.06))
        measure(CREATININE, _egfr_to_creatinine(egfr_measured, p.age, female), 2)
        measure(EGFR, egfr_measured, 0)
        if egfr_measured < 60 and rng.random() < 0.7:
            diagnose(CKD)
        if p.diagnosed.get(DIABETES) and rng.random() < 0.5:
            albumin = math.exp(rng.normal(2.5 + 0.04 * max(0.0, 75 - p.egfr), 0.8))
            measure(ALBUMIN, albumin, 0)
            if (albumin > 30 or p.diagnosed.get(CKD)) and rng.random() < 0.5:
                diagnose(NEPHROPATHY)
    if sbp >= 140 and rng.random() < (0.6 if not first else 0.4):
        diagnose(HYPERTENSION)
    if p.diagnosed.get(HYPERTENSION) and not on_bp and rng.random() < 0.7:
        p.treated.add(ACE_INHIBITOR if rng.random() < 0.7 else CALCIUM_BLOCKER)
    if p.diagnosed.get(DIABETES) and METFORMIN not in p.treated and rng.random() < 0.8:
        p.treated.add(METFORMIN)
    if p.bmi > 30 and rng.random() < 0.15:
        diagnose(OBESITY)
    if first and rng.random() < 0.3:
        diagnose(LIPIDS)
        p.treated.add(STATIN)
    if p.hf and p.hf_onset_days is not None:
        # The months before the diagnosis: breathlessness, oedema, a raised NT-proBNP (not always).
        if rng.random() < 0.5:
            rows.append((subject, when, DYSPNOEA, math.nan, None))
        if rng.random() < 0.3:
            rows.append((subject, when, OEDEMA, math.nan, None))
        if rng.random() < 0.35:
            measure(NTPROBNP, math.exp(rng.normal(6.5 + p.hf_onset_days / 400, 0.7)), 0)
        if p.hf_onset_days > 30 and rng.random() < (0.8 if emergency else 0.35):
            diagnose(HEART_FAILURE)
            p.treated.add(DIURETIC)
    elif rng.random() < 0.03:
        measure(NTPROBNP, math.exp(rng.normal(4.3, 0.8)), 0)
    if rng.random() < 0.25:
        rows.append((subject, when, str(rng.choice(ACUTE_PROBLEMS)), math.nan, None))
    if rng.random() < 0.04:
        rows.append((subject, when, DYSPNOEA, math.nan, None))
    for drug in sorted(p.treated):
        if rng.random() < 0.6 * (0.5 + p.adherence / 2):
            rows.append((subject, when, drug, math.nan, None))
    return rows


def egfr_from_creatinine(creatinine: float, age: float, female: bool) -> float:
    """2021 CKD-EPI eGFR (mL/min/1.73 m2); exposed for tests of the generator's lab coherence."""
    return _creatinine_to_egfr(creatinine, age, female)
