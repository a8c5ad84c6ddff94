"""Which forecasts' outcomes are known yet: the live-performance side of forecast monitoring.

A forecast made at ``prediction_time`` for a subject without the outcome before it is judged by
the same rule as the training labels (:mod:`predictions.ml.timeline.labels`): **positive** once a
code of the task appears within ``horizon_days`` after the prediction time (known as soon as it
is recorded), **negative** only once the whole horizon has passed by ``now`` without one, and
**pending** otherwise. Counting the not-yet-diagnosed as negatives before their horizon ends would
make every fresh model look better than it is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from predictions.ml.timeline.events import (
    MICROSECONDS_PER_DAY,
    STATIC_TIME,
    Timelines,
    anchor_events,
)
from predictions.ml.timeline.labels import TaskDefinition

PENDING, NEGATIVE, POSITIVE = -1, 0, 1


def forecast_outcomes(
    timelines: Timelines, task: TaskDefinition, prediction_time: int, now: int
) -> pd.DataFrame:
    """Per subject eligible at ``prediction_time`` (microseconds): ``subject_id`` and ``outcome``
    (1 positive, 0 negative, -1 pending by ``now``).

    Eligible: at least one recorded event before the prediction time (birth does not count: a
    patient first seen after it was never forecast by the model, as training's labels are only
    set at visits) and no outcome code before it.
    """
    horizon_end = prediction_time + task.horizon_days * MICROSECONDS_PER_DAY
    is_outcome = task.matches(timelines.code)
    subjects, outcomes = [], []
    for i, subject in enumerate(timelines.subjects):
        start, stop = int(timelines.offsets[i]), int(timelines.offsets[i + 1])
        time = timelines.time[start:stop]
        timed = time != STATIC_TIME
        recorded = ~anchor_events(time, timelines.code[start:stop])
        if not (recorded & (time < prediction_time)).any():
            continue
        hits = time[timed & is_outcome[start:stop]]
        if (hits < prediction_time).any():
            continue  # already has it: nothing new to forecast
        if ((hits >= prediction_time) & (hits <= horizon_end)).any():
            outcome = POSITIVE
        elif horizon_end <= now:
            outcome = NEGATIVE
        else:
            outcome = PENDING
        subjects.append(int(subject))
        outcomes.append(outcome)
    return pd.DataFrame(
        {"subject_id": np.array(subjects, np.int64), "outcome": np.array(outcomes, np.int64)}
    )
