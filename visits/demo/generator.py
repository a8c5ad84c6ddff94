"""Draw a demo population: who comes, when, with what, what was measured and what was written.

Everything is drawn from one ``numpy`` generator seeded by ``seed``, in a fixed order: the same
seed (and the same ``end``) gives identical output, which a test pins. Each step below draws for
all visits at once (vectorised), so 10,000 visits take about a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from visits.catalogue import LAB_CODES, OBSERVATION_CODES

from .conditions import CODES, LAB_DEFAULT_P, PREVALENCE, SPECS
from .measurements import (
    BASELINE,
    DRAWN_VITALS,
    GENERATION_BOUNDS,
    fold_into_range,
    recorded_values,
)
from .people import draw_patients
from .population import Population, SyntheticObservation, SyntheticVisit
from .texts import TEXT_DRAWS, free_text, mess_text

VISIT_TYPES = ("outpatient", "inpatient", "emergency", "telemedicine")  # index = drawn type

DAYS = 730  # visits spread over the last two years
DUPLICATE_RATE = 0.006  # visits entered twice
MISCODED_RATE = 0.04  # visits coded as a look-alike condition (real labels are imperfect)
TEXT_STREAM = 17  # the notes' own random stream: numpy.random.default_rng([seed, TEXT_STREAM])


def generate_population(
    *,
    n_visits: int,
    seed: int = 0,
    visits_per_patient: float = 1.6,
    end: datetime | None = None,
    longitudinal_patients: int = 0,
) -> Population:
    """Generate ``n_visits`` visits for about ``n_visits / visits_per_patient`` patients.

    ``end`` (aware) is the latest possible visit start; it defaults to the start of the current
    UTC day, and visits spread over the two years before it. All dates are relative to ``end``,
    so the same seed and ``end`` give identical output.

    ``longitudinal_patients`` adds a cohort followed over up to ten years with chronic conditions
    that progress (:mod:`~visits.demo.longitudinal`), on top of the ``n_visits`` visits.
    """
    if n_visits < 1:
        raise ValueError("n_visits must be positive")
    if visits_per_patient < 1:
        raise ValueError("visits_per_patient must be at least 1")
    end = _default_end() if end is None else end.astimezone(UTC)
    rng = np.random.default_rng(seed)

    n_dup = round(n_visits * DUPLICATE_RATE) if n_visits >= 50 else 0
    n_unique = n_visits - n_dup
    n_pat = max(1, min(n_unique, math.ceil(n_unique / visits_per_patient)))

    body = _draw_bodies(rng, n_pat)
    visits = _draw_visits(rng, body, n_unique)
    secondaries = _draw_secondaries(rng, visits)
    values = _draw_values(rng, body, visits, secondaries)
    measured = _draw_measured(rng, visits, secondaries)
    observations = {
        code: recorded_values(code, values[code], measured[code], rng) for code in OBSERVATION_CODES
    }
    u = rng.random((n_unique, 24))
    # The language and triage wording draw from their own stream: seeded alike, and leaving the
    # main stream (everything drawn after the notes) as it was.
    w = np.random.default_rng([seed, TEXT_STREAM]).random((n_unique, TEXT_DRAWS))
    texts = free_text(
        visits.cond, u, visits.age, visits.female, secondaries, values, measured, visits.atypical, w
    )
    texts = mess_text(texts, rng)
    coded = _miscode(rng, visits.cond, u, secondaries)
    patients = draw_patients(rng, n_pat, body.female, body.age_now, end, body.index_cond)
    duplicated = set(rng.choice(n_unique, size=n_dup, replace=False).tolist()) if n_dup else set()
    assembled = _assemble(visits, observations, texts, coded, secondaries, duplicated, end=end)
    if longitudinal_patients > 0:
        from .longitudinal import generate_longitudinal

        followed, their_visits = generate_longitudinal(
            n_patients=longitudinal_patients,
            seed=seed,
            end=end,
            first_key=len(patients) + 1,
            first_visit_key=len(assembled) + 1,
        )
        patients = [*patients, *followed]
        assembled = [*assembled, *their_visits]
    return Population(patients=tuple(patients), visits=tuple(assembled))


def _default_end() -> datetime:
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


@dataclass(frozen=True)
class _Bodies:
    """Per patient: the index condition, which drives age, sex, body size and recurrence."""

    index_cond: np.ndarray
    age_now: np.ndarray
    female: np.ndarray
    height: np.ndarray
    weight: np.ndarray


def _draw_bodies(rng: np.random.Generator, n_pat: int) -> _Bodies:
    index_cond = rng.choice(len(CODES), size=n_pat, p=PREVALENCE)
    age_mean = np.array([SPECS[c].age[0] for c in CODES])[index_cond]
    age_sd = np.array([SPECS[c].age[1] for c in CODES])[index_cond]
    age_now = np.clip(age_mean + age_sd * rng.standard_normal(n_pat), 20.0, 95.0)
    female = rng.random(n_pat) < np.array([SPECS[c].female for c in CODES])[index_cond]
    height = np.where(
        female, 163.0 + 6.5 * rng.standard_normal(n_pat), 176.5 + 7.0 * rng.standard_normal(n_pat)
    )
    height = np.clip(height, 145.0, 200.0)
    bmi0 = 26.0 + np.array([SPECS[c].weight_shift for c in CODES])[index_cond] / 3.0
    bmi0 = np.clip(bmi0 + 4.2 * rng.standard_normal(n_pat), 16.5, 50.0)
    weight = bmi0 * (height / 100.0) ** 2
    return _Bodies(index_cond, age_now, female, height, weight)


@dataclass(frozen=True)
class _Visits:
    """Per unique visit: whose it is, what it is about, when, what kind, and how severe."""

    patient: np.ndarray  # patient index
    index_cond: np.ndarray  # the patient's index condition
    same: np.ndarray  # about the index condition (else a new one)
    cond: np.ndarray  # the condition the visit is about
    offset_s: np.ndarray  # start, seconds after the window opens
    vtype: np.ndarray  # index into VISIT_TYPES
    duration_min: np.ndarray
    no_end: np.ndarray
    severity: np.ndarray  # 0 = baseline, 1 = the condition's centre
    atypical: np.ndarray
    age: np.ndarray  # years at the visit
    female: np.ndarray


def _draw_visits(rng: np.random.Generator, body: _Bodies, n_unique: int) -> _Visits:
    """One visit per patient; extra visits go preferentially to chronic patients."""
    index_cond = body.index_cond
    n_pat = index_cond.shape[0]
    chronic = np.array([SPECS[c].chronic for c in CODES])
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
    new_cond = rng.choice(len(CODES), size=n_unique, p=PREVALENCE)
    cond = np.where(same, p_idx, new_cond)

    offset_s = rng.random(n_unique) * DAYS * 86400.0
    # visit type per condition
    vt_probs = np.array([SPECS[c].visit_types for c in CODES])
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
    return _Visits(
        patient=visit_patient,
        index_cond=p_idx,
        same=same,
        cond=cond,
        offset_s=offset_s,
        vtype=vtype,
        duration_min=duration_min,
        no_end=no_end,
        severity=severity,
        atypical=atypical,
        age=body.age_now[visit_patient] - (DAYS * 86400.0 - offset_s) / (365.25 * 86400.0),
        female=body.female[visit_patient],
    )


def _draw_secondaries(rng: np.random.Generator, visits: _Visits) -> list[list[int]]:
    """Conditions that come with the visit's own; a chronic index condition is carried along."""
    n_unique = visits.cond.shape[0]
    chronic = np.array([SPECS[c].chronic for c in CODES])
    secondaries: list[list[int]] = [[] for _ in range(n_unique)]
    u_sec = rng.random((n_unique, 4))
    for ci, code in enumerate(CODES):
        idx = np.flatnonzero(visits.cond == ci)
        for j, (sec_code, p) in enumerate(SPECS[code].secondary.items()):
            sj = CODES.index(sec_code)
            for i in idx[u_sec[idx, j % 4] < p]:
                secondaries[i].append(sj)
    # chronic index condition carried as secondary when the visit is about something else
    p_idx = visits.index_cond
    carry = (~visits.same) & chronic[p_idx] & (u_sec[:, 3] < 0.55) & (p_idx != visits.cond)
    for i in np.flatnonzero(carry):
        if p_idx[i] not in secondaries[i]:
            secondaries[i].append(int(p_idx[i]))
    return secondaries


