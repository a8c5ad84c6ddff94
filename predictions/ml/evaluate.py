"""Metrics of calibrated probabilities: discrimination with bootstrap CIs, calibration, thresholds
and subgroups.

:func:`evaluate_predictions` is the single place metrics are computed, for cross-validated
out-of-fold predictions, external files and champion-vs-challenger comparisons alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    roc_curve,
)

# Probabilities are calibrated, so 0.5 is the Bayes-optimal cut-off when a missed case and a false
# alarm cost the same; a deployment with other costs passes its own threshold.
DEFAULT_THRESHOLD = 0.5
THRESHOLD_REASON = (
    "0.5 on the calibrated probability: the expected-error-minimising cut-off for equal costs of "
    "a missed case and a false alarm (Youden's J threshold reported for reference)"
)
CALIBRATION_BINS = 10
BOOTSTRAP_SAMPLES = 200
# Resamples drawn at once: (batch, n) weights stay a few MB even for 100,000 rows.
BOOTSTRAP_BATCH = 50
AGE_BANDS = ((0, 40, "<40"), (40, 60, "40-59"), (60, 80, "60-79"), (80, math.inf, "80+"))


def age_band(age: Any) -> str:
    """A readable age band for subgroup metrics ("unknown" when missing)."""
    try:
        value = float(age)
    except (TypeError, ValueError):
        return "unknown"
    if math.isnan(value):
        return "unknown"
    return next(label for low, high, label in AGE_BANDS if low <= value < high)


def _clean(value: Any) -> Any:
    """JSON-safe numbers: NaN becomes None, numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) else float(value)
    return value


def bootstrap_statistic(
    n: int,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """``statistic`` over ``samples`` bootstrap resamples of ``n`` rows: the engine's one bootstrap.

    A resample is a multinomial weighting of the rows (row b of the (b, n) weights counts how
    often each row was drawn), so a statistic written for weights costs O(n) per resample. The
    weights are drawn in batches of :data:`BOOTSTRAP_BATCH`, keeping memory bounded on large
    samples; the draws, and so the result, do not depend on the batch size.
    """
    rng = np.random.default_rng(seed)
    results = []
    for start in range(0, samples, BOOTSTRAP_BATCH):
        size = min(BOOTSTRAP_BATCH, samples - start)
        weights = np.vstack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(size)])
        results.append(np.asarray(statistic(weights), dtype=float))
    return np.concatenate(results) if results else np.array([], dtype=float)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """The percentile interval of bootstrap ``values`` (NaN resamples dropped); NaNs if none."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return [math.nan, math.nan]
    tail = (1 - level) / 2
    return [float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))]


def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for several weightings of one sample at once (ties count one half).

    ``weights`` is (b, n): bootstrap resampling is a multinomial weighting, so each resample costs
    O(n) after a single sort instead of a fresh ``roc_auc_score``.
    """
    order = np.argsort(scores, kind="mergesort")
    _, tie_group = np.unique(scores[order], return_inverse=True)
    pos = (weights[:, order] * positive[order]).astype(float)
    neg = (weights[:, order] * ~positive[order]).astype(float)
    n_groups = tie_group.max() + 1
    pos_g = np.zeros((len(weights), n_groups))
    neg_g = np.zeros((len(weights), n_groups))
    for b in range(len(weights)):
        pos_g[b] = np.bincount(tie_group, pos[b], n_groups)
        neg_g[b] = np.bincount(tie_group, neg[b], n_groups)
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    wins = (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1)
    total = pos_g.sum(axis=1) * neg_g.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / total, np.nan)


