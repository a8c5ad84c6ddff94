"""The six learners, their small hyper-parameter grids and how each one is explained.

All estimators follow the scikit-learn protocol (``fit``, ``predict_proba``, ``classes_``) and take
the dense feature matrix built by :mod:`predictions.ml.features`. ``raw_scores`` gives the
uncalibrated score each calibrator works on (log-odds or logits where the model has them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.special import expit, logit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

ExplainMethod = Literal["linear", "tree", "boosting", "occlusion"]
# Probabilities are clipped before taking logs so a pure tree leaf gives a finite score.
PROBA_FLOOR = 1e-6


class OneRuleClassifier(ClassifierMixin, BaseEstimator):
    """Rules baseline (Holte's 1R): the single feature whose binned values best predict the label.

    Each feature is cut at its training quantiles; the rule predicts the (Laplace-smoothed) class
    mix of the bin a value falls in. Any model worth deploying must beat this.
    """

    def __init__(self, n_bins: int = 6) -> None:
        self.n_bins = n_bins

    def fit(self, X: np.ndarray, y: np.ndarray) -> OneRuleClassifier:
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        best: tuple[float, int, np.ndarray, np.ndarray] | None = None
        quantiles = np.linspace(0, 1, self.n_bins + 1)[1:-1]
        for j in range(X.shape[1]):
            edges = np.unique(np.quantile(X[:, j], quantiles))
            bins = np.searchsorted(edges, X[:, j], side="right")
            counts = np.ones((len(edges) + 1, k))  # Laplace smoothing
            np.add.at(counts, (bins, codes), 1.0)
            accuracy = counts.max(axis=1).sum() - (len(edges) + 1)
            if best is None or accuracy > best[0]:
                best = (accuracy, j, edges, counts / counts.sum(axis=1, keepdims=True))
        assert best is not None  # noqa: S101 - X has at least one column (featuriser guarantees)
        _, self.feature_, self.edges_, self.table_ = best
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        bins = np.searchsorted(self.edges_, np.asarray(X)[:, self.feature_], side="right")
        return self.table_[bins]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """A one-hidden-layer PyTorch MLP (CPU, seeded) with early stopping on a validation split.

    Training uses torch (Adam with weight decay, dropout, cross-entropy); the fitted weights are
    then copied to numpy so prediction needs no torch call (eval mode = no dropout, same numbers)
    and the artifact unpickles without torch internals.
    """

    def __init__(
        self,
        hidden: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.2,
        max_epochs: int = 200,
        patience: int = 10,
        batch_size: int = 64,
        validation_fraction: float = 0.15,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> TorchMLPClassifier:
        import torch  # imported here: loading a fitted model for serving needs no torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small layers: thread hand-offs cost more than they save
        try:
            return self._fit(torch, X, y)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, torch: Any, X: np.ndarray, y: np.ndarray) -> TorchMLPClassifier:
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        splitter = StratifiedShuffleSplit(
            n_splits=1, test_size=self.validation_fraction, random_state=self.seed
        )
        try:
            train_idx, val_idx = next(splitter.split(X, codes))
        except ValueError:  # a class with one member cannot be stratified: split at random
            order = np.random.default_rng(self.seed).permutation(len(X))
            cut = max(1, int(len(X) * self.validation_fraction))
            val_idx, train_idx = order[:cut], order[cut:]
        x_train = torch.as_tensor(X[train_idx], dtype=torch.float32)
        y_train = torch.as_tensor(codes[train_idx], dtype=torch.long)
        x_val = torch.as_tensor(X[val_idx], dtype=torch.float32)
        y_val = torch.as_tensor(codes[val_idx], dtype=torch.long)
        network = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], self.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, k),
        )
        optimiser = torch.optim.Adam(
            network.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        best_loss, best_state, stale = float("inf"), copy.deepcopy(network.state_dict()), 0
        self.n_epochs_ = 0
        for _epoch in range(self.max_epochs):
            network.train()
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(network(x_train[batch]), y_train[batch])
                loss.backward()
                optimiser.step()
            self.n_epochs_ += 1
            network.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(network(x_val), y_val))
            if val_loss < best_loss - 1e-4:
                best_loss, best_state, stale = val_loss, copy.deepcopy(network.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        network.load_state_dict(best_state)
        self.best_validation_loss_ = best_loss
        self.weights_ = [
            (
                layer.weight.detach().numpy().T.astype(float),
                layer.bias.detach().numpy().astype(float),
            )
            for layer in (network[0], network[3])
        ]
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The output logits, (n, k)."""
        (w1, b1), (w2, b2) = self.weights_
        hidden = np.maximum(np.asarray(X, dtype=float) @ w1 + b1, 0.0)
        return hidden @ w2 + b2

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self.decision_function(X), axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]