def _draw_values(
    rng: np.random.Generator, body: _Bodies, visits: _Visits, secondaries: list[list[int]]
) -> dict[str, np.ndarray]:
    """Every observation's value for every visit, in canonical units, inside the bounds."""
    n_unique = visits.cond.shape[0]
    cond, severity, age, female = visits.cond, visits.severity, visits.age, visits.female
    has_sec = np.zeros((n_unique, len(CODES)), dtype=bool)
    for i, secs in enumerate(secondaries):
        for s in secs:
            has_sec[i, s] = True

    values: dict[str, np.ndarray] = {}
    for code in DRAWN_VITALS + LAB_CODES:
        kind, base_c, base_sd = BASELINE[code]
        centre = np.full(n_unique, base_c)
        sd = np.full(n_unique, base_sd)
        for ci, c in enumerate(CODES):
            spec = SPECS[c].values.get(code)
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
    values["8480-6"] += 0.45 * (age - 50.0) + 14.0 * has_sec[:, CODES.index("I10")]
    values["8462-4"] += 0.1 * (age - 50.0) + 7.0 * has_sec[:, CODES.index("I10")]
    e11 = has_sec[:, CODES.index("E11.9")]
    values["2345-7"] += e11 * (40.0 + 30.0 * rng.random(n_unique))
    values["4548-4"] += e11 * (1.5 + 1.0 * rng.random(n_unique))
    values["718-7"] += np.where(female, 0.0, 1.5)
    values["2160-0"] *= np.where(female, 1.0, 1.2) * (1.0 + np.clip(age - 60, 0, None) / 80)
    values["2708-6"] -= np.clip(age - 70, 0, None) * 0.05
    values["8867-4"] += 3.0 * np.clip(values["8310-5"] - 37.2, 0, None)  # fever -> tachycardia
    sepsis = cond == CODES.index("A41.9")
    hypo = sepsis & (rng.random(n_unique) < 0.12)
    values["8310-5"] = np.where(hypo, 35.3 + 0.5 * rng.standard_normal(n_unique), values["8310-5"])
    leuko = sepsis & (rng.random(n_unique) < 0.1)
    values["6690-2"] = np.where(leuko, 2.8 + 0.7 * rng.standard_normal(n_unique), values["6690-2"])
    values["8462-4"] = np.minimum(values["8462-4"], values["8480-6"] - 20.0)
    values["29463-7"] = body.weight[visits.patient] * (1.0 + 0.02 * rng.standard_normal(n_unique))
    values["29463-7"] += np.where(cond == CODES.index("I50.9"), 3.0 * severity, 0.0)
    values["8302-2"] = body.height[visits.patient] + rng.normal(0.0, 0.6, n_unique)

    for code in values:
        values[code] = fold_into_range(code, values[code], rng)
    height_m = values["8302-2"] / 100.0
    values["39156-5"] = np.clip(
        values["29463-7"] / (height_m * height_m), *GENERATION_BOUNDS["39156-5"]
    )
    return values


