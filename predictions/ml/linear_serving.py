"""Serving a fitted logistic regression on one row with numpy alone: the per-request fast path.

scikit-learn's ``decision_function`` validates its input (``check_array``, finiteness, dtype,
array-API dispatch) on every call: about half of a one-row prediction's engine time, for one
dot product. The featuriser already guarantees a finite dense float row, so serving computes the
same affine map directly, over the row's non-zero features only (a row holds a few dozen
non-zeros among thousands of TF-IDF terms), and the linear explanation per input column from
per-column sums at the training mean prepared once.

The numbers are the slow path's to rounding (summation order only): ``tests/predictions/ml/
test_linear_serving.py`` compares both on many random rows to 1e-9. The batch and training
paths keep scikit-learn's own predictor.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from predictions.ml.calibration import CalibratedModel, align_scores


class LinearServing:
    """One fitted, calibrated logistic regression prepared for one-row scoring."""

    def __init__(
        self, model: CalibratedModel, reference: np.ndarray, source_code: np.ndarray, columns: int
    ) -> None:
        estimator = model.estimator
        self.model = model
        self.coef = np.ascontiguousarray(estimator.coef_, dtype=float)  # (1 or k, d)
        self.intercept = np.asarray(estimator.intercept_, dtype=float)
        self.binary = len(model.classes) == 2
        self.source_code = source_code
        self.columns = columns
        # Per class of the estimator: its raw output at the training mean, and each input
        # column's share of it (what a column contributes is w . (x - mean) over its features).
        self.at_reference = self.coef @ reference + self.intercept
        self.column_reference = np.stack(
            [np.bincount(source_code, weights=w * reference, minlength=columns) for w in self.coef]
        )

    @classmethod
    def for_model(
        cls, model: CalibratedModel, reference: np.ndarray, source_code: np.ndarray, columns: int
    ) -> LinearServing | None:
        """The fast path for ``model``, or None when its learner is not a logistic regression."""
        if type(model.estimator) is not LogisticRegression:
            return None
        return cls(model, reference, source_code, columns)

    def _raw(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonzero = np.flatnonzero(row)
        raw = self.coef[:, nonzero] @ row[nonzero] + self.intercept
        return raw, nonzero

    def scores(self, row: np.ndarray) -> np.ndarray:
        """``CalibratedModel.scores`` of one flat row: (1,) log-odds or (1, k) logits."""
        raw, _ = self._raw(row)
        if self.binary:
            return raw[:1]
        return align_scores(raw.reshape(1, -1), self.model.estimator, self.model.classes)

    def probabilities(self, row: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (k,) of one flat feature row, in the model's class order."""
        scores = self.scores(row)
        if self.binary:
            return self.model.calibrator.probabilities(scores)[0]
        # Calibrator.probabilities' softmax, without scipy's per-call overhead on one row.
        z = self.model.calibrator.calibrated_logits(scores)[0]
        e = np.exp(z - z.max())
        return e / e.sum()

    def column_contributions(self, row: np.ndarray, target: int) -> tuple[float, np.ndarray]:
        """(baseline, contribution per input column) of class ``target`` on the calibrated
        log-odds/logit scale: :meth:`Explainer._linear` summed per column, in O(non-zeros)."""
        nonzero = np.flatnonzero(row)
        calibrator = self.model.calibrator
        k = 0 if self.binary else target
        at_row = np.bincount(
            self.source_code[nonzero],
            weights=self.coef[k, nonzero] * row[nonzero],
            minlength=self.columns,
        )
        by_column = at_row - self.column_reference[k]
        if self.binary:
            sign = 1.0 if target == 1 else -1.0
            base = sign * (calibrator.slope * self.at_reference[0] + calibrator.intercept)
            return float(base), sign * calibrator.slope * by_column
        t = calibrator.temperature
        return float(self.at_reference[target] / t), by_column / t
