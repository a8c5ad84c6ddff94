"""Fixtures for the page tests: signed-in clients and visits (patients and teams: tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def client_a(client, doctor_a):
    client.force_login(doctor_a)
    return client


@pytest.fixture
def visit_a(patient_a, doctor_a):
    from visits.services import ObservationInput, visit_create

    return visit_create(
        patient=patient_a,
        attending=doctor_a,
        chief_complaint="productive cough and fever",
        observations=[
            ObservationInput("8867-4", "112"),
            ObservationInput("2708-6", "85"),
            ObservationInput("8310-5", "38.9"),
        ],
        actor=doctor_a,
    )


def advice_payload(visit_id: int, *, abstained: bool = False) -> dict:
    """A payload shaped like predictions.services.advice._payload's output."""
    return {
        "visit_id": visit_id,
        "computed_at": "2026-01-01T00:00:00+00:00",
        "diagnoses": [
            {
                "code": "J18",
                "display": "Pneumonia, organism unspecified",
                "probability": 0.62,
                "rank": 1,
            },
            {
                "code": "J06",
                "display": "Acute upper respiratory infections",
                "probability": 0.21,
                "rank": 2,
            },
            {
                "code": "other",
                "display": "Other (less frequent diagnoses)",
                "probability": 0.17,
                "rank": 3,
            },
        ],
        "risks": [],
        "explanation": {
            "task": "differential",
            "predicted": "j18",
            "scale": "probability",
            "baseline": 0.2,
            "contributions": [
                {
                    "feature": "obs_2708-6",
                    "value": 85.0,
                    "contribution": 0.21,
                    "label": "Oxygen saturation",
                },
                {
                    "feature": "chief_complaint: cough",
                    "value": None,
                    "contribution": 0.12,
                    "label": "complaint mentions “cough”",
                },
                {"feature": "age", "value": 66.0, "contribution": -0.03, "label": "age"},
            ],
        },
        "abstained": abstained,
        "abstain_reasons": ["Differential diagnosis: few similar visits in training"]
        if abstained
        else [],
        "alerts": [
            {
                "rule": "hypoxaemia",
                "severity": "high",
                "message": "Oxygen saturation 85 % indicates hypoxaemia (below 92 %).",
            },
            {
                "rule": "critical_value",
                "severity": "critical",
                "message": "Oxygen saturation 85 % is critically low (below 88).",
            },
            {
                "rule": "allergy_conflict",
                "severity": "warning",
                "message": "Penicillin allergy: avoid amoxicillin.",
            },
        ],
        "similar_cases": [
            {
                "visit_id": 1,
                "age": 64,
                "sex": "male",
                "visit_type": "emergency",
                "year": 2025,
                "diagnoses": ["J18.9 Pneumonia, unspecified"],
                "distance": 0.1,
            },
        ],
        "models": [],
        "rules_version": 1,
    }


@pytest.fixture
def make_advice(db):
    """Store advice for a visit as the worker would: Advice row + the request marked done."""
    import json

    from predictions.models import Advice, AdviceRequest

    def make(visit, *, abstained: bool = False, version=None):
        payload = advice_payload(visit.pk, abstained=abstained)
        if version is not None:
            payload["models"] = [
                {
                    "task": version.task.slug,
                    "task_name": version.task.name,
                    "version": version.number,
                    "version_id": version.pk,
                    "algorithm": version.algorithm,
                }
            ]
        advice = Advice.objects.create(
            visit=visit,
            input_hash="h" * 64,
            models_key="differential:1",
            payload=json.dumps(payload),
            abstained=abstained,
            alert_count=3,
            critical_alert_count=1,
        )
        AdviceRequest.objects.filter(visit=visit).update(status="done", advice=advice)
        return advice

    return make


@pytest.fixture
def model_version(db, tmp_path, settings):
    """A differential ModelVersion with a report and one registered plot file."""
    from predictions.models import ModelVersion, PredictionTask

    settings.MODEL_ARTIFACT_DIR = tmp_path
    plot = tmp_path / "differential" / "v1" / "roc.svg"
    plot.parent.mkdir(parents=True)
    plot.write_text('<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>')
    task = PredictionTask.objects.get(slug="differential")
    metrics = {
        "roc_auc": 0.91,
        "roc_auc_ci": [0.88, 0.94],
        "roc_auc_ci_method": "percentile bootstrap, 200 resamples, seed 0",
        "accuracy": 0.71,
        "top3_accuracy": 0.93,
        "brier": 0.4,
        "ece": 0.03,
        "log_loss": 0.8,
        "subgroups": {
            "sex": {"female": {"n": 120, "accuracy": 0.7, "roc_auc": 0.9, "brier": 0.41}}
        },
        "per_class": {"j18": {"n": 40, "sensitivity": 0.8, "ppv": 0.7}},
    }
    return ModelVersion.objects.create(
        task=task,
        number=1,
        algorithm="logistic_regression",
        artifact_path=str(tmp_path / "model.joblib"),
        artifact_sha256="0" * 64,
        artifact_size=1,
        data_hash="d" * 64,
        metrics=metrics,
        holdout_metrics={"roc_auc": 0.9, "roc_auc_ci": [0.85, 0.95]},
        comparison={"promote": True, "reasons": ["No active model for this task."]},
        report={
            "dataset": {"rows": 400, "rows_used": 400, "patients": 250, "features": 120},
            "cv": {"folds": 2, "grouped_by": "patient_id"},
            "classes": ["j18", "other"],
            "models": [{"name": "logistic_regression", "metrics": metrics}],
        },
        plots={"roc": str(plot)},
    )
