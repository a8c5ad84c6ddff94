"""The synthetic longitudinal generator: years of follow-up, progression with rising labs before
the diagnosis, noise, missed visits and non-progressors; seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from predictions.ml.timeline import synthetic
from predictions.ml.timeline.synthetic import generate_events


def _first(events: pd.DataFrame, code: str) -> pd.Series:
    return events[events["code"] == code].groupby("subject_id")["time"].min()


def test_population_is_followed_for_years_with_irregular_visits(small_events: pd.DataFrame) -> None:
    timed = small_events.dropna(subset=["time"])
    visits = timed[timed["code"].str.startswith("VISIT/")]
    span = visits.groupby("subject_id")["time"].agg(lambda t: (t.max() - t.min()).days / 365.25)
    assert span.median() > 3
    assert span.max() > 8
    gaps = visits.groupby("subject_id")["time"].diff().dt.days.dropna()
    assert gaps.std() > 60  # irregular intervals, missed visits
    assert (gaps > 365).mean() > 0.01
    per_subject = small_events.groupby("subject_id").size()
    assert per_subject.min() > 5
    assert set(small_events[small_events["time"].isna()]["code"]) == {"GENDER/F", "GENDER/M"}


def test_conditions_progress_and_most_patients_do_not(small_events: pd.DataFrame) -> None:
    subjects = small_events["subject_id"].nunique()
    hypertension = _first(small_events, synthetic.HYPERTENSION)
    ckd = _first(small_events, synthetic.CKD)
    diabetes = _first(small_events, synthetic.DIABETES)
    prediabetes = _first(small_events, synthetic.PREDIABETES)
    assert 0.02 < len(ckd) / subjects < 0.4
    assert 0.02 < len(diabetes) / subjects < 0.4
    # Progression: prediabetes before diabetes in most patients who had both recorded.
    both = prediabetes.index.intersection(diabetes.index)
    assert len(both) >= 3
    assert (prediabetes[both] <= diabetes[both]).mean() > 0.6
    # CKD is commoner among people with hypertension or diabetes than without.
    risky = hypertension.index.union(diabetes.index)
    everyone = pd.Index(small_events["subject_id"].unique())
    rate = lambda group: len(ckd.index.intersection(group)) / max(len(group), 1)  # noqa: E731
    assert rate(risky) > rate(everyone.difference(risky))


def test_labs_rise_before_the_diagnosis() -> None:
    events = generate_events(600, seed=11)
    diagnosed = _first(events, synthetic.DIABETES)
    hba1c = events[events["code"] == synthetic.HBA1C].join(diagnosed.rename("dx"), on="subject_id")
    before = hba1c[hba1c["time"] < hba1c["dx"]]
    never = hba1c[hba1c["dx"].isna()]
    last_year = before[(before["dx"] - before["time"]).dt.days < 365]
    assert last_year["numeric_value"].mean() > never["numeric_value"].mean() + 0.5
    creatinine = events[events["code"] == synthetic.CREATININE].join(
        _first(events, synthetic.CKD).rename("dx"), on="subject_id"
    )
    progressors = creatinine.dropna(subset=["dx"])
    early = progressors[(progressors["dx"] - progressors["time"]).dt.days > 3 * 365]
    late = progressors[(progressors["dx"] - progressors["time"]).dt.days.between(0, 365)]
    assert late["numeric_value"].mean() > early["numeric_value"].mean()


def test_labs_are_coherent_and_generation_is_seeded() -> None:
    a, b = generate_events(30, seed=5), generate_events(30, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not generate_events(30, seed=6).equals(a)
    egfr = a[a["code"] == synthetic.EGFR]["numeric_value"]
    assert egfr.between(3, 160).all()
    assert np.isclose(synthetic.egfr_from_creatinine(1.0, 60, female=False), 85.8, atol=1)