# Probability that each drawn vital is measured, by visit type (rows as VISIT_TYPES).
VITAL_MEASURED_P = np.array(
    [
        [0.93, 0.95, 0.8, 0.93, 0.93, 0.85],  # outpatient
        [0.99, 0.99, 0.97, 0.99, 0.99, 0.98],  # inpatient
        [0.97, 0.99, 0.93, 0.98, 0.98, 0.97],  # emergency
        [0.25, 0.35, 0.1, 0.45, 0.45, 0.2],  # telemedicine
    ]
)
LAB_SCALE = np.array([1.0, 1.05, 1.05, 0.2])  # labs are ordered less on telemedicine visits


def _draw_measured(
    rng: np.random.Generator, visits: _Visits, secondaries: list[list[int]]
) -> dict[str, np.ndarray]:
    """Which observations were measured: vitals by visit type, labs as the condition asks."""
    n_unique = visits.cond.shape[0]
    vtype, cond = visits.vtype, visits.cond
    diabetic = np.array([CODES.index("E11.9") in s for s in secondaries], dtype=bool)
    vital_p = VITAL_MEASURED_P[vtype]
    measured: dict[str, np.ndarray] = {}
    for j, code in enumerate(DRAWN_VITALS):
        measured[code] = rng.random(n_unique) < vital_p[:, j]
    measured["8462-4"] = measured["8480-6"]  # BP is a pair
    measured["29463-7"] = rng.random(n_unique) < np.where(vtype == 3, 0.3, 0.6)
    measured["8302-2"] = measured["29463-7"] & (rng.random(n_unique) < 0.55)
    lab_scale = LAB_SCALE[vtype]
    for code in LAB_CODES:
        p = np.full(n_unique, LAB_DEFAULT_P)
        for ci, c in enumerate(CODES):
            if code in SPECS[c].labs:
                p[cond == ci] = SPECS[c].labs[code]
        if code in ("2345-7", "4548-4"):  # glucose and HbA1c: checked in diabetics
            p = np.where(diabetic, np.maximum(p, 0.5), p)
        measured[code] = rng.random(n_unique) < p * lab_scale
    measured["39156-5"] = measured["8302-2"] & (rng.random(n_unique) < 0.8)
    return measured


