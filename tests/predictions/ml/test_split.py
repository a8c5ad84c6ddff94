"""Splits are stratified and grouped by patient, reproducibly."""

from __future__ import annotations

import numpy as np

from predictions.ml.split import grouped_folds, iter_patient_overlap


def visits(n: int = 600, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 150, n).astype(str)  # ~4 visits per patient
    labels = np.where(rng.random(n) < 0.3, "sick", "well")
    return labels, groups


def test_no_patient_is_in_both_training_and_test_data() -> None:
    labels, groups = visits()
    splits = grouped_folds(labels, groups, 5, seed=0)
    assert len(splits) == 5
    assert list(iter_patient_overlap(splits, groups)) == []
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested) == list(range(len(labels)))  # every visit tested exactly once


def test_folds_are_stratified_and_reproducible() -> None:
    labels, groups = visits()
    overall = (labels == "sick").mean()
    splits = grouped_folds(labels, groups, 5, seed=0)
    for _, test in splits:
        assert abs((labels[test] == "sick").mean() - overall) < 0.08
    again = grouped_folds(labels, groups, 5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again, strict=True))
    other = grouped_folds(labels, groups, 5, seed=1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(splits, other, strict=True))
