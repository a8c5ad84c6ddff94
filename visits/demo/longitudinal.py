"""Patients followed over years: chronic conditions that progress, for the forecast models.

The cross-sectional demo (:mod:`~visits.demo.generator`) mostly sees a patient once or twice in two
years. This cohort is followed for 1-10 years with visits at irregular intervals, and a hidden
state drifts year by year with noise and responds to treatment:

* systolic pressure rises with age at a patient-specific rate; hypertension (I10) is diagnosed
  when a clinic reading is high (detection is imperfect), and treatment lowers it with variable
  adherence;
* HbA1c drifts upwards faster with a higher BMI; impaired glucose tolerance (R73.0) and type 2
  diabetes (E11.9) are diagnosed when it is *measured* high (rarely measured in people not known
  to be at risk); treatment lowers it;
* kidney function declines at a rate driven by blood pressure, HbA1c and age; creatinine is
  measured when a panel is ordered, and CKD stage 3 (N18.3) diagnosed when the eGFR computed from
  it is below 60; diabetic kidney disease (E11.2) follows in some diabetics with CKD;
* heart failure (I50.9) strikes with a hazard that rises with systolic pressure, age, HbA1c, CKD
  and BMI; breathlessness (R06.0), oedema (R60.0), weight gain and a faster pulse come in the
  months before the diagnosis, but not for every patient.

Around this: missed visits, loss to follow-up, labs ordered only sometimes, unrelated acute
problems (colds, back pain, reflux, anxiety, headache), chronic diagnoses re-coded only on some
visits, and most patients never progressing. The outcome depends on the *current* hidden levels,
which the last measured values and recent trends expose: a count/last-value baseline gets a fair
chance, so nothing here makes a sequence model win by construction. The same dynamics as the
engine's test generator (``predictions.ml.timeline.synthetic``), written as visits the app can
import (catalogue codes, WHO ICD-10, free text), since visits may not import the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from visits.catalogue import BY_CODE

from .generator import VITAL_MEASURED_P
from .people import draw_patients
from .population import SyntheticObservation, SyntheticPatient, SyntheticVisit
from .texts import ZH_SHARE
from .texts_cohort import DRAWS, cohort_note

SBP, DBP, HEART_RATE = "8480-6", "8462-4", "8867-4"
TEMPERATURE, RESPIRATION, SPO2 = "8310-5", "9279-1", "2708-6"
WEIGHT, HEIGHT, BMI = "29463-7", "8302-2", "39156-5"
HBA1C, GLUCOSE, CREATININE, POTASSIUM = "4548-4", "2345-7", "2160-0", "2823-3"
HYPERTENSION, PREDIABETES, DIABETES = "I10", "R73.0", "E11.9"
NEPHROPATHY, CKD, HEART_FAILURE = "E11.2", "N18.3", "I50.9"
OBESITY, LIPIDS = "E66.9", "E78.5"
DYSPNOEA, OEDEMA = "R06.0", "R60.0"
# The unrelated acute problems a followed-up patient is also seen for (drawn in this order).
ACUTE = ("J06.9", "M54.5", "K21.9", "F41.1", "R51")
# Which chronic problem a routine follow-up visit is "about" (the most serious one known).
SEVERITY_ORDER = (HEART_FAILURE, CKD, NEPHROPATHY, DIABETES, HYPERTENSION, PREDIABETES, LIPIDS)
ROUTINE = "Z00.0"  # general examination: a check-up with no known chronic problem
# How the visits are written, in English and in Chinese for the share of patients the
# cross-sectional demo also writes in Chinese (texts.ZH_SHARE): visits.demo.texts_cohort (a cohort
# written only in English, or in two fixed sentences per problem, taught the model those strings).
TREATMENTS_ZH = {"bp": "降压药", "diuretic": "利尿剂", "metformin": "二甲双胍", "statin": "他汀"}


@dataclass
class _State:
    """Hidden state of one patient, moved forward between visits."""

    female: bool
    age: float
    bmi: float
    height: float
    sbp: float
    sbp_rate: float
    hba1c: float
    hba1c_rate: float
    egfr: float
    egfr_rate: float
    adherence: float
    diagnosed: set[str] = field(default_factory=set)
    treated: set[str] = field(default_factory=set)  # "bp", "metformin", "statin", "diuretic"
    hf_days: float | None = None  # days since heart failure began (None: not yet)


def _egfr_to_creatinine(egfr: float, age: float, female: bool) -> float:
    """Inverse of the 2021 CKD-EPI equation (race-free), creatinine above the knee."""
    kappa = 0.7 if female else 0.9
    base = egfr / (142 * 0.9938**age * (1.012 if female else 1.0))
    return float(kappa * base ** (1 / -1.2))


def egfr_from_creatinine(creatinine: float, age: float, female: bool) -> float:
    """2021 CKD-EPI eGFR (mL/min/1.73 m2) from creatinine in mg/dL."""
    kappa = 0.7 if female else 0.9
    alpha = -0.241 if female else -0.302
    ratio = creatinine / kappa
    value = 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.2 * 0.9938**age
    return float(value * (1.012 if female else 1.0))


def _new_state(rng: np.random.Generator, female: bool, age: float) -> _State:
    bmi = float(np.clip(rng.normal(28, 5), 17, 50))
    return _State(
        female=female,
        age=age,
        bmi=bmi,
        height=float(np.clip(rng.normal(163 if female else 176.5, 7), 145, 200)),
        sbp=float(rng.normal(118 + 0.45 * (age - 40) + 0.4 * (bmi - 27), 12)),
        sbp_rate=float(rng.normal(0.8, 1.6)),
        hba1c=float(np.clip(rng.normal(5.3 + 0.02 * (bmi - 27) + 0.006 * (age - 50), 0.4), 4.3, 9)),
        hba1c_rate=float(max(0.0, rng.normal(0.04 + 0.012 * (bmi - 27), 0.07))),
        egfr=float(np.clip(rng.normal(108 - 0.8 * (age - 30), 12), 35, 130)),
        egfr_rate=float(rng.normal(-0.6, 0.6)),
        adherence=float(rng.beta(4, 2)),
    )


def _advance(p: _State, days: float, rng: np.random.Generator) -> None:
    years = days / 365.25
    p.age += years
    on_bp = "bp" in p.treated
    p.sbp += p.sbp_rate * years + rng.normal(0, 2.5 * math.sqrt(years))
    p.hba1c += p.hba1c_rate * years + rng.normal(0, 0.12 * math.sqrt(years))
    if "metformin" in p.treated:
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
    if on_bp:
        decline *= 1 - 0.3 * p.adherence
    p.egfr = float(
        np.clip(p.egfr + decline * years + rng.normal(0, 1.2 * math.sqrt(years)), 8, 140)
    )
    if p.hf_days is None:
        hazard = math.exp(
            -4.9
            + 0.035 * (effective_sbp - 130)
            + 0.045 * (p.age - 60)
            + 0.35 * max(0.0, p.hba1c - 6.0)
            + 0.02 * max(0.0, 60 - p.egfr)
            + 0.03 * (p.bmi - 28)
        )
        if rng.random() < 1 - math.exp(-hazard * years):
            p.hf_days = 0.0
    else:
        p.hf_days += days


@dataclass
class _Visit:
    start: datetime
    emergency: bool
    observations: list[tuple[str, float]]
    new: list[str]  # diagnoses made at this visit
    recoded: list[str]  # known chronic problems coded again
    symptoms: list[str]
    acute: str | None


def _visit(
    p: _State, rng: np.random.Generator, start: datetime, *, first: bool, emergency: bool
) -> _Visit:
    visit = _Visit(start, emergency, [], [], [], [], None)

    def measure(code: str, value: float, digits: int = 1) -> None:
        visit.observations.append((code, round(float(value), digits)))

    def diagnose(code: str, prob: float = 1.0) -> None:
        if code not in p.diagnosed:
            if rng.random() < prob:
                p.diagnosed.add(code)
                visit.new.append(code)
        elif rng.random() < 0.55:  # the problem list is re-coded at some visits only
            visit.recoded.append(code)

    on_bp = "bp" in p.treated
    hf = p.hf_days is not None
    sbp = float(np.clip(p.sbp - (12 * p.adherence if on_bp else 0) + rng.normal(0, 8), 85, 225))
    if hf:
        sbp -= 5
    measure(SBP, sbp, 0)
    measure(DBP, np.clip(0.55 * sbp + rng.normal(8, 6), 45, sbp - 20), 0)
    measure(HEART_RATE, np.clip(rng.normal(74 + (8 if hf else 0), 10), 45, 150), 0)
    if rng.random() < 0.7:
        weight = p.bmi * (p.height / 100) ** 2 + (3 if hf else 0) + rng.normal(0, 1.0)
        measure(WEIGHT, weight)
        measure(BMI, weight / (p.height / 100) ** 2)
    at_risk = bool({PREDIABETES, DIABETES} & p.diagnosed) or p.bmi > 30
    if rng.random() < (0.75 if at_risk else 0.22):
        hba1c = p.hba1c + rng.normal(0, 0.15)
        measure(HBA1C, hba1c)
        measure(GLUCOSE, np.clip(18 * hba1c - 5 + rng.normal(0, 12), 60, 450), 0)
        if hba1c >= 6.5 and rng.random() < 0.8:
            diagnose(DIABETES)
        elif 5.7 <= hba1c < 6.5 and rng.random() < 0.6 and DIABETES not in p.diagnosed:
            diagnose(PREDIABETES)
    panel = 0.65 if {HYPERTENSION, DIABETES} & p.diagnosed else 0.3
    if rng.random() < panel:
        egfr = p.egfr * math.exp(rng.normal(0, 0.06))
        measure(CREATININE, min(_egfr_to_creatinine(egfr, p.age, p.female), 12.0), 2)
        measure(POTASSIUM, rng.normal(4.3 + 0.01 * max(0.0, 60 - egfr), 0.35), 1)
        if egfr < 60 and rng.random() < 0.7:
            diagnose(CKD)
        if DIABETES in p.diagnosed and CKD in p.diagnosed and rng.random() < 0.3:
            diagnose(NEPHROPATHY)
    if sbp >= 140 and rng.random() < (0.4 if first else 0.6):
        diagnose(HYPERTENSION)
    if HYPERTENSION in p.diagnosed and not on_bp and rng.random() < 0.7:
        p.treated.add("bp")
    if DIABETES in p.diagnosed and rng.random() < 0.8:
        p.treated.add("metformin")
    if p.bmi > 30 and rng.random() < 0.15:
        diagnose(OBESITY)
    if first and rng.random() < 0.3:
        diagnose(LIPIDS)
        p.treated.add("statin")
    if hf and p.hf_days is not None:
        # The months before the diagnosis: breathlessness and oedema (not for everyone).
        if rng.random() < 0.5:
            visit.symptoms.append(DYSPNOEA)
        if rng.random() < 0.3:
            visit.symptoms.append(OEDEMA)
        if p.hf_days > 30 and rng.random() < (0.8 if emergency else 0.35):
            diagnose(HEART_FAILURE)
            p.treated.add("diuretic")
    if rng.random() < 0.25:
        visit.acute = str(rng.choice(list(ACUTE)))
    elif rng.random() < 0.04:
        visit.symptoms.append(DYSPNOEA)
    return visit


def _record_triage_vitals(visit: _Visit, p: _State, rng: np.random.Generator) -> None:
    """Temperature, respiratory rate and oxygen saturation, recorded as often as the
    cross-sectional demo's clinic and emergency visits record them (VITAL_MEASURED_P). Drawn from
    their own stream, after the visit: the course of the disease is the one drawn without them.
    Without them the model learnt "temperature recorded, so not a followed-up patient's problem"
    (every front-door visit records one)."""
    measured = VITAL_MEASURED_P[2 if visit.emergency else 0]
    hf = p.hf_days is not None
    draws = rng.random(3)
    noise = rng.standard_normal(3)
    sore_throat = visit.acute == "J06.9"
    if draws[0] < measured[0]:
        temperature = 36.8 + (0.5 if sore_throat else 0.0) + 0.3 * noise[0]
        visit.observations.append((TEMPERATURE, round(float(temperature), 1)))
    if draws[1] < measured[2]:
        rate = np.clip(16.0 + (3.0 if hf else 0.0) + 2.0 * noise[1], 10, 32)
        visit.observations.append((RESPIRATION, round(float(rate))))
    if draws[2] < measured[5]:
        saturation = np.clip(97.6 - (2.0 if hf else 0.0) + 1.2 * noise[2], 86, 100)
        visit.observations.append((SPO2, round(float(saturation))))


def _texts(
    visit: _Visit, primary: str, p: _State, u: list[float], *, chinese: bool
) -> tuple[str, str, str, str]:
    """Complaint, history, examination and plan of one visit, from ``DRAWS`` uniforms ``u``."""
    acute = visit.acute is not None and primary == visit.acute
    complaint, history = cohort_note(
        primary, acute=acute, chinese=chinese, age=int(p.age), female=p.female, u=u
    )
    if chinese:
        if DYSPNOEA in visit.symptoms:
            history += "活动后气短。"
        if OEDEMA in visit.symptoms:
            history += "傍晚踝部水肿。"
        treatments_zh = [TREATMENTS_ZH[t] for t in sorted(p.treated)]
        plan = "继续" + "、".join(treatments_zh) + "。" if treatments_zh else "生活方式指导。"
        return complaint, history, "双肺呼吸音清，心音正常。", plan
    if DYSPNOEA in visit.symptoms:
        history += " Short of breath on exertion."
    if OEDEMA in visit.symptoms:
        history += " Ankles swollen in the evening."
    treatments = sorted(p.treated)
    plan = "Continue " + ", ".join(treatments) + "." if treatments else "Lifestyle advice."
    return complaint, history, "Chest clear, heart sounds normal.", plan


def _diagnoses(visit: _Visit, p: _State) -> tuple[str, tuple[str, ...]]:
    """(primary, secondaries): the acute problem, else the most serious chronic one followed."""
    coded = list(dict.fromkeys(visit.new + visit.recoded))
    if visit.acute is not None:
        primary = visit.acute
    else:
        known = [c for c in SEVERITY_ORDER if c in coded or c in p.diagnosed]
        primary = known[0] if known else ROUTINE  # a follow-up is coded as its reason
    secondaries = [c for c in coded + visit.symptoms if c != primary]
    return primary, tuple(dict.fromkeys(secondaries))


def generate_longitudinal(
    *, n_patients: int, seed: int, end: datetime, first_key: int, first_visit_key: int
) -> tuple[list[SyntheticPatient], list[SyntheticVisit]]:
    """``n_patients`` followed for up to ten years before ``end`` (aware), keys from ``first_key``.

    Patients get MRNs ``MRN0xxxxxxx`` (the cross-sectional demo draws ``MRN1...`` and above) and
    ``QQ`` national ids, so both cohorts can be imported together.
    """
    rng = np.random.default_rng([seed, 14])
    female = rng.random(n_patients) < 0.52
    start_age = rng.uniform(30, 80, n_patients)
    follow_years = rng.uniform(1.0, 10.0, n_patients)
    # Follow-up ends at ``end`` for most, earlier for those lost to follow-up.
    lost = rng.random(n_patients) < 0.2
    stop_years_before_end = np.where(lost, rng.uniform(0.2, 3.0, n_patients), 0.0)
    start_years_before_end = np.minimum(follow_years + stop_years_before_end, 10.5)
    age_now = start_age + start_years_before_end
    people = draw_patients(
        rng, n_patients, female, age_now, end, np.zeros(n_patients, dtype=np.int64)
    )
    # Language and wording draw from their own stream: the cohort's course is as it was.
    words = np.random.default_rng([seed, 14, 1])
    chinese = words.random(n_patients) < ZH_SHARE
    vitals_rng = np.random.default_rng([seed, 14, 2])
    patients: list[SyntheticPatient] = []
    visits: list[SyntheticVisit] = []
    for i, person in enumerate(people):
        key = first_key + i
        serial = i + 1  # "QQ" ids: a prefix the cross-sectional demo never draws
        patients.append(
            replace(
                person,
                key=key,
                mrn=f"MRN0{(7_919 * (i + 1)) % 10_000_000:07d}",
                national_id=f"QQ{serial:07d}C",
            )
        )
        state = _new_state(rng, bool(female[i]), float(start_age[i]))
        begin = end - timedelta(days=float(start_years_before_end[i]) * 365.25)
        stop = end - timedelta(days=float(stop_years_before_end[i]) * 365.25)
        habitual_gap = float(rng.uniform(90, 240))
        t, first = begin, True
        while t < stop:
            symptomatic = state.hf_days is not None and state.hf_days > 20
            emergency = symptomatic and rng.random() < 0.25
            missed = not first and not symptomatic and rng.random() < 0.18
            if not missed:
                start = (t.replace(hour=0, minute=0, second=0, microsecond=0)) + timedelta(
                    hours=int(rng.integers(8, 17)), minutes=int(rng.integers(0, 4)) * 15
                )
                if start < end - timedelta(days=3):
                    v = _visit(state, rng, start, first=first, emergency=emergency)
                    _record_triage_vitals(v, state, vitals_rng)
                    first = False
                    primary, secondaries = _diagnoses(v, state)
                    draws = words.random(DRAWS).tolist()
                    complaint, history, exam, plan = _texts(
                        v, primary, state, draws, chinese=bool(chinese[i])
                    )
                    visits.append(
                        SyntheticVisit(
                            key=0,  # numbered below, in time order
                            patient_key=key,
                            start=start,
                            end=start + timedelta(minutes=int(rng.integers(10, 35))),
                            visit_type="emergency" if emergency else "outpatient",
                            chief_complaint=complaint,
                            history=history,
                            physical_exam=exam,
                            plan=plan,
                            observations=tuple(
                                SyntheticObservation(code, value, _UNITS[code])
                                for code, value in v.observations
                            ),
                            primary_diagnosis=primary,
                            secondary_diagnoses=secondaries,
                        )
                    )
            gap = rng.gamma(4.0, habitual_gap / 4.0)
            if {DIABETES, HEART_FAILURE, CKD} & state.diagnosed:
                gap *= 0.7  # chronic disease: seen more often
            gap = float(np.clip(gap, 14, 720))
            _advance(state, gap, rng)
            t += timedelta(days=gap)
    visits.sort(key=lambda v: (v.start, v.patient_key))
    return patients, [replace(v, key=first_visit_key + n) for n, v in enumerate(visits)]


_UNITS = {
    code: BY_CODE[code].unit
    for code in (
        SBP,
        DBP,
        HEART_RATE,
        TEMPERATURE,
        RESPIRATION,
        SPO2,
        WEIGHT,
        HEIGHT,
        BMI,
        HBA1C,
        GLUCOSE,
        CREATININE,
        POTASSIUM,
    )
}
