"""The learners: rules baseline finds the rule, the PyTorch MLP is seeded, stops early on a
validation split that keeps each patient on one side."""

from __future__ import annotations

import numpy as np
import pytest

from predictions.ml import algorithms
from predictions.ml.algorithms import (
    ALGORITHMS,
    STRATIFIED_VALIDATION_MAX_GROUPS,
    OneRuleClassifier,
    TorchMLPClassifier,
    early_stopping_split,
    get_algorithms,
)
from predictions.ml.pipeline import fit_learner


def noisy(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = (X[:, 2] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


def test_six_default_algorithms_and_two_opt_in_neural_text_models_are_registered() -> None:
    assert list(ALGORITHMS) == [
        "rules_baseline",
        "logistic_regression",
        "svm",
        "decision_tree",
        "gradient_boosting",
        "mlp",
        "cnn_text",
        "gru_text",
    ]
    assert [a.name for a in get_algorithms(None)] == list(ALGORITHMS)[:6]


def test_one_rule_picks_the_informative_feature() -> None:
    X, y = noisy()
    rule = OneRuleClassifier().fit(X, y)
    assert rule.feature_ == 2
    assert (rule.predict(X) == y).mean() > 0.8


def test_mlp_is_reproducible_and_stops_early() -> None:
    X, y = noisy()
    a = TorchMLPClassifier(max_epochs=300, patience=5, seed=3).fit(X, y)
    b = TorchMLPClassifier(max_epochs=300, patience=5, seed=3).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.n_epochs_ < 300  # early stopping on the validation split ended training
    assert (a.predict(X) == y).mean() > 0.85
    c = TorchMLPClassifier(max_epochs=300, patience=5, seed=4).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def patients(n: int, seed: int = 0) -> np.ndarray:
    """Patient ids with several visits each (visits of one patient are correlated)."""
    return np.array([f"p{p}" for p in np.random.default_rng(seed).integers(0, n // 4, n)])


@pytest.mark.parametrize("max_groups", [STRATIFIED_VALIDATION_MAX_GROUPS, 0])
def test_early_stopping_split_keeps_patients_together(monkeypatch, max_groups: int) -> None:
    monkeypatch.setattr(algorithms, "STRATIFIED_VALIDATION_MAX_GROUPS", max_groups)
    _, y = noisy(600)
    groups = patients(600)
    train, validation, how = early_stopping_split(y, groups, 0.15, seed=0)
    assert how == ("grouped stratified" if max_groups else "grouped random")
    assert not set(groups[train]) & set(groups[validation])
    assert sorted(np.concatenate([train, validation])) == list(range(600))
    assert 0.08 < len(validation) / 600 < 0.25
    # without groups: the row-level stratified split, as before
    assert early_stopping_split(y, None, 0.15, seed=0)[2] == "stratified rows"


def test_mlp_early_stopping_validation_is_grouped_by_patient_through_fit_learner(
    monkeypatch,
) -> None:
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    split = algorithms.early_stopping_split

    def spy(codes, groups, fraction, seed):
        train, validation, how = split(codes, groups, fraction, seed)
        seen.append((np.asarray(groups), train, validation))
        return train, validation, how

    monkeypatch.setattr(algorithms, "early_stopping_split", spy)
    X, y = noisy(400)
    groups = patients(400, seed=1)
    algorithm = ALGORITHMS["mlp"]
    assert algorithm.fit_takes_groups
    fitted = fit_learner(algorithm, X, y, groups, 2, inner_folds=2)
    # 2 grid points x 2 inner folds + the final refit, each with the rows' own patient ids
    assert len(seen) == 2 * 2 + 1
    for fold_groups, train, validation in seen:
        assert set(fold_groups) <= set(groups)
        assert len(train) > 0
        assert len(validation) > 0
        assert not set(fold_groups[train]) & set(fold_groups[validation])
    final_groups, _, _ = seen[-1]
    np.testing.assert_array_equal(final_groups, groups)
    assert fitted.model.estimator.validation_split_ == "grouped stratified"