def _macro_auc(codes: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Binary AUC, or one-vs-rest macro AUC over classes that occur, for each weighting."""
    k = proba.shape[1]
    if k == 2:
        return weighted_auc(proba[:, 1], codes == 1, weights)
    per_class = [
        weighted_auc(proba[:, c], codes == c, weights)
        for c in range(k)
        if 0 < (codes == c).sum() < len(codes)
    ]
    if not per_class:
        return np.full(len(weights), np.nan)
    return np.nanmean(np.vstack(per_class), axis=0)


def _binary_rates(codes: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    tp = float(((predicted == 1) & (codes == 1)).sum())
    tn = float(((predicted == 0) & (codes == 0)).sum())
    fp = float(((predicted == 1) & (codes == 0)).sum())
    fn = float(((predicted == 0) & (codes == 1)).sum())

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


def calibration_table(
    codes: np.ndarray, proba: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[float, dict[str, list[float]]]:
    """Expected calibration error and the reliability curve.

    Binary: on P(positive). Multi-class: top-label confidence vs. top-label accuracy.
    """
    if proba.shape[1] == 2:
        confidence, hit = proba[:, 1], (codes == 1).astype(float)
    else:
        confidence, hit = proba.max(axis=1), (proba.argmax(axis=1) == codes).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    curve: dict[str, list[float]] = {"predicted": [], "observed": [], "count": []}
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        predicted, observed = float(confidence[mask].mean()), float(hit[mask].mean())
        ece += mask.mean() * abs(predicted - observed)
        curve["predicted"].append(predicted)
        curve["observed"].append(observed)
        curve["count"].append(int(mask.sum()))
    return float(ece), curve


def _core_metrics(codes: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    """Metrics that also make sense inside a subgroup."""
    k = proba.shape[1]
    onehot = np.eye(k)[codes]
    predicted = (proba[:, 1] >= threshold).astype(int) if k == 2 else proba.argmax(axis=1)
    auc = _macro_auc(codes, proba, np.ones((1, len(codes))))[0]
    prevalence = onehot.mean(axis=0)
    metrics: dict[str, Any] = {
        "n": len(codes),
        "accuracy": float((predicted == codes).mean()),
        "roc_auc": float(auc),
        # Multi-class Brier is the sum over classes (0 = perfect, 2 = worst); binary Brier is the
        # usual mean squared error of P(positive), i.e. half the two-column sum.
        "brier": float(((proba - onehot) ** 2).sum(axis=1).mean() / (2 if k == 2 else 1)),
        "brier_baseline": float(
            ((prevalence - onehot) ** 2).sum(axis=1).mean() / (2 if k == 2 else 1)
        ),
    }
    if k == 2:
        metrics["n_positive"] = int(codes.sum())
        metrics.update(_binary_rates(codes, predicted))
    else:
        top3 = np.argsort(-proba, axis=1)[:, :3]
        metrics["top3_accuracy"] = float((top3 == codes[:, None]).any(axis=1).mean())
    return metrics


def evaluate_predictions(
    y_true: Sequence[Any] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    *,
    threshold: float | None = None,
    subgroups: Mapping[str, Sequence[Any] | np.ndarray] | None = None,
    n_bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """METRICS for calibrated probabilities ``proba`` (n, k) against labels ``y_true``.

    ``y_true`` holds class labels (values of ``classes``); ``subgroups`` maps a subgroup name
    (e.g. "sex", "age_band") to one level per row.
    """
    classes = [str(c) for c in classes]
    proba = np.asarray(proba, dtype=float)
    index = {c: i for i, c in enumerate(classes)}
    labels = [str(v) for v in y_true]
    unknown = sorted({v for v in labels if v not in index})
    if unknown:
        raise ValueError(f"labels not in classes: {unknown[:5]}")
    codes = np.array([index[v] for v in labels], dtype=int)
    k = len(classes)
    chosen = DEFAULT_THRESHOLD if threshold is None else float(threshold)

    metrics = _core_metrics(codes, proba, chosen)
    predicted = (proba[:, 1] >= chosen).astype(int) if k == 2 else proba.argmax(axis=1)
    metrics["balanced_accuracy"] = float(balanced_accuracy_score(codes, predicted))
    metrics["brier_skill"] = (
        1 - metrics["brier"] / metrics["brier_baseline"] if metrics["brier_baseline"] else math.nan
    )
    metrics["log_loss"] = float(log_loss(codes, np.clip(proba, 1e-15, 1), labels=list(range(k))))
    boot = bootstrap_statistic(
        len(codes), lambda w: _macro_auc(codes, proba, w), samples=n_bootstrap, seed=seed
    )
    metrics["roc_auc_ci"] = percentile_interval(boot)
    metrics["roc_auc_ci_method"] = f"percentile bootstrap, {n_bootstrap} resamples, seed {seed}"
    present = [c for c in range(k) if (codes == c).any()]
    if k == 2:
        metrics["pr_auc"] = float(average_precision_score(codes == 1, proba[:, 1]))
    else:
        metrics["pr_auc"] = float(
            np.mean([average_precision_score(codes == c, proba[:, c]) for c in present])
        )
    metrics["ece"], metrics["calibration_curve"] = calibration_table(codes, proba)
    metrics["confusion_matrix"] = {
        "labels": classes,
        "matrix": confusion_matrix(codes, predicted, labels=list(range(k))).tolist(),
    }
    if k == 2:
        metrics["threshold"] = chosen
        metrics["threshold_reason"] = (
            THRESHOLD_REASON if threshold is None else "threshold given by the caller"
        )
        if 0 < codes.sum() < len(codes):
            fpr, tpr, cuts = roc_curve(codes, proba[:, 1])
            best = int(np.argmax(tpr - fpr))
            metrics["youden_threshold"] = float(min(cuts[best], 1.0))
        metrics["prevalence"] = float(codes.mean())
    else:
        counts = np.bincount(codes, minlength=k)
        metrics["top1_accuracy"] = metrics["accuracy"]
        metrics["majority_baseline_accuracy"] = float(counts.max() / len(codes))
        metrics["per_class"] = {
            classes[c]: {
                "n": int(counts[c]),
                "sensitivity": float((predicted[codes == c] == c).mean())
                if counts[c]
                else math.nan,
                "ppv": float((codes[predicted == c] == c).mean())
                if (predicted == c).any()
                else math.nan,
            }
            for c in range(k)
        }
    if subgroups:
        metrics["subgroups"] = {}
        for name, levels in subgroups.items():
            levels_arr = np.array(["unknown" if v is None else str(v) for v in levels])
            metrics["subgroups"][name] = {
                level: _core_metrics(codes[levels_arr == level], proba[levels_arr == level], chosen)
                for level in sorted(set(levels_arr))
            }
    return _clean(metrics)
