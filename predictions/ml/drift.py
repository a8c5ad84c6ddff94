"""Monitoring statistics: drift between a reference sample and a recent window, and live metrics
with bootstrap confidence intervals.

Pure functions on numpy/pandas/scipy, no Django (the engine): each returns plain JSON-ready dicts
that always carry the ``n`` behind every figure, so a reader can tell a real shift from a small
sample. predictions/monitoring.py feeds them database rows and words their results for people.

- Population stability index (PSI) with the usual bands: < 0.1 stable, 0.1 to 0.25 moderate shift
  (watch), >= 0.25 major shift (act).
- A test suited to the feature type: two-sample Kolmogorov-Smirnov for numeric features,
  chi-square on the reference x window contingency table for categorical ones.
- Missing-value rates, and for observations the share outside the catalogue's plausible range
  (values a validated feed could not have sent: a unit error) and outside the normal range.
- Live proportion, ROC AUC and Brier score with percentile bootstrap intervals, drawn with the
  engine's one bootstrap (predictions/ml/evaluate.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .evaluate import bootstrap_statistic, percentile_interval, weighted_auc

PSI_WATCH = 0.1
PSI_ACT = 0.25
PSI_BINS = 10  # deciles of the reference: the common choice for PSI on a continuous feature
# PSI grows with the number of bins on small samples (its expected value under no shift is about
# (bins - 1) * (1/n_reference + 1/n_window)): fewer bins when a side has few values, so each bin
# expects at least this many of them.
VALUES_PER_BIN = 20
# Below this many non-missing values on either side a figure is reported but drives no status:
# PSI and the tests are too noisy to act on.
MIN_N = 30
# Empty bins would make PSI infinite; a tiny share stands in for zero (the usual smoothing).
PSI_EPSILON = 1e-4
# Significance for the drift test after Bonferroni correction over the features compared: PSI
# alone flags sampling noise on a few hundred visits, a shift must also be statistically real.
ALPHA = 0.01
# A feature whose missing rate rises by this much (absolute) is a feed that stopped sending it.
MISSING_RISE_WATCH = 0.1
MISSING_RISE_ACT = 0.3
# Values outside the plausible range are rejected at entry; any share of them reaching the
# model's inputs is a broken feed (e.g. Fahrenheit sent as Celsius).
IMPLAUSIBLE_WATCH = 0.01
IMPLAUSIBLE_ACT = 0.05

# Live metrics: more resamples than training's 200, the figures are few and cheap to resample.
METRIC_BOOTSTRAP_SAMPLES = 500
METRIC_BOOTSTRAP_SEED = 0

STATUS_ORDER = {"ok": 0, "insufficient": 0, "watch": 1, "act": 2}


def psi_band(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if value >= PSI_ACT:
        return "major"
    if value >= PSI_WATCH:
        return "moderate"
    return "stable"


def _psi_from_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.clip(expected, PSI_EPSILON, None)
    actual = np.clip(actual, PSI_EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_bin_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Inner edges at the reference quantiles (duplicates merged: a feature with few values)."""
    quantiles = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


