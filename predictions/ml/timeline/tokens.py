"""Timelines -> fixed-length token arrays for the sequence models (numpy; no torch here).

Each visible event becomes one token: a code id (0 = padding, 1 = a code unseen in training) and
five numbers: the standardised value (log-scaled for skewed positive labs), whether a value is
present, log days before the prediction time, log days since the previous event, and whether it
is a static fact. Sequences are left-padded to ``max_len`` so the last position is always the most
recent event; anchors (static facts and ``MEDS_BIRTH``, i.e. sex and age) are always kept and the
rest is the most recent ``max_len - anchors`` events.

The fitted :class:`TokenEncoder` (vocabulary and value statistics) is saved inside the model and
used unchanged at prediction time, like the tabular featuriser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from predictions.ml.timeline.baseline import gather
from predictions.ml.timeline.events import (
    MICROSECONDS_PER_DAY,
    STATIC_TIME,
    Histories,
    Timelines,
    anchor_events,
)

PAD, UNKNOWN = 0, 1
N_CONTINUOUS = 5
MAX_LEN = 128
MAX_VOCABULARY = 4000
MIN_SUBJECTS = 2  # a code seen in one subject only cannot generalise (and could identify them)
LOG_TIME_SCALE = 8.0  # log1p(days) / 8 stays within ~[0, 1.3] for a century
Z_CLIP = 5.0
SKEW_RATIO = 10.0  # max/median above this (all values positive): standardise log values


@dataclass
class TokenEncoder:
    """Vocabulary and per-code value statistics, fitted on timelines without looking at labels."""

    max_len: int = MAX_LEN
    vocabulary: list[str] = field(default_factory=list)
    value_mean: np.ndarray = field(default_factory=lambda: np.zeros(2))
    value_std: np.ndarray = field(default_factory=lambda: np.ones(2))
    value_log: np.ndarray = field(default_factory=lambda: np.zeros(2, bool))

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary) + 2

    def fit(self, timelines: Timelines, histories: Histories) -> TokenEncoder:
        rows, events = gather(timelines, histories)
        subjects = histories.subject_id[rows]
        frame = pd.DataFrame(
            {
                "subject": subjects,
                "code": timelines.code[events].astype(str),
                "value": timelines.numeric_value[events],
            }
        )
        reach = frame.groupby("code")["subject"].nunique()
        reach = reach[reach >= MIN_SUBJECTS].sort_values(ascending=False, kind="stable")
        self.vocabulary = sorted(reach.index[:MAX_VOCABULARY].astype(str))
        size = self.vocabulary_size
        self.value_mean = np.zeros(size)
        self.value_std = np.ones(size)
        self.value_log = np.zeros(size, dtype=bool)
        valued = frame.dropna(subset=["value"])
        valued = valued[valued["code"].isin(self.vocabulary)]
        for code, values in valued.groupby("code")["value"]:
            x = values.to_numpy(dtype=float)
            i = self.vocabulary.index(code) + 2
            median = float(np.median(x))
            if x.min() > 0 and median > 0 and x.max() / median > SKEW_RATIO:
                self.value_log[i] = True
                x = np.log(x)
            self.value_mean[i] = float(x.mean())
            self.value_std[i] = float(x.std()) if x.std() > 1e-9 else 1.0
        return self

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_lookup", None)  # rebuilt on first use
        return state

    def token_ids(self, codes: np.ndarray) -> np.ndarray:
        lookup: dict[str, int] | None = self.__dict__.get("_lookup")
        if lookup is None:
            lookup = {code: i + 2 for i, code in enumerate(self.vocabulary)}
            self.__dict__["_lookup"] = lookup
        if not len(codes):
            return np.zeros(0, dtype=np.int64)
        # Hash the codes once, look up each distinct code once (a history repeats a few codes).
        inverse, distinct = pd.factorize(np.asarray(codes, dtype=object))
        mapped = np.fromiter((lookup.get(c, UNKNOWN) for c in distinct), np.int64, len(distinct))
        return mapped[inverse]

    def encode(
        self,
        timelines: Timelines,
        histories: Histories,
        reference_times: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(codes (n, L) int64, continuous (n, L, 5) float32) for each visible history.

        Times are measured back from ``reference_times`` (default: each history's prediction time).
        """
        n, length = len(histories), self.max_len
        codes = np.zeros((n, length), dtype=np.int64)
        continuous = np.zeros((n, length, N_CONTINUOUS), dtype=np.float32)
        reference = histories.prediction_time if reference_times is None else reference_times
        picked = [
            self.select(timelines, int(a), int(b))
            for a, b in zip(histories.start, histories.stop, strict=True)
        ]
        lengths = np.array([len(p) for p in picked], dtype=np.int64)
        if not lengths.sum():
            return codes, continuous
        every = np.concatenate(picked)
        row = np.repeat(np.arange(n), lengths)
        row_start = np.cumsum(lengths) - lengths
        ids = self.token_ids(timelines.code[every])  # one vocabulary lookup for all histories
        features = self.token_features(
            ids,
            timelines.time[every],
            timelines.numeric_value[every],
            reference[row],
            row_start[row],
        )
        # Left-padded: the last event of each history sits at the last position.
        column = length - lengths[row] + (np.arange(len(every)) - row_start[row])
        codes[row, column] = ids
        continuous[row, column] = features
        return codes, continuous

    def select(self, timelines: Timelines, start: int, stop: int) -> np.ndarray:
        """Event indices kept for one history: anchors, then the most recent events."""
        index = np.arange(start, stop)
        anchor = anchor_events(timelines.time[index], timelines.code[index])
        anchors, rest = index[anchor], index[~anchor]
        room = max(self.max_len - len(anchors), 0)
        return np.concatenate(
            [anchors[: self.max_len], rest[len(rest) - room :] if room else rest[:0]]
        )

    def token_features(
        self,
        ids: np.ndarray,
        times: np.ndarray,
        values: np.ndarray,
        reference: np.ndarray,
        first: np.ndarray,
    ) -> np.ndarray:
        """(tokens, 5) numbers of concatenated sequences; ``first`` is each token's sequence
        start (no gap is measured across sequences), ``reference`` its sequence's time origin."""
        static = times == STATIC_TIME
        has_value = ~np.isnan(values)
        raw = np.where(has_value, values, 0.0)
        logged = self.value_log[ids] & has_value
        raw = np.where(logged, np.log(np.maximum(raw, 1e-9)), raw)
        z = np.where(has_value, (raw - self.value_mean[ids]) / self.value_std[ids], 0.0)
        days_before = np.where(static, 0.0, (reference - times) / MICROSECONDS_PER_DAY)
        # The previous *timed* event of each token within its own sequence (anchors come first,
        # then time order).
        position = np.arange(len(times))
        last_timed = np.maximum.accumulate(np.where(static, -1, position))
        previous = np.concatenate([[-1], last_timed[:-1]])
        gap = np.where(
            static | (previous < first),
            0.0,
            (times - times[np.maximum(previous, 0)]) / MICROSECONDS_PER_DAY,
        )
        return np.column_stack(
            [
                np.clip(z, -Z_CLIP, Z_CLIP),
                has_value.astype(float),
                np.log1p(np.maximum(days_before, 0.0)) / LOG_TIME_SCALE,
                np.log1p(np.maximum(gap, 0.0)) / LOG_TIME_SCALE,
                static.astype(float),
            ]
        ).astype(np.float32)
