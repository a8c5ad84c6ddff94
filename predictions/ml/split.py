"""Patient-grouped, stratified splits with a fixed seed.

Every visit of one patient lands in the same fold, so a model is never tested on a patient it was
trained on (visits of one patient are correlated; leaking them inflates every metric).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from predictions.ml.errors import DataError

Split = tuple[np.ndarray, np.ndarray]


def effective_folds(labels: np.ndarray, groups: np.ndarray, folds: int) -> int:
    """The fold count actually usable: ``folds``, capped at the number of patients, at least 2.

    Only patients cap it, not classes (``labels`` is unused): a class rarer than the fold count
    is absent from some test folds; StratifiedGroupKFold warns and carries on, which is what we
    want for rare diagnoses.
    """
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise DataError("need at least two patients to split into training and test data")
    return max(2, min(folds, n_groups))


def grouped_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list[Split]:
    """``folds`` (train, test) index pairs: stratified by label, no patient in both halves."""
    k = effective_folds(labels, groups, folds)
    if len(np.unique(groups)) == len(groups):
        # One row per patient: plain stratified folds are the same thing, and StratifiedGroupKFold's
        # per-group Python loop cost 0.4 s per call at 1,200 rows (called for every inner search).
        splitter: StratifiedKFold | StratifiedGroupKFold = StratifiedKFold(
            n_splits=k, shuffle=True, random_state=seed
        )
        placeholder = np.zeros((len(labels), 1))
        counts = np.unique(labels, return_counts=True)[1]
        if counts.min() >= k:
            return [
                (np.asarray(train), np.asarray(test))
                for train, test in splitter.split(placeholder, labels)
            ]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    placeholder = np.zeros((len(labels), 1))
    return [
        (np.asarray(train), np.asarray(test))
        for train, test in splitter.split(placeholder, labels, groups)
    ]


def iter_patient_overlap(splits: list[Split], groups: np.ndarray) -> Iterator[str]:
    """Patients found on both sides of any split (empty for a correct split; used by tests)."""
    for train, test in splits:
        yield from set(groups[train]) & set(groups[test])


def holdout_split(labels: np.ndarray, groups: np.ndarray, test_share: float, seed: int) -> Split:
    """One grouped, stratified train/validation split of roughly ``test_share`` (>= 2 folds)."""
    folds = max(2, round(1 / test_share))
    return grouped_folds(labels, groups, folds, seed)[0]
