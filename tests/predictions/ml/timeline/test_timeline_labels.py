"""Task labels: new diagnosis of a code set within H days, for patients without it before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictions.ml.errors import DataError
from predictions.ml.timeline.events import Timelines, read_events
from predictions.ml.timeline.labels import TaskDefinition, build_labels


def _timelines(rows: list[tuple[int, str | None, str]]) -> Timelines:
    frame = pd.DataFrame(rows, columns=["subject_id", "time", "code"])
    return Timelines.from_frame(read_events(frame))


def _visits(subject: int, years: range, extra: list[tuple[str, str]] = ()) -> list:
    rows = [(subject, None, "GENDER/M")]
    rows += [(subject, f"{y}-01-01T09:00", "VISIT/outpatient") for y in years]
    rows += [(subject, when, code) for when, code in extra]
    return rows


def test_positive_negative_excluded_and_censored_subjects() -> None:
    task = TaskDefinition(
        "ckd", ["ICD10/N18"], horizon_days=730, min_history_days=365, per_subject=50
    )
    timelines = _timelines(
        _visits(1, range(2010, 2016), [("2014-06-01T09:00", "ICD10/N18.3")])  # progresses
        + _visits(2, range(2010, 2016))  # never progresses
        + _visits(3, range(2010, 2016), [("2010-01-01T09:00", "ICD10/N18.4")])  # had it first
        + _visits(4, range(2010, 2011))  # one visit: no history, no follow-up
    )
    labels = build_labels(timelines, task)
    by_subject = dict(iter(labels.groupby("subject_id")))
    assert set(by_subject) == {1, 2}
    progresses = by_subject[1]
    # Visits 2011..2014 qualify (>= 1 year of history, before the diagnosis); 2013 and 2014 are
    # within two years of it.
    assert progresses["boolean_value"].tolist() == [False, False, True, True]
    assert (progresses["prediction_time"] < pd.Timestamp("2014-06-01T09:00")).all()
    never = by_subject[2]
    # Negatives need more than two years of follow-up after the prediction (last visit 2015-01-01):
    # the visits of 2011 and 2012 only.
    assert never["boolean_value"].tolist() == [False, False]
    assert never["prediction_time"].dt.year.tolist() == [2011, 2012]
    # The prediction is made just after the visit, so the visit itself is visible.
    assert (never["prediction_time"].dt.second == 1).all()


def test_history_counts_from_the_first_clinical_event_not_birth() -> None:
    # MEDS gives birth a time; it is not history. Born 1950, first seen 2010: the 2010 visit has
    # no history behind it, so with a year's minimum the first usable prediction is 2011's.
    task = TaskDefinition(
        "ckd", ["ICD10/N18"], horizon_days=365, min_history_days=365, per_subject=50
    )
    rows = [(1, "1950-07-01T00:00", "MEDS_BIRTH"), *_visits(1, range(2010, 2014))]
    labels = build_labels(_timelines(rows), task)
    assert labels["prediction_time"].dt.year.tolist() == [2011, 2012]


def test_prefixes_match_categories_and_one_label_per_subject_by_default() -> None:
    task = TaskDefinition("hf", ["ICD10/I50"], horizon_days=400, min_history_days=0)
    assert task.matches(
        np.array(["ICD10/I50.9", "ICD10/I5", "ICD10/I10"], dtype=object)
    ).tolist() == [
        True,
        False,
        False,
    ]
    timelines = _timelines(_visits(1, range(2010, 2016)) + _visits(2, range(2010, 2016)))
    labels = build_labels(timelines, task, seed=1)
    assert labels["subject_id"].tolist() == [1, 2]
    again = build_labels(timelines, task, seed=1)
    pd.testing.assert_frame_equal(labels, again)


def test_bad_task_definitions_are_refused() -> None:
    with pytest.raises(DataError, match="names no outcome codes"):
        TaskDefinition("x", [], horizon_days=10)
    with pytest.raises(DataError, match="horizon_days must be positive"):
        TaskDefinition("x", ["A"], horizon_days=0)
    timelines = _timelines(_visits(1, range(2010, 2011)))
    with pytest.raises(DataError, match="no subject has a usable prediction time"):
        build_labels(timelines, TaskDefinition("x", ["A"], horizon_days=10))
