"""Gradient boosting's numpy fast path equals sklearn's predictor, and explanations still add up."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from predictions.ml.algorithms import (
    ALGORITHMS,
    FAST_BOOSTING_MAX_ROWS,
    BoostedForest,
    boosted_forest,
    raw_scores,
)
from predictions.ml.explain import Explainer
from predictions.ml.pipeline import fit_learner


def data(n: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Numeric data with missing values (so splits learn where NaN goes) and a few binary columns."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12))
    X[:, 8:] = rng.integers(0, 2, size=(n, 4))  # one-hot-like columns: many exact threshold ties
    score = X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 0.6 * X[:, 8] + 0.5 * rng.normal(size=n)
    score += np.where(np.isnan(X[:, 3]), 1.0, 0.0)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    X[rng.random(n) < 0.15, 3] = np.nan  # missing values in training data
    X[rng.random(n) < 0.05, 1] = np.nan
    return X, y


def hard_rows(forest: BoostedForest, X: np.ndarray, seed: int = 1) -> np.ndarray:
    """Rows with values exactly on split thresholds, NaNs everywhere, and far outside the range."""
    rng = np.random.default_rng(seed)
    rows = X[rng.choice(len(X), 600)].copy()
    inner = np.flatnonzero(~forest.is_leaf)
    for i in range(len(rows)):
        for node in rng.choice(inner, 3):
            rows[i, forest.feature[node]] = forest.threshold[node]  # ties go left
    rows[rng.random(rows.shape) < 0.1] = np.nan
    rows[rng.random(rows.shape) < 0.02] = 1e6
    rows[rng.random(rows.shape) < 0.02] = -1e6
    return np.vstack([X, rows])


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize(
    "params",
    [
        {"max_iter": 60, "max_depth": 3},
        {"max_iter": 80, "max_leaf_nodes": 15, "min_samples_leaf": 5},  # deeper, unbalanced trees
        {"max_iter": 200, "early_stopping": True, "validation_fraction": 0.2, "max_depth": 4},
    ],
)
def test_fast_path_equals_sklearn_on_many_rows(classes: int, params: dict) -> None:
    X, y = data(1500, classes)
    estimator = HistGradientBoostingClassifier(random_state=0, **params).fit(X, y)
    forest = boosted_forest(estimator)
    assert forest is not None
    rows = hard_rows(forest, X)
    assert np.isnan(rows).any()
    expected = estimator.decision_function(rows)
    got = forest.decision_function(rows)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(forest.predict_proba(rows), estimator.predict_proba(rows), atol=1e-9)
    # one row at a time, as the serving path calls it, through the engine's scoring entry point
    for i in range(0, len(rows), 37):
        single = raw_scores(estimator, rows[i : i + 1])
        np.testing.assert_allclose(single, expected[i : i + 1], rtol=0, atol=1e-9)
    # a batch just over the fast-path limit goes to sklearn and agrees as well
    batch = rows[: FAST_BOOSTING_MAX_ROWS + 1]
    np.testing.assert_allclose(raw_scores(estimator, batch), expected[: len(batch)], atol=1e-9)


@pytest.mark.parametrize("classes", [2, 4])
def test_path_contributions_add_up_to_sklearns_raw_score(classes: int) -> None:
    X, y = data(1200, classes, seed=2)
    estimator = HistGradientBoostingClassifier(random_state=0, max_iter=50, max_leaf_nodes=15).fit(
        X, y
    )
    forest = boosted_forest(estimator)
    assert forest is not None
    rows = hard_rows(forest, X[:200])
    raw = estimator.decision_function(rows).reshape(len(rows), -1)
    for i in range(len(rows)):
        for output in range(raw.shape[1]):
            base, credits = forest.path_contributions(rows[i], output)
            assert base + credits.sum() == pytest.approx(raw[i, output], abs=1e-9)


@pytest.mark.parametrize("classes", [2, 3])
def test_boosting_explanation_adds_up_to_sklearn_calibrated_output(
    make_frame, classes: int
) -> None:
    from predictions.ml.dataset import clean
    from predictions.ml.features import Featurizer

    frame = make_frame(n=300, seed=5, classes=classes)
    cleaned = clean(frame, target="label", group="patient_id", text=["chief_complaint"])
    featurizer = Featurizer(cleaned.plans).fit(cleaned.frame)
    X = featurizer.transform(cleaned.frame)
    codes = np.array([cleaned.classes.index(v) for v in cleaned.labels])
    fitted = fit_learner(
        ALGORITHMS["gradient_boosting"],
        X,
        codes,
        cleaned.groups,
        len(cleaned.classes),
        inner_folds=2,
    )
    explainer = Explainer(fitted.model, featurizer, "boosting", cleaned.classes)
    assert explainer.method == "boosting"
    estimator, calibrator = fitted.model.estimator, fitted.model.calibrator
    # the reference is sklearn's own (OpenMP) predictor on the whole batch, not the fast path
    logits = calibrator.calibrated_logits(estimator.decision_function(X))
    proba = calibrator.probabilities(estimator.decision_function(X))
    np.testing.assert_allclose(fitted.model.predict_proba(X[:5]), proba[:5], atol=1e-9)
    for i in range(len(X)):
        for target in range(len(cleaned.classes)):
            explanation = explainer.explain(X[i], target)
            total = explanation.baseline + sum(explanation.contributions.values())
            if classes == 2:
                expected = logits[i] if target == 1 else -logits[i]
            else:
                expected = logits[i, target]
            assert total == pytest.approx(expected, abs=1e-9)
            assert explanation.output == pytest.approx(total, abs=1e-9)


def test_categorical_boosting_falls_back_to_sklearn() -> None:
    X, y = data(400, 2)
    X[:, 9] = np.random.default_rng(0).integers(0, 5, len(X))
    estimator = HistGradientBoostingClassifier(
        random_state=0, max_iter=20, categorical_features=[9]
    ).fit(X, y)
    assert boosted_forest(estimator) is None
    np.testing.assert_array_equal(raw_scores(estimator, X[:3]), estimator.decision_function(X[:3]))


def test_forest_is_rebuilt_after_a_refit() -> None:
    X, y = data(400, 2)
    estimator = HistGradientBoostingClassifier(random_state=0, max_iter=10).fit(X, y)
    first = boosted_forest(estimator)
    assert boosted_forest(estimator) is first  # cached
    estimator.set_params(max_iter=30).fit(X, y)
    second = boosted_forest(estimator)
    assert second is not first
    assert second is not None
    np.testing.assert_allclose(
        second.decision_function(X[:50]), estimator.decision_function(X[:50]), atol=1e-9
    )