def raw_scores(estimator: Any, X: np.ndarray) -> np.ndarray:
    """The uncalibrated score calibration works on: (n,) log-odds for binary, (n, k) logits else."""
    k = len(estimator.classes_)
    if isinstance(estimator, TorchMLPClassifier):
        logits = estimator.decision_function(X)
        return logits[:, 1] - logits[:, 0] if k == 2 else logits
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=float)
    proba = np.clip(estimator.predict_proba(X), PROBA_FLOOR, 1 - PROBA_FLOOR)
    return logit(proba[:, 1]) if k == 2 else np.log(proba)


@dataclass(frozen=True)
class Algorithm:
    """A learner: how to build it, the grid searched, and its explanation method."""

    name: str
    build: Callable[[dict[str, Any], int], Any]
    grid: list[dict[str, Any]]
    explain: ExplainMethod
    # RBF SVM training is quadratic in rows: above this many training rows it is fitted on a
    # stratified subsample (stated in the report) so 100k visits train in minutes, not hours.
    max_train_rows: int | None = None
    notes: str = ""
    tags: dict[str, str] = field(default_factory=dict)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "rules_baseline",
            lambda p, seed: OneRuleClassifier(**p),
            [{"n_bins": 6}],
            "occlusion",
            notes="1R: the single most predictive binned feature",
        ),
        Algorithm(
            "logistic_regression",
            lambda p, seed: LogisticRegression(max_iter=2000, **p),
            [{"C": 0.03}, {"C": 0.1}, {"C": 0.3}, {"C": 1.0}],
            "linear",
        ),
        Algorithm(
            "svm",
            lambda p, seed: SVC(kernel="rbf", gamma="scale", random_state=seed, **p),
            [{"C": 0.3}, {"C": 1.0}, {"C": 3.0}],
            "occlusion",
            max_train_rows=4000,
        ),
        Algorithm(
            "decision_tree",
            lambda p, seed: DecisionTreeClassifier(random_state=seed, **p),
            [
                {"max_depth": 3, "min_samples_leaf": 10},
                {"max_depth": 5, "min_samples_leaf": 10},
                {"max_depth": 8, "min_samples_leaf": 20},
            ],
            "tree",
        ),
        Algorithm(
            "gradient_boosting",
            lambda p, seed: HistGradientBoostingClassifier(random_state=seed, **p),
            [
                {"learning_rate": 0.1, "max_iter": 100, "max_depth": 3},
                {
                    "learning_rate": 0.1,
                    "max_iter": 100,
                    "max_leaf_nodes": 15,
                    "min_samples_leaf": 40,
                },
            ],
            "boosting",
        ),
        Algorithm(
            "mlp",
            lambda p, seed: TorchMLPClassifier(seed=seed, **p),
            [
                {"lr": 1e-3, "weight_decay": 1e-4, "dropout": 0.2},
                {"lr": 3e-3, "weight_decay": 1e-3, "dropout": 0.4},
            ],
            "occlusion",
        ),
    )
}


def get_algorithms(names: list[str] | tuple[str, ...] | None) -> list[Algorithm]:
    """The named algorithms (all six when ``names`` is None)."""
    from predictions.ml.errors import DataError

    if names is None:
        return list(ALGORITHMS.values())
    unknown = [n for n in names if n not in ALGORITHMS]
    if unknown:
        raise DataError(f"unknown algorithm {unknown[0]!r}; choose from: {', '.join(ALGORITHMS)}")
    return [ALGORITHMS[n] for n in names]


def probability_from_scores(scores: np.ndarray) -> np.ndarray:
    """(n,) log-odds -> (n, 2) or (n, k) logits -> (n, k) probabilities."""
    if scores.ndim == 1:
        p = expit(scores)
        return np.column_stack([1 - p, p])
    return softmax(scores, axis=1)
