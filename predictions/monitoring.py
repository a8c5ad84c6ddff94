"""Model monitoring: is each active model still as good as on the day it was promoted?

This module orchestrates and words one look at an active model version (``snapshot_compute``),
comparing the training snapshot (``TrainingJob.snapshot['visit_ids']``) with the visits of the
last ``MEDAI_MONITORING_WINDOW_DAYS`` days; the statistics are the engine's
(predictions/ml/drift.py), and predictions/services/monitoring.py stores the snapshot:

- input drift per feature (PSI, KS or chi-square, missing and out-of-range rates, with the n
  behind each figure);
- output drift: what the model predicts on the window vs on its training visits (probability
  distribution, top class), and what was actually served (abstention, alert rate per rule);
- live performance once labels arrive: served advice against confirmed diagnoses (top-1/top-3
  agreement, ROC AUC and Brier with bootstrap CIs) and clinician feedback (accept/override).

The status is the worst of the parts: ok, watch (something moved: look at it) or act (the model
may be unsafe as is). Each watch/act reason becomes a :class:`ModelAlert` for admins, raised
once until acknowledged; with ``MEDAI_MONITORING_AUTO_DISABLE`` an ``act`` switches the task off
through the registry's kill switch, with the reason recorded. Snapshots hold figures, never PHI.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db.models import Q, QuerySet

from predictions.ml import drift
from predictions.ml.artifacts import load_model
from predictions.ml.drift import auc_ci, brier_ci, proportion_ci
from predictions.ml.metric_format import format_metric
from visits.models import Diagnosis, ObservationDefinition, Visit

from .models import Advice, Feedback, ModelVersion, PredictionTask
from .payload import advice_payload
from .visit_records import OTHER_CLASS, is_risk_positive, visits_frame
from .wording import feature_display

# The reference sample is capped: PSI and the tests are as informative on 5000 visits as on
# 50000, and the snapshot must stay cheap enough to run on demand.
MAX_REFERENCE_VISITS = 5000
REFERENCE_SAMPLE_SEED = 0  # the same sample of a large reference on every run
# Labelled visits needed before live performance can raise an alert (CIs too wide below).
MIN_LABELLED = 30
# Live figures this far below the promotion-day held-out figure are a real loss of performance.
PERFORMANCE_DROP = 0.05
# A clinician overriding this share of suggestions is a signal to look at (feedback ≥ MIN_LABELLED).
OVERRIDE_WATCH = 0.5
# Confirmed labels of the window that originated from advice: above this share the model's own
# suggestions are becoming the record (they are excluded from training and live performance,
# so the labels left may no longer represent the visits).
ADVICE_LABEL_WATCH = 0.3


def snapshot_compute(*, task: PredictionTask, now: datetime, window_days: int) -> dict[str, Any]:
    """Everything one snapshot of ``task``'s active version holds, and its alerts (no writes).

    Returns ``{"version", "status", "input_drift", "output_drift", "performance", "alerts"}``;
    predictions/services/monitoring.py stores it.
    """
    version = task.active_version
    since = now - timedelta(days=window_days)
    reference = visits_frame(Visit.objects.filter(pk__in=_reference_ids(version)))
    window = visits_frame(Visit.objects.filter(start__gte=since, start__lte=now))
    input_drift = input_drift_compute(version, reference, window)
    output_drift = output_drift_compute(task, version, reference, window, since, now)
    performance = performance_compute(task, version, since, now)
    alerts = [
        *input_drift.pop("alerts"),
        *output_drift.pop("alerts"),
        *performance.pop("alerts"),
    ]
    return {
        "version": version,
        "status": drift.worst(a["severity"] for a in alerts),
        "input_drift": input_drift,
        "output_drift": output_drift,
        "performance": performance,
        "alerts": alerts,
    }


def _reference_ids(version: ModelVersion) -> list[int]:
    job = version.training_job
    ids = list((job.snapshot or {}).get("visit_ids", [])) if job is not None else []
    if len(ids) > MAX_REFERENCE_VISITS:
        rng = np.random.default_rng(REFERENCE_SAMPLE_SEED)
        ids = sorted(rng.choice(ids, size=MAX_REFERENCE_VISITS, replace=False).tolist())
    return [int(i) for i in ids]


# --- input drift -------------------------------------------------------------------------------


def input_drift_compute(
    version: ModelVersion, reference: pd.DataFrame, window: pd.DataFrame
) -> dict[str, Any]:
    schema = version.feature_schema or {}
    numeric = list((schema.get("numeric") or {}).keys())
    categorical = list((schema.get("categorical") or {}).keys())
    definitions = {
        d.code: d
        for d in ObservationDefinition.objects.filter(
            code__in=[n[4:] for n in numeric if n.startswith("obs_")]
        )
    }
    features = []
    for name in numeric + categorical:
        kind = "numeric" if name in numeric else "categorical"
        definition = definitions.get(name[4:]) if name.startswith("obs_") else None
        features.append(
            drift.feature_drift(
                name,
                kind,
                _column(reference, name),
                _column(window, name),
                plausible=(definition.plausible_low, definition.plausible_high)
                if definition
                else None,
                normal=(definition.normal_low, definition.normal_high) if definition else None,
            )
        )
    drift.drift_status(features)
    alerts = [
        {
            "severity": f["status"],
            "key": f"input:{f['feature']}",
            "source": "input drift",
            "message": f"Input {feature_display(f['feature'])}: {'; '.join(f['reasons'])}.",
        }
        for f in features
        if f["status"] in ("watch", "act")
    ]
    psis = [f["psi"] for f in features if f["psi"] is not None and drift.enough_values(f)]
    return {
        "reference_n": len(reference),
        "window_n": len(window),
        "psi_max": max(psis) if psis else None,
        "status": drift.worst(f["status"] for f in features),
        "features": {f["feature"]: f for f in features},
        "alerts": alerts,
    }


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


# --- output drift ------------------------------------------------------------------------------


def output_drift_compute(
    task: PredictionTask,
    version: ModelVersion,
    reference: pd.DataFrame,
    window: pd.DataFrame,
    since: datetime,
    now: datetime,
) -> dict[str, Any]:
    """What the model predicts on the window vs its training visits; what was served."""
    model = load_model(version.artifact_path, version.artifact_sha256)
    result: dict[str, Any] = {"alerts": []}
    predicted = {}
    for side, frame in (("reference", reference), ("window", window)):
        if side == "reference" and version.report.get("output_reference"):
            # Stored at training: the out-of-fold predictions on the training visits, i.e. how
            # the model judges visits it has not seen -- the fair comparison for new visits.
            predicted[side] = version.report["output_reference"]
            continue
        proba = model.predict_frame(frame.drop(columns=["visit_id"], errors="ignore"))
        predicted[side] = predictions_summary(task, model.classes, proba)
    if task.kind == PredictionTask.Kind.RISK:
        result["probabilities"] = {
            "what": "probability of the positive class",
            "reference": drift.distribution_summary(predicted["reference"]["score"]),
            "window": drift.distribution_summary(predicted["window"]["score"]),
        }
    else:
        result["probabilities"] = {
            "what": "probability of the top-ranked class",
            "reference": drift.distribution_summary(predicted["reference"]["score"]),
            "window": drift.distribution_summary(predicted["window"]["score"]),
        }
    result["top_class"] = {
        "reference": _shares(predicted["reference"]["top"]),
        "window": _shares(predicted["window"]["top"]),
    }
    checks = [
        drift.feature_drift(
            "predicted probability",
            "numeric",
            pd.Series(predicted["reference"]["score"]),
            pd.Series(predicted["window"]["score"]),
        ),
        drift.feature_drift(
            "predicted top class",
            "categorical",
            pd.Series(predicted["reference"]["top"], dtype=object),
            pd.Series(predicted["window"]["top"], dtype=object),
        ),
    ]
    drift.drift_status(checks)
    result["checks"] = {c["feature"]: _brief(c) for c in checks}
    for c in checks:
        if c["status"] == "act":
            # The reference is the model's out-of-fold predictions on its training visits (or,
            # for versions trained before those were stored, its in-sample predictions, a little
            # more confident than on new visits): only a major, significant shift raises an alert. And output drift alone is a symptom, not proof of harm: it asks
            # for a look (watch); input drift and live performance decide when to act.
            result["alerts"].append(
                {
                    "severity": "watch",
                    "key": f"output:{c['feature']}",
                    "source": "output drift",
                    "message": f"Output {c['feature']}: {'; '.join(c['reasons'])}.",
                }
            )
    result["served"] = _served(version, since, now)
    return result


def predictions_summary(
    task: PredictionTask, classes: list[str], proba: np.ndarray
) -> dict[str, list]:
    if not len(proba):
        return {"score": [], "top": []}
    if task.kind == PredictionTask.Kind.RISK:
        positive = classes.index("1") if "1" in classes else len(classes) - 1
        score = proba[:, positive]
    else:
        score = proba.max(axis=1)
    top = [classes[i] for i in proba.argmax(axis=1)]
    return {"score": [float(s) for s in score], "top": top}


def _brief(check: dict[str, Any]) -> dict[str, Any]:
    keys = ("n_reference", "n_window", "psi", "psi_band", "test", "status", "reasons")
    return {k: check.get(k) for k in keys}


def _shares(values: list[str]) -> dict[str, Any]:
    counts = Counter(values)
    n = sum(counts.values())
    return {"n": n, "shares": {k: round(v / n, 4) for k, v in counts.most_common()} if n else {}}


def _window_advice(version: ModelVersion, since: datetime, now: datetime) -> QuerySet[Advice]:
    return Advice.objects.filter(
        model_versions=version, created_at__gte=since, created_at__lte=now, superseded=False
    ).only("pk", "visit_id", "payload", "abstained", "compute_ms")


def _served(version: ModelVersion, since: datetime, now: datetime) -> dict[str, Any]:
    """Advice this version actually served in the window: abstention, alerts per rule, latency."""
    rows = list(_window_advice(version, since, now))
    n = len(rows)
    if not n:
        return {"n": 0}
    per_rule: Counter[str] = Counter()
    for item in rows:
        per_rule.update({a.rule for a in advice_payload(item).alerts})
    latency = np.array([item.compute_ms for item in rows], dtype=float)
    return {
        "n": n,
        "abstention_rate": round(sum(item.abstained for item in rows) / n, 4),
        "alert_rate_per_rule": {rule: round(c / n, 4) for rule, c in sorted(per_rule.items())},
        "compute_ms": {
            "median": round(float(np.median(latency)), 1),
            "p95": round(float(np.quantile(latency, 0.95)), 1),
        },
    }


# --- live performance --------------------------------------------------------------------------


def performance_compute(
    task: PredictionTask, version: ModelVersion, since: datetime, now: datetime
) -> dict[str, Any]:
    """Served advice of the window against confirmed diagnoses, and clinician feedback."""
    advice = list(_window_advice(version, since, now))
    visit_ids = [item.visit_id for item in advice]
    if task.kind == PredictionTask.Kind.RISK:
        result = _risk_performance(task, advice, visit_ids)
    else:
        result = _differential_performance(version, advice, visit_ids)
    result["feedback"] = _feedback(task, version, [item.pk for item in advice], since, now)
    result["labels"] = _label_sources(visit_ids)
    result["reference"] = {
        k: (version.holdout_metrics or {}).get(k) for k in ("roc_auc", "brier", "accuracy")
    }
    result["alerts"] = _performance_alerts(task, result)
    return result


def _differential_performance(
    version: ModelVersion, advice: list[Advice], visit_ids: list[int]
) -> dict[str, Any]:
    confirmed = dict(
        Diagnosis.objects.filter(
            visit_id__in=visit_ids,
            rank=Diagnosis.Rank.PRIMARY,
            status=Diagnosis.Status.CONFIRMED,
        )
        .exclude(visit_id__in=_advice_labelled(visit_ids))  # would agree with itself
        .values_list("visit_id", "code")
    )
    # The payload's codes: engine classes upper-cased, "other" kept (predictions/services/advice.py).
    known = {c if c == OTHER_CLASS else c.upper() for c in (version.label_map or {}).values()}
    top1, top3, scores, labels = [], [], [], []
    for item in advice:
        code = confirmed.get(item.visit_id)
        if code is None:
            continue
        truth = code[:3].upper()
        truth = truth if truth in known else OTHER_CLASS
        shown = advice_payload(item).diagnoses
        ranked = [d.code for d in shown]
        top1.append(float(ranked[:1] == [truth]))
        top3.append(float(truth in ranked[:3]))
        for d in shown:
            scores.append(float(d.probability))
            labels.append(int(d.code == truth))
    return {
        "n": len(top1),
        "n_advice": len(advice),
        "top1": proportion_ci(top1),
        "top3": proportion_ci(top3),
        # One-vs-rest, micro-averaged over the suggestions shown (the payload keeps the top 5).
        "roc_auc": auc_ci(np.array(scores), np.array(labels)),
        "brier": brier_ci(np.array(scores), np.array(labels)),
        "scoring": "micro-averaged over the suggestions shown (top 5 per visit)",
    }


def _risk_performance(
    task: PredictionTask, advice: list[Advice], visit_ids: list[int]
) -> dict[str, Any]:
    prefixes = tuple(task.config.get("positive_prefixes", []))
    labelled = set(
        Diagnosis.objects.filter(
            visit_id__in=visit_ids,
            rank=Diagnosis.Rank.PRIMARY,
            status=Diagnosis.Status.CONFIRMED,
        ).values_list("visit_id", flat=True)
    ) - _advice_labelled(visit_ids)
    positive = {
        visit_id
        for visit_id, code in Diagnosis.objects.filter(
            visit_id__in=visit_ids, status=Diagnosis.Status.CONFIRMED
        ).values_list("visit_id", "code")
        if is_risk_positive(code, prefixes)
    }
    scores, labels = [], []
    for item in advice:
        if item.visit_id not in labelled:
            continue
        risk = advice_payload(item).risk(task.slug)
        if risk is None:
            continue
        scores.append(float(risk.probability))
        labels.append(int(item.visit_id in positive))
    return {
        "n": len(scores),
        "n_advice": len(advice),
        "positives": int(sum(labels)),
        "roc_auc": auc_ci(np.array(scores), np.array(labels)),
        "brier": brier_ci(np.array(scores), np.array(labels)),
    }


def _advice_labelled(visit_ids: list[int]) -> set[int]:
    """Visits whose confirmed labels include one that came from advice."""
    return set(
        Diagnosis.objects.filter(
            visit_id__in=visit_ids,
            status=Diagnosis.Status.CONFIRMED,
            source=Diagnosis.Source.ADVICE,
        ).values_list("visit_id", flat=True)
    )


def _label_sources(visit_ids: list[int]) -> dict[str, Any]:
    """Confirmed primary labels of the window's advised visits, by where they came from."""
    labelled = set(
        Diagnosis.objects.filter(
            visit_id__in=visit_ids,
            rank=Diagnosis.Rank.PRIMARY,
            status=Diagnosis.Status.CONFIRMED,
        ).values_list("visit_id", flat=True)
    )
    from_advice = len(labelled & _advice_labelled(visit_ids))
    n = len(labelled)
    return {
        "n": n,
        "from_advice": from_advice,
        "advice_share": round(from_advice / n, 4) if n else None,
    }


