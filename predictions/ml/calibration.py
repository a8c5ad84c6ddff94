"""Calibration of a fitted learner's scores into probabilities.

Binary: Platt (sigmoid) scaling, ``p = expit(a * score + b)``. Multi-class: temperature scaling,
``p = softmax(logits / T)``. Both are fitted on *out-of-fold* scores from the grouped search on
training data, so the calibrator never sees a score the learner produced on its own training rows.
Both maps are affine on the log-odds/logit scale, which is what lets linear and boosted models be
explained exactly on the calibrated scale (see :mod:`predictions.ml.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax
from sklearn.linear_model import LogisticRegression

from predictions.ml.algorithms import raw_scores

# Scores of a class the learner never saw in a fold (impossible for it to predict).
ABSENT_CLASS_LOGIT = -30.0


@dataclass
class Calibrator:
    """Affine map on the score scale: binary ``a*s + b``; multi-class ``s / temperature``."""

    slope: float = 1.0
    intercept: float = 0.0
    temperature: float = 1.0

    def calibrated_logits(self, scores: np.ndarray) -> np.ndarray:
        if scores.ndim == 1:
            return self.slope * scores + self.intercept
        return scores / self.temperature

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        z = self.calibrated_logits(scores)
        if z.ndim == 1:
            p = expit(z)
            return np.column_stack([1 - p, p])
        return softmax(z, axis=1)


def fit_calibrator(scores: np.ndarray, codes: np.ndarray) -> Calibrator:
    """Fit on out-of-fold scores and integer labels (index into the model's classes)."""
    if scores.ndim == 1:
        # Nearly unpenalised logistic regression on one score = Platt scaling.
        platt = LogisticRegression(C=1e4, max_iter=1000).fit(scores.reshape(-1, 1), codes)
        return Calibrator(slope=float(platt.coef_[0, 0]), intercept=float(platt.intercept_[0]))

    rows = np.arange(len(codes))

    def nll(log_t: float) -> float:
        return float(-log_softmax(scores / np.exp(log_t), axis=1)[rows, codes].mean())

    best = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
    return Calibrator(temperature=float(np.exp(best.x)))


def aligned_scores(estimator: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Scores in the order of ``classes`` even when a fold's learner missed a rare class."""
    return align_scores(raw_scores(estimator, X), estimator, classes)


def align_scores(scores: np.ndarray, estimator: Any, classes: np.ndarray) -> np.ndarray:
    """``estimator``'s raw scores (:func:`raw_scores`) laid out in the order of ``classes``."""
    if len(classes) == 2:
        return scores
    if len(estimator.classes_) == len(classes):
        return scores
    if scores.ndim == 1:  # the fold's learner saw two classes only: binary log-odds
        scores = np.column_stack([-scores / 2, scores / 2])
    full = np.full((len(scores), len(classes)), ABSENT_CLASS_LOGIT)
    full[:, np.searchsorted(classes, estimator.classes_)] = scores
    return full


@dataclass
class CalibratedModel:
    """A fitted learner plus its calibrator; ``predict_proba`` gives calibrated probabilities."""

    estimator: Any
    calibrator: Calibrator
    classes: np.ndarray

    # X: a feature matrix, or the neural text models' SequenceData (token ids + dense block).
    def scores(self, X: Any) -> np.ndarray:
        return aligned_scores(self.estimator, X, self.classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.calibrator.probabilities(self.scores(X))