def psi_bins(n_reference: int, n_window: int) -> int:
    return max(2, min(PSI_BINS, min(n_reference, n_window) // VALUES_PER_BIN))


def psi_numeric(
    reference: Iterable[float], current: Iterable[float], bins: int | None = None
) -> float:
    """PSI over reference-quantile bins; values beyond the reference range fall in the end bins.

    ``bins`` defaults to deciles, fewer when a side has under 200 values (:func:`psi_bins`).
    """
    ref = _finite(reference)
    cur = _finite(current)
    if not len(ref) or not len(cur):
        return math.nan
    if bins is None:
        bins = psi_bins(len(ref), len(cur))
    edges = numeric_bin_edges(ref, bins)
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    return _psi_from_shares(ref_counts / len(ref), cur_counts / len(cur))


def psi_categorical(reference: Iterable[Any], current: Iterable[Any]) -> float:
    ref = pd.Series(list(reference), dtype=object).dropna().astype(str)
    cur = pd.Series(list(current), dtype=object).dropna().astype(str)
    if ref.empty or cur.empty:
        return math.nan
    levels = sorted(set(ref) | set(cur))
    ref_share = ref.value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy()
    cur_share = cur.value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy()
    return _psi_from_shares(ref_share, cur_share)


def ks_test(reference: Iterable[float], current: Iterable[float]) -> dict[str, Any]:
    """Two-sample Kolmogorov-Smirnov: statistic D and its p-value."""
    ref, cur = _finite(reference), _finite(current)
    if not len(ref) or not len(cur):
        return {"test": "ks", "statistic": None, "p_value": None}
    result = stats.ks_2samp(ref, cur)
    return {"test": "ks", "statistic": float(result.statistic), "p_value": float(result.pvalue)}


def chi_square_test(reference: Iterable[Any], current: Iterable[Any]) -> dict[str, Any]:
    """Chi-square test of homogeneity on the levels x (reference, window) table of counts."""
    ref = pd.Series(list(reference), dtype=object).dropna().astype(str)
    cur = pd.Series(list(current), dtype=object).dropna().astype(str)
    levels = sorted(set(ref) | set(cur))
    if ref.empty or cur.empty or len(levels) < 2:
        # One level on both sides: the distributions cannot differ.
        p = None if ref.empty or cur.empty else 1.0
        return {
            "test": "chi_square",
            "statistic": None if p is None else 0.0,
            "p_value": p,
            "dof": 0,
        }
    table = np.vstack(
        [
            ref.value_counts().reindex(levels, fill_value=0).to_numpy(),
            cur.value_counts().reindex(levels, fill_value=0).to_numpy(),
        ]
    )
    table = table[:, table.sum(axis=0) > 0]
    statistic, p_value, dof, _ = stats.chi2_contingency(table)
    return {
        "test": "chi_square",
        "statistic": float(statistic),
        "p_value": float(p_value),
        "dof": int(dof),
    }


def range_rates(values: Iterable[float], low: float | None, high: float | None) -> dict[str, Any]:
    """Share of non-missing values below ``low`` or above ``high`` (None = no bound)."""
    arr = _finite(values)
    if not len(arr) or (low is None and high is None):
        return {"n": len(arr), "rate": None}
    outside = np.zeros(len(arr), dtype=bool)
    if low is not None:
        outside |= arr < low
    if high is not None:
        outside |= arr > high
    return {"n": len(arr), "rate": float(outside.mean())}


def missing_rate(values: Iterable[Any]) -> dict[str, Any]:
    series = pd.Series(list(values), dtype=object)
    n = len(series)
    if not n:
        return {"n": 0, "rate": None}
    blank = series.isna() | series.map(lambda v: isinstance(v, str) and not v.strip())
    return {"n": n, "rate": float(blank.mean())}


def feature_drift(
    name: str,
    kind: str,
    reference: pd.Series,
    current: pd.Series,
    *,
    plausible: tuple[float | None, float | None] | None = None,
    normal: tuple[float | None, float | None] | None = None,
) -> dict[str, Any]:
    """Everything about one feature: n, missing rates, PSI and band, the test, range rates.

    ``kind`` is ``numeric`` or ``categorical``. The status (ok/watch/act/insufficient) before the
    multiple-testing correction is decided by :func:`drift_status` over all features.
    """
    ref_missing, cur_missing = missing_rate(reference), missing_rate(current)
    entry: dict[str, Any] = {
        "feature": name,
        "kind": kind,
        "missing": {
            "reference": ref_missing["rate"],
            "window": cur_missing["rate"],
            "n_reference": ref_missing["n"],
            "n_window": cur_missing["n"],
        },
    }
    if kind == "numeric":
        ref = _finite(pd.to_numeric(reference, errors="coerce"))
        cur = _finite(pd.to_numeric(current, errors="coerce"))
        entry.update(
            n_reference=len(ref),
            n_window=len(cur),
            psi=_round(psi_numeric(ref, cur)),
            test=ks_test(ref, cur),
            mean={"reference": _round(_mean(ref)), "window": _round(_mean(cur))},
        )
        if plausible is not None:
            entry["implausible"] = {
                "range": list(plausible),
                "reference": range_rates(ref, *plausible)["rate"],
                "window": range_rates(cur, *plausible)["rate"],
            }
        if normal is not None:
            entry["abnormal"] = {
                "range": list(normal),
                "reference": range_rates(ref, *normal)["rate"],
                "window": range_rates(cur, *normal)["rate"],
            }
    else:
        ref_values = reference.dropna().astype(str)
        cur_values = current.dropna().astype(str)
        entry.update(
            n_reference=len(ref_values),
            n_window=len(cur_values),
            psi=_round(psi_categorical(ref_values, cur_values)),
            test=chi_square_test(ref_values, cur_values),
            shares={
                "reference": _shares(ref_values),
                "window": _shares(cur_values),
            },
        )
    entry["psi_band"] = psi_band(entry["psi"])
    return entry


def drift_status(features: list[dict[str, Any]], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Give each feature a status and a plain reason; Bonferroni-corrects the tests in place.

    - act: PSI >= 0.25 with a significant test; or missing rate up by >= 0.3; or >= 5 % of values
      physiologically implausible.
    - watch: PSI >= 0.1 with a significant test; missing rate up by >= 0.1; >= 1 % implausible.
    - insufficient: fewer than MIN_N values on a side (figures shown, no status from them).
    """
    tested = sum(1 for f in features if f["test"].get("p_value") is not None and enough_values(f))
    for f in features:
        reasons: list[tuple[str, str]] = []
        p = f["test"].get("p_value")
        p_adjusted = None if p is None else min(1.0, p * max(tested, 1))
        f["test"]["p_adjusted"] = _round(p_adjusted, 6)
        significant = p_adjusted is not None and p_adjusted < alpha
        psi = f["psi"]
        if enough_values(f) and psi is not None and significant:
            if psi >= PSI_ACT:
                reasons.append(("act", f"PSI {psi:.2f} (major shift, n={f['n_window']})"))
            elif psi >= PSI_WATCH:
                reasons.append(("watch", f"PSI {psi:.2f} (moderate shift, n={f['n_window']})"))
        missing = f["missing"]
        if (
            missing["reference"] is not None
            and missing["window"] is not None
            and missing["n_window"] >= MIN_N
        ):
            rise = missing["window"] - missing["reference"]
            if rise >= MISSING_RISE_ACT:
                reasons.append(
                    (
                        "act",
                        f"missing in {missing['window']:.0%} of visits (was {missing['reference']:.0%})",
                    )
                )
            elif rise >= MISSING_RISE_WATCH:
                reasons.append(
                    (
                        "watch",
                        f"missing in {missing['window']:.0%} of visits (was {missing['reference']:.0%})",
                    )
                )
        implausible = (f.get("implausible") or {}).get("window")
        if implausible is not None and f["n_window"] >= MIN_N:
            if implausible >= IMPLAUSIBLE_ACT:
                reasons.append(
                    (
                        "act",
                        f"{implausible:.0%} of values physiologically implausible (unit error?)",
                    )
                )
            elif implausible >= IMPLAUSIBLE_WATCH:
                reasons.append(
                    ("watch", f"{implausible:.0%} of values physiologically implausible")
                )
        if reasons:
            f["status"] = max((s for s, _ in reasons), key=STATUS_ORDER.__getitem__)
            f["reasons"] = [text for _, text in reasons]
        else:
            f["status"] = "ok" if enough_values(f) else "insufficient"
            f["reasons"] = [] if enough_values(f) else [f"fewer than {MIN_N} values to compare"]
    return features


def distribution_summary(values: Iterable[float]) -> dict[str, Any]:
    """n, mean and deciles of a probability sample, plus a 10-bin histogram on [0, 1]."""
    arr = _finite(values)
    if not len(arr):
        return {"n": 0}
    hist, _ = np.histogram(np.clip(arr, 0, 1), bins=10, range=(0.0, 1.0))
    return {
        "n": len(arr),
        "mean": _round(float(arr.mean())),
        "quantiles": {
            q: _round(float(np.quantile(arr, float(q))))
            for q in ("0.1", "0.25", "0.5", "0.75", "0.9")
        },
        "histogram": [int(h) for h in hist],
    }


def worst(statuses: Iterable[str]) -> str:
    result = "ok"
    for status in statuses:
        if STATUS_ORDER.get(status, 0) > STATUS_ORDER[result]:
            result = status
    return result


def enough_values(feature: dict[str, Any]) -> bool:
    return feature["n_reference"] >= MIN_N and feature["n_window"] >= MIN_N


def _shares(values: pd.Series) -> dict[str, float]:
    return {str(k): round(float(v), 4) for k, v in values.value_counts(normalize=True).items()}


def _finite(values: Iterable[Any]) -> np.ndarray:
    arr = np.asarray(
        pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=float
    )
    return arr[np.isfinite(arr)]


def _mean(arr: np.ndarray) -> float:
    return float(arr.mean()) if len(arr) else math.nan


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


# --- live metrics with bootstrap confidence intervals -------------------------------------------


def _metric_ci(values: np.ndarray) -> list[float | None]:
    low, high = percentile_interval(values)
    return [_round(low), _round(high)]


def _bootstrap(n: int, statistic: Any) -> np.ndarray:
    return bootstrap_statistic(
        n, statistic, samples=METRIC_BOOTSTRAP_SAMPLES, seed=METRIC_BOOTSTRAP_SEED
    )


def proportion_ci(hits: Iterable[float]) -> dict[str, Any]:
    """A share of hits (e.g. top-1 agreement) with its 95 % bootstrap interval."""
    arr = np.asarray(list(hits), dtype=float)
    n = len(arr)
    if not n:
        return {"value": None, "ci": [None, None], "n": 0}
    return {
        "value": round(float(arr.mean()), 4),
        "ci": _metric_ci(_bootstrap(n, lambda w: (w @ arr) / n)),
        "n": n,
    }


def auc_ci(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """ROC AUC with a bootstrap CI; None while only one class has been seen."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0 or len(set(labels.tolist())) < 2:
        return {"value": None, "ci": [None, None], "n": int(n)}
    positive = labels == 1
    value = weighted_auc(scores, positive, np.ones((1, n)))[0]
    return {
        "value": round(float(value), 4),
        # A resample holding one class only has no AUC (NaN): it is left out of the interval.
        "ci": _metric_ci(_bootstrap(n, lambda w: weighted_auc(scores, positive, w))),
        "n": int(n),
    }


def brier_ci(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Brier score (mean squared error of the probability) with a bootstrap CI."""
    labels = np.asarray(labels, dtype=float)
    n = len(labels)
    if n == 0:
        return {"value": None, "ci": [None, None], "n": 0}
    squared = (np.asarray(scores, dtype=float) - labels) ** 2
    return {
        "value": round(float(squared.mean()), 4),
        "ci": _metric_ci(_bootstrap(n, lambda w: (w @ squared) / n)),
        "n": int(n),
    }
