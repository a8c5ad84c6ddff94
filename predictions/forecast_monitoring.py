"""Monitoring of forecast tasks: output drift of the predicted risks and live performance.

The forecast counterpart of :func:`predictions.monitoring.snapshot_compute` (same return shape;
predictions/services/monitoring.py stores it as a snapshot and raises its alerts):

- **output drift** -- the risks the active version gives now, to every patient seen in the window
  who does not have the outcome yet, against the risks it gave the held-out patients at training
  (``report.output_reference``: out-of-sample, the fair comparison); PSI and KS by the engine's
  :func:`predictions.ml.drift.feature_drift`. A significant major shift asks for a look (watch).
- **live performance** -- the forecasts the version gives at its data cut (when it was trained:
  it saw nothing after) for every patient without the outcome then, judged as outcomes become
  known (:mod:`predictions.ml.timeline.outcomes`: positive once a diagnosis of the task's codes is
  recorded within the horizon, negative once the horizon has passed without one, else pending);
  ROC AUC and Brier with bootstrap CIs against the held-out figures at promotion, alerting like the
  risk tasks once ``MIN_LABELLED`` outcomes are known.
- **input drift** -- not computed per feature (a course has no fixed feature columns); the counts
  of patients behind the figures are reported instead.

Figures and counts only; no patient appears in a snapshot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from predictions.ml import drift
from predictions.ml.drift import auc_ci, brier_ci
from predictions.ml.timeline.events import Timelines, read_events, to_microseconds
from predictions.ml.timeline.outcomes import NEGATIVE, PENDING, POSITIVE, forecast_outcomes
from predictions.ml.timeline.serving import naive_utc
from visits.models import Visit

from .forecasting import forecast_model, task_definition
from .models import ModelVersion, PredictionTask
from .monitoring import _performance_alerts


def _cut(moment: datetime) -> int:
    return int(to_microseconds(np.array([naive_utc(moment)]))[0])


def _risks(model: Any, timelines: Timelines, subjects: np.ndarray, at: int) -> np.ndarray:
    if not len(subjects):
        return np.zeros(0)
    histories = timelines.histories(subjects, np.full(len(subjects), at, dtype=np.int64))
    return np.asarray(model.probabilities(timelines, histories), dtype=float)


def forecast_snapshot_compute(
    *, task: PredictionTask, now: datetime, window_days: int
) -> dict[str, Any]:
    """One monitoring look at a forecast task's active version (no writes)."""
    from .services.meds_export import meds_events_frame, subject_id_for

    version = task.active_version
    assert version is not None  # noqa: S101 - the caller checked
    model = forecast_model(version)
    definition = task_definition(task)
    frame = meds_events_frame(Visit.objects.filter(start__lte=now))
    timelines = Timelines.from_frame(read_events(frame))
    since = now - timedelta(days=window_days)
    now_us = _cut(now)

    # Output drift: patients seen in the window, without the outcome yet, scored now.
    seen = {
        subject_id_for(pk)
        for pk in Visit.objects.filter(start__gte=since, start__lte=now)
        .values_list("patient_id", flat=True)
        .distinct()
    }
    current = forecast_outcomes(timelines, definition, now_us, now_us)
    window_subjects = current["subject_id"][current["subject_id"].isin(seen)].to_numpy()
    window = _risks(model, timelines, window_subjects, now_us)
    output_drift = _output_drift(version, model, timelines, window)

    # Live performance: the forecasts at the data cut, as their outcomes become known.
    cut = version.created_at
    outcomes = forecast_outcomes(timelines, definition, _cut(cut), now_us)
    performance = _live_performance(task, version, model, timelines, outcomes, cut)
    alerts = [*output_drift.pop("alerts"), *performance.pop("alerts")]
    input_drift = {
        "what": "not computed per feature for forecasts (a course has no fixed feature columns)",
        "window_n": len(window_subjects),
        "reference_n": output_drift["checks"]["predicted risk"]["n_reference"],
        "psi_max": None,
    }
    return {
        "version": version,
        "status": drift.worst(a["severity"] for a in alerts),
        "input_drift": input_drift,
        "output_drift": output_drift,
        "performance": performance,
        "alerts": alerts,
    }


def _output_drift(
    version: ModelVersion, model: Any, timelines: Timelines, window: np.ndarray
) -> dict[str, Any]:
    stored = (version.report or {}).get("output_reference", {}).get("score")
    if stored:
        reference = np.asarray(stored, dtype=float)
        source = "risks given to the held-out patients at training"
    else:  # versions trained before the reference was stored: risks at the data cut
        cut = forecast_outcomes(
            timelines, task_definition(version.task), _cut(version.created_at), 0
        )
        reference = _risks(model, timelines, cut["subject_id"].to_numpy(), _cut(version.created_at))
        source = "risks at the version's data cut (no stored reference)"
    check = drift.feature_drift(
        "predicted risk", "numeric", pd.Series(reference), pd.Series(window)
    )
    drift.drift_status([check])
    result: dict[str, Any] = {
        "probabilities": {
            "what": "predicted risk of the outcome within the horizon",
            "reference_source": source,
            "reference": drift.distribution_summary(reference),
            "window": drift.distribution_summary(window),
        },
        "checks": {
            "predicted risk": {
                k: check.get(k)
                for k in ("n_reference", "n_window", "psi", "psi_band", "test", "status", "reasons")
            }
        },
        "alerts": [],
    }
    if check["status"] == "act":
        # Output drift is a symptom, not proof of harm (as for the visit models): watch.
        result["alerts"].append(
            {
                "severity": "watch",
                "key": "output:predicted risk",
                "source": "output drift",
                "message": f"Output predicted risk: {'; '.join(check['reasons'])}.",
            }
        )
    return result


def _live_performance(
    task: PredictionTask,
    version: ModelVersion,
    model: Any,
    timelines: Timelines,
    outcomes: pd.DataFrame,
    cut: datetime,
) -> dict[str, Any]:
    known = outcomes[outcomes["outcome"] != PENDING]
    scores = _risks(model, timelines, known["subject_id"].to_numpy(), _cut(cut))
    labels = (known["outcome"].to_numpy() == POSITIVE).astype(int)
    result: dict[str, Any] = {
        "n": len(known),
        "positives": int((known["outcome"] == POSITIVE).sum()),
        "negatives": int((known["outcome"] == NEGATIVE).sum()),
        "pending": int((outcomes["outcome"] == PENDING).sum()),
        "forecast_time": cut.isoformat(),
        "horizon_days": task_definition(task).horizon_days,
        "scoring": "forecasts at the version's data cut; positive once diagnosed within the "
        "horizon, negative once the horizon has passed without it, else pending",
        "roc_auc": auc_ci(scores, labels),
        "brier": brier_ci(scores, labels),
        "feedback": {"n": 0},
        "labels": {"n": 0},
        "reference": {k: (version.holdout_metrics or {}).get(k) for k in ("roc_auc", "brier")},
    }
    result["alerts"] = _performance_alerts(task, result)
    return result