def _feedback(
    task: PredictionTask,
    version: ModelVersion,
    advice_ids: list[int],
    since: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Accepted/overridden suggestions of this version in the window: on the advice panel (the
    window's advice) and on CDS Hooks cards it scored (the EHR's feedback), counted alike."""
    rows = feedback_for_version(version, advice_ids, since, now)
    risk_slugs = set(
        PredictionTask.objects.filter(kind=PredictionTask.Kind.RISK).values_list("slug", flat=True)
    )
    if task.kind == PredictionTask.Kind.RISK:
        rows = rows.filter(suggestion=task.slug)
    else:
        rows = rows.exclude(suggestion__in=risk_slugs)
    triples = list(rows.values_list("decision", "reason", "cds_card_id"))
    pairs = [(d, r) for d, r, _card in triples]
    n = len(pairs)
    decisions = Counter(d for d, _ in pairs)
    reasons = Counter(r or "unspecified" for d, r in pairs if d == Feedback.Decision.OVERRIDE)
    return {
        "n": n,
        "accepted": decisions[Feedback.Decision.ACCEPT],
        "overridden": decisions[Feedback.Decision.OVERRIDE],
        "acceptance_rate": round(decisions[Feedback.Decision.ACCEPT] / n, 4) if n else None,
        "override_rate": round(decisions[Feedback.Decision.OVERRIDE] / n, 4) if n else None,
        "override_reasons": dict(reasons.most_common()),
        "sources": {
            "advice": sum(1 for *_rest, card in triples if card is None),
            "cds_hooks": sum(1 for *_rest, card in triples if card is not None),
        },
    }


def feedback_for_version(
    version: ModelVersion, advice_ids: list[int], since: datetime, now: datetime
) -> QuerySet[Feedback]:
    """Feedback on ``advice_ids`` (advice ``version`` took part in) and on the CDS Hooks cards
    ``version`` scored between ``since`` and ``now`` (a card names its model use, the use its
    version; rule-only cards name none and belong to no model)."""
    return Feedback.objects.filter(
        Q(advice_id__in=advice_ids)
        | Q(
            cds_card__model_use__version=version,
            cds_card__issued_at__gte=since,
            cds_card__issued_at__lte=now,
        )
    )


def _performance_alerts(task: PredictionTask, perf: dict[str, Any]) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    reference = perf["reference"]
    enough = perf["n"] >= MIN_LABELLED

    def check(key: str, live: dict[str, Any], ref: float | None, higher_is_better: bool) -> None:
        value = live.get("value")
        if not enough or value is None or ref is None:
            return
        ci = live.get("ci") or [None, None]
        if higher_is_better:
            drop = ref - value
            whole_ci_worse = ci[1] is not None and ci[1] < ref - PERFORMANCE_DROP
        else:
            drop = value - ref
            whole_ci_worse = ci[0] is not None and ci[0] > ref + PERFORMANCE_DROP
        if drop < PERFORMANCE_DROP:
            return
        severity = "act" if whole_ci_worse else "watch"
        alerts.append(
            {
                "severity": severity,
                "key": f"performance:{key}",
                "source": "live performance",
                "message": (
                    f"Live {_METRIC_WORDS[key]} {format_metric(value)} (95% CI {format_metric(ci[0])}–{format_metric(ci[1])}, "
                    f"n={perf['n']}) against {ref:.3f} on the held-out visits at promotion."
                ),
            }
        )

    if task.kind in (PredictionTask.Kind.RISK, PredictionTask.Kind.FORECAST):
        check("roc_auc", perf["roc_auc"], reference.get("roc_auc"), True)
        check("brier", perf["brier"], reference.get("brier"), False)
    else:
        check("top1", perf["top1"], reference.get("accuracy"), True)
    labels = perf.get("labels") or {}
    if labels.get("n", 0) >= MIN_LABELLED and (labels["advice_share"] or 0) >= ADVICE_LABEL_WATCH:
        alerts.append(
            {
                "severity": "watch",
                "key": "labels:advice_share",
                "source": "label provenance",
                "message": (
                    f"{labels['advice_share']:.0%} of {labels['n']} confirmed diagnoses in the "
                    "window began as accepted advice; they are excluded from training and live "
                    "performance, so check that doctors confirm diagnoses on their own evidence."
                ),
            }
        )
    feedback = perf["feedback"]
    if feedback["n"] >= MIN_LABELLED and (feedback["override_rate"] or 0) >= OVERRIDE_WATCH:
        alerts.append(
            {
                "severity": "watch",
                "key": "feedback:override_rate",
                "source": "clinician feedback",
                "message": (
                    f"Clinicians overrode {feedback['override_rate']:.0%} of {feedback['n']} "
                    f"suggestions; most given reason: {next(iter(feedback['override_reasons']), 'none')}."
                ),
            }
        )
    return alerts


_METRIC_WORDS = {
    "roc_auc": "ROC AUC",
    "brier": "Brier score",
    "top1": "top-1 agreement with the confirmed diagnosis",
}