def _miscode(
    rng: np.random.Generator, cond: np.ndarray, u: np.ndarray, secondaries: list[list[int]]
) -> np.ndarray:
    """The condition each visit is coded as: a few are coded as a look-alike (a confuser)."""
    coded = cond.copy()
    for i in np.flatnonzero(rng.random(cond.shape[0]) < MISCODED_RATE).tolist():
        confusers = SPECS[CODES[cond[i]]].confusers
        if confusers:
            coded[i] = CODES.index(confusers[int(u[i, 1] * len(confusers))])
            if coded[i] in secondaries[i]:
                secondaries[i].remove(coded[i])
    return coded


def _assemble(
    visits: _Visits,
    observations: dict[str, tuple[list[float], list[str]]],
    texts: list[tuple[str, str, str, str]],
    coded: np.ndarray,
    secondaries: list[list[int]],
    duplicated: set[int],
    *,
    end: datetime,
) -> list[SyntheticVisit]:
    """The visits in chronological order; the duplicated ones appear twice (entered twice)."""
    order = np.argsort(visits.offset_s, kind="stable")
    window_start = end - timedelta(days=DAYS)
    offsets = visits.offset_s.tolist()
    durations = visits.duration_min.tolist()
    no_end = visits.no_end.tolist()
    vtypes = visits.vtype.tolist()
    conds = coded.tolist()
    patients = visits.patient.tolist()
    assembled: list[SyntheticVisit] = []
    key = 0
    for i in order.tolist():
        obs = tuple(
            SyntheticObservation(code, values[i], units[i])
            for code, (values, units) in observations.items()
            if values[i] == values[i]  # not NaN: measured
        )
        start = window_start + timedelta(seconds=offsets[i])
        visit_end = None if no_end[i] else start + timedelta(minutes=durations[i])
        cc, hist, exam, plan = texts[i]
        for _ in range(2 if i in duplicated else 1):
            key += 1
            assembled.append(
                SyntheticVisit(
                    key=key,
                    patient_key=patients[i] + 1,
                    start=start,
                    end=visit_end,
                    visit_type=VISIT_TYPES[vtypes[i]],
                    chief_complaint=cc,
                    history=hist,
                    physical_exam=exam,
                    plan=plan,
                    observations=obs,
                    primary_diagnosis=CODES[conds[i]],
                    secondary_diagnoses=tuple(CODES[s] for s in secondaries[i]),
                )
            )
    return assembled
