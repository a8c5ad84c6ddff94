"""The count/recency baseline every sequence model must beat.

For each label's visible history (:meth:`Timelines.histories`) and each code of the vocabulary
learnt on the training fold: how often it occurred in each look-back window (90 days, 1 year,
3 years, ever), how long ago it last occurred, and for codes that carry numbers (labs, vitals) the
last value in each window. Plus age at the prediction time (when ``MEDS_BIRTH`` is recorded), length
of history and event counts. Missing last values are imputed with the training median (the window
counts say whether a value was there), and everything is standardised with training statistics;
the fitted featuriser is saved with the model, never refitted at prediction time.

Logistic regression and gradient boosting then learn from these features through the tabular
engine's own ``fit_learner`` (grouped inner search, Platt calibration), so the baseline is as well
tuned as the engine's other models.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import meds
import numpy as np
import pandas as pd

from predictions.ml.timeline.events import (
    MICROSECONDS_PER_DAY,
    STATIC_TIME,
    Histories,
    Timelines,
)

WINDOW_DAYS = (90, 365, 1095)  # plus "ever"
MAX_CODES = 256  # most frequent codes kept; rarer ones are pooled in an "other" count
# A code counts as a measurement when most of its events carry a number.
NUMERIC_SHARE = 0.5
NEVER_DAYS = 36_500.0  # recency of a code never seen: "a century ago"
DAYS_PER_YEAR = 365.25


def code_index(codes: np.ndarray, vocabulary: list[str]) -> np.ndarray:
    """Position of each code in ``vocabulary`` (-1 when absent)."""
    return np.asarray(pd.Index(vocabulary).get_indexer(codes), dtype=np.int64)


def gather(timelines: Timelines, histories: Histories) -> tuple[np.ndarray, np.ndarray]:
    """(row, event index) of every visible event of every history, in time order per row."""
    lengths = histories.stop - histories.start
    rows = np.repeat(np.arange(len(histories)), lengths)
    first = np.repeat(histories.start - np.cumsum(lengths) + lengths, lengths)
    return rows, first + np.arange(int(lengths.sum()))


@dataclass
class CountFeaturizer:
    """Count, recency and last-value features over look-back windows (fit on training rows)."""

    windows: tuple[int, ...] = WINDOW_DAYS
    max_codes: int = MAX_CODES
    codes: list[str] = field(default_factory=list)
    numeric_codes: list[str] = field(default_factory=list)
    medians: np.ndarray | None = None
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    names: list[str] = field(default_factory=list)

    def fit(self, timelines: Timelines, histories: Histories) -> CountFeaturizer:
        rows, events = gather(timelines, histories)
        codes = timelines.code[events]
        # Vocabulary: codes present in the most training histories (a code every visit repeats
        # counts once per history, so chatty codes do not crowd out rare diagnoses).
        unique_codes, inverse = np.unique(codes.astype(str), return_inverse=True)
        pairs = np.unique(rows.astype(np.int64) * len(unique_codes) + inverse)
        per_history = np.bincount(pairs % len(unique_codes), minlength=len(unique_codes))
        keep = np.argsort(-per_history, kind="stable")[: self.max_codes]
        keep = keep[per_history[keep] >= 2]
        self.codes = sorted(str(unique_codes[i]) for i in keep)
        has_value = ~np.isnan(timelines.numeric_value[events])
        share = np.bincount(inverse, has_value, len(unique_codes)) / np.maximum(
            np.bincount(inverse, minlength=len(unique_codes)), 1
        )
        kept = set(self.codes)
        self.numeric_codes = [
            str(c)
            for c, s in zip(unique_codes, share, strict=True)
            if s >= NUMERIC_SHARE and c in kept
        ]
        raw = self._raw(timelines, histories)
        n_last = len(self.numeric_codes) * (len(self.windows) + 1)
        last = raw[:, -n_last:] if n_last else raw[:, :0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a code never measured: median 0
            self.medians = np.where(
                np.isnan(last).all(axis=0), 0.0, np.nan_to_num(np.nanmedian(last, axis=0))
            )
        filled = self._impute(raw)
        self.mean = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.scale = np.where(std > 1e-9, std, 1.0)
        self.names = self._names()
        return self

    @property
    def n_features(self) -> int:
        return len(self.names)

    def transform(self, timelines: Timelines, histories: Histories) -> np.ndarray:
        """(n, d) standardised features of each history."""
        assert self.mean is not None  # noqa: S101 - fitted first
        assert self.scale is not None  # noqa: S101 - fitted first
        return (self._impute(self._raw(timelines, histories)) - self.mean) / self.scale

    def _impute(self, raw: np.ndarray) -> np.ndarray:
        assert self.medians is not None  # noqa: S101 - fitted first
        out = raw.copy()
        n_last = len(self.medians)
        if n_last:
            block = out[:, -n_last:]
            missing = np.isnan(block)
            block[missing] = np.broadcast_to(self.medians, block.shape)[missing]
        return np.nan_to_num(out, nan=0.0)

    def _names(self) -> list[str]:
        windows = [f"{w}d" for w in self.windows] + ["ever"]
        names = ["age_years", "history_days"]
        names += [f"events_{w}" for w in windows]
        names += [f"count_{w}:{c}" for c in [*self.codes, "other"] for w in windows]
        names += [f"days_since:{c}" for c in self.codes]
        names += [f"last_{w}:{c}" for c in self.numeric_codes for w in windows]
        return names

    def _raw(self, timelines: Timelines, histories: Histories) -> np.ndarray:
        n = len(histories)
        n_windows = len(self.windows) + 1
        n_codes = len(self.codes)
        rows, events = gather(timelines, histories)
        time = timelines.time[events]
        static = time == STATIC_TIME
        cut = histories.prediction_time[rows]
        age_days = np.where(static, 0.0, (cut - time) / MICROSECONDS_PER_DAY)
        code_id = code_index(timelines.code[events], self.codes)
        code_id = np.where(code_id < 0, n_codes, code_id)  # unknown codes pool into "other"
        # Which windows each event falls in: static facts and "ever" count in the last one only.
        limits = np.array([*self.windows, np.inf])
        in_window = (age_days[:, None] < limits[None, :]) & ~static[:, None]
        in_window[:, -1] = True
        counts = np.zeros((n, n_codes + 1, n_windows))
        for w in range(n_windows):
            mask = in_window[:, w]
            np.add.at(counts[:, :, w], (rows[mask], code_id[mask]), 1.0)
        totals = counts.sum(axis=1)

        recency = np.full((n, n_codes + 1), NEVER_DAYS)
        timed = ~static
        np.minimum.at(recency, (rows[timed], code_id[timed]), age_days[timed])
        recency = np.log1p(recency[:, :n_codes])

        first_timed = np.full(n, np.nan)
        if timed.any():
            oldest = np.zeros(n)
            np.maximum.at(oldest, rows[timed], age_days[timed])
            has_timed = np.bincount(rows[timed], minlength=n) > 0
            first_timed = np.where(has_timed, oldest, np.nan)
        age = np.full(n, np.nan)
        birth = (timelines.code[events] == meds.birth_code) & timed
        age[rows[birth]] = age_days[birth] / DAYS_PER_YEAR

        last = self._last_values(timelines, rows, events, age_days, in_window, n)
        return np.hstack(
            [
                age[:, None],
                np.log1p(np.nan_to_num(first_timed))[:, None],
                np.log1p(totals),
                np.log1p(counts.reshape(n, -1)),
                recency,
                last,
            ]
        )

    def _last_values(
        self,
        timelines: Timelines,
        rows: np.ndarray,
        events: np.ndarray,
        age_days: np.ndarray,
        in_window: np.ndarray,
        n: int,
    ) -> np.ndarray:
        n_windows = in_window.shape[1]
        numeric = self.numeric_codes
        out = np.full((n, len(numeric), n_windows), np.nan)
        if not len(numeric):
            return out.reshape(n, 0)
        values = timelines.numeric_value[events]
        index = code_index(timelines.code[events], self.numeric_codes)
        ok = (index >= 0) & ~np.isnan(values)
        # Events are in time order within a row, so the last one written per cell is the latest;
        # np.unique on the reversed keys picks that event explicitly rather than relying on it.
        for w in range(n_windows):
            mask = np.flatnonzero(ok & in_window[:, w])[::-1]
            key = rows[mask] * len(numeric) + index[mask]
            _, first = np.unique(key, return_index=True)
            chosen = mask[first]
            out[rows[chosen], index[chosen], w] = values[chosen]
        return out.reshape(n, -1)
