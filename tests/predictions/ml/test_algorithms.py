"""The learners: rules baseline finds the rule, the PyTorch MLP is seeded and stops early."""

from __future__ import annotations

import numpy as np

from predictions.ml.algorithms import ALGORITHMS, OneRuleClassifier, TorchMLPClassifier


def noisy(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = (X[:, 2] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


def test_six_algorithms_are_registered() -> None:
    assert list(ALGORITHMS) == [
        "rules_baseline",
        "logistic_regression",
        "svm",
        "decision_tree",
        "gradient_boosting",
        "mlp",
    ]


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
