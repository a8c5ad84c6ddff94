"""A trained tabular MLP is served by onnxruntime in the advice path (parity within 1e-4)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from predictions.ml.artifacts import load_model
from predictions.ml.export import PARITY_TOLERANCE
from predictions.models import PredictionTask
from tests.predictions.conftest import train
from tests.predictions.test_advice import compute_latest, save_visit

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(team_a):
    from tests.factories import PatientFactory

    return PatientFactory(care_teams=[team_a])


def test_mlp_version_serves_through_onnxruntime_and_matches_numpy(
    population, settings, patient, doctor_a
):
    settings.MEDAI_TRAINING_ALGORITHMS = ["mlp"]
    job = train("cad-risk")
    assert job.status == "succeeded", job.error
    version = PredictionTask.objects.get(slug="cad-risk").active_version
    assert version.algorithm == "mlp"
    serving = version.report["serving"]
    assert serving["runtime"] == "onnxruntime"
    assert serving["parity_max_abs_logit_difference"] <= PARITY_TOLERANCE
    model = load_model(version.artifact_path, version.artifact_sha256)
    assert model.model.estimator.onnx_ is not None  # the artifact carries the graph
    # Same visits through onnxruntime and through the numpy path: equal within the tolerance.
    from predictions.training_set import training_snapshot

    frame, _ = training_snapshot(PredictionTask.objects.get(slug="cad-risk"))
    rows = frame.drop(columns=["visit_id", "label"]).head(200)
    served = model.predict_frame(rows)
    numpy_model = pickle.loads(pickle.dumps(model))  # noqa: S301 - our own bytes, just written
    numpy_model.model.estimator.serve_onnx(None)
    assert np.max(np.abs(served - numpy_model.predict_frame(rows))) <= PARITY_TOLERANCE
    # The advice path uses it: the risk is scored from the served artifact.
    visit = save_visit(patient, doctor_a)
    request, advice = compute_latest(visit)
    assert request.status == "done", request.error
    risks = json.loads(advice.payload)["risks"]
    assert any(r["task"] == "cad-risk" for r in risks)
