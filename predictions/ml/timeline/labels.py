"""Forecast labels from a task definition, in MEDS's label schema.

A task reads "a new diagnosis with a code in S within H days after the prediction time, for
patients without one before". For every subject, candidate prediction times are the ends of its
visits (just after an event time, so that visit's events are visible); a candidate is used when

* the subject had no code in S before it (a forecast of a *new* diagnosis),
* it has at least ``min_history_days`` of history (something to forecast from), counted from
  the subject's first clinical event: birth and static facts are who the patient is, not
  history (``events.anchor_events``), or every adult would qualify at the first visit, and
* the outcome is known: a code in S within H days (true), or the subject is still seen after
  H days without one (false). Candidates whose follow-up ends earlier are censored, not negatives.

Each subject contributes at most ``per_subject`` labels (chosen at random, seeded), so a long
course does not outweigh a short one and splits stay patient-level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from predictions.ml.errors import DataError
from predictions.ml.timeline.events import (
    MICROSECONDS_PER_DAY,
    Timelines,
    anchor_events,
)

# The prediction is made just after the visit's last event (an event at the prediction time is
# invisible by the engine's rule, so "at the visit" would hide the visit itself).
AFTER_VISIT_US = 1_000_000


@dataclass(frozen=True)
class TaskDefinition:
    """What a forecast predicts; ``codes`` are code prefixes (``ICD10/N18`` matches N18.3)."""

    name: str
    codes: Sequence[str]
    horizon_days: int
    min_history_days: int = 365
    per_subject: int = 1
    description: str = field(default="")

    def __post_init__(self) -> None:
        if not self.codes:
            raise DataError(f"task {self.name!r} names no outcome codes")
        if self.horizon_days <= 0:
            raise DataError(f"task {self.name!r}: horizon_days must be positive")
        if self.per_subject < 1:
            raise DataError(f"task {self.name!r}: per_subject must be at least 1")

    def matches(self, codes: np.ndarray) -> np.ndarray:
        """Boolean mask of ``codes`` that count as the outcome (prefix match)."""
        prefixes = tuple(self.codes)
        return np.fromiter((str(c).startswith(prefixes) for c in codes), bool, len(codes))


def build_labels(timelines: Timelines, task: TaskDefinition, *, seed: int = 0) -> pd.DataFrame:
    """MEDS labels (``subject_id``, ``prediction_time``, ``boolean_value``) for ``task``."""
    rng = np.random.default_rng(seed)
    horizon = task.horizon_days * MICROSECONDS_PER_DAY
    min_history = task.min_history_days * MICROSECONDS_PER_DAY
    is_outcome = task.matches(timelines.code)
    rows: list[tuple[int, int, bool]] = []
    for i, subject in enumerate(timelines.subjects):
        start, stop = int(timelines.offsets[i]), int(timelines.offsets[i + 1])
        time = timelines.time[start:stop]
        clinical = ~anchor_events(time, timelines.code[start:stop])
        if not clinical.any():
            continue
        times = time[clinical]
        outcome_times = time[clinical & is_outcome[start:stop]]
        first_outcome = outcome_times.min() if len(outcome_times) else None
        last_seen = times.max()
        candidates = np.unique(times) + AFTER_VISIT_US
        keep = candidates >= times.min() + min_history
        if first_outcome is not None:
            keep &= candidates <= first_outcome  # no outcome before (or at) the prediction
        positive = (
            np.zeros(len(candidates), bool)
            if first_outcome is None
            else (first_outcome > candidates) & (first_outcome <= candidates + horizon)
        )
        observed = positive | (last_seen > candidates + horizon)
        usable = np.flatnonzero(keep & observed)
        if not len(usable):
            continue
        chosen = rng.choice(usable, size=min(task.per_subject, len(usable)), replace=False)
        rows.extend((int(subject), int(candidates[c]), bool(positive[c])) for c in np.sort(chosen))
    if not rows:
        raise DataError(f"task {task.name!r}: no subject has a usable prediction time")
    frame = pd.DataFrame(rows, columns=["subject_id", "prediction_time", "boolean_value"])
    frame["prediction_time"] = frame["prediction_time"].astype("datetime64[us]")
    return frame


def outcome_subjects(timelines: Timelines, codes: Sequence[str]) -> np.ndarray:
    """Subjects with any event whose code starts with one of ``codes`` (cluster outcome tables)."""
    task = TaskDefinition(name="outcome", codes=codes, horizon_days=1)
    hit = task.matches(timelines.code)
    owner = np.searchsorted(timelines.offsets, np.flatnonzero(hit), side="right") - 1
    return np.unique(timelines.subjects[owner])
