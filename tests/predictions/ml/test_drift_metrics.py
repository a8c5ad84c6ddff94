"""Live metrics with CIs in the engine: the one bootstrap of predictions/ml/evaluate.py."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from predictions.ml import drift


def _resampled(n: int, statistic, samples: int = drift.METRIC_BOOTSTRAP_SAMPLES) -> list[float]:
    """The textbook loop, independent of the engine: resample indices, compute, percentile."""
    rng = np.random.default_rng(drift.METRIC_BOOTSTRAP_SEED)
    values = []
    for _ in range(samples):
        value = statistic(rng.integers(0, n, n))
        if value is not None:
            values.append(value)
    low, high = np.quantile(values, [0.025, 0.975])
    return [round(float(low), 4), round(float(high), 4)]


def test_proportion_and_brier_intervals_equal_the_textbook_bootstrap():
    rng = np.random.default_rng(3)
    hits = rng.integers(0, 2, 80).astype(float)
    assert drift.proportion_ci(hits)["ci"] == pytest.approx(
        _resampled(80, lambda i: hits[i].mean()), abs=1e-4
    )
    scores, labels = rng.random(60), rng.integers(0, 2, 60)
    squared = (scores - labels) ** 2
    assert drift.brier_ci(scores, labels)["ci"] == pytest.approx(
        _resampled(60, lambda i: squared[i].mean()), abs=1e-4
    )


def test_auc_interval_equals_sklearn_on_each_resample():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 50)
    scores = np.clip(labels * 0.3 + rng.random(50) * 0.7, 0, 1)

    def auc(i):
        y = labels[i]
        return None if y.min() == y.max() else roc_auc_score(y, scores[i])

    result = drift.auc_ci(scores, labels)
    assert result["value"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-4)
    assert result["ci"] == pytest.approx(_resampled(50, auc), abs=1e-4)


def test_one_class_or_no_values_give_no_figure():
    assert drift.auc_ci(np.array([0.2, 0.4]), np.array([1, 1]))["value"] is None
    assert drift.proportion_ci([]) == {"value": None, "ci": [None, None], "n": 0}
