"""Live outcomes of forecasts: positive when diagnosed within the horizon, negative only after it."""

from __future__ import annotations

import meds
import numpy as np
import pandas as pd

from predictions.ml.timeline.events import Timelines, read_events
from predictions.ml.timeline.labels import TaskDefinition
from predictions.ml.timeline.outcomes import NEGATIVE, PENDING, POSITIVE, forecast_outcomes

DAY = np.timedelta64(1, "D")
T0 = np.datetime64("2024-01-01T00:00:00", "us")


def _timelines() -> Timelines:
    rows = [
        (1, T0 - 400 * DAY, "VISIT/outpatient"),
        (1, T0 + 100 * DAY, "ICD10/E11.9"),  # diagnosed within the horizon
        (2, T0 - 400 * DAY, "VISIT/outpatient"),  # never diagnosed
        (3, T0 - 400 * DAY, "ICD10/E11.9"),  # had it before: not eligible
        (4, T0 + 10 * DAY, "VISIT/outpatient"),  # no history before the forecast
        (5, T0 - 10 * DAY, "VISIT/outpatient"),
        (5, T0 + 400 * DAY, "ICD10/E11.65"),  # after the horizon
    ]
    # Every subject has a birth event long before, as MedAI's export writes: birth is not
    # history (subject 4 was first seen after the forecast, so it was never forecast).
    rows += [(s, T0 - 20_000 * DAY, meds.birth_code) for s in range(1, 6)]
    frame = pd.DataFrame(rows, columns=["subject_id", "time", "code"])
    frame["numeric_value"] = np.nan
    return Timelines.from_frame(read_events(frame))


def _cut(moment: np.datetime64) -> int:
    return int(moment.astype("datetime64[us]").astype(np.int64))


def test_negatives_wait_for_the_whole_horizon() -> None:
    task = TaskDefinition("dm", ["ICD10/E11"], horizon_days=365)
    early = forecast_outcomes(_timelines(), task, _cut(T0), _cut(T0 + 200 * DAY))
    assert dict(zip(early["subject_id"], early["outcome"], strict=True)) == {
        1: POSITIVE,
        2: PENDING,
        5: PENDING,
    }
    late = forecast_outcomes(_timelines(), task, _cut(T0), _cut(T0 + 366 * DAY))
    assert dict(zip(late["subject_id"], late["outcome"], strict=True)) == {
        1: POSITIVE,
        2: NEGATIVE,
        5: NEGATIVE,  # diagnosed, but after the horizon
    }
