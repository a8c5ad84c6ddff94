"""Live performance of served advice against confirmed diagnoses, on hand-built cases."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from predictions.models import Advice, Feedback, ModelVersion, PredictionTask
from predictions.monitoring import MIN_LABELLED, performance_compute
from tests.factories import DiagnosisFactory, VisitFactory
from visits.models import Diagnosis

pytestmark = pytest.mark.django_db


def _version(task: PredictionTask, classes: list[str], holdout: dict) -> ModelVersion:
    return ModelVersion.objects.create(
        task=task,
        number=1,
        algorithm="logistic_regression",
        artifact_path="/nonexistent",  # performance reads stored advice, never the artifact
        artifact_sha256="0" * 64,
        artifact_size=0,
        label_map={str(i): c for i, c in enumerate(classes)},
        data_hash="0" * 64,
        holdout_metrics=holdout,
    )


def _advised_visit(version, doctor, confirmed: str, payload: dict, source="doctor"):
    visit = VisitFactory(attending=doctor)
    DiagnosisFactory(
        visit=visit,
        code=confirmed,
        display=confirmed,
        rank=Diagnosis.Rank.PRIMARY,
        status=Diagnosis.Status.CONFIRMED,
        source=source,
    )
    advice = Advice.objects.create(
        visit=visit,
        input_hash="h",
        models_key=f"{version.task.slug}:1",
        payload=json.dumps({"alerts": [], **payload}),
    )
    advice.model_versions.add(version)
    return advice


def _pairwise_auc(scores, labels):
    """ROC AUC by counting pairs (ties count one half): independent of the code under test."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_differential_agreement_auc_brier_and_feedback(doctor_a):
    task = PredictionTask.objects.get(slug="differential")
    version = _version(task, ["i21", "j18", "r07", "other"], {"accuracy": 0.9})

    def dx(*pairs):
        return {
            "diagnoses": [
                {"code": c, "probability": p, "rank": r} for r, (c, p) in enumerate(pairs, 1)
            ]
        }

    cases = [
        ("I21.9", dx(("I21", 0.7), ("J18", 0.2), ("other", 0.1))),  # top-1 hit
        ("J18.9", dx(("I21", 0.6), ("J18", 0.3), ("other", 0.1))),  # top-3 hit only
        ("J18.0", dx(("J18", 0.8), ("I21", 0.15), ("other", 0.05))),  # top-1 hit
        # K35 is not a class of the model: its truth is "other", ranked 4th: a top-3 miss.
        ("K35.8", dx(("I21", 0.4), ("J18", 0.3), ("R07", 0.2), ("other", 0.1))),
    ]
    advice = [_advised_visit(version, doctor_a, code, payload) for code, payload in cases]
    for item, (suggestion, decision, reason) in zip(
        advice,
        [
            ("I21", "accept", ""),
            ("I21", "override", "implausible"),
            ("J18", "accept", ""),
            ("I21", "override", "clinical_judgement"),
        ],
        strict=True,
    ):
        Feedback.objects.create(
            advice=item, suggestion=suggestion, decision=decision, reason=reason, actor=doctor_a
        )

    now = timezone.now()
    perf = performance_compute(task, version, now - timedelta(days=30), now)

    assert perf["n"] == 4
    assert perf["top1"]["value"] == 0.5
    assert perf["top3"]["value"] == 0.75
    lo, hi = perf["top1"]["ci"]
    assert 0 <= lo <= 0.5 <= hi <= 1
    scores = [0.7, 0.2, 0.1, 0.6, 0.3, 0.1, 0.8, 0.15, 0.05, 0.4, 0.3, 0.2, 0.1]
    labels = [1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1]
    assert perf["roc_auc"]["value"] == pytest.approx(_pairwise_auc(scores, labels), abs=1e-4)
    brier = sum((s - y) ** 2 for s, y in zip(scores, labels, strict=True)) / len(scores)
    assert perf["brier"]["value"] == pytest.approx(brier, abs=1e-4)
    assert perf["feedback"] == {
        "n": 4,
        "accepted": 2,
        "overridden": 2,
        "acceptance_rate": 0.5,
        "override_rate": 0.5,
        "override_reasons": {"implausible": 1, "clinical_judgement": 1},
        "sources": {"advice": 4, "cds_hooks": 0},
    }
    # Four labelled visits are too few to raise a performance alert.
    assert perf["alerts"] == []


def test_risk_auc_and_brier_on_confirmed_diagnoses(doctor_a):
    task = PredictionTask.objects.get(slug="cad-risk")
    version = _version(task, ["negative", "positive"], {"roc_auc": 0.8, "brier": 0.15})
    for confirmed, probability in [("I21.9", 0.9), ("J18.9", 0.2), ("J18.9", 0.6), ("I25.1", 0.7)]:
        _advised_visit(
            version,
            doctor_a,
            confirmed,
            {"risks": [{"task": "cad-risk", "probability": probability}]},
        )

    now = timezone.now()
    perf = performance_compute(task, version, now - timedelta(days=30), now)

    assert perf["n"] == 4
    assert perf["positives"] == 2
    assert perf["roc_auc"]["value"] == 1.0
    assert perf["brier"]["value"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.09) / 4)
    assert perf["reference"]["roc_auc"] == 0.8


def test_labels_that_began_as_advice_are_left_out_of_live_performance_and_watched(doctor_a):
    """A confirmed diagnosis that began as accepted advice agrees with itself: it is not live
    performance, and a high share of them is a monitoring alert."""
    task = PredictionTask.objects.get(slug="differential")
    version = _version(task, ["i21", "j18", "other"], {"accuracy": 0.5})
    payload = {"diagnoses": [{"code": "I21", "probability": 0.9, "rank": 1}]}
    for _ in range(MIN_LABELLED - 12):
        _advised_visit(version, doctor_a, "J18.9", payload)  # doctor's own: a top-1 miss
    for _ in range(12):
        _advised_visit(version, doctor_a, "I21.9", payload, source="advice")

    now = timezone.now()
    perf = performance_compute(task, version, now - timedelta(days=30), now)

    assert perf["n"] == MIN_LABELLED - 12  # the self-agreeing labels are not counted
    assert perf["top1"]["value"] == 0.0
    assert perf["labels"] == {"n": MIN_LABELLED, "from_advice": 12, "advice_share": 0.4}
    (alert,) = [a for a in perf["alerts"] if a["key"] == "labels:advice_share"]
    assert alert["severity"] == "watch"
    assert "40% of 30 confirmed diagnoses" in alert["message"]
