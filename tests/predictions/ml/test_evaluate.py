"""Metrics agree with scikit-learn's reference implementations and carry CIs and subgroups."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from predictions.ml.evaluate import age_band, evaluate_predictions, weighted_auc


def binary_case(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    p = np.clip(0.4 + 0.3 * (y - 0.4) + rng.normal(0, 0.2, n), 0.01, 0.99).round(2)  # ties
    return np.where(y, "yes", "no"), np.column_stack([1 - p, p])


def test_binary_metrics_match_sklearn() -> None:
    labels, proba = binary_case()
    y = labels == "yes"
    m = evaluate_predictions(labels, proba, ["no", "yes"], subgroups={"sex": ["f", "m"] * 200})
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
    assert m["brier"] == pytest.approx(brier_score_loss(y, proba[:, 1]))
    assert m["brier_baseline"] == pytest.approx(y.mean() * (1 - y.mean()))
    lo, hi = m["roc_auc_ci"]
    assert lo < m["roc_auc"] < hi
    assert m["threshold"] == 0.5
    assert "equal costs" in m["threshold_reason"]
    tp = ((proba[:, 1] >= 0.5) & y).sum()
    assert m["sensitivity"] == pytest.approx(tp / y.sum())
    assert sum(np.array(m["confusion_matrix"]["matrix"]).ravel()) == 400
    assert {g["n"] for g in m["subgroups"]["sex"].values()} == {200}
    assert 0 <= m["ece"] < 0.2
    assert len(m["calibration_curve"]["predicted"]) >= 5


def test_weighted_auc_equals_roc_auc_on_a_resample() -> None:
    labels, proba = binary_case(seed=2)
    y = labels == "yes"
    idx = np.random.default_rng(5).integers(0, len(y), len(y))
    weights = np.bincount(idx, minlength=len(y))[None, :]
    got = weighted_auc(proba[:, 1], y, weights)[0]
    assert got == pytest.approx(roc_auc_score(y[idx], proba[idx, 1]))


def test_multiclass_reports_top3_and_majority_baseline() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c", "d", "e"]
    truth = rng.integers(0, 5, 500)
    logits = rng.normal(0, 1, (500, 5))
    logits[np.arange(500), truth] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = evaluate_predictions([classes[t] for t in truth], proba, classes, n_bootstrap=50)
    assert m["top3_accuracy"] >= m["top1_accuracy"] > m["majority_baseline_accuracy"]
    assert m["roc_auc"] == pytest.approx(
        roc_auc_score(truth, proba, multi_class="ovr", average="macro")
    )
    assert set(m["per_class"]) == set(classes)


def test_age_bands() -> None:
    assert [age_band(a) for a in (12, 40, 59.9, 60, 85, None)] == [
        "<40",
        "40-59",
        "40-59",
        "60-79",
        "80+",
        "unknown",
    ]
